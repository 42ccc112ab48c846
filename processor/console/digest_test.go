package console

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
)

// summaryCases are states of every kind the index lists, with the summary
// written by hand.
func summaryCases() []struct {
	st   *processor.State
	want Summary
} {
	minute := t0.Add(time.Minute)
	prog := order("pi_prog", "prog@example.com", processor.StatusInProgress, t0, 2)
	wait := order("pi_wait", "Wait@Example.com", processor.StatusInProgress, t0, 3)
	wait.Step(processor.StepShipping).Attempts = 2
	dead := order("pi_dead", "dead@example.com", processor.StatusDeadLettered, t0, 4)
	dead.Step(processor.StepInvoice).Attempts = 5
	dead.LastError = "netvisor: 422 <bad> VAT id & \"more\"\n"
	dead.DeadLetter = &processor.DeadLetter{Partition: 2, Offset: 77, Step: processor.StepInvoice, Class: "exhausted", At: t0}
	parked := order("pi_park", "park@example.com", processor.StatusParked, t0, 3)
	parked.Step(processor.StepShipping).Attempts = 1
	parked.DeadLetter = &processor.DeadLetter{Partition: 1, Offset: 5, Step: processor.StepShipping, Class: "permanent", At: t0}
	parked.Replays = []string{"1/3"}
	refunded := order("pi_refund", "r@example.com", processor.StatusRefunded, t0, 2)
	dup := order("pi_dup", "dup@example.com", processor.StatusCompleted, t0, 6)
	dup.Flags = []string{processor.FlagPossibleDuplicatePrefix + processor.StepShipping, processor.FlagPossibleDuplicatePrefix + processor.StepEmail}
	dup.AppliedEvents = append(dup.AppliedEvents, "evt_dup_b")
	skipped := order("pi_skip", "s@example.com", processor.StatusCompleted, t0, 6)
	skipped.Steps[processor.StepProductionLog] = &processor.StepState{Skipped: true}
	erasedAt := t0.Add(time.Hour)
	erased := &processor.State{Version: 1, OrderID: "pi_erased", Status: processor.StatusErased, ErasedAt: &erasedAt, NextOffset: 9, CreatedAt: t0, UpdatedAt: erasedAt}
	fresh := &processor.State{Version: 1, OrderID: "pi_new", Status: processor.StatusInProgress, Steps: map[string]*processor.StepState{}, UpdatedAt: t0,
		AppliedEvents: []string{"evt_new"}}
	unicode := order("pi_uni", "Jörg.Łukasz@Exämple.com", processor.StatusCompleted, t0, 6)
	unicode.Order.Customer.Name = "Jörg 李小龙 Müller-Łukasz 😀"
	unicode.Order.Number = "OF-ÅÄÖ"
	legacy := order("pi_legacy", "old@example.com", processor.StatusInProgress, t0, 3)
	legacy.Order.Model = integrations.OrderModel - 1 // details are read again

	base := func(id, email string, status processor.Status) Summary {
		return Summary{ID: id, Number: integrations.OrderNumber(id), Status: string(status), Created: t0, Updated: minute, Amount: 4200, Currency: "eur",
			Email: email, Name: "Anna Öberg", Events: []string{"evt_" + id}, StateStatus: status}
	}
	with := func(s Summary, f func(*Summary)) Summary { f(&s); return s }
	return []struct {
		st   *processor.State
		want Summary
	}{
		{prog, with(base("pi_prog", "prog@example.com", processor.StatusInProgress), func(s *Summary) {
			s.Number, s.Step, s.Done, s.DoneMask = "OF-PROG", "production_log", 2, 0b11
		})},
		{wait, with(base("pi_wait", "Wait@Example.com", processor.StatusInProgress), func(s *Summary) {
			s.Number, s.Status, s.Step, s.Done, s.DoneMask, s.Attempts = "OF-WAIT", "waiting", "shipping", 3, 0b111, map[string]int{"shipping": 2}
		})},
		{dead, with(base("pi_dead", "dead@example.com", processor.StatusDeadLettered), func(s *Summary) {
			s.Number, s.Step, s.Done, s.DoneMask, s.Attempts = "OF-DEAD", "invoice", 4, 0b1111, map[string]int{"invoice": 5}
			s.Tracking, s.LastError = "TRKpi_dead", "netvisor: 422 <bad> VAT id & \"more\"\n"
		})},
		{parked, with(base("pi_park", "park@example.com", processor.StatusParked), func(s *Summary) {
			s.Number, s.Step, s.Done, s.DoneMask, s.Attempts, s.Replays = "OF-PARK", "shipping", 3, 0b111, map[string]int{"shipping": 1}, []string{"1/3"}
		})},
		{refunded, with(base("pi_refund", "r@example.com", processor.StatusRefunded), func(s *Summary) {
			s.Number, s.Step, s.Done, s.DoneMask = "OF-REFUND", "production_log", 2, 0b11
		})},
		{dup, with(base("pi_dup", "dup@example.com", processor.StatusCompleted), func(s *Summary) {
			s.Number, s.Step, s.Done, s.DoneMask, s.Tracking, s.Invoice = "OF-DUP", "-", 6, 0b111111, "TRKpi_dup", "INVpi_dup"
			s.Flags, s.Events = []string{"possible_duplicate:shipping", "possible_duplicate:email"}, []string{"evt_pi_dup", "evt_dup_b"}
		})},
		{skipped, with(base("pi_skip", "s@example.com", processor.StatusCompleted), func(s *Summary) {
			s.Number, s.Step, s.Done, s.DoneMask, s.Tracking, s.Invoice = "OF-SKIP", "-", 6, 0b111111, "TRKpi_skip", "INVpi_skip"
		})},
		{erased, Summary{ID: "pi_erased", Number: "OF-ERASED", Status: "erased", Step: "-", Created: t0, Updated: erasedAt, StateStatus: processor.StatusErased}},
		{fresh, Summary{ID: "pi_new", Number: "OF-NEW", Status: "in_progress", Step: "details", Created: t0, Updated: t0, Events: []string{"evt_new"}, StateStatus: processor.StatusInProgress}},
		{unicode, with(base("pi_uni", "Jörg.Łukasz@Exämple.com", processor.StatusCompleted), func(s *Summary) {
			s.Number, s.Name, s.Step, s.Done, s.DoneMask, s.Tracking, s.Invoice = "OF-ÅÄÖ", "Jörg 李小龙 Müller-Łukasz 😀", "-", 6, 0b111111, "TRKpi_uni", "INVpi_uni"
		})},
		{legacy, with(base("pi_legacy", "old@example.com", processor.StatusInProgress), func(s *Summary) {
			s.Number, s.Step, s.Done, s.DoneMask = "OF-LEGACY", "details", 2, 0b110
		})},
	}
}

// A state record's digest header gives the summary written by hand, the
// same as its value scanned and decoded in full; the index files it so.
func TestSummaryFromDigestHeader(t *testing.T) {
	ix := testIndex(t, t.TempDir())
	defer ix.Close()
	for i, c := range summaryCases() {
		r := stateRecord(t, c.st, 3, int64(100+i))
		d, ok := processor.RecordDigest(r)
		if !ok {
			t.Errorf("%s: no digest header trusted (headers %q)", c.st.OrderID, r.Headers)
			continue
		}
		if got := SummaryFromDigest(&d); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: summary from the header\n%+v\nwant\n%+v", c.st.OrderID, got, c.want)
		}
		var sc stateScanner
		scanned, ok := sc.scan(r.Value)
		if !ok {
			t.Fatalf("%s: not scanned", c.st.OrderID)
		}
		if got := Summarize(scanned); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: summary of the scan\n%+v\nwant\n%+v", c.st.OrderID, got, c.want)
		}
		if got := summarizeFull(t, r.Value); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: summary of the full decode\n%+v\nwant\n%+v", c.st.OrderID, got, c.want)
		}
		apply(t, ix, r)
		got, err := ix.Get(c.st.OrderID)
		if err != nil {
			t.Fatal(err)
		}
		want := c.want
		want.StatePartition, want.StateOffset = 3, int64(100+i)
		// Each new order is numbered in the index, in order.
		want.Seq = uint32(i + 1)
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("%s: filed\n%+v\nwant\n%+v", c.st.OrderID, *got, want)
		}
	}
}

// The header is what the index reads when it checks; a header that does
// not check (the value altered after it was made, an unknown version, cut
// short, garbage) leaves the index to the value.
func TestDigestHeaderFallsBack(t *testing.T) {
	st := order("pi_fall", "value@example.com", processor.StatusCompleted, t0, 6)
	v, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// A header that says other things of the same value: the index files
	// what it says only while it is trusted.
	other := order("pi_fall", "header@example.com", processor.StatusInProgress, t0, 2)
	od := processor.DigestOf(other)
	lying := processor.AppendDigest(nil, &od, v)
	version2 := append([]byte{2}, lying[1:]...)
	altered := bytes.Replace(v, []byte("value@example.com"), []byte("edited@example.com"), 1)
	own := processor.StateHeaders(st, v)[0].Value

	for i, c := range []struct {
		what   string
		value  []byte
		header []byte
		email  string
		status string
	}{
		{"header trusted", v, lying, "header@example.com", "in_progress"},
		{"value altered after the header", altered, own, "edited@example.com", "completed"},
		{"unknown version", v, version2, "value@example.com", "completed"},
		{"cut short", v, lying[:len(lying)-3], "value@example.com", "completed"},
		{"garbage", v, []byte("\x01garbage that is not a digest"), "value@example.com", "completed"},
		{"empty", v, nil, "value@example.com", "completed"},
		{"no header", v, lying, "value@example.com", "completed"},
	} {
		ix := testIndex(t, t.TempDir())
		r := &kgo.Record{Topic: names.State, Partition: 0, Offset: int64(i), Key: []byte("pi_fall"), Value: c.value, Timestamp: t0,
			Headers: []kgo.RecordHeader{{Key: topics.HeaderStateDigest, Value: c.header}}}
		if c.what == "no header" {
			r.Headers = []kgo.RecordHeader{{Key: "orderflow-state-digest-x", Value: c.header}}
		}
		apply(t, ix, r)
		got, err := ix.Get("pi_fall")
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if got.Email != c.email || got.Status != c.status {
			t.Errorf("%s: filed %s %s, want %s %s", c.what, got.Email, got.Status, c.email, c.status)
		}
		ix.Close()
	}
}

// A tombstone removes the order whatever header it carries; an erasure
// marker (a state with its header) replaces the order's keys.
func TestDigestTombstoneAndMarker(t *testing.T) {
	ix := testIndex(t, t.TempDir())
	defer ix.Close()
	st := order("pi_gone", "gone@example.com", processor.StatusCompleted, t0, 6)
	r := stateRecord(t, st, 0, 0)
	apply(t, ix, r)
	at := t0.Add(time.Hour)
	marker := &processor.State{Version: 1, OrderID: "pi_gone", Status: processor.StatusErased, ErasedAt: &at, CreatedAt: t0, UpdatedAt: at}
	apply(t, ix, stateRecord(t, marker, 0, 1))
	got, err := ix.Get("pi_gone")
	if err != nil || got.Status != "erased" || got.Email != "" || got.Tracking != "" {
		t.Fatalf("after the erasure marker: %+v %v", got, err)
	}
	if found, _ := ix.Search(Query{Term: "gone@example.com"}, 10); len(found) != 0 {
		t.Errorf("the erased order's email still finds it: %+v", found)
	}
	tomb := &kgo.Record{Topic: names.State, Partition: 0, Offset: 2, Key: []byte("pi_gone"), Timestamp: at, Headers: r.Headers}
	apply(t, ix, tomb)
	if _, err := ix.Get("pi_gone"); err != ErrNotFound {
		t.Errorf("after a tombstone with a header: %v, want ErrNotFound", err)
	}
}

// FuzzDigestAgrees: for any state the processor could hold, the index
// reads from its record's header what it reads from its value.
func FuzzDigestAgrees(f *testing.F) {
	for _, c := range summaryCases() {
		v, err := c.st.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v, "Åsa Öberg", "a@example.com", int64(1767225600), int64(0), `{"tracking_number":"T1"}`, int64(2))
	}
	f.Add([]byte(`{"v":1,"order_id":"pi_1","status":"in_progress"}`), "\xff", "", int64(-62135596800), int64(3600), `x`, int64(-1))
	f.Fuzz(func(t *testing.T, v []byte, name, email string, unix, offset int64, result string, attempts int64) {
		st, err := processor.DecodeState(v)
		if err != nil {
			st = &processor.State{Version: 1, OrderID: "pi_fuzz", Status: processor.StatusInProgress}
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
			st.Step(processor.StepShipping).Result = json.RawMessage(result)
		}
		st.Step(processor.Chain[int(uint64(attempts)%uint64(len(processor.Chain)))]).Attempts = int(attempts)
		value, err := st.Encode()
		if err != nil {
			return
		}
		r := &kgo.Record{Topic: names.State, Key: []byte(st.OrderID), Value: value, Headers: processor.StateHeaders(st, value)}
		d, ok := processor.RecordDigest(r)
		if !ok {
			return // no header: the value is read, as without one
		}
		var ref *processor.State
		var sc stateScanner
		if scanned, ok := sc.scan(value); ok {
			ref = scanned
		} else if ref, err = decodeState(value); err != nil {
			t.Fatalf("a header on a value the index cannot read (%v)", err)
		}
		got, want := SummaryFromDigest(&d), Summarize(ref)
		if !bytes.Equal(appendSummary(nil, &got), appendSummary(nil, &want)) || !reflect.DeepEqual(got.Events, want.Events) {
			t.Fatalf("summary from the header\n%+v\nfrom the value\n%+v", got, want)
		}
	})
}
