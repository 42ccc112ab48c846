package integrations

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Class says whether retrying a failed call can help.
type Class int

const (
	// Transient failures (timeouts, 5xx, 408, 409, 429, network errors) may
	// succeed later; they are retried with backoff.
	Transient Class = iota
	// Permanent failures (validation, other 4xx) will fail again; the order
	// goes to the dead-letter topic at once.
	Permanent
)

func (c Class) String() string {
	if c == Permanent {
		return "permanent"
	}
	return "transient"
}

// Error is a provider call's failure. The processor decides retry or dead
// letter from Class alone, never from the message text.
type Error struct {
	Provider   string        // "zoho", "postnord", ...
	Op         string        // "upsert deal", "book shipment", ...
	Status     int           // HTTP status, 0 when none
	Class      Class         //
	RetryAfter time.Duration // what the provider asked for (429, 503), 0 if nothing
	Msg        string        // short reason, never a secret or a whole payload
	Err        error         // underlying cause, if any
	// QuotaReset is set when the provider refused the call because a
	// quota counted over a long window (a daily allowance of API credits)
	// is used up: no call can succeed before this time. The processor
	// then holds the step for every order until it (see QuotaResetOf)
	// instead of retrying and dead-lettering. Class stays Transient.
	QuotaReset time.Time
	// NotSent is set on an error raised before the request was sent (an
	// order the client cannot turn into a request: an address without a
	// postal code, an invoice that would not add up): nothing can have
	// been created, so a call that was to be made once is known not to
	// have been.
	NotSent bool
}

func (e *Error) Error() string {
	s := e.Provider + ": " + e.Op
	if e.Status != 0 {
		s += ": HTTP " + strconv.Itoa(e.Status)
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ClassifyStatus maps an HTTP status to a class: 408, 409, 425, 429 and 5xx
// are transient, other 4xx permanent.
func ClassifyStatus(status int) Class {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusConflict,
		status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return Transient
	case status >= 500:
		return Transient
	case status >= 400:
		return Permanent
	}
	return Transient
}

// HTTPError builds an Error from a non-2xx response: the class from the
// status, RetryAfter from the Retry-After header (seconds or HTTP date).
// msg is kept without the credentials the request carried (a provider's
// error may echo its Authorization header or query).
func HTTPError(provider, op string, resp *http.Response, msg string) *Error {
	msg = RedactRequest(msg, resp.Request)
	if resp.Header.Get(HeaderNotSent) != "" {
		// The 429 of a call held back by the limit, made before sending.
		return &Error{Provider: provider, Op: op, Status: resp.StatusCode, Class: ClassifyStatus(resp.StatusCode),
			RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), Msg: msg, NotSent: true, Err: ErrThrottled}
	}
	return &Error{
		Provider:   provider,
		Op:         op,
		Status:     resp.StatusCode,
		Class:      ClassifyStatus(resp.StatusCode),
		RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Msg:        msg,
	}
}

// Permanentf returns a permanent Error with a formatted message.
func Permanentf(provider, op, format string, args ...any) *Error {
	return &Error{Provider: provider, Op: op, Class: Permanent, Msg: fmt.Sprintf(format, args...)}
}

// NotSentf returns a permanent Error with a formatted message for a request
// refused before it was sent (NotSent).
func NotSentf(provider, op, format string, args ...any) *Error {
	e := Permanentf(provider, op, format, args...)
	e.NotSent = true
	return e
}

// IsNotSent reports whether err is an Error raised before its request was
// sent (NotSent).
func IsNotSent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.NotSent
}

// Transientf returns a transient Error with a formatted message.
func Transientf(provider, op, format string, args ...any) *Error {
	return &Error{Provider: provider, Op: op, Class: Transient, Msg: fmt.Sprintf(format, args...)}
}

// InDoubt returns the transient Error of a call whose answer does not say
// whether it took effect: a 2xx whose body is not the provider's
// documented success answer (a proxy's or captive portal's page, an empty
// or truncated body, JSON without the created object's id). It is never a
// result. Its Status stays 0, as for a call cut off in flight, so the
// processor keeps the intent of a step that is not idempotent and looks the
// call up (shipment by reference, invoice by number, email by Message-Id)
// before any new attempt; the status the answer carried is in the message.
func InDoubt(provider, op string, status int, format string, args ...any) *Error {
	return &Error{Provider: provider, Op: op, Class: Transient,
		Msg: fmt.Sprintf("HTTP %d answer is not a success answer, outcome unknown: ", status) + fmt.Sprintf(format, args...)}
}

// NetError wraps a transport failure (dial, timeout, reset) as transient,
// unless the caller's context was cancelled, which is returned as is. The
// URL net/http puts in the text is shown without its query values (see
// RedactURLError).
func NetError(provider, op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &Error{Provider: provider, Op: op, Class: Transient, Err: RedactURLError(err)}
}

// HeaderNotSent marks an answer made on this side, before the request was
// sent (the 429 of a call whose wait for the provider's limit would
// outlast its deadline).
const HeaderNotSent = "Orderflow-Not-Sent"

// ErrThrottled is wrapped by the error of a call held back by a
// provider's limit (never sent, its wait for a turn cut short): like a
// 429, not a sign of the provider failing.
var ErrThrottled = errors.New("held back by the provider's limit")

// IsThrottled reports whether err is a provider's 429 or a call held back
// by its limit (ErrThrottled): the processor does not count it for the
// step's circuit.
func IsThrottled(err error) bool {
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusTooManyRequests {
		return true
	}
	return errors.Is(err, ErrThrottled)
}

// IsPermanent reports whether err says retrying cannot help. Errors that are
// not an *Error (including timeouts) count as transient.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Class == Permanent
}

// RetryAfterOf returns the delay a provider asked for, if any.
func RetryAfterOf(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}

// QuotaExhausted returns the Error of a call refused because the
// provider's long-window quota (API credits per day) is used up until
// reset.
func QuotaExhausted(provider, op string, status int, reset time.Time, msg string) *Error {
	return &Error{Provider: provider, Op: op, Status: status, Class: Transient, Msg: msg, QuotaReset: reset}
}

// QuotaResetOf reports whether err says the provider's quota is used up,
// and until when. Any provider may return such an Error; the processor
// holds the step until the reset instead of spending attempts.
func QuotaResetOf(err error) (time.Time, bool) {
	var e *Error
	if errors.As(err, &e) && !e.QuotaReset.IsZero() {
		return e.QuotaReset, true
	}
	return time.Time{}, false
}

// ProviderOf names the provider that failed, or "".
func ProviderOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Provider
	}
	return ""
}

// IsTimeout reports a network timeout.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

// ParseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// Sleep waits d, or until ctx ends (its error then).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
