package airtable

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// fakeClock moves only when told or when the limiter sleeps.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sleep records the wait and advances the clock by it.
func (c *fakeClock) sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return nil
}

func (c *fakeClock) slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum time.Duration
	for _, d := range c.sleeps {
		sum += d
	}
	return sum
}

// recordingClock keeps time still and records each wait, so concurrent
// callers' turns can be compared.
type recordingClock struct {
	mu    sync.Mutex
	t     time.Time
	waits []time.Duration
}

func (c *recordingClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *recordingClock) sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	return nil
}

func TestLimiterGivesEachConcurrentCallerItsOwnTurn(t *testing.T) {
	l := newLimiter(5)
	clock := &recordingClock{t: time.Unix(1_800_000_000, 0)}
	l.now, l.sleep = clock.now, clock.sleep
	const n = 10
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.wait(context.Background(), "test"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// One caller goes at once; the others wait 200 ms, 400 ms, ... 1.8 s:
	// never more than 5 requests in any second.
	sort.Slice(clock.waits, func(i, j int) bool { return clock.waits[i] < clock.waits[j] })
	if len(clock.waits) != n-1 {
		t.Fatalf("%d callers waited, want %d", len(clock.waits), n-1)
	}
	for i, d := range clock.waits {
		if want := time.Duration(i+1) * 200 * time.Millisecond; d != want {
			t.Errorf("wait %d = %v, want %v", i, d, want)
		}
	}
}

func TestLimiterIdleBaseDoesNotWait(t *testing.T) {
	l := newLimiter(5)
	clock := &recordingClock{t: time.Unix(1_800_000_000, 0)}
	l.now, l.sleep = clock.now, clock.sleep
	for i := 0; i < 3; i++ {
		if err := l.wait(context.Background(), "test"); err != nil {
			t.Fatal(err)
		}
		clock.mu.Lock()
		clock.t = clock.t.Add(time.Second) // requests a second apart
		clock.mu.Unlock()
	}
	if len(clock.waits) != 0 {
		t.Errorf("waited %v though requests were a second apart", clock.waits)
	}
}

func TestLimiterWaitEndsWithTheContext(t *testing.T) {
	l := newLimiter(5)
	clock := &recordingClock{t: time.Now()}
	l.now, l.sleep = clock.now, clock.sleep
	for i := 0; i < 5; i++ { // book the next second
		if err := l.wait(context.Background(), "test"); err != nil {
			t.Fatal(err)
		}
	}
	// A caller whose context ends before its turn gets a transient error
	// when it ends, not at once.
	var waited time.Duration
	l.sleep = func(ctx context.Context, d time.Duration) error {
		waited = d
		<-ctx.Done()
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := l.wait(ctx, "test")
	if err == nil || integrations.IsPermanent(err) || waited != time.Second {
		t.Fatalf("err = %v after waiting for %v; want transient after starting a 1s wait", err, waited)
	}
	// It gave back its turn.
	l.sleep = clock.sleep
	if err := l.wait(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if last := clock.waits[len(clock.waits)-1]; last != time.Second {
		t.Errorf("next caller waits %v, want 1s", last)
	}
}

func TestLimiterWithoutRate(t *testing.T) {
	l := newLimiter(0)
	clock := &recordingClock{t: time.Unix(1_800_000_000, 0)}
	l.now, l.sleep = clock.now, clock.sleep
	for i := 0; i < 20; i++ {
		if err := l.wait(context.Background(), "test"); err != nil {
			t.Fatal(err)
		}
	}
	if len(clock.waits) != 0 {
		t.Errorf("waited %v without a rate", clock.waits)
	}
	l.pause(30 * time.Second)
	if d, _ := integrations.RetryAfterOf(l.wait(context.Background(), "test")); d != 30*time.Second {
		t.Errorf("pause without a rate: retry after %v, want 30s", d)
	}
}

func TestLimiterPause(t *testing.T) {
	l := newLimiter(5)
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l.now, l.sleep = clock.now, clock.sleep
	l.pause(30 * time.Second)
	err := l.wait(context.Background(), "test")
	if d, _ := integrations.RetryAfterOf(err); d != 30*time.Second {
		t.Fatalf("err = %v, want RetryAfter 30s", err)
	}
	clock.advance(30 * time.Second)
	if err := l.wait(context.Background(), "test"); err != nil {
		t.Fatalf("after the pause: %v", err)
	}
}
