package console

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/dlq"
	"github.com/orderflow/orderflow/test/testenv"
	"github.com/orderflow/orderflow/topics"
)

func TestIndexSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ix := testIndex(t, dir)
	a := order("pi_keep0000001", "k@example.com", processor.StatusInProgress, t0, 2)
	apply(t, ix, stateRecord(t, a, 0, 41), eventRecord(a.OrderID, "evt_k", "payment_intent.succeeded", 2, 7, t0),
		&kgo.Record{Topic: names.Audit, Partition: 0, Offset: 3, Value: mustAudit(t)})
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	ix, rebuilt := reopenIndex(t, dir)
	if rebuilt != "" {
		t.Fatalf("reopen: rebuilt %q", rebuilt)
	}
	defer ix.Close()
	off := ix.Offsets()
	if off[names.State][0] != 42 || off[names.Orders][2] != 8 || off[names.Audit][0] != 4 {
		t.Fatalf("checkpoints after restart = %v, want state/0 42, orders/2 8, audit/0 4", off)
	}
	if c := ix.Counts(); c[StatusWaiting] != 0 || c[string(processor.StatusInProgress)] != 1 {
		t.Fatalf("counts after restart = %v", c)
	}
	if s, err := ix.Get(a.OrderID); err != nil || s.Email != "k@example.com" || s.StatePartition != 0 || s.StateOffset != 41 {
		t.Fatalf("order after restart: %+v %v", s, err)
	}
	if recs, _ := ix.Audits(10); len(recs) != 1 || recs[0].Actor != "ops" {
		t.Fatalf("audit after restart = %+v", recs)
	}
}

func mustAudit(t *testing.T) []byte {
	b, err := topics.AuditRecord{ID: "x", At: t0, Actor: "ops", Action: topics.AuditReplay, Outcome: topics.AuditOK}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIndexOfOtherTopicsIsRebuilt(t *testing.T) {
	dir := t.TempDir()
	ix := testIndex(t, dir)
	apply(t, ix, stateRecord(t, order("pi_old0000001", "o@example.com", processor.StatusCompleted, t0, 6), 0, 0))
	ix.Close()
	// The same names, but orders.state was deleted and created again.
	ix, rebuilt, err := OpenIndex(dir, Identity{ClusterID: "c1", Topics: map[string]string{names.State: "id2"}}, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if rebuilt != "index of other topics or another cluster" {
		t.Fatalf("rebuilt = %q", rebuilt)
	}
	if _, err := ix.Get("pi_old0000001"); err != ErrNotFound || len(ix.Offsets()) != 0 {
		t.Fatalf("a foreign index was kept: %v %v", err, ix.Offsets())
	}
}

func TestIndexOfAnEarlierFormatIsRebuilt(t *testing.T) {
	dir := t.TempDir()
	ix := testIndex(t, dir)
	apply(t, ix, stateRecord(t, order("pi_old0000002", "o@example.com", processor.StatusCompleted, t0, 6), 0, 0))
	// Format 6 kept emails as keys and summaries without their number in
	// the index: this build would not find those orders by email or OF-
	// number, so it is rebuilt.
	if err := ix.db.Set(keyFormat, []byte("6"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	ix, rebuilt := reopenIndex(t, dir)
	defer ix.Close()
	if rebuilt != `index format "6", this build writes "7"` {
		t.Fatalf("rebuilt = %q", rebuilt)
	}
	wantEmptied(t, ix, "pi_old0000002")
}

func TestListNewestMergesEveryStatus(t *testing.T) {
	ix := testIndex(t, t.TempDir())
	defer ix.Close()
	// Five orders in four (status, step) prefixes, created a minute apart.
	apply(t, ix,
		stateRecord(t, order("pi_list0000001", "a@example.com", processor.StatusCompleted, t0, 6), 0, 0),
		stateRecord(t, order("pi_list0000002", "b@example.com", processor.StatusInProgress, t0.Add(time.Minute), 1), 1, 0),
		stateRecord(t, order("pi_list0000003", "c@example.com", processor.StatusCompleted, t0.Add(2*time.Minute), 6), 2, 0),
		stateRecord(t, order("pi_list0000004", "d@example.com", processor.StatusInProgress, t0.Add(3*time.Minute), 3), 3, 0),
		stateRecord(t, order("pi_list0000005", "e@example.com", processor.StatusRefunded, t0.Add(4*time.Minute), 2), 4, 0),
	)
	var got []string
	cursor := ""
	for pages := 0; pages < 5; pages++ {
		p, err := ix.List(Query{}, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Orders {
			got = append(got, s.ID)
		}
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	want := []string{"pi_list0000005", "pi_list0000004", "pi_list0000003", "pi_list0000002", "pi_list0000001"}
	if !slices.Equal(got, want) {
		t.Fatalf("newest first in pages of 2: %v, want %v", got, want)
	}
	p, err := ix.List(Query{Since: t0.Add(90 * time.Second), Until: t0.Add(210 * time.Second)}, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Orders) != 2 || p.Orders[0].ID != "pi_list0000004" || p.Orders[1].ID != "pi_list0000003" {
		t.Fatalf("since 1m30s until 3m30s: %+v", p.Orders)
	}
}

func TestIndexReplacesAndRemoves(t *testing.T) {
	ix := testIndex(t, t.TempDir())
	defer ix.Close()
	id := "pi_move0000001"
	first := order(id, "old@example.com", processor.StatusInProgress, t0, 1)
	later := order(id, "new@example.com", processor.StatusCompleted, t0, 6)
	// Two states of one order in one poll: only the last counts.
	apply(t, ix, stateRecord(t, first, 0, 0), stateRecord(t, later, 0, 1))
	search := func(term string) int {
		found, err := ix.Search(Query{Term: term}, 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(found)
	}
	if search("old@example.com") != 0 || search("new@example.com") != 1 || ix.Counts()["completed"] != 1 || ix.Counts()["in_progress"] != 0 {
		t.Fatalf("after two states: old %d new %d counts %v", search("old@example.com"), search("new@example.com"), ix.Counts())
	}
	// A tombstone (erase) removes the order and every search key of it.
	apply(t, ix, &kgo.Record{Topic: names.State, Partition: 0, Offset: 2, Key: []byte(id)})
	if search("new@example.com") != 0 || search("TRK"+id) != 0 || len(ix.Counts()) != 0 {
		t.Fatalf("after a tombstone: email %d tracking %d counts %v", search("new@example.com"), search("TRK"+id), ix.Counts())
	}
	if _, err := ix.Get(id); err != ErrNotFound {
		t.Fatalf("Get after tombstone: %v", err)
	}
	page, err := ix.List(Query{}, "", 10)
	if err != nil || len(page.Orders) != 0 {
		t.Fatalf("list after tombstone: %v %v", page.Orders, err)
	}
}

func TestLetterStatusInIndex(t *testing.T) {
	ix := testIndex(t, t.TempDir())
	defer ix.Close()
	id := "pi_dl00000001"
	dead := order(id, "d@example.com", processor.StatusDeadLettered, t0, 3)
	apply(t, ix, stateRecord(t, dead, 1, 0), letterRecord(id, "shipping", "exhausted", 1, 5, t0))
	status := func() string {
		ls, _, err := ix.Letters(dlq.Filter{}, nil, 0)
		if err != nil || len(ls) != 1 {
			t.Fatalf("letters = %v %v", ls, err)
		}
		return ls[0].Status
	}
	if s := status(); s != dlq.LetterOpen {
		t.Fatalf("new dead letter: %s", s)
	}
	replayed := order(id, "d@example.com", processor.StatusInProgress, t0, 3)
	replayed.Replays = []string{"1/5"}
	replayed.UpdatedAt = t0.Add(time.Hour)
	apply(t, ix, stateRecord(t, replayed, 1, 1))
	if s := status(); s != dlq.LetterReplayed {
		t.Fatalf("after the replay: %s", s)
	}
	done := order(id, "d@example.com", processor.StatusCompleted, t0, 6)
	done.Replays = []string{"1/5"}
	apply(t, ix, stateRecord(t, done, 1, 2))
	if s := status(); s != dlq.LetterResolved {
		t.Fatalf("after completion: %s", s)
	}
	if n, _ := ix.OpenLetters(); n != 0 {
		t.Fatalf("open letters = %d", n)
	}
}

func TestQueryMatchWithoutIndex(t *testing.T) {
	s := Summarize(order("pi_abc0000001", "Ab@Example.com", processor.StatusCompleted, t0, 6))
	for term, want := range map[string]bool{
		"pi_abc0000001": true, "OF-ABC0000001": true, "of-abc0000001": true, "ab@example.com": true,
		"TRKpi_abc0000001": true, "INVpi_abc0000001": true, "evt_pi_abc0000001": true, "pi_abc": false, "": true,
	} {
		if got := MatchTerm(term, &s); got != want {
			t.Errorf("MatchTerm(%q) = %v, want %v", term, got, want)
		}
	}
	if !(Query{Statuses: []string{"completed"}}).Match(&s) || (Query{Statuses: []string{"waiting"}}).Match(&s) {
		t.Error("status match")
	}
}

// A status filter selects what an operator means by it: dead_lettered
// also the parked orders (dead-lettered, with later events parked behind
// them: most Checkout orders, whose second event comes after the failure)
// and in_progress also the waiting ones; parked and waiting select only
// themselves. The index's lists and the match without an index agree.
func TestStatusFilterIncludesSubStates(t *testing.T) {
	ix := testIndex(t, t.TempDir())
	defer ix.Close()
	dead := order("pi_flt0000001", "a@example.com", processor.StatusDeadLettered, t0, 3)
	parked := order("pi_flt0000002", "b@example.com", processor.StatusParked, t0.Add(time.Minute), 3)
	running := order("pi_flt0000003", "c@example.com", processor.StatusInProgress, t0.Add(2*time.Minute), 2)
	waiting := order("pi_flt0000004", "d@example.com", processor.StatusInProgress, t0.Add(3*time.Minute), 3)
	waiting.Step(processor.StepShipping).Attempts = 2
	done := order("pi_flt0000005", "e@example.com", processor.StatusCompleted, t0.Add(4*time.Minute), 6)
	done.Flags = []string{processor.FlagPossibleDuplicatePrefix + processor.StepShipping}
	at := t0.Add(5 * time.Minute)
	erased := &processor.State{Version: 1, OrderID: "pi_flt0000006", Status: processor.StatusErased, ErasedAt: &at, CreatedAt: at, UpdatedAt: at}
	// refunded also lists the refunded orders that went on (flagged), each
	// once: one with both refund flags too, one refunded in part and then
	// in full before shipping.
	stopped := order("pi_flt0000007", "f@example.com", processor.StatusRefunded, t0.Add(6*time.Minute), 1)
	stopped.Flags = []string{processor.FlagPartiallyRefunded}
	returned := order("pi_flt0000008", "g@example.com", processor.StatusCompleted, t0.Add(7*time.Minute), 6)
	returned.Flags = []string{processor.FlagPartiallyRefunded, processor.FlagRefundedAfterShipping}
	credited := order("pi_flt0000009", "h@example.com", processor.StatusCompleted, t0.Add(8*time.Minute), 6)
	credited.Flags = []string{processor.FlagPartiallyRefunded}
	all := []*processor.State{dead, parked, running, waiting, done, erased, stopped, returned, credited}
	for i, st := range all {
		apply(t, ix, stateRecord(t, st, 0, int64(i)))
	}
	for status, want := range map[string][]string{
		"dead_lettered":      {"pi_flt0000002", "pi_flt0000001"},
		"parked":             {"pi_flt0000002"},
		"in_progress":        {"pi_flt0000004", "pi_flt0000003"},
		"waiting":            {"pi_flt0000004"},
		"completed":          {"pi_flt0000009", "pi_flt0000008", "pi_flt0000005"},
		"possible_duplicate": {"pi_flt0000005"},
		"erased":             {"pi_flt0000006"},
		"refunded":           {"pi_flt0000009", "pi_flt0000008", "pi_flt0000007"},
	} {
		q := Query{Statuses: []string{status}}
		p, err := ix.List(q, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range p.Orders {
			got = append(got, s.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("index list --status %s = %v, want %v", status, got, want)
		}
		got = nil
		for i := len(all) - 1; i >= 0; i-- {
			if s := Summarize(all[i]); q.Match(&s) {
				got = append(got, s.ID)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("match without the index, --status %s = %v, want %v", status, got, want)
		}
		// The overview's count of the filter is what it lists.
		if n := StatusCount(ix.Counts(), status); n != int64(len(want)) {
			t.Errorf("count of --status %s = %d, want %d (counts %v)", status, n, len(want), ix.Counts())
		}
	}
	// The flag removed, the count follows.
	done.Flags = nil
	apply(t, ix, stateRecord(t, done, 0, 9))
	if n := ix.Counts()[FilterPossibleDuplicate]; n != 0 {
		t.Errorf("possible duplicates after the flag went: %d, want 0", n)
	}
	// One flagged order refunded in full after all (its count moves from
	// the flagged ones to refunded), another's flags gone.
	credited.Status = processor.StatusRefunded
	returned.Flags = nil
	apply(t, ix, stateRecord(t, credited, 0, 10), stateRecord(t, returned, 0, 11))
	if n := StatusCount(ix.Counts(), "refunded"); n != 2 {
		t.Errorf("count of --status refunded = %d, want 2 (counts %v)", n, ix.Counts())
	}
	p, err := ix.List(Query{Statuses: []string{"refunded"}}, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Orders) != 2 || p.Orders[0].ID != "pi_flt0000009" || p.Orders[1].ID != "pi_flt0000007" {
		t.Errorf("refunded after the changes: %+v", p.Orders)
	}
}

// TestCorruptIndexIsRebuiltNotAPanic: an index whose table fails its
// checksum (a bad disk) is rebuilt at open, never a panic at every start.
func TestCorruptIndexIsRebuiltNotAPanic(t *testing.T) {
	dir := t.TempDir()
	ix := testIndex(t, dir)
	apply(t, ix, stateRecord(t, order("pi_bad0000001", "b@example.com", processor.StatusCompleted, t0, 6), 0, 0))
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	if testenv.CorruptTables(t, dir, func(int64) int64 { return 20 }) == 0 {
		t.Fatal("no table to corrupt")
	}
	ix, rebuilt := reopenIndex(t, dir)
	defer ix.Close()
	if !strings.HasPrefix(rebuilt, "index unreadable") {
		t.Fatalf("rebuilt = %q, want index unreadable", rebuilt)
	}
	wantEmptied(t, ix, "pi_bad0000001")
}

// TestIndexInUseIsRefused: a second console on an index folder in use is
// refused with the reason; the first one's index is left as it was.
func TestIndexInUseIsRefused(t *testing.T) {
	dir := t.TempDir()
	ix := testIndex(t, dir)
	defer ix.Close()
	apply(t, ix, stateRecord(t, order("pi_used0000001", "u@example.com", processor.StatusCompleted, t0, 6), 0, 0))
	_, _, err := OpenIndex(dir, Identity{ClusterID: "c1", Topics: map[string]string{names.State: "id1"}}, 8<<20)
	want := "console: index folder " + dir + " is in use by another console (give each its own --index-dir)"
	if err == nil || err.Error() != want {
		t.Fatalf("second open: %v, want %q", err, want)
	}
	if s, err := ix.Get("pi_used0000001"); err != nil || s.Email != "u@example.com" {
		t.Fatalf("the first console's index after the refusal: %+v %v", s, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "LOCK")); err != nil {
		t.Errorf("the first console's lock is gone: %v", err)
	}
}

// TestIndexFolderUnderAFileSaysMkdir: a --index-dir that cannot be created
// is reported as such, not as an index that could not be cleared.
func TestIndexFolderUnderAFileSaysMkdir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "afile")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := OpenIndex(filepath.Join(file, "idx"), Identity{ClusterID: "c1"}, 8<<20)
	want := "console: index folder: mkdir " + file + ": not a directory"
	if err == nil || err.Error() != want {
		t.Fatalf("open: %v, want %q", err, want)
	}
}

// TestCorruptionFoundWhileRunning: corrupt data a compaction meets while
// the console runs is reported once on Corrupt (Pebble retries the
// compaction for ever), and the next open rebuilds the index.
func TestCorruptionFoundWhileRunning(t *testing.T) {
	dir := t.TempDir()
	ix := testIndex(t, dir)
	put := func(suffix string) {
		var recs []*kgo.Record
		for i := range 2000 {
			id := fmt.Sprintf("pi_cor%08d%s", i, suffix)
			recs = append(recs, stateRecord(t, order(id, id+"@example.com", processor.StatusCompleted, t0.Add(time.Duration(i)*time.Second), 6), 0, int64(i)))
		}
		apply(t, ix, recs...)
		if err := ix.db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	put("")
	// The tables go bad in their middle, where the summaries are.
	if testenv.CorruptTables(t, dir, func(size int64) int64 { return size / 2 }) == 0 {
		t.Fatal("no table to corrupt")
	}
	put("b") // new orders between those: compacting the two tables reads both
	if err := ix.db.Compact(context.Background(), []byte{'o'}, []byte{'o' + 1}, false); err == nil {
		t.Fatal("the compaction read no corrupt block")
	}
	select {
	case err := <-ix.Corrupt():
		if !errors.Is(err, pebble.ErrCorruption) && !strings.Contains(err.Error(), "checksum") {
			t.Errorf("reported %v, want the corruption", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the corruption was not reported")
	}
	_ = ix.db.Compact(context.Background(), []byte{'o'}, []byte{'o' + 1}, false)
	select {
	case err := <-ix.Corrupt():
		t.Errorf("reported again: %v", err)
	default:
	}
	if _, err := os.Stat(filepath.Join(dir, corruptMarker)); err != nil {
		t.Fatalf("not marked for a rebuild: %v", err)
	}
	ix.Close()
	ix, rebuilt := reopenIndex(t, dir)
	defer ix.Close()
	if rebuilt != "index found corrupt while the console ran" {
		t.Fatalf("rebuilt = %q", rebuilt)
	}
	wantEmptied(t, ix, "pi_cor00000001")
	if _, err := os.Stat(filepath.Join(dir, corruptMarker)); !os.IsNotExist(err) {
		t.Errorf("the rebuilt index is still marked: %v", err)
	}
}
