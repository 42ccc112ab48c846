package processor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics/tracing"
)

// StateVersion is the current version of the order state record.
const StateVersion = 1

// Status is where an order stands.
type Status string

const (
	// StatusInProgress: the chain has started and not finished.
	StatusInProgress Status = "in_progress"
	// StatusCompleted: every enabled step is done.
	StatusCompleted Status = "completed"
	// StatusDeadLettered: a step failed permanently or exhausted its
	// attempts; the record is on the dead-letter topic.
	StatusDeadLettered Status = "dead_lettered"
	// StatusParked: the order is dead-lettered and later events of it were
	// dead-lettered behind it (class parked), waiting for a replay.
	StatusParked Status = "parked"
	// StatusRefunded: a refund arrived before shipping; the chain stopped.
	StatusRefunded Status = "refunded"
	// StatusAwaitingPayment: a Checkout Session completed unpaid (delayed
	// payment method, or a card payment to be captured later); the chain
	// starts when the payment succeeds.
	StatusAwaitingPayment Status = "awaiting_payment"
	// StatusPaymentFailed: the payment a Checkout Session awaited failed
	// (checkout.session.async_payment_failed: a debit refused or
	// returned) or was canceled (payment_intent.canceled: an authorization
	// canceled or expired before capture); nothing was sent and nothing
	// will be, unless a later payment of the order succeeds.
	StatusPaymentFailed Status = "payment_failed"
	// StatusErased: the order's data was erased on request (`orderflow
	// orders erase`). The record is an erasure marker: the order id, when
	// it was erased and nothing else. It replaces the state under the same
	// key, so compaction removes every earlier value, as it would after a
	// tombstone, while the marker itself stays: a later event of the order
	// is ignored with an alert instead of starting the order over.
	StatusErased Status = "erased"
)

// State is an order's progress, the value of its record on `orders.state`
// (key = order key). It is the processor's durable memory: a step recorded
// done here is never called again.
type State struct {
	Version int    `json:"v"`
	OrderID string `json:"order_id"`
	Status  Status `json:"status"`
	// Order is the result of the details step, used by every later step so
	// that all of them see the same data. It is replaced, never changed in
	// place: Encode keeps its JSON until the pointer changes.
	Order *integrations.Order `json:"order,omitempty"`
	// Steps holds each step's progress by step name.
	Steps map[string]*StepState `json:"steps,omitempty"`
	// Pending are the steps of the chain not done yet while it runs or
	// waits for a replay (absent once the order is completed). Steps that
	// nothing else reads run beside the others, so an order whose shipment,
	// invoice and email are done may still wait for its CRM deal.
	Pending []string `json:"pending,omitempty"`
	// AppliedEvents are the Stripe event ids already applied (bounded to the
	// most recent MaxAppliedEvents).
	AppliedEvents []string `json:"applied_events,omitempty"`
	// AppliedObjects are "<event type>/<data.object.id>" pairs already
	// applied: Stripe sometimes sends two distinct events for one change.
	AppliedObjects []string `json:"applied_objects,omitempty"`
	// Replays are the dead letters ("<dlq partition>/<dlq offset>") already
	// replayed into this order; a second replay of one is ignored.
	Replays []string `json:"replays,omitempty"`
	// Flags are conditions a human should know about, such as
	// "possible_duplicate:shipping".
	Flags      []string    `json:"flags,omitempty"`
	LastError  string      `json:"last_error,omitempty"`
	DeadLetter *DeadLetter `json:"dead_letter,omitempty"`
	// NextOffset is one past the `orders` offset of the last record of this
	// order that was fully handled; a record below it is a redelivery (after
	// a crash or rebalance before the commit) and changes nothing.
	NextOffset int64 `json:"next_offset,omitempty"`
	// TraceParent is the W3C traceparent of the order's trace: the header
	// of the record that created the state (the gateway's), or of the
	// first record handled by this version for an older state. Every span
	// the processor makes for the order is in this trace (DESIGN.md,
	// "Tracing"). Absent in states of earlier versions.
	TraceParent string `json:"traceparent,omitempty"`
	// ErasedAt is when an erased order's data was erased.
	ErasedAt  *time.Time `json:"erased_at,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`

	// orderJSON is the JSON of the order orderOf points at, made by the
	// first Encode that writes it (stateenc.go): Order is replaced, never
	// changed in place, once the details step has read it.
	orderJSON []byte
	orderOf   *integrations.Order
}

// TraceID is the order's trace id (32 hex digits), "" when the state has
// no valid traceparent.
func (s *State) TraceID() string { return tracing.TraceID(s.TraceParent) }

// MaxAppliedEvents bounds State.AppliedEvents and AppliedObjects.
const MaxAppliedEvents = 64

// StepState is one step's progress.
type StepState struct {
	Done   bool            `json:"done,omitempty"`
	DoneAt *time.Time      `json:"done_at,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	// Skipped is true when the step is turned off in the configuration.
	Skipped      bool       `json:"skipped,omitempty"`
	Attempts     int        `json:"attempts,omitempty"`
	LastError    string     `json:"last_error,omitempty"`
	FirstFailure *time.Time `json:"first_failure,omitempty"`
	LastFailure  *time.Time `json:"last_failure,omitempty"`
	// Intent is recorded before a call to a provider that is not idempotent
	// (shipping, invoice, email) and cleared when the result is recorded.
	// An intent without a result after a restart means the call may have
	// happened.
	Intent *time.Time `json:"intent,omitempty"`
	// Lease is when the call behind Intent can no longer be sent (its
	// context deadline; the time the call returned, once it has). The next
	// owner waits for it, plus the clock drift bound, before it looks the
	// call up. An intent without a lease (an earlier version) ends at the
	// intent plus the step timeout.
	Lease *time.Time `json:"lease,omitempty"`
	// HeldUntil is set while the step is held because its provider's
	// quota (a daily allowance of API calls) is used up: no call is made
	// and no attempt spent before this time, when the processor tries one
	// order's call and, if it succeeds, resumes the others. HeldReason is
	// the provider's answer. Both are cleared when the step runs again.
	HeldUntil  *time.Time `json:"held_until,omitempty"`
	HeldReason string     `json:"held_reason,omitempty"`
	// CircuitOpen is set while the step waits on its provider's open
	// circuit (since when): its call failed as the circuit opened (an
	// attempt not counted), or the circuit was open when the order came to
	// the step. It is written once when the wait begins and cleared with
	// the next write once a call is made.
	CircuitOpen *time.Time `json:"circuit_open,omitempty"`
}

// DeadLetter points at the order's dead letter.
type DeadLetter struct {
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Step      string    `json:"step"`
	Class     string    `json:"class"`
	At        time.Time `json:"at"`
}

// ErrStateInvalid is returned by DecodeState for a record it cannot read.
var ErrStateInvalid = errors.New("processor: invalid order state")

// Encode returns the state's wire form.
func (s *State) Encode() ([]byte, error) {
	if s.Version == 0 {
		s.Version = StateVersion
	}
	// Written into a reused buffer, then copied out at its exact size:
	// the record's value is kept (by the producer, the cache and the local
	// store), so a slack capacity would stay allocated with it.
	bp := encodeBuffers.Get().(*[]byte)
	defer encodeBuffers.Put(bp)
	b, ok := appendState((*bp)[:0], s)
	if cap(b) <= 64<<10 { // an outsized state's buffer is not kept
		*bp = b[:0]
	}
	if ok {
		return bytes.Clone(b), nil
	}
	return json.Marshal(s) // what the hand-written encoder leaves to encoding/json (stateenc.go)
}

// encodeBuffers are Encode's scratch buffers.
var encodeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// DecodeState parses an `orders.state` record value.
func DecodeState(b []byte) (*State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStateInvalid, err)
	}
	return FinishDecode(&s)
}

// FinishDecode checks a state just unmarshalled from a record and brings
// it to what this build reads (DecodeState is json.Unmarshal and then
// FinishDecode; a reader with another JSON decoder calls it too).
func FinishDecode(s *State) (*State, error) {
	if s.Version <= 0 || s.Version > StateVersion {
		return nil, fmt.Errorf("%w: version %d (this build reads up to %d)", ErrStateInvalid, s.Version, StateVersion)
	}
	if s.OrderID == "" {
		return nil, fmt.Errorf("%w: no order id", ErrStateInvalid)
	}
	if s.Steps == nil {
		s.Steps = map[string]*StepState{}
	}
	for name, ss := range s.Steps {
		if ss == nil {
			return nil, fmt.Errorf("%w: step %q is null", ErrStateInvalid, name)
		}
	}
	rereadLegacyOrder(s)
	return s, nil
}

// rereadLegacyOrder makes an unfinished order recorded by the previous
// version read its details again. That version kept one basis-point rate
// per line and no taxes, discounts, shipping cost or billing address, so
// the later steps cannot invoice it correctly from the state. Its details
// step is marked not done: the chain's next run reads the order from
// Stripe again (an idempotent read) before its first unfinished step, and
// the steps already done are not repeated. A finished order (completed or
// refunded) runs no step and keeps its state as it is.
func rereadLegacyOrder(s *State) {
	if !legacyOrder(s) {
		return
	}
	if d := s.Steps[StepDetails]; d != nil && d.Done {
		d.Done, d.DoneAt = false, nil
	}
}

// legacyOrder reports whether s is an unfinished order of an earlier
// order model, whose details are read again.
func legacyOrder(s *State) bool {
	return s.Order != nil && s.Order.Model < integrations.OrderModel && s.Status != StatusCompleted && s.Status != StatusRefunded
}

// Step returns the state of a step, creating it when absent.
func (s *State) Step(name string) *StepState {
	if s.Steps == nil {
		s.Steps = map[string]*StepState{}
	}
	st, ok := s.Steps[name]
	if !ok {
		st = &StepState{}
		s.Steps[name] = st
	}
	return st
}

// HasFlag reports whether the state carries a flag.
func (s *State) HasFlag(f string) bool {
	for _, x := range s.Flags {
		if x == f {
			return true
		}
	}
	return false
}

// RemoveFlag takes a flag off the state.
func (s *State) RemoveFlag(f string) {
	s.Flags = slices.DeleteFunc(s.Flags, func(x string) bool { return x == f })
}

// AddFlag gives the state a flag it does not carry yet.
func (s *State) AddFlag(f string) {
	if !s.HasFlag(f) {
		s.Flags = append(s.Flags, f)
	}
}

// StepNames lists the steps an order's state knows of, for showing them
// (orders show, the console): the built-in steps (Chain), then the other
// steps recorded (webhooks) by name, with the steps still pending, those
// not started yet included, in their chain order (State.Pending is in
// chain order) in the places the pending ones take in that list. A
// completed order's webhooks follow the built-in steps: its state no
// longer says where they were listed.
func (s *State) StepNames() []string {
	names := slices.Clone(Chain)
	var other []string
	for k := range s.Steps {
		if !slices.Contains(names, k) {
			other = append(other, k)
		}
	}
	slices.Sort(other)
	names = append(names, other...)
	var pend []string
	for _, k := range s.Pending {
		if k == "" || slices.Contains(pend, k) {
			continue
		}
		pend = append(pend, k)
		if !slices.Contains(names, k) {
			names = append(names, k)
		}
	}
	// The places of the pending steps, filled with them in chain order.
	next := 0
	for i, k := range names {
		if slices.Contains(pend, k) {
			names[i] = pend[next]
			next++
		}
	}
	return names
}
