package quota

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Transport puts a Limiter in front of a provider client's HTTP requests,
// so a client gets the fleet's shared limits without code of its own: give
// the client &http.Client{Transport: t}.
//
// Each request (those Match accepts) first waits in Acquire; the slot is
// released when the response body is closed (or the request fails). An
// answer 429, or any answer with a Retry-After header, pauses the limit for
// every processor: Retry-After's duration, else PauseOn429.
type Transport struct {
	Limiter *Limiter
	// Base sends the requests; required.
	Base http.RoundTripper
	// Match selects the requests the limit applies to; nil means all (a
	// client whose token endpoint shares the HTTP client leaves it out).
	Match func(*http.Request) bool
	// Timeout bounds one request after its slot is granted, reading the
	// body included (the wait for a slot is bounded by the request's
	// context, the step deadline); 0 means none.
	Timeout time.Duration
	// PauseOn429 is the pause after a 429 without Retry-After (Airtable's
	// 30 s penalty, for example); default one second.
	PauseOn429 time.Duration
	// MaxPause, when > 0, caps a pause: a longer wait (a daily quota's
	// Retry-After) is a quota the processor holds the step for, not a rate
	// to wait out with every request of the provider blocked.
	MaxPause time.Duration
	// OnPause, if set, is told of every pause this processor starts.
	OnPause func(d time.Duration)
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Match != nil && !t.Match(req) {
		return t.Base.RoundTrip(req)
	}
	release, err := t.Limiter.Acquire(req.Context())
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	cancel := context.CancelFunc(func() {})
	if t.Timeout > 0 {
		var ctx context.Context
		ctx, cancel = context.WithTimeout(req.Context(), t.Timeout)
		req = req.WithContext(ctx)
	}
	resp, err := t.Base.RoundTrip(req)
	if err != nil {
		cancel()
		release()
		return nil, err
	}
	if d, ok := t.pauseFor(resp); ok {
		if t.MaxPause > 0 {
			d = min(d, t.MaxPause)
		}
		t.Limiter.Pause(req.Context(), d)
		if t.OnPause != nil {
			t.OnPause(d)
		}
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, done: func() { cancel(); release() }}
	return resp, nil
}

// pauseFor is the pause resp asks for: its Retry-After (seconds or an HTTP
// date), else PauseOn429 for a 429.
func (t *Transport) pauseFor(resp *http.Response) (time.Duration, bool) {
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(ra); err == nil && s > 0 {
			return time.Duration(s) * time.Second, true
		}
		if at, err := http.ParseTime(ra); err == nil {
			if d := time.Until(at); d > 0 {
				return d, true
			}
		}
	}
	if resp.StatusCode != http.StatusTooManyRequests {
		return 0, false
	}
	if t.PauseOn429 > 0 {
		return t.PauseOn429, true
	}
	return time.Second, true
}

// releasingBody releases the slot once, when the body is closed.
type releasingBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}
