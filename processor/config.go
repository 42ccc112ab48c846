package processor

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/topics"
	"github.com/orderflow/orderflow/topics/tracing"
)

// IntentPolicy says what to do when a step that is not idempotent at its
// provider (shipping, email) finds an intent without a result: the previous
// call may or may not have reached the provider.
type IntentPolicy string

const (
	// IntentReconcile, the default, looks the call up at the provider (see
	// reconcile in reconcile.go): found, it is not made again; not found
	// after the look-up delay, it is made again; no answer within the hold
	// bound, the order is held for a human. A provider without a look-up
	// falls back to IntentRetry.
	IntentReconcile IntentPolicy = "reconcile"
	// IntentRetry calls the provider again and flags the order
	// "possible_duplicate:<step>" for a human to check.
	IntentRetry IntentPolicy = "retry"
	// IntentDeadLetter sends the order to the dead-letter topic (class
	// permanent) for a human to decide.
	IntentDeadLetter IntentPolicy = "dead-letter"
)

// RetryPolicy bounds retries of transient failures: exponential backoff with
// full jitter, delay n drawn from [0, min(MaxDelay, BaseDelay*2^(n-1))], and
// never shorter than a Retry-After the provider asked for (capped by
// MaxDelay).
type RetryPolicy struct {
	BaseDelay   time.Duration
	MaxDelay    time.Duration
	MaxAttempts int // attempts per step, the first call included
}

// BreakerConfig configures the per-provider circuit breaker. The circuit
// opens when FailureThreshold consecutive transient failures, from at least
// MinOrders distinct orders, happen within Window: a provider that fails for
// everyone, not one order that keeps failing. While open, orders needing the
// provider wait without consuming attempts; after Cooldown one order probes
// (half-open); its success closes the circuit, its failure opens it again.
type BreakerConfig struct {
	FailureThreshold int
	MinOrders        int
	Window           time.Duration
	Cooldown         time.Duration
}

// Config configures a Processor. Start from DefaultConfig.
type Config struct {
	// Topics are the topic names (see topics.New).
	Topics topics.Names
	// Group is the consumer group id.
	Group string
	// MaxInflight bounds records fetched but not finished, over all
	// partitions; at the bound the processor takes no more until some finish.
	MaxInflight int
	// MaxInflightPerPartition bounds the same per partition.
	MaxInflightPerPartition int
	// Retry is the transient-failure policy.
	Retry RetryPolicy
	// Breaker is the circuit-breaker policy, one circuit per step.
	Breaker BreakerConfig
	// IntentPolicy is the policy of shipping and email (keys StepShipping,
	// StepEmail) on resume after an intent without a result; absent means
	// IntentReconcile. Invoices are always reconciled by look-up.
	IntentPolicy map[string]IntentPolicy
	// MaxClockDrift bounds how far two processors' clocks may differ. A
	// call's lease is an absolute time written by one processor and waited
	// out by another, which adds this much before it looks the call up.
	MaxClockDrift time.Duration
	// LookupDelay is how long after a booking, invoice or email the
	// provider's look-up may still not show it: a "not found" counts only
	// when asked this long after the lease (plus drift) ended.
	LookupDelay time.Duration
	// HoldAfter bounds how long a look-up may keep failing after the lease
	// (plus drift) ended before the order is held: dead-lettered with an
	// alert, not called again.
	HoldAfter time.Duration
	// StepTimeout bounds one provider call.
	StepTimeout time.Duration
	// RevokeDeadline is how long in-flight steps may run on after their
	// partition is revoked or the processor stops.
	RevokeDeadline time.Duration
	// SessionTimeout is how long the group waits for a member's heartbeat
	// before giving its partitions to others (a crashed processor's orders
	// wait this long). Heartbeats run beside the steps, so it can be short.
	SessionTimeout time.Duration
	// RebalanceTimeout bounds how long a member may take to give up
	// revoked partitions; keep it above RevokeDeadline and the final writes.
	RebalanceTimeout time.Duration
	// CommitInterval is how often finished offsets are committed.
	CommitInterval time.Duration
	// ProduceTimeout bounds one state or dead-letter write attempt.
	ProduceTimeout time.Duration
	// AlertTimeout bounds one call to the Alerter.
	AlertTimeout time.Duration
	// Tracing, when set, traces each order (DESIGN.md, "Tracing"): a span
	// per record handled, per step attempt and per state or dead-letter
	// write, in the order's trace. Nil is off (no span is made).
	Tracing *tracing.Tracing
	// OnStarted, when set, is called once by Run when the topics were
	// found usable (present and co-partitioned) and consuming begins; it
	// is not called when Run refuses to start.
	OnStarted func()
	// MaxErrorLen cuts error texts stored in the state and DLQ headers.
	MaxErrorLen int
	// StateDir holds the local state store of each assigned partition
	// (<StateDir>/<state topic>/<partition>). Empty: a temporary folder,
	// removed when Run returns, so every start restores from the changelog.
	// One processor per folder: it is locked while the processor runs.
	StateDir string
	// StateCacheEntries and StateCacheBytes bound the order states kept in
	// memory per partition beside the orders in flight (0: no bound of that
	// kind; at least one must be set).
	StateCacheEntries int
	StateCacheBytes   int64
	// StateKeepUnowned is how long the store of a partition this processor
	// no longer owns is kept for its return before it is removed.
	StateKeepUnowned time.Duration
	// StateRetention, when > 0, removes (tombstones) the states of finished
	// orders (completed, refunded) not updated for that long.
	StateRetention time.Duration
	// QuotaProbeInterval is how often, while a step is held for its
	// provider's quota, one held order's call checks whether the quota is
	// back before the reset time the provider gave (credits of a rolling
	// window come back gradually, an administrator may buy more); 0 waits
	// for the reset time alone.
	QuotaProbeInterval time.Duration
	// QuotaReleaseRate is how many held orders a second are resumed once
	// the probe's call succeeded (the provider's client keeps to its own
	// limits on top).
	QuotaReleaseRate int
}

// DefaultConfig returns the defaults for the given topic names.
func DefaultConfig(names topics.Names) Config {
	return Config{
		Topics:                  names,
		Group:                   "orderflow-processor",
		MaxInflight:             10000,
		MaxInflightPerPartition: 2000,
		Retry:                   RetryPolicy{BaseDelay: 2 * time.Second, MaxDelay: 5 * time.Minute, MaxAttempts: 5},
		Breaker:                 BreakerConfig{FailureThreshold: 5, MinOrders: 3, Window: 30 * time.Second, Cooldown: 30 * time.Second},
		IntentPolicy:            map[string]IntentPolicy{StepShipping: IntentReconcile, StepEmail: IntentReconcile},
		MaxClockDrift:           time.Second,
		LookupDelay:             time.Minute,
		HoldAfter:               15 * time.Minute,
		StepTimeout:             30 * time.Second,
		RevokeDeadline:          10 * time.Second,
		SessionTimeout:          10 * time.Second,
		RebalanceTimeout:        60 * time.Second,
		CommitInterval:          time.Second,
		ProduceTimeout:          30 * time.Second,
		AlertTimeout:            10 * time.Second,
		MaxErrorLen:             512,
		StateCacheEntries:       10000,
		StateKeepUnowned:        12 * time.Hour,
		QuotaProbeInterval:      15 * time.Minute,
		QuotaReleaseRate:        20,
	}
}

// Validate reports every invalid setting.
func (c Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.Topics.Orders == "" || c.Topics.State == "" || c.Topics.DLQ == "" {
		bad("topic names are required (use topics.New)")
	}
	if strings.TrimSpace(c.Group) == "" {
		bad("group is required")
	}
	if c.MaxInflight <= 0 {
		bad("max in-flight must be > 0, got %d", c.MaxInflight)
	}
	if c.MaxInflightPerPartition <= 0 {
		bad("max in-flight per partition must be > 0, got %d", c.MaxInflightPerPartition)
	}
	if c.Retry.BaseDelay <= 0 {
		bad("retry base delay must be > 0")
	}
	if c.Retry.MaxDelay < c.Retry.BaseDelay {
		bad("retry max delay %s is below the base delay %s", c.Retry.MaxDelay, c.Retry.BaseDelay)
	}
	if c.Retry.MaxAttempts < 1 {
		bad("retry attempts must be >= 1, got %d", c.Retry.MaxAttempts)
	}
	if c.Breaker.FailureThreshold < 1 || c.Breaker.MinOrders < 1 {
		bad("breaker failure threshold and min orders must be >= 1")
	}
	if c.Breaker.Window <= 0 || c.Breaker.Cooldown <= 0 {
		bad("breaker window and cool-down must be > 0")
	}
	for step, pol := range c.IntentPolicy {
		if step != StepShipping && step != StepEmail {
			bad("intent policy for %q: only %s and %s have one", step, StepShipping, StepEmail)
		}
		if pol != IntentReconcile && pol != IntentRetry && pol != IntentDeadLetter {
			bad("intent policy %q for %s: want %q, %q or %q", pol, step, IntentReconcile, IntentRetry, IntentDeadLetter)
		}
	}
	if c.MaxClockDrift < 0 || c.LookupDelay < 0 {
		bad("max clock drift and look-up delay must be >= 0")
	}
	if c.HoldAfter < c.LookupDelay {
		bad("hold-after %s is below the look-up delay %s", c.HoldAfter, c.LookupDelay)
	}
	if c.RebalanceTimeout > 0 && c.RebalanceTimeout < c.SessionTimeout {
		// The fence trusts a confirmed membership for half a session
		// timeout; a shorter rebalance timeout could expel the member first.
		bad("rebalance timeout %s is below the session timeout %s", c.RebalanceTimeout, c.SessionTimeout)
	}
	for name, d := range map[string]time.Duration{
		"step timeout": c.StepTimeout, "revoke deadline": c.RevokeDeadline,
		"commit interval": c.CommitInterval, "produce timeout": c.ProduceTimeout,
		"alert timeout": c.AlertTimeout, "session timeout": c.SessionTimeout,
		"rebalance timeout": c.RebalanceTimeout,
	} {
		if d <= 0 {
			bad("%s must be > 0", name)
		}
	}
	if c.StateCacheEntries < 0 || c.StateCacheBytes < 0 || (c.StateCacheEntries == 0 && c.StateCacheBytes == 0) {
		bad("state cache size must be > 0 (entries or bytes)")
	}
	if c.StateKeepUnowned <= 0 {
		bad("state keep-unowned time must be > 0")
	}
	if c.StateRetention < 0 {
		bad("state retention must be >= 0 (0: off)")
	}
	if c.QuotaReleaseRate < 1 {
		bad("quota release rate must be >= 1 order a second")
	}
	if c.QuotaProbeInterval < 0 {
		bad("quota probe interval must be >= 0 (0: only at the reset time)")
	}
	if c.MaxErrorLen < 16 {
		bad("max error length must be >= 16")
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		return errors.New("processor config: " + strings.Join(errs, "; "))
	}
	return nil
}

func (c Config) intentPolicy(step string) IntentPolicy {
	if p, ok := c.IntentPolicy[step]; ok {
		return p
	}
	return IntentReconcile
}

// ParseIntentPolicy parses a policy name.
func ParseIntentPolicy(s string) (IntentPolicy, error) {
	switch p := IntentPolicy(strings.ToLower(strings.TrimSpace(s))); p {
	case IntentReconcile, IntentRetry, IntentDeadLetter:
		return p, nil
	}
	return "", fmt.Errorf("intent policy %q: want %q, %q or %q", s, IntentReconcile, IntentRetry, IntentDeadLetter)
}

// ParseCacheSize parses a state cache size: a number of entries ("10000")
// or a size in bytes with a unit ("64MiB", "64MB", "512KiB").
func ParseCacheSize(s string) (entries int, bytes int64, err error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
			if err != nil || n <= 0 {
				return 0, 0, fmt.Errorf("state cache size %q: want a positive number of entries or a size such as 64MiB", s)
			}
			return 0, n * u.mult, nil
		}
	}
	n, err := strconv.Atoi(t)
	if err != nil || n <= 0 {
		return 0, 0, fmt.Errorf("state cache size %q: want a positive number of entries or a size such as 64MiB", s)
	}
	return n, 0, nil
}
