package processor

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/orderflow/orderflow/topics"
	"github.com/orderflow/orderflow/topics/tracing"
)

// A Checkout order whose payment succeeds later sends two events, each in
// the trace of its own webhook request. The order's trace is the first
// one's: the second record is handled in it, with a link to its own trace,
// and every log line of the order names the first trace.
func TestTraceOfALaterEvent(t *testing.T) {
	t.Parallel()
	const (
		first  = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		second = "00-5b8aa5a2d2c872e8321cf37308d69df2-051581bf3cb55c13-01"
	)
	h := newLogicHarness(t, 1)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	cfg := h.config()
	cfg.Tracing = tracing.New(tp)
	var logs syncBuffer
	p, err := New(cfg, newFakes().providers(), []kgo.Opt{kgo.SeedBrokers(h.brokers...)},
		slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	h.send(event{key: "pi_tr", typ: EventCheckoutCompleted, id: "evt_cs_tr", object: "cs_tr", paymentStatus: "unpaid",
		headers: map[string]string{topics.HeaderTraceParent: first}})
	h.waitStates("awaiting payment", 30*time.Second, allStatus([]string{"pi_tr"}, StatusAwaitingPayment))
	h.send(event{key: "pi_tr", typ: EventPaymentSucceeded, id: "evt_pi_tr", object: "pi_tr",
		headers: map[string]string{topics.HeaderTraceParent: second}})
	st := h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_tr"}, StatusCompleted))["pi_tr"]
	if st.TraceParent != first || st.TraceID() != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("state traceparent %q (trace id %q), want the first event's %s", st.TraceParent, st.TraceID(), first)
	}

	// Both records' spans end once their handling returns.
	var procs []sdktrace.ReadOnlySpan
	deadline := time.Now().Add(30 * time.Second)
	for len(procs) < 2 && time.Now().Before(deadline) {
		procs = procs[:0]
		for _, s := range rec.Ended() {
			if s.Name() == tracing.SpanProcess {
				procs = append(procs, s)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(procs) != 2 {
		t.Fatalf("%d record spans, want 2", len(procs))
	}
	for _, s := range procs {
		if got := s.SpanContext().TraceID().String(); got != "0af7651916cd43dd8448eb211c80319c" {
			t.Errorf("record span of %s in trace %s, want the first event's", attrOf(s, tracing.AttrEventID), got)
		}
	}
	later := procs[1]
	if attrOf(later, tracing.AttrEventID) != "evt_pi_tr" {
		later = procs[0]
	}
	if later.Parent().SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("the later event's span has parent %s, want the first event's b7ad6b7169203331", later.Parent().SpanID())
	}
	if ls := later.Links(); len(ls) != 1 || ls[0].SpanContext.TraceID().String() != "5b8aa5a2d2c872e8321cf37308d69df2" ||
		ls[0].SpanContext.SpanID().String() != "051581bf3cb55c13" || len(ls[0].Attributes) != 1 || ls[0].Attributes[0].Value.AsString() != "event" {
		t.Errorf("the later event's span links %v, want one link (event) to 5b8aa5a2…/051581bf3cb55c13", ls)
	}
	steps := 0
	for _, s := range rec.Ended() {
		if strings.HasPrefix(s.Name(), tracing.SpanStepPrefix) {
			steps++
			if s.Parent().SpanID() != later.SpanContext().SpanID() {
				t.Errorf("%s is not under the later event's record span", s.Name())
			}
		}
	}
	if steps != len(Chain) {
		t.Errorf("%d step spans, want %d (one attempt per step)", steps, len(Chain))
	}

	// Every log line of the order carries the order's trace id.
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["order_id"] != "pi_tr" {
			continue
		}
		n++
		if m["trace_id"] != "0af7651916cd43dd8448eb211c80319c" {
			t.Errorf("log line without the order's trace id: %s", line)
		}
	}
	if n < 2 {
		t.Errorf("%d log lines of the order, want at least the awaiting-payment and a step line", n)
	}
}

func attrOf(s sdktrace.ReadOnlySpan, k attribute.Key) string {
	for _, a := range s.Attributes() {
		if a.Key == k {
			return a.Value.Emit()
		}
	}
	return ""
}
