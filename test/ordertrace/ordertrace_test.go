// Package ordertrace checks the spans of one order end to end: the real
// gateway and processor on the test Kafka, the real provider clients
// against the simulator, and an in-memory span recorder.
package ordertrace

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stripe/stripe-go/v76/webhook"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/postnord"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/dlq"
	"github.com/orderflow/orderflow/test/harness"
	"github.com/orderflow/orderflow/test/testenv"
	"github.com/orderflow/orderflow/topics/tracing"
)

const (
	webhookSecret = "whsec_ordertrace"
	nvCustomerKey = "ordertrace-customer-key"
	nvPartnerKey  = "ordertrace-partner-key"

	// The traceparent the webhook request brings (an upstream trace).
	upstreamTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	upstreamParent = "00f067aa0ba902b7"
	orderKey       = "pi_3TraceOrder0000000001"
)

// failFirstBooking answers the first PostNord booking with a 503, as
// PostNord does when it is briefly unavailable, and passes every other
// request to the simulator.
type failFirstBooking struct {
	h      http.Handler
	failed atomic.Bool
}

func (f *failFirstBooking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == postnord.BookingPath && f.failed.CompareAndSwap(false, true) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"message":"Service Unavailable","compositeFault":{"faults":[{"faultCode":"API-503","explanationText":"try again"}]}}`)
		return
	}
	f.h.ServeHTTP(w, r)
}

// TestOneTracePerOrder sends one order through the gateway with an
// upstream traceparent. Its shipping booking fails once (a retry), its
// email is rejected (a dead letter), and the dead letter is replayed once
// the simulator accepts emails again. Every span of the order must be in
// the upstream trace, in the structure DESIGN.md ("Tracing") describes.
func TestOneTracePerOrder(t *testing.T) {
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers, 3)
	seeds := strings.Split(brokers, ",")

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := tracing.New(tp)

	s, err := sim.New(sim.Config{NetvisorCustomerKey: nvCustomerKey, NetvisorPartnerKey: nvPartnerKey})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(&failFirstBooking{h: s.Handler()})
	t.Cleanup(func() { simSrv.Close(); _ = s.Close() })
	ctl := harness.Sim{URL: simSrv.URL}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := ctl.SetFault(ctx, harness.Fault{Step: "email", Mode: "reject", Rate: 1}); err != nil {
		t.Fatal(err)
	}

	// The provider clients trace their calls, as `orderflow processor`
	// makes them when tracing is on.
	base := integrations.Transport
	integrations.Transport = tr.Transport(base)
	t.Cleanup(func() { integrations.Transport = base })
	prov := harness.Providers(t, simSrv.URL, nvCustomerKey, nvPartnerKey)

	log := slog.New(slog.DiscardHandler)
	if os.Getenv("ORDERFLOW_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := processor.DefaultConfig(names)
	cfg.Group = names.Prefix + "processor"
	cfg.CommitInterval = 100 * time.Millisecond
	cfg.Retry.BaseDelay, cfg.Retry.MaxDelay = 20*time.Millisecond, 100*time.Millisecond
	cfg.Tracing = tr
	harness.RunProcessor(t, cfg, prov, seeds, log, prometheus.NewRegistry())

	gcfg := gateway.Config{Topic: names.Orders, Secrets: []string{webhookSecret}, Tracing: tr}
	prod, err := gateway.NewKafkaProducer(gcfg, kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prod.Close(context.Background()) })
	gw, err := gateway.New(gcfg, prod, gateway.NewMemoryDeduper(0), log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	gwSrv := httptest.NewServer(gw.Handler())
	t.Cleanup(gwSrv.Close)

	states, err := harness.FollowStates(seeds, names.State)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(states.Close)

	postEvent(t, gwSrv.URL+gateway.WebhookPath, "00-"+upstreamTrace+"-"+upstreamParent+"-01")
	if _, err := states.WaitAll(ctx, []string{orderKey}, func(st *processor.State) bool { return st.Status == processor.StatusDeadLettered }); err != nil {
		t.Fatalf("order not dead-lettered at email: %v", err)
	}

	// Replay the dead letter once the simulator takes emails again.
	if err := ctl.ClearFaults(ctx); err != nil {
		t.Fatal(err)
	}
	dc, err := dlq.New(names, []kgo.Opt{kgo.SeedBrokers(seeds...)})
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	dc.SetTracing(tr)
	res, err := dc.Run(ctx, dlq.ReplayRequest{Filter: dlq.Filter{Orders: []string{orderKey}}, Rate: 100})
	if err != nil || res.Summary.Replayed != 1 {
		t.Fatalf("replay: %+v, %v", res.Summary, err)
	}
	if _, err := states.WaitAll(ctx, []string{orderKey}, func(st *processor.State) bool { return st.Status == processor.StatusCompleted }); err != nil {
		t.Fatalf("order not completed after the replay: %v", err)
	}
	final := states.Get(orderKey)
	if got := final.TraceID(); got != upstreamTrace {
		t.Errorf("state trace id = %q, want %s", got, upstreamTrace)
	}

	// The replayed record's span ends just after its last state write.
	var spans []sdktrace.ReadOnlySpan
	for {
		spans = rec.Ended()
		if findSpan(spans, func(s sdktrace.ReadOnlySpan) bool {
			return s.Name() == tracing.SpanProcess && attr(s, tracing.AttrReplay) != ""
		}) != nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the replayed record's span never ended; %d spans:\n%s", len(spans), dump(spans))
		case <-time.After(20 * time.Millisecond):
		}
	}
	checkSpans(t, spans, names.Orders)
}

func checkSpans(t *testing.T, spans []sdktrace.ReadOnlySpan, ordersTopic string) {
	t.Helper()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	parentOf := func(s sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan { return byID[s.Parent().SpanID()] }
	defer func() {
		if t.Failed() {
			t.Logf("spans:\n%s", dump(spans))
		}
	}()

	// Gateway: the server span continues the upstream traceparent.
	gws := all(spans, func(s sdktrace.ReadOnlySpan) bool { return s.Name() == "POST /webhooks/stripe" })
	if len(gws) != 1 {
		t.Fatalf("%d gateway spans, want 1", len(gws))
	}
	gwSpan := gws[0]
	if gwSpan.SpanKind() != trace.SpanKindServer || gwSpan.SpanContext().TraceID().String() != upstreamTrace ||
		gwSpan.Parent().SpanID().String() != upstreamParent || !gwSpan.Parent().IsRemote() {
		t.Errorf("gateway span: kind %v, trace %s, parent %s (remote %v); want server, %s, %s (remote)", gwSpan.SpanKind(),
			gwSpan.SpanContext().TraceID(), gwSpan.Parent().SpanID(), gwSpan.Parent().IsRemote(), upstreamTrace, upstreamParent)
	}
	if got := attr(gwSpan, tracing.AttrOutcome); got != "queued" {
		t.Errorf("gateway span outcome %q, want queued", got)
	}
	// The record's publish span is the gateway span's child; the
	// processor's receive span, the publish span's.
	pub := findSpan(spans, func(s sdktrace.ReadOnlySpan) bool {
		return s.Name() == ordersTopic+" publish" && s.Parent().SpanID() == gwSpan.SpanContext().SpanID()
	})
	if pub == nil {
		t.Fatalf("no %q span under the gateway span", ordersTopic+" publish")
	}
	recv := findSpan(spans, func(s sdktrace.ReadOnlySpan) bool {
		return s.Name() == ordersTopic+" receive" && s.Parent().SpanID() == pub.SpanContext().SpanID()
	})
	if recv == nil {
		t.Fatalf("no %q span under the publish span", ordersTopic+" receive")
	}

	// The processor: the record's span under the receive span.
	procs := all(spans, func(s sdktrace.ReadOnlySpan) bool { return s.Name() == tracing.SpanProcess })
	if len(procs) != 2 {
		t.Fatalf("%d %q spans, want 2 (the event, the replay)", len(procs), tracing.SpanProcess)
	}
	first, replayed := procs[0], procs[1]
	if attr(first, tracing.AttrReplay) != "" {
		first, replayed = replayed, first
	}
	if first.Parent().SpanID() != recv.SpanContext().SpanID() {
		t.Errorf("the event's %q span has parent %s, want the receive span %s", tracing.SpanProcess, first.Parent().SpanID(), recv.SpanContext().SpanID())
	}
	if got := attr(first, tracing.AttrOrderID); got != orderKey {
		t.Errorf("process span order id %q, want %s", got, orderKey)
	}

	// Every step attempt is in the upstream trace, a child of a record's span.
	attempts := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if !strings.HasPrefix(s.Name(), tracing.SpanStepPrefix) {
			continue
		}
		step := strings.TrimPrefix(s.Name(), tracing.SpanStepPrefix)
		attempts[step] = append(attempts[step], s)
		if s.SpanContext().TraceID().String() != upstreamTrace {
			t.Errorf("step span %s in trace %s, want %s", s.Name(), s.SpanContext().TraceID(), upstreamTrace)
		}
		if p := parentOf(s); p == nil || p.Name() != tracing.SpanProcess {
			t.Errorf("step span %s: parent is not a %q span", s.Name(), tracing.SpanProcess)
		}
		if attr(s, tracing.AttrStep) != step {
			t.Errorf("step span %s has step attribute %q", s.Name(), attr(s, tracing.AttrStep))
		}
	}
	want := map[string][]string{ // step → "attempt result" of each attempt span, in order
		"details":        {"1 ok"},
		"crm":            {"1 ok"},
		"production_log": {"1 ok"},
		"shipping":       {"1 transient", "2 ok"},
		"invoice":        {"1 ok"},
		"email":          {"1 permanent", "1 ok"}, // a replay gives the step a fresh attempt budget
	}
	for step, w := range want {
		var got []string
		for _, s := range attempts[step] {
			got = append(got, attr(s, tracing.AttrAttempt)+" "+attr(s, tracing.AttrResult))
		}
		if strings.Join(got, ", ") != strings.Join(w, ", ") {
			t.Errorf("step %s attempts: %q, want %q", step, got, w)
		}
	}
	if len(attempts) != len(want) {
		t.Errorf("step spans for %d steps, want %d", len(attempts), len(want))
	}
	// The retry: both shipping attempts under the event's record span; the
	// first one's booking answered 503.
	if sh := attempts["shipping"]; len(sh) == 2 {
		for _, s := range sh {
			if s.Parent().SpanID() != first.SpanContext().SpanID() {
				t.Errorf("shipping attempt %s is not under the event's record span", attr(s, tracing.AttrAttempt))
			}
		}
		calls := children(spans, sh[0], trace.SpanKindClient)
		if len(calls) != 1 || attrInt(calls[0], "http.response.status_code") != 503 {
			t.Errorf("first shipping attempt: %d provider calls (%s), want one answered 503", len(calls), dump(calls))
		}
	}
	// Provider calls are children of the attempt that made them.
	for _, step := range []string{"details", "crm", "shipping", "invoice", "email"} {
		for _, s := range attempts[step] {
			if len(children(spans, s, trace.SpanKindClient)) == 0 {
				t.Errorf("step %s attempt %s has no provider call span", step, attr(s, tracing.AttrAttempt))
			}
		}
	}
	// The result of each successful attempt is written in a state write
	// under it.
	for step, ss := range attempts {
		for _, s := range ss {
			if attr(s, tracing.AttrResult) != "ok" {
				continue
			}
			writes := all(children(spans, s, trace.SpanKindProducer), func(w sdktrace.ReadOnlySpan) bool { return w.Name() == tracing.SpanStateWrite })
			if len(writes) == 0 {
				t.Errorf("step %s attempt %s: no %q span under it", step, attr(s, tracing.AttrAttempt), tracing.SpanStateWrite)
			}
		}
	}
	// The dead letter is written under the event's record span.
	if findSpan(spans, func(s sdktrace.ReadOnlySpan) bool {
		return s.Name() == tracing.SpanDeadLetter && s.Parent().SpanID() == first.SpanContext().SpanID() && attr(s, tracing.AttrStep) == "email"
	}) == nil {
		t.Errorf("no %q span for email under the event's record span", tracing.SpanDeadLetter)
	}

	// The replay: a trace of its own linked to the order's; the processor
	// handles the replayed record in the order's trace, linked back.
	reps := all(spans, func(s sdktrace.ReadOnlySpan) bool { return s.Name() == tracing.SpanReplay })
	if len(reps) != 1 {
		t.Fatalf("%d %q spans, want 1", len(reps), tracing.SpanReplay)
	}
	rep := reps[0]
	if rep.SpanContext().TraceID().String() == upstreamTrace || rep.Parent().IsValid() {
		t.Errorf("replay span: trace %s, parent %s; want a new trace (a root span)", rep.SpanContext().TraceID(), rep.Parent().SpanID())
	}
	if !linked(rep, upstreamTrace, "", "dead_letter") {
		t.Errorf("replay span has no link to the order's trace %s: %v", upstreamTrace, rep.Links())
	}
	if replayed.SpanContext().TraceID().String() != upstreamTrace {
		t.Errorf("the replayed record's span is in trace %s, want the order's %s", replayed.SpanContext().TraceID(), upstreamTrace)
	}
	if replayed.Parent().SpanID() != pub.SpanContext().SpanID() {
		t.Errorf("the replayed record's span has parent %s, want the order's first publish span %s", replayed.Parent().SpanID(), pub.SpanContext().SpanID())
	}
	if !linked(replayed, rep.SpanContext().TraceID().String(), rep.SpanContext().SpanID().String(), "replay") {
		t.Errorf("the replayed record's span has no link to the replay span: %v", replayed.Links())
	}
	if em := attempts["email"]; len(em) == 2 && em[1].Parent().SpanID() != replayed.SpanContext().SpanID() {
		t.Errorf("the email attempt after the replay is not under the replayed record's span")
	}
	// Nothing else: every span is in the order's trace or the replay's.
	for _, s := range spans {
		if id := s.SpanContext().TraceID(); id.String() != upstreamTrace && id != rep.SpanContext().TraceID() {
			t.Errorf("span %q in a third trace %s", s.Name(), id)
		}
	}
}

func postEvent(t *testing.T, url, traceparent string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"id": "evt_ordertrace_1", "object": "event", "api_version": "2023-10-16", "created": time.Now().Unix(),
		"livemode": false, "pending_webhooks": 1, "type": processor.EventPaymentSucceeded,
		"data": map[string]any{"object": map[string]any{"id": orderKey, "object": "payment_intent", "status": "succeeded"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: webhookSecret, Timestamp: time.Now()})
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signed.Header)
	req.Header.Set("traceparent", traceparent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "queued" {
		t.Fatalf("gateway answered %d %s, want 200 queued", resp.StatusCode, b)
	}
}

func findSpan(spans []sdktrace.ReadOnlySpan, ok func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if ok(s) {
			return s
		}
	}
	return nil
}

func all(spans []sdktrace.ReadOnlySpan, ok func(sdktrace.ReadOnlySpan) bool) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if ok(s) {
			out = append(out, s)
		}
	}
	return out
}

// children are the spans of kind whose parent is p, in start order.
func children(spans []sdktrace.ReadOnlySpan, p sdktrace.ReadOnlySpan, kind trace.SpanKind) []sdktrace.ReadOnlySpan {
	return all(spans, func(s sdktrace.ReadOnlySpan) bool {
		return s.SpanKind() == kind && s.Parent().SpanID() == p.SpanContext().SpanID()
	})
}

func attr(s sdktrace.ReadOnlySpan, k attribute.Key) string {
	for _, a := range s.Attributes() {
		if a.Key == k {
			return a.Value.Emit()
		}
	}
	return ""
}

func attrInt(s sdktrace.ReadOnlySpan, k attribute.Key) int64 {
	for _, a := range s.Attributes() {
		if a.Key == k {
			return a.Value.AsInt64()
		}
	}
	return -1
}

// linked reports whether s links to a span of traceID (and spanID unless
// empty) with the orderflow.link attribute kind.
func linked(s sdktrace.ReadOnlySpan, traceID, spanID, kind string) bool {
	for _, l := range s.Links() {
		if l.SpanContext.TraceID().String() != traceID || (spanID != "" && l.SpanContext.SpanID().String() != spanID) {
			continue
		}
		for _, a := range l.Attributes {
			if a.Key == tracing.AttrLink && a.Value.AsString() == kind {
				return true
			}
		}
	}
	return false
}

func dump(spans []sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s %s parent=%s kind=%v", s.SpanContext().TraceID(), s.SpanContext().SpanID(), s.Parent().SpanID(), s.SpanKind())
		fmt.Fprintf(&b, " %q", s.Name())
		for _, a := range s.Attributes() {
			if strings.HasPrefix(string(a.Key), "orderflow.") || a.Key == "http.response.status_code" {
				fmt.Fprintf(&b, " %s=%s", a.Key, a.Value.Emit())
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}
