package alertbatch

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

func TestSendWithRetry(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	transient := &integrations.Error{Provider: "chat", Op: "send", Class: integrations.Transient, RetryAfter: 10 * time.Millisecond}
	permanent := &integrations.Error{Provider: "chat", Op: "send", Class: integrations.Permanent}
	for _, tt := range []struct {
		name      string
		errs      []error // the answers of the calls in turn; nil: success
		attempts  int
		wantCalls int
		wantErr   error
	}{
		{"success at once", []error{nil}, 3, 1, nil},
		{"a 429 then success", []error{transient, nil}, 3, 2, nil},
		{"transient until the attempts run out", []error{transient, transient, transient, nil}, 3, 3, transient},
		{"permanent is not retried", []error{permanent, nil}, 3, 1, permanent},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := SendWithRetry(context.Background(), log, tt.attempts, func(context.Context) error {
				calls++
				return tt.errs[calls-1]
			})
			if calls != tt.wantCalls || !errors.Is(err, tt.wantErr) {
				t.Errorf("%d calls, err %v; want %d calls, err %v", calls, err, tt.wantCalls, tt.wantErr)
			}
		})
	}
}

func TestSendWithRetryStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	// No Retry-After: the backoff (one second) is cut short by the cancel.
	fail := &integrations.Error{Provider: "chat", Op: "send", Class: integrations.Transient}
	err := SendWithRetry(ctx, slog.New(slog.DiscardHandler), 5, func(context.Context) error {
		calls++
		cancel()
		return fail
	})
	if calls != 1 || !errors.Is(err, fail) {
		t.Errorf("%d calls, err %v; want 1 call and the send's error", calls, err)
	}
}

func TestRenderKeepsEscapesWhole(t *testing.T) {
	m := Markup{Bold: func(s string) string { return "[" + s + "]" }, Escapes: map[rune]string{'&': "&amp;"}}
	s := NewSummary()
	s.Add(integrations.Alert{Step: "shipping", OrderID: "pi_1", Text: "a&b&c"})
	if got, want := Render(s, m, 1000), "[orderflow alert] · step [shipping]\norder OF-1\na&amp;b&amp;c"; got != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
	// Alerts name an order by its OF- number. Cut inside the reason: the
	// first two lines take 46 units; the
	// third has room for 7: "a&amp;" and the ellipsis. With room for 6,
	// "&amp;" is left out whole instead of being split.
	if got, want := Render(s, m, 54), "[orderflow alert] · step [shipping]\norder OF-1\na&amp;…"; got != want {
		t.Errorf("Render cut at 54 = %q, want %q", got, want)
	}
	if got, want := Render(s, m, 53), "[orderflow alert] · step [shipping]\norder OF-1\na…"; got != want {
		t.Errorf("Render cut at 53 = %q, want %q", got, want)
	}
}

// An alert about an order at no step (a refund after shipping) names no
// step, rather than a made-up one.
func TestRenderAlertAtNoStep(t *testing.T) {
	m := Markup{Bold: func(s string) string { return "[" + s + "]" }}
	s := NewSummary()
	s.Add(integrations.Alert{OrderID: "pi_3QcoupAAAA1", Text: "order refunded after it shipped"})
	if got, want := Render(s, m, 1000), "[orderflow alert]\norder OF-QCOUPAAAA1\norder refunded after it shipped"; got != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
	s.Add(integrations.Alert{OrderID: "pi_3QcoupBBBB2", Text: "order refunded after it shipped"})
	s.Add(integrations.Alert{OrderID: "pi_3QshipCCCC3", Step: "shipping", Text: "postnord: HTTP 400"})
	want := "[orderflow: 3 alerts]\n\n[2 about orders]: OF-QCOUPAAAA1, OF-QCOUPBBBB2\n• order refunded after it shipped (×2)\n\n" +
		"[1 at step shipping]: OF-QSHIPCCCC3\n• postnord: HTTP 400"
	if got := Render(s, m, 1000); got != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
}
