// Package quota holds provider limits shared by every processor of a fleet
// through Redis, so that three processors together stay within Airtable's
// 5 requests a second per base or Zoho's concurrent-request limit instead
// of each using all of it.
//
// # Use
//
//	q, _ := quota.New(quota.Config{Redis: rdb, Peers: liveProcessors, Logger: log})
//	zoho, _ := q.Limiter(quota.Limit{Name: "zoho", Concurrency: 10})
//	release, err := zoho.Acquire(ctx) // waits for a slot, a rate token and the end of a pause
//	if err != nil { ... }             // ctx done, or *ExhaustedError (see below)
//	resp, err := call()
//	release()
//	if resp is a 429 { zoho.Pause(ctx, retryAfter) } // every processor waits
//	if resp says the daily credits are used up { zoho.Exhaust(ctx, resetAt, "API credits") }
//
// A Limiter enforces, for its Limit:
//
//   - a rate (Rate per Period, with Burst) with github.com/go-redis/redis_rate
//     (GCRA on Redis' clock, one key per limit);
//   - a concurrency limit with a semaphore held in Redis: a sorted set of
//     leases, each expiring LeaseTTL after it was taken, so a processor that
//     dies holding one frees it then (LeaseTTL must exceed the provider
//     call's timeout);
//   - a shared pause: Pause(d), called when one processor sees a 429 or a
//     Retry-After, makes Acquire wait d on every processor (a longer pause
//     already set is kept);
//   - a daily quota: Exhaust(until, reason) marks the limit exhausted until
//     the quota resets; Acquire then returns an *ExhaustedError at once
//     (errors.Is(err, ErrExhausted)) instead of waiting hours, so the caller
//     can hold the step without spending attempts.
//
// Within one processor, waiting Acquire calls take turns, so only one of
// them polls Redis at a time.
//
// # Redis down
//
// When a Redis call fails, the Limiter falls back to this processor's
// share: Rate/peers per Period (burst likewise, at least one), and at most
// floor(Rate·Window/Period ÷ peers) calls (at least one) in any Window, and
// Concurrency/peers slots (at least one), where peers is the number of live
// processors Config.Peers reports at that moment; pauses and exhaustion
// markers are also kept locally. The window bound is what keeps the fleet
// within the provider's window whatever the processors' phases: N
// processors make at most N·floor(R/N) ≤ R calls in any Window (evenly
// spaced shares alone do not: two processors at 2.5 a second each can put
// 3 + 3 calls into one second). With more processors than calls per
// Window, each still makes one, and the fleet can exceed the limit. It says so once with a warning log line
// and Config.OnModeChange (for a metric), tries Redis again every
// RetryInterval, and says so again when Redis is back. Mode reports the
// current state.
//
// # Without Redis
//
// With Config.Redis nil every Limiter is Local: this processor alone keeps
// to the whole limit (rate, concurrency, pauses, exhaustion), as a single
// processor should; nothing is logged.
package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/integrations"
)

// Mode says where a Limiter's limits are kept.
type Mode int

const (
	// Shared: in Redis, for the whole fleet.
	Shared Mode = iota
	// Fallback: Redis failed; this processor keeps to its share locally.
	Fallback
	// Local: no Redis configured; this processor keeps to the whole limit.
	Local
)

func (m Mode) String() string {
	switch m {
	case Fallback:
		return "fallback"
	case Local:
		return "local"
	}
	return "shared"
}

// ErrExhausted matches every *ExhaustedError with errors.Is.
var ErrExhausted = errors.New("quota exhausted")

// ExhaustedError is Acquire's answer while a daily quota is used up.
type ExhaustedError struct {
	Limit  string
	Until  time.Time // when the quota is expected back
	Reason string    // what Exhaust was told
}

func (e *ExhaustedError) Error() string {
	s := "quota " + e.Limit + " exhausted until " + e.Until.UTC().Format(time.RFC3339)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Is makes errors.Is(err, ErrExhausted) true.
func (e *ExhaustedError) Is(target error) bool { return target == ErrExhausted }

// Limit is one provider limit shared by the fleet.
type Limit struct {
	// Name identifies the limit across processors ("airtable:appXYZ",
	// "zoho"); every processor must use the same name and numbers.
	Name string
	// Rate calls per Period (default one second), with bursts of Burst
	// (default Rate). 0 means no rate limit.
	Rate   int
	Period time.Duration
	Burst  int
	// Concurrency bounds calls in flight across the fleet; 0 means none.
	Concurrency int
	// LeaseTTL is how long a concurrency slot lasts if its holder never
	// releases it (a crash); default one minute.
	LeaseTTL time.Duration
	// Window is the window the provider counts the rate in (Airtable's
	// second), used by the fallback share (see "Redis down"). Default: one
	// second for an evenly spaced rate (Burst 1) of a Period of a second or
	// more, as every per-second rate of the processor is; else Period.
	Window time.Duration
}

func (l *Limit) setDefaults() {
	if l.Period == 0 {
		l.Period = time.Second
	}
	if l.Burst == 0 {
		l.Burst = l.Rate
	}
	if l.LeaseTTL == 0 {
		l.LeaseTTL = time.Minute
	}
	if l.Window == 0 {
		l.Window = l.Period
		if l.Burst == 1 && l.Period >= time.Second {
			l.Window = time.Second
		}
	}
}

// Validate reports a limit that cannot be enforced.
func (l Limit) Validate() error {
	if l.Name == "" || strings.ContainsAny(l.Name, " {}") {
		return fmt.Errorf("quota: limit name %q must be non-empty, without spaces or braces", l.Name)
	}
	if l.Rate < 0 || l.Burst < 0 || l.Concurrency < 0 {
		return fmt.Errorf("quota %s: rate, burst and concurrency must not be negative", l.Name)
	}
	if l.Period < 0 || l.LeaseTTL < 0 || l.Window < 0 {
		return fmt.Errorf("quota %s: period, lease TTL and window must not be negative", l.Name)
	}
	if l.LeaseTTL != 0 && l.LeaseTTL < time.Millisecond {
		return fmt.Errorf("quota %s: lease TTL must be at least a millisecond", l.Name)
	}
	return nil
}

// Config configures Quotas.
type Config struct {
	// Redis holds the shared state; nil makes every Limiter Local.
	Redis redis.UniversalClient
	// Prefix starts every key; default "orderflow:quota:".
	Prefix string
	// Peers returns the number of live processors (the consumer group's
	// members), used for the fallback share; nil or a value below 1 means 1.
	Peers func() int
	// Logger receives the fallback and recovery lines; default discards.
	Logger *slog.Logger
	// OnModeChange is called (outside any lock) when a Limiter switches
	// between Shared and Fallback, e.g. to set a gauge.
	OnModeChange func(limit string, m Mode)
	// RetryInterval is how long a Limiter in Fallback waits before trying
	// Redis again; default 2s.
	RetryInterval time.Duration
	// PollInterval is how often a waiting Acquire asks again for a
	// concurrency slot; default 20ms.
	PollInterval time.Duration
	// Now is the clock of the local fallback; default time.Now. The shared
	// limits use Redis' clock.
	Now func() time.Time
}

// Quotas makes Limiters that share one Redis. Safe for concurrent use.
type Quotas struct {
	cfg Config
	rdb redis.UniversalClient
	rl  *redis_rate.Limiter
	log *slog.Logger
}

// New validates cfg and returns Quotas. It does not contact Redis.
func New(cfg Config) (*Quotas, error) {
	if cfg.RetryInterval < 0 || cfg.PollInterval < 0 {
		return nil, errors.New("quota: intervals must not be negative")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "orderflow:quota:"
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = 2 * time.Second
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	q := &Quotas{cfg: cfg, rdb: cfg.Redis, log: integrations.Logger(cfg.Logger)}
	if cfg.Redis != nil {
		q.rl = redis_rate.NewLimiter(cfg.Redis)
	}
	return q, nil
}

func (q *Quotas) peers() int {
	if q.cfg.Peers == nil || q.rdb == nil {
		return 1
	}
	return max(1, q.cfg.Peers())
}

// Limiter returns a Limiter for l. Each processor creates one per limit and
// keeps it; two Limiters of one name share the same Redis state.
func (q *Quotas) Limiter(l Limit) (*Limiter, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	l.setDefaults()
	base := q.cfg.Prefix + "{" + l.Name + "}:" // one hash slot per limit in a cluster
	mode := Shared
	if q.rdb == nil {
		mode = Local
	}
	return &Limiter{
		q: q, l: l, mode: mode,
		rateKey: base + "rate", semKey: base + "sem", pauseKey: base + "pause", exhKey: base + "exhausted",
		turn: make(chan struct{}, 1),
	}, nil
}

// Limiter enforces one Limit. Safe for concurrent use.
type Limiter struct {
	q                                 *Quotas
	l                                 Limit
	rateKey, semKey, pauseKey, exhKey string
	turn                              chan struct{} // held by the one waiting Acquire that polls

	mu       sync.Mutex
	mode     Mode
	retryAt  time.Time   // in Fallback: when to try Redis again
	inflight int         // permits held in this process, in either mode
	tat      time.Time   // local GCRA's theoretical arrival time
	sent     []time.Time // in Fallback: this processor's calls within the last Window, oldest first
	pause    time.Time   // local pause until
	exhUntil time.Time   // local exhaustion until
	exhWhy   string
}

// Name is the limit's name.
func (l *Limiter) Name() string { return l.l.Name }

// Mode reports whether the limits are shared through Redis right now.
func (l *Limiter) Mode() Mode {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mode
}

// WindowShare is how many calls this processor may make in any Window
// while in Fallback: floor(Rate·Window/Period ÷ peers), at least one; 0
// without a rate.
func (l *Limiter) WindowShare() (calls int, window time.Duration) {
	if l.l.Rate <= 0 {
		return 0, l.l.Window
	}
	// Integer arithmetic: Rate·Window/Period calls in a window, shared.
	perWindow := int64(l.l.Rate) * int64(l.l.Window) / int64(l.l.Period)
	return int(max(1, perWindow/int64(l.q.peers()))), l.l.Window
}

// Share is what this processor may use while in Fallback: the rate per
// Period and the concurrency, given the live processors now.
func (l *Limiter) Share() (rate float64, concurrency int) {
	p := l.q.peers()
	if l.l.Rate > 0 {
		rate = float64(l.l.Rate) / float64(p)
	}
	if l.l.Concurrency > 0 {
		concurrency = max(1, l.l.Concurrency/p)
	}
	return rate, concurrency
}

// DeadlineError is Acquire's answer when the wait it knows of (a pause, or
// the rate's next turn) would not end before ctx's deadline: the call
// cannot start in time, and nothing was sent. It unwraps to
// context.DeadlineExceeded.
type DeadlineError struct {
	Limit  string
	Wait   time.Duration // from now until the call could start, at least
	Paused bool          // the wait is a pause (a 429 or Retry-After)
}

func (e *DeadlineError) Error() string {
	what := "turn"
	if e.Paused {
		what = "pause"
	}
	return "quota " + e.Limit + ": the " + what + " of " + e.Wait.Round(time.Millisecond).String() + " outlasts the call's deadline; not sent"
}

func (e *DeadlineError) Unwrap() error { return context.DeadlineExceeded }

// Acquire waits until a call may start and returns the function that ends
// it (call it exactly once). It returns ctx's error when ctx ends first,
// an *ExhaustedError at once while the limit is exhausted, and a
// *DeadlineError at once when a pause or the rate's turn would not end
// before ctx's deadline. A pause is waited out without the turn, so every
// waiting call learns of it at once.
func (l *Limiter) Acquire(ctx context.Context) (release func(), err error) {
	for {
		if d := l.pausedFor(); d > 0 {
			if err := l.beyondDeadline(ctx, d, true); err != nil {
				return nil, err
			}
			if err := integrations.Sleep(ctx, d); err != nil {
				return nil, err
			}
			continue
		}
		select {
		case l.turn <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		rel, wait, err := l.TryAcquire(ctx)
		if err != nil || rel != nil {
			<-l.turn
			return rel, err
		}
		if l.pausedFor() > 0 {
			<-l.turn // a pause (another processor's): waited for above
			continue
		}
		if err := l.beyondDeadline(ctx, wait, false); err != nil {
			<-l.turn
			return nil, err
		}
		err = integrations.Sleep(ctx, wait)
		<-l.turn
		if err != nil {
			return nil, err
		}
	}
}

// pausedFor is what is left of the pause this processor knows of.
func (l *Limiter) pausedFor() time.Duration {
	now := l.q.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.pause) {
		return l.pause.Sub(now)
	}
	return 0
}

// beyondDeadline is a *DeadlineError when a wait of d from now would not
// end before ctx's deadline.
func (l *Limiter) beyondDeadline(ctx context.Context, d time.Duration, paused bool) error {
	if dl, ok := ctx.Deadline(); ok && !time.Now().Add(d).Before(dl) {
		return &DeadlineError{Limit: l.l.Name, Wait: d, Paused: paused}
	}
	return nil
}

// TryAcquire is one attempt of Acquire: a release function when the call
// may start now, otherwise how long to wait before asking again (a pause's
// or the rate's exact remainder, PollInterval for a full semaphore). err is
// an *ExhaustedError or ctx's error; Redis failures are not returned, they
// switch the Limiter to its fallback share.
func (l *Limiter) TryAcquire(ctx context.Context) (release func(), wait time.Duration, err error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	now := l.q.cfg.Now()
	l.mu.Lock()
	if now.Before(l.exhUntil) {
		e := &ExhaustedError{Limit: l.l.Name, Until: l.exhUntil, Reason: l.exhWhy}
		l.mu.Unlock()
		return nil, 0, e
	}
	if now.Before(l.pause) {
		d := l.pause.Sub(now)
		l.mu.Unlock()
		return nil, d, nil
	}
	useRedis := l.mode == Shared || (l.mode == Fallback && !now.Before(l.retryAt))
	l.mu.Unlock()

	if useRedis {
		rel, wait, err := l.tryShared(ctx)
		if err == nil || errors.Is(err, ErrExhausted) {
			l.setMode(Shared, nil)
			return rel, wait, err
		}
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		l.setMode(Fallback, err)
	}
	return l.tryLocal()
}

// gate checks exhaustion and the pause, then takes a semaphore lease when
// the limit has one, atomically on Redis' clock. It returns {kind, ms,
// reason}: 0 admitted, 1 paused for ms, 2 exhausted for ms, 3 semaphore
// full (ms until the earliest lease expires).
var gate = redis.NewScript(`
local e = redis.call('PTTL', KEYS[2])
if e > 0 then return {2, e, redis.call('GET', KEYS[2]) or ''} end
local p = redis.call('PTTL', KEYS[1])
if p > 0 then return {1, p, ''} end
local limit = tonumber(ARGV[1])
if limit > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= limit then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    return {3, tonumber(first[2]) - now, ''}
  end
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[2]) * 2)
end
return {0, 0, ''}
`)

// pauseScript sets the pause key for ARGV[1] ms unless a longer pause is set.
var pauseScript = redis.NewScript(`
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
`)

// leaseToken names one semaphore lease, unique across the fleet.
func leaseToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (l *Limiter) tryShared(ctx context.Context) (func(), time.Duration, error) {
	token := leaseToken()
	res, err := gate.Run(ctx, l.q.rdb, []string{l.pauseKey, l.exhKey, l.semKey},
		l.l.Concurrency, l.l.LeaseTTL.Milliseconds(), token).Slice()
	if err != nil {
		return nil, 0, err
	}
	if len(res) != 3 {
		return nil, 0, fmt.Errorf("quota: unexpected gate reply %v", res)
	}
	kind, _ := res[0].(int64)
	ms, _ := res[1].(int64)
	switch kind {
	case 1:
		// Another processor's pause: kept here too (a pause only ever
		// grows), so every waiting call of this processor sees it.
		d := time.Duration(ms) * time.Millisecond
		until := l.q.cfg.Now().Add(d)
		l.mu.Lock()
		if until.After(l.pause) {
			l.pause = until
		}
		l.mu.Unlock()
		return nil, d, nil
	case 2:
		why, _ := res[2].(string)
		until := l.q.cfg.Now().Add(time.Duration(ms) * time.Millisecond)
		l.mu.Lock()
		l.exhUntil, l.exhWhy = until, why // remembered for a Redis outage
		l.mu.Unlock()
		return nil, 0, &ExhaustedError{Limit: l.l.Name, Until: until, Reason: why}
	case 3:
		return nil, l.q.cfg.PollInterval, nil
	}
	held := l.l.Concurrency > 0
	if l.l.Rate > 0 {
		r, err := l.q.rl.Allow(ctx, l.rateKey, redis_rate.Limit{Rate: l.l.Rate, Burst: l.l.Burst, Period: l.l.Period})
		if err != nil || r.Allowed == 0 {
			if held {
				l.releaseShared(token)
			}
			if err != nil {
				return nil, 0, err
			}
			return nil, max(r.RetryAfter, time.Millisecond), nil
		}
	}
	l.mu.Lock()
	l.inflight++
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.inflight--
			l.mu.Unlock()
			if held {
				l.releaseShared(token)
			}
		})
	}, 0, nil
}

// releaseShared gives a lease back; if Redis is unreachable it expires
// after LeaseTTL instead.
func (l *Limiter) releaseShared(token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.q.rdb.ZRem(ctx, l.semKey, token).Err(); err != nil {
		l.q.log.Debug("quota: lease not released, it expires by itself", "limit", l.l.Name, "error", err)
	}
}

// windowMargin is added to the window a processor in Fallback keeps its
// calls in: a window's calls that left a processor a window apart were
// seen arriving 8 ms closer at the provider.
const windowMargin = 100 * time.Millisecond

// tryLocal applies this processor's share without Redis.
func (l *Limiter) tryLocal() (func(), time.Duration, error) {
	rate, conc := l.Share()
	now := l.q.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if conc > 0 && l.inflight >= conc {
		return nil, l.q.cfg.PollInterval, nil
	}
	var windowCalls int
	if rate > 0 && l.mode == Fallback {
		// At most windowCalls in any Window: a call may start when the
		// oldest of the last windowCalls has left the window.
		var window time.Duration
		windowCalls, window = l.WindowShare()
		// The provider counts arrivals, which the network and the
		// request's own making spread by some milliseconds: a call made
		// just a window after the oldest could arrive within it.
		window += windowMargin
		drop := 0
		for drop < len(l.sent) && !now.Before(l.sent[drop].Add(window)) {
			drop++
		}
		l.sent = l.sent[drop:]
		if n := len(l.sent); n >= windowCalls {
			return nil, l.sent[n-windowCalls].Add(window).Sub(now), nil
		}
	}
	if rate > 0 {
		burst := math.Max(1, float64(l.l.Burst)*rate/float64(l.l.Rate))
		interval := time.Duration(float64(l.l.Period) / rate)
		tat := l.tat
		if tat.Before(now) {
			tat = now
		}
		newTat := tat.Add(interval)
		allowAt := newTat.Add(-time.Duration(burst * float64(interval)))
		if now.Before(allowAt) {
			return nil, allowAt.Sub(now), nil
		}
		l.tat = newTat
		if windowCalls > 0 {
			l.sent = append(l.sent, now)
		}
	}
	l.inflight++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.inflight--
			l.mu.Unlock()
		})
	}, 0, nil
}

// setMode records a switch, logs it and tells OnModeChange.
func (l *Limiter) setMode(m Mode, cause error) {
	now := l.q.cfg.Now()
	l.mu.Lock()
	if m == Fallback {
		l.retryAt = now.Add(l.q.cfg.RetryInterval)
	}
	changed := l.mode != m
	l.mode = m
	l.mu.Unlock()
	if !changed {
		return
	}
	if m == Fallback {
		rate, conc := l.Share()
		calls, window := l.WindowShare()
		l.q.log.Warn("quota: Redis unavailable, this processor keeps to its share of the limit",
			"limit", l.l.Name, "peers", l.q.peers(), "rate_share", rate, "period", l.l.Period,
			"window_share", calls, "window", window, "concurrency_share", conc, "error", cause)
	} else {
		l.q.log.Info("quota: Redis reachable again, the limit is shared by the fleet", "limit", l.l.Name)
	}
	if f := l.q.cfg.OnModeChange; f != nil {
		f(l.l.Name, m)
	}
}

// Pause makes every processor wait d before its next call of this limit,
// unless a longer pause is already set. Call it on a 429 or Retry-After. It
// always applies to this processor, even when Redis cannot be reached.
func (l *Limiter) Pause(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	until := l.q.cfg.Now().Add(d)
	l.mu.Lock()
	if until.After(l.pause) {
		l.pause = until
	}
	mode := l.mode
	l.mu.Unlock()
	if mode != Shared {
		return
	}
	if err := pauseScript.Run(ctx, l.q.rdb, []string{l.pauseKey}, max(1, d.Milliseconds())).Err(); err != nil && ctx.Err() == nil {
		l.setMode(Fallback, err)
	}
}

// Exhaust marks the limit's quota used up until until, for every
// processor: Acquire returns an *ExhaustedError with reason until then. A
// time in the past does nothing.
func (l *Limiter) Exhaust(ctx context.Context, until time.Time, reason string) {
	d := until.Sub(l.q.cfg.Now())
	if d <= 0 {
		return
	}
	l.mu.Lock()
	if until.After(l.exhUntil) {
		l.exhUntil, l.exhWhy = until, reason
	}
	mode := l.mode
	l.mu.Unlock()
	if mode != Shared {
		return
	}
	if err := l.q.rdb.Set(ctx, l.exhKey, reason, d).Err(); err != nil && ctx.Err() == nil {
		l.setMode(Fallback, err)
	}
}

// Exhausted reports whether the quota is marked used up, until when and
// why; it asks Redis unless this processor already knows.
func (l *Limiter) Exhausted(ctx context.Context) (until time.Time, reason string, ok bool) {
	now := l.q.cfg.Now()
	l.mu.Lock()
	if now.Before(l.exhUntil) {
		defer l.mu.Unlock()
		return l.exhUntil, l.exhWhy, true
	}
	mode := l.mode
	l.mu.Unlock()
	if mode != Shared {
		return time.Time{}, "", false
	}
	pipe := l.q.rdb.Pipeline()
	get := pipe.Get(ctx, l.exhKey)
	ttl := pipe.PTTL(ctx, l.exhKey)
	if _, err := pipe.Exec(ctx); err != nil {
		if !errors.Is(err, redis.Nil) && ctx.Err() == nil {
			l.setMode(Fallback, err)
		}
		return time.Time{}, "", false
	}
	if d := ttl.Val(); d > 0 {
		until = now.Add(d)
		l.mu.Lock()
		l.exhUntil, l.exhWhy = until, get.Val()
		l.mu.Unlock()
		return until, get.Val(), true
	}
	return time.Time{}, "", false
}
