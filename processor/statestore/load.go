package statestore

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// runBytes is how much a Loader gathers before writing it out. A run this
// large is sorted and written as one table (no memtable, no write-ahead
// log) by a writer goroutine while the next run fills; a smaller remainder
// goes through an ordinary batch. Two runs are in memory at most, copied
// out of the fetch buffers so that those are freed at once.
//
// The writer does not wait for the disk: a written table goes to an
// applier goroutine that makes it durable (fsync), hands it to Pebble
// (Ingest) and only then moves the checkpoint, while the writer builds the
// next one. Tables queued meanwhile that do not overlap (a partition
// written in key order) are ingested together, with one manifest update.
const (
	runBytes      = 8 << 20
	smallRunBytes = 1 << 20
	// applyQueue bounds the written tables and batches waiting for the
	// applier: open files, no memory beyond a small batch.
	applyQueue = 4
)

// Loader applies changelog records in offset order (a restore or the
// replay of the tail past the checkpoint). Build it with Store.Load, Add
// every record, then Finish.
type Loader struct {
	s     *Store
	cur   *run
	free  chan *run
	todo  chan *run
	apply chan *item
	done  chan struct{} // closed when the applier returned
	last  int64         // offset of the last record added
	seq   int
	open  *openTable // the writer's table in progress

	mu  sync.Mutex
	err error // the first failure of the writer or the applier
}

type run struct {
	arena   []byte
	entries []entry
	next    int64 // the checkpoint once the run is written
	// unsorted is set when a key was added below the one before it.
	unsorted bool
}

// entry is one record of a run, by its place in the arena (which may move
// while it grows): the key (statePrefix + order key) at [k, v), the stored
// value (header, then the record) at [v, end); v == end is a tombstone.
type entry struct {
	k, v, end int32
	off       int64
}

func (r *run) key(e entry) []byte { return r.arena[e.k:e.v:e.v] }

// val returns the stored value, nil for a tombstone.
func (r *run) val(e entry) []byte {
	if e.v == e.end {
		return nil
	}
	return r.arena[e.v:e.end:e.end]
}

// item is one written run waiting to be applied: a table file, or a batch,
// or (neither) just the checkpoint.
type item struct {
	next int64
	// table:
	path        string
	file        vfs.File
	first, last []byte // key range
	batch       *pebble.Batch
}

// Load starts a replay from the store's checkpoint. Reset first when the
// store must be rebuilt.
func (s *Store) Load() *Loader {
	s.mu.Lock()
	_ = s.writePending() // none while a partition restores; a failure stays in werr
	next := s.trk.next
	s.mu.Unlock()
	l := &Loader{s: s, last: next - 1, free: make(chan *run, 2), todo: make(chan *run, 1),
		apply: make(chan *item, applyQueue), done: make(chan struct{})}
	// The arenas grow as records come, up to runBytes: a replay of a
	// short tail (or of nothing) costs next to no memory.
	l.free <- &run{}
	l.free <- &run{}
	go l.writer(l.todo)
	go l.applier()
	return l
}

func (l *Loader) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
}

func (l *Loader) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *Loader) writer(todo <-chan *run) {
	for r := range todo {
		if l.failed() == nil {
			items, err := l.build(r)
			if err != nil {
				l.fail(err)
			}
			for _, it := range items {
				l.apply <- it
			}
		}
		r.arena, r.entries, r.unsorted = r.arena[:0], r.entries[:0], false
		l.free <- r
	}
	// A load aborted with a table open: it is complete up to its
	// checkpoint.
	if it, err := l.closeTable(); err != nil {
		l.fail(err)
	} else if it != nil && l.failed() == nil {
		l.apply <- it
	} else if it != nil {
		discard(it)
	}
	close(l.apply)
}

// Reset empties the store and sets its checkpoint to from (the changelog's
// start offset): a rebuild.
func (s *Store) Reset(from int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.pending) // a rebuild replaces whatever was put
	s.pendingOffs, s.pendingBytes = s.pendingOffs[:0], 0
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
	if l.cur == nil {
		if err := l.failed(); err != nil {
			return err
		}
		l.cur = <-l.free
	}
	r := l.cur
	need := 1 + len(key) + headerLen + len(val)
	if len(r.arena)+need > runBytes && len(r.entries) > 0 {
		if err := l.send(off); err != nil {
			return err
		}
		l.cur = <-l.free
		r = l.cur
	}
	if len(r.arena)+need > cap(r.arena) {
		grown := make([]byte, len(r.arena), min(max(2*cap(r.arena), len(r.arena)+need, 64<<10), max(runBytes, len(r.arena)+need)))
		copy(grown, r.arena)
		r.arena = grown
	}
	e := entry{k: int32(len(r.arena)), off: off}
	r.arena = append(r.arena, statePrefix)
	r.arena = append(r.arena, key...)
	e.v = int32(len(r.arena))
	if val != nil {
		r.arena = appendValue(r.arena, off, val)
	}
	e.end = int32(len(r.arena))
	if n := len(r.entries); n > 0 && !r.unsorted && bytes.Compare(r.key(r.entries[n-1]), r.key(e)) > 0 {
		r.unsorted = true
	}
	r.entries = append(r.entries, e)
	l.last = off
	return nil
}

// send hands the current run to the writer; next is its checkpoint.
func (l *Loader) send(next int64) error {
	if err := l.failed(); err != nil {
		return err
	}
	l.cur.next = next
	l.todo <- l.cur
	l.cur = nil
	return nil
}

// Finish writes what is left, waits until everything is applied and sets
// the checkpoint to end, the changelog's end offset the replay read up
// to.
func (l *Loader) Finish(end int64) error {
	if l.todo == nil {
		return errors.New("statestore: load already finished")
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
	<-l.done
	return l.failed()
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

// build sorts a run and writes it out: the items it completes for the
// applier, in order. A large run that follows the open table in key order
// goes into it (up to tableBytes of runs): a partition written in key
// order becomes a few large tables, a few syncs and ingests.
func (l *Loader) build(r *run) ([]*item, error) {
	// The last record of each key wins: sort by key, then offset (a run
	// added in key order is sorted already).
	if r.unsorted {
		slices.SortFunc(r.entries, func(a, b entry) int {
			if c := bytes.Compare(r.key(a), r.key(b)); c != 0 {
				return c
			}
			return cmp.Compare(a.off, b.off)
		})
	}
	n := 0
	for i, e := range r.entries {
		if i+1 < len(r.entries) && bytes.Equal(r.key(r.entries[i+1]), r.key(e)) {
			continue
		}
		r.entries[n] = e
		n++
	}
	entries := r.entries[:n]
	var after *item
	switch {
	case len(entries) == 0:
		after = &item{next: r.next}
	case len(r.arena) < smallRunBytes:
		b := l.s.db.NewBatchWithSize(len(r.arena) + 64*len(entries) + 64)
		for _, e := range entries {
			if v := r.val(e); v == nil {
				_ = b.Delete(r.key(e), nil)
			} else {
				_ = b.Set(r.key(e), v, nil)
			}
		}
		after = &item{next: r.next, batch: b}
	default:
		if t := l.open; t != nil && t.size+len(r.arena) <= tableBytes && bytes.Compare(r.key(entries[0]), t.last) > 0 {
			return nil, l.addToTable(r, entries)
		}
		it, err := l.closeTable()
		if err != nil {
			return nil, err
		}
		if err := l.newTable(); err != nil {
			return itemsOf(it), err
		}
		return itemsOf(it), l.addToTable(r, entries)
	}
	it, err := l.closeTable()
	if err != nil {
		discard(after)
		return nil, err
	}
	return append(itemsOf(it), after), nil
}

func itemsOf(it *item) []*item {
	if it == nil {
		return nil
	}
	return []*item{it}
}

// tableBytes bounds the runs written into one table.
const tableBytes = 4 * runBytes

// openTable is the table the writer is filling.
type openTable struct {
	path        string
	file        vfs.File
	w           *sstable.Writer
	first, last []byte
	next        int64
	size        int
}

// newTable starts a table file.
func (l *Loader) newTable() error {
	s := l.s
	l.seq++
	path := filepath.Join(s.dir, fmt.Sprintf("load-%d-%d.sst", os.Getpid(), l.seq))
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("statestore: %w", err)
	}
	wo := s.opts.MakeWriterOptions(0, s.db.FormatMajorVersion().MaxTableFormat())
	l.open = &openTable{path: path, file: f, w: sstable.NewWriter(&unsyncedWritable{bw: bufio.NewWriterSize(f, 256<<10)}, wo)}
	return nil
}

// addToTable writes a sorted run into the open table, whose keys are all
// below the run's.
func (l *Loader) addToTable(r *run, run []entry) error {
	t := l.open
	var err error
	for _, e := range run {
		if v := r.val(e); v == nil {
			err = t.w.Delete(r.key(e))
		} else {
			err = t.w.Set(r.key(e), v)
		}
		if err != nil {
			l.open = nil
			_ = t.w.Close()
			_ = t.file.Close()
			_ = os.Remove(t.path)
			return fmt.Errorf("statestore: write table: %w", err)
		}
	}
	if t.first == nil {
		t.first = bytes.Clone(r.key(run[0]))
	}
	t.last = bytes.Clone(r.key(run[len(run)-1]))
	t.next = r.next
	t.size += len(r.arena)
	return nil
}

// closeTable finishes the open table (not yet synced) as an item for the
// applier; nil when none is open.
func (l *Loader) closeTable() (*item, error) {
	t := l.open
	if t == nil {
		return nil, nil
	}
	l.open = nil
	if err := t.w.Close(); err != nil {
		_ = t.file.Close()
		_ = os.Remove(t.path)
		return nil, fmt.Errorf("statestore: write table: %w", err)
	}
	return &item{next: t.next, path: t.path, file: t.file, first: t.first, last: t.last}, nil
}

// unsyncedWritable writes a table through a buffer and leaves the file
// open and unsynced: the applier syncs it before Pebble takes it.
type unsyncedWritable struct{ bw *bufio.Writer }

func (w *unsyncedWritable) Write(p []byte) error {
	_, err := w.bw.Write(p)
	return err
}
func (w *unsyncedWritable) Finish() error { return w.bw.Flush() }
func (w *unsyncedWritable) Abort()        {}

var _ objstorage.Writable = (*unsyncedWritable)(nil)

// applier applies the written runs in order: tables are synced, then
// ingested (consecutive ones that do not overlap in one go), batches
// committed, each with the checkpoint it allows.
func (l *Loader) applier() {
	defer close(l.done)
	var held *item
	for {
		it := held
		held = nil
		if it == nil {
			var ok bool
			if it, ok = <-l.apply; !ok {
				return
			}
		}
		if l.failed() != nil {
			discard(it)
			continue
		}
		if it.file == nil {
			if err := l.commit(it); err != nil {
				l.fail(err)
			}
			continue
		}
		group := []*item{it}
	gather:
		for {
			select {
			case nx, ok := <-l.apply:
				if !ok {
					break gather
				}
				if nx.file == nil || overlaps(group, nx) {
					held = nx
					break gather
				}
				group = append(group, nx)
			default:
				break gather
			}
		}
		if err := l.ingest(group); err != nil {
			l.fail(err)
		}
	}
}

func overlaps(group []*item, it *item) bool {
	for _, g := range group {
		if bytes.Compare(it.first, g.last) <= 0 && bytes.Compare(g.first, it.last) <= 0 {
			return true
		}
	}
	return false
}

func discard(it *item) {
	if it.file != nil {
		_ = it.file.Close()
		_ = os.Remove(it.path)
	}
	if it.batch != nil {
		_ = it.batch.Close()
	}
}

// commit applies a batch (or nothing) with its checkpoint.
func (l *Loader) commit(it *item) error {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		discard(it)
		return errors.New("statestore: store closed")
	}
	now := time.Now()
	var err error
	if it.batch != nil {
		_ = it.batch.Set(keyCheckpoint, encodeCheckpoint(it.next, now), nil)
		err = it.batch.Commit(pebble.NoSync)
		_ = it.batch.Close()
	} else {
		err = s.db.Set(keyCheckpoint, encodeCheckpoint(it.next, now), pebble.NoSync)
	}
	if err != nil {
		return fmt.Errorf("statestore: write: %w", err)
	}
	s.trk.reset(it.next)
	s.ckAt = now
	return nil
}

// ingest makes the tables durable, hands them to Pebble, then moves the
// checkpoint (a crash in between replays them again).
func (l *Loader) ingest(group []*item) error {
	s := l.s
	paths := make([]string, len(group))
	var err error
	for i, it := range group {
		paths[i] = it.path
		if err == nil {
			err = it.file.Sync()
		}
		if cerr := it.file.Close(); err == nil {
			err = cerr
		}
	}
	defer func() {
		for _, p := range paths {
			_ = os.Remove(p) // Pebble linked them in; the names are ours to drop
		}
	}()
	if err != nil {
		return fmt.Errorf("statestore: write table: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("statestore: store closed")
	}
	if err := s.db.Ingest(context.Background(), paths); err != nil {
		return fmt.Errorf("statestore: ingest: %w", err)
	}
	next := group[len(group)-1].next
	now := time.Now()
	if err := s.db.Set(keyCheckpoint, encodeCheckpoint(next, now), pebble.NoSync); err != nil {
		return fmt.Errorf("statestore: checkpoint: %w", err)
	}
	s.trk.reset(next)
	s.ckAt = now
	return nil
}

// appendValue appends a stored value: format, changelog offset, record.
func appendValue(b []byte, off int64, val []byte) []byte {
	b = append(b, valueFormat)
	b = binary.BigEndian.AppendUint64(b, uint64(off))
	return append(b, val...)
}
