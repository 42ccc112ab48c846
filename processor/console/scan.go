package console

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
)

// The index needs a handful of fields of a state (Summarize), not the whole
// of it: the order's lines, addresses, step results other than shipping's
// and invoice's, timestamps of steps and the like are most of a record's
// bytes and of its decoding cost. The scanner walks a state record once,
// byte by byte, checking the JSON syntax as it goes, and keeps only those
// fields, skipping every other value without building it.
//
// It answers only for records it reads exactly as decodeState does. On
// anything else (a null in a field it reads, a field of an unexpected
// kind, a number that is not an integer, a name that differs from a known
// one only in case, a duplicate or escaped name of a field it reads,
// invalid UTF-8 in a string it reads, a time that does not parse, invalid
// JSON) it reports false and the caller decodes the record in full, so
// both paths accept the same records and summarize them alike
// (TestScanStateAgrees). Values it skips are checked for syntax only: a
// field it does not read holding a value of the wrong type does not stop
// the order from being listed.

// errScan makes the caller decode in full.
var errScan = errors.New("console: state record not scanned")

// maxDepth bounds the nesting the scan follows; deeper records are
// decoded in full.
const maxDepth = 200

// stateScanner scans state records; one per goroutine.
type stateScanner struct {
	b     []byte
	pos   int
	depth int
	unq   []byte // scratch for unquoting
}

// scan returns the parts of the state in b that Summarize reads, checked
// by processor.FinishDecode; ok is false when b must be decoded in full.
func (sc *stateScanner) scan(b []byte) (st *processor.State, ok bool) {
	sc.b, sc.pos, sc.depth = b, 0, 0
	defer func() { sc.b = nil }()
	st = &processor.State{}
	if err := sc.state(st); err != nil {
		return nil, false
	}
	if sc.peek() != 0 || sc.pos != len(b) {
		return nil, false // trailing data
	}
	st, err := processor.FinishDecode(st)
	if err != nil {
		return nil, false
	}
	return st, true
}

// Field names as they appear quoted in a record (names with escapes are
// compared unquoted).
var (
	nV              = []byte(`"v"`)
	nOrderID        = []byte(`"order_id"`)
	nStatus         = []byte(`"status"`)
	nOrder          = []byte(`"order"`)
	nSteps          = []byte(`"steps"`)
	nAppliedEvents  = []byte(`"applied_events"`)
	nAppliedObjects = []byte(`"applied_objects"`)
	nReplays        = []byte(`"replays"`)
	nFlags          = []byte(`"flags"`)
	nLastError      = []byte(`"last_error"`)
	nDeadLetter     = []byte(`"dead_letter"`)
	nNextOffset     = []byte(`"next_offset"`)
	nErasedAt       = []byte(`"erased_at"`)
	nCreatedAt      = []byte(`"created_at"`)
	nUpdatedAt      = []byte(`"updated_at"`)

	nModel       = []byte(`"model"`)
	nNumber      = []byte(`"number"`)
	nCurrency    = []byte(`"currency"`)
	nAmountTotal = []byte(`"amount_total"`)
	nCustomer    = []byte(`"customer"`)
	nEmail       = []byte(`"email"`)
	nName        = []byte(`"name"`)

	nDone     = []byte(`"done"`)
	nSkipped  = []byte(`"skipped"`)
	nAttempts = []byte(`"attempts"`)
	nResult   = []byte(`"result"`)
	nStep     = []byte(`"step"`)
)

// Names of each object the scan reads, for the case check: decodeState
// falls back to encoding/json, which matches names regardless of case.
var (
	stateFieldNames = fieldNames(nV, nOrderID, nStatus, nOrder, nSteps, nAppliedEvents, nAppliedObjects, nReplays, nFlags,
		nLastError, nDeadLetter, nNextOffset, nErasedAt, nCreatedAt, nUpdatedAt)
	orderFieldNames    = fieldNames(nModel, nNumber, nCurrency, nAmountTotal, nCustomer)
	customerFieldNames = fieldNames(nEmail, nName)
	stepFieldNames     = fieldNames(nDone, nSkipped, nAttempts, nResult)
	letterFieldNames   = fieldNames(nStep)
)

func fieldNames(ns ...[]byte) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = string(n[1 : len(n)-1])
	}
	return out
}

// ws skips whitespace.
func (sc *stateScanner) ws() {
	// Records are written compact: most calls find no whitespace.
	if sc.pos < len(sc.b) && sc.b[sc.pos] > ' ' {
		return
	}
	for sc.pos < len(sc.b) {
		switch sc.b[sc.pos] {
		case ' ', '\t', '\n', '\r':
			sc.pos++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, 0 at the end.
func (sc *stateScanner) peek() byte {
	sc.ws()
	if sc.pos >= len(sc.b) {
		return 0
	}
	return sc.b[sc.pos]
}

// expect consumes c, the next byte after whitespace, if it is there.
func (sc *stateScanner) expect(c byte) bool {
	if sc.peek() != c {
		return false
	}
	sc.pos++
	return true
}

// rawString consumes a string and returns it as in the record, quotes
// included; esc reports an escape in it. Escapes are checked for form
// (\uXXXX with four hex digits); control characters are refused.
func (sc *stateScanner) rawString() (raw []byte, esc bool, err error) {
	if sc.peek() != '"' {
		return nil, false, errScan
	}
	start := sc.pos
	for i := start + 1; i < len(sc.b); {
		// Most bytes of a string are plain: pass them eight at a time,
		// then one by one up to the byte that ends the run.
		for i+8 <= len(sc.b) && !hasSpecial(binary.LittleEndian.Uint64(sc.b[i:])) {
			i += 8
		}
		for i < len(sc.b) && !strSpecial[sc.b[i]] {
			i++
		}
		if i >= len(sc.b) {
			break
		}
		c := sc.b[i]
		switch {
		case c == '"':
			sc.pos = i + 1
			return sc.b[start : i+1], esc, nil
		case c < 0x20:
			return nil, false, errScan
		case c == '\\':
			esc = true
			if i+1 >= len(sc.b) {
				return nil, false, errScan
			}
			switch sc.b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(sc.b) {
					return nil, false, errScan
				}
				for _, h := range sc.b[i+2 : i+6] {
					if !isHex(h) {
						return nil, false, errScan
					}
				}
				i += 6
			default:
				return nil, false, errScan
			}
		default:
			i++
		}
	}
	return nil, false, errScan
}

// strSpecial marks the bytes that end a plain run in a string: the quote,
// the backslash and control characters.
var strSpecial = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// hasSpecial reports whether one of the eight bytes of w is a quote, a
// backslash or a control character (below 0x20).
func hasSpecial(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote := w ^ (ones * '"')
	bslash := w ^ (ones * '\\')
	return ((quote-ones)&^quote|(bslash-ones)&^bslash|(w-ones*0x20)&^w)&highs != 0
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// number consumes a JSON number and returns it as in the record.
func (sc *stateScanner) number() ([]byte, error) {
	sc.ws()
	b, start := sc.b, sc.pos
	i := start
	digits := func() bool {
		n := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return nil, errScan
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return nil, errScan
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return nil, errScan
		}
	}
	sc.pos = i
	return b[start:i], nil
}

// literal consumes true, false or null.
func (sc *stateScanner) literal(lit string) error {
	if sc.peek() == 0 || len(sc.b)-sc.pos < len(lit) || string(sc.b[sc.pos:sc.pos+len(lit)]) != lit {
		return errScan
	}
	sc.pos += len(lit)
	return nil
}

// object reads an object, calling field with each name as it is in the
// record (quoted); field must consume the value. A name with an escape,
// a duplicate of a known name, stops the scan.
func (sc *stateScanner) object(known []string, field func(name []byte) error) error {
	if !sc.expect('{') {
		return errScan
	}
	if sc.expect('}') {
		return nil
	}
	if sc.depth++; sc.depth > maxDepth {
		return errScan
	}
	var seen uint64
	for {
		name, esc, err := sc.rawString()
		if err != nil || esc {
			return errScan // an escaped name is rare: let the decoder unquote it
		}
		if !sc.expect(':') {
			return errScan
		}
		for i, k := range known {
			if len(k) == len(name)-2 && string(name[1:len(name)-1]) == k {
				if seen&(1<<i) != 0 {
					return errScan // a duplicate of a name read
				}
				seen |= 1 << i
				break
			}
		}
		if err := field(name); err != nil {
			return err
		}
		if sc.expect(',') {
			continue
		}
		if sc.expect('}') {
			sc.depth--
			return nil
		}
		return errScan
	}
}

// unknown skips the value of a name the scan does not read, unless the
// name matches a known one regardless of case.
func (sc *stateScanner) unknown(name []byte, known []string) error {
	n := name[1 : len(name)-1]
	for _, k := range known {
		if len(k) == len(n) && strings.EqualFold(string(n), k) {
			return errScan
		}
	}
	return sc.skip()
}

// skip skips a value the scan does not read, checking its syntax (a null
// too: decoded, it is the zero value).
func (sc *stateScanner) skip() error {
	switch c := sc.peek(); {
	case c == '"':
		_, _, err := sc.rawString()
		return err
	case c == '{':
		return sc.object(nil, func([]byte) error { return sc.skip() })
	case c == '[':
		sc.pos++
		if sc.expect(']') {
			return nil
		}
		if sc.depth++; sc.depth > maxDepth {
			return errScan
		}
		for {
			if err := sc.skip(); err != nil {
				return err
			}
			if sc.expect(',') {
				continue
			}
			if sc.expect(']') {
				sc.depth--
				return nil
			}
			return errScan
		}
	case c == 't':
		return sc.literal("true")
	case c == 'f':
		return sc.literal("false")
	case c == 'n':
		return sc.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		_, err := sc.number()
		return err
	}
	return errScan
}

// skipKind skips a value that must be k ('"', '[', '{', '0' a number) or
// null.
func (sc *stateScanner) skipKind(k byte) error {
	c := sc.peek()
	if c == '-' || c >= '0' && c <= '9' {
		c = '0'
	}
	if c != k && c != 'n' {
		return errScan
	}
	return sc.skip()
}

// str reads a string. Invalid UTF-8 is left to the decoder (which
// replaces it); the scan lets it pass only in values it skips.
func (sc *stateScanner) str() (string, error) {
	raw, esc, err := sc.rawString()
	if err != nil {
		return "", err
	}
	v := raw[1 : len(raw)-1]
	if esc {
		sc.unq, err = jsontext.AppendUnquote(sc.unq[:0], raw)
		if err != nil {
			return "", errScan
		}
		v = sc.unq
	}
	if !utf8.Valid(v) {
		return "", errScan
	}
	return string(v), nil
}

func (sc *stateScanner) int() (int64, error) {
	v, err := sc.number()
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, errScan
	}
	return n, nil
}

func (sc *stateScanner) bool() (bool, error) {
	switch sc.peek() {
	case 't':
		return true, sc.literal("true")
	case 'f':
		return false, sc.literal("false")
	}
	return false, errScan
}

func (sc *stateScanner) time() (time.Time, error) {
	s, err := sc.str()
	if err != nil {
		return time.Time{}, err
	}
	// Strict RFC 3339, as encoding/json reads a time.
	var t time.Time
	if err := t.UnmarshalText([]byte(s)); err != nil {
		return time.Time{}, errScan
	}
	return t, nil
}

// strings reads an array of strings; an empty one is empty, not nil, as
// decoded.
func (sc *stateScanner) strings() ([]string, error) {
	if !sc.expect('[') {
		return nil, errScan
	}
	out := []string{}
	if sc.expect(']') {
		return out, nil
	}
	for {
		s, err := sc.str()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		if sc.expect(',') {
			continue
		}
		if sc.expect(']') {
			return out, nil
		}
		return nil, errScan
	}
}

func (sc *stateScanner) state(st *processor.State) error {
	return sc.object(stateFieldNames, func(name []byte) error {
		var err error
		switch {
		case bytes.Equal(name, nV):
			var n int64
			n, err = sc.int()
			st.Version = int(n)
			if int64(st.Version) != n {
				err = errScan
			}
		case bytes.Equal(name, nOrderID):
			st.OrderID, err = sc.str()
		case bytes.Equal(name, nStatus):
			var s string
			s, err = sc.str()
			st.Status = processor.Status(s)
		case bytes.Equal(name, nOrder):
			st.Order = &integrations.Order{}
			err = sc.order(st.Order)
		case bytes.Equal(name, nSteps):
			if st.Steps == nil {
				st.Steps = map[string]*processor.StepState{}
			}
			err = sc.steps(st.Steps)
		case bytes.Equal(name, nAppliedEvents):
			st.AppliedEvents, err = sc.strings()
		case bytes.Equal(name, nReplays):
			st.Replays, err = sc.strings()
		case bytes.Equal(name, nFlags):
			st.Flags, err = sc.strings()
		case bytes.Equal(name, nLastError):
			st.LastError, err = sc.str()
		case bytes.Equal(name, nDeadLetter):
			st.DeadLetter = &processor.DeadLetter{}
			err = sc.object(letterFieldNames, func(name []byte) error {
				if bytes.Equal(name, nStep) {
					var err error
					st.DeadLetter.Step, err = sc.str()
					return err
				}
				return sc.unknown(name, letterFieldNames)
			})
		case bytes.Equal(name, nCreatedAt):
			st.CreatedAt, err = sc.time()
		case bytes.Equal(name, nUpdatedAt):
			st.UpdatedAt, err = sc.time()
		case bytes.Equal(name, nAppliedObjects):
			err = sc.skipKind('[')
		case bytes.Equal(name, nNextOffset):
			_, err = sc.int()
		case bytes.Equal(name, nErasedAt):
			_, err = sc.time()
		default:
			err = sc.unknown(name, stateFieldNames)
		}
		return err
	})
}

func (sc *stateScanner) order(o *integrations.Order) error {
	return sc.object(orderFieldNames, func(name []byte) error {
		var err error
		switch {
		case bytes.Equal(name, nModel):
			var n int64
			n, err = sc.int()
			o.Model = int(n)
			if int64(o.Model) != n {
				err = errScan
			}
		case bytes.Equal(name, nNumber):
			o.Number, err = sc.str()
		case bytes.Equal(name, nCurrency):
			o.Currency, err = sc.str()
		case bytes.Equal(name, nAmountTotal):
			o.AmountTotal, err = sc.int()
		case bytes.Equal(name, nCustomer):
			err = sc.object(customerFieldNames, func(name []byte) error {
				var err error
				switch {
				case bytes.Equal(name, nEmail):
					o.Customer.Email, err = sc.str()
				case bytes.Equal(name, nName):
					o.Customer.Name, err = sc.str()
				default:
					err = sc.unknown(name, customerFieldNames)
				}
				return err
			})
		default:
			err = sc.unknown(name, orderFieldNames)
		}
		return err
	})
}

func (sc *stateScanner) steps(steps map[string]*processor.StepState) error {
	if !sc.expect('{') {
		return errScan
	}
	if sc.expect('}') {
		return nil
	}
	for {
		step, err := sc.str()
		if err != nil || !sc.expect(':') {
			return errScan
		}
		if _, dup := steps[step]; dup {
			return errScan
		}
		ss := &processor.StepState{}
		if err := sc.object(stepFieldNames, func(name []byte) error {
			var err error
			switch {
			case bytes.Equal(name, nDone):
				ss.Done, err = sc.bool()
			case bytes.Equal(name, nSkipped):
				ss.Skipped, err = sc.bool()
			case bytes.Equal(name, nAttempts):
				var n int64
				n, err = sc.int()
				ss.Attempts = int(n)
				if int64(ss.Attempts) != n {
					err = errScan
				}
			case bytes.Equal(name, nResult):
				if step != processor.StepShipping && step != processor.StepInvoice {
					return sc.skip()
				}
				if sc.peek() == 'n' {
					return errScan
				}
				start := sc.pos
				if err = sc.skip(); err == nil {
					ss.Result = json.RawMessage(bytes.Clone(sc.b[start:sc.pos]))
				}
			default:
				err = sc.unknown(name, stepFieldNames)
			}
			return err
		}); err != nil {
			return err
		}
		steps[step] = ss
		if sc.expect(',') {
			continue
		}
		if sc.expect('}') {
			return nil
		}
		return errScan
	}
}

// Fields of the step results Summarize reads (integrations.Shipment and
// integrations.Invoice, every one a string).
var (
	shipmentFields = []string{"shipment_id", "tracking_number", "tracking_url", "label_location"}
	invoiceFields  = []string{"number", "provider_id"}
)

// resultString reads the string field want of a step result whose fields
// are all strings (fields), as json.Unmarshal into that struct would; ok
// is false when the scan does not answer for raw (then decode it): a
// field of the struct that is not a string, a name matching one only
// regardless of case, a duplicate or escaped name, invalid UTF-8 in one
// of them, or invalid JSON.
func resultString(raw []byte, fields []string, want string) (v string, ok bool) {
	sc := stateScanner{b: raw}
	err := sc.object(fields, func(name []byte) error {
		n := name[1 : len(name)-1]
		if !slices.Contains(fields, string(n)) {
			return sc.unknown(name, fields)
		}
		s, err := sc.str()
		if err == nil && string(n) == want {
			v = s
		}
		return err
	})
	if err != nil || sc.peek() != 0 {
		return "", false
	}
	return v, true
}
