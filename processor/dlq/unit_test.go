package dlq

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
)

func hdr(kv ...string) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return hs
}

func TestFromRecord(t *testing.T) {
	ts := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	r := &kgo.Record{Partition: 2, Offset: 9, Key: []byte("pi_1"), Value: []byte("{}"), Timestamp: ts.Add(time.Second),
		Headers: hdr(topics.HeaderEventID, "evt_1",
			topics.HeaderDLQTopic, "orders", topics.HeaderDLQPartition, "2", topics.HeaderDLQOffset, "41",
			topics.HeaderDLQStep, "crm", topics.HeaderDLQClass, "permanent", topics.HeaderDLQError, "zoho: 400",
			topics.HeaderDLQAttempts, "3", topics.HeaderDLQFirstFailure, ts.Add(-time.Minute).Format(time.RFC3339),
			topics.HeaderDLQLastFailure, ts.Format(time.RFC3339), topics.HeaderDLQReplayCount, "2")}
	d := FromRecord(r)
	if d.Source() != "2/9" || d.Key != "pi_1" || d.OriginalTopic != "orders" || d.OriginalPartition != 2 || d.OriginalOffset != 41 ||
		d.Step != "crm" || d.Class != "permanent" || d.Error != "zoho: 400" || d.Attempts != 3 || d.ReplayCount != 2 ||
		!d.LastFailure.Equal(ts) || !d.FirstFailure.Equal(ts.Add(-time.Minute)) || !d.FailedAt().Equal(ts) {
		t.Fatalf("FromRecord = %+v", d)
	}
	if v, ok := d.Header(topics.HeaderEventID); !ok || v != "evt_1" {
		t.Errorf("Header(event id) = %q, %v", v, ok)
	}

	bare := FromRecord(&kgo.Record{Partition: 0, Offset: 1, Timestamp: ts, Headers: hdr(topics.HeaderDLQPartition, "x", topics.HeaderDLQAttempts, "many")})
	if bare.OriginalPartition != -1 || bare.OriginalOffset != -1 || bare.Attempts != 0 || !bare.FailedAt().Equal(ts) {
		t.Errorf("damaged headers read as %+v", bare)
	}
}

func TestParseSource(t *testing.T) {
	for _, tc := range []struct {
		in   string
		p    int32
		o    int64
		fail bool
	}{
		{in: "0/0"}, {in: "3/1200", p: 3, o: 1200}, {in: " 1/2 ", p: 1, o: 2},
		{in: "3", fail: true}, {in: "a/1", fail: true}, {in: "1/b", fail: true},
		{in: "-1/2", fail: true}, {in: "1/-2", fail: true}, {in: "1/2/3", fail: true}, {in: "99999999999/1", fail: true},
	} {
		p, o, err := ParseSource(tc.in)
		if tc.fail {
			if !errors.Is(err, ErrBadSource) {
				t.Errorf("ParseSource(%q) = %d, %d, %v; want ErrBadSource", tc.in, p, o, err)
			}
			continue
		}
		if err != nil || p != tc.p || o != tc.o {
			t.Errorf("ParseSource(%q) = %d, %d, %v; want %d, %d", tc.in, p, o, err, tc.p, tc.o)
		}
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		fail bool
	}{
		{in: ""},
		{in: "2h", want: now.Add(-2 * time.Hour)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "7d", want: now.Add(-7 * 24 * time.Hour)},
		{in: "2026-05-01T00:00:00Z", want: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)},
		{in: "2026-05-01T03:00:00+03:00", want: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)},
		{in: "yesterday", fail: true}, {in: "-2h", fail: true}, {in: "2026-05-01", fail: true}, {in: "d", fail: true},
	} {
		got, err := ParseTime(tc.in, now)
		if tc.fail {
			if !errors.Is(err, ErrBadFilter) {
				t.Errorf("ParseTime(%q) = %v, %v; want ErrBadFilter", tc.in, got, err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestFilter(t *testing.T) {
	at := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)
	d := DeadLetter{Key: "pi_1", Step: "crm", Class: "permanent", LastFailure: at}
	for _, tc := range []struct {
		name string
		f    Filter
		want bool
	}{
		{"empty", Filter{}, true},
		{"order", Filter{Orders: []string{"pi_2", "pi_1"}}, true},
		{"other order", Filter{Orders: []string{"pi_2"}}, false},
		{"step", Filter{Steps: []string{"crm"}}, true},
		{"other step", Filter{Steps: []string{"shipping"}}, false},
		{"class", Filter{Classes: []string{"exhausted", "permanent"}}, true},
		{"other class", Filter{Classes: []string{"parked"}}, false},
		{"since inclusive", Filter{Since: at}, true},
		{"since after", Filter{Since: at.Add(time.Second)}, false},
		{"until exclusive", Filter{Until: at}, false},
		{"until after", Filter{Until: at.Add(time.Second)}, true},
		{"all must match", Filter{Steps: []string{"crm"}, Classes: []string{"parked"}}, false},
	} {
		if got := tc.f.Match(d); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{Steps: []string{"crm", "fax"}}, `unknown step "fax"`},
		{Filter{Classes: []string{"sad"}}, `unknown class "sad"`},
		{Filter{Since: at, Until: at}, "is not before"},
	} {
		err := tc.f.Validate()
		if !errors.Is(err, ErrBadFilter) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.f, err, tc.want)
		}
	}
	if err := (Filter{Steps: processor.Chain, Classes: topics.Classes}).Validate(); err != nil {
		t.Errorf("every known step and class: %v", err)
	}
	if (Filter{}).Empty() != true || (Filter{Until: at}).Empty() {
		t.Error("Empty is wrong")
	}
}

func TestMaskJSON(t *testing.T) {
	in := `{"id":"evt_1","data":{"object":{"id":"cs_1","customer":"cus_9","amount_total":4200,
	"customer_details":{"email":"asa@example.com","name":"Åsa Öberg","phone":"+358401234567","address":{"line1":"Main 1","country":"FI"}},
	"shipping_details":{"name":"Åsa","address":{"city":"Oulu","postal_code":"90100"}},
	"receipt_email":"asa@example.com","livemode":false,"metadata":{"locale":"fi"}}},
	"order":{"customer":{"name":"Åsa","email":"asa@example.com"},"items":[{"description":"Mug","quantity":2}]}}`
	out := string(MaskJSON([]byte(in)))
	for _, leak := range []string{"asa@example.com", "Åsa", "Öberg", "+358401234567", "Main 1", "Oulu", "90100"} {
		if strings.Contains(out, leak) {
			t.Errorf("masked JSON still holds %q:\n%s", leak, out)
		}
	}
	for _, keep := range []string{`"id":"evt_1"`, `"id":"cs_1"`, `"customer":"cus_9"`, `"amount_total":4200`, `"livemode":false`, `"locale":"fi"`, `"description":"Mug"`, `"email":"***"`} {
		if !strings.Contains(out, keep) {
			t.Errorf("masked JSON lost %s:\n%s", keep, out)
		}
	}
	if !json.Valid([]byte(out)) {
		t.Errorf("masked JSON is not JSON: %s", out)
	}
	if got := string(MaskJSON([]byte("not json asa@example.com"))); got != `"***"` {
		t.Errorf("non-JSON masked to %s", got)
	}
}

func TestCut(t *testing.T) {
	for _, tc := range []struct {
		in    string
		width int
		want  string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a much longer error", 6, "a muc…"},
		{"äöü日本語テキスト", 4, "äöü…"},
		{"line\none\t two", 0, "line one two"},
	} {
		if got := Cut(tc.in, tc.width); got != tc.want {
			t.Errorf("Cut(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
}

func TestReplayRecord(t *testing.T) {
	d := DeadLetter{Partition: 1, Offset: 7, Key: "pi_1", Value: []byte(`{"v":1}`), ReplayCount: 2,
		Headers: hdr(topics.HeaderEventID, "evt_1", topics.HeaderTraceParent, "00-abc-def-01",
			topics.HeaderReplay, "2", topics.HeaderReplaySource, "1/3",
			topics.HeaderDLQTopic, "orders", topics.HeaderDLQPartition, "1", topics.HeaderDLQOffset, "5",
			topics.HeaderDLQStep, "crm", topics.HeaderDLQClass, "exhausted", topics.HeaderDLQError, "x",
			topics.HeaderDLQAttempts, "5", topics.HeaderDLQFirstFailure, "t", topics.HeaderDLQLastFailure, "t",
			topics.HeaderDLQReplayCount, "2")}
	r := ReplayRecord(d, "p.orders", 1)
	if r.Topic != "p.orders" || r.Partition != 1 || string(r.Key) != "pi_1" || string(r.Value) != `{"v":1}` {
		t.Fatalf("record = %+v", r)
	}
	var got []string
	for _, h := range r.Headers {
		got = append(got, h.Key+"="+string(h.Value))
	}
	want := []string{
		topics.HeaderEventID + "=evt_1", topics.HeaderTraceParent + "=00-abc-def-01",
		topics.HeaderReplay + "=3", topics.HeaderReplaySource + "=1/7",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("headers\n got %v\nwant %v", got, want)
	}
}

func TestReplayPartition(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    DeadLetter
		n    int
		want int32
	}{
		{"original partition", DeadLetter{Key: "pi_1", OriginalPartition: 2, Partition: 0}, 3, 2},
		{"original out of range: key hash", DeadLetter{Key: "pi_1", OriginalPartition: 7}, 3, keyPartition("pi_1", 3)},
		{"no header: key hash", DeadLetter{Key: "pi_1", OriginalPartition: -1}, 12, keyPartition("pi_1", 12)},
		{"no key, no header: dlq partition", DeadLetter{OriginalPartition: -1, Partition: 4}, 3, 1},
	} {
		if got := replayPartition(tc.d, tc.n); got != tc.want {
			t.Errorf("%s: partition %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestKeyPartitionMatchesDefaultPartitioner(t *testing.T) {
	// The gateway produces with franz-go's default partitioner; its choice
	// for a keyed record must be ours.
	def := kgo.UniformBytesPartitioner(64<<10, true, true, nil).ForTopic("orders").(kgo.TopicBackupPartitioner)
	for _, k := range []string{"pi_1", "pi_3Mtw", "cs_test_a1", "pi_ÅÖ"} {
		for _, n := range []int{1, 3, 12} {
			want := def.PartitionByBackup(&kgo.Record{Key: []byte(k)}, n, nil)
			if got := keyPartition(k, n); int(got) != want {
				t.Errorf("keyPartition(%q, %d) = %d, default partitioner %d", k, n, got, want)
			}
		}
	}
}

func TestDecide(t *testing.T) {
	ds := []DeadLetter{
		{Partition: 0, Offset: 1, Key: "pi_new"},
		{Partition: 0, Offset: 2, Key: "pi_replayed"},
		{Partition: 0, Offset: 3, Key: "pi_replayed"},
		{Partition: 1, Offset: 4, Key: "pi_done"},
		{Partition: 1, Offset: 5, Key: "pi_parked"},
		{Partition: 1, Offset: 6, Key: "pi_erased"},
		// A refund parked behind the failure of an order that completed
		// since: still to be replayed (once).
		{Partition: 1, Offset: 7, Key: "pi_done", Headers: []kgo.RecordHeader{{Key: topics.HeaderEventType, Value: []byte(processor.EventChargeRefunded)}}},
		{Partition: 1, Offset: 8, Key: "pi_refund_replayed", Headers: []kgo.RecordHeader{{Key: topics.HeaderEventType, Value: []byte(processor.EventChargeRefunded)}}},
		// An order refunded before shipping: its failure needs no replay,
		// a dispute parked behind it still does.
		{Partition: 2, Offset: 9, Key: "pi_refunded"},
		{Partition: 2, Offset: 10, Key: "pi_refunded", Headers: []kgo.RecordHeader{{Key: topics.HeaderEventType, Value: []byte(processor.EventDisputeCreated)}}},
	}
	states := map[string]*processor.State{
		"pi_refund_replayed": {Status: processor.StatusCompleted, Replays: []string{"1/8"}},
		"pi_replayed":        {Status: processor.StatusInProgress, Replays: []string{"0/2"}},
		"pi_done":            {Status: processor.StatusCompleted},
		"pi_parked":          {Status: processor.StatusParked, Replays: []string{"9/9"}},
		"pi_erased":          {Status: processor.StatusErased},
		"pi_refunded":        {Status: processor.StatusRefunded},
	}
	got := decide(ds, states)
	want := []string{"", SkipAlreadyReplayed, "", SkipAlreadyCompleted, "", SkipErased, "", SkipAlreadyReplayed, SkipRefunded, ""}
	if len(got) != len(want) {
		t.Fatalf("%d decisions, want %d", len(got), len(want))
	}
	for i, d := range got {
		if d.Skip != want[i] {
			t.Errorf("%s (%s): skip %q, want %q", d.Source(), d.Key, d.Skip, want[i])
		}
	}
}

func TestWriteTableAndCounts(t *testing.T) {
	at := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)
	ds := []DeadLetter{
		{Partition: 0, Offset: 3, Key: "pi_1", Step: "crm", Class: "permanent", Attempts: 1, Error: strings.Repeat("x", 100), LastFailure: at},
		{Partition: 1, Offset: 0, Key: "pi_2", Step: "shipping", Class: "exhausted", Attempts: 8, Error: "postnord: 503", LastFailure: at, ReplayCount: 1},
		{Partition: 1, Offset: 1, Key: "pi_2", Step: "shipping", Class: "parked"},
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, ds, 20); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"P/OFFSET", "0/3", "pi_1", "crm", "permanent", strings.Repeat("x", 19) + "…", "2026-05-06T12:00:00Z", "1/0", "postnord: 503"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, strings.Repeat("x", 21)) {
		t.Errorf("error not cut to 20:\n%s", out)
	}
	buf.Reset()
	WriteCounts(&buf, Count(ds))
	want := "3 dead letter(s)\nby step:  crm 1, shipping 2\nby class: permanent 1, exhausted 1, parked 1\n"
	if buf.String() != want {
		t.Errorf("counts\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestWriteOrder(t *testing.T) {
	at := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)
	res := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	st := &processor.State{
		OrderID: "pi_1", Status: processor.StatusDeadLettered,
		Order: &integrations.Order{ID: "pi_1", Number: "OF-1", Currency: "eur", AmountTotal: 4200,
			Customer: integrations.Customer{Name: "Åsa Öberg", Email: "asa@example.com"}},
		Steps: map[string]*processor.StepState{
			"details":        {Done: true, DoneAt: &at},
			"crm":            {Done: true, DoneAt: &at, Result: res(integrations.CRMResult{ContactID: "c1", DealID: "d77"})},
			"production_log": {Done: true, DoneAt: &at, Result: res(integrations.ProductionLogResult{RecordID: "rec9"})},
			"shipping": {Done: true, DoneAt: &at, Attempts: 2, Result: res(integrations.Shipment{ShipmentID: "s1", TrackingNumber: "00370123",
				LabelLocation: "file:///labels/OF-1.pdf"})},
			"invoice": {Attempts: 3, LastError: "netvisor: 500 Internal", LastFailure: &at},
		},
		Flags:       []string{"possible_duplicate:shipping"},
		Replays:     []string{"0/4"},
		DeadLetter:  &processor.DeadLetter{Partition: 0, Offset: 9, Step: "invoice", Class: "exhausted", At: at},
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	var buf bytes.Buffer
	WriteOrder(&buf, st)
	if !regexp.MustCompile(`\n  trace +4bf92f3577b34da6a3ce929d0e0e4736\n`).MatchString(buf.String()) {
		t.Errorf("order output lacks the trace id line:\n%s", buf.String())
	}
	out := buf.String()
	for _, want := range []string{"order pi_1 (OF-1)", "dead_lettered", "deal d77", "record rec9", "tracking 00370123",
		"label file:///labels/OF-1.pdf", "after 2 failed attempt(s)", "3 attempt(s)", "netvisor: 500 Internal",
		"possible_duplicate:shipping", "order OF-1, 42.00 EUR, 0 item(s)", "0/9 (step invoice, class exhausted", "0/4", "email", "pending"} {
		if !strings.Contains(out, want) {
			t.Errorf("order output lacks %q:\n%s", want, out)
		}
	}
	for _, leak := range []string{"Åsa", "asa@example.com"} {
		if strings.Contains(out, leak) {
			t.Errorf("order output shows customer data %q:\n%s", leak, out)
		}
	}
	masked, err := MaskState(st, false)
	if err != nil || strings.Contains(string(masked), "asa@example.com") || !strings.Contains(string(masked), "d77") {
		t.Errorf("MaskState = %s, %v", masked, err)
	}
	revealed, _ := MaskState(st, true)
	if !strings.Contains(string(revealed), "asa@example.com") {
		t.Errorf("MaskState(reveal) hides the email: %s", revealed)
	}
}

func TestLeftOut(t *testing.T) {
	dec := func(p int32, o int64, key, skip string) Decision {
		return Decision{DeadLetter: DeadLetter{Partition: p, Offset: o, Key: key}, Skip: skip}
	}
	all := []Decision{
		dec(0, 1, "pi_a", ""), dec(0, 4, "pi_a", ""), dec(0, 6, "pi_a", ""),
		dec(1, 2, "pi_b", SkipAlreadyReplayed), dec(1, 3, "pi_b", ""),
		dec(2, 0, "pi_c", ""),
	}
	for _, tc := range []struct {
		name string
		plan []Decision
		want []string
	}{
		{"all selected", all, nil},
		{"a later one alone", []Decision{dec(0, 4, "pi_a", "")}, []string{"0/1"}},
		{"the last alone", []Decision{dec(0, 6, "pi_a", "")}, []string{"0/1", "0/4"}},
		{"the first alone", []Decision{dec(0, 1, "pi_a", "")}, nil},
		{"earlier one already replayed", []Decision{dec(1, 3, "pi_b", "")}, nil},
		{"skipped selection", []Decision{dec(0, 6, "pi_a", SkipAlreadyCompleted)}, nil},
	} {
		var got []string
		for _, d := range LeftOut(tc.plan, all) {
			got = append(got, d.Source())
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: LeftOut = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestWriteOrderHeldStep(t *testing.T) {
	at := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)
	until := time.Date(2026, 5, 7, 12, 1, 0, 0, time.UTC)
	st := &processor.State{
		OrderID: "pi_2", Status: processor.StatusInProgress, Pending: []string{"crm"},
		Steps: map[string]*processor.StepState{
			"details": {Done: true, DoneAt: &at},
			"crm": {HeldUntil: &until, HeldReason: "zoho: upsert contact: HTTP 429: TOO_MANY_REQUESTS: API credits used up",
				LastError: "zoho: upsert contact: HTTP 429", LastFailure: &at},
		},
	}
	var buf bytes.Buffer
	WriteOrder(&buf, st)
	out := buf.String()
	want := "  crm             held until 2026-05-07T12:01:00Z (provider quota used up; no attempt spent)  zoho: upsert contact: HTTP 429: TOO_MANY_REQUESTS: API credits used up\n"
	if !strings.Contains(out, want) {
		t.Errorf("order output lacks the held line %q:\n%s", want, out)
	}
}

func TestSkipText(t *testing.T) {
	if got := (Summary{AlreadyReplayed: 1, AlreadyCompleted: 2}).SkipText(); got != "already replayed 1, already completed 2" {
		t.Errorf("without erased orders: %q", got)
	}
	if got := (Summary{AlreadyReplayed: 1, Refunded: 2}).SkipText(); got != "already replayed 1, already completed 0, order refunded 2" {
		t.Errorf("SkipText with refunded orders = %q", got)
	}
	s := Summary{AlreadyReplayed: 1, AlreadyCompleted: 2, Erased: 3}
	if got := s.SkipText(); got != "already replayed 1, already completed 2, order erased 3" || s.Skipped() != 6 {
		t.Errorf("with erased orders: %q, skipped %d", got, s.Skipped())
	}
	p := Preview{Replay: 4, AlreadyCompleted: 1, Erased: 2}
	if got := p.SkipText(); got != "already replayed 0, already completed 1, order erased 2" || p.Skipped() != 3 {
		t.Errorf("preview: %q, skipped %d", got, p.Skipped())
	}
}

// stepLines is the name and status of each line under "steps:".
func stepLines(out string) []string {
	_, steps, _ := strings.Cut(out, "steps:\n")
	var got []string
	for _, l := range strings.Split(strings.TrimRight(steps, "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 {
			got = append(got, f[0]+" "+f[1])
		}
	}
	return got
}

// Every step of the order's chain is listed, the pending ones not started
// (webhooks with no entry yet) as pending, in their chain order.
func TestWriteOrderPendingWebhooks(t *testing.T) {
	at := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		st   *processor.State
		want []string
	}{{
		// --steps details,webhook:wms,shipping,invoice,email,crm,production_log
		// with the gate wms refusing the order.
		name: "behind a refusing gate",
		st: &processor.State{OrderID: "pi_g", Status: processor.StatusDeadLettered,
			Pending: []string{"webhook:wms", "shipping", "invoice", "email", "crm", "production_log"},
			Steps: map[string]*processor.StepState{
				"details":     {Done: true, DoneAt: &at},
				"webhook:wms": {Attempts: 1, LastError: "webhook: wms: HTTP 422", LastFailure: &at},
			}},
		want: []string{"details done", "webhook:wms failing", "shipping pending", "invoice pending", "email pending", "crm pending", "production_log pending"},
	}, {
		// --steps details,crm,shipping,invoice,email,production_log,webhook:hub
		// with the CRM dead-lettered: the webhook reading it not started.
		name: "a webhook after a dead-lettered step",
		st: &processor.State{OrderID: "pi_c", Status: processor.StatusDeadLettered,
			Pending: []string{"crm", "webhook:hub"},
			Steps: map[string]*processor.StepState{
				"details":        {Done: true, DoneAt: &at},
				"crm":            {Attempts: 1, LastError: "zoho: HTTP 400", LastFailure: &at},
				"production_log": {Done: true, DoneAt: &at},
				"shipping":       {Done: true, DoneAt: &at},
				"invoice":        {Done: true, DoneAt: &at},
				"email":          {Done: true, DoneAt: &at},
			}},
		want: []string{"details done", "crm failing", "production_log done", "shipping done", "invoice done", "email done", "webhook:hub pending"},
	}, {
		// --steps details,shipping,invoice,email,webhook:tok,webhook:simhook,webhook:empt
		// with tok refusing: simhook and empt not started, listed after it.
		name: "webhooks after a failing one",
		st: &processor.State{OrderID: "pi_d", Status: processor.StatusDeadLettered,
			Pending: []string{"webhook:tok", "webhook:simhook", "webhook:empt"},
			Steps: map[string]*processor.StepState{
				"details":        {Done: true, DoneAt: &at},
				"crm":            {Skipped: true},
				"production_log": {Skipped: true},
				"shipping":       {Done: true, DoneAt: &at},
				"invoice":        {Done: true, DoneAt: &at},
				"email":          {Done: true, DoneAt: &at},
				"webhook:tok":    {Attempts: 1, LastError: "webhook: tok: HTTP 404", LastFailure: &at},
			}},
		want: []string{"details done", "crm skipped", "production_log skipped", "shipping done", "invoice done", "email done",
			"webhook:tok failing", "webhook:simhook pending", "webhook:empt pending"},
	}} {
		var buf bytes.Buffer
		WriteOrder(&buf, tc.st)
		if got := stepLines(buf.String()); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: steps\n%q\nwant\n%q\n%s", tc.name, got, tc.want, buf.String())
		}
	}
}

// A step waiting on its provider's open circuit says so, with the error
// of the call that failed uncounted when there was one.
func TestWriteOrderCircuitWait(t *testing.T) {
	at := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)
	since := at.Add(time.Second)
	st := &processor.State{OrderID: "pi_w", Status: processor.StatusInProgress,
		Pending: []string{"shipping", "invoice", "email"},
		Steps: map[string]*processor.StepState{
			"details":        {Done: true, DoneAt: &at},
			"crm":            {Done: true, DoneAt: &at},
			"production_log": {Done: true, DoneAt: &at},
			"shipping":       {CircuitOpen: &since, LastError: "postnord: HTTP 503", LastFailure: &since},
		}}
	var buf bytes.Buffer
	WriteOrder(&buf, st)
	want := "  shipping        waiting on the open circuit since 2026-05-06T12:00:01Z (its provider fails for every order)  last error: postnord: HTTP 503\n"
	if !strings.Contains(buf.String(), want) {
		t.Errorf("order output lacks %q:\n%s", want, buf.String())
	}
}
