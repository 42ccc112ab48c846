package console

import (
	"bytes"
	"encoding/json"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/internal/jsonscan"
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
var errScan = jsonscan.ErrScan

// stateScanner scans state records; one per goroutine.
type stateScanner struct {
	jsonscan.Scanner
}

// scan returns the parts of the state in b that Summarize reads, checked
// by processor.FinishDecode; ok is false when b must be decoded in full.
func (sc *stateScanner) scan(b []byte) (st *processor.State, ok bool) {
	sc.Reset(b)
	defer sc.Release()
	st = &processor.State{}
	if err := sc.state(st); err != nil {
		return nil, false
	}
	if !sc.AtEnd() {
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
	stateFieldNames = jsonscan.FieldNames(nV, nOrderID, nStatus, nOrder, nSteps, nAppliedEvents, nAppliedObjects, nReplays, nFlags,
		nLastError, nDeadLetter, nNextOffset, nErasedAt, nCreatedAt, nUpdatedAt)
	orderFieldNames    = jsonscan.FieldNames(nModel, nNumber, nCurrency, nAmountTotal, nCustomer)
	customerFieldNames = jsonscan.FieldNames(nEmail, nName)
	stepFieldNames     = jsonscan.FieldNames(nDone, nSkipped, nAttempts, nResult)
	letterFieldNames   = jsonscan.FieldNames(nStep)
)

func (sc *stateScanner) state(st *processor.State) error {
	return sc.Object(stateFieldNames, func(name []byte) error {
		var err error
		switch {
		case bytes.Equal(name, nV):
			var n int64
			n, err = sc.Int()
			st.Version = int(n)
			if int64(st.Version) != n {
				err = errScan
			}
		case bytes.Equal(name, nOrderID):
			st.OrderID, err = sc.Str()
		case bytes.Equal(name, nStatus):
			var s string
			s, err = sc.Str()
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
			st.AppliedEvents, err = sc.Strings()
		case bytes.Equal(name, nReplays):
			st.Replays, err = sc.Strings()
		case bytes.Equal(name, nFlags):
			st.Flags, err = sc.Strings()
		case bytes.Equal(name, nLastError):
			st.LastError, err = sc.Str()
		case bytes.Equal(name, nDeadLetter):
			st.DeadLetter = &processor.DeadLetter{}
			err = sc.Object(letterFieldNames, func(name []byte) error {
				if bytes.Equal(name, nStep) {
					var err error
					st.DeadLetter.Step, err = sc.Str()
					return err
				}
				return sc.Unknown(name, letterFieldNames)
			})
		case bytes.Equal(name, nCreatedAt):
			st.CreatedAt, err = sc.Time()
		case bytes.Equal(name, nUpdatedAt):
			st.UpdatedAt, err = sc.Time()
		case bytes.Equal(name, nAppliedObjects):
			err = sc.SkipKind('[')
		case bytes.Equal(name, nNextOffset):
			_, err = sc.Int()
		case bytes.Equal(name, nErasedAt):
			_, err = sc.Time()
		default:
			err = sc.Unknown(name, stateFieldNames)
		}
		return err
	})
}

func (sc *stateScanner) order(o *integrations.Order) error {
	return sc.Object(orderFieldNames, func(name []byte) error {
		var err error
		switch {
		case bytes.Equal(name, nModel):
			var n int64
			n, err = sc.Int()
			o.Model = int(n)
			if int64(o.Model) != n {
				err = errScan
			}
		case bytes.Equal(name, nNumber):
			o.Number, err = sc.Str()
		case bytes.Equal(name, nCurrency):
			o.Currency, err = sc.Str()
		case bytes.Equal(name, nAmountTotal):
			o.AmountTotal, err = sc.Int()
		case bytes.Equal(name, nCustomer):
			err = sc.Object(customerFieldNames, func(name []byte) error {
				var err error
				switch {
				case bytes.Equal(name, nEmail):
					o.Customer.Email, err = sc.Str()
				case bytes.Equal(name, nName):
					o.Customer.Name, err = sc.Str()
				default:
					err = sc.Unknown(name, customerFieldNames)
				}
				return err
			})
		default:
			err = sc.Unknown(name, orderFieldNames)
		}
		return err
	})
}

func (sc *stateScanner) steps(steps map[string]*processor.StepState) error {
	if !sc.Expect('{') {
		return errScan
	}
	if sc.Expect('}') {
		return nil
	}
	for {
		step, err := sc.Str()
		if err != nil || !sc.Expect(':') {
			return errScan
		}
		if _, dup := steps[step]; dup {
			return errScan
		}
		ss := &processor.StepState{}
		if err := sc.Object(stepFieldNames, func(name []byte) error {
			var err error
			switch {
			case bytes.Equal(name, nDone):
				ss.Done, err = sc.Bool()
			case bytes.Equal(name, nSkipped):
				ss.Skipped, err = sc.Bool()
			case bytes.Equal(name, nAttempts):
				var n int64
				n, err = sc.Int()
				ss.Attempts = int(n)
				if int64(ss.Attempts) != n {
					err = errScan
				}
			case bytes.Equal(name, nResult):
				if step != processor.StepShipping && step != processor.StepInvoice {
					return sc.Skip()
				}
				if sc.Peek() == 'n' {
					return errScan
				}
				start := sc.Pos()
				if err = sc.Skip(); err == nil {
					ss.Result = json.RawMessage(bytes.Clone(sc.Bytes(start)))
				}
			default:
				err = sc.Unknown(name, stepFieldNames)
			}
			return err
		}); err != nil {
			return err
		}
		steps[step] = ss
		if sc.Expect(',') {
			continue
		}
		if sc.Expect('}') {
			return nil
		}
		return errScan
	}
}
