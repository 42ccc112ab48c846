// Package labelstore keeps shipping-label PDFs. A Store puts one label for an
// order and returns where it lives; the processor records that location in
// the order's state and the confirmation email can link to it.
//
// Dir, the default, writes to one local folder, one file per label named
// "<order>_<name>" directly in it (no folder per order). The Store interface
// is shaped for an S3-compatible object store as well: Put takes a context (a
// network call), the order id and a file name (which map to an object key
// "<order>/<name>"), and returns a location string ("s3://bucket/key" or an
// https URL for such a store, "file://..." for Dir), so a bucket-backed
// implementation drops in without touching callers.
package labelstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Store keeps label PDFs.
type Store interface {
	// Put stores pdf as name under orderID and returns its location. Putting
	// the same orderID and name again replaces the earlier label. A reader
	// never sees a partly written label.
	Put(ctx context.Context, orderID, name string, pdf []byte) (location string, err error)
}

// Finder is a Store that can say where a label it stored is: after a crash
// between storing a label and recording the shipment, the shipment found
// by look-up gets its label back.
type Finder interface {
	// Find returns the location of the label stored as name under orderID,
	// and false when there is none.
	Find(orderID, name string) (location string, ok bool)
}

// maxNameLen bounds one path element; most file systems allow 255 bytes.
const maxNameLen = 128

// ErrInvalidName is returned when an order id or file name is empty or
// reduces to nothing usable after sanitising.
var ErrInvalidName = errors.New("labelstore: invalid name")

// maxFileLen bounds the name of one label file in Dir's folder; most file
// systems allow 255 bytes.
const maxFileLen = 255

// Dir stores labels flat in one local folder: Put(ctx, id, name, pdf)
// writes the file <Root>/<SafeName(id)>_<SafeName(name)>; there is no folder
// per order. The id part is shortened if needed to keep the file name within
// 255 bytes. The '_' is not an escape (SafeName keeps '_'), so two pairs can
// in principle share a file ("a_b" with "c.pdf", "a" with "b_c.pdf"); the
// shipping clients' names start with "label-" or "customs-" (a customs
// declaration) and no order id (pi_..., cs_...) contains "_label-" or
// "_customs-", so their files never meet this way.
//
// A label is written to a temporary file in the folder (a hidden
// ".label-*.tmp", never a label's name), synced, renamed over the final name
// and then the folder itself is synced, so a reader never sees a partial
// label and a returned Put survives a crash. Concurrent Puts share folder
// syncs: see dirSync.
//
// Dir keeps the folder open for those syncs. Close releases it; a Dir used
// for the life of the process need not be closed (it holds one file
// descriptor until exit, or until the Dir is garbage collected).
type Dir struct {
	root   string
	folder dirSync
}

var (
	_ Store  = (*Dir)(nil)
	_ Finder = (*Dir)(nil)
)

// NewDir returns a Dir rooted at root, creating the folder if needed and
// refusing one it cannot write a file in (it writes, syncs and removes a
// hidden probe file). The root is made absolute so locations stay valid whatever the working
// directory later is.
func NewDir(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("labelstore: folder is required")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("labelstore: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("labelstore: %w", err)
	}
	if err := ProbeWrite(abs); err != nil {
		return nil, fmt.Errorf("labelstore: folder %s cannot be written: %w", abs, err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("labelstore: %w", err)
	}
	return &Dir{root: abs, folder: dirSync{dir: f, fsync: (*os.File).Sync}}, nil
}

// ProbeWrite creates, syncs and removes a temporary file in dir, as Put
// does with a label: a folder that exists but cannot be written is found
// at start, not after a shipment was booked whose label then has nowhere
// to go (the processor probes its --state-dir the same way).
func ProbeWrite(dir string) error {
	f, err := os.CreateTemp(dir, ".probe-*.tmp")
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte("probe"))
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	rerr := os.Remove(f.Name())
	return errors.Join(werr, cerr, rerr)
}

// Root is the folder labels are written to.
func (d *Dir) Root() string { return d.root }

// Close releases the handle on the folder. Put fails after Close.
func (d *Dir) Close() error { return d.folder.dir.Close() }

// Put writes pdf to <root>/<SafeName(orderID)>_<SafeName(name)> atomically
// and durably, replacing an earlier label of that order and name, and
// returns a file:// URL of it.
func (d *Dir) Put(ctx context.Context, orderID, name string, pdf []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	fileName, err := labelFileName(orderID, name)
	if err != nil {
		return "", err
	}
	final := filepath.Join(d.root, fileName)
	if err := writeAtomic(d.root, final, pdf); err != nil {
		return "", fmt.Errorf("labelstore: write label: %w", err)
	}
	if err := d.folder.wait(); err != nil {
		return "", fmt.Errorf("labelstore: sync folder after writing %s: %w", fileName, err)
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(final)}).String(), nil
}

// Find returns the file:// URL of the label Put stored as name under
// orderID, when the file is there.
func (d *Dir) Find(orderID, name string) (string, bool) {
	fileName, err := labelFileName(orderID, name)
	if err != nil {
		return "", false
	}
	final := filepath.Join(d.root, fileName)
	if fi, err := os.Stat(final); err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
		return "", false
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(final)}).String(), true
}

// labelFileName is the file name Dir stores orderID's label name under.
func labelFileName(orderID, name string) (string, error) {
	order, err := SafeName(orderID)
	if err != nil {
		return "", err
	}
	file, err := SafeName(name)
	if err != nil {
		return "", err
	}
	// Both parts are at most maxNameLen bytes of ASCII, so the order part
	// loses at most a couple of bytes here and never becomes empty.
	if n := maxFileLen - 1 - len(file); len(order) > n {
		order = order[:n]
	}
	return order + "_" + file, nil
}

// writeAtomic writes data to a temporary file in dir, syncs it and renames
// it to final, so final holds either the old or the whole new content. The
// file is readable by its owner only. The rename is durable only once dir
// is synced as well.
func writeAtomic(dir, final string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, ".label-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, final) // mode 0600 from CreateTemp: labels carry addresses
}

// dirSync syncs a folder on behalf of many writers with a group commit: a
// writer calls wait after its rename and gets back once a sync of the folder
// that started after that call has finished. A sync runs at most one at a
// time; the writers arriving while one runs gather into the next round,
// which one sync serves as soon as the running one ends. The writer that
// finds no sync running runs its round itself; a later round is run by a
// goroutine of its own, so no writer keeps syncing for others. A round's
// error goes to every writer in it.
type dirSync struct {
	dir   *os.File
	fsync func(*os.File) error // (*os.File).Sync; tests replace it

	mu      sync.Mutex
	running bool       // a round's fsync is under way
	next    *syncRound // the round gathering writers, nil if none
}

// syncRound is one sync of the folder and the writers waiting for it.
type syncRound struct {
	done chan struct{} // closed when the sync has finished
	err  error         // its result, written before done is closed
}

// wait returns the result of a sync of the folder that starts after wait was
// called.
func (s *dirSync) wait() error {
	s.mu.Lock()
	r := s.next
	if r == nil {
		r = &syncRound{done: make(chan struct{})}
		s.next = r
	}
	lead := !s.running
	if lead {
		s.running = true
		s.next = nil
	}
	s.mu.Unlock()
	if lead {
		s.run(r)
	}
	<-r.done
	return r.err
}

// run syncs the folder for round r, which has been taken out of s.next, and
// then starts the round gathered meanwhile, if any.
func (s *dirSync) run(r *syncRound) {
	r.err = s.fsync(s.dir)
	close(r.done)
	s.mu.Lock()
	next := s.next
	s.next = nil
	s.running = next != nil
	s.mu.Unlock()
	if next != nil {
		go s.run(next)
	}
}

// SafeName turns an order id or file name into one safe path element: ASCII
// letters, digits, '.', '-' and '_' are kept, anything else (separators,
// spaces, non-ASCII) becomes '_', leading dots are dropped so the result is
// never hidden, "." or "..", and the result is cut to 128 bytes. Distinct
// inputs may map to the same name; callers pass ids, which are already
// within the safe alphabet.
func SafeName(s string) (string, error) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := strings.TrimLeft(b.String(), ".")
	if len(out) > maxNameLen {
		out = out[:maxNameLen]
	}
	if strings.Trim(out, "_") == "" {
		return "", fmt.Errorf("%w: %q", ErrInvalidName, s)
	}
	return out, nil
}
