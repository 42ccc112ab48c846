package mailgun

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/test/ordergen"
)

// minor reads "12.345 KWD" back into minor units, exactly.
func minor(t *testing.T, s, currency string) int64 {
	t.Helper()
	num, cur, ok := strings.Cut(s, " ")
	if !ok || cur != strings.ToUpper(currency) {
		t.Fatalf("amount %q is not in %s", s, currency)
	}
	if integrations.Exponent(currency) > 0 && strings.Count(num, ".") != 1 {
		t.Fatalf("amount %q lacks its decimals", s)
	}
	v, err := strconv.ParseInt(strings.Replace(num, ".", "", 1), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The email invariant over generated orders: every amount gross, and
// subtotal (Σ item totals) − discount + shipping = total = what was paid;
// vat_included is the tax charged; each item's unit price × quantity is
// its total when given.
func TestEmailAddsUpGenerated(t *testing.T) {
	c, _, _ := newTest(t, reply{})
	rng := rand.New(rand.NewPCG(13, 2026))
	for n := range 2000 {
		o := ordergen.Order(rng, n)
		v, err := c.TemplateVariables(o, testShipment, testInvoice)
		if err != nil {
			t.Fatalf("order %d: %v", n, err)
		}
		cur := o.Currency
		var items, discounts int64
		for i, it := range v.Items {
			total := minor(t, it.Total, cur)
			items += total
			if it.Discount != "" {
				discounts += minor(t, it.Discount, cur)
			}
			if it.UnitPrice != "" && minor(t, it.UnitPrice, cur)*it.Quantity != total {
				t.Fatalf("order %d item %d: %d × %s ≠ %s", n, i+1, it.Quantity, it.UnitPrice, it.Total)
			}
		}
		sub, disc, ship, tot := minor(t, v.Subtotal, cur), minor(t, v.Discount, cur), minor(t, v.Shipping, cur), minor(t, v.Total, cur)
		if sub != items || disc != discounts || sub-disc+ship != tot || tot != o.AmountTotal || minor(t, v.VATIncluded, cur) != o.AmountTax {
			t.Fatalf("order %d: %s − %s + %s = %s does not add up to the %d paid", n, v.Subtotal, v.Discount, v.Shipping, v.Total, o.AmountTotal)
		}
	}
}
