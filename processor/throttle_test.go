package processor

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// A provider answering 429 (or a call held back by its limit) is answering:
// many orders throttled at once do not open the step's circuit, and they
// complete once the provider takes them. The same number of 500s opens it.
func TestThrottledCallsDoNotOpenTheCircuit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		err   func() error
		opens bool
	}{
		{"429", func() error {
			return &integrations.Error{Provider: "fake", Op: "upsert", Status: 429, Class: integrations.Transient, RetryAfter: 10 * time.Millisecond}
		}, false},
		{"held back", func() error {
			return &integrations.Error{Provider: "fake", Op: "upsert", Class: integrations.Transient, Err: fmt.Errorf("%w: context deadline exceeded", integrations.ErrThrottled)}
		}, false},
		{"500", func() error {
			return &integrations.Error{Provider: "fake", Op: "upsert", Status: 500, Class: integrations.Transient}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newLogicHarness(t, 3)
			f := newFakes()
			f.setFail(func(step, _ string, attempt int) error {
				if step == StepCRM && attempt <= 2 {
					return tc.err()
				}
				return nil
			})
			cfg := h.config()
			cfg.Retry.MaxAttempts = 4
			h.start(cfg, f.providers())
			var ids []string
			for i := range 8 {
				id := fmt.Sprintf("pi_thr_%s_%d", strings.ReplaceAll(tc.name, " ", ""), i)
				ids = append(ids, id)
				h.send(paid(id))
			}
			h.waitStates("completed", 60*time.Second, allStatus(ids, StatusCompleted))
			opened := false
			f.mu.Lock()
			for _, a := range f.alerts {
				if strings.Contains(a.Text, "is failing for every order") {
					opened = true
				}
			}
			f.mu.Unlock()
			if opened != tc.opens {
				t.Errorf("circuit opened %v, want %v", opened, tc.opens)
			}
		})
	}
}
