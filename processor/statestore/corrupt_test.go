package statestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corruptTables writes garbage into the middle of every table file of the
// store in dir, as a bad disk would: the files keep their size, so only
// the blocks' checksums tell.
func corruptTables(t *testing.T, dir string, at func(size int64) int64) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".sst") {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, e.Name()), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		if _, err := f.WriteAt([]byte("XXXXXXXXXXXXXXXXXXXX"), at(fi.Size())); err != nil {
			t.Fatal(err)
		}
		f.Close()
		n++
	}
	return n
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
		for i := range 2000 {
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
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	fill()
	if corruptTables(t, dir, func(int64) int64 { return 100 }) == 0 {
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
	corruptTables(t, dir, func(size int64) int64 { return size / 2 })
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
