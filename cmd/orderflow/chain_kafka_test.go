package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/testenv"
	"github.com/orderflow/orderflow/topics"
)

// simExchange is one provider request to the simulator and its answer.
type simExchange struct {
	method, path, contentType string
	body, resp                []byte
}

// simRecorder records the provider requests passing to the simulator.
type simRecorder struct {
	h  http.Handler
	mu sync.Mutex
	ex []simExchange
}

type respCapture struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (c *respCapture) Write(b []byte) (int, error) { c.buf.Write(b); return c.ResponseWriter.Write(b) }

func (rc *simRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	cw := &respCapture{ResponseWriter: w}
	rc.h.ServeHTTP(cw, r)
	rc.mu.Lock()
	rc.ex = append(rc.ex, simExchange{r.Method, r.URL.Path, r.Header.Get("Content-Type"), body, cw.buf.Bytes()})
	rc.mu.Unlock()
}

func (rc *simRecorder) matching(method string, path *regexp.Regexp) []simExchange {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []simExchange
	for _, e := range rc.ex {
		if e.method == method && path.MatchString(e.path) {
			out = append(out, e)
		}
	}
	return out
}

// chainRun is a processor built from command-line flags (the chain of
// --steps and its providers) on real Kafka, against the simulator behind a
// recorder.
type chainRun struct {
	t      *testing.T
	sim    *sim.Server
	rec    *simRecorder
	names  topics.Names
	seeds  []string
	labels string
	prod   *kgo.Client
	states *kgo.Client
	last   map[string]*processor.State
}

func startChain(t *testing.T, args ...string) *chainRun {
	t.Helper()
	brokers := testenv.Kafka(t)
	r := &chainRun{t: t, names: testenv.Topics(t, brokers, 1), seeds: strings.Split(brokers, ","), labels: t.TempDir(), last: map[string]*processor.State{}}
	s, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	r.sim, r.rec = s, &simRecorder{h: s.Handler()}
	srv := httptest.NewServer(r.rec)
	t.Cleanup(func() { srv.Close(); _ = s.Close() })

	p := parseProviderFlags(t, nil, append([]string{"--sim-url", srv.URL, "--label-dir", r.labels}, args...)...)
	prov, cleanup, err := p.build(context.Background(), discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	cfg := processor.DefaultConfig(r.names)
	cfg.Group = r.names.Prefix + "processor"
	cfg.CommitInterval = 100 * time.Millisecond
	proc, err := processor.New(cfg, prov, []kgo.Opt{kgo.SeedBrokers(r.seeds...)}, discardLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
		cleanup()
	})
	if r.prod, err = kgo.NewClient(kgo.SeedBrokers(r.seeds...), kgo.DefaultProduceTopic(r.names.Orders)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.prod.Close)
	if r.states, err = kgo.NewClient(kgo.SeedBrokers(r.seeds...), kgo.ConsumeTopics(r.names.State), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.states.Close)
	return r
}

// pay sends the payment of order key.
func (r *chainRun) pay(key string) {
	r.t.Helper()
	raw, _ := json.Marshal(map[string]any{"id": "evt_" + key, "type": processor.EventPaymentSucceeded, "data": map[string]any{"object": map[string]any{"id": key}}})
	env, err := topics.Envelope{EventID: "evt_" + key, EventType: processor.EventPaymentSucceeded, Key: key, ObjectID: key,
		Created: time.Now().Unix(), ReceivedAt: time.Now().UTC(), Event: raw}.Encode()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.prod.ProduceSync(context.Background(), &kgo.Record{Key: []byte(key), Value: env}).FirstErr(); err != nil {
		r.t.Fatal(err)
	}
}

// wait reads orders.state until the order's latest state has status.
func (r *chainRun) wait(key string, status processor.Status) *processor.State {
	r.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for st := r.last[key]; st == nil || st.Status != status; st = r.last[key] {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s not %s within a minute: %+v", key, status, st)
		}
		pctx, pcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		r.states.PollFetches(pctx).EachRecord(func(rec *kgo.Record) {
			if s, err := processor.DecodeState(rec.Value); err == nil {
				r.last[string(rec.Key)] = s
			}
		})
		pcancel()
	}
	return r.last[key]
}

// --webhook-gate through the command's flags, on real Kafka: the warehouse
// webhook refusing the order dead-letters it at the gate with shipping,
// invoice and email pending and DHL never called; once the warehouse
// accepts, a replay of the dead letter sends the webhook again and then
// books the parcel, after the accepted delivery.
func TestWebhookGateEndToEnd(t *testing.T) {
	r := startChain(t, "--steps", "details,crm,webhook:wms,shipping=dhl,invoice,email", "--webhook-gate", "wms")
	if err := r.sim.SetFault(sim.Fault{Step: sim.StepWebhook, Mode: sim.ModeReject, Rate: 1}); err != nil {
		t.Fatal(err)
	}
	const key = "pi_3GateEndToEnd0000001"
	r.pay(key)
	st := r.wait(key, processor.StatusDeadLettered)
	if st.DeadLetter == nil || st.DeadLetter.Step != "webhook:wms" || st.DeadLetter.Class != topics.ClassPermanent {
		t.Fatalf("dead letter %+v, want webhook:wms, permanent", st.DeadLetter)
	}
	if want := []string{"webhook:wms", "shipping", "invoice", "email"}; strings.Join(st.Pending, ",") != strings.Join(want, ",") {
		t.Errorf("pending %v, want %v", st.Pending, want)
	}
	if ss := st.Steps[processor.StepCRM]; ss == nil || !ss.Done {
		t.Errorf("crm %+v, want done (listed before the gate)", ss)
	}
	dhlPath := regexp.MustCompile(`^/parcel/de/shipping/v2/orders$`)
	if n := len(r.rec.matching(http.MethodPost, dhlPath)); n != 0 {
		t.Fatalf("%d DHL bookings behind a refusing gate, want 0", n)
	}

	// The warehouse accepts it now; replay the dead letter.
	r.sim.ClearFaults(sim.StepWebhook)
	dlqc, err := kgo.NewClient(kgo.SeedBrokers(r.seeds...), kgo.ConsumeTopics(r.names.DLQ), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer dlqc.Close()
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	var dl *kgo.Record
	for dl == nil && pctx.Err() == nil {
		dlqc.PollFetches(pctx).EachRecord(func(rec *kgo.Record) { dl = rec })
	}
	pcancel()
	if dl == nil {
		t.Fatal("no dead letter")
	}
	replay := &kgo.Record{Key: dl.Key, Value: dl.Value}
	for _, h := range dl.Headers {
		if h.Key == topics.HeaderEventID || h.Key == topics.HeaderEventType {
			replay.Headers = append(replay.Headers, h)
		}
	}
	replay.Headers = append(replay.Headers,
		kgo.RecordHeader{Key: topics.HeaderReplay, Value: []byte("1")},
		kgo.RecordHeader{Key: topics.HeaderReplaySource, Value: []byte(topics.Source(dl.Partition, dl.Offset))})
	if err := r.prod.ProduceSync(context.Background(), replay).FirstErr(); err != nil {
		t.Fatal(err)
	}
	st = r.wait(key, processor.StatusCompleted)
	if len(st.Pending) != 0 {
		t.Errorf("completed with pending %v", st.Pending)
	}

	// In the order the simulator saw them: the refused delivery, the
	// accepted one, then the one DHL booking.
	r.rec.mu.Lock()
	var seen []string
	for _, e := range r.rec.ex {
		switch {
		case e.method == http.MethodPost && e.path == "/webhooks/wms":
			seen = append(seen, "webhook")
		case e.method == http.MethodPost && dhlPath.MatchString(e.path):
			seen = append(seen, "dhl")
		}
	}
	r.rec.mu.Unlock()
	if got := strings.Join(seen, ","); got != "webhook,webhook,dhl" {
		t.Errorf("requests %s, want webhook,webhook,dhl", got)
	}
}
