package console

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
)

// searchIDs is the ids Search finds for term, in its order.
func searchIDs(t *testing.T, ix *Index, term string) []string {
	t.Helper()
	found, err := ix.Search(Query{Term: term}, 10)
	if err != nil {
		t.Fatalf("search %q: %v", term, err)
	}
	var ids []string
	for _, s := range found {
		ids = append(ids, s.ID)
	}
	return ids
}

// The OF- number, the email, tracking and invoice numbers and a state's
// event ids are found from the in-memory table, also after a restart (the table is
// filled from the summaries), and only while the order has them.
func TestSearchByTermsKeptInMemory(t *testing.T) {
	dir := t.TempDir()
	ix := testIndex(t, dir)
	a := order("pi_termsA000001", "a@example.com", processor.StatusCompleted, t0, 6)
	b := order("pi_termsB000002", "b@example.com", processor.StatusInProgress, t0.Add(time.Minute), 2)
	b.AppliedEvents = []string{"evt_B1", "evt_B2"}
	apply(t, ix, stateRecord(t, a, 0, 0), stateRecord(t, b, 1, 0))

	cases := map[string][]string{
		"OF-RMSA000001":       {"pi_termsA000001"}, // the OF- number
		"of-rmsa000001":       {"pi_termsA000001"}, // in any case
		"TRKpi_termsA000001":  {"pi_termsA000001"}, // tracking number
		"INVpi_termsA000001":  {"pi_termsA000001"}, // invoice number
		"evt_pi_termsA000001": {"pi_termsA000001"}, // an event id of the state
		"evt_B2":              {"pi_termsB000002"},
		"trkpi_termsa000001":  nil, // a tracking number is matched exactly
		"TRKpi_termsB000002":  nil, // b has not shipped
		"OF-RMSA00000":        nil, // numbers only whole
		"INVpi_termsA0000011": nil,
		"evt_B3":              nil,
		"pi_termsB000002":     {"pi_termsB000002"}, // the id is still a key
		"b@example.com":       {"pi_termsB000002"},
		"B@Example.COM":       {"pi_termsB000002"}, // an email in any case
		"b@example.co":        nil,                 // and only whole
		integrations.OrderNumber("pi_termsB000002"): {"pi_termsB000002"},
	}
	check := func(when string) {
		t.Helper()
		for term, want := range cases {
			if got := searchIDs(t, ix, term); !slices.Equal(got, want) {
				t.Errorf("%s: search %q = %v, want %v", when, term, got, want)
			}
		}
	}
	check("after the catch-up")
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	ix = testIndex(t, dir)
	defer func() { ix.Close() }()
	if n := ix.terms.size(); n != 9 {
		t.Errorf("terms after the restart: %d, want 9 (a: number, email, tracking, invoice, event; b: number, email, two events)", n)
	}
	check("after a restart")

	// b ships with one tracking number, then another (a new label).
	b2 := order("pi_termsB000002", "b@example.com", processor.StatusCompleted, t0.Add(time.Minute), 6)
	b2.AppliedEvents = b.AppliedEvents
	b3 := order("pi_termsB000002", "b@example.com", processor.StatusCompleted, t0.Add(time.Minute), 6)
	b3.AppliedEvents = b.AppliedEvents
	b3.Step(processor.StepShipping).Result, _ = json.Marshal(integrations.Shipment{ShipmentID: "sh2", TrackingNumber: "TRK-NEW-2"})
	apply(t, ix, stateRecord(t, b2, 1, 1))
	if got := searchIDs(t, ix, "TRKpi_termsB000002"); !slices.Equal(got, []string{"pi_termsB000002"}) {
		t.Errorf("after shipping: %v", got)
	}
	apply(t, ix, stateRecord(t, b3, 1, 2))
	if got := searchIDs(t, ix, "TRKpi_termsB000002"); got != nil {
		t.Errorf("the old tracking number after a new label: %v", got)
	}
	if got := searchIDs(t, ix, "TRK-NEW-2"); !slices.Equal(got, []string{"pi_termsB000002"}) {
		t.Errorf("the new tracking number: %v", got)
	}

	// An erased order (a tombstone) is found by none of its terms.
	sa, err := ix.Get("pi_termsA000001")
	if err != nil {
		t.Fatal(err)
	}
	aKey := iKey(sa.Seq)
	if v, _ := ix.get(aKey); string(v) != "pi_termsA000001" {
		t.Fatalf("i key of the order before its tombstone: %q", v)
	}
	apply(t, ix, &kgo.Record{Topic: names.State, Partition: 0, Offset: 1, Key: []byte("pi_termsA000001")})
	for _, term := range []string{"OF-RMSA000001", "a@example.com", "TRKpi_termsA000001", "INVpi_termsA000001", "evt_pi_termsA000001"} {
		if got := searchIDs(t, ix, term); got != nil {
			t.Errorf("after the tombstone: search %q = %v", term, got)
		}
	}
	if v, _ := ix.get(aKey); v != nil {
		t.Error("the erased order's i key is kept")
	}
	if got := searchIDs(t, ix, "evt_B1"); !slices.Equal(got, []string{"pi_termsB000002"}) {
		t.Errorf("the other order after the tombstone: %v", got)
	}
}

// A term's entry may name an order that does not hold it (16 bits of its
// hash shared by chance): every candidate is checked against its summary.
func TestSearchTermsHashShared(t *testing.T) {
	ix := testIndex(t, t.TempDir())
	defer ix.Close()
	first, second := "pi_hash00000000", "pi_hash00000001"
	var recs []*kgo.Record
	for i, id := range []string{first, second} {
		recs = append(recs, stateRecord(t, order(id, "h@example.com", processor.StatusCompleted, t0.Add(time.Duration(i)*time.Minute), 6), int32(i), 0))
	}
	apply(t, ix, recs...)
	s1, err := ix.Get(first)
	if err != nil {
		t.Fatal(err)
	}
	// Entries of the second order's terms that name the first, as a
	// shared hash would.
	s2, err := ix.Get(second)
	if err != nil {
		t.Fatal(err)
	}
	fake := *s2
	fake.Seq = s1.Seq
	ix.terms.add(nil, &fake)
	for _, id := range []string{first, second} {
		for _, term := range []string{integrations.OrderNumber(id), "TRK" + id, "INV" + id, "evt_" + id} {
			if got := searchIDs(t, ix, term); !slices.Equal(got, []string{id}) {
				t.Errorf("search %q = %v, want [%s]", term, got, id)
			}
		}
	}
	if got := searchIDs(t, ix, "h@example.com"); !slices.Equal(got, []string{second, first}) {
		t.Errorf("both by email, newest first: %v", got)
	}
}

// The table is filled from the summaries at open: one that cannot be read
// makes the index be rebuilt from the topics, not open with terms missing.
func TestUnreadableSummaryRebuildsTheIndex(t *testing.T) {
	dir := t.TempDir()
	ix := testIndex(t, dir)
	apply(t, ix, stateRecord(t, order("pi_broken000001", "b@example.com", processor.StatusCompleted, t0, 6), 0, 0))
	if err := ix.db.Set(oKey("pi_broken000001"), []byte{summaryCodec, 0xff}, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	ix, rebuilt := reopenIndex(t, dir)
	defer ix.Close()
	if !strings.HasPrefix(rebuilt, `index unreadable: summary of "pi_broken000001"`) {
		t.Fatalf("rebuilt = %q", rebuilt)
	}
	wantEmptied(t, ix, "pi_broken000001")
}

// A search gives the newest matches up to its limit, however many orders
// share the term, and only whole terms: an id's beginning finds nothing,
// as over Kafka (MatchTerm).
func TestSearchNewestMatchesWhole(t *testing.T) {
	ix := testIndex(t, t.TempDir())
	defer ix.Close()
	var recs []*kgo.Record
	for i := range 60 {
		id := fmt.Sprintf("pi_shared%04d", i)
		recs = append(recs, stateRecord(t, order(id, "Many.Share@Example.com", processor.StatusCompleted, t0.Add(time.Duration(i)*time.Minute), 6), 0, int64(i)))
	}
	apply(t, ix, recs...)
	found, err := ix.Search(Query{Term: "many.share@example.com"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range found {
		got = append(got, s.ID)
	}
	if want := []string{"pi_shared0059", "pi_shared0058", "pi_shared0057", "pi_shared0056", "pi_shared0055"}; !slices.Equal(got, want) {
		t.Errorf("the newest 5 of 60: %v, want %v", got, want)
	}
	// Filtered, then cut: the limit counts what the filter keeps.
	found, err = ix.Search(Query{Term: "MANY.SHARE@EXAMPLE.COM", Until: t0.Add(10 * time.Minute)}, 3)
	if err != nil || len(found) != 3 || found[0].ID != "pi_shared0009" || found[2].ID != "pi_shared0007" {
		t.Errorf("until the 10th minute, 3: %+v %v", found, err)
	}
	for _, term := range []string{"pi_shared", "pi_shared005", "Many.Share@Example", "many.share@"} {
		if got := searchIDs(t, ix, term); got != nil {
			t.Errorf("search %q (a beginning) = %v, want none", term, got)
		}
	}
}

// Emails and OF- numbers are found in any case, as strings.EqualFold has
// it, beyond ASCII too: Greek final sigma, the Kelvin sign, the long s.
func TestSearchFoldsCaseAsEqualFold(t *testing.T) {
	ix := testIndex(t, t.TempDir())
	defer ix.Close()
	greek := order("pi_fold00000001", "ΟΔΥΣΣΕΥΣ@example.gr", processor.StatusCompleted, t0, 6)
	kelvin := order("pi_fold00000002", "kate@example.com", processor.StatusCompleted, t0.Add(time.Minute), 6)
	apply(t, ix, stateRecord(t, greek, 0, 0), stateRecord(t, kelvin, 0, 1))
	for term, want := range map[string]string{
		"οδυσσευς@example.gr":   "pi_fold00000001", // final sigma, as written in lower case
		"οδυσσευσ@example.gr":   "pi_fold00000001",
		"ΟΔΥΣΣΕΥΣ@EXAMPLE.GR":   "pi_fold00000001",
		"\u212Aate@example.com": "pi_fold00000002", // the Kelvin sign
		"KATE@EXAMPLE.COM":      "pi_fold00000002",
		"kate@example.\u017Fe":  "", // long s is s: another address
	} {
		got := searchIDs(t, ix, term)
		if want == "" && got != nil || want != "" && !slices.Equal(got, []string{want}) {
			t.Errorf("search %q = %v, want %q", term, got, want)
		}
		for _, s := range []*processor.State{greek, kelvin} {
			sum := Summarize(s)
			if MatchTerm(term, &sum) != (sum.ID == want) {
				t.Errorf("MatchTerm(%q, %s) disagrees with the index", term, sum.ID)
			}
		}
	}
}

// A term as long as the longest email is searched; a longer one than
// MaxTerm is refused with the reason.
func TestSearchTermLength(t *testing.T) {
	email := strings.Repeat("b", 64) + "@" + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 57) + ".com"
	if len(email) != 254 {
		t.Fatalf("email of %d characters", len(email))
	}
	if err := (Query{Term: email}).Validate(); err != nil {
		t.Errorf("a 254-character email: %v", err)
	}
	err := (Query{Term: strings.Repeat("x", 1025)}).Validate()
	if err == nil || err.Error() != "bad filter: search term longer than 1024 bytes" {
		t.Errorf("1,025 bytes: %v", err)
	}
}
