package sim

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

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
		// stripe-mock refuses a further "_" (its 401), so the simulator does.
		{"test key with another underscore", map[string]string{"Authorization": "Bearer sk_test_abc_def"}, 401},
		{"restricted key with another underscore", map[string]string{"Authorization": "Bearer rk_test_a_b"}, 401},
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
	started := time.Now().Unix()
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
		// Dated in the hour before the simulator started: an order
		// tried today is dated today.
		if pi.Created < started-3600 || pi.Created > time.Now().Unix() {
			t.Errorf("%s: created %s, want within the hour before %s", piID, time.Unix(pi.Created, 0).UTC(), time.Unix(started, 0).UTC())
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

		// Taxes only when expanded, as Stripe does.
		bare := call(t, "GET", ts.URL+"/v1/checkout/sessions/"+csID+"/line_items", stripeAuthHdr, nil)
		if strings.Contains(string(bare.body), `"taxes"`) {
			t.Fatalf("line items carry taxes without expand: %s", bare.body)
		}
		ri := call(t, "GET", ts.URL+"/v1/checkout/sessions/"+csID+"/line_items?expand[]=data.taxes", stripeAuthHdr, nil)
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
		if sess.ShippingCost == nil || sum+sess.ShippingCost.AmountTotal != sess.AmountTotal || tax+sess.ShippingCost.AmountTax != sess.TotalDetails.AmountTax {
			t.Fatalf("lines %d + shipping %+v != total %d", sum, sess.ShippingCost, sess.AmountTotal)
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

// seededSession is a session of 12 lines (more than the expanded first
// page) with a coupon, taxes, shipping and a gift's two addresses.
func seededSession(id, pi string) map[string]any {
	items := []any{}
	var total, tax int64
	for i := 1; i <= 12; i++ {
		items = append(items, map[string]any{
			"id": "li_" + string(rune('a'+i)), "object": "item", "description": "Item", "quantity": 1,
			"amount_subtotal": 1255, "amount_discount": 0, "amount_tax": 255, "amount_total": 1255, "currency": "eur",
			"price": map[string]any{"id": "price_1", "object": "price", "unit_amount": 1255, "tax_behavior": "inclusive",
				"product": map[string]any{"id": "prod_1", "object": "product", "metadata": map[string]any{"hs_code": "691200"}}},
			"taxes":     []any{map[string]any{"amount": 255, "taxable_amount": 1000, "taxability_reason": "standard_rated", "rate": map[string]any{"percentage": 25.5, "inclusive": true}}},
			"discounts": []any{},
		})
		total += 1255
		tax += 255
	}
	return map[string]any{
		"id": id, "object": "checkout.session", "currency": "eur", "amount_subtotal": total, "amount_total": total + 590,
		"payment_intent": pi, "payment_status": "paid", "created": 1764000000,
		"customer_details": map[string]any{"name": "Buyer", "email": "b@example.fi", "address": map[string]any{"line1": "Billing 1", "city": "Tampere", "postal_code": "33100", "country": "FI"}, "tax_exempt": "none", "tax_ids": []any{}},
		"shipping_details": map[string]any{"name": "Recipient", "address": map[string]any{"line1": "Ship 1", "line2": "B 2", "city": "Helsinki", "postal_code": "00100", "country": "FI"}},
		"shipping_cost": map[string]any{"amount_subtotal": 590, "amount_tax": 120, "amount_total": 590,
			"shipping_rate": map[string]any{"id": "shr_1", "object": "shipping_rate", "display_name": "Posti", "tax_behavior": "inclusive"},
			"taxes":         []any{map[string]any{"amount": 120, "taxable_amount": 470, "rate": map[string]any{"percentage": 25.5}}}},
		"total_details": map[string]any{"amount_discount": 0, "amount_shipping": 590, "amount_tax": tax + 120,
			"breakdown": map[string]any{"discounts": []any{}, "taxes": []any{map[string]any{"amount": tax + 120, "rate": map[string]any{"percentage": 25.5}}}}},
		"line_items": items,
	}
}

// Seeded objects are served as given, with Stripe's expand and paging
// rules, and survive a restart on the same data folder.
func TestStripeSeededObjects(t *testing.T) {
	dir := t.TempDir()
	_, ts := newTest(t, Config{DataDir: dir})
	wantStatus(t, call(t, "PUT", ts.URL+"/_sim/stripe/checkout/sessions/cs_test_seed1", nil, seededSession("cs_test_seed1", "pi_seed1")), 200)
	wantStatus(t, call(t, "PUT", ts.URL+"/_sim/stripe/payment_intents/pi_seed1", nil, map[string]any{
		"id": "pi_seed1", "object": "payment_intent", "amount": 15650, "currency": "eur", "status": "succeeded", "metadata": map[string]any{"locale": "sv-FI"}}), 200)
	wantStatus(t, call(t, "PUT", ts.URL+"/_sim/stripe/payment_intents/pi_alone", nil, map[string]any{
		"object": "payment_intent", "amount": 4990, "currency": "sek", "status": "succeeded", "description": "Invoice 9",
		"latest_charge": map[string]any{"id": "ch_1", "object": "charge", "billing_details": map[string]any{"name": "Åsa"}}}), 200)

	check := func(url string) {
		// Not expanded: no line items, no breakdown, no shipping taxes,
		// ids for the shipping rate and the PaymentIntent.
		r := call(t, "GET", url+"/v1/checkout/sessions/cs_test_seed1", stripeAuthHdr, nil)
		wantStatus(t, r, 200)
		m := r.json(t)
		if m["line_items"] != nil || path(m, "total_details", "breakdown") != nil || path(m, "shipping_cost", "taxes") != nil ||
			path(m, "shipping_cost", "shipping_rate") != "shr_1" || m["payment_intent"] != "pi_seed1" {
			t.Fatalf("unexpanded session: %s", r.body)
		}
		// Expanded in a list: the first 10 items, then page by starting_after.
		rl := call(t, "GET", url+"/v1/checkout/sessions?payment_intent=pi_seed1&expand[]=data.line_items&expand[]=data.line_items.data.taxes&expand[]=data.payment_intent&expand[]=data.total_details.breakdown", stripeAuthHdr, nil)
		var list stripe.CheckoutSessionList
		if err := json.Unmarshal(rl.body, &list); err != nil || len(list.Data) != 1 {
			t.Fatalf("list: %v %s", err, rl.body)
		}
		cs := list.Data[0]
		if cs.LineItems == nil || len(cs.LineItems.Data) != 10 || !cs.LineItems.HasMore || len(cs.LineItems.Data[0].Taxes) != 1 ||
			cs.LineItems.Data[0].Discounts != nil || cs.PaymentIntent.Metadata["locale"] != "sv-FI" || cs.TotalDetails.Breakdown == nil {
			t.Fatalf("expanded session: %s", rl.body)
		}
		rp := call(t, "GET", url+"/v1/checkout/sessions/cs_test_seed1/line_items?limit=100&starting_after="+cs.LineItems.Data[9].ID, stripeAuthHdr, nil)
		var rest stripe.LineItemList
		if err := json.Unmarshal(rp.body, &rest); err != nil || len(rest.Data) != 2 || rest.HasMore || rest.Data[0].Taxes != nil {
			t.Fatalf("second page: %v %s", err, rp.body)
		}
		// A price's product is its id unless expanded.
		if p := rest.Data[0].Price.Product; p == nil || p.ID != "prod_1" || p.Metadata != nil {
			t.Fatalf("product not reduced to its id: %s", rp.body)
		}
		rx := call(t, "GET", url+"/v1/checkout/sessions/cs_test_seed1/line_items?limit=1&expand[]=data.price.product", stripeAuthHdr, nil)
		var withProducts stripe.LineItemList
		if err := json.Unmarshal(rx.body, &withProducts); err != nil || len(withProducts.Data) != 1 || withProducts.Data[0].Price.Product.Metadata["hs_code"] != "691200" {
			t.Fatalf("expanded product: %v %s", err, rx.body)
		}
		// A PaymentIntent seeded without a session: no session lists it,
		// and latest_charge only when expanded.
		ra := call(t, "GET", url+"/v1/checkout/sessions?payment_intent=pi_alone", stripeAuthHdr, nil)
		if d, _ := ra.json(t)["data"].([]any); len(d) != 0 {
			t.Fatalf("PaymentIntent without Checkout has a session: %s", ra.body)
		}
		rpi := call(t, "GET", url+"/v1/payment_intents/pi_alone?expand[]=latest_charge", stripeAuthHdr, nil)
		if path(rpi.json(t), "latest_charge", "billing_details", "name") != "Åsa" || path(rpi.json(t), "description") != "Invoice 9" {
			t.Fatalf("PaymentIntent: %s", rpi.body)
		}
		if r := call(t, "GET", url+"/v1/payment_intents/pi_alone", stripeAuthHdr, nil); path(r.json(t), "latest_charge") != "ch_1" {
			t.Fatalf("latest_charge not reduced to its id: %s", r.body)
		}
	}
	check(ts.URL)

	// A new simulator on the same folder serves the same objects.
	_, ts2 := newTest(t, Config{DataDir: dir})
	check(ts2.URL)
	if r := call(t, "GET", ts2.URL+"/_sim/stripe", nil, nil); path(r.json(t), "checkout_sessions") == nil {
		t.Fatalf("list of seeds: %s", r.body)
	}
	wantStatus(t, call(t, "DELETE", ts2.URL+"/_sim/stripe", nil, nil), 204)
	if r := call(t, "GET", ts2.URL+"/v1/payment_intents/pi_alone", stripeAuthHdr, nil); path(r.json(t), "description") == "Invoice 9" {
		t.Fatal("deleted seed still served")
	}
}

func TestStripeSeedRejectsBadObjects(t *testing.T) {
	_, ts := newTest(t, Config{})
	for name, tc := range map[string]struct {
		path string
		body any
		want string
	}{
		"id differs":     {"/_sim/stripe/checkout/sessions/cs_test_a", map[string]any{"id": "cs_test_b"}, "differs"},
		"wrong object":   {"/_sim/stripe/payment_intents/pi_a", map[string]any{"object": "charge"}, `object is \"charge\"`},
		"bad prefix":     {"/_sim/stripe/checkout/sessions/x_1", map[string]any{}, "starts with cs_"},
		"not decodable":  {"/_sim/stripe/checkout/sessions/cs_test_a", map[string]any{"amount_total": "lots"}, "stripe-go v76 cannot decode"},
		"duplicate item": {"/_sim/stripe/checkout/sessions/cs_test_a", map[string]any{"line_items": []any{map[string]any{"id": "li_1"}, map[string]any{"id": "li_1"}}}, "twice"},
		"not an object":  {"/_sim/stripe/payment_intents/pi_a", []any{1}, "not a JSON object"},
	} {
		t.Run(name, func(t *testing.T) {
			r := call(t, "PUT", ts.URL+tc.path, nil, tc.body)
			wantStatus(t, r, 400)
			if !strings.Contains(string(r.body), tc.want) {
				t.Fatalf("body %s lacks %q", r.body, tc.want)
			}
		})
	}
}
