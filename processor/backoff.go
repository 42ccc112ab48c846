package processor

import (
	"math/rand/v2"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// backoff returns the delay before retry number attempt (1 = the first
// retry): full jitter over an exponential cap, never shorter than what the
// provider asked for with Retry-After, and never longer than MaxDelay.
func (r RetryPolicy) backoff(attempt int, err error) time.Duration {
	ceil := r.MaxDelay
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 32 {
		if c := r.BaseDelay << (attempt - 1); c > 0 && c < ceil {
			ceil = c
		}
	}
	d := time.Duration(rand.Int64N(int64(ceil) + 1))
	if ra, ok := integrations.RetryAfterOf(err); ok {
		d = max(d, min(ra, r.MaxDelay))
	}
	return d
}

// sleep waits d or until stop is closed; it reports whether it slept fully.
func sleep(d time.Duration, stop <-chan struct{}) bool {
	if d <= 0 {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}
