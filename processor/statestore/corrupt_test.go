package statestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/orderflow/orderflow/test/testenv"
)

// putTable puts 2,000 states from pi_<from> and flushes them to a table
// of many blocks.
func putTable(t *testing.T, s *Store, from int) {
	t.Helper()
	for i := from; i < from+2000; i++ {
		if err := s.Put(fmt.Sprintf("pi_%04d", i), []byte(`{"v":"a state of some length, so that the table has many blocks"}`), int64(i), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.writePending(); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptTableBlockIsRebuiltNotAPanic: a table whose block fails its
// checksum is a corrupt store, rebuilt at open (the reason says so), never
// a panic at every start; and a corrupt block met by a read while running
// is an ErrCorrupt error, not a panic.
func TestCorruptTableBlockIsRebuiltNotAPanic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	fill := func() {
		s, _, err := Open(dir, testID, Options{})
		if err != nil {
			t.Fatal(err)
		}
		putTable(t, s, 0)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	fill()
	if testenv.CorruptTables(t, dir, func(int64) int64 { return 100 }) == 0 {
		t.Fatal("no table to corrupt")
	}
	s, rebuilt, err := Open(dir, testID, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rebuilt, "corrupt:") {
		t.Errorf("rebuilt = %q, want corrupt", rebuilt)
	}
	if _, _, ok, err := s.Get("pi_0001"); ok || err != nil {
		t.Errorf("rebuilt store: Get = %v, %v; want nothing", ok, err)
	}
	s.Close()

	// A read while running: the store opens (its identity and checkpoint
	// are in the table's first block), then a block of states in the
	// middle of the table is corrupted.
	os.RemoveAll(dir)
	fill()
	s, rebuilt, err = Open(dir, testID, Options{})
	if err != nil || rebuilt != "" {
		t.Fatalf("reopen: %q %v", rebuilt, err)
	}
	testenv.CorruptTables(t, dir, func(size int64) int64 { return size / 2 })
	var readErr error
	for i := range 2000 {
		if _, _, _, err := s.Get(fmt.Sprintf("pi_%04d", i)); err != nil {
			readErr = err
			break
		}
	}
	if !errors.Is(readErr, ErrCorrupt) {
		t.Errorf("read error %v, want ErrCorrupt", readErr)
	}
	s.Close()
}

// TestCorruptionFoundByACompaction: corrupt data met by a compaction while
// the store runs (not by a read) is reported once to OnCorrupt however
// often Pebble retries, and marks the store for a rebuild at its next open.
func TestCorruptionFoundByACompaction(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	var calls atomic.Int32
	reported := make(chan error, 10)
	opts := Options{OnCorrupt: func(err error) { calls.Add(1); reported <- err }}
	s, _, err := Open(dir, testID, opts)
	if err != nil {
		t.Fatal(err)
	}
	putTable(t, s, 0)
	// The first table, with the states' middle blocks, goes bad on disk.
	if testenv.CorruptTables(t, dir, func(size int64) int64 { return size / 2 }) != 1 {
		t.Fatal("want one table to corrupt")
	}
	putTable(t, s, 1000) // a second table overlapping it: compacting them reads both
	cerr := s.db.Compact(context.Background(), []byte{statePrefix}, []byte{statePrefix + 1}, false)
	if cerr == nil {
		t.Fatal("the compaction read no corrupt block")
	}
	select {
	case err := <-reported:
		if !errors.Is(err, pebble.ErrCorruption) && !strings.Contains(err.Error(), "checksum") {
			t.Errorf("reported %v, want the corruption", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnCorrupt not called")
	}
	// Retried compactions report nothing more.
	_ = s.db.Compact(context.Background(), []byte{statePrefix}, []byte{statePrefix + 1}, false)
	if n := calls.Load(); n != 1 {
		t.Errorf("OnCorrupt called %d times, want 1", n)
	}
	s.Close()
	s, rebuilt, err := Open(dir, testID, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rebuilt == "" {
		t.Error("the store was trusted at its next open, want it rebuilt")
	}
}
