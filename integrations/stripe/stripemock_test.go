package stripe_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/stripe"
	"github.com/orderflow/orderflow/test/testenv"
)

// TestStripeMock runs the real client against stripe-mock, which answers
// every read with its fixture data and validates the parameters against
// Stripe's OpenAPI spec: the requests (with every expansion) must be
// accepted and the answers decoded. stripe-mock follows the latest API
// version and its fixture amounts are unrelated numbers, so an order that
// does not add up is refused, permanently and saying so; nothing else.
func TestStripeMock(t *testing.T) {
	base := testenv.StripeMock(t)
	c, err := stripe.New(stripe.Config{BaseURL: base, SecretKey: "sk_test_123", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"pi_123", "cs_test_123"} {
		t.Run(id, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			o, err := c.OrderDetails(ctx, id)
			if err != nil {
				if !integrations.IsPermanent(err) || !strings.Contains(err.Error(), "Stripe's amounts do not add up") {
					t.Fatalf("OrderDetails(%s): %v", id, err)
				}
				return
			}
			if o.ID != id || o.Number == "" || o.Currency == "" {
				t.Errorf("order = %+v", o)
			}
			if id == "pi_123" && o.CheckoutSessionID == "" {
				t.Errorf("no checkout session found for the PaymentIntent")
			}
			for i, it := range o.Items {
				if it.Quantity < 0 || it.AmountTotal < 0 {
					t.Errorf("item %d = %+v", i, it)
				}
			}
		})
	}
}
