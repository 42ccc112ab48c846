package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CorruptTables overwrites 20 bytes of every Pebble table (.sst) in dir at
// the offset at gives for the table's size, as a bad disk would, and
// returns how many it spoiled.
func CorruptTables(t testing.TB, dir string, at func(size int64) int64) int {
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
		fi, err := f.Stat()
		if err == nil {
			_, err = f.WriteAt([]byte("XXXXXXXXXXXXXXXXXXXX"), at(fi.Size()))
		}
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}
