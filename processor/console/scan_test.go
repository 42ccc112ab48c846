package console

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
)

// summarizeFull is the reference: the record decoded in full.
func summarizeFull(t *testing.T, v []byte) Summary {
	t.Helper()
	st, err := decodeState(v)
	if err != nil {
		t.Fatalf("decodeState: %v\n%s", err, v)
	}
	return Summarize(st)
}

// Every state the processor writes is scanned, and summarized as when
// decoded in full.
func TestScanStateAgrees(t *testing.T) {
	legacy := order("pi_legacy", "old@example.com", processor.StatusInProgress, t0, 3)
	legacy.Order.Model = integrations.OrderModel - 1 // details are read again: the current step is details
	dead := order("pi_dead", "dead@example.com", processor.StatusDeadLettered, t0, 3)
	dead.DeadLetter = &processor.DeadLetter{Partition: 2, Offset: 77, Step: processor.StepShipping, Class: "permanent", At: t0}
	dead.LastError = "postnord: 400 \"bad postal code\"\n"
	waiting := order("pi_wait", "Wait@Example.com", processor.StatusInProgress, t0, 2)
	waiting.Step(processor.Chain[2]).Attempts = 3
	waiting.Flags = []string{processor.FlagPossibleDuplicatePrefix + processor.StepShipping}
	waiting.Replays = []string{"0/12"}
	waiting.NextOffset = 99
	erased := &processor.State{Version: 1, OrderID: "pi_erased", Status: processor.StatusErased, ErasedAt: &t0, UpdatedAt: t0}
	noOrder := &processor.State{Version: 1, OrderID: "pi_new", Status: processor.StatusInProgress, CreatedAt: t0, UpdatedAt: t0}
	skipped := order("pi_skip", "s@example.com", processor.StatusCompleted, t0, 6)
	skipped.Step(processor.StepProductionLog).Done = false
	skipped.Step(processor.StepProductionLog).Skipped = true
	for _, st := range []*processor.State{
		order("pi_done", "done@example.com", processor.StatusCompleted, t0, 6),
		order("pi_half", "half@example.com", processor.StatusInProgress, t0, 3),
		fullState(7), legacy, dead, waiting, erased, noOrder, skipped,
	} {
		v, err := st.Encode()
		if err != nil {
			t.Fatal(err)
		}
		var sc stateScanner
		got, ok := sc.scan(v)
		if !ok {
			t.Errorf("%s: not scanned\n%s", st.OrderID, v)
			continue
		}
		if g, w := Summarize(got), summarizeFull(t, v); !reflect.DeepEqual(g, w) {
			t.Errorf("%s: scanned summary\n%+v\nwant\n%+v", st.OrderID, g, w)
		}
	}
}

// Hand-written records: escapes, unicode, fields in another order,
// unknown fields, names that occur at other depths.
func TestScanStateTricky(t *testing.T) {
	rec := `{"steps":{"shipping":{"result":{"tracking_url":"x","tracking_number":"TRK\u00e5\"1\\"},"done":true,"extra":{"done":false}},` +
		`"invoice":{"done":true,"result":{"provider_id":"9","number":"INV-\u20ac7","nested":{"number":"no"}}},"unknown_step":{"attempts":4,"whatever":[1,{"a":null}]},` +
		`"crm":{"attempts":2,"last_error":"zoho \u2028 down","first_failure":"2026-03-02T10:00:00Z"},"details":{"done":true}},` +
		` "future_field" : {"email":"not@this.one","order_id":"pi_other"},` +
		`"order":{"shipping":{"name":"Ship To Name","email":"ship@example.com"},"customer":{"phone":"+358","name":"J\u00f6rg \"JJ\" M\u00fcller 😀","email":"J\u00f6rg+tag@Example.COM"},` +
		`"items":null,"number":"OF-ABC","amount_total":123456,"currency":"eur","model":` + fmt.Sprint(integrations.OrderModel) + `,"lines":[{"name":"shirt"}]},` +
		`"applied_events":["evt_1","evt_\u0032"],"flags":["possible_duplicate:shipping","note"],"replays":[],` +
		`"status":"in_progress","created_at":"2026-03-02T10:00:00.123456789+02:00","updated_at":"2026-03-02T09:00:00Z",` +
		`"order_id":"pi_tr\u00efcky","v":1}`
	var sc stateScanner
	st, ok := sc.scan([]byte(rec))
	if !ok {
		t.Fatal("tricky record not scanned")
	}
	s := Summarize(st)
	created := time.Date(2026, 3, 2, 8, 0, 0, 123456789, time.UTC)
	checks := []struct {
		what      string
		got, want any
	}{
		{"id", s.ID, "pi_trïcky"},
		{"number", s.Number, "OF-ABC"},
		{"status", s.Status, StatusWaiting}, // crm, the current step, failed twice
		{"step", s.Step, processor.StepCRM},
		{"email", s.Email, "Jörg+tag@Example.COM"},
		{"name", s.Name, `Jörg "JJ" Müller 😀`},
		{"amount", s.Amount, int64(123456)},
		{"currency", s.Currency, "eur"},
		{"tracking", s.Tracking, `TRKå"1\`},
		{"invoice", s.Invoice, "INV-€7"},
		{"events", s.Events, []string{"evt_1", "evt_2"}},
		{"flags", s.Flags, []string{"possible_duplicate:shipping", "note"}},
		{"replays", s.Replays, []string{}},
		{"done", s.Done, 3},
		{"done mask", s.DoneMask, 1<<0 | 1<<3 | 1<<4}, // details, shipping, invoice
		{"attempts", s.Attempts, map[string]int{"crm": 2}},
		{"created", s.Created.Equal(created), true},
		{"updated", s.Updated.Equal(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)), true},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.what, c.got, c.want)
		}
	}
	if g, w := s, summarizeFull(t, []byte(rec)); !reflect.DeepEqual(g, w) {
		t.Errorf("scanned summary\n%+v\nfull decode\n%+v", g, w)
	}
}

// Whitespace anywhere JSON allows it, nested unknown values of every kind.
func TestScanStateWhitespace(t *testing.T) {
	rec := " \r\n{ \"order_id\" :\t\"pi_ws\" , \"x\" : [ 1 , -2.5e+3 , 0 , true , false , null , { } , [ ] , \"\\u00e9\\\\\" ] ,\n" +
		` "v" : 1 , "status" : "completed" , "steps" : { "shipping" : { "done" : true , "result" : { "tracking_number" : "T 1" } } } ,` +
		` "order" : { "customer" : { "email" : "ws@example.com" } } , "created_at" : "2026-03-02T10:00:00Z" } ` + "\n"
	var sc stateScanner
	st, ok := sc.scan([]byte(rec))
	if !ok {
		t.Fatalf("not scanned: %s", rec)
	}
	s := Summarize(st)
	if s.ID != "pi_ws" || s.Tracking != "T 1" || s.Email != "ws@example.com" || s.Status != "completed" || s.DoneMask != 1<<3 {
		t.Errorf("summary %+v", s)
	}
	if g, w := s, summarizeFull(t, []byte(rec)); !reflect.DeepEqual(g, w) {
		t.Errorf("scanned summary\n%+v\nfull decode\n%+v", g, w)
	}
}

// Records the scan does not answer for are left to the full decode; the
// index files them as before (or refuses them as before).
func TestScanStateFallsBack(t *testing.T) {
	good := `{"v":1,"order_id":"pi_f","status":"completed","created_at":"2026-03-02T10:00:00Z","updated_at":"2026-03-02T10:00:00Z"}`
	for _, c := range []struct {
		what, rec string
		decodes   bool // the full decode reads it
	}{
		{"name differing in case", strings.Replace(good, `"status"`, `"Status"`, 1), true},
		{"escaped name", strings.Replace(good, `"status"`, `"st\u0061tus"`, 1), true},
		{"null in a field read", strings.Replace(good, `"completed"`, `null`, 1), true},
		{"null step", strings.Replace(good, `"v":1,`, `"v":1,"steps":{"crm":null},`, 1), false},
		{"duplicate name", strings.Replace(good, `"v":1,`, `"v":1,"v":1,`, 1), true},
		{"trailing data", good + `{}`, false},
		{"not an integer", strings.Replace(good, `"v":1`, `"v":1.0`, 1), false},
		{"unknown version", strings.Replace(good, `"v":1`, `"v":9`, 1), false},
		{"no order id", strings.Replace(good, `"order_id":"pi_f",`, ``, 1), false},
		{"bad time", strings.Replace(good, `2026-03-02T10:00:00Z"}`, `yesterday"}`, 1), false},
		{"not JSON", `{"v":1,`, false},
		{"trailing comma", strings.Replace(good, `}`, `,}`, 1), false},
		{"bad literal", strings.Replace(good, `"v":1,`, `"v":1,"x":truex,`, 1), false},
		{"leading zero", strings.Replace(good, `"v":1,`, `"v":1,"x":01,`, 1), false},
		{"bare minus", strings.Replace(good, `"v":1,`, `"v":1,"x":[-],`, 1), false},
		{"fraction without digits", strings.Replace(good, `"v":1,`, `"v":1,"x":1.,`, 1), false},
		{"bad escape", strings.Replace(good, `"v":1,`, `"v":1,"x":"a\qb",`, 1), false},
		{"bad unicode escape", strings.Replace(good, `"v":1,`, `"v":1,"x":"\u12G4",`, 1), false},
		{"control character", strings.Replace(good, `"v":1,`, "\"v\":1,\"x\":\"a\tb\",", 1), false},
		{"unterminated string", `{"v":1,"order_id":"pi_f`, false},
		{"missing colon", strings.Replace(good, `"v":1`, `"v" 1`, 1), false},
		{"unclosed array", strings.Replace(good, `"v":1,`, `"v":1,"x":[1,2,`, 1), false},
	} {
		var sc stateScanner
		if _, ok := sc.scan([]byte(c.rec)); ok {
			t.Errorf("%s: scanned, want the full decode", c.what)
		}
		if _, err := decodeState([]byte(c.rec)); (err == nil) != c.decodes {
			t.Errorf("%s: full decode error %v, want decodes=%v", c.what, err, c.decodes)
		}
	}
	// Invalid UTF-8 is replaced, as encoding/json (which decodes such a
	// record in full) does.
	bad := strings.Replace(good, `pi_f`, "pi_\xff", 1)
	var sc0 stateScanner
	if st, ok := sc0.scan([]byte(bad)); ok && st.OrderID != "pi_\uFFFD" {
		t.Errorf("invalid UTF-8: order id %q, want %q", st.OrderID, "pi_\uFFFD")
	}
	if st, err := decodeState([]byte(bad)); err != nil || st.OrderID != "pi_\uFFFD" {
		t.Errorf("invalid UTF-8, full decode: %v %v", st, err)
	}

	// The same scanner goes on with the next record.
	var sc stateScanner
	sc.scan([]byte(`{"v":1,`))
	if st, ok := sc.scan([]byte(good)); !ok || st.OrderID != "pi_f" || st.Status != processor.StatusCompleted {
		t.Errorf("after a failed scan: %+v %v", st, ok)
	}
}

// The index files an order whose record needs the full decode as before.
func TestApplyFallsBackToFullDecode(t *testing.T) {
	ix := testIndex(t, t.TempDir())
	defer ix.Close()
	st := order("pi_fold", "fold@example.com", processor.StatusCompleted, t0, 6)
	v, _ := st.Encode()
	v = []byte(strings.Replace(string(v), `"status":`, `"flags":null,"status":`, 1)) // the scan leaves a null to the decoder
	r := stateRecord(t, st, 0, 0)
	r.Value = v
	if _, err := ix.Apply(names, []*kgo.Record{r}); err != nil {
		t.Fatal(err)
	}
	got, err := ix.Get("pi_fold")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != string(processor.StatusCompleted) || got.Email != "fold@example.com" {
		t.Errorf("filed %+v", got)
	}
}

func BenchmarkScanState(b *testing.B) {
	v, _ := fullState(1).Encode()
	b.Run("scan", func(b *testing.B) {
		var sc stateScanner
		for b.Loop() {
			if _, ok := sc.scan(v); !ok {
				b.Fatal("not scanned")
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeState(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// fullState is a finished order as the processor records it: customer,
// addresses, items with taxes, every step's result.
func fullState(i int) *processor.State {
	id := fmt.Sprintf("pi_3Qfull%08dXy", i)
	st := &processor.State{Version: 1, OrderID: id, Status: processor.StatusCompleted, CreatedAt: t0, UpdatedAt: t0.Add(3 * time.Second),
		Order: &integrations.Order{Model: integrations.OrderModel, ID: id, PaymentIntentID: id, CheckoutSessionID: fmt.Sprintf("cs_test_full%08d", i),
			Number: integrations.OrderNumber(id), Currency: "sek", AmountTotal: 68182, AmountSubtotal: 54545, AmountTax: 13637, AmountShipping: 4900,
			Items: []integrations.LineItem{{SKU: "price_1QfullShirt", Description: "T-shirt, organic cotton, navy, L", Quantity: 2, UnitAmount: 24900,
				AmountSubtotal: 49800, AmountTotal: 62250, AmountTax: 12450, Taxes: []integrations.Tax{{Amount: 12450, TaxableAmount: 49800, Percentage: "25", TaxabilityReason: "standard_rated"}}}},
			Customer: integrations.Customer{Name: "Sanna Öhman-Kärkkäinen", Email: fmt.Sprintf("buyer%08d@example.com", i), Phone: "+46701234567"},
			Shipping: integrations.Address{Name: "Sanna Öhman-Kärkkäinen", Line1: "Kungsgatan 21", PostalCode: "11156", City: "Stockholm", Country: "SE"},
			Locale:   "sv-SE", CreatedAt: t0},
		AppliedEvents:  []string{fmt.Sprintf("evt_full%08da", i), fmt.Sprintf("evt_full%08db", i)},
		AppliedObjects: []string{"checkout.session.completed/cs_test_full", "payment_intent.succeeded/" + id},
	}
	results := map[string]any{
		processor.StepCRM:           integrations.CRMResult{ContactID: "4150868000000000004", DealID: "4150868000000000005"},
		processor.StepProductionLog: integrations.ProductionLogResult{RecordID: "rec00000000000006"},
		processor.StepShipping:      integrations.Shipment{ShipmentID: "700000000000000008", TrackingNumber: fmt.Sprintf("0037350%013d", i)},
		processor.StepInvoice:       integrations.Invoice{Number: fmt.Sprintf("5543%010d", i), ProviderID: "1811"},
		processor.StepEmail:         integrations.Message{MessageID: "<" + st.Order.Number + "@mg.shop.example>"},
	}
	for k, step := range processor.Chain {
		ss := st.Step(step)
		ss.Done = true
		at := t0.Add(time.Duration(k) * 400 * time.Millisecond)
		ss.DoneAt = &at
		if r, ok := results[step]; ok {
			ss.Result, _ = json.Marshal(r)
		}
	}
	return st
}

// FuzzScanState mutates state records: whatever the scan reads is valid
// JSON, and a record both the scan and the full decode read is
// summarized alike. (The scan may read a record the decoder refuses for
// the type of a value it skips; it may refuse one the decoder reads,
// which is then decoded in full.)
func FuzzScanState(f *testing.F) {
	dead := order("pi_dead", "dead@example.com", processor.StatusDeadLettered, t0, 3)
	dead.DeadLetter = &processor.DeadLetter{Partition: 2, Offset: 77, Step: processor.StepShipping, Class: "permanent", At: t0}
	dead.LastError = "postnord: 400 \"bad postal code\"\n"
	for _, st := range []*processor.State{fullState(3), dead, order("pi_half", "Half@Example.com", processor.StatusInProgress, t0, 3)} {
		v, err := st.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
	}
	f.Add([]byte(`{"v":1,"order_id":"pi_\u00e9\"x","status":"completed","steps":{"shipping":{"done":true,"result":{"tracking_number":"T\\1"}}}}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		var sc stateScanner
		got, ok := sc.scan(v)
		if !ok {
			return
		}
		if !json.Valid(v) {
			t.Fatalf("scanned invalid JSON: %q", v)
		}
		full, err := decodeState(v)
		if err != nil {
			return
		}
		if g, w := Summarize(got), Summarize(full); !reflect.DeepEqual(g, w) {
			t.Fatalf("scanned summary\n%+v\nwant\n%+v\nof %q", g, w, v)
		}
	})
}
