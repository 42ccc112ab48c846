package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
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
// bytes and of its decoding cost. The scanner reads a state record as a
// stream of JSON tokens (jsontext: the full syntax and escapes checked)
// and keeps only those fields, skipping every other value without
// building it.
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

// stateScanner scans state records; one per goroutine.
type stateScanner struct {
	dec jsontext.Decoder
	buf bytes.Buffer
}

// scan returns the parts of the state in b that Summarize reads, checked
// by processor.FinishDecode; ok is false when b must be decoded in full.
func (sc *stateScanner) scan(b []byte) (st *processor.State, ok bool) {
	sc.buf = *bytes.NewBuffer(b)
	sc.dec.Reset(&sc.buf, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	st = &processor.State{}
	if err := sc.state(st); err != nil {
		return nil, false
	}
	if _, err := sc.dec.ReadToken(); !errors.Is(err, io.EOF) {
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

// object reads an object, calling field with each name as it is in the
// record (quoted); field must consume the value. A name with an escape,
// or one equal to a known name but for case, stops the scan.
func (sc *stateScanner) object(known []string, field func(name []byte) error) error {
	tok, err := sc.dec.ReadToken()
	if err != nil || tok.Kind() != '{' {
		return errScan
	}
	var seen uint64
	for sc.dec.PeekKind() != '}' {
		name, err := sc.dec.ReadValue()
		if err != nil || name.Kind() != '"' {
			return errScan
		}
		if bytes.IndexByte(name, '\\') >= 0 {
			return errScan // rare: let the decoder unquote it
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
	}
	if _, err := sc.dec.ReadToken(); err != nil {
		return errScan
	}
	return nil
}

// unknown skips the value of a name the scan does not read, unless the
// name matches a known one regardless of case.
func (sc *stateScanner) unknown(name []byte, known []string) error {
	n := string(name[1 : len(name)-1])
	for _, k := range known {
		if strings.EqualFold(n, k) {
			return errScan
		}
	}
	return sc.skip()
}

// skip skips a value the scan does not read (a null too: decoded, it is
// the zero value).
func (sc *stateScanner) skip() error {
	if err := sc.dec.SkipValue(); err != nil {
		return errScan
	}
	return nil
}

// skipKind skips a value that must be of kind k ('"', '0', '[', '{').
func (sc *stateScanner) skipKind(k jsontext.Kind) error {
	if pk := sc.dec.PeekKind(); pk != k && pk != 'n' {
		return errScan
	}
	return sc.skip()
}

// str reads a string. Invalid UTF-8 is left to the decoder (which
// replaces it); the scan lets it pass only in values it skips.
func (sc *stateScanner) str() (string, error) {
	tok, err := sc.dec.ReadToken()
	if err != nil || tok.Kind() != '"' {
		return "", errScan
	}
	v := tok.String()
	if !utf8.ValidString(v) {
		return "", errScan
	}
	return v, nil
}

func (sc *stateScanner) int() (int64, error) {
	v, err := sc.dec.ReadValue()
	if err != nil || v.Kind() != '0' {
		return 0, errScan
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, errScan
	}
	return n, nil
}

func (sc *stateScanner) bool() (bool, error) {
	tok, err := sc.dec.ReadToken()
	if err != nil {
		return false, errScan
	}
	switch tok.Kind() {
	case 't':
		return true, nil
	case 'f':
		return false, nil
	}
	return false, errScan
}

func (sc *stateScanner) time() (time.Time, error) {
	s, err := sc.str()
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errScan
	}
	return t, nil
}

// strings reads an array of strings; an empty one is nil, as decoded.
func (sc *stateScanner) strings() ([]string, error) {
	tok, err := sc.dec.ReadToken()
	if err != nil || tok.Kind() != '[' {
		return nil, errScan
	}
	var out []string
	for sc.dec.PeekKind() != ']' {
		s, err := sc.str()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if _, err := sc.dec.ReadToken(); err != nil {
		return nil, errScan
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
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
	tok, err := sc.dec.ReadToken()
	if err != nil || tok.Kind() != '{' {
		return errScan
	}
	for sc.dec.PeekKind() != '}' {
		tok, err := sc.dec.ReadToken()
		if err != nil || tok.Kind() != '"' {
			return errScan
		}
		step := tok.String()
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
				if sc.dec.PeekKind() == 'n' {
					return errScan
				}
				var v jsontext.Value
				v, err = sc.dec.ReadValue()
				if err != nil {
					return errScan
				}
				ss.Result = json.RawMessage(bytes.Clone(v))
			default:
				err = sc.unknown(name, stepFieldNames)
			}
			return err
		}); err != nil {
			return err
		}
		if _, dup := steps[step]; dup {
			return errScan
		}
		steps[step] = ss
	}
	if _, err := sc.dec.ReadToken(); err != nil {
		return errScan
	}
	return nil
}
