package airtable

import (
	"context"
	"sync"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// limiter spaces requests to one base evenly: at most one every interval
// (200 ms for Airtable's 5 requests per second per base), so a burst of
// orders never trips the limit and its 30-second penalty. After a 429 it
// refuses requests until the penalty is over, instead of letting callers
// prolong it.
//
// It is a token bucket of size one, written out because the module does not
// depend on golang.org/x/time/rate. The clock and sleep are fields so tests
// can count waits without timing anything.
type limiter struct {
	interval time.Duration
	now      func() time.Time
	sleep    func(ctx context.Context, d time.Duration) error

	mu          sync.Mutex
	next        time.Time // earliest start of the next request
	pausedUntil time.Time // no requests before this (after a 429)
}

func newLimiter(perSecond float64) *limiter {
	return &limiter{
		interval: time.Duration(float64(time.Second) / perSecond),
		now:      time.Now,
		sleep:    sleepCtx,
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait blocks until the caller may send a request. It fails at once, with a
// transient error saying how long to wait, when the base is paused after a
// 429 or when the caller's deadline would pass before its turn; neither
// case uses up a turn.
func (l *limiter) wait(ctx context.Context, op string) error {
	l.mu.Lock()
	now := l.now()
	if now.Before(l.pausedUntil) {
		d := l.pausedUntil.Sub(now)
		l.mu.Unlock()
		return &integrations.Error{Provider: provider, Op: op, Class: integrations.Transient, RetryAfter: d,
			Msg: "rate limited by Airtable; waiting out the penalty"}
	}
	slot := l.next
	if slot.Before(now) {
		slot = now
	}
	if dl, ok := ctx.Deadline(); ok && dl.Before(slot) {
		l.mu.Unlock()
		return &integrations.Error{Provider: provider, Op: op, Class: integrations.Transient, RetryAfter: slot.Sub(now),
			Msg: "request queue for the base is longer than the deadline"}
	}
	l.next = slot.Add(l.interval)
	l.mu.Unlock()
	if d := slot.Sub(now); d > 0 {
		return l.sleep(ctx, d)
	}
	return nil
}

// pause stops all requests for d.
func (l *limiter) pause(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	until := l.now().Add(d)
	if until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
	if l.next.Before(until) {
		l.next = until
	}
}
