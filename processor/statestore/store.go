// Package statestore is the processor's local copy of one partition of the
// compacted `orders.state` topic: an embedded Pebble store on disk whose
// source of truth is the changelog (the Kafka Streams model).
//
// The store keeps, beside the records, its checkpoint: the changelog offset
// below which every record is reflected in the store. It is written in the
// same atomic Pebble batch as the data, so after any crash the store and
// its checkpoint agree, and reading the changelog from the checkpoint to
// its end brings the store up to date.
//
// The processor writes a state to Kafka first and to the store after the
// acknowledgement. The checkpoint therefore never passes an offset that was
// acknowledged but not yet written locally: it advances only over offsets
// whose local write is done (a tracker of the written offsets above it).
// A crash between the acknowledgement and the local write leaves the
// checkpoint at or below that offset, and the next open re-reads it.
//
// Writes are grouped (write-behind): Put records a state in memory, where
// Get and Has see it at once, and the states put during a short window
// (Options.WriteDelay, or WriteBytes of them) go to Pebble in one batch
// with the checkpoint they allow. A state put several times in one window
// is written once. A crash loses at most the window, and the checkpoint,
// written in the same batch, has not passed it: the next open replays it
// from the changelog.
package statestore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Identity says which changelog partition a store copies. A store whose
// identity differs from the one asked for is foreign and is rebuilt.
type Identity struct {
	ClusterID string `json:"cluster_id"`
	Topic     string `json:"topic"`
	// TopicID is Kafka's id of the topic; a topic deleted and created again
	// under the same name has a new one.
	TopicID   string `json:"topic_id"`
	Partition int32  `json:"partition"`
}

// Options tunes a store.
type Options struct {
	// Cache is a block cache shared by the stores of a process (see
	// NewCache); nil gives the store its own of CacheBytes.
	Cache *Cache
	// CacheBytes is the size of a store's own block cache (default 8 MiB).
	CacheBytes int64
	// MemTableBytes is the size of one memtable (default 512 KiB: a
	// processor has a store per assigned partition, Pebble holds up to two
	// memtables of each, and without cgo they are Go heap, which the
	// garbage collector lets grow to twice what is live; restores bypass
	// them).
	MemTableBytes uint64
	// WriteDelay is the longest a put state waits in memory before its
	// group goes to Pebble (default 1 s: longer than most orders take
	// from their first step to their last, so an order's intermediate
	// states seldom reach Pebble, whose flushes and compactions of them
	// cost a processor more CPU than the writes); WriteBytes the size of
	// put states that sends the group at once (default 1 MiB).
	WriteDelay time.Duration
	WriteBytes int
	Logger     *slog.Logger
	// OnCorrupt is called once, on its own goroutine, when Pebble finds
	// corrupt data while the store runs (a compaction or flush reading a
	// block that fails its checksum). The store is marked for a rebuild at
	// its next open before it is called; Pebble would retry the failed
	// compaction for ever, so the owner should close the store.
	OnCorrupt func(error)
}

// Cache is a block cache several stores can share.
type Cache = pebble.Cache

// NewCache returns a block cache of size bytes; Unref it when every store
// using it is closed.
func NewCache(size int64) *Cache { return pebble.NewCache(size) }

// Keys in Pebble: metaPrefix+name for the store's own records,
// statePrefix+order key for the states.
const (
	metaPrefix  = 'm'
	statePrefix = 's'
	// valueFormat is the first byte of a stored state: format, then the
	// changelog offset (8 bytes, big endian), then the record value as it
	// is on the changelog.
	valueFormat = 1
	headerLen   = 9
)

var (
	keyIdentity   = []byte{metaPrefix, 'i', 'd'}
	keyCheckpoint = []byte{metaPrefix, 'c', 'k'}
)

// markerFile sits in every store folder: its modification time is when the
// store was last closed, which tells the clean-up how long it has been
// unused.
const markerFile = "orderflow-store"

// ErrCorrupt wraps a failure to read what the store holds.
var ErrCorrupt = errors.New("statestore: store unreadable")

// The sizes of a Pebble batch's header and, at most, of an entry's kind
// and two length varints.
const (
	batchHeader = 12
	batchEntry  = 1 + 2*binary.MaxVarintLen32
)

// pendingWrite is a put state waiting for its group's write; val nil is a
// tombstone.
type pendingWrite struct {
	val []byte
	off int64
}

// Store is one partition's local copy. Its methods are safe for concurrent
// use.
type Store struct {
	db   *pebble.DB
	opts *pebble.Options
	dir  string
	id   Identity
	log  *slog.Logger

	mu     sync.Mutex // writes: the checkpoint written with them must match
	trk    tracker
	ckAt   time.Time
	closed bool

	// The group of puts not yet in Pebble (write-behind): the latest
	// value of each key, every offset put, their size, the timer that
	// writes them, and the error of a group write that failed (returned
	// by every later call: the store is not used again).
	pending      map[string]pendingWrite
	pendingOffs  []int64
	pendingBytes int
	writeDelay   time.Duration
	writeBytes   int
	timer        *time.Timer
	timerSet     bool
	werr         error
	// commit writes a group's batch (Batch.Commit without a sync; tests
	// replace it to make the write fail).
	commit func(*pebble.Batch) error

	count   atomic.Int64
	counted atomic.Bool
	// iters counts the scans in progress; Close waits for them after
	// closing tells them to stop.
	iters   sync.WaitGroup
	closing atomic.Bool
}

// scan returns an iterator over the states, registered so that Close waits
// for it; nil when the store is closed.
func (s *Store) scan() (*pebble.Iterator, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.closing.Load() {
		return nil, errors.New("statestore: store closed")
	}
	if err := s.writePending(); err != nil {
		return nil, err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{statePrefix}, UpperBound: []byte{statePrefix + 1}})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	s.iters.Add(1)
	return it, nil
}

// Open opens the store in dir, creating it when absent. A store that cannot
// be opened, whose identity cannot be read or differs from id, is wiped and
// created anew; rebuilt says why ("" when the store was trusted).
func Open(dir string, id Identity, o Options) (s *Store, rebuilt string, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(filepath.Join(dir, markerFile)); errors.Is(err, os.ErrNotExist) {
		rebuilt = "no local store"
		if err := os.RemoveAll(dir); err != nil {
			return nil, "", fmt.Errorf("statestore: clear %s: %w", dir, err)
		}
	}
	s, reason, err := open(dir, id, o, rebuilt != "")
	if err != nil {
		return nil, "", err
	}
	if reason != "" {
		o.Logger.Warn("local state store not usable; rebuilding it from the changelog", "dir", dir, "reason", reason)
		if s != nil {
			_ = s.db.Close()
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, "", fmt.Errorf("statestore: clear %s: %w", dir, err)
		}
		if rebuilt == "" {
			rebuilt = reason
		}
		s, reason, err = open(dir, id, o, true)
		if err != nil {
			return nil, "", err
		}
		if reason != "" {
			_ = s.db.Close()
			return nil, "", fmt.Errorf("statestore: new store in %s unusable: %s", dir, reason)
		}
	}
	return s, rebuilt, nil
}

// open opens or creates the store; reason is non-empty (with s possibly
// nil) when what is there cannot be trusted.
func open(dir string, id Identity, o Options, fresh bool) (*Store, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("statestore: %w", err)
	}
	cache := o.Cache
	if cache == nil {
		cacheBytes := o.CacheBytes
		if cacheBytes <= 0 {
			cacheBytes = 8 << 20
		}
		cache = pebble.NewCache(cacheBytes)
		defer cache.Unref()
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = 512 << 10
	}
	opts := &pebble.Options{
		Cache:        cache,
		MemTableSize: o.MemTableBytes,
		Logger:       pebbleLogger{o.Logger},
		// A restore ingests sorted runs that overlap one another in L0;
		// compactions merge them in the background. Writes must not stall
		// meanwhile.
		L0CompactionThreshold: 20,
		L0StopWritesThreshold: 1000,
		ErrorIfNotExists:      !fresh,
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	log := o.Logger
	var corrupt, running atomic.Bool
	onCorrupt := func(err error) {
		// Once: Pebble retries a failed compaction at once and reports
		// it again every time. Before the store is open, the failed read
		// itself says the store is not usable.
		if !running.Load() || !corrupt.CompareAndSwap(false, true) {
			return
		}
		log.Error("state store: corrupt data found; it is rebuilt from the changelog at its next open", "dir", dir, "err", err)
		_ = os.Remove(filepath.Join(dir, markerFile))
		if o.OnCorrupt != nil {
			go o.OnCorrupt(err)
		}
	}
	opts.EventListener = &pebble.EventListener{
		// A block failing its checksum fails the read with an error: at
		// open the store is rebuilt, while running the partition reads
		// the changelog and the store is rebuilt at its next open.
		// Pebble's default ends the process, at every start again.
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			onCorrupt(fmt.Errorf("%s: %v", info.Path, info.Details))
		},
		BackgroundError: func(err error) {
			if errors.Is(err, pebble.ErrCorruption) {
				onCorrupt(err)
				return
			}
			log.Error("state store: background error", "dir", dir, "err", err)
		},
	}
	opts.EnsureDefaults()
	db, err := pebble.Open(dir, opts)
	if err != nil {
		if fresh {
			return nil, "", fmt.Errorf("statestore: create %s: %w", dir, err)
		}
		return nil, "corrupt: " + err.Error(), nil
	}
	s := &Store{db: db, opts: opts, dir: dir, id: id, log: o.Logger, writeDelay: o.WriteDelay, writeBytes: o.WriteBytes}
	s.commit = func(b *pebble.Batch) error { return b.Commit(pebble.NoSync) }
	if s.writeDelay <= 0 {
		s.writeDelay = time.Second
	}
	if s.writeBytes <= 0 {
		s.writeBytes = 1 << 20
	}
	if fresh {
		b, _ := json.Marshal(id)
		batch := db.NewBatch()
		_ = batch.Set(keyIdentity, b, nil)
		_ = batch.Set(keyCheckpoint, encodeCheckpoint(0, time.Now()), nil)
		if err := batch.Commit(pebble.Sync); err != nil {
			_ = db.Close()
			return nil, "", fmt.Errorf("statestore: create %s: %w", dir, err)
		}
		if err := os.WriteFile(filepath.Join(dir, markerFile), []byte("orderflow state store\n"), 0o600); err != nil {
			_ = db.Close()
			return nil, "", fmt.Errorf("statestore: %w", err)
		}
		s.ckAt = time.Now()
		running.Store(true)
		return s, "", nil
	}
	var have Identity
	raw, err := s.get(keyIdentity)
	if err == nil && raw == nil {
		err = errors.New("no identity record")
	}
	if err == nil {
		err = json.Unmarshal(raw, &have)
	}
	if err != nil {
		return s, "corrupt: identity: " + err.Error(), nil
	}
	if have != id {
		return s, fmt.Sprintf("foreign: store of %+v, want %+v", have, id), nil
	}
	ck, err := s.get(keyCheckpoint)
	if err == nil && len(ck) != 16 {
		err = fmt.Errorf("checkpoint record of %d bytes", len(ck))
	}
	if err != nil {
		return s, "corrupt: checkpoint: " + err.Error(), nil
	}
	off, at := decodeCheckpoint(ck)
	s.trk.next = off
	s.ckAt = at
	running.Store(true)
	return s, "", nil
}

func encodeCheckpoint(off int64, at time.Time) []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(off))
	binary.BigEndian.PutUint64(b[8:], uint64(at.UnixNano()))
	return b[:]
}

func decodeCheckpoint(b []byte) (int64, time.Time) {
	return int64(binary.BigEndian.Uint64(b[:8])), time.Unix(0, int64(binary.BigEndian.Uint64(b[8:])))
}

// get returns a copy of a key's value, nil when absent.
func (s *Store) get(k []byte) ([]byte, error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	out := bytes.Clone(v)
	_ = closer.Close()
	return out, nil
}

// Dir returns the store's folder.
func (s *Store) Dir() string { return s.dir }

// Identity returns what the store copies.
func (s *Store) Identity() Identity { return s.id }

// Checkpoint returns the offset the changelog must be read from to bring
// the store up to date, and when it was written. The group of puts not yet
// in Pebble is written first, so the checkpoint covers every put.
func (s *Store) Checkpoint() (int64, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		_ = s.writePending() // a failure leaves the checkpoint where it was
	}
	return s.trk.next, s.ckAt
}

func stateKey(key string) []byte {
	k := make([]byte, 1+len(key))
	k[0] = statePrefix
	copy(k[1:], key)
	return k
}

// Get returns the record value stored for key and its changelog offset;
// ok is false when the store has none. A value still in the group of puts
// is the one given to Put, not a copy: it must not be changed.
func (s *Store) Get(key string) (val []byte, off int64, ok bool, err error) {
	if w, pending, err := s.pendingOf(key); err != nil || pending {
		return w.val, w.off, w.val != nil, err
	}
	v, err := s.get(stateKey(key))
	if err != nil || v == nil {
		return nil, 0, false, err
	}
	if len(v) < headerLen || v[0] != valueFormat {
		return nil, 0, false, fmt.Errorf("%w: value of %q has an unknown format", ErrCorrupt, key)
	}
	return v[headerLen:], int64(binary.BigEndian.Uint64(v[1:headerLen])), true, nil
}

// Has reports whether the store holds a state for key (without copying
// it out).
func (s *Store) Has(key string) (bool, error) {
	if w, pending, err := s.pendingOf(key); err != nil || pending {
		return w.val != nil, err
	}
	v, closer, err := s.db.Get(stateKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	ok := len(v) >= headerLen && v[0] == valueFormat
	_ = closer.Close()
	if !ok {
		return false, fmt.Errorf("%w: value of %q has an unknown format", ErrCorrupt, key)
	}
	return true, nil
}

// pendingOf returns key's put state not yet written to Pebble; pending is
// false when there is none.
func (s *Store) pendingOf(key string) (w pendingWrite, pending bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.werr != nil {
		return w, false, s.werr
	}
	w, pending = s.pending[key]
	return w, pending, nil
}

// Put records the acknowledged changelog record at offset off for key (a
// nil val is a tombstone; val is kept, not copied, and must not change).
// Get and Has see it at once; it reaches Pebble with its group, in one
// atomic batch with the checkpoint the group allows. existed says whether
// the store held the key before (for the count).
func (s *Store) Put(key string, val []byte, off int64, existed bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("statestore: store closed")
	}
	if s.werr != nil {
		return s.werr
	}
	if s.pending == nil {
		s.pending = map[string]pendingWrite{}
	}
	if old, ok := s.pending[key]; ok {
		s.pendingBytes -= len(key) + len(old.val)
	}
	s.pending[key] = pendingWrite{val: val, off: off}
	s.pendingOffs = append(s.pendingOffs, off)
	s.pendingBytes += len(key) + len(val)
	switch {
	case val == nil && existed:
		s.count.Add(-1)
	case val != nil && !existed:
		s.count.Add(1)
	}
	if s.pendingBytes >= s.writeBytes {
		return s.writePending()
	}
	if !s.timerSet {
		s.timerSet = true
		if s.timer == nil {
			s.timer = time.AfterFunc(s.writeDelay, s.writeLater)
		} else {
			s.timer.Reset(s.writeDelay)
		}
	}
	return nil
}

// writeLater writes the group when its window ends.
func (s *Store) writeLater() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timerSet = false
	if !s.closed {
		if err := s.writePending(); err != nil {
			s.log.Error("local state store: writing a group of states failed; the store is rebuilt at the next assignment", "dir", s.dir, "err", err)
		}
	}
}

// writePending writes the group of puts to Pebble in one batch with the
// checkpoint, which passes every offset put (a state put twice in the
// group is written once: the later record replaces the earlier one on the
// changelog too). Called with mu held.
func (s *Store) writePending() error {
	if s.werr != nil {
		return s.werr
	}
	if len(s.pendingOffs) == 0 {
		return nil
	}
	// Keys and values are written straight into a batch made at the
	// group's size (kind, lengths, prefix and header of each entry, and the
	// checkpoint), so it does not grow by copies.
	b := s.db.NewBatchWithSize(batchHeader + s.pendingBytes + len(s.pending)*(batchEntry+1+headerLen) + batchEntry + len(keyCheckpoint) + 16)
	for key, w := range s.pending {
		if w.val == nil {
			op := b.DeleteDeferred(1 + len(key))
			op.Key[0] = statePrefix
			copy(op.Key[1:], key)
			_ = op.Finish()
			continue
		}
		op := b.SetDeferred(1+len(key), headerLen+len(w.val))
		op.Key[0] = statePrefix
		copy(op.Key[1:], key)
		op.Value[0] = valueFormat
		binary.BigEndian.PutUint64(op.Value[1:headerLen], uint64(w.off))
		copy(op.Value[headerLen:], w.val)
		_ = op.Finish()
	}
	// The tracker moves before the batch is written: if the write fails,
	// the store is not used again.
	for _, off := range s.pendingOffs {
		s.trk.mark(off)
	}
	now := time.Now()
	_ = b.Set(keyCheckpoint, encodeCheckpoint(s.trk.next, now), nil)
	err := s.commit(b)
	_ = b.Close()
	clear(s.pending)
	s.pendingOffs, s.pendingBytes = s.pendingOffs[:0], 0
	if err != nil {
		s.werr = fmt.Errorf("statestore: write: %w", err)
		return s.werr
	}
	s.ckAt = now
	return nil
}

// Count returns the number of states on disk; ok is false until the count
// that follows a restore is done.
func (s *Store) Count() (n int64, ok bool) { return s.count.Load(), s.counted.Load() }

// CountInBackground counts the stored states (after a restore) while the
// store is in use; writes meanwhile adjust the count.
func (s *Store) CountInBackground() {
	s.mu.Lock()
	s.count.Store(0)
	s.counted.Store(false)
	s.mu.Unlock()
	it, err := s.scan()
	if err != nil {
		return
	}
	go func() {
		defer s.iters.Done()
		var n int64
		for ok := it.First(); ok && !s.closing.Load(); ok = it.Next() {
			n++
		}
		stopped := s.closing.Load()
		if it.Close() == nil && !stopped {
			s.count.Add(n)
			s.counted.Store(true)
		}
	}()
}

// Each calls fn for every stored state until it returns false; the value
// passed is only valid during the call.
func (s *Store) Each(fn func(key string, val []byte, off int64) bool) error {
	it, err := s.scan()
	if err != nil {
		return err
	}
	defer s.iters.Done()
	for ok := it.First(); ok && !s.closing.Load(); ok = it.Next() {
		v := it.Value()
		if len(v) < headerLen || v[0] != valueFormat {
			continue
		}
		if !fn(string(it.Key()[1:]), v[headerLen:], int64(binary.BigEndian.Uint64(v[1:headerLen]))) {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}

// Close writes the checkpoint durably, closes the store and notes the time
// in the store's folder for the clean-up of unowned stores.
func (s *Store) Close() error {
	s.mu.Lock() // a scan registers under the lock: after it, none starts
	s.closing.Store(true)
	s.mu.Unlock()
	s.iters.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	werr := s.writePending()
	s.closed = true
	err := s.db.Set(keyCheckpoint, encodeCheckpoint(s.trk.next, s.ckAt), pebble.Sync)
	if werr != nil {
		err = werr
	}
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	now := time.Now()
	_ = os.Chtimes(filepath.Join(s.dir, markerFile), now, now)
	return err
}

// MarkUntrusted makes the next Open rebuild the store (after a read
// failed).
func (s *Store) MarkUntrusted() {
	_ = os.Remove(filepath.Join(s.dir, markerFile))
}

// LastUsed returns when the store in dir was last closed (or, after a
// crash, last written); ok is false when dir holds no store.
func LastUsed(dir string) (time.Time, bool) {
	fi, err := os.Stat(filepath.Join(dir, markerFile))
	if err != nil {
		return time.Time{}, false
	}
	t := fi.ModTime()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.ModTime().After(t) {
			t = info.ModTime()
		}
	}
	return t, true
}

// tracker keeps the checkpoint: next is the lowest offset not known to be
// written locally; done holds the written offsets above it.
type tracker struct {
	next int64
	done map[int64]struct{}
}

// peek returns what next becomes once off is marked.
func (t *tracker) peek(off int64) int64 {
	if off != t.next {
		return t.next
	}
	n := off + 1
	for {
		if _, ok := t.done[n]; !ok {
			return n
		}
		n++
	}
}

func (t *tracker) mark(off int64) {
	switch {
	case off < t.next:
		return
	case off > t.next:
		if t.done == nil {
			t.done = map[int64]struct{}{}
		}
		t.done[off] = struct{}{}
		return
	}
	t.next++
	for {
		if _, ok := t.done[t.next]; !ok {
			return
		}
		delete(t.done, t.next)
		t.next++
	}
}

// reset moves the checkpoint to off and forgets what was above it.
func (t *tracker) reset(off int64) {
	t.next = off
	clear(t.done)
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(string, ...any) {}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("state store: " + fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error("state store: fatal: " + fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}

var _ io.Closer = (*Store)(nil)
