package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics"
)

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig(topics.New("x."))
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no topics", func(c *Config) { c.Topics = topics.Names{} }, "topic names"},
		{"no group", func(c *Config) { c.Group = " " }, "group"},
		{"no inflight", func(c *Config) { c.MaxInflight = 0 }, "max in-flight must"},
		{"no per-partition inflight", func(c *Config) { c.MaxInflightPerPartition = -1 }, "per partition"},
		{"max delay below base", func(c *Config) { c.Retry.MaxDelay = time.Millisecond }, "max delay"},
		{"no attempts", func(c *Config) { c.Retry.MaxAttempts = 0 }, "attempts"},
		{"breaker", func(c *Config) { c.Breaker.Cooldown = 0 }, "cool-down"},
		{"intent policy on an idempotent step", func(c *Config) { c.IntentPolicy = map[string]IntentPolicy{StepCRM: IntentRetry} }, "only shipping and email"},
		{"bad intent policy", func(c *Config) { c.IntentPolicy = map[string]IntentPolicy{StepEmail: "maybe"} }, "maybe"},
		{"no revoke deadline", func(c *Config) { c.RevokeDeadline = 0 }, "revoke deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			c.IntentPolicy = map[string]IntentPolicy{StepShipping: IntentRetry}
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestParseIntentPolicy(t *testing.T) {
	for in, want := range map[string]IntentPolicy{"retry": IntentRetry, " Dead-Letter ": IntentDeadLetter} {
		if got, err := ParseIntentPolicy(in); err != nil || got != want {
			t.Errorf("ParseIntentPolicy(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseIntentPolicy("skip"); err == nil {
		t.Error("ParseIntentPolicy(skip) did not fail")
	}
}

func TestBackoff(t *testing.T) {
	r := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second, MaxAttempts: 5}
	tests := []struct {
		attempt int
		err     error
		min     time.Duration
		max     time.Duration
	}{
		{1, errors.New("x"), 0, 100 * time.Millisecond},
		{3, errors.New("x"), 0, 400 * time.Millisecond},
		{10, errors.New("x"), 0, time.Second},
		{60, errors.New("x"), 0, time.Second}, // no overflow
		{1, &integrations.Error{Class: integrations.Transient, RetryAfter: 700 * time.Millisecond}, 700 * time.Millisecond, 700 * time.Millisecond},
		{1, &integrations.Error{Class: integrations.Transient, RetryAfter: time.Hour}, time.Second, time.Second},
	}
	for _, tt := range tests {
		for range 200 {
			if d := r.backoff(tt.attempt, tt.err); d < tt.min || d > tt.max {
				t.Fatalf("backoff(%d, %v) = %s, want in [%s, %s]", tt.attempt, tt.err, d, tt.min, tt.max)
			}
		}
	}
}

func TestBreaker(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Unix(1000, 0).UnixNano())
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	var transitions []string
	b := newBreaker(StepCRM, BreakerConfig{FailureThreshold: 3, MinOrders: 2, Window: time.Minute, Cooldown: 10 * time.Second},
		func(_ string, from, to int) {
			transitions = append(transitions, circuitNames[from]+">"+circuitNames[to])
		})
	b.now = func() time.Time { return time.Unix(0, clock.Load()) }
	stop := make(chan struct{})

	// One order failing alone never opens the circuit.
	for range 5 {
		if !b.failure(false, "a") {
			t.Fatal("a lone order's failure did not consume an attempt")
		}
	}
	if b.current() != circuitClosed {
		t.Fatal("opened for one order")
	}
	b.success(false)
	// Failures from several orders do; the failure that opens it is free.
	if !b.failure(false, "a") || !b.failure(false, "b") || b.failure(false, "c") {
		t.Fatal("attempt accounting wrong")
	}
	if b.current() != circuitOpen {
		t.Fatalf("state %d, want open", b.current())
	}
	if b.failure(false, "d") {
		t.Error("a failure while open consumed an attempt")
	}
	// While open, acquire waits; a stop ends the wait.
	close(stop)
	if _, err := b.acquire(stop); !errors.Is(err, errStopped) {
		t.Fatalf("acquire while open = %v, want errStopped", err)
	}
	// After the cool-down one caller probes; others wait.
	advance(11 * time.Second)
	probe, err := b.acquire(make(chan struct{}))
	if err != nil || !probe {
		t.Fatalf("acquire after cool-down = %v, %v; want the probe", probe, err)
	}
	waiting := make(chan bool, 1)
	go func() {
		p, _ := b.acquire(make(chan struct{}))
		waiting <- p
	}()
	select {
	case <-waiting:
		t.Fatal("a second caller got through while the probe runs")
	case <-time.After(50 * time.Millisecond):
	}
	// The probe fails: open again; after another cool-down it succeeds.
	if b.failure(true, "a") {
		t.Error("probe failure consumed an attempt")
	}
	advance(11 * time.Second)
	if p := <-waiting; !p {
		t.Fatal("waiter did not become the next probe")
	}
	b.success(true)
	if b.current() != circuitClosed {
		t.Fatal("not closed after a successful probe")
	}
	want := []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"}
	if strings.Join(transitions, " ") != strings.Join(want, " ") {
		t.Errorf("transitions %v, want %v", transitions, want)
	}
}

func TestBreakerWindow(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBreaker(StepCRM, BreakerConfig{FailureThreshold: 2, MinOrders: 2, Window: time.Second, Cooldown: time.Second}, nil)
	b.now = func() time.Time { return now }
	b.failure(false, "a")
	now = now.Add(2 * time.Second) // the streak is too old
	b.failure(false, "b")
	if b.current() != circuitClosed {
		t.Error("failures outside the window opened the circuit")
	}
}

func rec(key string, offset int64) *kgo.Record {
	return &kgo.Record{Key: []byte(key), Offset: offset, LeaderEpoch: 3}
}

func TestSchedulerOrderAndWatermark(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]int64{}
	release := map[int64]chan struct{}{}
	for i := range int64(6) {
		release[i] = make(chan struct{})
	}
	var finished atomic.Int32
	var events []string // "start N" and "end N" in the order they happened
	s := newScheduler(func(tk *task) bool {
		mu.Lock()
		events = append(events, fmt.Sprint("start ", tk.rec.Offset))
		mu.Unlock()
		<-release[tk.rec.Offset]
		mu.Lock()
		seen[string(tk.rec.Key)] = append(seen[string(tk.rec.Key)], tk.rec.Offset)
		events = append(events, fmt.Sprint("end ", tk.rec.Offset))
		mu.Unlock()
		return true
	}, func() { finished.Add(1) })
	// offsets: 0 a, 1 b, 2 a, 3 c, 4 b, 5 a
	for i, k := range []string{"a", "b", "a", "c", "b", "a"} {
		if !s.add(rec(k, int64(i))) {
			t.Fatalf("add %d refused", i)
		}
	}
	if s.add(rec("a", 3)) {
		t.Fatal("a redelivered offset was accepted")
	}
	wait := func(n int32) {
		t.Helper()
		eventually(t, "finished", 5*time.Second, func() bool { return finished.Load() == n })
	}
	// c (3) and b (1) finish first: the watermark stays at 0 until 0 finishes.
	close(release[3])
	close(release[1])
	wait(2)
	if m, _ := s.watermark(); m != 0 {
		t.Fatalf("watermark %d, want 0", m)
	}
	close(release[0])
	wait(3)
	if m, e := s.watermark(); m != 2 || e != 3 {
		t.Fatalf("watermark %d epoch %d, want 2, 3", m, e)
	}
	// 5 (a) cannot run before 2 (a), even released first: it starts only
	// after 2 ended (checked on the event log below).
	close(release[5])
	close(release[2])
	close(release[4])
	wait(6)
	if m, _ := s.watermark(); m != 6 {
		t.Fatalf("watermark %d, want 6", m)
	}
	if s.pending() != 0 {
		t.Fatalf("pending %d", s.pending())
	}
	if a := seen["a"]; len(a) != 3 || a[0] != 0 || a[1] != 2 || a[2] != 5 {
		t.Errorf("key a ran %v, want [0 2 5]", a)
	}
	at := func(ev string) int { return slices.Index(events, ev) }
	for _, order := range [][2]string{{"end 0", "start 2"}, {"end 2", "start 5"}, {"end 1", "start 4"}} {
		if at(order[0]) < 0 || at(order[1]) < at(order[0]) {
			t.Errorf("%q happened before %q: a later record of a key ran before an earlier one ended (events %v)", order[1], order[0], events)
		}
	}
}

func TestSchedulerStopLeavesRecordsUnfinished(t *testing.T) {
	block := make(chan struct{})
	s := newScheduler(func(tk *task) bool {
		if tk.rec.Offset == 0 {
			return true
		}
		<-block
		return false // stopped mid-record
	}, nil)
	s.add(rec("a", 0))
	s.add(rec("b", 1))
	s.add(rec("b", 2))
	eventually(t, "first finished", 5*time.Second, func() bool { m, _ := s.watermark(); return m == 1 })
	s.stop()
	close(block)
	s.wait()
	if s.add(rec("c", 3)) {
		t.Error("add after stop accepted")
	}
	if m, _ := s.watermark(); m != 1 {
		t.Errorf("watermark %d after stop, want 1", m)
	}
	if s.pending() != 2 {
		t.Errorf("pending %d, want 2", s.pending())
	}
}

func TestDLQRecordHeaders(t *testing.T) {
	p := &Processor{cfg: DefaultConfig(topics.New("p."))}
	p.cfg.MaxErrorLen = 20
	orig := &kgo.Record{Topic: "p.orders", Partition: 2, Offset: 41, Key: []byte("pi_1"), Value: []byte(`{"v":1}`),
		Headers: []kgo.RecordHeader{
			{Key: topics.HeaderEventID, Value: []byte("evt_1")},
			{Key: topics.HeaderReplay, Value: []byte("2")},
			{Key: topics.HeaderDLQClass, Value: []byte("stale")},
		}}
	first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := p.dlqRecord(orig, deadLetterInfo{step: StepInvoice, class: topics.ClassExhausted, err: strings.Repeat("é", 30), attempts: 5, firstFailure: first, lastFailure: first.Add(time.Minute)})
	if d.Topic != "p.orders.dlq" || d.Partition != 2 || string(d.Key) != "pi_1" || string(d.Value) != `{"v":1}` {
		t.Fatalf("dead letter %s/%d key %s value %s", d.Topic, d.Partition, d.Key, d.Value)
	}
	want := map[string]string{
		topics.HeaderEventID: "evt_1", topics.HeaderReplay: "2",
		topics.HeaderDLQTopic: "p.orders", topics.HeaderDLQPartition: "2", topics.HeaderDLQOffset: "41",
		topics.HeaderDLQStep: StepInvoice, topics.HeaderDLQClass: topics.ClassExhausted, topics.HeaderDLQAttempts: "5",
		topics.HeaderDLQFirstFailure: "2026-01-02T03:04:05Z", topics.HeaderDLQLastFailure: "2026-01-02T03:05:05Z",
		topics.HeaderDLQReplayCount: "2",
	}
	count := map[string]int{}
	for _, h := range d.Headers {
		count[h.Key]++
	}
	for k, v := range want {
		if got, _ := header(d, k); got != v || count[k] != 1 {
			t.Errorf("header %s = %q (%d times), want %q once", k, got, count[k], v)
		}
	}
	if e, _ := header(d, topics.HeaderDLQError); len(e) > 20 || !strings.HasSuffix(e, "...") || !strings.HasPrefix(e, "é") {
		t.Errorf("error header %q not cut to 20 bytes on a rune boundary", e)
	}
}

func TestPaymentStatus(t *testing.T) {
	for raw, want := range map[string]string{
		`{"data":{"object":{"payment_status":"unpaid"}}}`: "unpaid",
		`{"data":{"object":{"id":"cs_1"}}}`:               "",
		`not json`:                                        "",
	} {
		if got := decodeObject([]byte(raw)).PaymentStatus; got != want {
			t.Errorf("payment_status of %s = %q, want %q", raw, got, want)
		}
	}
}

// BenchmarkScheduler measures the per-record cost of scheduling: queueing
// by key, running, and advancing the watermark.
func BenchmarkScheduler(b *testing.B) {
	const nkeys = 1000
	names := make([][]byte, nkeys)
	for i := range names {
		names[i] = []byte("pi_" + strings.Repeat("x", 20) + string(rune('a'+i%26)) + string(rune('a'+i/26%26)))
	}
	var done atomic.Int64
	s := newScheduler(func(*task) bool { return true }, func() { done.Add(1) })
	recs := make([]*kgo.Record, b.N)
	for i := range recs {
		recs[i] = &kgo.Record{Key: names[rand.IntN(nkeys)], Offset: int64(i)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, r := range recs {
		s.add(r)
	}
	for done.Load() < int64(b.N) {
		time.Sleep(time.Microsecond)
	}
	b.StopTimer()
	if m, _ := s.watermark(); m != int64(b.N) {
		b.Fatalf("watermark %d, want %d", m, b.N)
	}
}

// Results kept for an order's return are dropped once older than the TTL;
// younger ones stay.
func TestPruneUnpersisted(t *testing.T) {
	var m sync.Map
	now := time.Now()
	m.Store("pi_old/invoice", unpersistedResult{result: json.RawMessage(`{}`), at: now.Add(-unpersistedTTL - time.Minute)})
	m.Store("pi_new/email", unpersistedResult{result: json.RawMessage(`{}`), at: now.Add(-time.Minute)})
	if n := pruneUnpersisted(&m, now.Add(-unpersistedTTL)); n != 1 {
		t.Errorf("dropped %d, want 1", n)
	}
	if _, ok := m.Load("pi_old/invoice"); ok {
		t.Error("an entry older than the TTL is still kept")
	}
	if _, ok := m.Load("pi_new/email"); !ok {
		t.Error("a recent entry was dropped")
	}
}

// A recorded shipping result that does not decode fails the invoice and the
// email step permanently, naming the step, before either provider is
// called: neither may run on an empty Shipment.
func TestCallRefusesUndecodableShipment(t *testing.T) {
	f := newFakes()
	st := &State{
		Order: &integrations.Order{ID: "pi_badship", PaymentIntentID: "pi_badship", Number: "OF-BADSHIP", Currency: "eur", AmountTotal: 12400},
		Steps: map[string]*StepState{
			StepShipping: {Done: true, Result: json.RawMessage(`{"shipment_id":17,"tracking_number":"T1"}`)}, // a number, not a string
			StepInvoice:  {Done: true, Result: json.RawMessage(`{"number":"INV-OF-BADSHIP","provider_id":"nv-1"}`)},
		},
	}
	h := &handling{p: &Processor{prov: f.providers(), names: Chain}, st: st, key: "pi_badship"}
	call := func(step string) (any, error) {
		return BuiltinStep(step, f.providers()).Run(context.Background(), h.input())
	}
	for _, step := range []string{StepInvoice, StepEmail} {
		res, err := call(step)
		if err == nil {
			t.Errorf("%s step ran on an undecodable shipping result: result %v", step, res)
			continue
		}
		if !integrations.IsPermanent(err) {
			t.Errorf("%s step: %v, want a permanent error", step, err)
		}
		if !strings.Contains(err.Error(), "shipping result does not decode") {
			t.Errorf("%s step: %q does not say which result failed to decode", step, err)
		}
		if n := f.attemptCount(step, "pi_badship"); n != 0 {
			t.Errorf("%s provider called %d times, want 0", step, n)
		}
	}

	// A skipped shipping step (no result) is not an error: the invoice
	// goes ahead without a shipment.
	st.Steps[StepShipping] = &StepState{Done: true, Skipped: true}
	if _, err := call(StepInvoice); err != nil {
		t.Errorf("invoice with shipping skipped: %v", err)
	}
	if n := f.attemptCount(StepInvoice, "pi_badship"); n != 1 {
		t.Errorf("invoice provider called %d times with shipping skipped, want 1", n)
	}
}

// A changelog record passes the quick look only without a `:null`
// anywhere; one with it is decoded in full (and found unreadable).
func TestQuickValidRejectsNull(t *testing.T) {
	for _, c := range []struct {
		val  string
		want bool
	}{
		{`{"v":1,"order_id":"pi_1","status":"completed","updated_at":"x"}`, true},
		{`{"v":1,"order_id":"pi_1","steps":{"crm":null}}`, false},
		{`{"v":1,"order_id":"pi_1","status":null}`, false},
		{`{"v":1,"order_id":"pi_1","note":"null","x":"unull"}`, true},
		{`{"v":1,"order_id":"pi_1","x":"u:nul"}`, true},
		{`{"v":1,"order_id":"pi_1","a":nul}`, true}, // not a null; the full decode rejects it
		{`{"v":1,"order_id":"pi_2"}`, false},        // another order's id
	} {
		if got := quickValid([]byte("pi_1"), []byte(c.val)); got != c.want {
			t.Errorf("quickValid(%s) = %v, want %v", c.val, got, c.want)
		}
	}
}
