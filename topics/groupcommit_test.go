package topics_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/orderflow/orderflow/test/testenv"
	"github.com/orderflow/orderflow/topics"
)

// groupProducer returns a GroupProducer on a fresh manual-flushing client
// producing to topic, and its client.
func groupProducer(t *testing.T, brokers, topic string, opts ...kgo.Opt) (*topics.GroupProducer, *kgo.Client) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ManualFlushing()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	gp := topics.NewGroupProducer(cl, 5*time.Second)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = gp.Close(ctx)
		cl.Close()
	})
	return gp, cl
}

// readAll reads topic from the start until want records arrived or 30 s
// passed, then 1 s more to see any extra.
func readAll(t *testing.T, brokers, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if soon := time.Now().Add(time.Second); len(recs) >= want && soon.Before(deadline) {
			deadline = soon
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		fs := cl.PollFetches(ctx)
		cancel()
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// Concurrent writers share produce requests; every record is acknowledged
// with its partition and offset and lands once.
func TestGroupProducerGroupsConcurrentRecords(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers, 12)
	var requests sync.Mutex
	nreq := 0
	gp, _ := groupProducer(t, brokers, names.Orders, kgo.WithHooks(writeHook(func(key int16) {
		if key == 0 {
			requests.Lock()
			nreq++
			requests.Unlock()
		}
	})))

	const workers, each = 64, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r, err := gp.ProduceSync(context.Background(), &kgo.Record{Key: []byte(fmt.Sprintf("pi_w%02d_%02d", w, i)), Value: []byte("v")})
				if err == nil && (r.Offset < 0 || r.Partition < 0 || r.Partition >= 12) {
					err = fmt.Errorf("acknowledged record at partition %d offset %d", r.Partition, r.Offset)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("produce: %v", err)
	}
	groups, records := gp.Groups()
	requests.Lock()
	n := nreq
	requests.Unlock()
	if records != workers*each {
		t.Errorf("%d records sent in groups, want %d", records, workers*each)
	}
	if groups == 0 || records/groups < 4 || n > int(groups)+5 {
		t.Errorf("%d groups and %d produce requests for %d records from %d concurrent writers: want several records per group, one request per group",
			groups, n, records, workers)
	}
	recs := readAll(t, brokers, names.Orders, workers*each)
	seen := map[string]int{}
	for _, r := range recs {
		seen[string(r.Key)]++
	}
	if len(recs) != workers*each || len(seen) != workers*each {
		t.Errorf("topic holds %d records with %d distinct keys, want %d of each", len(recs), len(seen), workers*each)
	}
}

type writeHook func(key int16)

func (h writeHook) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	h(key)
}

// A record whose context ended while it queued fails with that error and is
// never produced; the records after it go on.
func TestGroupProducerDropsExpiredRecords(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers, 3)
	gp, _ := groupProducer(t, brokers, names.Orders)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := gp.ProduceSync(ctx, &kgo.Record{Key: []byte("pi_expired"), Value: []byte("v")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("expired record: %v, want context.Canceled", err)
	}
	if _, err := gp.ProduceSync(context.Background(), &kgo.Record{Key: []byte("pi_live"), Value: []byte("v")}); err != nil {
		t.Fatalf("live record: %v", err)
	}
	recs := readAll(t, brokers, names.Orders, 1)
	if len(recs) != 1 || string(recs[0].Key) != "pi_live" {
		t.Errorf("topic holds %d records, want only pi_live", len(recs))
	}
}

// Close sends what is queued and then refuses records; the client stays
// usable.
func TestGroupProducerClose(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers, 3)
	gp, cl := groupProducer(t, brokers, names.Orders)
	const n = 50
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		gp.Produce(context.Background(), &kgo.Record{Key: []byte(fmt.Sprintf("pi_close%02d", i)), Value: []byte("v")},
			func(_ *kgo.Record, err error) { results <- err })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := gp.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	for i := 0; i < n; i++ {
		if err := <-results; err != nil {
			t.Errorf("record queued before Close: %v", err)
		}
	}
	if _, err := gp.ProduceSync(context.Background(), &kgo.Record{Key: []byte("pi_after"), Value: []byte("v")}); !errors.Is(err, topics.ErrProducerClosed) {
		t.Errorf("record after Close: %v, want ErrProducerClosed", err)
	}
	if err := cl.Ping(ctx); err != nil {
		t.Errorf("client after Close: %v", err)
	}
	if got := len(readAll(t, brokers, names.Orders, n)); got != n {
		t.Errorf("topic holds %d records, want %d", got, n)
	}
}

// stalledCluster is an in-process kfake cluster that holds every produce
// request unanswered until release is called: the broker received it and
// does not answer, as a broker behind a network partition or in a long
// pause would. arrived is signalled for each held request.
type stalledCluster struct {
	c       *kfake.Cluster
	arrived chan struct{}
	release func()
}

func newStalledCluster(t *testing.T, topic string) *stalledCluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	var once sync.Once
	s := &stalledCluster{c: c, arrived: make(chan struct{}, 64), release: func() { once.Do(func() { close(released) }) }}
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case <-released:
			return nil, nil, false
		default:
		}
		select {
		case s.arrived <- struct{}{}:
		default:
		}
		c.SleepControl(func() { <-released })
		return nil, nil, false // then answer it as usual
	})
	t.Cleanup(func() { s.release(); c.Close() })
	return s
}

func (s *stalledCluster) waitArrived(t *testing.T) {
	t.Helper()
	select {
	case <-s.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no produce request reached the broker within 10 s")
	}
}

// ProduceSync returns when its context ends even when the record's produce
// request is already at the broker and unanswered, which the client cannot
// fail (an idempotent record in flight): the processor's state writes and
// with them OnPartitionsRevoked depend on that bound.
func TestGroupProducerProduceSyncHonoursContext(t *testing.T) {
	t.Parallel()
	const topic = "stalled"
	s := newStalledCluster(t, topic)
	gp, _ := groupProducer(t, s.c.ListenAddrs()[0], topic)

	type outcome struct {
		rec *kgo.Record
		err error
		in  time.Duration
	}
	res := make(chan outcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		r, err := gp.ProduceSync(ctx, &kgo.Record{Key: []byte("pi_stalled"), Value: []byte("v")})
		res <- outcome{r, err, time.Since(start)}
	}()
	s.waitArrived(t)
	select {
	case o := <-res:
		if !errors.Is(o.err, topics.ErrNotAcknowledged) || !errors.Is(o.err, context.DeadlineExceeded) {
			t.Errorf("ProduceSync of an unanswered record: %v, want ErrNotAcknowledged and context.DeadlineExceeded", o.err)
		}
		if o.rec != nil {
			t.Errorf("ProduceSync returned the record the client still owns")
		}
		if o.in > 3*time.Second {
			t.Errorf("ProduceSync returned after %v with a 300 ms timeout", o.in)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ProduceSync still waiting 5 s into a 300 ms timeout while its request is unanswered")
	}

	// Once the broker answers, the stalled record lands and the producer
	// goes on.
	s.release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := gp.ProduceSync(ctx, &kgo.Record{Key: []byte("pi_after"), Value: []byte("v")})
	if err != nil {
		t.Fatalf("record after the broker answered: %v", err)
	}
	if r.Offset != 1 {
		t.Errorf("record after the stalled one at offset %d, want 1 (the stalled one at 0)", r.Offset)
	}
}

// When Close gives up, every record still queued behind the group on its
// way has its promise called with ErrProducerClosed at once; none is left
// waiting.
func TestGroupProducerCloseTimeoutFailsQueued(t *testing.T) {
	t.Parallel()
	const topic = "stalled"
	s := newStalledCluster(t, topic)
	gp, cl := groupProducer(t, s.c.ListenAddrs()[0], topic)

	first := make(chan error, 1)
	gp.Produce(context.Background(), &kgo.Record{Key: []byte("pi_inflight"), Value: []byte("v")},
		func(_ *kgo.Record, err error) { first <- err })
	s.waitArrived(t) // the first group is at the broker, unanswered

	const queued = 5
	results := make(chan error, queued)
	for i := 0; i < queued; i++ {
		gp.Produce(context.Background(), &kgo.Record{Key: []byte(fmt.Sprintf("pi_queued%d", i)), Value: []byte("v")},
			func(_ *kgo.Record, err error) { results <- err })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := gp.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with the broker not answering: %v, want context.DeadlineExceeded", err)
	}
	for i := 0; i < queued; i++ {
		select {
		case err := <-results:
			if !errors.Is(err, topics.ErrProducerClosed) {
				t.Errorf("queued record after Close gave up: %v, want ErrProducerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d queued records still without an outcome 5 s after Close gave up", queued-i, queued)
		}
	}
	// The group that was on its way is the client's: closing the client
	// fails it.
	cl.Close()
	select {
	case err := <-first:
		if err == nil {
			t.Error("the record in flight succeeded although the broker never answered")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the record in flight has no outcome 10 s after the client closed")
	}
}
