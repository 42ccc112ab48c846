package statestore

import (
	"bytes"
	"cmp"
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
// log) by a writer goroutine while the next run fills; a smaller remainder
// goes through an ordinary batch. Two runs are in memory at most, copied
// out of the fetch buffers so that those are freed at once.
const (
	runBytes      = 8 << 20
	smallRunBytes = 1 << 20
)

// Loader applies changelog records in offset order (a restore or the
// replay of the tail past the checkpoint). Build it with Store.Load, Add
// every record, then Finish.
type Loader struct {
	s    *Store
	cur  *run
	free chan *run
	todo chan *run
	done chan error
	err  error
	last int64 // offset of the last record added
	seq  int
}

type run struct {
	arena   []byte
	entries []entry
	next    int64 // the checkpoint once the run is written
}

type entry struct {
	key []byte // statePrefix + order key, in the arena
	val []byte // in the arena; nil: tombstone
	off int64
}

// Load starts a replay from the store's checkpoint. Reset first when the
// store must be rebuilt.
func (s *Store) Load() *Loader {
	s.mu.Lock()
	next := s.trk.next
	s.mu.Unlock()
	l := &Loader{s: s, last: next - 1, free: make(chan *run, 2), todo: make(chan *run, 1), done: make(chan error, 1)}
	l.free <- &run{arena: make([]byte, 0, runBytes)}
	l.free <- &run{arena: make([]byte, 0, runBytes)}
	go l.writer(l.todo)
	return l
}

func (l *Loader) writer(todo <-chan *run) {
	var err error
	for r := range todo {
		if err == nil {
			err = l.write(r)
		}
		r.arena, r.entries = r.arena[:0], r.entries[:0]
		l.free <- r
	}
	l.done <- err
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

// Add applies one record; val nil is a tombstone. The bytes are copied.
func (l *Loader) Add(key, val []byte, off int64) error {
	if l.err != nil {
		return l.err
	}
	if l.cur == nil {
		l.cur = <-l.free
	}
	r := l.cur
	if len(r.arena)+1+len(key)+len(val) > cap(r.arena) && len(r.entries) > 0 {
		if err := l.send(off); err != nil {
			return err
		}
		l.cur = <-l.free
		r = l.cur
	}
	start := len(r.arena)
	r.arena = append(r.arena, statePrefix)
	r.arena = append(r.arena, key...)
	k := r.arena[start:len(r.arena):len(r.arena)]
	var v []byte
	if val != nil {
		vs := len(r.arena)
		r.arena = append(r.arena, val...)
		v = r.arena[vs:len(r.arena):len(r.arena)]
	}
	r.entries = append(r.entries, entry{key: k, val: v, off: off})
	l.last = off
	return nil
}

// send hands the current run to the writer; next is its checkpoint.
func (l *Loader) send(next int64) error {
	select {
	case err := <-l.done: // the writer stopped on an error
		l.err = err
		return err
	default:
	}
	l.cur.next = next
	l.todo <- l.cur
	l.cur = nil
	return nil
}

// Finish writes what is left, waits for the writer and sets the checkpoint
// to end, the changelog's end offset the replay read up to.
func (l *Loader) Finish(end int64) error {
	if l.err != nil {
		return l.err
	}
	next := max(end, l.last+1)
	if l.cur == nil {
		l.cur = <-l.free
	}
	l.cur.next = next
	l.todo <- l.cur
	l.cur = nil
	close(l.todo)
	l.todo = nil
	return <-l.done
}

// Abort stops the writer without finishing (a restore that gave up); what
// was written stays, with its checkpoint.
func (l *Loader) Abort() {
	if l.todo == nil {
		return
	}
	close(l.todo)
	l.todo = nil
	<-l.done
}

// write sorts a run, writes it and moves the checkpoint.
func (l *Loader) write(r *run) error {
	s := l.s
	// The last record of each key wins: sort by key, then offset.
	slices.SortFunc(r.entries, func(a, b entry) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		return cmp.Compare(a.off, b.off)
	})
	n := 0
	for i, e := range r.entries {
		if i+1 < len(r.entries) && bytes.Equal(r.entries[i+1].key, e.key) {
			continue
		}
		r.entries[n] = e
		n++
	}
	entries := r.entries[:n]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("statestore: store closed")
	}
	var err error
	switch {
	case len(entries) == 0:
		err = s.db.Set(keyCheckpoint, encodeCheckpoint(r.next, time.Now()), pebble.NoSync)
	case len(r.arena) < smallRunBytes:
		err = l.batch(entries, r.next)
	default:
		err = l.ingest(entries, r.next)
	}
	if err != nil {
		return err
	}
	s.trk.reset(r.next)
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
