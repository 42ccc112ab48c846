package statestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

var testID = Identity{ClusterID: "c1", Topic: "orders.state", TopicID: "t1", Partition: 3}

// The checkpoint passes only offsets written locally: a write acknowledged
// at offset 11 but not yet stored keeps it at 11 whatever came after.
func TestCheckpointWaitsForEveryLocalWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	s, rebuilt, err := Open(dir, testID, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rebuilt != "no local store" {
		t.Errorf("rebuilt = %q, want %q", rebuilt, "no local store")
	}
	if err := s.Load().Finish(10); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		key string
		off int64
	}{{"pi_a", 10}, {"pi_c", 12}, {"pi_d", 13}} {
		if err := s.Put(w.key, []byte(`{"v":1}`), w.off, false); err != nil {
			t.Fatal(err)
		}
	}
	if ck, _ := s.Checkpoint(); ck != 11 {
		t.Errorf("checkpoint = %d, want 11 (offset 11 not written locally)", ck)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, rebuilt, err = Open(dir, testID, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ck, _ := s.Checkpoint(); ck != 11 || rebuilt != "" {
		t.Errorf("after reopen: checkpoint %d rebuilt %q, want 11 and trusted", ck, rebuilt)
	}
	if err := s.Put("pi_b", []byte(`{"v":1}`), 11, false); err != nil {
		t.Fatal(err)
	}
	if ck, _ := s.Checkpoint(); ck != 12 {
		t.Errorf("checkpoint = %d, want 12 (12 and 13 were written before the reopen, but the reopen forgot them)", ck)
	}
	val, off, ok, err := s.Get("pi_c")
	if err != nil || !ok || off != 12 || string(val) != `{"v":1}` {
		t.Errorf("Get = %q %d %v %v", val, off, ok, err)
	}
	s.Close()
}

// A replay keeps the last record of each key, tombstones remove, and runs
// larger than runBytes are ingested as tables.
func TestLoadLastRecordWins(t *testing.T) {
	s, _, err := Open(filepath.Join(t.TempDir(), "s"), testID, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := s.Load()
	big := make([]byte, 1000)
	n := 3 * runBytes / 1000
	for i := 0; i < n; i++ {
		if err := l.Add([]byte(fmt.Sprintf("pi_%06d", i%5000)), append([]byte(fmt.Sprint(i, ":")), big...), int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Add([]byte("pi_000007"), nil, int64(n)); err != nil {
		t.Fatal(err)
	}
	if err := l.Finish(int64(n + 1)); err != nil {
		t.Fatal(err)
	}
	if ck, _ := s.Checkpoint(); ck != int64(n+1) {
		t.Errorf("checkpoint = %d, want %d", ck, n+1)
	}
	last := n - 1 - (n-1)%5000 + 3 // the last i with i%5000 == 3
	val, off, ok, err := s.Get("pi_000003")
	if err != nil || !ok || off != int64(last) || string(val[:len(fmt.Sprint(last, ":"))]) != fmt.Sprint(last, ":") {
		t.Errorf("pi_000003 = offset %d ok %v err %v, want offset %d", off, ok, err, last)
	}
	if _, _, ok, _ := s.Get("pi_000007"); ok {
		t.Error("pi_000007 survived its tombstone")
	}
	s.CountInBackground()
}

// A store of another identity, or whose files are garbage, is rebuilt.
func TestForeignAndCorruptStoresAreRebuilt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	s, _, err := Open(dir, testID, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Put("pi_a", []byte(`{"v":1}`), 0, false)
	s.Close()
	other := testID
	other.TopicID = "t2"
	s, rebuilt, err := Open(dir, other, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rebuilt == "" || rebuilt[:8] != "foreign:" {
		t.Errorf("rebuilt = %q, want foreign", rebuilt)
	}
	if _, _, ok, _ := s.Get("pi_a"); ok {
		t.Error("the foreign store's state survived")
	}
	s.Close()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != markerFile {
			_ = os.WriteFile(filepath.Join(dir, e.Name()), []byte("not pebble"), 0o600)
		}
	}
	s, rebuilt, err = Open(dir, other, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(rebuilt) < 8 || rebuilt[:8] != "corrupt:" {
		t.Errorf("rebuilt = %q, want corrupt", rebuilt)
	}
}

// Runs in key order become tables ingested together; a later small run
// (a batch) still wins over them, and the checkpoint covers everything.
func TestLoadSortedRunsThenBatch(t *testing.T) {
	s, _, err := Open(filepath.Join(t.TempDir(), "s"), testID, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := s.Load()
	big := make([]byte, 1000)
	n := 3 * runBytes / 1000
	for i := 0; i < n; i++ {
		if err := l.Add([]byte(fmt.Sprintf("pi_%07d", i)), append([]byte("a:"), big...), int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	// The tail: pi_0000005 changes, pi_0000006 is erased.
	if err := l.Add([]byte("pi_0000005"), []byte("b"), int64(n)); err != nil {
		t.Fatal(err)
	}
	if err := l.Add([]byte("pi_0000006"), nil, int64(n+1)); err != nil {
		t.Fatal(err)
	}
	if err := l.Finish(int64(n + 2)); err != nil {
		t.Fatal(err)
	}
	if ck, _ := s.Checkpoint(); ck != int64(n+2) {
		t.Errorf("checkpoint = %d, want %d", ck, n+2)
	}
	if val, off, ok, err := s.Get("pi_0000005"); err != nil || !ok || off != int64(n) || string(val) != "b" {
		t.Errorf("pi_0000005 = %q offset %d ok %v err %v, want \"b\" at %d", val, off, ok, err, n)
	}
	if _, _, ok, _ := s.Get("pi_0000006"); ok {
		t.Error("pi_0000006 survived its tombstone")
	}
	last := fmt.Sprintf("pi_%07d", n-1)
	if val, off, ok, err := s.Get(last); err != nil || !ok || off != int64(n-1) || string(val[:2]) != "a:" {
		t.Errorf("%s = offset %d ok %v err %v, want offset %d", last, off, ok, err, n-1)
	}
	entries, _ := os.ReadDir(s.Dir())
	for _, e := range entries {
		if len(e.Name()) > 5 && e.Name()[:5] == "load-" {
			t.Errorf("the load left its table file %s", e.Name())
		}
	}
}

// Puts are grouped: seen at once by Get and Has, written to Pebble with
// the checkpoint when the window ends, a key put twice written once.
func TestWriteBehindGroup(t *testing.T) {
	s, _, err := Open(filepath.Join(t.TempDir(), "s"), testID, Options{WriteDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Load().Finish(5); err != nil {
		t.Fatal(err)
	}
	_ = s.Put("pi_a", []byte(`{"n":1}`), 5, false)
	_ = s.Put("pi_b", []byte(`{"n":1}`), 6, false)
	_ = s.Put("pi_a", []byte(`{"n":2}`), 7, true)
	_ = s.Put("pi_b", nil, 8, true)
	if val, off, ok, err := s.Get("pi_a"); err != nil || !ok || off != 7 || string(val) != `{"n":2}` {
		t.Errorf("Get(pi_a) before the group's write = %q %d %v %v, want {\"n\":2} at 7", val, off, ok, err)
	}
	if ok, err := s.Has("pi_b"); ok || err != nil {
		t.Errorf("Has(pi_b) after its tombstone = %v %v, want false", ok, err)
	}
	// The window ends: the group is in Pebble itself.
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := s.get(stateKey("pi_a"))
		if err != nil {
			t.Fatal(err)
		}
		if v != nil {
			if string(v[headerLen:]) != `{"n":2}` {
				t.Errorf("pi_a in Pebble = %q, want the later value", v[headerLen:])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the group was not written within 10 s of a 20 ms window")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if v, _ := s.get(stateKey("pi_b")); v != nil {
		t.Errorf("pi_b in Pebble after its tombstone: %q", v)
	}
	ck, err := s.get(keyCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	if off, _ := decodeCheckpoint(ck); off != 9 {
		t.Errorf("checkpoint in Pebble = %d, want 9 (every offset of the group)", off)
	}
}

// A group reaching WriteBytes is written at once.
func TestWriteBehindBytes(t *testing.T) {
	s, _, err := Open(filepath.Join(t.TempDir(), "s"), testID, Options{WriteDelay: time.Hour, WriteBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_ = s.Put("pi_small", []byte(`{}`), 0, false)
	if v, _ := s.get(stateKey("pi_small")); v != nil {
		t.Fatal("a group under WriteBytes was written before its window ended")
	}
	if err := s.Put("pi_big", make([]byte, 120), 1, false); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"pi_small", "pi_big"} {
		if v, _ := s.get(stateKey(k)); v == nil {
			t.Errorf("%s not in Pebble once the group passed WriteBytes", k)
		}
	}
}

// A crash before the group's write loses the group and the checkpoint with
// it: the next open replays it from the changelog.
func TestWriteBehindCrash(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	s, _, err := Open(dir, testID, Options{WriteDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Put("pi_a", []byte(`{"v":1}`), 0, false)
	if ck, _ := s.Checkpoint(); ck != 1 { // Checkpoint writes the group
		t.Fatalf("checkpoint = %d, want 1", ck)
	}
	_ = s.Put("pi_b", []byte(`{"v":1}`), 1, false)
	s.timer.Stop()
	if err := s.db.Close(); err != nil { // the process dies: nothing more is written
		t.Fatal(err)
	}
	s, rebuilt, err := Open(dir, testID, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ck, _ := s.Checkpoint(); ck != 1 || rebuilt != "" {
		t.Errorf("after the crash: checkpoint %d rebuilt %q, want 1 and trusted", ck, rebuilt)
	}
	if _, _, ok, _ := s.Get("pi_a"); !ok {
		t.Error("pi_a, written before the crash, is gone")
	}
	if _, _, ok, _ := s.Get("pi_b"); ok {
		t.Error("pi_b, put after the last group's write, survived the crash without its checkpoint")
	}
}

// A group whose write fails fails every later call (the processor then
// reads states from the changelog and rebuilds the store at its next
// open), and the checkpoint in Pebble does not pass the lost group.
func TestWriteBehindFailure(t *testing.T) {
	s, _, err := Open(filepath.Join(t.TempDir(), "s"), testID, Options{WriteDelay: time.Hour, WriteBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Put("pi_a", []byte(`{"v":1}`), 0, false); err != nil {
		t.Fatal(err)
	}
	if ck, _ := s.Checkpoint(); ck != 1 {
		t.Fatalf("checkpoint = %d, want 1", ck)
	}
	s.commit = func(*pebble.Batch) error { return errors.New("disk full") }
	if err := s.Put("pi_b", make([]byte, 120), 1, false); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Put of a group whose write fails: %v, want the write's error", err)
	}
	if _, _, _, err := s.Get("pi_a"); err == nil {
		t.Error("Get after a failed group write: no error")
	}
	if _, err := s.Has("pi_a"); err == nil {
		t.Error("Has after a failed group write: no error")
	}
	if err := s.Put("pi_c", []byte(`{}`), 2, false); err == nil {
		t.Error("Put after a failed group write: no error")
	}
	ck, err := s.get(keyCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	if off, _ := decodeCheckpoint(ck); off != 1 {
		t.Errorf("checkpoint in Pebble = %d after the failed group, want 1", off)
	}
}
