package processor

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor/internal/jsonscan"
	"github.com/orderflow/orderflow/topics"
)

// A state record on orders.state carries, in its header
// topics.HeaderStateDigest, the digest of its state: the facts a reader
// that lists orders needs (the console's summary; DESIGN.md, "Order state
// on disk"), in a small binary form, so that reader need not read the
// value's JSON. DigestOf is the one derivation of those facts: the
// processor writes the digest of the state it encodes, and a reader
// without the header (records of earlier builds, a header that does not
// check) decodes the value and takes DigestOf of that, so both ways give
// the same facts.
//
// The header's form (version 1):
//
//	version byte (1)
//	CRC-32C (Castagnoli), 4 bytes big endian, of the record's value
//	  followed by the rest of the header
//	the rest: order id, status, created, updated, a byte of flags
//	  (1 the state has the order's details, 2 a dead letter), then with
//	  the order its number, currency, amount, email, name; with the dead
//	  letter its step; last error; the flags, replays and applied events;
//	  the steps (a code per name: 1 to 6 the built-in steps of version 1,
//	  0 a name written out; attempts; a byte: 1 done, 2 skipped, 4
//	  waiting on the open circuit); the
//	  shipping result's tracking number, the invoice result's number
//
// Strings and lists are prefixed with their length (uvarint), integers
// are varints, a time is its Unix seconds (varint) and nanoseconds
// (uvarint), in UTC. A reader trusts the header only when the version is
// one it knows, the checksum matches (the value is the one the digest was
// made of) and the form reads to its end.
const DigestVersion = 1

// digestSteps are the step codes of version 1 (code i+1 is
// digestSteps[i]); a new step is written by name.
var digestSteps = [...]string{StepDetails, StepCRM, StepProductionLog, StepShipping, StepInvoice, StepEmail}

// Digest is what a reader that lists orders reads of a state.
type Digest struct {
	OrderID   string
	Status    Status
	CreatedAt time.Time
	UpdatedAt time.Time
	// HasOrder: the state holds the order's details (State.Order), of
	// which Number, Currency, AmountTotal, Email and Name.
	HasOrder    bool
	Number      string
	Currency    string
	AmountTotal int64
	Email       string
	Name        string
	Flags       []string
	Replays     []string
	// AppliedEvents are the Stripe event ids the state lists.
	AppliedEvents []string
	LastError     string
	// HasDeadLetter: the state points at a dead letter, of DeadLetterStep.
	HasDeadLetter  bool
	DeadLetterStep string
	// Steps are the state's steps in name order.
	Steps []DigestStep
	// Tracking is the shipping result's tracking number, Invoice the
	// invoice result's number.
	Tracking string
	Invoice  string
}

// DigestStep is one step of a Digest. Done is the step's Done as a
// decoded state has it (an order of an earlier model reads its details
// again: its details step is not done, see FinishDecode).
type DigestStep struct {
	Name     string
	Attempts int
	Done     bool
	Skipped  bool
	// CircuitOpen: the step waits on its provider's open circuit
	// (StepState.CircuitOpen).
	CircuitOpen bool
}

// Step returns the digest of the step name, nil when the state has none.
func (d *Digest) Step(name string) *DigestStep {
	for i := range d.Steps {
		if d.Steps[i].Name == name {
			return &d.Steps[i]
		}
	}
	return nil
}

// DigestOf returns the digest of st.
func DigestOf(st *State) Digest { return digestOf(st, nil) }

// digestOf is DigestOf with its steps appended to steps (a caller's
// buffer).
func digestOf(st *State, steps []DigestStep) Digest {
	d := Digest{OrderID: st.OrderID, Status: st.Status, CreatedAt: st.CreatedAt, UpdatedAt: st.UpdatedAt,
		Flags: st.Flags, Replays: st.Replays, AppliedEvents: st.AppliedEvents, LastError: st.LastError}
	if o := st.Order; o != nil {
		d.HasOrder = true
		d.Number, d.Currency, d.AmountTotal = o.Number, o.Currency, o.AmountTotal
		d.Email, d.Name = o.Customer.Email, o.Customer.Name
	}
	if dl := st.DeadLetter; dl != nil {
		d.HasDeadLetter, d.DeadLetterStep = true, dl.Step
	}
	if len(st.Steps) > 0 {
		legacy := legacyOrder(st)
		d.Steps = steps[:0]
		if cap(d.Steps) < len(st.Steps) {
			d.Steps = make([]DigestStep, 0, len(st.Steps))
		}
		for name, ss := range st.Steps {
			if ss == nil {
				continue
			}
			d.Steps = append(d.Steps, DigestStep{Name: name, Attempts: ss.Attempts, Done: ss.Done && !(legacy && name == StepDetails), Skipped: ss.Skipped,
				CircuitOpen: ss.CircuitOpen != nil && !ss.Done})
		}
		slices.SortFunc(d.Steps, func(a, b DigestStep) int { return cmp.Compare(a.Name, b.Name) })
	}
	if ss := st.Steps[StepShipping]; ss != nil && len(ss.Result) > 0 {
		d.Tracking = resultString(ss.Result, shipmentFields, "tracking_number", func(sh *integrations.Shipment) string { return sh.TrackingNumber })
	}
	if ss := st.Steps[StepInvoice]; ss != nil && len(ss.Result) > 0 {
		d.Invoice = resultString(ss.Result, invoiceFields, "number", func(inv *integrations.Invoice) string { return inv.Number })
	}
	return d
}

// Fields of the step results a digest reads (integrations.Shipment and
// integrations.Invoice, every one a string).
var (
	shipmentFields = []string{"shipment_id", "tracking_number", "tracking_url", "label_location", "customs_location"}
	invoiceFields  = []string{"number", "provider_id"}
)

// resultString is the string field want of a step result, as
// json.Unmarshal into T reads it ("" when it fails): scanned
// (jsonscan.ObjectString), decoded when the scan does not answer for it.
func resultString[T any](raw json.RawMessage, fields []string, want string, get func(*T) string) string {
	if v, ok := jsonscan.ObjectString(raw, fields, want); ok {
		return v
	}
	var v T
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	return get(&v)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// StateHeaders are the headers of a state record whose value (st's
// Encode) is value: the digest, unless st holds something whose digest
// would differ from the digest of its decoded value (a string that is
// not UTF-8, which the JSON replaces; a time not in UTC, which the JSON
// writes with its offset; a null step; no order id), which is left to
// the value.
func StateHeaders(st *State, value []byte) []kgo.RecordHeader {
	if st.Version <= 0 || st.Version > StateVersion || st.OrderID == "" || value == nil {
		return nil
	}
	for _, ss := range st.Steps {
		if ss == nil {
			return nil
		}
	}
	var steps [16]DigestStep
	d := digestOf(st, steps[:0])
	if !d.exact() {
		return nil
	}
	// Made in a reused buffer, then copied out at its size.
	bp := digestBuffers.Get().(*[]byte)
	defer digestBuffers.Put(bp)
	*bp = AppendDigest((*bp)[:0], &d, value)
	return []kgo.RecordHeader{{Key: topics.HeaderStateDigest, Value: bytes.Clone(*bp)}}
}

// digestBuffers are StateHeaders' scratch buffers.
var digestBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// exact reports whether d reads back from its form as it is.
func (d *Digest) exact() bool {
	for _, t := range [...]time.Time{d.CreatedAt, d.UpdatedAt} {
		if _, off := t.Zone(); off != 0 {
			return false
		}
	}
	for _, s := range [...]string{d.OrderID, string(d.Status), d.Number, d.Currency, d.Email, d.Name, d.LastError, d.DeadLetterStep, d.Tracking, d.Invoice} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	for _, l := range [...][]string{d.Flags, d.Replays, d.AppliedEvents} {
		for _, s := range l {
			if !utf8.ValidString(s) {
				return false
			}
		}
	}
	for _, s := range d.Steps {
		if !utf8.ValidString(s.Name) {
			return false
		}
	}
	return true
}

const (
	digestHasOrder      = 1
	digestHasDeadLetter = 2
	digestDone          = 1
	digestSkipped       = 2
	digestCircuitOpen   = 4
)

// AppendDigest appends the header form of d, checked against value, to b.
func AppendDigest(b []byte, d *Digest, value []byte) []byte {
	b = append(b, DigestVersion, 0, 0, 0, 0)
	start := len(b)
	b = appendDigestStr(b, d.OrderID)
	b = appendDigestStr(b, string(d.Status))
	b = appendDigestTime(b, d.CreatedAt)
	b = appendDigestTime(b, d.UpdatedAt)
	var bits byte
	if d.HasOrder {
		bits |= digestHasOrder
	}
	if d.HasDeadLetter {
		bits |= digestHasDeadLetter
	}
	b = append(b, bits)
	if d.HasOrder {
		b = appendDigestStr(b, d.Number)
		b = appendDigestStr(b, d.Currency)
		b = binary.AppendVarint(b, d.AmountTotal)
		b = appendDigestStr(b, d.Email)
		b = appendDigestStr(b, d.Name)
	}
	if d.HasDeadLetter {
		b = appendDigestStr(b, d.DeadLetterStep)
	}
	b = appendDigestStr(b, d.LastError)
	for _, l := range [...][]string{d.Flags, d.Replays, d.AppliedEvents} {
		b = binary.AppendUvarint(b, uint64(len(l)))
		for _, s := range l {
			b = appendDigestStr(b, s)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(d.Steps)))
	for _, s := range d.Steps {
		if code := slices.Index(digestSteps[:], s.Name); code >= 0 {
			b = binary.AppendUvarint(b, uint64(code+1))
		} else {
			b = append(b, 0)
			b = appendDigestStr(b, s.Name)
		}
		b = binary.AppendVarint(b, int64(s.Attempts))
		var sb byte
		if s.Done {
			sb |= digestDone
		}
		if s.Skipped {
			sb |= digestSkipped
		}
		if s.CircuitOpen {
			sb |= digestCircuitOpen
		}
		b = append(b, sb)
	}
	b = appendDigestStr(b, d.Tracking)
	b = appendDigestStr(b, d.Invoice)
	binary.BigEndian.PutUint32(b[start-4:start], digestSum(value, b[start:]))
	return b
}

// digestSum is the header's checksum: CRC-32C of the value, then the
// header's form after the checksum.
func digestSum(value, body []byte) uint32 {
	return crc32.Update(crc32.Checksum(value, castagnoli), castagnoli, body)
}

func appendDigestStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendDigestTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// Reasons a digest header is not trusted; the reader then decodes the
// value.
var (
	ErrDigestVersion  = errors.New("processor: state digest of an unknown version")
	ErrDigestChecksum = errors.New("processor: state digest does not match the record")
	ErrDigestForm     = errors.New("processor: state digest unreadable")
)

// ParseDigest reads the digest header h of a state record whose value is
// value.
func ParseDigest(h, value []byte) (Digest, error) {
	if len(h) == 0 || h[0] != DigestVersion {
		return Digest{}, ErrDigestVersion
	}
	if len(h) < 5 {
		return Digest{}, ErrDigestForm
	}
	body := h[5:]
	if digestSum(value, body) != binary.BigEndian.Uint32(h[1:5]) {
		return Digest{}, ErrDigestChecksum
	}
	// Every string of the digest is a part of one copy of the body.
	r := digestReader{s: string(body)}
	d := Digest{OrderID: r.str(), Status: Status(r.str()), CreatedAt: r.time(), UpdatedAt: r.time()}
	bits := r.byte()
	if bits&^(digestHasOrder|digestHasDeadLetter) != 0 {
		r.fail()
	}
	if bits&digestHasOrder != 0 {
		d.HasOrder = true
		d.Number, d.Currency, d.AmountTotal, d.Email, d.Name = r.str(), r.str(), r.varint(), r.str(), r.str()
	}
	if bits&digestHasDeadLetter != 0 {
		d.HasDeadLetter, d.DeadLetterStep = true, r.str()
	}
	d.LastError = r.str()
	d.Flags, d.Replays, d.AppliedEvents = r.strs(), r.strs(), r.strs()
	if n := r.uvarint(); n > 0 {
		if n > uint64(len(r.s)) {
			r.fail()
		} else {
			d.Steps = make([]DigestStep, n)
			for i := range d.Steps {
				s := &d.Steps[i]
				switch code := r.uvarint(); {
				case code == 0:
					s.Name = r.str()
				case code <= uint64(len(digestSteps)):
					s.Name = digestSteps[code-1]
				default:
					r.fail()
				}
				s.Attempts = int(r.varint())
				sb := r.byte()
				if sb&^(digestDone|digestSkipped|digestCircuitOpen) != 0 {
					r.fail()
				}
				s.Done, s.Skipped, s.CircuitOpen = sb&digestDone != 0, sb&digestSkipped != 0, sb&digestCircuitOpen != 0
			}
		}
	}
	d.Tracking, d.Invoice = r.str(), r.str()
	if r.bad || len(r.s) != 0 || d.OrderID == "" {
		return Digest{}, ErrDigestForm
	}
	return d, nil
}

// RecordDigest reads the digest header of a state record; ok is false
// when it has none, or one that is not trusted (ParseDigest), or is a
// tombstone.
func RecordDigest(r *kgo.Record) (Digest, bool) {
	if r.Value == nil {
		return Digest{}, false
	}
	for _, h := range r.Headers {
		if h.Key == topics.HeaderStateDigest {
			d, err := ParseDigest(h.Value, r.Value)
			return d, err == nil
		}
	}
	return Digest{}, false
}

// digestReader reads the header form; the first error sticks.
type digestReader struct {
	s   string
	bad bool
}

func (r *digestReader) fail() { r.bad, r.s = true, "" }

func (r *digestReader) byte() byte {
	if len(r.s) == 0 {
		r.fail()
		return 0
	}
	c := r.s[0]
	r.s = r.s[1:]
	return c
}

func (r *digestReader) uvarint() uint64 {
	var v uint64
	for i := 0; i < len(r.s) && i < binary.MaxVarintLen64; i++ {
		c := r.s[i]
		if i == binary.MaxVarintLen64-1 && c > 1 {
			break // overflow
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			r.s = r.s[i+1:]
			return v
		}
	}
	r.fail()
	return 0
}

func (r *digestReader) varint() int64 {
	u := r.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (r *digestReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.s)) {
		r.fail()
		return ""
	}
	s := r.s[:n]
	r.s = r.s[n:]
	return s
}

func (r *digestReader) strs() []string {
	n := r.uvarint()
	if n == 0 {
		return nil
	}
	if n > uint64(len(r.s)) {
		r.fail()
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.str()
	}
	return out
}

func (r *digestReader) time() time.Time {
	sec, nsec := r.varint(), r.uvarint()
	if nsec >= 1e9 {
		r.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}
