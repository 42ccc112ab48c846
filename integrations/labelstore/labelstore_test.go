package labelstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestDirPutWritesAndReturnsFileURL(t *testing.T) {
	d, err := NewDir(filepath.Join(t.TempDir(), "labels"))
	if err != nil {
		t.Fatal(err)
	}
	pdf := []byte("%PDF-1.4 label")
	loc, err := d.Put(context.Background(), "pi_3Abc", "label-00370.pdf", pdf)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil || u.Scheme != "file" {
		t.Fatalf("location %q is not a file URL (%v)", loc, err)
	}
	want := filepath.Join(d.Root(), "pi_3Abc", "label-00370.pdf")
	if filepath.FromSlash(u.Path) != want {
		t.Fatalf("path = %q, want %q", u.Path, want)
	}
	got, err := os.ReadFile(want)
	if err != nil || !bytes.Equal(got, pdf) {
		t.Fatalf("file content = %q, %v", got, err)
	}
	// Overwrite replaces the content and leaves no temporary files.
	if _, err := d.Put(context.Background(), "pi_3Abc", "label-00370.pdf", []byte("%PDF-2")); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(want)
	if string(got) != "%PDF-2" {
		t.Fatalf("after overwrite = %q", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(want))
	if len(entries) != 1 {
		t.Fatalf("folder holds %d entries, want 1 (temporary file left behind?)", len(entries))
	}
}

func TestSafeName(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{in: "pi_3NxYz", want: "pi_3NxYz"},
		{in: "label-1.pdf", want: "label-1.pdf"},
		{in: "../../etc/passwd", want: "_.._etc_passwd"},
		{in: "a/b\\c d", want: "a_b_c_d"},
		{in: ".hidden", want: "hidden"},
		{in: "Åsa.pdf", want: "_sa.pdf"},
		{in: "..", err: true},
		{in: "", err: true},
		{in: "///", err: true},
		{in: strings.Repeat("x", 300), want: strings.Repeat("x", 128)},
	}
	for _, tt := range tests {
		got, err := SafeName(tt.in)
		if tt.err {
			if !errors.Is(err, ErrInvalidName) {
				t.Errorf("SafeName(%q) err = %v, want ErrInvalidName", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("SafeName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestDirPutStaysInsideRoot(t *testing.T) {
	root := t.TempDir()
	d, err := NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := d.Put(context.Background(), "../outside", "../../x.pdf", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(loc)
	rel, err := filepath.Rel(root, filepath.FromSlash(u.Path))
	if err != nil || strings.HasPrefix(rel, "..") {
		t.Fatalf("label written outside root: %s", u.Path)
	}
}

func TestDirPutErrors(t *testing.T) {
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Put(ctx, "pi_1", "a.pdf", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: err = %v", err)
	}
	if _, err := d.Put(context.Background(), "", "a.pdf", nil); !errors.Is(err, ErrInvalidName) {
		t.Errorf("empty order id: err = %v", err)
	}
	if _, err := NewDir(""); err == nil {
		t.Error("NewDir(\"\") succeeded")
	}
}

// Concurrent writers of the same label never leave a torn file: the result is
// exactly one writer's content.
func TestDirPutConcurrentIsAtomic(t *testing.T) {
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	contents := make([][]byte, 8)
	for i := range contents {
		contents[i] = bytes.Repeat([]byte(fmt.Sprint(i)), 64<<10)
		wg.Add(1)
		go func(b []byte) {
			defer wg.Done()
			if _, err := d.Put(context.Background(), "pi_1", "l.pdf", b); err != nil {
				t.Error(err)
			}
		}(contents[i])
	}
	wg.Wait()
	got, err := os.ReadFile(filepath.Join(d.Root(), "pi_1", "l.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range contents {
		if bytes.Equal(got, c) {
			return
		}
	}
	t.Fatal("label content is a mix of writers")
}

// Labels carry names and addresses: only their owner may read them.
func TestLabelFileMode(t *testing.T) {
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	loc, err := d.Put(context.Background(), "pi_mode", "label.pdf", []byte("%PDF-1.4"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(u.Path)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Mode().Perm(); m != 0o600 {
		t.Errorf("label mode %v, want 0600", m)
	}
}
