// Package topics is the one place that names and shapes orderflow's Kafka
// topics: their names (with a configurable prefix), partition counts and
// configs, the record envelope carried on `orders` and `orders.dlq`, the
// header keys every component reads and writes, and the group-commit
// producer (GroupProducer) the gateway and the processor write through.
package topics

import (
	"fmt"
	"strconv"
)

// Default partition count of `orders` (and so of the co-partitioned
// `orders.state`). It bounds how many processors can share the work.
const DefaultPartitions = 12

// Kind says what a topic holds.
type Kind int

const (
	// Stream is an append-only log of events (cleanup.policy=delete).
	Stream Kind = iota
	// Table is a compacted changelog keyed by order (cleanup.policy=compact).
	Table
)

// Spec is the desired shape of one topic.
type Spec struct {
	Name       string
	Kind       Kind
	Partitions int32
	// CopartitionWith names a topic whose partition count this one must
	// equal, so that partition p of both holds the same keys.
	CopartitionWith string
	Configs         map[string]string
}

// CleanupPolicy is the cleanup.policy the spec requires.
func (s Spec) CleanupPolicy() string {
	if s.Kind == Table {
		return "compact"
	}
	return "delete"
}

// Names holds the prefixed topic names. Build it with New; the zero value is
// not usable.
type Names struct {
	Prefix string
	Orders string
	State  string
	DLQ    string
	// Audit is the log of operator actions (replays, erasures, failed
	// logins) written by the console.
	Audit string
}

// New returns the topic names for a prefix (may be empty). A prefix such as
// "shop1." gives "shop1.orders", "shop1.orders.state", "shop1.orders.dlq",
// "shop1.orders.audit".
func New(prefix string) Names {
	return Names{
		Prefix: prefix,
		Orders: prefix + "orders",
		State:  prefix + "orders.state",
		DLQ:    prefix + "orders.dlq",
		Audit:  prefix + "orders.audit",
	}
}

const (
	day = 24 * 60 * 60 * 1000
)

// Specs returns the desired topics. partitions <= 0 means DefaultPartitions.
// `orders.state` always has the same count as `orders`; `orders.dlq` has one
// partition per order partition too so a replay keeps key locality cheap.
func (n Names) Specs(partitions int32) []Spec {
	if partitions <= 0 {
		partitions = DefaultPartitions
	}
	return []Spec{
		{
			Name: n.Orders, Kind: Stream, Partitions: partitions,
			Configs: map[string]string{
				"cleanup.policy": "delete",
				"retention.ms":   strconv.Itoa(7 * day),
			},
		},
		{
			Name: n.State, Kind: Table, Partitions: partitions, CopartitionWith: n.Orders,
			Configs: map[string]string{
				"cleanup.policy":            "compact",
				"min.compaction.lag.ms":     strconv.Itoa(60 * 60 * 1000),
				"min.cleanable.dirty.ratio": "0.1",
			},
		},
		{
			Name: n.DLQ, Kind: Stream, Partitions: partitions,
			Configs: map[string]string{
				"cleanup.policy": "delete",
				"retention.ms":   strconv.Itoa(30 * day),
			},
		},
		{
			Name: n.Audit, Kind: Stream, Partitions: AuditPartitions,
			Configs: map[string]string{
				"cleanup.policy": "delete",
				"retention.ms":   strconv.Itoa(AuditRetentionDays * day),
			},
		},
	}
}

// Header keys. Gateway → orders: EventID, EventType, TraceParent.
// Processor → orders.dlq: every DLQ* key plus the gateway's; → orders.state:
// StateDigest. Replay → orders: Replay, ReplaySource plus the originals.
const (
	HeaderEventID     = "orderflow-event-id"
	HeaderEventType   = "orderflow-event-type"
	HeaderTraceParent = "traceparent"

	HeaderDLQTopic        = "orderflow-dlq-original-topic"
	HeaderDLQPartition    = "orderflow-dlq-original-partition"
	HeaderDLQOffset       = "orderflow-dlq-original-offset"
	HeaderDLQStep         = "orderflow-dlq-step"
	HeaderDLQClass        = "orderflow-dlq-class"
	HeaderDLQError        = "orderflow-dlq-error"
	HeaderDLQAttempts     = "orderflow-dlq-attempts"
	HeaderDLQFirstFailure = "orderflow-dlq-first-failure"
	HeaderDLQLastFailure  = "orderflow-dlq-last-failure"
	HeaderDLQReplayCount  = "orderflow-dlq-replay-count"

	// HeaderReplay marks a record re-produced by `orderflow dlq replay`; its
	// value is the replay count of the dead letter it came from.
	HeaderReplay = "orderflow-replay"
	// HeaderReplaySource is "<dlq partition>/<dlq offset>" of that dead letter.
	HeaderReplaySource = "orderflow-replay-source"

	// HeaderStateDigest is on every state record the processor writes to
	// orders.state: the facts of the state a reader that lists orders
	// needs, in a versioned binary form checked against the value
	// (processor.Digest).
	HeaderStateDigest = "orderflow-state-digest"
)

// Dead-letter classes (value of HeaderDLQClass).
const (
	ClassPermanent = "permanent"
	ClassExhausted = "exhausted"
	ClassParked    = "parked"
	ClassCorrupt   = "corrupt"
)

// Classes lists every dead-letter class, for validating CLI filters.
var Classes = []string{ClassPermanent, ClassExhausted, ClassParked, ClassCorrupt}

// ValidClass reports whether c is a known dead-letter class.
func ValidClass(c string) bool {
	for _, k := range Classes {
		if k == c {
			return true
		}
	}
	return false
}

// Source formats a partition/offset pair as used by HeaderReplaySource and
// `orderflow dlq show`.
func Source(partition int32, offset int64) string {
	return fmt.Sprintf("%d/%d", partition, offset)
}
