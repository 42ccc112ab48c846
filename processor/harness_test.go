package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/test/testenv"
	"github.com/orderflow/orderflow/topics"
)

// call is one provider call the fakes saw.
type call struct {
	step, order string
	start, end  time.Time
	err         error
}

// fakes implements every provider interface in memory. It counts calls and
// successful creations per step and order, and fails or delays calls as
// the test says.
type fakes struct {
	mu       sync.Mutex
	calls    []call
	created  map[string]map[string]int // step → order → successful calls
	attempts map[string]map[string]int // step → order → calls
	invoices map[string]integrations.Invoice
	alerts   []integrations.Alert

	// fail returns the error of a call (nil: success); attempt counts from 1.
	fail func(step, order string, attempt int) error
	// latency returns how long a call takes.
	latency func(step, order string) time.Duration
	// afterCreate, when set, runs after a successful call, before it returns.
	afterCreate func(step, order string)
}

func newFakes() *fakes {
	return &fakes{created: map[string]map[string]int{}, attempts: map[string]map[string]int{}, invoices: map[string]integrations.Invoice{}}
}

func (f *fakes) providers() Providers {
	return Providers{Details: f, CRM: f, ProductionLog: f, Shipping: f, Invoicing: f, Mailer: f, Alerter: f}
}

func (f *fakes) do(ctx context.Context, step, order string) error {
	f.mu.Lock()
	if f.attempts[step] == nil {
		f.attempts[step] = map[string]int{}
	}
	f.attempts[step][order]++
	attempt := f.attempts[step][order]
	fail, latency, after := f.fail, f.latency, f.afterCreate
	f.mu.Unlock()

	start := time.Now()
	var err error
	if latency != nil {
		if d := latency(step, order); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				err = ctx.Err()
			}
		}
	}
	if err == nil && fail != nil {
		err = fail(step, order, attempt)
	}
	f.mu.Lock()
	f.calls = append(f.calls, call{step: step, order: order, start: start, end: time.Now(), err: err})
	if err == nil {
		if f.created[step] == nil {
			f.created[step] = map[string]int{}
		}
		f.created[step][order]++
	}
	f.mu.Unlock()
	if err == nil && after != nil {
		after(step, order)
	}
	return err
}

func (f *fakes) setFail(fn func(step, order string, attempt int) error) {
	f.mu.Lock()
	f.fail = fn
	f.mu.Unlock()
}

// breakStep makes step fail permanently until the returned switch is set
// to false.
func (f *fakes) breakStep(step string) *atomic.Bool {
	broken := &atomic.Bool{}
	broken.Store(true)
	f.setFail(func(s, _ string, _ int) error {
		if s == step && broken.Load() {
			return permanent(s)
		}
		return nil
	})
	return broken
}

func (f *fakes) createdCount(step, order string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.created[step][order]
}

func (f *fakes) attemptCount(step, order string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[step][order]
}

func (f *fakes) callsOf(order string) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.calls {
		if c.order == order {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakes) alertCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.alerts)
}

func (f *fakes) OrderDetails(ctx context.Context, id string) (integrations.Order, error) {
	if err := f.do(ctx, StepDetails, id); err != nil {
		return integrations.Order{}, err
	}
	return integrations.Order{Model: integrations.OrderModel, ID: id, PaymentIntentID: id, Number: integrations.OrderNumber(id), Currency: "eur",
		AmountTotal: 12400, Customer: integrations.Customer{Name: "Test", Email: "t@example.com"}}, nil
}

func (f *fakes) UpsertContactAndDeal(ctx context.Context, o integrations.Order) (integrations.CRMResult, error) {
	return integrations.CRMResult{ContactID: "c-" + o.ID, DealID: "d-" + o.ID}, f.do(ctx, StepCRM, o.ID)
}

func (f *fakes) UpsertOrder(ctx context.Context, o integrations.Order, _ []string) (integrations.ProductionLogResult, error) {
	return integrations.ProductionLogResult{RecordID: "r-" + o.ID}, f.do(ctx, StepProductionLog, o.ID)
}

func (f *fakes) CreateShipment(ctx context.Context, o integrations.Order) (integrations.Shipment, error) {
	return integrations.Shipment{ShipmentID: "s-" + o.ID, TrackingNumber: "T" + o.Number}, f.do(ctx, StepShipping, o.ID)
}

func (f *fakes) CreateInvoice(ctx context.Context, o integrations.Order, _ integrations.Shipment) (integrations.Invoice, error) {
	if err := f.do(ctx, StepInvoice, o.ID); err != nil {
		return integrations.Invoice{}, err
	}
	inv := integrations.Invoice{Number: f.InvoiceNumber(o), ProviderID: "nv-" + o.ID}
	f.mu.Lock()
	f.invoices[inv.Number] = inv
	f.mu.Unlock()
	return inv, nil
}

func (f *fakes) FindInvoice(_ context.Context, number string) (integrations.Invoice, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv, ok := f.invoices[number]
	return inv, ok, nil
}

func (f *fakes) InvoiceNumber(o integrations.Order) string { return "INV-" + o.Number }

func (f *fakes) SendConfirmation(ctx context.Context, o integrations.Order, _ integrations.Shipment, _ integrations.Invoice) (integrations.Message, error) {
	return integrations.Message{MessageID: "<" + o.ID + "@test>"}, f.do(ctx, StepEmail, o.ID)
}

func (f *fakes) Alert(_ context.Context, a integrations.Alert) error {
	f.mu.Lock()
	f.alerts = append(f.alerts, a)
	f.mu.Unlock()
	return nil
}

// harness is a fresh set of topics on the test broker, a producer and
// helpers to run processors and read what they wrote.
type harness struct {
	t       testing.TB
	brokers []string
	names   topics.Names
	prod    *kgo.Client
	logger  *slog.Logger // the processors' log; testLogger's when nil
}

// newHarness is a harness on the real Kafka broker (test/infra, or a
// container): tests of what Kafka itself does (rebalances, restores from
// the changelog, broker outages) use it. Without a broker they skip with
// testenv's reason, and fail under CI=true.
func newHarness(t testing.TB, partitions int32) *harness {
	t.Helper()
	return newHarnessOn(t, testenv.Kafka(t), partitions)
}

// newLogicHarness is a harness for tests of the processor's own logic (the
// chain, retries, dead letters, intents, dedup, shutdown) with one
// processor at a time. It uses the real broker whenever one is configured
// ($ORDERFLOW_TEST_KAFKA, as `make test` sets it) or under CI=true (where a
// missing broker fails); otherwise an in-process kfake cluster, so a plain
// `go test ./processor` runs these tests instead of skipping them.
func newLogicHarness(t testing.TB, partitions int32) *harness {
	t.Helper()
	if os.Getenv(testenv.EnvKafka) != "" || testenv.InCI() {
		return newHarness(t, partitions)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return newHarnessOn(t, strings.Join(c.ListenAddrs(), ","), partitions)
}

func newHarnessOn(t testing.TB, brokers string, partitions int32) *harness {
	t.Helper()
	names := testenv.Topics(t, brokers, partitions)
	seeds := strings.Split(brokers, ",")
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	return &harness{t: t, brokers: seeds, names: names, prod: prod}
}

// config is a test configuration: fast retries, short deadlines.
func (h *harness) config() Config {
	cfg := DefaultConfig(h.names)
	cfg.Group = h.names.Prefix + "processor"
	cfg.Retry = RetryPolicy{BaseDelay: 5 * time.Millisecond, MaxDelay: 40 * time.Millisecond, MaxAttempts: 3}
	cfg.Breaker = BreakerConfig{FailureThreshold: 4, MinOrders: 2, Window: 5 * time.Second, Cooldown: 150 * time.Millisecond}
	cfg.CommitInterval = 50 * time.Millisecond
	cfg.RevokeDeadline = 2 * time.Second
	cfg.StepTimeout = 5 * time.Second
	cfg.ProduceTimeout = 10 * time.Second
	cfg.MaxClockDrift = 100 * time.Millisecond
	cfg.LookupDelay = 300 * time.Millisecond
	cfg.HoldAfter = 3 * time.Second
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("ORDERFLOW_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// running is a processor running in the background.
type running struct {
	p      *Processor
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func (h *harness) start(cfg Config, prov Providers) *running {
	h.t.Helper()
	reg := prometheus.NewRegistry()
	log := h.logger
	if log == nil {
		log = testLogger(h.t)
	}
	p, err := New(cfg, prov, []kgo.Opt{kgo.SeedBrokers(h.brokers...)}, log, reg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	h.t.Cleanup(func() { r.stop(h.t) })
	return r
}

// stop shuts the processor down gracefully and waits for Run.
func (r *running) stop(t testing.TB) {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(30 * time.Second):
		t.Error("processor did not stop within 30 s")
	}
}

// kill stops the processor as a crash would and waits for Run.
func (r *running) kill(t testing.TB) {
	r.p.kill()
	r.stop(t)
}

// event is a Stripe event to send.
type event struct {
	key, typ, id, object string
	paymentStatus        string
	headers              map[string]string
	// charge is a charge.refunded event's charge amounts, when set.
	charge *charge
	// fields are more fields of the event's object.
	fields map[string]any
}

// charge is what a charge.refunded event says of its charge.
type charge struct {
	amount, refunded int64
	full             bool
}

func (h *harness) send(evs ...event) {
	h.t.Helper()
	recs := make([]*kgo.Record, 0, len(evs))
	for _, e := range evs {
		recs = append(recs, h.record(e))
	}
	if err := h.prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		h.t.Fatalf("produce: %v", err)
	}
}

func (h *harness) record(e event) *kgo.Record {
	obj := map[string]any{"id": e.object}
	if e.paymentStatus != "" {
		obj["payment_status"] = e.paymentStatus
	}
	for k, v := range e.fields {
		obj[k] = v
	}
	if c := e.charge; c != nil {
		obj["object"], obj["currency"] = "charge", "eur"
		obj["amount"], obj["amount_refunded"], obj["refunded"] = c.amount, c.refunded, c.full
	}
	raw, _ := json.Marshal(map[string]any{"id": e.id, "type": e.typ, "data": map[string]any{"object": obj}})
	b, err := topics.Envelope{EventID: e.id, EventType: e.typ, Key: e.key, ObjectID: e.object, Created: time.Now().Unix(),
		ReceivedAt: time.Now().UTC(), Event: raw}.Encode()
	if err != nil {
		h.t.Fatal(err)
	}
	r := &kgo.Record{Topic: h.names.Orders, Key: []byte(e.key), Value: b,
		Headers: []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte(e.id)}, {Key: topics.HeaderEventType, Value: []byte(e.typ)}}}
	for k, v := range e.headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return r
}

// replayLetter sends a dead letter back to `orders` as `dlq replay` does:
// its event id and type, the replay flag and its source (the headers of
// dlq.ReplayRecord, which these tests cannot call: package dlq imports
// processor).
func (h *harness) replayLetter(d *kgo.Record) {
	h.t.Helper()
	r := &kgo.Record{Topic: h.names.Orders, Key: d.Key, Value: d.Value}
	for _, hd := range d.Headers {
		if hd.Key == topics.HeaderEventID || hd.Key == topics.HeaderEventType {
			r.Headers = append(r.Headers, hd)
		}
	}
	r.Headers = append(r.Headers,
		kgo.RecordHeader{Key: topics.HeaderReplay, Value: []byte("1")},
		kgo.RecordHeader{Key: topics.HeaderReplaySource, Value: []byte(topics.Source(d.Partition, d.Offset))})
	if err := h.prod.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
}

// lastLetter is the newest dead letter of key; the test fails without one.
func (h *harness) lastLetter(key string) *kgo.Record {
	h.t.Helper()
	var dl *kgo.Record
	for _, d := range h.readAll(h.names.DLQ) {
		if string(d.Key) == key {
			dl = d
		}
	}
	if dl == nil {
		h.t.Fatalf("no dead letter of %s", key)
	}
	return dl
}

// paid is the payment_intent.succeeded event of an order.
func paid(key string) event {
	return event{key: key, typ: EventPaymentSucceeded, id: "evt_pi_" + key, object: key}
}

// readAll reads a topic from the start to its current end.
func (h *harness) readAll(topic string) []*kgo.Record {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(h.prod).ListEndOffsets(ctx, topic)
	if err != nil {
		h.t.Fatalf("list end offsets: %v", err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			h.t.Fatalf("reading %s: timed out with %v left", topic, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := want[r.Partition]; ok {
				out = append(out, r)
				if r.Offset+1 >= end {
					delete(want, r.Partition)
				}
			}
		})
	}
	return out
}

// states returns the latest state of every order.
func (h *harness) states() map[string]*State {
	out := map[string]*State{}
	for _, r := range h.readAll(h.names.State) {
		st, err := DecodeState(r.Value)
		if err != nil {
			continue // a test wrote it on purpose
		}
		out[string(r.Key)] = st
	}
	return out
}

// waitStates polls the states until cond holds.
func (h *harness) waitStates(what string, timeout time.Duration, cond func(map[string]*State) bool) map[string]*State {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := h.states()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; states: %s", what, summary(st))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func allStatus(keys []string, status Status) func(map[string]*State) bool {
	return func(st map[string]*State) bool {
		for _, k := range keys {
			if st[k] == nil || st[k].Status != status {
				return false
			}
		}
		return true
	}
}

func summary(st map[string]*State) string {
	counts := map[Status]int{}
	for _, s := range st {
		counts[s.Status]++
	}
	return fmt.Sprint(counts)
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("pi_%s%04d", prefix, i)
	}
	return out
}

var errBoom = errors.New("boom")

func transient(step string) error { return integrations.Transientf("fake", step, "HTTP 503") }
func permanent(step string) error {
	return integrations.Permanentf("fake", step, "HTTP 422 invalid postcode")
}

// eventually polls cond until it holds.
func eventually(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var _ = slices.Contains[[]string]
var _ = errBoom

// sendTo produces events to one partition of `orders`.
func (h *harness) sendTo(partition int32, evs ...event) {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, 0, len(evs))
	for _, e := range evs {
		r := h.record(e)
		r.Partition = partition
		recs = append(recs, r)
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		h.t.Fatalf("produce: %v", err)
	}
}

// metricValue reads a counter or gauge.
func metricValue(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		return -1
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// histogramCount reads how many observations a histogram has.
func histogramCount(h prometheus.Histogram) uint64 {
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		return 0
	}
	return m.Histogram.GetSampleCount()
}

// waitHandled waits until the processors of cfg's group committed every
// record `orders` holds now: each was handled to its end (the watermark
// passes a record only when it finished), so no call for it is still to
// come. A test asserting that something did not happen waits on this, not
// on time.
func (h *harness) waitHandled(group string, timeout time.Duration) {
	h.t.Helper()
	adm := kadm.NewClient(h.prod)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, h.names.Orders)
	if err != nil {
		h.t.Fatalf("list end offsets: %v", err)
	}
	for {
		committed, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			left := 0
			ends.Each(func(o kadm.ListedOffset) {
				if c, ok := committed.Lookup(h.names.Orders, o.Partition); o.Offset > 0 && (!ok || c.At < o.Offset) {
					left++
				}
			})
			if left == 0 {
				return
			}
		}
		select {
		case <-ctx.Done():
			h.t.Fatalf("timed out waiting for group %s to commit every record of %s (last error %v)", group, h.names.Orders, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
