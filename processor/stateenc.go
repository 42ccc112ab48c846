package processor

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/orderflow/orderflow/topics"
)

// This file writes a state's wire form by hand: the same JSON as
// encoding/json's Marshal of State (same field order, omitempty rules,
// string escaping, time format and sorted step names), without reflection.
// A state is written about six times per order (DESIGN.md, "Packages"),
// and its encoding was the largest single cost of a drain after the calls
// themselves. TestEncodeMatchesMarshal and FuzzEncodeState hold it to
// encoding/json byte for byte.
//
// The order (State.Order) does not change once the details step has read
// it: every change replaces the pointer. Its JSON is made by encoding/json
// once and kept beside the state until the pointer changes, or until the
// order leaves in_progress (its state then waits in the cache, maybe for
// good, and the kept JSON would double its memory).

// dropEncoded forgets the order's JSON kept by Encode.
func (s *State) dropEncoded() { s.orderJSON, s.orderOf = nil, nil }

// appendState appends s's JSON to b. ok is false when s holds a value
// encoding/json refuses or writes differently (a time outside years
// 0-9999 or with a zone offset of a day or more, a result that is not
// compact): the caller then uses encoding/json, for its exact output or
// error.
func appendState(b []byte, s *State) (_ []byte, ok bool) {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(s.Version), 10)
	b = append(b, `,"order_id":`...)
	b = appendString(b, s.OrderID)
	b = append(b, `,"status":`...)
	b = appendString(b, string(s.Status))
	if s.Order != nil {
		if s.orderOf != s.Order {
			o, err := json.Marshal(s.Order)
			if err != nil {
				return b, false
			}
			s.orderJSON, s.orderOf = o, s.Order
		}
		b = append(b, `,"order":`...)
		b = append(b, s.orderJSON...)
	}
	if len(s.Steps) > 0 {
		b = append(b, `,"steps":{`...)
		var buf [16]string
		names := buf[:0]
		for name := range s.Steps {
			names = append(names, name)
		}
		slices.Sort(names)
		for i, name := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, name)
			b = append(b, ':')
			ss := s.Steps[name]
			if ss == nil {
				b = append(b, "null"...)
				continue
			}
			if b, ok = appendStepState(b, ss); !ok {
				return b, false
			}
		}
		b = append(b, '}')
	}
	b = appendStrings(b, `,"pending":`, s.Pending)
	b = appendStrings(b, `,"applied_events":`, s.AppliedEvents)
	b = appendStrings(b, `,"applied_objects":`, s.AppliedObjects)
	b = appendStrings(b, `,"replays":`, s.Replays)
	b = appendStrings(b, `,"flags":`, s.Flags)
	if s.LastError != "" {
		b = append(b, `,"last_error":`...)
		b = appendString(b, s.LastError)
	}
	if d := s.DeadLetter; d != nil {
		b = append(b, `,"dead_letter":{"partition":`...)
		b = strconv.AppendInt(b, int64(d.Partition), 10)
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, d.Offset, 10)
		b = append(b, `,"step":`...)
		b = appendString(b, d.Step)
		b = append(b, `,"class":`...)
		b = appendString(b, d.Class)
		b = append(b, `,"at":`...)
		if b, ok = appendTime(b, d.At); !ok {
			return b, false
		}
		b = append(b, '}')
	}
	if s.NextOffset != 0 {
		b = append(b, `,"next_offset":`...)
		b = strconv.AppendInt(b, s.NextOffset, 10)
	}
	if s.TraceParent != "" {
		b = append(b, `,"traceparent":`...)
		b = appendString(b, s.TraceParent)
	}
	if b, ok = appendTimePtr(b, `,"erased_at":`, s.ErasedAt); !ok {
		return b, false
	}
	b = append(b, `,"created_at":`...)
	if b, ok = appendTime(b, s.CreatedAt); !ok {
		return b, false
	}
	b = append(b, `,"updated_at":`...)
	if b, ok = appendTime(b, s.UpdatedAt); !ok {
		return b, false
	}
	return append(b, '}'), true
}

// appendStepState appends one step's JSON.
func appendStepState(b []byte, ss *StepState) (_ []byte, ok bool) {
	b = append(b, '{')
	n := len(b) // a field after the first is preceded by a comma
	if ss.Done {
		b = append(field(b, n, "done"), "true"...)
	}
	if b, ok = appendStepTime(b, n, "done_at", ss.DoneAt); !ok {
		return b, false
	}
	if len(ss.Result) > 0 {
		if !validRaw(ss.Result) {
			return b, false
		}
		b = append(field(b, n, "result"), ss.Result...)
	}
	if ss.Skipped {
		b = append(field(b, n, "skipped"), "true"...)
	}
	if ss.Attempts != 0 {
		b = strconv.AppendInt(field(b, n, "attempts"), int64(ss.Attempts), 10)
	}
	if ss.LastError != "" {
		b = appendString(field(b, n, "last_error"), ss.LastError)
	}
	for _, t := range [...]struct {
		name string
		at   *time.Time
	}{{"first_failure", ss.FirstFailure}, {"last_failure", ss.LastFailure}, {"intent", ss.Intent}, {"lease", ss.Lease}, {"held_until", ss.HeldUntil}} {
		if b, ok = appendStepTime(b, n, t.name, t.at); !ok {
			return b, false
		}
	}
	if ss.HeldReason != "" {
		b = appendString(field(b, n, "held_reason"), ss.HeldReason)
	}
	if b, ok = appendStepTime(b, n, "circuit_open", ss.CircuitOpen); !ok {
		return b, false
	}
	return append(b, '}'), true
}

// field appends a field's name (and the comma before it unless it is the
// first field of the object that starts at n).
func field(b []byte, n int, name string) []byte {
	if len(b) > n {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

func appendStepTime(b []byte, n int, name string, t *time.Time) (_ []byte, ok bool) {
	if t == nil {
		return b, true
	}
	return appendTime(field(b, n, name), *t)
}

// validRaw reports whether a recorded result can be written as it is:
// compact JSON (what encoding/json writes and the decoder keeps), checked
// cheaply. A result with white space outside strings, which encoding/json
// would compact, sends the state to encoding/json.
func validRaw(r json.RawMessage) bool {
	in := false
	for i := 0; i < len(r); i++ {
		c := r[i]
		switch {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\n' || c == '\r' || c == '\t'):
			return false
		}
	}
	return !in
}

func appendStrings(b []byte, field string, vs []string) []byte {
	if len(vs) == 0 {
		return b
	}
	b = append(b, field...)
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, v)
	}
	return append(b, ']')
}

func appendTimePtr(b []byte, field string, t *time.Time) (_ []byte, ok bool) {
	if t == nil {
		return b, true
	}
	b = append(b, field...)
	return appendTime(b, *t)
}

// appendTime writes t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, trailing zeros cut); ok is false where MarshalJSON fails.
func appendTime(b []byte, t time.Time) (_ []byte, ok bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := t.Zone(); off <= -24*3600 || off >= 24*3600 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}

// appendString writes s as encoding/json's Marshal does (HTML characters
// escaped).
func appendString(b []byte, s string) []byte { return topics.AppendString(b, s, true) }
