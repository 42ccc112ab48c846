package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
)

// Statuses the console files an order under. They are the processor's
// statuses, except that an order in progress whose current step has failed
// at least once (backing off), or one of whose steps waits on its
// provider's open circuit, is "waiting".
const (
	StatusWaiting = "waiting"
	// FilterPossibleDuplicate selects orders flagged possible_duplicate:<step>;
	// it is a flag, not a status, but filters like one.
	FilterPossibleDuplicate = "possible_duplicate"
	// noStep is the step of an order with no current step (completed).
	noStep = "-"
)

// FilterStatuses are the values of the status filter, in the order the
// pages list them. in_progress includes waiting, dead_lettered parked.
var FilterStatuses = []string{
	string(processor.StatusCompleted), string(processor.StatusInProgress), StatusWaiting,
	string(processor.StatusDeadLettered), string(processor.StatusParked), string(processor.StatusRefunded),
	FilterPossibleDuplicate, string(processor.StatusAwaitingPayment), string(processor.StatusPaymentFailed),
	string(processor.StatusErased),
}

// StatusCount is how many orders the status filter selects, from the
// index's counts: in_progress with waiting, dead_lettered with parked,
// refunded with the orders flagged refunded that went on.
func StatusCount(counts map[string]int64, status string) int64 {
	var n int64
	for _, s := range expandStatus(status) {
		n += counts[s]
	}
	if status == string(processor.StatusRefunded) {
		n += counts[countRefundFlagged]
	}
	return n
}

// FilterCounts is StatusCount of every status filter: what the overview
// and the JSON API show.
func FilterCounts(counts map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(FilterStatuses))
	for _, f := range FilterStatuses {
		out[f] = StatusCount(counts, f)
	}
	return out
}

// refundFlags are the flags of an order refunded that went on: in full
// after it shipped, or in part. The refunded filter lists them with the
// orders whose refund stopped the chain.
var refundFlags = []string{processor.FlagRefundedAfterShipping, processor.FlagPartiallyRefunded}

// countRefundFlagged is the index's count of the orders with a refund flag
// whose status is not refunded.
const countRefundFlagged = "refund_flagged"

// refundFlagged reports whether the order has a refund flag.
func (s *Summary) refundFlagged() bool {
	return slices.ContainsFunc(s.Flags, func(f string) bool { return slices.Contains(refundFlags, f) })
}

// refundFlaggedOnly reports whether the order has a refund flag but not
// the refunded status (counted apart, so that none is counted twice).
func (s *Summary) refundFlaggedOnly() bool {
	return s.Status != string(processor.StatusRefunded) && s.refundFlagged()
}

// Summary is what the index keeps of an order for lists and search: ids,
// where it stands, and the customer's email and name (masked for viewers).
type Summary struct {
	ID       string    `json:"id"`
	Number   string    `json:"number,omitempty"`
	Status   string    `json:"status"`
	Step     string    `json:"step,omitempty"` // current step, the failed one for a dead letter
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	Amount   int64     `json:"amount,omitempty"`
	Currency string    `json:"currency,omitempty"`
	Email    string    `json:"email,omitempty"`
	Name     string    `json:"name,omitempty"`
	Tracking string    `json:"tracking,omitempty"`
	Invoice  string    `json:"invoice,omitempty"`
	Flags    []string  `json:"flags,omitempty"`
	Replays  []string  `json:"replays,omitempty"`
	// Done counts the steps done or skipped; DoneMask has bit i set for
	// processor.Chain[i] done or skipped.
	Done     int `json:"done,omitempty"`
	DoneMask int `json:"done_mask,omitempty"`
	// Attempts are the failed attempts by step.
	Attempts  map[string]int `json:"attempts,omitempty"`
	LastError string         `json:"last_error,omitempty"`
	// Events are the Stripe event ids the order's state lists as applied.
	Events []string `json:"-"`
	// StateStatus is the processor's status, for dlq.LetterStatus.
	StateStatus processor.Status `json:"state_status"`
	// StatePartition and StateOffset locate the state record the summary
	// was read from on orders.state (the index keeps no copy of it).
	StatePartition int32 `json:"state_partition"`
	StateOffset    int64 `json:"state_offset"`
	// Seq is the order's number in the index (terms.go), given at its
	// first state.
	Seq uint32 `json:"-"`
}

// MarshalJSON writes the summary for the JSON API and `orders list
// --json`: an order with no current step (completed, erased) has no
// "step", not the table's placeholder.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary // without this method
	if s.Step == noStep {
		s.Step = ""
	}
	return json.Marshal(plain(s))
}

// Summarize reads what the index keeps of a state: the summary of its
// digest, as of a state record's digest header.
func Summarize(st *processor.State) Summary {
	d := processor.DigestOf(st)
	return SummaryFromDigest(&d)
}

// SummaryFromDigest reads what the index keeps of a state from its digest
// (processor.Digest: the header of a state record, or DigestOf a decoded
// state).
func SummaryFromDigest(d *processor.Digest) Summary {
	s := Summary{
		ID: d.OrderID, Number: integrations.OrderNumber(d.OrderID), Status: string(d.Status),
		Created: d.CreatedAt, Updated: d.UpdatedAt, Flags: d.Flags, Replays: d.Replays,
		LastError: d.LastError, Events: d.AppliedEvents, StateStatus: d.Status,
		Tracking: d.Tracking, Invoice: d.Invoice,
	}
	if s.Created.IsZero() {
		s.Created = d.UpdatedAt
	}
	if d.HasOrder {
		if d.Number != "" {
			s.Number = d.Number
		}
		s.Amount, s.Currency = d.AmountTotal, d.Currency
		s.Email, s.Name = d.Email, d.Name
	}
	current := ""
	var currentStep *processor.DigestStep
	for i, name := range processor.Chain {
		ss := d.Step(name)
		if ss != nil && ss.Attempts > 0 {
			if s.Attempts == nil {
				s.Attempts = map[string]int{}
			}
			s.Attempts[name] = ss.Attempts
		}
		if ss != nil && (ss.Done || ss.Skipped) {
			s.Done++
			s.DoneMask |= 1 << i
			continue
		}
		if current == "" {
			current, currentStep = name, ss
		}
	}
	switch {
	case d.HasDeadLetter && (d.Status == processor.StatusDeadLettered || d.Status == processor.StatusParked):
		s.Step = d.DeadLetterStep
	case d.Status == processor.StatusCompleted || d.Status == processor.StatusErased || current == "":
		// An erasure marker keeps no steps: it stands at none.
		s.Step = noStep
	default:
		s.Step = current
	}
	if d.Status == processor.StatusInProgress && (currentStep != nil && currentStep.Attempts > 0 || circuitWait(d)) {
		s.Status = StatusWaiting
	}
	return s
}

// circuitWait reports whether a step of the order waits on its
// provider's open circuit.
func circuitWait(d *processor.Digest) bool {
	for i := range d.Steps {
		if d.Steps[i].CircuitOpen {
			return true
		}
	}
	return false
}

// PossibleDuplicates are the steps the order is flagged possible_duplicate for.
func (s *Summary) PossibleDuplicates() []string {
	var out []string
	for _, f := range s.Flags {
		if step, ok := strings.CutPrefix(f, processor.FlagPossibleDuplicatePrefix); ok {
			out = append(out, step)
		}
	}
	return out
}

// ErrBadQuery is wrapped by every Query validation error; pages answer it
// with 400 and the reason.
var ErrBadQuery = errors.New("bad filter")

// Query selects orders. Zero fields match everything.
type Query struct {
	// Statuses are FilterStatuses values; any may match.
	Statuses []string
	// Steps are processor.Chain steps: the order's current step (the
	// failed one for a dead letter, the flagged one for possible_duplicate).
	Steps []string
	// Since and Until bound the order's creation: Since inclusive.
	Since, Until time.Time
	// Term is searched for as an order id, OF- number, customer email,
	// tracking number, invoice number or event id.
	Term string
}

// Validate checks statuses, steps and the time range.
func (q Query) Validate() error {
	for _, s := range q.Statuses {
		if !slices.Contains(FilterStatuses, s) {
			return fmt.Errorf("%w: unknown status %q (want one of %s)", ErrBadQuery, s, strings.Join(FilterStatuses, ", "))
		}
	}
	for _, s := range q.Steps {
		if !processor.KnownStep(s) {
			return fmt.Errorf("%w: unknown step %q (want one of %s, webhook:<name>)", ErrBadQuery, s, strings.Join(processor.Chain, ", "))
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return fmt.Errorf("%w: since %s is not before until %s", ErrBadQuery, q.Since.Format(time.RFC3339), q.Until.Format(time.RFC3339))
	}
	if len(q.Term) > MaxTerm {
		return fmt.Errorf("%w: search term longer than %d bytes", ErrBadQuery, MaxTerm)
	}
	return nil
}

// MaxTerm is the longest search term, in bytes: an email may have 254
// characters, more bytes where they are not ASCII.
const MaxTerm = 1024

// Match reports whether s is selected by everything but Term (the index
// finds the term's candidates; Match filters them).
func (q Query) Match(s *Summary) bool {
	if len(q.Statuses) > 0 {
		ok := false
		for _, want := range q.Statuses {
			if q.statusMatches(want, s) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	} else if len(q.Steps) > 0 && !slices.Contains(q.Steps, s.Step) {
		return false
	}
	if !q.Since.IsZero() && s.Created.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && !s.Created.Before(q.Until) {
		return false
	}
	return true
}

func (q Query) statusMatches(want string, s *Summary) bool {
	if want == FilterPossibleDuplicate {
		dups := s.PossibleDuplicates()
		if len(q.Steps) == 0 {
			return len(dups) > 0
		}
		for _, d := range dups {
			if slices.Contains(q.Steps, d) {
				return true
			}
		}
		return false
	}
	if len(q.Steps) > 0 && !slices.Contains(q.Steps, s.Step) {
		return false
	}
	if want == string(processor.StatusRefunded) && s.refundFlagged() {
		return true
	}
	return slices.Contains(expandStatus(want), s.Status)
}

// expandStatus is what a status filter selects: in_progress includes
// waiting, and dead_lettered includes parked (a dead-lettered order whose
// later events were parked behind it: most Checkout orders, whose second
// event comes after the failure).
func expandStatus(want string) []string {
	switch want {
	case string(processor.StatusInProgress):
		return []string{want, StatusWaiting}
	case string(processor.StatusDeadLettered):
		return []string{want, string(processor.StatusParked)}
	}
	return []string{want}
}

// MatchTerm reports whether term names the order: its id, OF- number,
// customer email (case-insensitive), tracking or invoice number, or one of
// its event ids. It is what the index's search finds, for use without one.
func MatchTerm(term string, s *Summary) bool {
	term = strings.TrimSpace(term)
	if term == "" {
		return true
	}
	switch {
	case term == s.ID, strings.EqualFold(term, s.Number), strings.EqualFold(term, s.Email),
		s.Tracking != "" && term == s.Tracking, s.Invoice != "" && term == s.Invoice:
		return true
	}
	return slices.Contains(s.Events, term)
}
