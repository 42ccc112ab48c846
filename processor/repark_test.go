package processor

import (
	"slices"
	"testing"
	"time"

	"github.com/orderflow/orderflow/topics"
)

// Replaying an order's two dead letters (its failure and its second payment
// event parked behind it) while the failure persists: the first replay
// fails again with one call and one new dead letter; the second, replayed
// from a letter older than that one, is parked behind it again, with no
// call and no alert. Once the provider is back, replaying the new failure
// completes the order, with one label.
func TestReplayOfBothLettersWhileTheFailurePersists(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	broken := f.breakStep(StepShipping)
	cfg := h.config()
	cfg.Breaker.MinOrders = 10
	h.start(cfg, f.providers())
	k := "pi_both_letters"
	second := event{key: k, typ: EventAsyncPaymentSucceded, id: "evt_second_" + k, object: "cs_" + k, fields: map[string]any{"payment_intent": k, "payment_status": "paid"}}
	h.send(paid(k), second)
	h.waitStates("dead-lettered and parked", 30*time.Second, func(m map[string]*State) bool {
		return m[k] != nil && m[k].Status == StatusParked && len(h.readAll(h.names.DLQ)) == 2
	})
	dl := h.readAll(h.names.DLQ)
	if c, _ := header(dl[0], topics.HeaderDLQClass); c != topics.ClassPermanent {
		t.Fatalf("first letter class %q", c)
	}
	if c, _ := header(dl[1], topics.HeaderDLQClass); c != topics.ClassParked {
		t.Fatalf("second letter class %q", c)
	}
	calls := f.attemptCount(StepShipping, k)
	alerts := len(f.alertTexts(k))

	h.replayLetter(dl[0])
	h.replayLetter(dl[1])
	h.waitStates("both replays handled", 30*time.Second, func(m map[string]*State) bool {
		return m[k] != nil && len(m[k].Replays) == 2
	})
	dl = h.readAll(h.names.DLQ)
	if len(dl) != 4 {
		t.Fatalf("%d dead letters after the replay, want 4", len(dl))
	}
	classes := []string{}
	for _, d := range dl[2:] {
		c, _ := header(d, topics.HeaderDLQClass)
		classes = append(classes, c)
	}
	if !slices.Equal(classes, []string{topics.ClassPermanent, topics.ClassParked}) {
		t.Errorf("new letters' classes %v, want [permanent parked]", classes)
	}
	if got := f.attemptCount(StepShipping, k) - calls; got != 1 {
		t.Errorf("the replay called shipping %d times, want 1", got)
	}
	if got := len(f.alertTexts(k)) - alerts; got != 1 {
		t.Errorf("the replay raised %d alerts, want 1: %q", got, f.alertTexts(k))
	}
	st := h.waitStates("parked", 10*time.Second, allStatus([]string{k}, StatusParked))[k]
	if st.DeadLetter == nil || st.DeadLetter.Offset != dl[2].Offset {
		t.Errorf("the order's dead letter %+v, want the new failure at offset %d", st.DeadLetter, dl[2].Offset)
	}

	broken.Store(false)
	h.replayLetter(dl[2])
	h.waitStates("completed", 30*time.Second, allStatus([]string{k}, StatusCompleted))
	if n := f.createdCount(StepShipping, k); n != 1 {
		t.Errorf("shipping created %d times, want 1", n)
	}
}
