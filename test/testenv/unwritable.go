package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// UnwritableDir is an existing folder this test process cannot create a
// file in: a 0555 folder, or for root (whom modes do not stop) /sys. It
// skips the test where there is none.
func UnwritableDir(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		dir := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	if fi, err := os.Stat("/sys"); err != nil || !fi.IsDir() {
		t.Skip("running as root without /sys: no folder root cannot write")
	}
	if f, err := os.CreateTemp("/sys", ".probe-*"); err == nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		t.Skip("root can write /sys here")
	}
	return "/sys"
}
