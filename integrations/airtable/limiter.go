package airtable

import (
	"context"
	"fmt"
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

// newLimiter returns a limiter for perSecond requests per second; 0 means
// no spacing (only the pause after a 429).
func newLimiter(perSecond float64) *limiter {
	l := &limiter{now: time.Now, sleep: integrations.Sleep}
	if perSecond > 0 {
		l.interval = time.Duration(float64(time.Second) / perSecond)
	}
	return l
}

// wait blocks until the caller may send a request, or until ctx ends. It
// fails at once, with a transient error saying how long to wait, when the
// base is paused after a 429; that uses up no turn. A wait cut short by ctx
// gives back its turn if no later turn has been booked.
func (l *limiter) wait(ctx context.Context, op string) error {
	l.mu.Lock()
	now := l.now()
	if now.Before(l.pausedUntil) {
		d := l.pausedUntil.Sub(now)
		l.mu.Unlock()
		return &integrations.Error{Provider: provider, Op: op, Class: integrations.Transient, RetryAfter: d,
			Msg: "rate limited by Airtable; waiting out the penalty", Err: integrations.ErrThrottled}
	}
	slot := l.next
	if slot.Before(now) {
		slot = now
	}
	l.next = slot.Add(l.interval)
	booked := l.next
	l.mu.Unlock()
	if d := slot.Sub(now); d > 0 {
		if err := l.sleep(ctx, d); err != nil {
			l.mu.Lock()
			if l.next.Equal(booked) {
				l.next = slot
			}
			l.mu.Unlock()
			return &integrations.Error{Provider: provider, Op: op, Class: integrations.Transient, Msg: "waiting for a turn at the base", Err: fmt.Errorf("%w: %w", integrations.ErrThrottled, err)}
		}
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
