package quota_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/integrations/quota"
	"github.com/orderflow/orderflow/test/testenv"
)

func client(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: addr, DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond,
		WriteTimeout: 300 * time.Millisecond, MaxRetries: -1,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// processor is one processor's view: its own Redis client and Quotas.
func processor(t *testing.T, addr, prefix string, mod func(*quota.Config)) *quota.Quotas {
	t.Helper()
	cfg := quota.Config{Redis: client(t, addr), Prefix: prefix}
	if mod != nil {
		mod(&cfg)
	}
	q, err := quota.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func limiter(t *testing.T, q *quota.Quotas, l quota.Limit) *quota.Limiter {
	t.Helper()
	lim, err := q.Limiter(l)
	if err != nil {
		t.Fatal(err)
	}
	return lim
}

func try(t *testing.T, l *quota.Limiter) (func(), time.Duration) {
	t.Helper()
	rel, wait, err := l.TryAcquire(context.Background())
	if err != nil {
		t.Fatalf("TryAcquire: %v", err)
	}
	return rel, wait
}

// Two processors share one rate: 5 per minute in bursts of 5 means five
// calls between them, then a wait of about 12 s (60 s / 5).
func TestRateSharedByProcessors(t *testing.T) {
	addr, prefix := testenv.Redis(t), testenv.Prefix(t)+":"
	l := quota.Limit{Name: "airtable:app1", Rate: 5, Period: time.Minute}
	a := limiter(t, processor(t, addr, prefix, nil), l)
	b := limiter(t, processor(t, addr, prefix, nil), l)
	admitted := 0
	for i := range 5 {
		lim := []*quota.Limiter{a, b}[i%2]
		rel, wait := try(t, lim)
		if rel == nil {
			t.Fatalf("call %d refused (wait %v) within the burst", i+1, wait)
		}
		rel()
		admitted++
	}
	rel, wait := try(t, b)
	if rel != nil {
		t.Fatal("a sixth call in the same minute was admitted")
	}
	if wait < 10*time.Second || wait > 12*time.Second {
		t.Fatalf("wait %v, want about 12s", wait)
	}
	if a.Mode() != quota.Shared || b.Mode() != quota.Shared {
		t.Fatal("not shared with Redis up")
	}
	// Another limit name is not affected.
	other := limiter(t, processor(t, addr, prefix, nil), quota.Limit{Name: "airtable:app2", Rate: 5, Period: time.Minute})
	if rel, _ := try(t, other); rel == nil {
		t.Fatal("another base's limit is affected")
	}
}

// Concurrency is bounded across processors, a release frees a slot, and a
// slot never released expires after LeaseTTL.
func TestConcurrencySharedWithExpiry(t *testing.T) {
	addr, prefix := testenv.Redis(t), testenv.Prefix(t)+":"
	l := quota.Limit{Name: "zoho", Concurrency: 2, LeaseTTL: 400 * time.Millisecond}
	a := limiter(t, processor(t, addr, prefix, nil), l)
	b := limiter(t, processor(t, addr, prefix, nil), l)
	r1, _ := try(t, a)
	r2, _ := try(t, b)
	if r1 == nil || r2 == nil {
		t.Fatal("two slots of two not granted")
	}
	if r3, wait := try(t, a); r3 != nil || wait <= 0 {
		t.Fatal("a third call in flight was admitted")
	}
	r1()
	r1() // a second release changes nothing
	r3, _ := try(t, b)
	if r3 == nil {
		t.Fatal("the released slot was not granted")
	}
	if r4, _ := try(t, a); r4 != nil {
		t.Fatal("a double release freed two slots")
	}
	// r2 and r3 are never released (their holders "crashed").
	start := time.Now()
	deadline := start.Add(10 * time.Second)
	for {
		rel, _ := try(t, a)
		if rel != nil {
			rel()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("expired leases never freed their slots")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Fatalf("slot free after %v, before the lease TTL", el)
	}
}

// Acquire waits for a slot, taking turns, and gives up with its context.
func TestAcquireWaitsForSlot(t *testing.T) {
	addr, prefix := testenv.Redis(t), testenv.Prefix(t)+":"
	l := quota.Limit{Name: "zoho", Concurrency: 1}
	a := limiter(t, processor(t, addr, prefix, nil), l)
	b := limiter(t, processor(t, addr, prefix, func(c *quota.Config) { c.PollInterval = 5 * time.Millisecond }), l)
	held, err := a.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := b.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with the slot held: %v, want the context's deadline", err)
	}
	got := make(chan error, 1)
	go func() {
		rel, err := b.Acquire(context.Background())
		if rel != nil {
			rel()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("Acquire returned (%v) while the slot was held", err)
	case <-time.After(50 * time.Millisecond):
	}
	held()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Acquire did not get the released slot")
	}
}

// A 429 seen by one processor pauses all; a shorter pause does not cut a
// longer one.
func TestPauseSlowsEveryProcessor(t *testing.T) {
	addr, prefix := testenv.Redis(t), testenv.Prefix(t)+":"
	l := quota.Limit{Name: "telegram", Rate: 100}
	a := limiter(t, processor(t, addr, prefix, nil), l)
	b := limiter(t, processor(t, addr, prefix, nil), l)
	a.Pause(context.Background(), 5*time.Second)
	rel, wait := try(t, b)
	if rel != nil || wait < 4*time.Second || wait > 5*time.Second {
		t.Fatalf("other processor: admitted %v, wait %v; want a wait of about 5s", rel != nil, wait)
	}
	b.Pause(context.Background(), time.Second)
	c := limiter(t, processor(t, addr, prefix, nil), l)
	if _, wait := try(t, c); wait < 4*time.Second {
		t.Fatalf("a shorter pause cut the longer one: wait %v", wait)
	}
}

// A daily quota marked exhausted by one processor stops all at once, with
// the reason and the reset time.
func TestExhaustedShared(t *testing.T) {
	addr, prefix := testenv.Redis(t), testenv.Prefix(t)+":"
	l := quota.Limit{Name: "zoho", Concurrency: 10}
	a := limiter(t, processor(t, addr, prefix, nil), l)
	b := limiter(t, processor(t, addr, prefix, nil), l)
	reset := time.Now().Add(time.Hour)
	a.Exhaust(context.Background(), reset, "API credits used up")
	_, _, err := b.TryAcquire(context.Background())
	var ee *quota.ExhaustedError
	if !errors.As(err, &ee) || !errors.Is(err, quota.ErrExhausted) {
		t.Fatalf("err = %v, want *ExhaustedError", err)
	}
	if ee.Reason != "API credits used up" || ee.Limit != "zoho" || ee.Until.Sub(reset).Abs() > 2*time.Second {
		t.Fatalf("exhausted error %+v, want reason, limit and until %v", ee, reset)
	}
	if _, err := b.Acquire(context.Background()); !errors.Is(err, quota.ErrExhausted) {
		t.Fatalf("Acquire waits or succeeds while exhausted: %v", err)
	}
	c := limiter(t, processor(t, addr, prefix, nil), l)
	until, why, ok := c.Exhausted(context.Background())
	if !ok || why != "API credits used up" || until.Sub(reset).Abs() > 2*time.Second {
		t.Fatalf("Exhausted = %v %q %v", until, why, ok)
	}
	if !strings.Contains(err.Error(), "quota zoho exhausted until") {
		t.Errorf("error text %q", err)
	}
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Redis down: each processor keeps to its share (limit ÷ live processors),
// says so in a log line and through OnModeChange, and shares again once
// Redis is back.
func TestRedisDownFallsBackToShare(t *testing.T) {
	rs := testenv.NewRedis(t)
	var logs logBuf
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	var modesMu sync.Mutex
	var modes []string
	q := processor(t, rs.Addr(), "q:", func(c *quota.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c.Peers = func() int { return 2 }
		c.Now = clock.Now
		c.RetryInterval = time.Second
		c.OnModeChange = func(name string, m quota.Mode) {
			modesMu.Lock()
			modes = append(modes, name+"="+m.String())
			modesMu.Unlock()
		}
	})
	rate := limiter(t, q, quota.Limit{Name: "airtable:app1", Rate: 6, Period: time.Minute})
	conc := limiter(t, q, quota.Limit{Name: "zoho", Concurrency: 4})
	if r, _ := try(t, rate); r == nil || rate.Mode() != quota.Shared {
		t.Fatal("Redis up: not admitted or not shared")
	}

	rs.Stop()
	// Rate share: 6/min ÷ 2 = 3/min in bursts of 3, and at most 3 in any
	// minute.
	for i := range 3 {
		if r, wait := try(t, rate); r == nil {
			t.Fatalf("fallback call %d refused (wait %v)", i+1, wait)
		}
	}
	if rate.Mode() != quota.Fallback {
		t.Fatal("mode is not fallback with Redis down")
	}
	// The three fill the minute's share (floor(6 ÷ 2) in any minute): the
	// fourth waits until the first has left the window, a minute, and the
	// 100 ms margin for the calls' arrival.
	r, wait := try(t, rate)
	if r != nil || wait != time.Minute+100*time.Millisecond {
		t.Fatalf("fourth call: admitted %v, wait %v; want a wait of 1m0.1s", r != nil, wait)
	}
	clock.Advance(time.Minute + 100*time.Millisecond)
	// Redis is tried again (RetryInterval passed), fails, and the share
	// admits one more.
	if r, wait := try(t, rate); r == nil {
		t.Fatalf("after a minute: refused, wait %v", wait)
	}
	// Concurrency share: 4 ÷ 2 = 2.
	c1, _ := try(t, conc)
	c2, _ := try(t, conc)
	if c1 == nil || c2 == nil {
		t.Fatal("fallback concurrency share of 2 not granted")
	}
	if c3, _ := try(t, conc); c3 != nil {
		t.Fatal("a third call in flight admitted over the share of 2")
	}
	c1()
	if c3, _ := try(t, conc); c3 == nil {
		t.Fatal("a released local slot was not granted")
	}
	// A pause works locally while Redis is down.
	conc.Pause(context.Background(), 3*time.Second)
	if _, wait := try(t, conc); wait != 3*time.Second {
		t.Fatalf("local pause: wait %v, want 3s", wait)
	}
	if !strings.Contains(logs.String(), "quota: Redis unavailable, this processor keeps to its share") ||
		!strings.Contains(logs.String(), "limit=airtable:app1") || !strings.Contains(logs.String(), "rate_share=3") ||
		!strings.Contains(logs.String(), "concurrency_share=2") {
		t.Fatalf("logs lack the fallback line: %s", logs.String())
	}
	if n := strings.Count(logs.String(), "limit=airtable:app1 peers=2"); n != 1 {
		t.Fatalf("fallback logged %d times for one outage, want once", n)
	}

	rs.Start(t)
	deadline := time.Now().Add(20 * time.Second)
	for rate.Mode() != quota.Shared {
		if time.Now().After(deadline) {
			t.Fatal("never shared again after Redis came back")
		}
		clock.Advance(time.Second)
		if r, _ := try(t, rate); r != nil {
			r()
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "quota: Redis reachable again") {
		t.Fatalf("no recovery line: %s", logs.String())
	}
	modesMu.Lock()
	defer modesMu.Unlock()
	want := []string{"airtable:app1=fallback", "zoho=fallback", "airtable:app1=shared"}
	if strings.Join(modes, ",") != strings.Join(want, ",") {
		t.Fatalf("mode changes %v, want %v", modes, want)
	}
}

func TestValidate(t *testing.T) {
	if _, err := quota.New(quota.Config{RetryInterval: -time.Second}); err == nil {
		t.Fatal("a negative interval accepted")
	}
	q, err := quota.New(quota.Config{Redis: redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []quota.Limit{{}, {Name: "a b"}, {Name: "x{y}"}, {Name: "x", Rate: -1}, {Name: "x", Concurrency: -1}, {Name: "x", Period: -time.Second}, {Name: "x", LeaseTTL: time.Microsecond}} {
		if _, err := q.Limiter(l); err == nil {
			t.Errorf("limit %+v accepted", l)
		}
	}
}
