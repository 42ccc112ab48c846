package processor

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics"
)

// digestState is a state with a value in every field a digest reads.
func digestState() *State {
	at := time.Date(2026, 3, 2, 10, 0, 0, 123456789, time.UTC)
	return &State{Version: 1, OrderID: "pi_3Digest0000Xy", Status: StatusDeadLettered, CreatedAt: at, UpdatedAt: at.Add(time.Minute),
		Order: &integrations.Order{Model: integrations.OrderModel, ID: "pi_3Digest0000Xy", Number: "OF-DIGEST0000", Currency: "eur", AmountTotal: 4200,
			Customer: integrations.Customer{Name: "Jörg \"JJ\" Müller 😀", Email: "Jorg+tag@Example.com", Phone: "+358"}},
		Steps: map[string]*StepState{
			StepDetails:   {Done: true},
			StepCRM:       {Attempts: 2, LastError: "zoho: 503"},
			StepShipping:  {Done: true, Result: json.RawMessage(`{"shipment_id":"7","tracking_number":"00373500000000000042","tracking_url":"","label_location":""}`)},
			StepInvoice:   {Attempts: 5, Result: json.RawMessage(`{"number":"55430000000042","provider_id":"1811"}`)},
			StepEmail:     {Skipped: true},
			"webhook:erp": {Attempts: 1},
		},
		AppliedEvents: []string{"evt_1", "evt_2"},
		Replays:       []string{"0/12"},
		Flags:         []string{FlagPossibleDuplicatePrefix + StepShipping},
		LastError:     "invoice: 422 <bad> & \"worse\"\n",
		DeadLetter:    &DeadLetter{Partition: 2, Offset: 77, Step: StepInvoice, Class: "exhausted", At: at},
	}
}

// The header of a state reads back as the facts written by hand, and as
// the digest of its decoded value.
func TestDigestHeader(t *testing.T) {
	st := digestState()
	v, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	hs := StateHeaders(st, v)
	if len(hs) != 1 || hs[0].Key != "orderflow-state-digest" || hs[0].Value[0] != 1 {
		t.Fatalf("headers %q, want one orderflow-state-digest of version 1", hs)
	}
	got, err := ParseDigest(hs[0].Value, v)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 2, 10, 0, 0, 123456789, time.UTC)
	want := Digest{OrderID: "pi_3Digest0000Xy", Status: "dead_lettered", CreatedAt: at, UpdatedAt: at.Add(time.Minute),
		HasOrder: true, Number: "OF-DIGEST0000", Currency: "eur", AmountTotal: 4200, Email: "Jorg+tag@Example.com", Name: "Jörg \"JJ\" Müller 😀",
		Flags: []string{"possible_duplicate:shipping"}, Replays: []string{"0/12"}, AppliedEvents: []string{"evt_1", "evt_2"},
		LastError: "invoice: 422 <bad> & \"worse\"\n", HasDeadLetter: true, DeadLetterStep: "invoice",
		Steps: []DigestStep{{Name: "crm", Attempts: 2}, {Name: "details", Done: true}, {Name: "email", Skipped: true},
			{Name: "invoice", Attempts: 5}, {Name: "shipping", Done: true}, {Name: "webhook:erp", Attempts: 1}},
		Tracking: "00373500000000000042", Invoice: "55430000000042"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("header digest\n%+v\nwant\n%+v", got, want)
	}
	dec, err := DecodeState(v)
	if err != nil {
		t.Fatal(err)
	}
	if of := DigestOf(dec); !reflect.DeepEqual(of, want) {
		t.Errorf("digest of the decoded value\n%+v\nwant\n%+v", of, want)
	}
	if s := got.Step(StepShipping); s == nil || !s.Done || got.Step("refund") != nil {
		t.Errorf("Step: shipping %+v, refund %+v", s, got.Step("refund"))
	}
	r := &kgo.Record{Value: v, Headers: append([]kgo.RecordHeader{{Key: topics.HeaderTraceParent, Value: []byte("00-x")}}, hs...)}
	if d, ok := RecordDigest(r); !ok || !reflect.DeepEqual(d, want) {
		t.Errorf("RecordDigest = %+v, %v", d, ok)
	}
	if _, ok := RecordDigest(&kgo.Record{Headers: hs}); ok {
		t.Error("a tombstone's digest trusted")
	}
}

// An erasure marker and a new order without details have their digest;
// an order of an earlier model reads its details again (not done).
func TestDigestOfSmallStates(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	legacy := digestState()
	legacy.Status, legacy.DeadLetter = StatusInProgress, nil
	legacy.Order.Model = integrations.OrderModel - 1
	for _, c := range []struct {
		name string
		st   *State
		want Digest
	}{
		{"erasure marker", &State{Version: 1, OrderID: "pi_gone", Status: StatusErased, ErasedAt: &at, NextOffset: 9, CreatedAt: at, UpdatedAt: at.Add(time.Hour)},
			Digest{OrderID: "pi_gone", Status: "erased", CreatedAt: at, UpdatedAt: at.Add(time.Hour)}},
		{"no details", &State{Version: 1, OrderID: "pi_new", Status: StatusInProgress, Steps: map[string]*StepState{StepDetails: {Attempts: 1}}, CreatedAt: at, UpdatedAt: at},
			Digest{OrderID: "pi_new", Status: "in_progress", CreatedAt: at, UpdatedAt: at, Steps: []DigestStep{{Name: "details", Attempts: 1}}}},
		{"zero times", &State{Version: 1, OrderID: "pi_zero", Status: StatusCompleted}, Digest{OrderID: "pi_zero", Status: "completed"}},
	} {
		v, err := c.st.Encode()
		if err != nil {
			t.Fatal(err)
		}
		hs := StateHeaders(c.st, v)
		if len(hs) != 1 {
			t.Fatalf("%s: headers %q", c.name, hs)
		}
		got, err := ParseDigest(hs[0].Value, v)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: header digest %+v (%v)\nwant %+v", c.name, got, err, c.want)
		}
	}
	v, _ := legacy.Encode()
	hs := StateHeaders(legacy, v)
	got, err := ParseDigest(hs[0].Value, v)
	if err != nil {
		t.Fatal(err)
	}
	if s := got.Step(StepDetails); s == nil || s.Done {
		t.Errorf("details of an order of an earlier model: %+v, want not done", s)
	}
	if s := got.Step(StepShipping); s == nil || !s.Done {
		t.Errorf("shipping of an order of an earlier model: %+v, want done", s)
	}
}

// A state whose digest would not be the digest of its decoded value gets
// no header: its readers decode the value.
func TestStateHeadersLeftToValue(t *testing.T) {
	helsinki := time.Date(2026, 6, 1, 9, 30, 0, 0, time.FixedZone("EEST", 3*3600))
	for _, c := range []struct {
		name   string
		change func(*State)
	}{
		{"created with a zone offset", func(s *State) { s.CreatedAt = helsinki }},
		{"updated with a zone offset", func(s *State) { s.UpdatedAt = helsinki }},
		{"name not UTF-8", func(s *State) { s.Order.Customer.Name = "J\xf6rg" }},
		{"flag not UTF-8", func(s *State) { s.Flags = []string{"\xff"} }},
		{"step name not UTF-8", func(s *State) { s.Steps["webhook:\xff"] = &StepState{} }},
		{"null step", func(s *State) { s.Steps["webhook:gone"] = nil }},
		{"no order id", func(s *State) { s.OrderID = "" }},
		{"unknown state version", func(s *State) { s.Version = StateVersion + 1 }},
	} {
		st := digestState()
		c.change(st)
		v, err := st.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if hs := StateHeaders(st, v); hs != nil {
			t.Errorf("%s: header %q", c.name, hs)
		}
	}
	// Offset 0 in another zone is written with a Z: the digest holds.
	st := digestState()
	st.CreatedAt = st.CreatedAt.In(time.FixedZone("GMT", 0))
	v, _ := st.Encode()
	if hs := StateHeaders(st, v); len(hs) != 1 {
		t.Errorf("a time at offset 0 outside UTC: no header")
	}
}

// A header that does not check is refused with its reason.
func TestParseDigestRefuses(t *testing.T) {
	st := digestState()
	v, _ := st.Encode()
	h := StateHeaders(st, v)[0].Value
	if _, err := ParseDigest(h, v); err != nil {
		t.Fatal(err)
	}
	altered := bytes.Replace(v, []byte(`"dead_lettered"`), []byte(`"completed"`), 1)
	if _, err := ParseDigest(h, altered); !errors.Is(err, ErrDigestChecksum) {
		t.Errorf("value altered after the header: %v, want ErrDigestChecksum", err)
	}
	if _, err := ParseDigest(h, nil); !errors.Is(err, ErrDigestChecksum) {
		t.Errorf("no value: %v, want ErrDigestChecksum", err)
	}
	v2 := append([]byte{2}, h[1:]...)
	if _, err := ParseDigest(v2, v); !errors.Is(err, ErrDigestVersion) {
		t.Errorf("version 2: %v, want ErrDigestVersion", err)
	}
	if _, err := ParseDigest(nil, v); !errors.Is(err, ErrDigestVersion) {
		t.Errorf("empty header: %v, want ErrDigestVersion", err)
	}
	for n := 1; n < len(h); n++ {
		if _, err := ParseDigest(h[:n], v); err == nil {
			t.Errorf("header cut to %d of %d bytes accepted", n, len(h))
		}
	}
	flipped := slices.Clone(h)
	flipped[len(flipped)/2] ^= 0x40
	if _, err := ParseDigest(flipped, v); !errors.Is(err, ErrDigestChecksum) {
		t.Errorf("a bit of the header flipped: %v, want ErrDigestChecksum", err)
	}
	// Well-formed checksums over a body that is not the form: extra
	// bytes, unknown flag bits, no order id.
	d := DigestOf(st)
	for _, c := range []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }},
		{"unknown flag bits", func(b []byte) []byte {
			i := 5 + 1 + len(d.OrderID) + 1 + len(d.Status) // the flags byte follows the two times
			i += varintLen(d.CreatedAt.Unix()) + uvarintLen(uint64(d.CreatedAt.Nanosecond())) + varintLen(d.UpdatedAt.Unix()) + uvarintLen(uint64(d.UpdatedAt.Nanosecond()))
			b[i] |= 0x80
			return b
		}},
	} {
		b := c.edit(AppendDigest(nil, &d, v))
		b = resum(b, v)
		if _, err := ParseDigest(b, v); !errors.Is(err, ErrDigestForm) {
			t.Errorf("%s: %v, want ErrDigestForm", c.name, err)
		}
	}
	noID := d
	noID.OrderID = ""
	if _, err := ParseDigest(AppendDigest(nil, &noID, v), v); !errors.Is(err, ErrDigestForm) {
		t.Errorf("no order id: %v, want ErrDigestForm", err)
	}
}

func resum(h, value []byte) []byte {
	binary.BigEndian.PutUint32(h[1:5], digestSum(value, h[5:]))
	return h
}

func varintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintLen(u)
}

func uvarintLen(u uint64) int {
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// The result scan finds the field json.Unmarshal finds, or leaves the
// result to it.
func TestResultString(t *testing.T) {
	tracking := func(sh *integrations.Shipment) string { return sh.TrackingNumber }
	for _, c := range []struct {
		raw  string
		want string
	}{
		{`{"shipment_id":"7","tracking_number":"00373500000000000042","tracking_url":"https://t/x","label_location":""}`, "00373500000000000042"},
		{` { "tracking_number" : "A\u00e9B" } `, "AéB"},
		{`{"carrier":{"name":"postnord","n":[1,2]},"tracking_number":"K1"}`, "K1"},
		{`{}`, ""},
		{`{"tracking_number":"K1","tracking_number":"K2"}`, "K2"},
		{`{"Tracking_Number":"K3"}`, "K3"},
		{`{"tracking_number":"K4","shipment_id":7}`, ""},
		{`{"tracking_number":null}`, ""},
		{`null`, ""},
		{`{"tracking_number":"K5"} x`, ""},
		{`["K6"]`, ""},
		{"{\"tracking_number\":\"K7\xff\"}", "K7\ufffd"},
	} {
		if got := resultString([]byte(c.raw), shipmentFields, "tracking_number", tracking); got != c.want {
			t.Errorf("%s: %q, want %q", c.raw, got, c.want)
		}
		var sh integrations.Shipment
		ref := ""
		if json.Unmarshal([]byte(c.raw), &sh) == nil {
			ref = sh.TrackingNumber
		}
		if ref != c.want {
			t.Errorf("%s: json.Unmarshal finds %q, the table says %q", c.raw, ref, c.want)
		}
	}
	if got := resultString([]byte(`{"number":"55430000000042","provider_id":"1811"}`), invoiceFields, "number",
		func(inv *integrations.Invoice) string { return inv.Number }); got != "55430000000042" {
		t.Errorf("invoice number %q", got)
	}
	// The field lists are the structs' fields, every one a string.
	for _, c := range []struct {
		typ    reflect.Type
		fields []string
	}{{reflect.TypeFor[integrations.Shipment](), shipmentFields}, {reflect.TypeFor[integrations.Invoice](), invoiceFields}} {
		var names []string
		for f := range c.typ.Fields() {
			if f.Type.Kind() != reflect.String {
				t.Errorf("%s.%s is not a string", c.typ, f.Name)
			}
			names = append(names, strings.Split(f.Tag.Get("json"), ",")[0])
		}
		if !slices.Equal(names, c.fields) {
			t.Errorf("%s fields %v, the scan reads %v", c.typ, names, c.fields)
		}
	}
}

// FuzzDigest: for any state the processor could hold, a header it
// writes reads back as the digest of the decoded value.
func FuzzDigest(f *testing.F) {
	v, _ := digestState().Encode()
	f.Add(v, "Åsa", "a@example.com", int64(1767225600), int64(0), `{"tracking_number":"T1"}`)
	f.Add([]byte(`{"v":1,"order_id":"pi_1","status":"in_progress"}`), "\xff", "", int64(-62135596800), int64(3600), `x`)
	f.Fuzz(func(t *testing.T, v []byte, name, email string, unix, offset int64, result string) {
		st, err := DecodeState(v)
		if err != nil {
			st = &State{Version: 1, OrderID: "pi_fuzz"}
		}
		if st.Order == nil && name != "" {
			st.Order = &integrations.Order{Model: integrations.OrderModel}
		}
		if st.Order != nil {
			o := *st.Order
			o.Customer.Name, o.Customer.Email = name, email
			st.Order = &o
		}
		st.CreatedAt = time.Unix(unix%(1<<40), unix%1e9).In(time.FixedZone("", int(offset%(18*3600))))
		if json.Valid([]byte(result)) {
			st.Step(StepShipping).Result = json.RawMessage(result)
		}
		value, err := st.Encode()
		if err != nil {
			return
		}
		hs := StateHeaders(st, value)
		if hs == nil {
			return
		}
		got, err := ParseDigest(hs[0].Value, value)
		if err != nil {
			t.Fatalf("own header refused: %v", err)
		}
		dec, err := DecodeState(value)
		if err != nil {
			t.Fatalf("a header on a value that does not decode (%v)", err)
		}
		if want := DigestOf(dec); !reflect.DeepEqual(got, want) {
			t.Fatalf("header digest\n%+v\nwant the decoded value's\n%+v", got, want)
		}
	})
}

// BenchmarkStateWrite is the processor's cost per state write of a
// finished order (2 KB): the encoding alone, and with the digest header.
func BenchmarkStateWrite(b *testing.B) {
	st := digestState()
	st.Status, st.DeadLetter, st.LastError = StatusCompleted, nil, ""
	at := st.CreatedAt
	o := st.Order
	o.PaymentIntentID, o.CheckoutSessionID, o.Locale, o.CreatedAt = o.ID, "cs_test_digest0000", "sv-SE", at
	o.AmountSubtotal, o.AmountTax, o.AmountShipping = 3360, 840, 490
	o.Items = []integrations.LineItem{{SKU: "price_1QfullShirt", Description: "T-shirt, organic cotton, navy, L", Quantity: 2, UnitAmount: 1680,
		AmountSubtotal: 3360, AmountTotal: 4200, AmountTax: 840, Taxes: []integrations.Tax{{Amount: 840, TaxableAmount: 3360, Percentage: "25", TaxabilityReason: "standard_rated"}}}}
	o.Shipping = integrations.Address{Name: o.Customer.Name, Line1: "Kungsgatan 21", PostalCode: "11156", City: "Stockholm", Country: "SE"}
	st.Steps = map[string]*StepState{}
	for i, step := range Chain {
		done := at.Add(time.Duration(i) * time.Second)
		st.Steps[step] = &StepState{Done: true, DoneAt: &done}
	}
	st.Steps[StepCRM].Result = json.RawMessage(`{"contact_id":"4150868000000000004","deal_id":"4150868000000000005"}`)
	st.Steps[StepProductionLog].Result = json.RawMessage(`{"record_id":"rec00000000000006"}`)
	st.Steps[StepShipping].Result = json.RawMessage(`{"shipment_id":"700000000000000008","tracking_number":"00373500000000000009",` +
		`"tracking_url":"https://tracking.postnord.com/se/?id=00373500000000000009","label_location":"file:///labels/pi_3Digest0000Xy_label-1.pdf"}`)
	st.Steps[StepInvoice].Result = json.RawMessage(`{"number":"55433853972160","provider_id":"1811"}`)
	st.Steps[StepEmail].Result = json.RawMessage(`{"message_id":"<OF-DIGEST0000@mg.shop.example>"}`)
	st.AppliedObjects = []string{"checkout.session.completed/cs_test_digest0000", "payment_intent.succeeded/pi_3Digest0000Xy"}
	st.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if v, _ := st.Encode(); len(v) < 1500 {
		b.Fatalf("state of %d bytes", len(v))
	}
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.Encode(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode+digest", func(b *testing.B) {
		for b.Loop() {
			v, err := st.Encode()
			if err != nil {
				b.Fatal(err)
			}
			if StateHeaders(st, v) == nil {
				b.Fatal("no header")
			}
		}
	})
}
