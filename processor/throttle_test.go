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

// A call held back by the provider's limit (nothing sent: Airtable's
// penalty, a pause longer than the call's deadline) spends no attempt:
// held back more often than the attempts allow, with a Retry-After longer
// than --retry-max-delay, the order waits each one out whole and completes.
func TestHeldBackCallsSpendNoAttempt(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 1)
	f := newFakes()
	var heldAt []time.Time
	f.setFail(func(step, _ string, attempt int) error {
		if step == StepProductionLog && attempt <= 5 {
			f.mu.Lock()
			heldAt = append(heldAt, time.Now())
			f.mu.Unlock()
			return &integrations.Error{Provider: "fake", Op: "upsert order", Class: integrations.Transient, RetryAfter: 100 * time.Millisecond,
				Msg: "rate limited; waiting out the penalty", Err: integrations.ErrThrottled}
		}
		return nil
	})
	cfg := h.config() // 3 attempts, at most 40 ms between them
	h.start(cfg, f.providers())
	h.send(paid("pi_held_back"))
	st := h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_held_back"}, StatusCompleted))["pi_held_back"]
	if ss := st.Step(StepProductionLog); ss.Attempts != 0 {
		t.Errorf("attempts spent %d, want 0", ss.Attempts)
	}
	if dl := h.readAll(h.names.DLQ); len(dl) != 0 {
		t.Errorf("%d dead letters, want none", len(dl))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := 1; i < len(heldAt); i++ {
		if gap := heldAt[i].Sub(heldAt[i-1]); gap < 100*time.Millisecond {
			t.Errorf("call %d made %v after the one held back, before its Retry-After of 100ms", i+1, gap)
		}
	}
}
