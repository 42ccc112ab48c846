package console

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/processor"
)

func TestStepViewHeld(t *testing.T) {
	until := time.Date(2026, 5, 7, 12, 1, 0, 0, time.UTC)
	st := &processor.State{OrderID: "pi_held", Status: processor.StatusInProgress, Steps: map[string]*processor.StepState{
		"crm": {HeldUntil: &until, HeldReason: "zoho: upsert contact: HTTP 429: TOO_MANY_REQUESTS"},
	}}
	v := (&Server{}).stepView("crm", st, nil)
	if v.Status != "held until 2026-05-07T12:01:00Z (provider quota used up; no attempt spent)" || v.Class != "waiting" ||
		v.LastError != "zoho: upsert contact: HTTP 429: TOO_MANY_REQUESTS" {
		t.Errorf("step view = %+v", v)
	}
}
