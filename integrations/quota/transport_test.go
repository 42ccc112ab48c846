package quota_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/quota"
	"github.com/orderflow/orderflow/test/testenv"
)

// Without Redis a Limiter is Local: the whole limit for this processor,
// whatever Peers says, and no fallback.
func TestLocalWithoutRedis(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	q, err := quota.New(quota.Config{Peers: func() int { return 3 }, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	rate := limiter(t, q, quota.Limit{Name: "airtable:app1", Rate: 3, Period: time.Minute})
	conc := limiter(t, q, quota.Limit{Name: "zoho", Concurrency: 2})
	for i := range 3 {
		if r, wait := try(t, rate); r == nil {
			t.Fatalf("call %d refused (wait %v)", i+1, wait)
		}
	}
	if r, wait := try(t, rate); r != nil || wait != 20*time.Second {
		t.Fatalf("fourth call: admitted %v, wait %v; want a wait of 20s", r != nil, wait)
	}
	c1, _ := try(t, conc)
	c2, _ := try(t, conc)
	if c1 == nil || c2 == nil {
		t.Fatal("the local concurrency of 2 not granted")
	}
	if c3, _ := try(t, conc); c3 != nil {
		t.Fatal("a third call admitted over 2")
	}
	conc.Pause(context.Background(), 5*time.Second)
	c1()
	if _, wait := try(t, conc); wait != 5*time.Second {
		t.Fatalf("local pause: wait %v, want 5s", wait)
	}
	if rate.Mode() != quota.Local || conc.Mode() != quota.Local {
		t.Fatalf("modes %v %v, want local", rate.Mode(), conc.Mode())
	}
}

// fakeProvider counts requests in flight and answers scripted statuses.
type fakeProvider struct {
	inflight, maxInflight atomic.Int64
	requests              atomic.Int64
	hold                  chan struct{} // each request waits for a token
	mu                    sync.Mutex
	status                []int // per request, then 200
	retryAfter            string
}

func (f *fakeProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	n := f.inflight.Add(1)
	for {
		m := f.maxInflight.Load()
		if n <= m || f.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	if f.hold != nil {
		<-f.hold
	}
	f.inflight.Add(-1)
	f.mu.Lock()
	st := 200
	if len(f.status) > 0 {
		st, f.status = f.status[0], f.status[1:]
	}
	f.mu.Unlock()
	if st == http.StatusTooManyRequests && f.retryAfter != "" {
		w.Header().Set("Retry-After", f.retryAfter)
	}
	w.WriteHeader(st)
	_, _ = io.WriteString(w, "{}")
}

func transportClient(l *quota.Limiter, pause time.Duration) *http.Client {
	return &http.Client{Transport: &quota.Transport{Limiter: l, Base: http.DefaultTransport, PauseOn429: pause, Timeout: 10 * time.Second}}
}

func get(ctx context.Context, hc *http.Client, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// Three processors (each its own Redis client, Quotas and Transport) send
// 12 requests at once to a provider allowing 2 in flight: the provider
// never sees more than 2, and all 12 are answered.
func TestTransportConcurrencySharedByProcessors(t *testing.T) {
	rs := testenv.NewRedis(t)
	f := &fakeProvider{hold: make(chan struct{})}
	srv := httptest.NewServer(f)
	defer srv.Close()
	var clients []*http.Client
	for range 3 {
		q := processor(t, rs.Addr(), "t:", nil)
		clients = append(clients, transportClient(limiter(t, q, quota.Limit{Name: "zoho:app", Concurrency: 2, LeaseTTL: 30 * time.Second}), 0))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := get(ctx, clients[i%3], srv.URL)
			if err == nil && st != 200 {
				err = fmt.Errorf("status %d", st)
			}
			errs <- err
		}()
	}
	// Let the requests through one at a time, each time once the provider
	// holds as many as the limit allows (2, then the last one).
	for served := 0; served < 12; served++ {
		want := int64(min(2, 12-served))
		for f.inflight.Load() != want {
			if ctx.Err() != nil {
				t.Fatalf("after %d answered: %d in flight at the provider, want %d", served, f.inflight.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
		f.hold <- struct{}{}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if m := f.maxInflight.Load(); m != 2 {
		t.Fatalf("provider saw %d requests in flight at most, want 2 (the limit, reached)", m)
	}
}

// A 429 with Retry-After seen through one processor pauses the others:
// their next request waits, in Redis, for the pause.
func TestTransport429PausesEveryProcessor(t *testing.T) {
	rs := testenv.NewRedis(t)
	f := &fakeProvider{status: []int{429}, retryAfter: "7"}
	srv := httptest.NewServer(f)
	defer srv.Close()
	l := quota.Limit{Name: "mailgun:mg", Rate: 100}
	a := limiter(t, processor(t, rs.Addr(), "p:", nil), l)
	b := limiter(t, processor(t, rs.Addr(), "p:", nil), l)
	var pauses []time.Duration
	hc := &http.Client{Transport: &quota.Transport{Limiter: a, Base: http.DefaultTransport, OnPause: func(d time.Duration) { pauses = append(pauses, d) }}}
	if st, err := get(context.Background(), hc, srv.URL); err != nil || st != 429 {
		t.Fatalf("first request: %d %v, want the 429", st, err)
	}
	if len(pauses) != 1 || pauses[0] != 7*time.Second {
		t.Fatalf("pauses %v, want one of 7s", pauses)
	}
	rel, wait, err := b.TryAcquire(context.Background())
	if err != nil || rel != nil || wait < 6*time.Second || wait > 7*time.Second {
		t.Fatalf("other processor: admitted %v, wait %v, err %v; want a wait of about 7s", rel != nil, wait, err)
	}
	// A request of the other processor whose deadline (2 s) comes before
	// the pause ends (about 7 s) is not sent: it is answered at once with a
	// 429 and Retry-After 7, what is left of the pause in whole seconds,
	// rounded up; nothing was done, so the caller can wait and call again
	// instead of taking the call for cut off in flight.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("booking"))
	resp, err := transportClient(b, 0).Do(req)
	if err != nil {
		t.Fatalf("request during the pause: %v, want a 429", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" || ctx.Err() != nil {
		t.Fatalf("request during the pause: %d Retry-After %q, deadline passed %v; want 429, 7, answered before the deadline",
			resp.StatusCode, resp.Header.Get("Retry-After"), ctx.Err() != nil)
	}
	if n := f.requests.Load(); n != 1 {
		t.Fatalf("provider saw %d requests, want only the first", n)
	}
	if len(pauses) != 1 {
		t.Fatalf("pauses %v, want only the provider's", pauses)
	}
}

// A 429 without Retry-After pauses for PauseOn429 (Airtable's 30 s).
func TestTransport429WithoutRetryAfter(t *testing.T) {
	rs := testenv.NewRedis(t)
	f := &fakeProvider{status: []int{429}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	l := quota.Limit{Name: "airtable:app1", Rate: 5}
	a := limiter(t, processor(t, rs.Addr(), "p:", nil), l)
	b := limiter(t, processor(t, rs.Addr(), "p:", nil), l)
	if st, _ := get(context.Background(), transportClient(a, 30*time.Second), srv.URL); st != 429 {
		t.Fatalf("status %d, want 429", st)
	}
	if _, wait, _ := b.TryAcquire(context.Background()); wait < 29*time.Second {
		t.Fatalf("other processor waits %v, want about 30s", wait)
	}
}

// A Retry-After longer than MaxPause pauses the fleet for MaxPause only.
func TestTransportPauseCapped(t *testing.T) {
	rs := testenv.NewRedis(t)
	f := &fakeProvider{status: []int{429}, retryAfter: "86400"}
	srv := httptest.NewServer(f)
	defer srv.Close()
	l := quota.Limit{Name: "zoho:cap", Concurrency: 5}
	a := limiter(t, processor(t, rs.Addr(), "p:", nil), l)
	b := limiter(t, processor(t, rs.Addr(), "p:", nil), l)
	hc := &http.Client{Transport: &quota.Transport{Limiter: a, Base: http.DefaultTransport, MaxPause: time.Minute, Timeout: 10 * time.Second}}
	if st, _ := get(context.Background(), hc, srv.URL); st != 429 {
		t.Fatalf("status %d, want 429", st)
	}
	if _, wait, _ := b.TryAcquire(context.Background()); wait < 59*time.Second || wait > time.Minute {
		t.Fatalf("other processor waits %v, want at most the one-minute cap (not the day Retry-After asked)", wait)
	}
}

// Redis down: requests still go out, within this processor's share, and
// the limiter says it is in fallback.
func TestTransportRedisDown(t *testing.T) {
	rs := testenv.NewRedis(t)
	f := &fakeProvider{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	var modes []quota.Mode
	var mu sync.Mutex
	q := processor(t, rs.Addr(), "d:", func(c *quota.Config) {
		c.Peers = func() int { return 2 }
		c.OnModeChange = func(_ string, m quota.Mode) { mu.Lock(); modes = append(modes, m); mu.Unlock() }
	})
	l := limiter(t, q, quota.Limit{Name: "postnord:1", Concurrency: 4})
	rs.Stop()
	hc := transportClient(l, 0)
	for range 3 {
		if st, err := get(context.Background(), hc, srv.URL); err != nil || st != 200 {
			t.Fatalf("with Redis down: %d %v", st, err)
		}
	}
	if l.Mode() != quota.Fallback {
		t.Fatalf("mode %v, want fallback", l.Mode())
	}
	if _, conc := l.Share(); conc != 2 {
		t.Fatalf("share %d, want 4 ÷ 2 processors = 2", conc)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(modes) != 1 || modes[0] != quota.Fallback {
		t.Fatalf("mode changes %v, want one to fallback", modes)
	}
}

// A call whose context ends while it waits for a concurrency slot is held
// back by the limit, not failed by the provider: a 429 or an error saying
// so (integrations.IsThrottled), and nothing was sent.
func TestWaitForASlotCutShortIsThrottled(t *testing.T) {
	q, err := quota.New(quota.Config{})
	if err != nil {
		t.Fatal(err)
	}
	conc := limiter(t, q, quota.Limit{Name: "zoho-slot", Concurrency: 1})
	held, _ := try(t, conc)
	if held == nil {
		t.Fatal("the one slot not granted")
	}
	defer held()
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { sent.Add(1) }))
	defer srv.Close()
	cl := &http.Client{Transport: &quota.Transport{Base: http.DefaultTransport, Limiter: conc}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := cl.Do(req)
	switch {
	case err == nil:
		// Known in advance to outlast the deadline: a 429 at once.
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("answer %d, want 429 or a throttled error", resp.StatusCode)
		}
	case !integrations.IsThrottled(err):
		t.Fatalf("err = %v, want throttled", err)
	}
	if sent.Load() != 0 {
		t.Errorf("%d requests reached the provider", sent.Load())
	}
}

// A wait without a deadline, cut short by its caller: still held back by
// the limit (and still the caller's cancellation).
func TestWaitCancelledIsThrottled(t *testing.T) {
	q, err := quota.New(quota.Config{})
	if err != nil {
		t.Fatal(err)
	}
	conc := limiter(t, q, quota.Limit{Name: "zoho-cancel", Concurrency: 1})
	held, _ := try(t, conc)
	if held == nil {
		t.Fatal("the one slot not granted")
	}
	defer held()
	tr := &quota.Transport{Base: http.DefaultTransport, Limiter: conc}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:1/", nil)
	_, err = tr.RoundTrip(req)
	if !integrations.IsThrottled(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want throttled and cancelled", err)
	}
}
