// Package dlq reads, filters, shows and replays orderflow's dead letters
// (the `orders.dlq` topic) and reads an order's state from `orders.state`.
// It is the library behind `orderflow dlq list|show|replay` and
// `orderflow orders show`.
//
// Reading never waits for new records: a read covers each partition from its
// start to the end offset listed when the read began, then stops. A replay
// re-produces a dead letter to `orders` with the order's key, its original
// value and headers, and two more headers (topics.HeaderReplay and
// topics.HeaderReplaySource), and waits for the broker's acknowledgement
// (acks=all, idempotent producer) before counting it replayed.
package dlq

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/topics"
)

// Errors callers tell apart with errors.Is.
var (
	// ErrNotFound: no dead letter at the partition/offset asked for.
	ErrNotFound = errors.New("dlq: dead letter not found")
	// ErrOrderNotFound: the order has no state on `orders.state`.
	ErrOrderNotFound = errors.New("dlq: order not found")
	// ErrBadSource: a "<partition>/<offset>" string that does not parse.
	ErrBadSource = errors.New("dlq: bad partition/offset")
)

// DeadLetter is one record of the dead-letter topic with its headers read.
type DeadLetter struct {
	// Partition and Offset locate the dead letter on the DLQ topic.
	Partition int32
	Offset    int64
	// Timestamp is when the dead letter was written.
	Timestamp time.Time
	// Key is the order key (the PaymentIntent id), the record key.
	Key string
	// Value is the original envelope, unchanged.
	Value []byte
	// Headers are every header of the dead letter, in order.
	Headers []kgo.RecordHeader

	// Fields read from the DLQ headers; zero when a header is missing or
	// unreadable.
	OriginalTopic     string
	OriginalPartition int32 // -1 when unknown
	OriginalOffset    int64 // -1 when unknown
	Step              string
	Class             string
	Error             string
	Attempts          int
	FirstFailure      time.Time
	LastFailure       time.Time
	ReplayCount       int
}

// Source is the dead letter's "<partition>/<offset>", the value of
// topics.HeaderReplaySource of its replay.
func (d DeadLetter) Source() string { return topics.Source(d.Partition, d.Offset) }

// EventType is the Stripe event type of the record dead-lettered, from its
// header ("" when it has none).
func (d DeadLetter) EventType() string {
	t, _ := d.Header(topics.HeaderEventType)
	return t
}

// FailedAt is the last failure time, or the record time when the header is
// missing.
func (d DeadLetter) FailedAt() time.Time {
	if !d.LastFailure.IsZero() {
		return d.LastFailure
	}
	return d.Timestamp
}

// Header returns the value of the first header named key.
func (d DeadLetter) Header(key string) (string, bool) {
	for _, h := range d.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// FromRecord reads a DLQ record. It never fails: a missing or unreadable
// header leaves its field zero (partition/offset -1), so a damaged dead
// letter can still be listed and inspected.
func FromRecord(r *kgo.Record) DeadLetter {
	d := DeadLetter{
		Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		Key: string(r.Key), Value: r.Value, Headers: r.Headers,
		OriginalPartition: -1, OriginalOffset: -1,
	}
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case topics.HeaderDLQTopic:
			d.OriginalTopic = v
		case topics.HeaderDLQPartition:
			if n, err := strconv.ParseInt(v, 10, 32); err == nil && n >= 0 {
				d.OriginalPartition = int32(n)
			}
		case topics.HeaderDLQOffset:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				d.OriginalOffset = n
			}
		case topics.HeaderDLQStep:
			d.Step = v
		case topics.HeaderDLQClass:
			d.Class = v
		case topics.HeaderDLQError:
			d.Error = v
		case topics.HeaderDLQAttempts:
			d.Attempts, _ = strconv.Atoi(v)
		case topics.HeaderDLQFirstFailure:
			d.FirstFailure, _ = time.Parse(time.RFC3339, v)
		case topics.HeaderDLQLastFailure:
			d.LastFailure, _ = time.Parse(time.RFC3339, v)
		case topics.HeaderDLQReplayCount:
			d.ReplayCount, _ = strconv.Atoi(v)
		}
	}
	return d
}

// ParseSource parses "<partition>/<offset>".
func ParseSource(s string) (int32, int64, error) {
	ps, os, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, 0, fmt.Errorf("%w %q: want <partition>/<offset>", ErrBadSource, s)
	}
	p, err := strconv.ParseInt(ps, 10, 32)
	if err != nil || p < 0 {
		return 0, 0, fmt.Errorf("%w %q: partition must be a number >= 0", ErrBadSource, s)
	}
	o, err := strconv.ParseInt(os, 10, 64)
	if err != nil || o < 0 {
		return 0, 0, fmt.Errorf("%w %q: offset must be a number >= 0", ErrBadSource, s)
	}
	return int32(p), o, nil
}

// LooksLikeSource reports whether s has the "<digits>/<digits>" shape of a
// partition/offset (order ids never contain '/').
func LooksLikeSource(s string) bool { return strings.Contains(s, "/") }
