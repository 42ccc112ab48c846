// Package labelstore keeps shipping-label PDFs. A Store puts one label for an
// order and returns where it lives; the processor records that location in
// the order's state and the confirmation email can link to it.
//
// Dir, the default, writes to a local folder. The Store interface is shaped
// for an S3-compatible object store as well: Put takes a context (a network
// call), the order id and a file name (which map to an object key
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
)

// Store keeps label PDFs.
type Store interface {
	// Put stores pdf as name under orderID and returns its location. Putting
	// the same orderID and name again replaces the earlier label. A reader
	// never sees a partly written label.
	Put(ctx context.Context, orderID, name string, pdf []byte) (location string, err error)
}

// maxNameLen bounds one path element; most file systems allow 255 bytes.
const maxNameLen = 128

// ErrInvalidName is returned when an order id or file name is empty or
// reduces to nothing usable after sanitising.
var ErrInvalidName = errors.New("labelstore: invalid name")

// Dir stores labels in a local folder as <Root>/<order id>/<name>, each
// written to a temporary file in the same folder and renamed into place.
type Dir struct {
	root string
}

var _ Store = (*Dir)(nil)

// NewDir returns a Dir rooted at root, creating the folder if needed. The
// root is made absolute so locations stay valid whatever the working
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
	return &Dir{root: abs}, nil
}

// Root is the folder labels are written under.
func (d *Dir) Root() string { return d.root }

// Put writes pdf to <root>/<SafeName(orderID)>/<SafeName(name)> atomically
// and returns a file:// URL of it.
func (d *Dir) Put(ctx context.Context, orderID, name string, pdf []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	dirName, err := SafeName(orderID)
	if err != nil {
		return "", err
	}
	fileName, err := SafeName(name)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(d.root, dirName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("labelstore: %w", err)
	}
	final := filepath.Join(dir, fileName)
	if err := writeAtomic(dir, final, pdf); err != nil {
		return "", fmt.Errorf("labelstore: write label: %w", err)
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(final)}).String(), nil
}

// writeAtomic writes data to a temporary file in dir, syncs it and renames
// it to final, so final holds either the old or the whole new content. The
// file is readable by its owner only.
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
