package processor

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// A call refused before anything was sent (the client could not turn the
// order into a request) certainly created nothing: no intent is left in
// doubt, so its replay neither looks it up nor flags a possible duplicate.
// A permanent error without that knowledge (an answer that could not be
// read) keeps the intent.
func TestRefusedBeforeSendingLeavesNoIntent(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	f.fail = func(step, order string, _ int) error {
		if step != StepShipping {
			return nil
		}
		if order == "pi_notsent" {
			return integrations.NotSentf("fake", "book shipment", "order %s: shipping address lacks postal code", order)
		}
		return integrations.Permanentf("fake", "book shipment", "booked item 1 but the response has no label")
	}
	h.start(h.config(), f.providers())
	h.send(paid("pi_notsent"), paid("pi_unread"))
	states := h.waitStates("dead-lettered", 30*time.Second, allStatus([]string{"pi_notsent", "pi_unread"}, StatusDeadLettered))
	if ss := states["pi_notsent"].Steps[StepShipping]; ss.Intent != nil || ss.Lease != nil {
		t.Errorf("refused before sending: intent %v lease %v, want none", ss.Intent, ss.Lease)
	}
	if ss := states["pi_unread"].Steps[StepShipping]; ss.Intent == nil {
		t.Errorf("an answer that could not be read: the intent went, want it kept in doubt")
	}
}
