package processor

import (
	"errors"
	"sync"
	"time"
)

// errStopped says a record was left unfinished because its partition was
// revoked or the processor is stopping.
var errStopped = errors.New("processor: stopping")

// circuit states, also the values of orderflow_circuit_state.
const (
	circuitClosed   = 0
	circuitHalfOpen = 1
	circuitOpen     = 2
)

var circuitNames = [...]string{"closed", "half-open", "open"}

// breaker is the circuit breaker of one provider (one step). It opens when
// the provider fails for everyone (see BreakerConfig): orders needing the
// provider then wait in acquire, without spinning and without consuming
// attempts, until a single probe succeeds.
type breaker struct {
	step     string
	cfg      BreakerConfig
	now      func() time.Time
	onChange func(step string, from, to int) // metric and alert; called outside the lock

	mu          sync.Mutex
	state       int
	fails       int
	orders      map[string]struct{}
	streakStart time.Time
	openedAt    time.Time
	probing     bool
	changed     chan struct{} // closed and replaced on every transition or probe release
}

func newBreaker(step string, cfg BreakerConfig, onChange func(step string, from, to int)) *breaker {
	return &breaker{step: step, cfg: cfg, now: time.Now, onChange: onChange,
		orders: map[string]struct{}{}, changed: make(chan struct{})}
}

// acquire waits until a call may be made. probe is true when the caller is
// the half-open probe; it must then report success, failure or release.
func (b *breaker) acquire(stop <-chan struct{}) (probe bool, err error) {
	for {
		b.mu.Lock()
		switch b.state {
		case circuitClosed:
			b.mu.Unlock()
			return false, nil
		case circuitOpen:
			wait := b.openedAt.Add(b.cfg.Cooldown).Sub(b.now())
			if wait <= 0 {
				b.probing = true
				from := b.setLocked(circuitHalfOpen)
				b.mu.Unlock()
				b.notify(from, circuitHalfOpen)
				return true, nil
			}
			ch := b.changed
			b.mu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ch:
				t.Stop()
			case <-stop:
				t.Stop()
				return false, errStopped
			}
		case circuitHalfOpen:
			if !b.probing {
				b.probing = true
				b.mu.Unlock()
				return true, nil
			}
			ch := b.changed
			b.mu.Unlock()
			select {
			case <-ch:
			case <-stop:
				return false, errStopped
			}
		}
	}
}

// success records a call the provider answered (a success, or a permanent
// error: the provider is up). It closes the circuit.
func (b *breaker) success(probe bool) {
	b.mu.Lock()
	b.fails = 0
	clear(b.orders)
	if probe {
		b.probing = false
	}
	if b.state == circuitClosed {
		b.mu.Unlock()
		return
	}
	from := b.setLocked(circuitClosed)
	b.mu.Unlock()
	b.notify(from, circuitClosed)
}

// failure records a transient failure of the order key and reports whether
// it consumes one of the order's attempts: it does not when the circuit was
// or became open (the provider is down for everyone, not this order).
func (b *breaker) failure(probe bool, key string) (consumes bool) {
	b.mu.Lock()
	now := b.now()
	if probe {
		b.probing = false
	}
	switch {
	case b.state == circuitHalfOpen && probe:
		b.openedAt = now
		from := b.setLocked(circuitOpen)
		b.mu.Unlock()
		b.notify(from, circuitOpen)
		return false
	case b.state != circuitClosed:
		b.mu.Unlock()
		return false
	}
	if b.fails == 0 || now.Sub(b.streakStart) > b.cfg.Window {
		b.fails = 0
		clear(b.orders)
		b.streakStart = now
	}
	b.fails++
	b.orders[key] = struct{}{}
	if b.fails >= b.cfg.FailureThreshold && len(b.orders) >= b.cfg.MinOrders {
		b.openedAt = now
		b.fails = 0
		clear(b.orders)
		from := b.setLocked(circuitOpen)
		b.mu.Unlock()
		b.notify(from, circuitOpen)
		return false
	}
	b.mu.Unlock()
	return true
}

// release gives up a probe without a result (the caller is stopping).
func (b *breaker) release(probe bool) {
	if !probe {
		return
	}
	b.mu.Lock()
	b.probing = false
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// setLocked changes state, wakes waiters and returns the previous state.
func (b *breaker) setLocked(to int) int {
	from := b.state
	b.state = to
	close(b.changed)
	b.changed = make(chan struct{})
	return from
}

func (b *breaker) notify(from, to int) {
	if b.onChange != nil && from != to {
		b.onChange(b.step, from, to)
	}
}

// waits reports whether acquire would wait now: the circuit is open and
// its cooldown not over, or half-open with its probe out.
func (b *breaker) waits() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case circuitOpen:
		return b.openedAt.Add(b.cfg.Cooldown).After(b.now())
	case circuitHalfOpen:
		return b.probing
	}
	return false
}

// current returns the state.
func (b *breaker) current() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
