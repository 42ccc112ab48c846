package sim

import (
	"encoding/json"
	"testing"

	stripe "github.com/stripe/stripe-go/v76"
)

var stripeAuthHdr = map[string]string{"Authorization": "Bearer sk_test_123"}

func TestStripeAuth(t *testing.T) {
	_, ts := newTest(t, Config{})
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"none", nil, 401},
		{"live key", map[string]string{"Authorization": "Bearer sk_live_123"}, 401},
		{"bare prefix", map[string]string{"Authorization": "Bearer sk_test_"}, 401},
		{"test key", stripeAuthHdr, 200},
		{"restricted test key", map[string]string{"Authorization": "Bearer rk_test_9"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, "GET", ts.URL+"/v1/payment_intents/pi_1", tc.hdr, nil)
			wantStatus(t, r, tc.want)
			if tc.want == 401 && path(r.json(t), "error", "type") != "invalid_request_error" {
				t.Fatalf("401 body not in Stripe's error shape: %s", r.body)
			}
		})
	}
}

func TestStripeOrderIsDeterministicAndConsistent(t *testing.T) {
	s, ts := newTest(t, Config{})
	currencies := map[string]bool{}
	countries := map[string]bool{}
	for _, seed := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "3MtwBwLkdIwHu7ix28a3tqPa"} {
		piID := "pi_" + seed
		r1 := call(t, "GET", ts.URL+"/v1/payment_intents/"+piID, stripeAuthHdr, nil)
		r2 := call(t, "GET", ts.URL+"/v1/payment_intents/"+piID, stripeAuthHdr, nil)
		wantStatus(t, r1, 200)
		if string(r1.body) != string(r2.body) {
			t.Fatalf("%s: two reads differ", piID)
		}
		var pi stripe.PaymentIntent
		if err := json.Unmarshal(r1.body, &pi); err != nil {
			t.Fatalf("stripe-go cannot decode the PaymentIntent: %v", err)
		}
		if pi.ID != piID || pi.Status != stripe.PaymentIntentStatusSucceeded || pi.Metadata["locale"] == "" || pi.Shipping == nil || pi.Shipping.Address.Country == "" {
			t.Fatalf("PaymentIntent incomplete: %+v", pi)
		}

		// The session list by payment_intent has the one session for it.
		rl := call(t, "GET", ts.URL+"/v1/checkout/sessions?payment_intent="+piID, stripeAuthHdr, nil)
		wantStatus(t, rl, 200)
		var list stripe.CheckoutSessionList
		if err := json.Unmarshal(rl.body, &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Data) != 1 || list.Data[0].PaymentIntent == nil || list.Data[0].PaymentIntent.ID != piID {
			t.Fatalf("session list for %s: %s", piID, rl.body)
		}
		csID := list.Data[0].ID

		rs := call(t, "GET", ts.URL+"/v1/checkout/sessions/"+csID, stripeAuthHdr, nil)
		var sess stripe.CheckoutSession
		if err := json.Unmarshal(rs.body, &sess); err != nil {
			t.Fatal(err)
		}
		if sess.PaymentIntent.ID != piID || sess.AmountTotal != pi.Amount || string(sess.Currency) != string(pi.Currency) ||
			sess.CustomerDetails == nil || sess.CustomerDetails.Email == "" || sess.ShippingDetails == nil || sess.PaymentStatus != "paid" {
			t.Fatalf("session does not match its PaymentIntent: %s", rs.body)
		}

		ri := call(t, "GET", ts.URL+"/v1/checkout/sessions/"+csID+"/line_items", stripeAuthHdr, nil)
		var items stripe.LineItemList
		if err := json.Unmarshal(ri.body, &items); err != nil {
			t.Fatal(err)
		}
		if n := len(items.Data); n < 1 || n > 3 {
			t.Fatalf("%d line items, want 1-3", n)
		}
		var sum, tax int64
		for _, li := range items.Data {
			if li.AmountTotal != li.AmountSubtotal+li.AmountTax || li.Price.UnitAmount*li.Quantity != li.AmountSubtotal {
				t.Fatalf("line amounts inconsistent: %+v", li)
			}
			if len(li.Taxes) != 1 || li.Taxes[0].Amount != li.AmountTax || li.Taxes[0].Rate.Percentage <= 0 {
				t.Fatalf("line tax missing: %s", ri.body)
			}
			sum += li.AmountTotal
			tax += li.AmountTax
		}
		if sum+sess.TotalDetails.AmountShipping != sess.AmountTotal || tax != sess.TotalDetails.AmountTax {
			t.Fatalf("lines %d + shipping %d != total %d", sum, sess.TotalDetails.AmountShipping, sess.AmountTotal)
		}
		currencies[string(pi.Currency)] = true
		countries[pi.Shipping.Address.Country] = true
	}
	for _, c := range []string{"eur", "sek", "jpy"} {
		if !currencies[c] {
			t.Errorf("no order in %s among the seeds (got %v)", c, currencies)
		}
	}
	if len(countries) < 3 {
		t.Errorf("orders from only %v", countries)
	}
	if got := s.Stats().Steps[StepStripe].Requests; got == 0 {
		t.Fatalf("stripe requests not counted")
	}
}

func TestStripeSessionExpandAndNotFound(t *testing.T) {
	_, ts := newTest(t, Config{})
	r := call(t, "GET", ts.URL+"/v1/checkout/sessions/cs_test_x?expand[0]=line_items", stripeAuthHdr, nil)
	wantStatus(t, r, 200)
	var sess stripe.CheckoutSession
	if err := json.Unmarshal(r.body, &sess); err != nil {
		t.Fatal(err)
	}
	if sess.LineItems == nil || len(sess.LineItems.Data) == 0 || sess.PaymentIntent.ID != "pi_x" {
		t.Fatalf("expand line_items: %s", r.body)
	}
	for _, p := range []string{"/v1/payment_intents/ch_1", "/v1/checkout/sessions/sess_1", "/v1/checkout/sessions/x/line_items", "/v1/customers/cus_1"} {
		r := call(t, "GET", ts.URL+p, stripeAuthHdr, nil)
		wantStatus(t, r, 404)
		if path(r.json(t), "error", "message") == nil {
			t.Fatalf("%s: not Stripe's error shape: %s", p, r.body)
		}
	}
}
