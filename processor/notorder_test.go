package processor

import (
	"testing"
	"time"
)

// Payment events of the same Stripe account that are no order of the
// shop's are ignored: nothing is booked, shipped or invoiced for a card
// saved in setup mode, a subscription's Checkout or a Stripe invoice's
// PaymentIntent. A payment-mode session is an order as before.
func TestEventsOfNoOrderAreIgnored(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	cfg := h.config()
	r := h.start(cfg, f.providers())
	h.send(
		event{key: "cs_setup", typ: EventCheckoutCompleted, id: "evt_setup", object: "cs_setup", paymentStatus: "no_payment_required",
			fields: map[string]any{"object": "checkout.session", "mode": "setup", "payment_intent": nil}},
		event{key: "cs_sub", typ: EventCheckoutCompleted, id: "evt_sub", object: "cs_sub", paymentStatus: "paid",
			fields: map[string]any{"object": "checkout.session", "mode": "subscription", "payment_intent": nil}},
		event{key: "pi_renewal", typ: EventPaymentSucceeded, id: "evt_renewal", object: "pi_renewal",
			fields: map[string]any{"object": "payment_intent", "invoice": "in_1Qrenewal"}},
		event{key: "pi_shop", typ: EventCheckoutCompleted, id: "evt_shop", object: "cs_shop", paymentStatus: "paid",
			fields: map[string]any{"object": "checkout.session", "mode": "payment", "payment_intent": "pi_shop"}},
		event{key: "pi_plain", typ: EventPaymentSucceeded, id: "evt_plain", object: "pi_plain",
			fields: map[string]any{"object": "payment_intent", "invoice": nil}},
		// A refund of a charge made without a PaymentIntent: keyed by the
		// charge, no order will ever have that key.
		event{key: "ch_legacy", typ: EventChargeRefunded, id: "evt_legacy", object: "ch_legacy",
			fields: map[string]any{"payment_intent": nil}, charge: &charge{amount: 1000, refunded: 1000, full: true}},
	)
	h.waitStates("the orders completed", 30*time.Second, allStatus([]string{"pi_shop", "pi_plain"}, StatusCompleted))
	h.waitHandled(cfg.Group, 30*time.Second)
	r.stop(t)
	states := h.states()
	for _, k := range []string{"cs_setup", "cs_sub", "pi_renewal", "ch_legacy"} {
		if st := states[k]; st != nil {
			t.Errorf("%s: a state was written (%s), want none", k, st.Status)
		}
		if calls := f.callsOf(k); len(calls) != 0 {
			t.Errorf("%s: %d provider calls, want none", k, len(calls))
		}
	}
	if got := metricValue(r.p.m.notOrders); got != 4 {
		t.Errorf("orderflow_events_not_orders_total = %v, want 4", got)
	}
	if n := f.alertCount(); n != 0 {
		t.Errorf("%d alerts, want none", n)
	}
}
