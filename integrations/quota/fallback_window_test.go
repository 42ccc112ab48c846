package quota_test

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations/quota"
)

// With Redis down, N processors (their own Quotas and clock phase, calling
// as fast as their share lets them) together never make more than the
// provider's 5 calls in any one-second window, whatever their phases. By
// hand: each may make floor(5 / N) calls in any second, so the fleet makes
// at most 2 × 2 = 4 (N = 2) or 3 × 1 = 3 (N = 3) in any second. An evenly
// spaced share alone (2.5 a second each, 0.4 s apart) lets two processors
// put 3 + 3 calls into one second.
func TestFallbackFleetKeepsToTheWindow(t *testing.T) {
	for _, tt := range []struct {
		peers      int
		phases     []time.Duration // when each processor makes its first call
		wantMax    int             // the fleet's most calls in one second, by hand
		wantPerSec int             // each processor's calls per second once going
	}{
		{2, []time.Duration{0, 100 * time.Millisecond}, 4, 2},
		{2, []time.Duration{0, 399 * time.Millisecond}, 4, 2},
		{3, []time.Duration{0, 130 * time.Millisecond, 270 * time.Millisecond}, 3, 1},
	} {
		start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		clock := &fakeClock{t: start}
		var lims []*quota.Limiter
		for range tt.peers {
			// Nothing listens on port 1: every Redis call fails at once.
			q := processor(t, "127.0.0.1:1", "w:", func(c *quota.Config) {
				c.Peers = func() int { return tt.peers }
				c.Now = clock.Now
				c.RetryInterval = time.Hour // Redis is tried once
			})
			// Airtable's limit as the processor builds it: 5 a second,
			// evenly spaced.
			lims = append(lims, limiter(t, q, quota.Limit{Name: "airtable:appW", Rate: 5, Period: time.Second, Burst: 1}))
		}
		var calls []time.Duration // since start, every processor's
		perProc := make([]int, tt.peers)
		const step, run = time.Millisecond, 10 * time.Second
		for now := time.Duration(0); now < run; now += step {
			for i, l := range lims {
				if now < tt.phases[i] {
					continue
				}
				if rel, _ := try(t, l); rel != nil {
					rel()
					calls = append(calls, now)
					perProc[i]++
				}
			}
			clock.Advance(step)
		}
		for _, l := range lims {
			if l.Mode() != quota.Fallback {
				t.Fatalf("N=%d: mode %v, want fallback", tt.peers, l.Mode())
			}
		}
		most := 0
		for i, c := range calls { // the second starting at each call
			n := 0
			for _, d := range calls[i:] {
				if d-c < time.Second {
					n++
				}
			}
			most = max(most, n)
		}
		if most != tt.wantMax {
			t.Errorf("N=%d phases %v: the fleet made %d calls in one second at most, want %d (limit 5)", tt.peers, tt.phases, most, tt.wantMax)
		}
		for i, n := range perProc {
			// At least its share over the run, less the last window: a
			// window of 1 s and the 100 ms margin for the arrivals.
			if n < tt.wantPerSec*int((run-tt.phases[i])/(1100*time.Millisecond)) {
				t.Errorf("N=%d: processor %d made %d calls in %v, want about %d a second", tt.peers, i+1, n, run-tt.phases[i], tt.wantPerSec)
			}
		}
	}
}

// The fallback's calls per window, by hand: Airtable's 5 a second less the
// fleet margin (4,750 per 1,000 s, evenly spaced) counts 4 whole calls in
// its second, 2 each for two processors; a bursty 6 a minute counts in its
// minute, 3 each for two.
func TestWindowShare(t *testing.T) {
	for _, tt := range []struct {
		l          quota.Limit
		peers      int
		wantCalls  int
		wantWindow time.Duration
	}{
		{quota.Limit{Name: "a", Rate: 4750, Period: 1000 * time.Second, Burst: 1}, 1, 4, time.Second},
		{quota.Limit{Name: "a", Rate: 4750, Period: 1000 * time.Second, Burst: 1}, 2, 2, time.Second},
		{quota.Limit{Name: "a", Rate: 4750, Period: 1000 * time.Second, Burst: 1}, 6, 1, time.Second},
		{quota.Limit{Name: "b", Rate: 6, Period: time.Minute}, 2, 3, time.Minute},
		{quota.Limit{Name: "c", Rate: 10, Period: time.Second, Burst: 1, Window: 10 * time.Second}, 3, 33, 10 * time.Second},
	} {
		q := processor(t, "127.0.0.1:1", "s:", func(c *quota.Config) { c.Peers = func() int { return tt.peers } })
		calls, window := limiter(t, q, tt.l).WindowShare()
		if calls != tt.wantCalls || window != tt.wantWindow {
			t.Errorf("%+v, %d peers: %d calls per %v, want %d per %v", tt.l, tt.peers, calls, window, tt.wantCalls, tt.wantWindow)
		}
	}
}
