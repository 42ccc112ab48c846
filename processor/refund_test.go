package processor

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// alertTexts returns the texts of the alerts about order, in order sent.
func (f *fakes) alertTexts(order string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, a := range f.alerts {
		if a.OrderID == order {
			out = append(out, a.Text)
		}
	}
	return out
}

// Stripe sends charge.refunded for every refund, partial ones included,
// with amount_refunded the total refunded so far. A partial refund stops
// nothing; a refund of the whole charge does, even after partial ones of
// the same charge.
func TestPartialRefunds(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	cfg := h.config()
	r := h.start(cfg, f.providers())
	refund := func(key, id string, refunded int64, full bool) event {
		return event{key: key, typ: EventChargeRefunded, id: id, object: "ch_" + key, charge: &charge{amount: 12400, refunded: refunded, full: full}}
	}
	h.send(
		// A partial refund before the payment's event: the order ships.
		refund("pi_part", "evt_p1", 2500, false), paid("pi_part"),
		// Two partial refunds of one charge, then the rest, all before
		// the payment's event: the whole charge is refunded, nothing runs.
		refund("pi_rest", "evt_r1", 2500, false), refund("pi_rest", "evt_r2", 5000, false), refund("pi_rest", "evt_r3", 12400, true),
		paid("pi_rest"),
		// After shipping: a partial refund, then the rest.
		paid("pi_late"), refund("pi_late", "evt_l1", 400, false), refund("pi_late", "evt_l1", 400, false), refund("pi_late", "evt_l2", 12400, true),
		// Stripe's refunded flag alone says the refund is whole.
		refund("pi_flag", "evt_f1", 100, true), paid("pi_flag"),
	)
	states := h.waitStates("refunds handled", 30*time.Second, func(m map[string]*State) bool {
		done := func(k string, n int) bool { return m[k] != nil && len(m[k].AppliedEvents) == n }
		return done("pi_part", 2) && m["pi_part"].Status == StatusCompleted && done("pi_rest", 3) && done("pi_late", 3) && done("pi_flag", 1)
	})
	h.waitHandled(cfg.Group, 30*time.Second)
	r.stop(t)

	if st := states["pi_part"]; st.Status != StatusCompleted || !st.HasFlag(FlagPartiallyRefunded) || st.HasFlag(FlagRefundedAfterShipping) {
		t.Errorf("pi_part: status %s flags %v, want completed and partially_refunded", st.Status, st.Flags)
	}
	for _, step := range Chain {
		if n := f.createdCount(step, "pi_part"); n != 1 {
			t.Errorf("pi_part: %s created %d times, want 1", step, n)
		}
	}
	if got, want := f.alertTexts("pi_part"), []string{"order partially refunded before shipping: the order goes on (check what is still to ship): 25.00 EUR of 124.00 EUR refunded so far; credit it on the invoice by hand"}; !slices.Equal(got, want) {
		t.Errorf("pi_part alerts %q, want %q", got, want)
	}

	for _, k := range []string{"pi_rest", "pi_flag"} {
		if st := states[k]; st.Status != StatusRefunded {
			t.Errorf("%s: status %s, want refunded", k, st.Status)
		}
		for _, step := range Chain {
			if n := f.attemptCount(step, k); n != 0 {
				t.Errorf("%s: %s called %d times after the whole charge was refunded", k, step, n)
			}
		}
	}
	if got := f.alertTexts("pi_rest"); len(got) != 3 || got[2] != "order refunded before shipping: the chain stopped; check any steps already done" {
		t.Errorf("pi_rest alerts %q, want two partial refunds and the stop", got)
	}

	st := states["pi_late"]
	if st.Status != StatusCompleted || !st.HasFlag(FlagPartiallyRefunded) || !st.HasFlag(FlagRefundedAfterShipping) {
		t.Errorf("pi_late: status %s flags %v, want completed, partially_refunded and refunded_after_shipping", st.Status, st.Flags)
	}
	if got, want := f.alertTexts("pi_late"), []string{
		"order partially refunded after it shipped: 4.00 EUR of 124.00 EUR refunded so far; credit it on the invoice by hand",
		"order refunded after it shipped: stop or recall the shipment and credit the invoice by hand",
	}; !slices.Equal(got, want) {
		t.Errorf("pi_late alerts %q, want %q", got, want)
	}
}

// A refund parked behind the order's dead letter that leaves the order
// going on resumes the chain when it alone is replayed, as any replayed
// event does: a partial one behind a shipping failure, one of the whole
// charge behind a failure after shipping (the email), a refund that failed
// and a dispute, each flagging the order as it would have. The order
// completes, flagged, and the failed step is created once.
func TestReplayedRefundResumesTheChain(t *testing.T) {
	refunded := func(c charge) func(k string) event {
		return func(k string) event {
			return event{key: k, typ: EventChargeRefunded, id: "evt_" + k, object: "ch_" + k, charge: &c}
		}
	}
	refundFailed := func(k string) event {
		return event{key: k, typ: EventRefundUpdated, id: "evt_" + k, object: "re_" + k, fields: map[string]any{
			"object": "refund", "status": "failed", "amount": 2500, "currency": "eur", "payment_intent": k}}
	}
	dispute := func(k string) event {
		return event{key: k, typ: EventDisputeCreated, id: "evt_" + k, object: "dp_" + k, fields: map[string]any{
			"object": "dispute", "amount": 12400, "currency": "eur", "reason": "fraudulent", "payment_intent": k}}
	}
	for _, tt := range []struct {
		name, failing, flag string
		ev                  func(k string) event
	}{
		{"partial", StepShipping, FlagPartiallyRefunded, refunded(charge{amount: 12400, refunded: 1000})},
		{"whole after shipping", StepEmail, FlagRefundedAfterShipping, refunded(charge{amount: 12400, refunded: 12400, full: true})},
		{"refund failed", StepInvoice, FlagRefundFailed, refundFailed},
		{"dispute", StepShipping, FlagDisputed, dispute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newLogicHarness(t, 3)
			f := newFakes()
			broken := f.breakStep(tt.failing)
			h.start(h.config(), f.providers())
			k := "pi_park_" + strings.ReplaceAll(tt.name, " ", "_")
			h.send(paid(k), tt.ev(k))
			h.waitStates("parked", 30*time.Second, allStatus([]string{k}, StatusParked))
			dl := h.readAll(h.names.DLQ)
			if len(dl) != 2 {
				t.Fatalf("%d dead letters, want 2 (%s, then the parked refund)", len(dl), tt.failing)
			}
			broken.Store(false)
			h.replayLetter(dl[1])
			st := h.waitStates("completed", 30*time.Second, allStatus([]string{k}, StatusCompleted))[k]
			if !st.HasFlag(tt.flag) || !slices.Contains(st.AppliedEvents, "evt_"+k) {
				t.Errorf("flags %v applied %v, want %s and the refund applied", st.Flags, st.AppliedEvents, tt.flag)
			}
			if n := f.createdCount(tt.failing, k); n != 1 {
				t.Errorf("%s created %d times, want 1", tt.failing, n)
			}
		})
	}
}

// A refund that fails at Stripe after it was made (charge.refund.updated,
// status failed or canceled) did not pay the customer back: the order is
// flagged refund_failed with one alert, its status left as it was. Other
// updates of a refund change nothing; a refund of an order without state
// is ignored.
func TestRefundFailed(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	cfg := h.config()
	r := h.start(cfg, f.providers())
	update := func(key, id, status string) event {
		return event{key: key, typ: EventRefundUpdated, id: id, object: "re_" + key, fields: map[string]any{
			"object": "refund", "status": status, "failure_reason": "expired_or_canceled_card", "amount": 2500, "currency": "eur", "payment_intent": key}}
	}
	k := "pi_refund_failed"
	h.send(paid(k),
		event{key: k, typ: EventChargeRefunded, id: "evt_rf1", object: "ch_" + k, charge: &charge{amount: 12400, refunded: 2500}},
		update(k, "evt_rf2", "pending"),
		update(k, "evt_rf3", "failed"),
		update(k, "evt_rf3", "failed"), // delivered twice
		update("pi_never_seen", "evt_rf4", "failed"))
	states := h.waitStates("refund failure recorded", 30*time.Second, func(m map[string]*State) bool {
		return m[k] != nil && slices.Contains(m[k].AppliedEvents, "evt_rf3")
	})
	h.waitHandled(cfg.Group, 30*time.Second)
	r.stop(t)
	st := states[k]
	if st.Status != StatusCompleted || !st.HasFlag(FlagRefundFailed) || !st.HasFlag(FlagPartiallyRefunded) {
		t.Errorf("status %s flags %v, want completed, partially_refunded and refund_failed", st.Status, st.Flags)
	}
	want := []string{
		"order partially refunded after it shipped: 25.00 EUR of 124.00 EUR refunded so far; credit it on the invoice by hand",
		"a refund of 25.00 EUR did not go through (failed: expired or canceled card): the customer was not paid back; pay back another way",
	}
	if got := f.alertTexts(k); !slices.Equal(got, want) {
		t.Errorf("alerts %q, want %q", got, want)
	}
	if _, ok := states["pi_never_seen"]; ok {
		t.Error("a refund update of an unknown order made a state")
	}
	if got := f.alertTexts("pi_never_seen"); len(got) != 0 {
		t.Errorf("alerts for an unknown order: %q", got)
	}
}

// A dispute (charge.dispute.created, a chargeback) of an order flags it
// disputed with one alert naming the amount, the reason and when the
// evidence is due; the order's status and chain are left as they were.
// Delivered twice it alerts once; a dispute of an order without state is
// ignored.
func TestDispute(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	cfg := h.config()
	r := h.start(cfg, f.providers())
	dispute := func(key, id string) event {
		return event{key: key, typ: EventDisputeCreated, id: id, object: "dp_" + key, fields: map[string]any{
			"object": "dispute", "amount": 12400, "currency": "eur", "reason": "product_not_received", "status": "needs_response",
			"evidence_details": map[string]any{"due_by": 1796428800}, "payment_intent": key}}
	}
	k := "pi_disputed"
	h.send(paid(k), dispute(k, "evt_dp1"), dispute(k, "evt_dp1"), dispute("pi_unknown_dispute", "evt_dp2"))
	states := h.waitStates("dispute recorded", 30*time.Second, func(m map[string]*State) bool {
		return m[k] != nil && slices.Contains(m[k].AppliedEvents, "evt_dp1")
	})
	h.waitHandled(cfg.Group, 30*time.Second)
	r.stop(t)
	if st := states[k]; st.Status != StatusCompleted || !st.HasFlag(FlagDisputed) {
		t.Errorf("status %s flags %v, want completed and disputed", st.Status, st.Flags)
	}
	want := []string{"a payment of 124.00 EUR was disputed (a chargeback), reason product not received: Stripe took the amount back; answer the dispute in Stripe by 2026-12-05 00:00Z"}
	if got := f.alertTexts(k); !slices.Equal(got, want) {
		t.Errorf("alerts %q, want %q", got, want)
	}
	if _, ok := states["pi_unknown_dispute"]; ok {
		t.Error("a dispute of an unknown order made a state")
	}
	for _, step := range Chain {
		if n := f.attemptCount(step, k); n != 1 {
			t.Errorf("%s called %d times, want 1", step, n)
		}
	}
}
