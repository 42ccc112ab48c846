package console

import (
	"bytes"
	"container/heap"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/dlq"
	"github.com/orderflow/orderflow/topics"
)

// The index is one Pebble store. Keys (every part after the first byte is
// fixed-width big endian, or a string ended by 0x00 where more follows):
//
//	M<name>                      the store's own records: format, identity,
//	                             checkpoints (topic 0x00 partition → next offset),
//	                             counts by status (and of orders flagged
//	                             possible_duplicate)
//	o<id>                        order summary (summarycodec.go)
//	x<status>0<step>0<created><id>  orders by status and current step (every
//	                             order has one: the unfiltered list merges them)
//	f<flag>0<created><id>        flagged orders (possible_duplicate:<step>,
//	                             refunded_after_shipping, partially_refunded)
//	e<event id>0<id>             search keys of the event ids of orders
//	                             records (OF- numbers, emails, tracking and
//	                             invoice numbers and a state's event ids are
//	                             in memory, terms.go)
//	i<seq>                       the id of the order numbered seq in the
//	                             index (Summary.Seq, terms.go)
//	v<id>0<partition><offset>    an orders record of the order (EventInfo)
//	d<partition><offset>         a dead letter (LetterInfo, without the event)
//	D<id>0<partition><offset>    the order's dead letters
//	a<partition><offset>         an audit record as on orders.audit
//	l<time><seq>                 an alert the console derived (Alert)
//
// Checkpoints are written in the same batch as the records they cover, so
// the store and its checkpoints agree after any crash (the WAL is off: a
// crash loses a suffix of batches, data and checkpoints together, and the
// follower reads them again).
const (
	// formatVersion is the key layout's; an index of another is rebuilt.
	// 3: no time key (t<created><id>), lists merge the x keys.
	// 4: the orders flagged possible_duplicate are counted.
	// 5: f keys and a count of the orders flagged refunded (after shipping,
	// or in part), which the refunded filter lists.
	// 6: no n, k and i keys nor e keys of a state's events (terms.go);
	// h keys; summaries keep the event ids.
	// 7: no @ keys nor h keys: emails and OF- numbers are in memory too,
	// the table giving each order's number in the index (i keys).
	formatVersion = "7"
	sep           = 0x00
)

var (
	keyFormat   = []byte("Mformat")
	keyIdentity = []byte("Midentity")
	prefixCk    = []byte("Mck")
	prefixCount = []byte("Mcount")
)

// ErrNotFound: no order with that id in the index.
var ErrNotFound = errors.New("console: not found")

// Identity says which cluster and topics an index copies; an index whose
// identity differs (another cluster, a topic deleted and created again) is
// rebuilt.
type Identity struct {
	ClusterID string            `json:"cluster_id"`
	Topics    map[string]string `json:"topics"` // name → topic id
}

// Index is the console's own copy of what it follows, on disk. Reads are
// safe for concurrent use with writes.
type Index struct {
	db  *pebble.DB
	dir string
	*stallClock

	mu      sync.Mutex // Apply
	counts  map[string]int64
	offsets map[string]map[int32]int64
	alerts  uint64
	stats   *Stats
	seen    *seen
	terms   *terms
	seq     uint32 // the highest order number given (Summary.Seq)

	running     atomic.Bool
	corruptOnce sync.Once
	corrupt     chan error
}

// corruptMarker is the file an index found corrupt while running leaves
// in its folder: the next open rebuilds it.
const corruptMarker = "CORRUPT"

// Corrupt is sent an error, once, when the store finds corrupt data
// while the console runs (a compaction or a read meeting a block that
// fails its checksum). The index is then marked to be rebuilt at its next
// open. Pebble retries a failed compaction for ever, a core's worth of
// CPU, so the console should stop.
func (ix *Index) Corrupt() <-chan error { return ix.corrupt }

func (ix *Index) corrupted(err error) {
	if !ix.running.Load() {
		return
	}
	ix.corruptOnce.Do(func() {
		_ = os.WriteFile(filepath.Join(ix.dir, corruptMarker), []byte(err.Error()+"\n"), 0o600)
		ix.corrupt <- err
	})
}

// OpenIndex opens the index in dir, creating it when absent. An index of
// another identity, of an unknown format, or that cannot be opened is
// wiped and started anew; rebuilt says why ("" when it was kept).
func OpenIndex(dir string, id Identity, cacheBytes int64) (ix *Index, rebuilt string, err error) {
	if cacheBytes <= 0 {
		cacheBytes = 64 << 20
	}
	// A folder that cannot be created is a setting to correct, not an
	// unreadable index to wipe.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("console: index folder: %w", err)
	}
	ix, reason, err := openIndex(dir, id, cacheBytes)
	if err != nil && (errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "lock held by current process")) {
		// Pebble's lock: another console is using the folder. Not an
		// unreadable index: wiping it would pull it from under that one.
		return nil, "", fmt.Errorf("console: index folder %s is in use by another console (give each its own --index-dir)", dir)
	}
	if err != nil || reason != "" {
		if ix != nil {
			_ = ix.db.Close()
		}
		if reason == "" {
			reason = err.Error()
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, "", fmt.Errorf("console: clear index %s: %w", dir, err)
		}
		ix, again, err := openIndex(dir, id, cacheBytes)
		if err != nil {
			return nil, "", err
		}
		if again != "" {
			_ = ix.db.Close()
			return nil, "", fmt.Errorf("console: new index in %s unusable: %s", dir, again)
		}
		return ix.opened(), reason, nil
	}
	return ix.opened(), "", nil
}

// opened marks ix open: from here on, corruption the store finds is
// reported (before, the open itself fails and the index is rebuilt).
func (ix *Index) opened() *Index {
	ix.running.Store(true)
	return ix
}

func openIndex(dir string, id Identity, cacheBytes int64) (*Index, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("console: index folder: %w", err)
	}
	cache := pebble.NewCache(cacheBytes)
	defer cache.Unref()
	// A catch-up writes about eight keys per order, most of them random
	// (emails, tracking numbers, ids): every compaction of L0 into the
	// base level rewrites most of that level. Larger memtables, more of
	// them queued, more L0 files before a compaction and a larger base
	// level make those compactions rarer and larger: at 500,000 orders
	// about a third of the bytes compacted, and no write stalls
	// (BenchmarkApplyLarge). Memtables are allocated outside the Go heap,
	// as the cache is: up to 3 × 32 MiB while flushes lag behind (four
	// took the console's peak RSS over 256 MiB at 1,000,000 orders).
	opts := &pebble.Options{
		Cache:                       cache,
		DisableWAL:                  true,
		MemTableSize:                32 << 20,
		MemTableStopWritesThreshold: 3,
		L0CompactionThreshold:       12,
		L0StopWritesThreshold:       48,
		LBaseMaxBytes:               256 << 20,
		Logger:                      quietLogger{},
	}
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	opts.Levels[0].FilterType = pebble.TableFilter
	for i := 1; i < len(opts.Levels); i++ {
		opts.Levels[i] = opts.Levels[0]
	}
	st := &stallClock{}
	ix := &Index{dir: dir, stallClock: st, counts: map[string]int64{}, offsets: map[string]map[int32]int64{}, stats: newStats(), seen: newSeen(), terms: newTerms(), corrupt: make(chan error, 1)}
	opts.EventListener = &pebble.EventListener{WriteStallBegin: st.begin, WriteStallEnd: st.end,
		// A block failing its checksum fails the read: at open the index
		// is rebuilt, while running it is marked to be (Corrupt). Pebble's
		// default would end the process, at every start again.
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			ix.corrupted(fmt.Errorf("%s: %v", info.Path, info.Details))
		},
		BackgroundError: func(err error) {
			if errors.Is(err, pebble.ErrCorruption) {
				ix.corrupted(err)
			}
		}}
	db, err := pebble.Open(filepath.Clean(dir), opts)
	if err != nil {
		return nil, "", fmt.Errorf("console: open index: %w", err)
	}
	ix.db = db
	if _, err := os.Stat(filepath.Join(dir, corruptMarker)); err == nil {
		// Checked with the store's lock held: a console still running on
		// the folder is not wiped from under.
		return ix, "index found corrupt while the console ran", nil
	}
	want, _ := json.Marshal(id)
	f, err := ix.get(keyFormat)
	if err != nil {
		return ix, "index unreadable: " + err.Error(), nil
	}
	if f == nil {
		// New: write the format and identity.
		b := db.NewBatch()
		_ = b.Set(keyFormat, []byte(formatVersion), nil)
		_ = b.Set(keyIdentity, want, nil)
		if err := b.Commit(pebble.NoSync); err == nil {
			err = db.Flush()
		}
		if err != nil {
			_ = db.Close()
			return nil, "", fmt.Errorf("console: write index: %w", err)
		}
		return ix, "", nil
	}
	if string(f) != formatVersion {
		return ix, fmt.Sprintf("index format %q, this build writes %q", f, formatVersion), nil
	}
	got, err := ix.get(keyIdentity)
	if err != nil || !bytes.Equal(got, want) {
		return ix, "index of other topics or another cluster", nil
	}
	if err := ix.load(); err != nil {
		return ix, "index unreadable: " + err.Error(), nil
	}
	return ix, "", nil
}

// stallClock counts the store's write stalls (writes held back while
// compactions catch up) and their time.
type stallClock struct {
	mu      sync.Mutex
	since   time.Time
	stalls  int
	stalled time.Duration
	reason  string // the last stall's
}

func (c *stallClock) begin(i pebble.WriteStallBeginInfo) {
	c.mu.Lock()
	c.reason = i.Reason
	c.stalls++
	c.since = time.Now()
	c.mu.Unlock()
}

func (c *stallClock) end() {
	c.mu.Lock()
	c.stalled += time.Since(c.since)
	c.mu.Unlock()
}

// load reads the checkpoints and counts, and fills the filter of order
// ids and the table of search terms from the summaries.
func (ix *Index) load() error {
	it, err := ix.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'o'}, UpperBound: []byte{'o' + 1}, KeyTypes: pebble.IterKeyTypePointsOnly})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		ix.seen.add(string(it.Key()[1:]))
		s, err := decodeSummary(it.Value())
		if err != nil {
			err = fmt.Errorf("summary of %q: %w", it.Key()[1:], err)
			it.Close()
			return err
		}
		ix.terms.add(nil, s)
		ix.seq = max(ix.seq, s.Seq)
	}
	if err := it.Close(); err != nil {
		return err
	}
	return ix.scan(prefixCk, func(k, v []byte) error {
		rest := k[len(prefixCk):]
		i := bytes.IndexByte(rest, sep)
		if i < 0 || len(rest) != i+5 || len(v) != 8 {
			return fmt.Errorf("bad checkpoint key %q", k)
		}
		topic := string(rest[:i])
		p := int32(binary.BigEndian.Uint32(rest[i+1:]))
		if ix.offsets[topic] == nil {
			ix.offsets[topic] = map[int32]int64{}
		}
		ix.offsets[topic][p] = int64(binary.BigEndian.Uint64(v))
		return nil
	}, prefixCount, func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("bad count %q", k)
		}
		ix.counts[string(k[len(prefixCount):])] = int64(binary.BigEndian.Uint64(v))
		return nil
	})
}

func (ix *Index) scan(pairs ...any) error {
	for i := 0; i < len(pairs); i += 2 {
		prefix := pairs[i].([]byte)
		fn := pairs[i+1].(func(k, v []byte) error)
		it, err := ix.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			if err := fn(it.Key(), it.Value()); err != nil {
				it.Close()
				return err
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	return nil
}

// Close flushes the index to disk and closes it.
func (ix *Index) Close() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err := ix.db.Flush(); err != nil {
		_ = ix.db.Close()
		return fmt.Errorf("console: flush index: %w", err)
	}
	return ix.db.Close()
}

// Offsets returns the next offset to read of every partition checkpointed.
func (ix *Index) Offsets() map[string]map[int32]int64 {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	out := map[string]map[int32]int64{}
	for t, ps := range ix.offsets {
		out[t] = map[int32]int64{}
		for p, o := range ps {
			out[t][p] = o
		}
	}
	return out
}

// Counts returns the number of orders by index status (Summary.Status).
func (ix *Index) Counts() map[string]int64 {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	out := make(map[string]int64, len(ix.counts))
	for k, v := range ix.counts {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

func (ix *Index) get(k []byte) ([]byte, error) {
	v, closer, err := ix.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := slices.Clone(v)
	closer.Close()
	return out, nil
}

// Names are the topics Apply files records of.
type Names = topics.Names

// Apply files records polled from the followed topics, in one batch with
// the checkpoint past each, and returns how many it read. Only the last
// state of an order within recs is decoded: earlier ones would be
// replaced at once.
func (ix *Index) Apply(names Names, recs []*kgo.Record) (int, error) {
	return ix.ApplyDecoded(Decode(names, recs))
}

// Decoded is a poll of records with its states read, ready for
// ApplyDecoded. Decoding needs no lock: a follower decodes the next poll
// while the index writes the one before.
type Decoded struct {
	names Names
	recs  []*kgo.Record
	// states[i] is recs[i] read, when it is the last state of its order
	// in recs (nil for every other record).
	states []*decoded
}

// Decode reads the last state of each order in recs (on every core).
func Decode(names Names, recs []*kgo.Record) *Decoded {
	last := map[string]int{}
	for i, r := range recs {
		if r.Topic == names.State {
			last[string(r.Key)] = i
		}
	}
	return &Decoded{names: names, recs: recs, states: decodeStates(recs, last)}
}

// ApplyDecoded files a decoded poll as Apply does.
func (ix *Index) ApplyDecoded(d *Decoded) (int, error) {
	names, recs, decoded := d.names, d.recs, d.states
	if len(recs) == 0 {
		return 0, nil
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	b := ix.db.NewBatch()
	defer b.Close()
	next := map[string]map[int32]int64{}
	counts := map[string]int64{}
	for i, r := range recs {
		if next[r.Topic] == nil {
			next[r.Topic] = map[int32]int64{}
		}
		next[r.Topic][r.Partition] = r.Offset + 1
		var err error
		switch r.Topic {
		case names.State:
			if decoded[i] != nil {
				err = ix.applyState(b, r, decoded[i], counts)
			}
		case names.Orders:
			ix.applyEvent(b, r)
		case names.DLQ:
			ix.applyLetter(b, r)
		case names.Audit:
			_ = b.Set(posKey('a', r.Partition, r.Offset), r.Value, nil)
		}
		if err != nil {
			return 0, err
		}
	}
	for t, ps := range next {
		for p, o := range ps {
			_ = b.Set(ckKey(t, p), be64(uint64(o)), nil)
		}
	}
	for s, d := range counts {
		if d != 0 {
			_ = b.Set(append(slices.Clip(prefixCount), s...), be64(uint64(ix.counts[s]+d)), nil)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, fmt.Errorf("console: write index: %w", err)
	}
	for s, d := range counts {
		ix.counts[s] += d
	}
	for t, ps := range next {
		if ix.offsets[t] == nil {
			ix.offsets[t] = map[int32]int64{}
		}
		for p, o := range ps {
			ix.offsets[t][p] = o
		}
	}
	return len(recs), nil
}

// useDigests and scanStates turn the digest header and the scan of state
// records on (off only to compare the paths in benchmarks).
var (
	useDigests = true
	scanStates = true
)

// decoded is a state record read for the index.
type decoded struct {
	sum *Summary // nil for a tombstone
	bad bool     // unreadable: the index keeps what it had
	enc []byte   // sum as stored, but its Seq (appendSummaryBody)
}

// decodeStates reads the last state of each order in recs, on every
// core: from the record's digest header when it has one that checks
// (processor.RecordDigest), else the fields the index keeps are scanned
// (scan.go), and a record the scan does not answer for is decoded in
// full.
func decodeStates(recs []*kgo.Record, last map[string]int) []*decoded {
	idx := make([]int, 0, len(last))
	for _, i := range last {
		idx = append(idx, i)
	}
	out := make([]*decoded, len(idx))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(idx)/64))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sc stateScanner
			for k := w; k < len(idx); k += workers {
				r := recs[idx[k]]
				d := &decoded{}
				if dg, ok := processor.RecordDigest(r); ok && useDigests {
					s := SummaryFromDigest(&dg)
					s.StatePartition, s.StateOffset = r.Partition, r.Offset
					d.sum = &s
					d.enc = appendSummaryBody(nil, &s)
				} else if r.Value != nil {
					var st *processor.State
					ok := false
					if scanStates {
						st, ok = sc.scan(r.Value)
					}
					var err error
					if !ok {
						st, err = decodeState(r.Value)
					}
					if err != nil {
						d.bad = true
					} else {
						s := Summarize(st)
						// Where the state record is: a page reads it from
						// Kafka, the index keeps no copy.
						s.StatePartition, s.StateOffset = r.Partition, r.Offset
						d.sum = &s
						d.enc = appendSummaryBody(nil, &s)
					}
				}
				out[k] = d
			}
		}()
	}
	wg.Wait()
	m := make([]*decoded, len(recs))
	for k, i := range idx {
		m[i] = out[k]
	}
	return m
}

// applyState files the latest state of an order, replacing the keys of the
// one before.
func (ix *Index) applyState(b *pebble.Batch, r *kgo.Record, d *decoded, counts map[string]int64) error {
	id := string(r.Key)
	if id == "" || d.bad {
		// An unreadable state: keep what the index had (the processor
		// skips it too, with an alert).
		return nil
	}
	var old *Summary
	if ix.seen.maybe(id) {
		if v, err := ix.get(oKey(id)); err != nil {
			return fmt.Errorf("console: read index: %w", err)
		} else if v != nil {
			old, _ = decodeSummary(v)
		}
	}
	cur := d.sum
	var oldKeys, newKeys [][]byte
	if old != nil {
		oldKeys = summaryKeys(old)
		counts[old.Status]--
		if len(old.PossibleDuplicates()) > 0 {
			counts[FilterPossibleDuplicate]--
		}
		if old.refundFlaggedOnly() {
			counts[countRefundFlagged]--
		}
	}
	if cur != nil {
		newKeys = summaryKeys(cur)
		counts[cur.Status]++
		if len(cur.PossibleDuplicates()) > 0 {
			counts[FilterPossibleDuplicate]++
		}
		if cur.refundFlaggedOnly() {
			counts[countRefundFlagged]++
		}
	}
	for _, k := range oldKeys {
		if !containsKey(newKeys, k) {
			_ = b.Delete(k, nil)
		}
	}
	for _, k := range newKeys {
		if !containsKey(oldKeys, k) {
			_ = b.Set(k, nil, nil)
		}
	}
	if cur == nil {
		_ = b.Delete(oKey(id), nil)
		if old != nil {
			_ = b.Delete(iKey(old.Seq), nil)
		}
		return nil
	}
	if old != nil {
		cur.Seq = old.Seq
	} else {
		ix.seq++
		cur.Seq = ix.seq
		_ = b.Set(iKey(cur.Seq), []byte(id), nil)
	}
	ix.terms.add(old, cur)
	ix.seen.add(id)
	_ = b.Set(oKey(id), appendSeq(d.enc, cur.Seq), nil)
	ix.stats.observe(old, cur, r.Timestamp)
	ix.deriveAlerts(b, old, cur, r.Timestamp)
	return nil
}

// summaryKeys are the list and search keys of a summary.
func summaryKeys(s *Summary) [][]byte {
	ts := timeBytes(s.Created)
	keys := [][]byte{
		cat([]byte{'x'}, []byte(s.Status), []byte{sep}, []byte(s.Step), []byte{sep}, ts, []byte(s.ID)),
	}
	for _, f := range s.Flags {
		if strings.HasPrefix(f, processor.FlagPossibleDuplicatePrefix) || slices.Contains(refundFlags, f) {
			keys = append(keys, cat([]byte{'f'}, []byte(f), []byte{sep}, ts, []byte(s.ID)))
		}
	}
	return keys
}

func containsKey(ks [][]byte, k []byte) bool {
	for _, x := range ks {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}

// EventInfo is one record of `orders` for an order: a Stripe event, a
// replay of a dead letter, or another request.
type EventInfo struct {
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	At        time.Time `json:"at"`
	Type      string    `json:"type"`
	EventID   string    `json:"event_id,omitempty"`
	Replay    int       `json:"replay,omitempty"`
	Source    string    `json:"source,omitempty"` // the dead letter a replay came from
}

// applyEvent files an `orders` record from its headers; the event itself
// (customer data) is not read.
func (ix *Index) applyEvent(b *pebble.Batch, r *kgo.Record) {
	id := string(r.Key)
	if id == "" {
		return
	}
	e := EventInfo{Partition: r.Partition, Offset: r.Offset, At: r.Timestamp}
	for _, h := range r.Headers {
		switch h.Key {
		case topics.HeaderEventID:
			e.EventID = string(h.Value)
		case topics.HeaderEventType:
			e.Type = string(h.Value)
		case topics.HeaderReplay:
			fmt.Sscan(string(h.Value), &e.Replay)
		case topics.HeaderReplaySource:
			e.Source = string(h.Value)
		}
	}
	if e.EventID == "" && e.Type == "" {
		if env, err := topics.DecodeEnvelope(r.Value); err == nil {
			e.EventID, e.Type = env.EventID, env.EventType
		}
	}
	v, _ := json.Marshal(e)
	_ = b.Set(cat([]byte{'v'}, []byte(id), []byte{sep}, be32(uint32(r.Partition)), be64(uint64(r.Offset))), v, nil)
	if e.EventID != "" {
		_ = b.Set(termKey('e', e.EventID, id), nil, nil)
	}
}

// LetterInfo is a dead letter as the index keeps it: its headers, not the
// event.
type LetterInfo struct {
	Partition    int32     `json:"partition"`
	Offset       int64     `json:"offset"`
	Order        string    `json:"order_id"`
	Step         string    `json:"step,omitempty"`
	Class        string    `json:"class,omitempty"`
	Error        string    `json:"error,omitempty"`
	Attempts     int       `json:"attempts,omitempty"`
	FirstFailure time.Time `json:"first_failure,omitzero"`
	LastFailure  time.Time `json:"last_failure,omitzero"`
	ReplayCount  int       `json:"replay_count,omitempty"`
	EventID      string    `json:"event_id,omitempty"`
	EventType    string    `json:"event_type,omitempty"`
	Written      time.Time `json:"written"`
}

// Source is the letter's "<partition>/<offset>".
func (l LetterInfo) Source() string { return topics.Source(l.Partition, l.Offset) }

// DeadLetter is the letter in the form dlq.Filter matches.
func (l LetterInfo) DeadLetter() dlq.DeadLetter {
	return dlq.DeadLetter{Partition: l.Partition, Offset: l.Offset, Timestamp: l.Written, Key: l.Order,
		Step: l.Step, Class: l.Class, Error: l.Error, Attempts: l.Attempts, FirstFailure: l.FirstFailure,
		LastFailure: l.LastFailure, ReplayCount: l.ReplayCount, OriginalPartition: -1, OriginalOffset: -1}
}

func (ix *Index) applyLetter(b *pebble.Batch, r *kgo.Record) {
	d := dlq.FromRecord(r)
	l := LetterInfo{Partition: d.Partition, Offset: d.Offset, Order: d.Key, Step: d.Step, Class: d.Class,
		Error: dlq.Cut(d.Error, 512), Attempts: d.Attempts, FirstFailure: d.FirstFailure, LastFailure: d.LastFailure,
		ReplayCount: d.ReplayCount, Written: d.Timestamp}
	l.EventID, _ = d.Header(topics.HeaderEventID)
	l.EventType, _ = d.Header(topics.HeaderEventType)
	v, _ := json.Marshal(l)
	_ = b.Set(posKey('d', r.Partition, r.Offset), v, nil)
	if l.Order != "" {
		_ = b.Set(cat([]byte{'D'}, []byte(l.Order), []byte{sep}, be32(uint32(r.Partition)), be64(uint64(r.Offset))), nil, nil)
	}
	ix.addAlert(b, Alert{At: d.FailedAt(), Order: l.Order, Step: l.Step,
		Text: fmt.Sprintf("dead letter %s (%s): %s", l.Source(), orDash(l.Class), dlq.Cut(l.Error, 120))})
}

// Get returns an order's summary; its StatePartition and StateOffset say
// where its state record is on orders.state.
func (ix *Index) Get(id string) (*Summary, error) {
	s, err := ix.summary(id)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, ErrNotFound
	}
	return s, nil
}

func (ix *Index) summary(id string) (*Summary, error) {
	v, err := ix.get(oKey(id))
	if err != nil || v == nil {
		return nil, err
	}
	return decodeSummary(v)
}

// Events returns the order's `orders` records, oldest first.
func (ix *Index) Events(id string) ([]EventInfo, error) {
	var out []EventInfo
	p := cat([]byte{'v'}, []byte(id), []byte{sep})
	err := ix.scan(p, func(_, v []byte) error {
		var e EventInfo
		if json.Unmarshal(v, &e) == nil {
			out = append(out, e)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b EventInfo) int { return a.At.Compare(b.At) })
	return out, err
}

// LettersOf returns the order's dead letters in partition/offset order.
func (ix *Index) LettersOf(id string) ([]LetterInfo, error) {
	var keys [][]byte
	p := cat([]byte{'D'}, []byte(id), []byte{sep})
	if err := ix.scan(p, func(k, _ []byte) error {
		keys = append(keys, append([]byte{'d'}, k[len(p):]...))
		return nil
	}); err != nil {
		return nil, err
	}
	var out []LetterInfo
	for _, k := range keys {
		v, err := ix.get(k)
		if err != nil {
			return nil, err
		}
		var l LetterInfo
		if v != nil && json.Unmarshal(v, &l) == nil {
			out = append(out, l)
		}
	}
	return out, nil
}

// Letter is a dead letter with where it stands (dlq.LetterStatus).
type Letter struct {
	LetterInfo
	Status string `json:"status"`
}

// Letters returns the dead letters f and statuses select, newest first, at
// most limit (0: all), and how many matched in all.
func (ix *Index) Letters(f dlq.Filter, statuses []string, limit int) ([]Letter, int, error) {
	var out []Letter
	total := 0
	cache := map[string]*Summary{}
	it, err := ix.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'d'}, UpperBound: []byte{'d' + 1}})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	var all []LetterInfo
	for ok := it.First(); ok; ok = it.Next() {
		var l LetterInfo
		if json.Unmarshal(it.Value(), &l) != nil || !f.Match(l.DeadLetter()) {
			continue
		}
		all = append(all, l)
	}
	slices.SortStableFunc(all, func(a, b LetterInfo) int { return b.Written.Compare(a.Written) })
	for _, l := range all {
		st := ix.letterStatus(l, cache)
		if len(statuses) > 0 && !slices.Contains(statuses, st) {
			continue
		}
		total++
		if limit <= 0 || len(out) < limit {
			out = append(out, Letter{LetterInfo: l, Status: st})
		}
	}
	return out, total, nil
}

func (ix *Index) letterStatus(l LetterInfo, cache map[string]*Summary) string {
	s, ok := cache[l.Order]
	if !ok {
		s, _ = ix.summary(l.Order)
		cache[l.Order] = s
	}
	if s == nil {
		return dlq.LetterStatus(l.Source(), l.EventType, nil)
	}
	return dlq.LetterStatus(l.Source(), l.EventType, &processor.State{Status: s.StateStatus, Replays: s.Replays})
}

// OpenLetters counts the dead letters that stand open.
func (ix *Index) OpenLetters() (int, error) {
	_, n, err := ix.Letters(dlq.Filter{}, []string{dlq.LetterOpen}, 1)
	return n, err
}

// Audits returns audit records, newest first, at most limit.
func (ix *Index) Audits(limit int) ([]topics.AuditRecord, error) {
	recs, _, err := ix.AuditPage("", limit)
	return recs, err
}

// AuditPage returns audit records, newest first (orders.audit has one
// partition: by offset), from before cursor ("" for the newest), at most
// limit, and the cursor of the next (older) page ("" on the last).
func (ix *Index) AuditPage(cursor string, limit int) ([]topics.AuditRecord, string, error) {
	if limit <= 0 {
		limit = 100
	}
	opts := &pebble.IterOptions{LowerBound: []byte{'a'}, UpperBound: []byte{'a' + 1}}
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(b) != 12 {
			return nil, "", fmt.Errorf("%w: page cursor %q is not one this console wrote", ErrBadQuery, cursor)
		}
		opts.UpperBound = cat([]byte{'a'}, b)
	}
	it, err := ix.db.NewIter(opts)
	if err != nil {
		return nil, "", err
	}
	defer it.Close()
	var out []topics.AuditRecord
	var last []byte
	ok := it.Last()
	for ; ok && len(out) < limit; ok = it.Prev() {
		if a, err := topics.DecodeAudit(it.Value()); err == nil {
			out = append(out, a)
			last = slices.Clone(it.Key()[1:])
		}
	}
	next := ""
	if ok && last != nil {
		next = base64.RawURLEncoding.EncodeToString(last)
	}
	return out, next, nil
}

// Page is one page of a list, newest first.
type Page struct {
	Orders []Summary
	// Next is the cursor of the next (older) page; "" on the last.
	Next string
}

// List returns the orders q selects, newest first by creation, from after
// cursor ("" for the first page), at most limit. A Term is searched for
// (Search) and the other fields filter what it finds.
func (ix *Index) List(q Query, cursor string, limit int) (Page, error) {
	if err := q.Validate(); err != nil {
		return Page{}, err
	}
	if limit <= 0 {
		limit = 50
	}
	if strings.TrimSpace(q.Term) != "" {
		found, err := ix.Search(q, limit)
		return Page{Orders: found}, err
	}
	var after []byte
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(b) < 9 {
			return Page{}, fmt.Errorf("%w: page cursor %q is not one this console wrote", ErrBadQuery, cursor)
		}
		after = b
	}
	lo, hi := timeBytes(q.Since), []byte(nil)
	if !q.Until.IsZero() {
		hi = timeBytes(q.Until)
	}
	var prefixes [][]byte
	switch {
	case len(q.Statuses) == 0 && len(q.Steps) == 0:
		// Every order has one x key: merge the (status, step) prefixes
		// the index holds.
		var err error
		if prefixes, err = ix.statusPrefixes(); err != nil {
			return Page{}, err
		}
	default:
		prefixes = q.prefixes()
	}
	h := &mergeHeap{}
	defer func() {
		for _, c := range *h {
			c.it.Close()
		}
	}()
	for _, p := range prefixes {
		opts := &pebble.IterOptions{LowerBound: cat(p, lo), UpperBound: prefixEnd(p)}
		if hi != nil {
			opts.UpperBound = cat(p, hi)
		}
		if after != nil && bytes.Compare(cat(p, after), opts.UpperBound) < 0 {
			opts.UpperBound = cat(p, after)
		}
		it, err := ix.db.NewIter(opts)
		if err != nil {
			return Page{}, err
		}
		if !it.Last() {
			it.Close()
			continue
		}
		heap.Push(h, &cursorIter{it: it, plen: len(p)})
	}
	var page Page
	var last, prev []byte
	for h.Len() > 0 && len(page.Orders) < limit {
		c := (*h)[0]
		suffix := c.suffix()
		// An order under several of the prefixes (two flags) comes from
		// each in turn, next to itself in the merge: it is listed once.
		if !bytes.Equal(suffix, prev) {
			prev = append(prev[:0], suffix...)
			id := string(suffix[8:])
			s, err := ix.summary(id)
			if err != nil {
				return Page{}, err
			}
			if s != nil && q.Match(s) {
				page.Orders = append(page.Orders, *s)
				last = slices.Clone(suffix)
			}
		}
		if c.it.Prev() {
			heap.Fix(h, 0)
		} else {
			c.it.Close()
			heap.Pop(h)
		}
	}
	if h.Len() > 0 && last != nil {
		page.Next = base64.RawURLEncoding.EncodeToString(last)
	}
	return page, nil
}

// statusPrefixes are the x<status>0<step>0 prefixes of the x keys in the
// index, found by seeking past each one (a few dozen at most).
func (ix *Index) statusPrefixes() ([][]byte, error) {
	it, err := ix.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'x'}, UpperBound: []byte{'x' + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out [][]byte
	for ok := it.First(); ok; {
		k := it.Key()
		i := bytes.IndexByte(k[1:], sep)
		j := -1
		if i >= 0 {
			j = bytes.IndexByte(k[1+i+1:], sep)
		}
		if j < 0 {
			// Not an x key this build writes: step past it.
			ok = it.Next()
			continue
		}
		p := slices.Clone(k[:1+i+1+j+1])
		out = append(out, p)
		ok = it.SeekGE(prefixEnd(p))
	}
	return out, it.Error()
}

// prefixes are the x and f key prefixes a status and step filter reads.
func (q Query) prefixes() [][]byte {
	steps := q.Steps
	if len(steps) == 0 {
		steps = append(slices.Clone(processor.Chain), noStep)
	}
	statuses := q.Statuses
	if len(statuses) == 0 {
		statuses = []string{string(processor.StatusCompleted), string(processor.StatusInProgress), StatusWaiting,
			string(processor.StatusDeadLettered), string(processor.StatusParked), string(processor.StatusRefunded),
			string(processor.StatusAwaitingPayment), string(processor.StatusPaymentFailed), "erased"}
	}
	var out [][]byte
	seen := map[string]bool{}
	add := func(p []byte) {
		if !seen[string(p)] {
			seen[string(p)] = true
			out = append(out, p)
		}
	}
	for _, st := range statuses {
		if st == FilterPossibleDuplicate {
			for _, step := range steps {
				if step != noStep {
					add(cat([]byte{'f'}, []byte(processor.FlagPossibleDuplicatePrefix+step), []byte{sep}))
				}
			}
			continue
		}
		if st == string(processor.StatusRefunded) {
			// Also the orders refunded after shipping or in part, which
			// went on: by their flags, whatever their step (Match checks
			// it).
			for _, f := range refundFlags {
				add(cat([]byte{'f'}, []byte(f), []byte{sep}))
			}
		}
		for _, s := range expandStatus(st) {
			for _, step := range steps {
				add(cat([]byte{'x'}, []byte(s), []byte{sep}, []byte(step), []byte{sep}))
			}
		}
	}
	return out
}

// Search finds the orders whose id, OF- number, customer email, tracking
// number, invoice number or event id is the term, whole (an OF- number
// and an email in any case, as MatchTerm), keeps those the rest of q
// selects, and returns the newest, at most limit.
func (ix *Index) Search(q Query, limit int) ([]Summary, error) {
	term := strings.TrimSpace(q.Term)
	if term == "" {
		return nil, nil
	}
	if limit <= 0 {
		limit = 50
	}
	ids := map[string]bool{}
	var order []string
	add := func(id string) {
		if !ids[id] {
			ids[id] = true
			order = append(order, id)
		}
	}
	read := map[string]*Summary{} // summaries read to check a candidate
	summary := func(id string) (*Summary, error) {
		if s, ok := read[id]; ok {
			return s, nil
		}
		s, err := ix.summary(id)
		read[id] = s
		return s, err
	}
	// One iterator for every kind of key, moved from prefix to prefix.
	it, err := ix.db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if v, err := ix.get(oKey(term)); err != nil {
		return nil, err
	} else if v != nil {
		add(term)
	}
	// The event ids of orders records.
	pre := cat([]byte{'e'}, []byte(term), []byte{sep})
	if err := scanLimit(it, pre, 1<<20, func(k []byte) { add(string(k[len(pre):])) }); err != nil {
		return nil, err
	}
	// The terms kept in memory: each candidate's id from its i key, checked
	// against its summary.
	for _, kind := range []byte{termNumber, termEmail, termTracking, termInvoice, termEvent} {
		for _, seq := range ix.terms.lookup(kind, term) {
			v, err := ix.get(iKey(seq))
			if err != nil {
				return nil, err
			}
			id := string(v)
			if v == nil || ids[id] {
				continue
			}
			s, err := summary(id)
			if err != nil {
				return nil, err
			}
			if s != nil && s.Seq == seq && MatchTerm(term, s) {
				add(id)
			}
		}
	}
	// Every match, newest first, then the limit: an email many orders
	// share gives its newest orders, as the search over Kafka does.
	var out []Summary
	for _, id := range order {
		s, err := summary(id)
		if err != nil {
			return nil, err
		}
		if s != nil && q.Match(s) {
			out = append(out, *s)
		}
	}
	slices.SortStableFunc(out, func(a, b Summary) int { return b.Created.Compare(a.Created) })
	return out[:min(len(out), limit)], nil
}

// scanLimit calls fn with the first keys of prefix, at most limit.
func scanLimit(it *pebble.Iterator, prefix []byte, limit int, fn func(k []byte)) error {
	it.SetBounds(prefix, prefixEnd(prefix))
	n := 0
	for ok := it.First(); ok && n < limit; ok = it.Next() {
		fn(it.Key())
		n++
	}
	return it.Error()
}

// cursorIter is one prefix's reverse iterator in a merge.
type cursorIter struct {
	it   *pebble.Iterator
	plen int
}

func (c *cursorIter) suffix() []byte { return c.it.Key()[c.plen:] }

// mergeHeap orders iterators by their current suffix (time, id), largest
// first.
type mergeHeap []*cursorIter

func (h mergeHeap) Len() int           { return len(h) }
func (h mergeHeap) Less(i, j int) bool { return bytes.Compare(h[i].suffix(), h[j].suffix()) > 0 }
func (h mergeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)        { *h = append(*h, x.(*cursorIter)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Alert is something the processor alerted a human about, as the console
// sees it in the records (dead letters, refunds, possible duplicates) or in
// the processors' metrics (a circuit opening).
type Alert struct {
	At    time.Time `json:"at"`
	Order string    `json:"order_id,omitempty"`
	Step  string    `json:"step,omitempty"`
	Text  string    `json:"text"`
}

func (ix *Index) addAlert(b *pebble.Batch, a Alert) {
	ix.alerts++
	v, _ := json.Marshal(a)
	_ = b.Set(cat([]byte{'l'}, timeBytes(a.At), be64(ix.alerts)), v, nil)
}

// deriveAlerts records the alerts a state change means.
func (ix *Index) deriveAlerts(b *pebble.Batch, old, cur *Summary, at time.Time) {
	if cur.Status == string(processor.StatusRefunded) && (old == nil || old.Status != cur.Status) {
		ix.addAlert(b, Alert{At: at, Order: cur.ID, Text: "order refunded before shipping: the chain stopped"})
	}
	for _, ra := range refundAlerts {
		if slices.Contains(cur.Flags, ra.flag) && (old == nil || !slices.Contains(old.Flags, ra.flag)) {
			ix.addAlert(b, Alert{At: at, Order: cur.ID, Text: ra.text})
		}
	}
	var before []string
	if old != nil {
		before = old.PossibleDuplicates()
	}
	for _, step := range cur.PossibleDuplicates() {
		if !slices.Contains(before, step) {
			ix.addAlert(b, Alert{At: at, Order: cur.ID, Step: step, Text: "possible duplicate at " + step + ": check the provider"})
		}
	}
}

// refundAlerts are the alerts of the refund flags, when an order gets one.
var refundAlerts = []struct{ flag, text string }{
	{processor.FlagPartiallyRefunded, "order partially refunded: credit the refund on the invoice by hand"},
	{processor.FlagRefundedAfterShipping, "order refunded after it shipped: stop or recall the shipment and credit the invoice by hand"},
	{processor.FlagRefundFailed, "a refund of the order did not go through at Stripe: the customer was not paid back; pay back another way"},
	{processor.FlagDisputed, "the order's payment was disputed (a chargeback): answer the dispute in Stripe before its evidence is due"},
}

// AddAlert records an alert seen outside the records (a circuit change in
// the processors' metrics).
func (ix *Index) AddAlert(a Alert) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	b := ix.db.NewBatch()
	defer b.Close()
	ix.addAlert(b, a)
	return b.Commit(pebble.NoSync)
}

// Alerts returns the newest alerts, at most limit.
func (ix *Index) Alerts(limit int) ([]Alert, error) {
	it, err := ix.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'l'}, UpperBound: []byte{'l' + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Alert
	for ok := it.Last(); ok && len(out) < limit; ok = it.Prev() {
		var a Alert
		if json.Unmarshal(it.Value(), &a) == nil {
			out = append(out, a)
		}
	}
	return out, nil
}

// Stats returns the completion and step rates seen in the records.
func (ix *Index) Stats() *Stats { return ix.stats }

func oKey(id string) []byte { return append([]byte{'o'}, id...) }

func iKey(seq uint32) []byte { return binary.BigEndian.AppendUint32([]byte{'i'}, seq) }

func termKey(kind byte, term, id string) []byte {
	return cat([]byte{kind}, []byte(term), []byte{sep}, []byte(id))
}

func posKey(kind byte, p int32, o int64) []byte {
	return cat([]byte{kind}, be32(uint32(p)), be64(uint64(o)))
}

func ckKey(topic string, p int32) []byte {
	return cat(prefixCk, []byte(topic), []byte{sep}, be32(uint32(p)))
}

func cat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// timeBytes orders times as bytes; the zero time (and anything before
// 1970) is 0.
func timeBytes(t time.Time) []byte {
	if t.IsZero() || t.Unix() < 0 {
		return be64(0)
	}
	return be64(uint64(t.UnixNano()))
}

// prefixEnd is the smallest key after every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := slices.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// quietLogger drops Pebble's informational logs and keeps nothing: the
// console reports what matters (a rebuilt index) itself.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
