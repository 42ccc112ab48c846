package console

import (
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/orderflow/orderflow/processor"
)

// A summary is stored in a compact binary form, not as JSON: it is written
// once per state record and read once per order a page lists or a search
// finds, and JSON was most of the cost of both. The form: a version byte,
// then each field in the order of Summary, strings and lists prefixed with
// their length (uvarint), integers as varints, times as their
// MarshalBinary bytes (length-prefixed), the attempts by step name in
// sorted order, the event ids (the in-memory table of search terms is
// filled from them at open, terms.go), and last the order's number in
// the index (Seq, uvarint).
const summaryCodec = 3

var errSummaryCodec = errors.New("console: stored summary unreadable")

// appendSummary appends the stored form of s to b.
func appendSummary(b []byte, s *Summary) []byte {
	return appendSeq(appendSummaryBody(b, s), s.Seq)
}

// appendSeq ends a stored summary appendSummaryBody began: the order's
// number is known only when the summary is filed, after it was encoded.
func appendSeq(b []byte, seq uint32) []byte { return binary.AppendUvarint(b, uint64(seq)) }

// appendSummaryBody appends the stored form of s but its Seq.
func appendSummaryBody(b []byte, s *Summary) []byte {
	b = append(b, summaryCodec)
	for _, v := range []string{s.ID, s.Number, s.Status, s.Step} {
		b = appendStr(b, v)
	}
	b = appendTime(b, s.Created)
	b = appendTime(b, s.Updated)
	b = binary.AppendVarint(b, s.Amount)
	for _, v := range []string{s.Currency, s.Email, s.Name, s.Tracking, s.Invoice} {
		b = appendStr(b, v)
	}
	b = appendStrs(b, s.Flags)
	b = appendStrs(b, s.Replays)
	b = binary.AppendVarint(b, int64(s.Done))
	b = binary.AppendVarint(b, int64(s.DoneMask))
	steps := make([]string, 0, len(s.Attempts))
	for k := range s.Attempts {
		steps = append(steps, k)
	}
	slices.Sort(steps)
	b = binary.AppendUvarint(b, uint64(len(steps)))
	for _, k := range steps {
		b = appendStr(b, k)
		b = binary.AppendVarint(b, int64(s.Attempts[k]))
	}
	b = appendStr(b, s.LastError)
	b = appendStr(b, string(s.StateStatus))
	b = binary.AppendVarint(b, int64(s.StatePartition))
	b = binary.AppendVarint(b, s.StateOffset)
	b = appendStrs(b, s.Events)
	return b
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrs(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendStr(b, s)
	}
	return b
}

func appendTime(b []byte, t time.Time) []byte {
	tb, err := t.MarshalBinary()
	if err != nil {
		// A zone offset that is not whole minutes: keep the instant.
		tb, _ = t.UTC().MarshalBinary()
	}
	b = append(b, byte(len(tb)))
	return append(b, tb...)
}

// summaryReader reads the stored form; the first error sticks.
type summaryReader struct {
	b   []byte
	err error
}

func (r *summaryReader) fail() {
	if r.err == nil {
		r.err = errSummaryCodec
	}
	r.b = nil
}

func (r *summaryReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *summaryReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *summaryReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *summaryReader) strs() []string {
	n := r.uvarint()
	if n == 0 || n > uint64(len(r.b)) {
		if n != 0 {
			r.fail()
		}
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.str()
	}
	return out
}

func (r *summaryReader) time() time.Time {
	if len(r.b) == 0 || int(r.b[0]) >= len(r.b) {
		r.fail()
		return time.Time{}
	}
	n := int(r.b[0])
	var t time.Time
	if err := t.UnmarshalBinary(r.b[1 : 1+n]); err != nil {
		r.fail()
	}
	r.b = r.b[1+n:]
	return t
}

// decodeSummary reads a summary appendSummary wrote.
func decodeSummary(b []byte) (*Summary, error) {
	if len(b) == 0 || b[0] != summaryCodec {
		return nil, errSummaryCodec
	}
	r := &summaryReader{b: b[1:]}
	s := &Summary{ID: r.str(), Number: r.str(), Status: r.str(), Step: r.str()}
	s.Created = r.time()
	s.Updated = r.time()
	s.Amount = r.varint()
	s.Currency, s.Email, s.Name, s.Tracking, s.Invoice = r.str(), r.str(), r.str(), r.str(), r.str()
	s.Flags = r.strs()
	s.Replays = r.strs()
	s.Done = int(r.varint())
	s.DoneMask = int(r.varint())
	if n := r.uvarint(); n > 0 && n <= uint64(len(r.b)) {
		s.Attempts = make(map[string]int, n)
		for range n {
			k := r.str()
			s.Attempts[k] = int(r.varint())
		}
	} else if n > 0 {
		r.fail()
	}
	s.LastError = r.str()
	s.StateStatus = processor.Status(r.str())
	s.StatePartition = int32(r.varint())
	s.StateOffset = r.varint()
	s.Events = r.strs()
	if seq := r.uvarint(); seq <= 1<<32-1 {
		s.Seq = uint32(seq)
	} else {
		r.fail()
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail()
	}
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}
