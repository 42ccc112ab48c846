package processor

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzDecodeState feeds arbitrary `orders.state` record values to
// DecodeState. A record it accepts is one the processor will resume an
// order from, so beyond never panicking it must be usable as is:
//
//   - a rejected record is reported as ErrStateInvalid (the restore path
//     counts, logs and alerts on it and skips it);
//   - an accepted one has a supported version, an order id and a step map,
//     and every step in it can be read and updated (the chain dereferences
//     st.Step(name) for each step);
//   - it encodes again, and its encoding decodes to the same state (encode,
//     decode, encode is a fixpoint), so persisting it cannot fail or drift.
func FuzzDecodeState(f *testing.F) {
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	full := &State{
		OrderID: "pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t",
		Status:  StatusInProgress,
		Steps: map[string]*StepState{
			StepDetails:  {Done: true, DoneAt: &at, Result: []byte(`{"id":"pi_1","amount":4990}`)},
			StepCRM:      {Attempts: 2, LastError: "crm: 503", FirstFailure: &at, LastFailure: &at},
			StepShipping: {Intent: &at},
			StepEmail:    {Skipped: true},
		},
		AppliedEvents:  []string{"evt_1"},
		AppliedObjects: []string{"payment_intent.succeeded/pi_1"},
		Replays:        []string{"0/12"},
		Flags:          []string{"possible_duplicate:shipping"},
		DeadLetter:     &DeadLetter{Partition: 1, Offset: 7, Step: StepCRM, Class: "permanent", At: at},
		NextOffset:     42,
		CreatedAt:      at,
		UpdatedAt:      at,
	}
	good, err := full.Encode()
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		good,
		[]byte(`{"v":1,"order_id":"pi_1","status":"completed"}`),
		[]byte(`{"v":1,"order_id":"pi_1","steps":{"crm":{"done":true,"result":{"deal":"d_1"}}}}`),
		[]byte(`{"v":2,"order_id":"pi_1"}`),
		[]byte(`{"v":0,"order_id":"pi_1"}`),
		[]byte(`{"v":1,"order_id":""}`),
		[]byte(`{"v":1,"order_id":"pi_1","steps":[]}`),
		[]byte(`{"v":1,"order_id":"pi_1","created_at":"not a time"}`),
		[]byte(`{"v":1,"order_id":"pi_1","order":null,"dead_letter":null}`),
		[]byte(`{"v":1,"order_id":"pi_\ud800","flags":["\u0000"]}`),
		[]byte("{\"v\":1,\"order_id\":\"pi_\xff\"}"),
		[]byte(`null`),
		[]byte(`[]`),
		[]byte(``),
		good[:len(good)/2],
	} {
		f.Add([]byte(`{"v":1,"order_id":"pi_1","steps":{"crm":null}}`))
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := DecodeState(b)
		if err != nil {
			if !errors.Is(err, ErrStateInvalid) {
				t.Fatalf("error %v is not ErrStateInvalid", err)
			}
			if st != nil {
				t.Fatalf("a state returned with error %v", err)
			}
			return
		}
		if st.Version < 1 || st.Version > StateVersion || st.OrderID == "" || st.Steps == nil {
			t.Fatalf("accepted an unusable state: version %d, order id %q, steps nil: %v", st.Version, st.OrderID, st.Steps == nil)
		}
		for name := range st.Steps {
			if st.Step(name) == nil {
				t.Fatalf("accepted a state whose step %q is null: the chain would dereference it", name)
			}
		}
		for _, name := range Chain {
			ss := st.Step(name)
			ss.Attempts++ // what runStep does first; must not panic
		}
		_ = st.HasFlag("possible_duplicate:shipping")

		enc, err := st.Encode()
		if err != nil {
			t.Fatalf("decoded state does not encode: %v", err)
		}
		st2, err := DecodeState(enc)
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v\n%s", err, enc)
		}
		enc2, err := st2.Encode()
		if err != nil {
			t.Fatalf("second encode: %v", err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encode/decode is not stable:\n%s\n%s", enc, enc2)
		}
	})
}
