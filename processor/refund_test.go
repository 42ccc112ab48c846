package processor

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/topics"
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
	// After shipping (the order completed): a partial refund, then the rest.
	h.send(paid("pi_late"))
	h.waitStates("pi_late completed", 30*time.Second, allStatus([]string{"pi_late"}, StatusCompleted))
	h.send(
		// A partial refund before the payment's event: the order ships.
		refund("pi_part", "evt_p1", 2500, false), paid("pi_part"),
		// Two partial refunds of one charge, then the rest, all before
		// the payment's event: the whole charge is refunded, nothing runs.
		refund("pi_rest", "evt_r1", 2500, false), refund("pi_rest", "evt_r2", 5000, false), refund("pi_rest", "evt_r3", 12400, true),
		paid("pi_rest"),
		refund("pi_late", "evt_l1", 400, false), refund("pi_late", "evt_l1", 400, false), refund("pi_late", "evt_l2", 12400, true),
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
			h.send(paid(k))
			h.waitStates("dead-lettered", 30*time.Second, allStatus([]string{k}, StatusDeadLettered))
			h.send(tt.ev(k))
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

// refundUpdate is a charge.refund.updated event of the order's refund.
func refundUpdate(key, id, status string, amount int64) event {
	return event{key: key, typ: EventRefundUpdated, id: id, object: "re_" + key, fields: map[string]any{
		"object": "refund", "status": status, "failure_reason": "expired_or_canceled_card", "amount": amount, "currency": "eur", "payment_intent": key}}
}

// refundOf is a charge.refunded event of the order's charge, with amount
// refunded so far of 124.00 EUR.
func refundOf(key, id string, refunded int64) event {
	return event{key: key, typ: EventChargeRefunded, id: id, object: "ch_" + key, charge: &charge{amount: 12400, refunded: refunded, full: refunded >= 12400}}
}

// A refund that failed gives its amount back to the charge, so the shop's
// refund made again brings amount_refunded back to where it was. That is a
// change of its own, not a retry of the first: it is applied with its
// alert, and refund_failed goes when the charge is refunded as far again.
// The first refund's event delivered again changes nothing.
func TestRefundMadeAgainAfterItFailed(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	cfg := h.config()
	r := h.start(cfg, f.providers())
	h.send(paid("pi_again_full"), paid("pi_again_part"), paid("pi_again_less"), paid("pi_again_unknown"))
	h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_again_full", "pi_again_part", "pi_again_less", "pi_again_unknown"}, StatusCompleted))
	noAmounts := func(id string) event {
		return event{key: "pi_again_unknown", typ: EventChargeRefunded, id: id, object: "ch_pi_again_unknown"}
	}
	h.send(
		refundOf("pi_again_full", "evt_a1", 12400), refundUpdate("pi_again_full", "evt_a2", "failed", 12400),
		refundOf("pi_again_full", "evt_a3", 12400), refundOf("pi_again_full", "evt_a1", 12400),
		refundOf("pi_again_part", "evt_b1", 1000), refundUpdate("pi_again_part", "evt_b2", "failed", 1000),
		refundOf("pi_again_part", "evt_b3", 1000),
		refundOf("pi_again_less", "evt_c1", 3000), refundUpdate("pi_again_less", "evt_c2", "canceled", 3000),
		refundOf("pi_again_less", "evt_c3", 1000),
		noAmounts("evt_d1"), refundUpdate("pi_again_unknown", "evt_d2", "failed", 12400), noAmounts("evt_d3"),
		paid("pi_marker_again"))
	states := h.waitStates("refunds applied", 30*time.Second, func(m map[string]*State) bool {
		has := func(k, id string) bool { return m[k] != nil && slices.Contains(m[k].AppliedEvents, id) }
		return has("pi_again_full", "evt_a3") && has("pi_again_part", "evt_b3") && has("pi_again_less", "evt_c3") && has("pi_again_unknown", "evt_d3") &&
			m["pi_marker_again"] != nil && m["pi_marker_again"].Status == StatusCompleted
	})
	h.waitHandled(cfg.Group, 30*time.Second)
	r.stop(t)

	failed := func(amount, why string) string {
		return "a refund of " + amount + " did not go through (" + why + ": expired or canceled card): the customer was not paid back; pay back another way"
	}
	const after = "order refunded after it shipped: stop or recall the shipment and credit the invoice by hand"
	for _, tt := range []struct {
		key        string
		flagStays  bool
		wantAlerts []string
	}{
		{"pi_again_full", false, []string{after, failed("124.00 EUR", "failed"),
			after + " (made again after a refund that did not go through: the customer is paid back, refund_failed cleared)"}},
		{"pi_again_part", false, []string{
			"order partially refunded after it shipped: 10.00 EUR of 124.00 EUR refunded so far; credit it on the invoice by hand",
			failed("10.00 EUR", "failed"),
			"order partially refunded after it shipped: 10.00 EUR of 124.00 EUR refunded so far; credit it on the invoice by hand (made again after a refund that did not go through: the customer is paid back, refund_failed cleared)"}},
		{"pi_again_less", true, []string{
			"order partially refunded after it shipped: 30.00 EUR of 124.00 EUR refunded so far; credit it on the invoice by hand",
			failed("30.00 EUR", "canceled"),
			"order partially refunded after it shipped: 10.00 EUR of 124.00 EUR refunded so far; credit it on the invoice by hand (made again after a refund that did not go through, 30.00 EUR refunded before it: refund_failed stays)"}},
		// Without the charge's amounts nothing says the customer is paid
		// back: the refund is applied (a whole one, the safe side), the
		// flag stays.
		{"pi_again_unknown", true, []string{after, failed("124.00 EUR", "failed"),
			after + " (made after a refund that did not go through: refund_failed stays)"}},
	} {
		st := states[tt.key]
		if st.Status != StatusCompleted || st.HasFlag(FlagRefundFailed) != tt.flagStays {
			t.Errorf("%s: status %s flags %v, want completed with refund_failed %v", tt.key, st.Status, st.Flags, tt.flagStays)
		}
		if got := f.alertTexts(tt.key); !slices.Equal(got, tt.wantAlerts) {
			t.Errorf("%s alerts:\n got %q\nwant %q", tt.key, got, tt.wantAlerts)
		}
	}
}

// A refund of the whole charge that arrives while the order is
// dead-lettered before shipping is not parked behind the failure, where
// the usual replay (failure first) would ship what was paid back: it stops
// the chain at once, status refunded, one alert naming the dead letter.
// Replaying the order's dead letters after that ships nothing.
func TestRefundWhileDeadLetteredStopsTheChain(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	broken := f.breakStep(StepShipping)
	h.start(h.config(), f.providers())
	k := "pi_dead_refund"
	h.send(paid(k), event{key: k, typ: EventCheckoutCompleted, id: "evt_cs_dead", object: "cs_dead_refund", paymentStatus: "paid"})
	h.waitStates("parked", 30*time.Second, allStatus([]string{k}, StatusParked))
	h.send(refundOf(k, "evt_full_dead", 12400))
	st := h.waitStates("refunded", 30*time.Second, allStatus([]string{k}, StatusRefunded))[k]
	dl := h.readAll(h.names.DLQ)
	if len(dl) != 2 {
		t.Fatalf("%d dead letters, want 2 (the shipping failure and the parked checkout event; the refund is not parked)", len(dl))
	}
	if st.DeadLetter != nil || st.LastError != "" {
		t.Errorf("dead letter %+v, last error %q left on a refunded order", st.DeadLetter, st.LastError)
	}
	alerts := f.alertTexts(k)
	want := "order refunded before shipping while dead-lettered (shipping at " + topics.Source(dl[0].Partition, dl[0].Offset) +
		"): the chain stopped and its dead letters need no replay; check any steps already done"
	if len(alerts) == 0 || alerts[len(alerts)-1] != want {
		t.Errorf("alerts %q, want the last %q", alerts, want)
	}

	broken.Store(false)
	h.replayLetter(dl[0])
	h.replayLetter(dl[1])
	st = h.waitStates("replays recorded", 30*time.Second, func(m map[string]*State) bool {
		return m[k] != nil && len(m[k].Replays) == 2
	})[k]
	if st.Status != StatusRefunded {
		t.Errorf("status %s after the replays, want refunded", st.Status)
	}
	for _, step := range []string{StepShipping, StepInvoice, StepEmail} {
		if n := f.createdCount(step, k); n != 0 {
			t.Errorf("%s created %d times for a refunded order", step, n)
		}
	}
}

// A refund delivered twice while the order is dead-lettered is parked
// twice. Replayed, it is applied once; its second copy is recorded as
// replayed, so its dead letter resolves and the next replay skips it.
// Replayed while the order is dead-lettered again, the copy resumes the
// chain as any replayed record does.
func TestDuplicateParkedRefundIsResolvedByItsReplay(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	broken := f.breakStep(StepEmail)
	h.start(h.config(), f.providers())
	k := "pi_dup_parked"
	h.send(paid(k), refundOf(k, "evt_dup_refund", 1000), refundOf(k, "evt_dup_refund", 1000))
	h.waitStates("parked twice", 30*time.Second, func(m map[string]*State) bool {
		return m[k] != nil && m[k].Status == StatusParked && m[k].NextOffset > 0 && len(h.readAll(h.names.DLQ)) == 3
	})
	dl := h.readAll(h.names.DLQ)
	src := func(i int) string { return topics.Source(dl[i].Partition, dl[i].Offset) }

	// The first copy, replayed with the email still failing: applied, and
	// the order is dead-lettered again.
	h.replayLetter(dl[1])
	h.waitStates("refund applied, dead-lettered again", 30*time.Second, func(m map[string]*State) bool {
		return m[k] != nil && slices.Contains(m[k].Replays, src(1)) && m[k].Status == StatusDeadLettered
	})
	// The second copy, replayed once the email works: the chain resumes.
	broken.Store(false)
	h.replayLetter(dl[2])
	st := h.waitStates("completed", 30*time.Second, allStatus([]string{k}, StatusCompleted))[k]
	if !slices.Contains(st.Replays, src(2)) {
		t.Errorf("replays %v, want the second copy %s recorded", st.Replays, src(2))
	}
	if n := f.createdCount(StepEmail, k); n != 1 {
		t.Errorf("email created %d times, want 1", n)
	}
	var refundAlerts int
	for _, a := range f.alertTexts(k) {
		if strings.HasPrefix(a, "order partially refunded") {
			refundAlerts++
		}
	}
	if refundAlerts != 1 {
		t.Errorf("%d refund alerts, want 1: %q", refundAlerts, f.alertTexts(k))
	}
}

// A refund of the whole charge queued behind the order's record is acted
// on before the label is booked: shipping, about to be tried (again),
// yields to it, the record ends with the order in progress, and the refund
// stops the chain. Here once while shipping retries a provider outage
// (the refund comes during the backoff) and once when both records are
// fetched together.
func TestShippingYieldsToAQueuedRefund(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	down := &atomic.Bool{}
	down.Store(true)
	const retrying, together = "pi_yield_retrying", "pi_yield_together"
	f.setFail(func(step, order string, _ int) error {
		if step == StepShipping && order == retrying && down.Load() {
			return transient(step)
		}
		return nil
	})
	f.mu.Lock()
	f.latency = func(step, order string) time.Duration {
		if step == StepDetails && order == together {
			return 300 * time.Millisecond // the refund is queued by then
		}
		return 0
	}
	f.mu.Unlock()
	cfg := h.config()
	cfg.Retry = RetryPolicy{BaseDelay: time.Second, MaxDelay: time.Second, MaxAttempts: 10}
	// Produced before the processor starts: fetched in one go.
	h.send(paid(together), refundOf(together, "evt_yield_together", 12400))
	r := h.start(cfg, f.providers())
	h.send(paid(retrying))
	eventually(t, "shipping tried", 30*time.Second, func() bool { return f.attemptCount(StepShipping, retrying) >= 1 })
	h.send(refundOf(retrying, "evt_yield_retrying", 12400))
	down.Store(false)
	states := h.waitStates("refunded", 30*time.Second, allStatus([]string{retrying, together}, StatusRefunded))
	h.waitHandled(cfg.Group, 30*time.Second)
	r.stop(t)
	for k, tries := range map[string]int{retrying: 1, together: 0} {
		if n := f.attemptCount(StepShipping, k); n != tries {
			t.Errorf("%s: shipping tried %d times, want %d (none after the refund was queued)", k, n, tries)
		}
		for _, step := range []string{StepInvoice, StepEmail} {
			if n := f.attemptCount(step, k); n != 0 {
				t.Errorf("%s: %s called %d times for an order refunded before shipping", k, step, n)
			}
		}
		if st := states[k]; st.HasFlag(FlagRefundedAfterShipping) || len(st.AppliedEvents) != 2 {
			t.Errorf("%s: flags %v applied %v, want no refunded_after_shipping and both events applied", k, st.Flags, st.AppliedEvents)
		}
		if got, want := f.alertTexts(k), []string{"order refunded before shipping: the chain stopped; check any steps already done"}; !slices.Equal(got, want) {
			t.Errorf("%s alerts %q, want %q", k, got, want)
		}
	}
}
