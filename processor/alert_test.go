package processor

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics"
)

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// heldAlerter blocks every Alert until release is closed, and records them.
type heldAlerter struct {
	got     chan integrations.Alert
	release chan struct{}
	mu      sync.Mutex
	sent    []integrations.Alert
}

func (h *heldAlerter) Alert(ctx context.Context, a integrations.Alert) error {
	h.got <- a
	<-h.release
	h.mu.Lock()
	h.sent = append(h.sent, a)
	h.mu.Unlock()
	return nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A burst of alerts while the alerter is stuck takes one goroutine and a
// bounded queue, not a goroutine each; each alert is logged once, naming
// the order by its OF- number.
func TestAlertsAreBoundedAndLoggedOnce(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	h := &heldAlerter{got: make(chan integrations.Alert, 2*alertQueueSize), release: make(chan struct{})}
	cfg := DefaultConfig(topics.New("a."))
	cfg.AlertTimeout = 10 * time.Second
	p := &Processor{cfg: cfg, m: m, log: slog.New(slog.NewTextHandler(&logs, nil)), prov: Providers{Alerter: h}}

	before := runtime.NumGoroutine()
	p.alert(integrations.Alert{OrderID: "pi_3QBpzb3EiYC4YQ7NwXuOfIyK", Step: "shipping", Text: "first"})
	<-h.got // the sender holds the first one
	const extra = 5
	for range alertQueueSize + extra {
		p.alert(integrations.Alert{OrderID: "pi_x", Step: "crm", Text: "burst"})
	}
	if n := runtime.NumGoroutine(); n > before+1 {
		t.Errorf("%d goroutines after %d alerts, %d before: want one sender", n, alertQueueSize+extra+1, before)
	}
	if got := counterValue(m.alertsDropped); got != extra {
		t.Errorf("dropped %v, want %d (the queue holds %d)", got, extra, alertQueueSize)
	}
	if got := counterValue(m.alerts); got != alertQueueSize+extra+1 {
		t.Errorf("alerts counted %v, want %d", got, alertQueueSize+extra+1)
	}
	close(h.release)
	p.waitAlerts(10 * time.Second)
	h.mu.Lock()
	sent := len(h.sent)
	h.mu.Unlock()
	if sent != alertQueueSize+1 {
		t.Errorf("sent %d, want %d (all queued ones, before waitAlerts returned)", sent, alertQueueSize+1)
	}
	// After the stop an alert is logged and counted as dropped, not sent.
	p.alert(integrations.Alert{Step: "crm", Text: "late"})
	if got := counterValue(m.alertsDropped); got != extra+1 {
		t.Errorf("dropped after stop %v, want %d", got, extra+1)
	}

	out := logs.String()
	if n := strings.Count(out, "msg=alert "); n != alertQueueSize+extra+2 {
		t.Errorf("%d alert log lines, want one per alert (%d)", n, alertQueueSize+extra+2)
	}
	if !strings.Contains(out, "msg=alert order=OF-7NWXUOFIYK order_id=pi_3QBpzb3EiYC4YQ7NwXuOfIyK step=shipping text=first") {
		t.Errorf("first alert's log line does not name the order by its number:\n%s", out[:min(len(out), 400)])
	}
}

func TestAttemptsPlural(t *testing.T) {
	for n, want := range map[int]string{0: "0 attempts", 1: "1 attempt", 2: "2 attempts", 5: "5 attempts"} {
		if got := attempts(n); got != want {
			t.Errorf("attempts(%d) = %q, want %q", n, got, want)
		}
	}
}
