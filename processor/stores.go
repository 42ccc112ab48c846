package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations/labelstore"
	"github.com/orderflow/orderflow/processor/statestore"
	"github.com/orderflow/orderflow/topics"
)

// stateBlockCache is the block cache the local stores share.
const stateBlockCache = 16 << 20

// openStateRoot prepares the folder of the local stores and locks it, so
// that two processors never share one.
func (p *Processor) openStateRoot() error {
	root := p.cfg.StateDir
	if root == "" {
		dir, err := os.MkdirTemp("", "orderflow-state-")
		if err != nil {
			return fmt.Errorf("processor: state folder: %w", err)
		}
		root, p.stateTmp = dir, true
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return &StateDirError{Err: err}
	}
	// A folder that exists but cannot be written is refused at start, not
	// when the first partition's store is opened.
	if err := labelstore.ProbeWrite(root); err != nil {
		return &StateDirError{Err: fmt.Errorf("folder %s cannot be written: %w", root, err)}
	}
	f, err := os.OpenFile(filepath.Join(root, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return &StateDirError{Err: err}
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("processor: state folder %s is in use by another processor (give each its own --state-dir)", root)
		}
		return fmt.Errorf("processor: lock state folder %s: %w", root, err)
	}
	p.stateRoot, p.stateLock = root, f
	// One block cache for the stores of every assigned partition.
	p.blockCache = statestore.NewCache(stateBlockCache)
	return nil
}

// StateDirError is returned by New when Config.StateDir cannot be created
// or written: a setting to correct, not a failure of the run.
type StateDirError struct{ Err error }

func (e *StateDirError) Error() string { return "processor: state folder: " + e.Err.Error() }
func (e *StateDirError) Unwrap() error { return e.Err }

// closeStateRoot releases the state folder (and removes a temporary one).
func (p *Processor) closeStateRoot() {
	if p.stateLock == nil {
		return
	}
	_ = p.stateLock.Close()
	p.stateLock = nil
	p.blockCache.Unref()
	if p.stateTmp {
		_ = os.RemoveAll(p.stateRoot)
	}
}

// closeStores closes the local stores of stopped partitions once their
// restore returned; the stores stay on disk for the partitions' return.
func (p *Processor) closeStores(parts []*partition) {
	for _, part := range parts {
		<-part.restored
		if part.store == nil {
			continue
		}
		if err := part.store.Close(); err != nil {
			p.log.Warn("closing a local state store failed; it is rebuilt if it cannot be opened again", "partition", part.num, "err", err)
		}
	}
}

// stateGauges exports how many order states are held in memory and on
// disk.
func (p *Processor) stateGauges(parts []*partition) {
	var mem, disk int64
	known := true
	for _, part := range parts {
		mem += int64(part.cache.len())
		select {
		case <-part.ready:
		default:
			continue
		}
		n, ok := part.store.Count()
		known = known && ok
		disk += n
	}
	p.m.states.WithLabelValues("memory").Set(float64(mem))
	if known {
		p.m.states.WithLabelValues("disk").Set(float64(disk))
	}
}

// housekeeping removes the stores of partitions left unowned for longer
// than StateKeepUnowned and, with StateRetention set, asks for the removal
// of finished orders past the horizon. It runs at most once a minute (once
// a second with a retention under an hour, for tests).
func (p *Processor) housekeeping(ctx context.Context, parts []*partition) {
	every := time.Minute
	if r := p.cfg.StateRetention; r > 0 && r < time.Hour {
		every = time.Second
	}
	if time.Since(p.lastClean) < every {
		return
	}
	p.lastClean = time.Now()
	p.cleanStores()
	if p.cfg.StateRetention > 0 {
		for _, part := range parts {
			p.expire(ctx, part)
		}
	}
}

// cleanStores removes unowned stores not used for StateKeepUnowned.
func (p *Processor) cleanStores() {
	owned := map[string]bool{}
	p.mu.Lock()
	for n := range p.parts {
		owned[p.storeDir(n)] = true
	}
	p.mu.Unlock()
	topicDirs, _ := os.ReadDir(p.stateRoot)
	for _, td := range topicDirs {
		if !td.IsDir() {
			continue
		}
		parts, _ := os.ReadDir(filepath.Join(p.stateRoot, td.Name()))
		for _, pd := range parts {
			dir := filepath.Join(p.stateRoot, td.Name(), pd.Name())
			if _, err := strconv.Atoi(pd.Name()); err != nil || !pd.IsDir() || owned[dir] {
				continue
			}
			used, ok := statestore.LastUsed(dir)
			if !ok || time.Since(used) < p.cfg.StateKeepUnowned {
				continue
			}
			if err := os.RemoveAll(dir); err != nil {
				p.log.Warn("removing an unowned state store failed", "dir", dir, "err", err)
				continue
			}
			p.log.Info("removed the state store of a partition not owned for a while", "dir", dir, "unused", time.Since(used).Round(time.Second))
		}
	}
}

// maxExpirePerPass bounds the removal requests one retention pass makes
// per partition.
const maxExpirePerPass = 1000

// expire finds finished orders of a partition not updated within the
// retention horizon and asks for their removal with a request record on
// the partition of `orders`, so the removal runs in order with the order's
// other records (a new event meanwhile keeps it).
func (p *Processor) expire(ctx context.Context, part *partition) {
	select {
	case <-part.ready:
	default:
		return
	}
	if part.degraded.Load() || part.stopping() {
		return
	}
	cutoff := time.Now().Add(-p.cfg.StateRetention)
	var keys []string
	err := part.store.Each(func(key string, val []byte, _ int64) bool {
		if _, pending := part.expiring.Load(key); pending {
			return true
		}
		var st struct {
			Status    Status    `json:"status"`
			UpdatedAt time.Time `json:"updated_at"`
		}
		if json.Unmarshal(val, &st) == nil && finished(st.Status) && st.UpdatedAt.Before(cutoff) {
			keys = append(keys, key)
		}
		return len(keys) < maxExpirePerPass && !part.stopping()
	})
	if err != nil {
		part.degrade(err)
		return
	}
	if len(keys) == 0 {
		return
	}
	recs := make([]*kgo.Record, 0, len(keys))
	now := time.Now().UTC()
	for _, k := range keys {
		b, err := internalRequest(EventRetentionExpired, k, now)
		if err != nil {
			continue
		}
		recs = append(recs, &kgo.Record{Topic: p.cfg.Topics.Orders, Partition: part.num, Key: []byte(k), Value: b,
			Headers: []kgo.RecordHeader{{Key: topics.HeaderEventType, Value: []byte(EventRetentionExpired)}}})
	}
	pctx, cancel := context.WithTimeout(ctx, p.cfg.ProduceTimeout)
	defer cancel()
	for _, r := range recs {
		part.expiring.Store(string(r.Key), struct{}{})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var perr error
	for _, r := range recs {
		wg.Add(1)
		p.gp.Produce(pctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
			wg.Done()
		})
	}
	// The promises of records already at a broker come only when it
	// answers (franz-go cannot fail them): wait at most the produce
	// timeout, or the commit loop, and with it a stop, waits too.
	acked := make(chan struct{})
	go func() { wg.Wait(); close(acked) }()
	select {
	case <-acked:
	case <-pctx.Done():
		mu.Lock()
		perr = fmt.Errorf("%w: %w", topics.ErrNotAcknowledged, pctx.Err())
		mu.Unlock()
	}
	mu.Lock()
	werr := perr
	mu.Unlock()
	if werr != nil {
		for _, r := range recs {
			part.expiring.Delete(string(r.Key))
		}
		p.log.Warn("retention: writing removal requests failed; retrying at the next pass", "partition", part.num, "err", werr)
		return
	}
	p.log.Info("retention: removal of finished orders past the horizon requested", "partition", part.num, "orders", len(recs), "horizon", p.cfg.StateRetention)
}

func finished(s Status) bool { return s == StatusCompleted || s == StatusRefunded }
