package topics

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// lingerProducer is a GroupProducer with the given linger on an
// in-process kfake cluster that counts the records of each produce
// request reaching it, and holds the first one until release is called.
type lingerProducer struct {
	*GroupProducer
	mu       sync.Mutex
	requests []int // records per produce request, in arrival order
	arrived  chan struct{}
	release  func()
}

func newLingerProducer(t *testing.T, linger time.Duration) *lingerProducer {
	t.Helper()
	const topic = "linger"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	var once sync.Once
	lp := &lingerProducer{arrived: make(chan struct{}, 1), release: func() { once.Do(func() { close(released) }) }}
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		n := 0
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			for _, p := range tp.Partitions {
				var b kmsg.RecordBatch
				if err := b.ReadFrom(p.Records); err == nil {
					n += int(b.NumRecords)
				}
			}
		}
		lp.mu.Lock()
		lp.requests = append(lp.requests, n)
		first := len(lp.requests) == 1
		lp.mu.Unlock()
		if first {
			lp.arrived <- struct{}{}
			c.SleepControl(func() { <-released })
		}
		return nil, nil, false
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()[0]), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ManualFlushing())
	if err != nil {
		t.Fatal(err)
	}
	lp.GroupProducer = NewGroupProducer(cl, 5*time.Second)
	lp.SetLinger(linger)
	t.Cleanup(func() {
		lp.release()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = lp.Close(ctx)
		cl.Close()
		c.Close()
	})
	return lp
}

// busy makes the producer look as if a group of n records had just been
// acknowledged, at. The first produce request is let through.
func (lp *lingerProducer) busy(n int, at time.Time) {
	lp.release()
	lp.GroupProducer.mu.Lock()
	lp.lastGroup, lp.lastAck = n, at
	lp.GroupProducer.mu.Unlock()
}

func (lp *lingerProducer) sent() []int {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return append([]int(nil), lp.requests...)
}

// produce hands a record to Produce and returns a channel of its outcome.
func (lp *lingerProducer) produce(key string) <-chan error {
	done := make(chan error, 1)
	lp.Produce(context.Background(), &kgo.Record{Key: []byte(key), Value: []byte("v")}, func(_ *kgo.Record, err error) { done <- err })
	return done
}

// waitWaiting returns once a group lingers.
func (lp *lingerProducer) waitWaiting(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lp.GroupProducer.mu.Lock()
		w := lp.waiting
		lp.GroupProducer.mu.Unlock()
		if w {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no group lingered within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

func wantAcked(t *testing.T, what string, done <-chan error, within time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(within):
		t.Fatalf("%s: not acknowledged within %v", what, within)
	}
}

// A group of two records makes the producer busy: the group after it
// waits for more, and leaves once it holds LingerGroup records, as one
// request.
func TestLingerAfterAGroupOfTwo(t *testing.T) {
	lp := newLingerProducer(t, time.Minute)
	first := lp.produce("pi_000")
	<-lp.arrived // held at the broker: the next two queue behind it
	second, third := lp.produce("pi_001"), lp.produce("pi_002")
	lp.release()
	for i, ch := range []<-chan error{first, second, third} {
		wantAcked(t, fmt.Sprintf("record %d", i), ch, 10*time.Second)
	}
	if got := lp.sent(); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("records per produce request %v, want [1 2]", got)
	}

	chans := []<-chan error{lp.produce("pi_003")}
	lp.waitWaiting(t)
	for i := 4; i < 3+LingerGroup; i++ {
		if got := lp.sent(); len(got) != 2 {
			t.Fatalf("records per produce request %v while a group lingered, want [1 2]", got)
		}
		chans = append(chans, lp.produce(fmt.Sprintf("pi_%03d", i)))
	}
	for i, ch := range chans {
		wantAcked(t, fmt.Sprintf("record %d of the lingering group", 3+i), ch, 10*time.Second) // far below the minute's linger
	}
	if got := lp.sent(); len(got) != 3 || got[2] != LingerGroup {
		t.Errorf("records per produce request %v, want [1 2 %d]", got, LingerGroup)
	}
}

// The wait ends at the linger.
func TestLingerIsBounded(t *testing.T) {
	const linger = 50 * time.Millisecond
	lp := newLingerProducer(t, linger)
	lp.busy(2, time.Now())
	start := time.Now()
	wantAcked(t, "record", lp.produce("pi_a"), 10*time.Second)
	if in := time.Since(start); in < linger {
		t.Errorf("acknowledged after %v, before the linger of %v ended", in, linger)
	}
	if got := lp.sent(); len(got) != 1 || got[0] != 1 {
		t.Errorf("records per produce request %v, want [1]", got)
	}
}

// Nothing waits after a lone record, after a quiet spell, or without a
// linger.
func TestLingerOnlyWhenBusy(t *testing.T) {
	for _, c := range []struct {
		name   string
		linger time.Duration
		group  int
		ago    time.Duration
	}{
		{"after a lone record", time.Minute, 1, 0},
		{"after a quiet spell", time.Minute, 2, 11 * time.Minute},
		{"without a linger", 0, 100, 0},
		{"with a negative linger", -time.Second, 100, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			lp := newLingerProducer(t, c.linger)
			lp.busy(c.group, time.Now().Add(-c.ago))
			wantAcked(t, "record", lp.produce("pi_a"), 10*time.Second) // far below the minute's linger
		})
	}
}

// Close ends a wait and sends the group.
func TestLingerEndsOnClose(t *testing.T) {
	lp := newLingerProducer(t, time.Minute)
	lp.busy(2, time.Now())
	a := lp.produce("pi_a")
	lp.waitWaiting(t)
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		closed <- lp.Close(ctx)
	}()
	wantAcked(t, "record lingering when Close began", a, 10*time.Second)
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
}
