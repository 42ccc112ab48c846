package statestore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// runBytes is how much a Loader gathers before writing it out. A run this
// large is sorted and ingested as one table (no memtable, no write-ahead
// log); a smaller remainder goes through an ordinary batch.
const (
	runBytes      = 32 << 20
	smallRunBytes = 1 << 20
)

// Loader applies changelog records in offset order (a restore or the
// replay of the tail past the checkpoint). Build it with Store.Load, Add
// every record, then Finish.
type Loader struct {
	s    *Store
	run  []entry
	size int
	last int64 // offset of the last record added
	seq  int
}

type entry struct {
	key []byte // statePrefix + order key
	val []byte // nil: tombstone
	off int64
}

// Load starts a replay from the store's checkpoint. Reset first when the
// store must be rebuilt.
func (s *Store) Load() *Loader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &Loader{s: s, last: s.trk.next - 1}
}

// Reset empties the store and sets its checkpoint to from (the changelog's
// start offset): a rebuild.
func (s *Store) Reset(from int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	_ = b.DeleteRange([]byte{statePrefix}, []byte{statePrefix + 1}, nil)
	now := time.Now()
	_ = b.Set(keyCheckpoint, encodeCheckpoint(from, now), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("statestore: reset: %w", err)
	}
	s.trk.reset(from)
	s.ckAt = now
	s.count.Store(0)
	return nil
}

// Add applies one record; val nil is a tombstone. The slices are kept
// until the run is written.
func (l *Loader) Add(key, val []byte, off int64) error {
	k := make([]byte, 1+len(key))
	k[0] = statePrefix
	copy(k[1:], key)
	l.run = append(l.run, entry{key: k, val: val, off: off})
	l.size += len(k) + len(val) + 48
	l.last = off
	if l.size >= runBytes {
		return l.flush(off + 1)
	}
	return nil
}

// Finish writes what is left and sets the checkpoint to end, the
// changelog's end offset the replay read up to.
func (l *Loader) Finish(end int64) error {
	return l.flush(max(end, l.last+1))
}

// flush writes the gathered run and moves the checkpoint to next.
func (l *Loader) flush(next int64) error {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("statestore: store closed")
	}
	if len(l.run) == 0 {
		if err := s.db.Set(keyCheckpoint, encodeCheckpoint(next, time.Now()), pebble.NoSync); err != nil {
			return fmt.Errorf("statestore: checkpoint: %w", err)
		}
		s.trk.reset(next)
		s.ckAt = time.Now()
		return nil
	}
	// The last record of each key wins: sort by key, offsets ascending.
	slices.SortStableFunc(l.run, func(a, b entry) int { return bytes.Compare(a.key, b.key) })
	n := 0
	for i, e := range l.run {
		if i+1 < len(l.run) && bytes.Equal(l.run[i+1].key, e.key) {
			continue
		}
		l.run[n] = e
		n++
	}
	run := l.run[:n]
	var err error
	if l.size < smallRunBytes {
		err = l.batch(run, next)
	} else {
		err = l.ingest(run, next)
	}
	clear(l.run)
	l.run, l.size = l.run[:0], 0
	if err != nil {
		return err
	}
	s.trk.reset(next)
	s.ckAt = time.Now()
	return nil
}

func (l *Loader) batch(run []entry, next int64) error {
	b := l.s.db.NewBatch()
	for _, e := range run {
		if e.val == nil {
			_ = b.Delete(e.key, nil)
		} else {
			_ = b.Set(e.key, encodeValue(e.off, e.val), nil)
		}
	}
	_ = b.Set(keyCheckpoint, encodeCheckpoint(next, time.Now()), nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("statestore: write: %w", err)
	}
	return nil
}

// ingest writes a sorted run as a table and hands it to Pebble, then
// moves the checkpoint (a crash in between replays the run again).
func (l *Loader) ingest(run []entry, next int64) error {
	s := l.s
	l.seq++
	path := filepath.Join(s.dir, fmt.Sprintf("load-%d-%d.sst", os.Getpid(), l.seq))
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("statestore: %w", err)
	}
	wo := s.opts.MakeWriterOptions(0, s.db.FormatMajorVersion().MaxTableFormat())
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), wo)
	var val []byte
	for _, e := range run {
		if e.val == nil {
			err = w.Delete(e.key)
		} else {
			val = appendValue(val[:0], e.off, e.val)
			err = w.Set(e.key, val)
		}
		if err != nil {
			_ = w.Close()
			_ = os.Remove(path)
			return fmt.Errorf("statestore: write table: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("statestore: write table: %w", err)
	}
	if err := s.db.Ingest(context.Background(), []string{path}); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("statestore: ingest: %w", err)
	}
	_ = os.Remove(path) // Pebble linked it in; the name is ours to drop
	if err := s.db.Set(keyCheckpoint, encodeCheckpoint(next, time.Now()), pebble.NoSync); err != nil {
		return fmt.Errorf("statestore: checkpoint: %w", err)
	}
	return nil
}

func appendValue(b []byte, off int64, val []byte) []byte {
	b = append(b, valueFormat, 0, 0, 0, 0, 0, 0, 0, 0)
	for i := 0; i < 8; i++ {
		b[1+i] = byte(uint64(off) >> (56 - 8*i))
	}
	return append(b, val...)
}
