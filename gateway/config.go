package gateway

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/orderflow/orderflow/topics/tracing"
)

// Defaults of Config fields left zero.
const (
	DefaultTolerance        = 300 * time.Second
	DefaultMaxBody          = 512 << 10
	DefaultMaxInflightBytes = 64 << 20
	DefaultProduceTimeout   = 5 * time.Second
	DefaultProduceLinger    = 500 * time.Microsecond
	DefaultDedupTTL         = 96 * time.Hour
	DefaultDedupTimeout     = time.Second
	DefaultErrorLogInterval = 10 * time.Second
	DefaultRetryAfter       = time.Second
)

// DefaultEventTypes are the Stripe event types queued when Config.EventTypes
// is empty: the types the processor acts on (processor/events.go). Any
// other type queued would reach no step, so `orderflow gateway
// --event-types` takes only these.
var DefaultEventTypes = []string{
	"payment_intent.succeeded",
	"checkout.session.completed",
	"checkout.session.async_payment_succeeded",
	"checkout.session.async_payment_failed",
	"charge.refunded",
	"charge.refund.updated",
	"payment_intent.canceled",
	"charge.dispute.created",
}

// Config configures a Gateway. Zero durations and sizes take the defaults
// above; Topic and Secrets are required.
type Config struct {
	// Topic is the `orders` topic records are produced to.
	Topic string
	// Secrets are the endpoint signing secrets (whsec_…). A request is
	// accepted when any v1 signature matches any secret, so an old and a new
	// secret can both be listed while Stripe rolls the endpoint's secret.
	Secrets []string
	// Tolerance is how far the signature timestamp may be from now, in
	// either direction. Default 300 s, as Stripe's libraries.
	Tolerance time.Duration
	// EventTypes are the event types produced; any other type is answered
	// 200 "ignored". Default DefaultEventTypes.
	EventTypes []string
	// MaxBody is the largest accepted request body in bytes (413 above).
	MaxBody int64
	// MaxInflightBytes bounds the bytes of request bodies being handled at
	// once; a request that would exceed it gets 503 with Retry-After.
	MaxInflightBytes int64
	// ProduceTimeout bounds the wait for Kafka's acknowledgement (503 after).
	ProduceTimeout time.Duration
	// ProduceLinger is the longest a small group of records waits for
	// more while the producer is busy (topics.GroupProducer.SetLinger).
	// Default DefaultProduceLinger; negative: a group never waits.
	ProduceLinger time.Duration
	// DedupTTL is how long an event id stays marked as seen. It must outlast
	// Stripe's retry window (3 days in live mode).
	DedupTTL time.Duration
	// DedupTimeout bounds each dedup store call; a slower store is treated
	// as unavailable.
	DedupTimeout time.Duration
	// ErrorLogInterval is the least time between two log lines about the
	// same recurring failure (dedup store errors, overload).
	ErrorLogInterval time.Duration
	// RetryAfter is the Retry-After sent with an overload 503.
	RetryAfter time.Duration
	// Tracing, when set, gives each webhook request a server span that
	// continues the request's traceparent, and NewKafkaProducer traces the
	// records (their traceparent header then carries the publish span).
	// Nil is off: the header passes the request's traceparent on, or a new
	// one.
	Tracing *tracing.Tracing
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Tolerance == 0 {
		c.Tolerance = DefaultTolerance
	}
	if len(c.EventTypes) == 0 {
		c.EventTypes = DefaultEventTypes
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = DefaultProduceTimeout
	}
	if c.ProduceLinger == 0 {
		c.ProduceLinger = DefaultProduceLinger
	}
	if c.DedupTTL == 0 {
		c.DedupTTL = DefaultDedupTTL
	}
	if c.DedupTimeout == 0 {
		c.DedupTimeout = DefaultDedupTimeout
	}
	if c.ErrorLogInterval == 0 {
		c.ErrorLogInterval = DefaultErrorLogInterval
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	return c
}

// Validate reports every invalid field of c after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Topic == "" {
		errs = append(errs, errors.New("topic is required"))
	}
	if len(c.Secrets) == 0 {
		errs = append(errs, errors.New("at least one webhook secret is required"))
	}
	for i, s := range c.Secrets {
		if strings.TrimSpace(s) == "" {
			errs = append(errs, fmt.Errorf("webhook secret %d is empty", i+1))
		} else if err := CheckSecret(s); err != nil {
			errs = append(errs, fmt.Errorf("webhook secret %d: %w", i+1, err))
		}
	}
	for _, t := range c.EventTypes {
		if t == "" || strings.ContainsAny(t, " ,") {
			errs = append(errs, fmt.Errorf("event type %q is not a Stripe event type", t))
		}
	}
	positive := []struct {
		name string
		v    int64
	}{
		{"tolerance", int64(c.Tolerance)},
		{"max body", c.MaxBody},
		{"max in-flight bytes", c.MaxInflightBytes},
		{"produce timeout", int64(c.ProduceTimeout)},
		{"dedup ttl", int64(c.DedupTTL)},
		{"dedup timeout", int64(c.DedupTimeout)},
		{"error log interval", int64(c.ErrorLogInterval)},
		{"retry after", int64(c.RetryAfter)},
	}
	for _, p := range positive {
		if p.v < 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", p.name))
		}
	}
	if c.MaxInflightBytes > 0 && c.MaxBody > c.MaxInflightBytes {
		errs = append(errs, fmt.Errorf("max in-flight bytes (%d) is below max body (%d)", c.MaxInflightBytes, c.MaxBody))
	}
	if len(errs) > 0 {
		return fmt.Errorf("gateway config: %w", errors.Join(errs...))
	}
	return nil
}

// ErrSecretPrefix is CheckSecret's answer for a secret that is not an
// endpoint signing secret: every webhook signed by Stripe would then get 400.
var ErrSecretPrefix = errors.New("does not start with whsec_: Stripe endpoint signing secrets start with whsec_")

// CheckSecret reports whether s looks like a Stripe endpoint signing secret
// (whsec_…). The error never contains s.
func CheckSecret(s string) error {
	if !strings.HasPrefix(s, "whsec_") {
		return ErrSecretPrefix
	}
	return nil
}
