package processor

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// The hand-written encoder writes what encoding/json writes, byte for byte.
func TestEncodeMatchesMarshal(t *testing.T) {
	at := time.Date(2026, 11, 28, 12, 0, 0, 123456789, time.UTC)
	helsinki := time.Date(2026, 6, 1, 9, 30, 0, 500000000, time.FixedZone("EEST", 3*3600))
	whole := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	order := &integrations.Order{Model: integrations.OrderModel, ID: "pi_1", Number: "OF-1", Currency: "eur", AmountTotal: 12400,
		Items:    []integrations.LineItem{{Description: "Mug <large> & \"blue\"", Quantity: 2, UnitAmount: 6200, AmountTotal: 12400}},
		Customer: integrations.Customer{Name: "Åsa Öberg", Email: "asa@example.com"}, Metadata: map[string]string{"b": "2", "a": "1"}, CreatedAt: at}
	for _, c := range []struct {
		name string
		st   *State
	}{
		{"empty", &State{}},
		{"minimal", &State{Version: 1, OrderID: "pi_min", Status: StatusCompleted, CreatedAt: whole, UpdatedAt: whole}},
		{"every field", &State{
			Version: 1, OrderID: "pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t", Status: StatusDeadLettered, Order: order,
			Steps: map[string]*StepState{
				StepShipping: {Intent: &at, Lease: &helsinki, Attempts: 3, LastError: "postnord: 503\n\"busy\"", FirstFailure: &at, LastFailure: &helsinki},
				StepDetails:  {Done: true, DoneAt: &at},
				StepCRM:      {Done: true, DoneAt: &whole, Result: json.RawMessage(`{"contact_id":"c_1","note":"a \"quoted\" b\\\\"}`)},
				StepEmail:    {Skipped: true},
				StepInvoice:  {HeldUntil: &at, HeldReason: "quota <used> up & over"},
				"custom":     nil,
			},
			Pending:        []string{StepShipping, StepInvoice},
			AppliedEvents:  []string{"evt_1", "evt_2"},
			AppliedObjects: []string{"payment_intent.succeeded/pi_1"},
			Replays:        []string{"0/12"},
			Flags:          []string{"possible_duplicate:shipping"},
			LastError:      "ctl \x00\x01\x1f\b\f\t\r tab",
			DeadLetter:     &DeadLetter{Partition: 3, Offset: 77, Step: StepShipping, Class: "exhausted", At: helsinki},
			NextOffset:     42,
			TraceParent:    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			ErasedAt:       &whole,
			CreatedAt:      at,
			UpdatedAt:      helsinki,
		}},
		{"zone offset with seconds", &State{Version: 1, OrderID: "pi_lmt", CreatedAt: time.Date(1900, 1, 1, 0, 0, 0, 0, time.FixedZone("LMT", 5989)), UpdatedAt: at}},
		{"odd strings", &State{Version: 1, OrderID: "pi_\xff\xfe bad utf8", Status: "line\u2028sep\u2029para", LastError: "emoji 📦 and é, \u007f del", CreatedAt: at, UpdatedAt: at}},
		{"empty collections", &State{Version: 1, OrderID: "pi_e", Steps: map[string]*StepState{}, Pending: []string{}, Flags: nil, CreatedAt: at, UpdatedAt: at}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, err := json.Marshal(c.st)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := appendState(nil, c.st)
			if !ok {
				t.Fatalf("the hand-written encoder gave up on a state encoding/json writes")
			}
			if string(got) != string(want) {
				t.Errorf("hand-written\n%s\nencoding/json\n%s", got, want)
			}
			again, _ := appendState(nil, c.st) // from the kept order JSON
			if string(again) != string(want) {
				t.Errorf("second encoding differs:\n%s", again)
			}
		})
	}
}

// A literal, written by hand, of a small state's wire form.
func TestEncodeLiteral(t *testing.T) {
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	st := &State{OrderID: "pi_1", Status: StatusInProgress,
		Steps:     map[string]*StepState{StepShipping: {Intent: &at}, StepDetails: {Done: true, DoneAt: &at}},
		Pending:   []string{StepShipping},
		CreatedAt: at, UpdatedAt: at}
	b, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"order_id":"pi_1","status":"in_progress","steps":{"details":{"done":true,"done_at":"2026-11-28T12:00:00Z"},"shipping":{"intent":"2026-11-28T12:00:00Z"}},"pending":["shipping"],"created_at":"2026-11-28T12:00:00Z","updated_at":"2026-11-28T12:00:00Z"}`
	if string(b) != want {
		t.Errorf("Encode\n%s\nwant\n%s", b, want)
	}
}

// The order's JSON is made again when the order is replaced.
func TestEncodeOrderReplaced(t *testing.T) {
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	st := &State{Version: 1, OrderID: "pi_1", Order: &integrations.Order{ID: "pi_1", Number: "OF-1", CreatedAt: at}, CreatedAt: at, UpdatedAt: at}
	if _, err := st.Encode(); err != nil {
		t.Fatal(err)
	}
	st.Order = &integrations.Order{ID: "pi_1", Number: "OF-2", CreatedAt: at}
	b, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Order.Number != "OF-2" {
		t.Errorf("order number %q after the order was replaced, want OF-2", got.Order.Number)
	}
}

// What encoding/json refuses or writes differently is left to it: the
// error (or compacted output) is encoding/json's own.
func TestEncodeFallsBack(t *testing.T) {
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	odd := time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 25*3600))
	for _, c := range []struct {
		name    string
		st      *State
		wantErr bool
		want    string
	}{
		{"year 10000", &State{Version: 1, OrderID: "pi_1", CreatedAt: far, UpdatedAt: at}, true, ""},
		{"zone 25 hours", &State{Version: 1, OrderID: "pi_1", CreatedAt: odd, UpdatedAt: at}, true, ""},
		{"result with spaces", &State{Version: 1, OrderID: "pi_1", Steps: map[string]*StepState{"crm": {Done: true, Result: json.RawMessage(`{ "deal" : "d 1" }`)}}, CreatedAt: at, UpdatedAt: at}, false,
			`{"v":1,"order_id":"pi_1","status":"","steps":{"crm":{"done":true,"result":{"deal":"d 1"}}},"created_at":"2026-11-28T12:00:00Z","updated_at":"2026-11-28T12:00:00Z"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, ok := appendState(nil, c.st); ok {
				t.Fatalf("the hand-written encoder wrote a state it should leave to encoding/json")
			}
			b, err := c.st.Encode()
			if (err != nil) != c.wantErr {
				t.Fatalf("Encode error %v, want error %v", err, c.wantErr)
			}
			if !c.wantErr && string(b) != c.want {
				t.Errorf("Encode\n%s\nwant\n%s", b, c.want)
			}
		})
	}
}

// FuzzEncodeState holds the hand-written encoder to encoding/json on
// arbitrary strings, numbers and times.
func FuzzEncodeState(f *testing.F) {
	f.Add("pi_1", "in_progress", "crm", "postnord: 503", "evt_1", int64(42), int64(1764331200), int32(0), 3, true)
	f.Add("pi_<&>", "x\u2028y", "ship\x00", "\xff\xfe", "\"\\", int64(-1), int64(-62135596800), int32(3600), 0, false)
	f.Fuzz(func(t *testing.T, id, status, step, errText, ev string, off, unix int64, zone int32, attempts int, done bool) {
		at := time.Unix(unix, off).In(time.FixedZone("z", int(zone)))
		res, _ := json.Marshal(map[string]string{"v": errText, step: ev})
		st := &State{Version: 1, OrderID: id, Status: Status(status),
			Steps: map[string]*StepState{
				step:        {Done: done, DoneAt: &at, Result: res, Attempts: attempts, LastError: errText, Intent: &at},
				id:          {Skipped: !done, HeldReason: ev},
				"zz" + step: nil,
			},
			Pending: []string{step}, AppliedEvents: []string{ev, id}, Flags: []string{errText},
			LastError: errText, NextOffset: off, TraceParent: ev,
			DeadLetter: &DeadLetter{Partition: zone, Offset: off, Step: step, Class: status, At: at},
			Order:      &integrations.Order{ID: id, Number: ev, Description: errText, CreatedAt: at},
			CreatedAt:  at, UpdatedAt: at}
		want, werr := json.Marshal(st)
		got, ok := appendState(nil, st)
		if !ok {
			return // left to encoding/json
		}
		if werr != nil {
			t.Fatalf("encoding/json fails (%v) where the hand-written encoder wrote\n%s", werr, got)
		}
		if string(got) != string(want) {
			t.Fatalf("hand-written\n%s\nencoding/json\n%s", got, want)
		}
	})
}

// BenchmarkEncodeState compares the hand-written encoder with
// encoding/json on a completed order's state.
func BenchmarkEncodeState(b *testing.B) {
	at := time.Date(2026, 11, 28, 12, 0, 0, 123456789, time.UTC)
	st := &State{Version: 1, OrderID: "pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t", Status: StatusCompleted,
		Order: &integrations.Order{Model: integrations.OrderModel, ID: "pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t", Number: "OF-7XK2M9", Currency: "eur", AmountTotal: 12400, AmountSubtotal: 10000, AmountTax: 2400,
			Items:    []integrations.LineItem{{ID: "li_1", SKU: "prod_1", Description: "Mug", Quantity: 2, UnitAmount: 6200, AmountSubtotal: 12400, AmountTax: 2400, AmountTotal: 12400, TaxBehavior: "inclusive"}},
			Customer: integrations.Customer{Name: "Åsa Öberg", Email: "asa@example.com"}, Shipping: integrations.Address{Name: "Åsa Öberg", Line1: "Mannerheimintie 1", City: "Helsinki", PostalCode: "00100", Country: "FI"}, CreatedAt: at},
		Steps: map[string]*StepState{}, AppliedEvents: []string{"evt_1", "evt_2"}, AppliedObjects: []string{"payment_intent.succeeded/pi_1"},
		NextOffset: 42, TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", CreatedAt: at, UpdatedAt: at}
	for _, s := range Chain {
		st.Steps[s] = &StepState{Done: true, DoneAt: &at, Result: json.RawMessage(`{"id":"r_1234567890","number":"INV-1","tracking":"00370730253984401234"}`)}
	}
	b.Run("hand-written", func(b *testing.B) {
		for range b.N {
			if _, err := st.Encode(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for range b.N {
			if _, err := json.Marshal(st); err != nil {
				b.Fatal(err)
			}
		}
	})
}
