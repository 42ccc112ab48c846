package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/testenv"
	"github.com/orderflow/orderflow/topics"
)

// fixture is a fresh set of topics with a producer that writes to explicit
// partitions.
type fixture struct {
	t       *testing.T
	brokers string
	names   topics.Names
	prod    *kgo.Client
	ctx     context.Context
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers, 3)
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return &fixture{t: t, brokers: brokers, names: names, prod: prod, ctx: ctx}
}

func (f *fixture) client() *Client {
	f.t.Helper()
	c, err := New(f.names, []kgo.Opt{kgo.SeedBrokers(f.brokers)})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(c.Close)
	return c
}

func (f *fixture) produce(rs ...*kgo.Record) []*kgo.Record {
	f.t.Helper()
	res := f.prod.ProduceSync(f.ctx, rs...)
	if err := res.FirstErr(); err != nil {
		f.t.Fatal(err)
	}
	out := make([]*kgo.Record, len(res))
	for i, r := range res {
		out[i] = r.Record
	}
	return out
}

// deadLetter returns a DLQ record of an order that failed at step.
func (f *fixture) deadLetter(key string, partition int32, step, class string, replayCount int) *kgo.Record {
	env := topics.Envelope{EventID: "evt_" + key, EventType: "payment_intent.succeeded", Key: key, ObjectID: key,
		ReceivedAt: time.Now().UTC(), Event: []byte(`{"id":"evt_` + key + `","data":{"object":{"id":"` + key + `","receipt_email":"buyer@example.com"}}}`)}
	v, err := env.Encode()
	if err != nil {
		f.t.Fatal(err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	return &kgo.Record{Topic: f.names.DLQ, Partition: partition, Key: []byte(key), Value: v,
		Headers: hdr(topics.HeaderEventID, env.EventID, topics.HeaderEventType, env.EventType,
			topics.HeaderDLQTopic, f.names.Orders, topics.HeaderDLQPartition, strconv.Itoa(int(partition)), topics.HeaderDLQOffset, "0",
			topics.HeaderDLQStep, step, topics.HeaderDLQClass, class, topics.HeaderDLQError, step+" failed",
			topics.HeaderDLQAttempts, "1", topics.HeaderDLQFirstFailure, now, topics.HeaderDLQLastFailure, now,
			topics.HeaderDLQReplayCount, strconv.Itoa(replayCount))}
}

func (f *fixture) state(st *processor.State) *kgo.Record {
	f.t.Helper()
	b, err := st.Encode()
	if err != nil {
		f.t.Fatal(err)
	}
	return &kgo.Record{Topic: f.names.State, Partition: keyPartition(st.OrderID, 3), Key: []byte(st.OrderID), Value: b}
}

func TestListEmptyTopicReturns(t *testing.T) {
	f := newFixture(t)
	ds, err := f.client().List(f.ctx, Filter{})
	if err != nil || len(ds) != 0 {
		t.Fatalf("List of an empty DLQ = %v, %v", ds, err)
	}
	_, err = f.client().Get(f.ctx, 1, 0)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get on an empty DLQ: %v, want ErrNotFound", err)
	}
}

func TestListMissingTopic(t *testing.T) {
	f := newFixture(t)
	names := topics.New(testenv.Prefix(t))
	c, err := New(names, []kgo.Opt{kgo.SeedBrokers(f.brokers)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.List(f.ctx, Filter{}); err == nil {
		t.Fatal("List of a missing topic succeeded")
	}
}

func TestListAndGet(t *testing.T) {
	f := newFixture(t)
	f.produce(
		f.deadLetter("pi_a", 0, "crm", "permanent", 0),
		f.deadLetter("pi_b", 1, "shipping", "exhausted", 1),
		f.deadLetter("pi_b", 1, "shipping", "parked", 1),
		f.deadLetter("pi_c", 2, "email", "permanent", 0),
	)
	c := f.client()
	all, err := c.List(f.ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range all {
		got = append(got, d.Source()+" "+d.Key+" "+d.Class)
	}
	want := []string{"0/0 pi_a permanent", "1/0 pi_b exhausted", "1/1 pi_b parked", "2/0 pi_c permanent"}
	if !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	some, err := c.List(f.ctx, Filter{Classes: []string{"permanent"}, Steps: []string{"email"}})
	if err != nil || len(some) != 1 || some[0].Key != "pi_c" {
		t.Fatalf("filtered List = %v, %v", some, err)
	}
	d, err := c.Get(f.ctx, 1, 1)
	if err != nil || d.Key != "pi_b" || d.Class != "parked" || d.ReplayCount != 1 {
		t.Fatalf("Get(1/1) = %+v, %v", d, err)
	}
	if _, err := c.Get(f.ctx, 1, 2); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get past the end: %v, want ErrNotFound", err)
	}
	if _, err := c.Get(f.ctx, 7, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a missing partition: %v, want ErrNotFound", err)
	}
}

func TestOrderState(t *testing.T) {
	f := newFixture(t)
	f.produce(
		f.state(&processor.State{OrderID: "pi_s", Status: processor.StatusInProgress}),
		f.state(&processor.State{OrderID: "pi_other", Status: processor.StatusCompleted}),
		f.state(&processor.State{OrderID: "pi_s", Status: processor.StatusCompleted, Replays: []string{"0/1"}}),
		f.state(&processor.State{OrderID: "pi_gone", Status: processor.StatusCompleted}),
		&kgo.Record{Topic: f.names.State, Partition: keyPartition("pi_gone", 3), Key: []byte("pi_gone")}, // tombstone
	)
	// A state written to another partition than the key's is still found.
	misplaced := f.state(&processor.State{OrderID: "pi_elsewhere", Status: processor.StatusParked})
	misplaced.Partition = (misplaced.Partition + 1) % 3
	f.produce(misplaced)

	c := f.client()
	st, err := c.OrderState(f.ctx, "pi_s")
	if err != nil || st.Status != processor.StatusCompleted || !slices.Equal(st.Replays, []string{"0/1"}) {
		t.Fatalf("OrderState(pi_s) = %+v, %v; want the latest value", st, err)
	}
	if st, err := c.OrderState(f.ctx, "pi_elsewhere"); err != nil || st.Status != processor.StatusParked {
		t.Errorf("OrderState(pi_elsewhere) = %+v, %v", st, err)
	}
	for _, id := range []string{"pi_gone", "pi_never"} {
		if _, err := c.OrderState(f.ctx, id); !errors.Is(err, ErrOrderNotFound) {
			t.Errorf("OrderState(%s): %v, want ErrOrderNotFound", id, err)
		}
	}
	states, err := c.OrderStates(f.ctx, map[string]int32{"pi_s": -1, "pi_other": -1, "pi_never": -1, "pi_elsewhere": misplaced.Partition})
	if err != nil || len(states) != 3 || states["pi_other"].Status != processor.StatusCompleted || states["pi_elsewhere"] == nil {
		t.Errorf("OrderStates = %v, %v", states, err)
	}
}

// TestReplayOrderAndRate replays 10 dead letters at 20/s and reads them back
// from `orders`: same key and value, partition-offset order kept, spaced by
// the rate.
func TestReplayOrderAndRate(t *testing.T) {
	f := newFixture(t)
	var rs []*kgo.Record
	for i := range 10 {
		rs = append(rs, f.deadLetter(fmt.Sprintf("pi_%d", i%2), int32(i%2), "crm", "exhausted", 0))
	}
	f.produce(rs...)
	c := f.client()
	ds, err := c.List(f.ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := c.Plan(f.ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	var progress []int
	sum, err := c.Replay(f.ctx, plan, ReplayOptions{Rate: 20, Progress: func(p Progress) { progress = append(progress, p.Done) }})
	if err != nil || sum.Replayed != 10 || sum.Failed != 0 {
		t.Fatalf("Replay = %+v, %v", sum, err)
	}
	if len(progress) != 10 || progress[9] != 10 {
		t.Errorf("progress calls %v", progress)
	}
	got := readAll(t, f, f.names.Orders, 10)
	var first, last time.Time
	perPartition := map[int32][]string{}
	for _, r := range got {
		if first.IsZero() || r.Timestamp.Before(first) {
			first = r.Timestamp
		}
		if r.Timestamp.After(last) {
			last = r.Timestamp
		}
		src := ""
		for _, h := range r.Headers {
			if h.Key == topics.HeaderReplaySource {
				src = string(h.Value)
			}
		}
		perPartition[r.Partition] = append(perPartition[r.Partition], src)
	}
	if span := last.Sub(first); span < 400*time.Millisecond {
		t.Errorf("10 records at 20/s took %v, want at least ~450ms", span)
	}
	for p, srcs := range perPartition {
		want := []string{}
		for i := range 5 {
			want = append(want, topics.Source(p, int64(i)))
		}
		if !slices.Equal(srcs, want) {
			t.Errorf("partition %d replayed %v, want %v", p, srcs, want)
		}
	}
}

// readAll reads n records of topic from the start.
func readAll(t *testing.T, f *fixture, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(f.ctx)
		if f.ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(out), n, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// EachDigest reads a state record's digest header when it checks and
// decodes the value otherwise; a tombstone is nil, an unreadable value
// skipped.
func TestEachDigest(t *testing.T) {
	f := newFixture(t)
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	mk := func(id string, status processor.Status) *processor.State {
		return &processor.State{Version: 1, OrderID: id, Status: status, CreatedAt: at, UpdatedAt: at}
	}
	withHeader := f.state(mk("pi_h", processor.StatusCompleted))
	// A header of another status, made for this value: trusted, so what
	// EachDigest gives comes from the header.
	other := processor.DigestOf(mk("pi_h", processor.StatusRefunded))
	withHeader.Headers = []kgo.RecordHeader{{Key: topics.HeaderStateDigest, Value: processor.AppendDigest(nil, &other, withHeader.Value)}}
	stale := f.state(mk("pi_s", processor.StatusCompleted))
	stale.Headers = withHeader.Headers // made for another value: not trusted
	plain := f.state(mk("pi_p", processor.StatusParked))
	gone := f.state(mk("pi_g", processor.StatusCompleted))
	tomb := &kgo.Record{Topic: f.names.State, Partition: gone.Partition, Key: gone.Key}
	bad := &kgo.Record{Topic: f.names.State, Partition: 0, Key: []byte("pi_bad"), Value: []byte("\x00garbage")}
	f.produce(withHeader, stale, plain, gone, tomb, bad)
	got := map[string]string{}
	skipped, err := f.client().EachDigest(f.ctx, func(key string, d *processor.Digest) {
		if d == nil {
			got[key] = "tombstone"
			return
		}
		got[key] = d.OrderID + " " + string(d.Status)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"pi_h": "pi_h refunded", "pi_s": "pi_s completed", "pi_p": "pi_p parked", "pi_g": "tombstone"}
	if fmt.Sprint(got) != fmt.Sprint(want) || skipped != 1 {
		t.Errorf("EachDigest = %v, skipped %d; want %v, skipped 1", got, skipped, want)
	}
}
