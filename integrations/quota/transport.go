package quota

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// Transport puts a Limiter in front of a provider client's HTTP requests,
// so a client gets the fleet's shared limits without code of its own: give
// the client &http.Client{Transport: t}.
//
// Each request (those Match accepts) first waits in Acquire; the slot is
// released when the response body is closed (or the request fails). An
// answer 429, or any answer with a Retry-After header, pauses the limit for
// every processor: Retry-After's duration, else PauseOn429.
//
// A request whose wait (a pause, or the rate's turn) would not end before
// its context's deadline is not sent: it is answered at once, here, with a
// 429 whose Retry-After is the wait, rounded up to whole seconds. The client
// then reports what a provider's 429 means, that nothing was done, instead
// of a call cut off by its deadline, which for a step that is not
// idempotent is in doubt and looked up.
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
	// MaxPause, when > 0, caps a pause: a longer wait is not a rate to wait
	// out with every request of the provider blocked (a client that knows
	// it for a daily quota, as Zoho's, returns integrations.QuotaExhausted
	// and the processor holds the step; any other is retried).
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
		var de *DeadlineError
		if errors.As(err, &de) {
			return notSent(req, de), nil
		}
		// The wait for a slot or a turn ended with the call's context:
		// nothing was sent, and the provider did not fail.
		return nil, fmt.Errorf("%w: %w", integrations.ErrThrottled, err)
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

// notSent is the 429 a request gets when its wait outlasts its deadline.
func notSent(req *http.Request, e *DeadlineError) *http.Response {
	secs := max(1, int64((e.Wait+time.Second-1)/time.Second))
	body := e.Error()
	return &http.Response{
		Status: "429 Too Many Requests", StatusCode: http.StatusTooManyRequests,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{
			"Retry-After":  {strconv.FormatInt(secs, 10)},
			"Content-Type": {"text/plain; charset=utf-8"},
			// Not the provider's: integrations.HTTPError reads it as
			// ErrThrottled and NotSent.
			integrations.HeaderNotSent: {"limit"},
		},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
		Request: req,
	}
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
