package processor

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor/statestore"
)

// partition is one assigned partition of `orders`: its scheduler, its order
// states (a local store restored from the same partition of `orders.state`,
// with a bounded cache in front), and its stop signals.
type partition struct {
	p     *Processor
	num   int32
	sched *scheduler

	// ready is closed when the states are restored; no record runs before.
	ready chan struct{}
	// restored is closed when the restore returned, done or given up: the
	// store may be closed only after it.
	restored chan struct{}

	store    *statestore.Store // set by the restore before ready
	cache    *stateCache
	degraded atomic.Bool // the store failed a read: states come from the changelog
	// expiring holds the keys whose removal by the retention was requested
	// and not yet handled.
	expiring sync.Map

	stopOnce   sync.Once
	stopCh     chan struct{} // closed when the partition stops: no new step starts
	stepCtx    context.Context
	stepCancel context.CancelFunc // cancels in-flight provider calls

	highWatermark atomic.Int64
	paused        atomic.Bool // fetching paused at the per-partition bound; written under Processor.mu
	committed     int64       // last committed offset; guarded by Processor.commitMu
}

func (p *Processor) newPartition(num int32) *partition {
	part := &partition{
		p:         p,
		num:       num,
		ready:     make(chan struct{}),
		restored:  make(chan struct{}),
		cache:     newStateCache(p.cfg.StateCacheEntries, p.cfg.StateCacheBytes),
		stopCh:    make(chan struct{}),
		committed: -1,
	}
	part.stepCtx, part.stepCancel = context.WithCancel(context.Background())
	part.sched = newScheduler(
		func(t *task) bool { return p.handle(part, t) },
		func() { p.recordFinished(part) },
	)
	return part
}

func (part *partition) beginStop() { part.stopOnce.Do(func() { close(part.stopCh) }) }

func (part *partition) stopping() bool {
	select {
	case <-part.stopCh:
		return true
	default:
		return false
	}
}

// state returns the order's state (nil when it has none): from the cache,
// else from the local store. An error means the state record cannot be
// read; the caller must not take the order for a new one.
func (part *partition) state(key string) (*State, error) {
	if st, ok := part.cache.get(key); ok {
		return st, nil
	}
	val, ok, err := part.read(key)
	if err != nil {
		return nil, err
	}
	if !ok {
		part.cache.put(key, nil, 0)
		return nil, nil
	}
	st, err := DecodeState(val)
	if err == nil && st.OrderID != key {
		err = fmt.Errorf("%w: order id %q under key %q", ErrStateInvalid, st.OrderID, key)
	}
	if err != nil {
		part.p.m.corruptStates.Inc()
		return nil, fmt.Errorf("state of order %s on %s/%d: %w", key, part.p.cfg.Topics.State, part.num, err)
	}
	part.cache.put(key, st, len(val))
	return st, nil
}

// read returns the latest record value of key (nil value and ok false
// when it has none or a tombstone). A store that fails a read is not used
// again: this and every later read of the partition go to the changelog,
// and the store is rebuilt at its next open.
func (part *partition) read(key string) ([]byte, bool, error) {
	if !part.degraded.Load() {
		val, _, ok, err := part.store.Get(key)
		if err == nil {
			return val, ok, nil
		}
		part.degrade(err)
	}
	for attempt := 1; ; attempt++ {
		val, ok, err := part.readChangelog(key)
		if err == nil {
			return val, ok, nil
		}
		part.p.log.Error("reading an order state from the changelog failed; retrying", "order_id", key, "partition", part.num, "attempt", attempt, "err", err)
		if !sleep(min(time.Duration(attempt)*time.Second, 10*time.Second), part.stopCh) {
			return nil, false, fmt.Errorf("read state of %s: %w", key, err)
		}
	}
}

func (part *partition) degrade(err error) {
	if !part.degraded.CompareAndSwap(false, true) {
		return
	}
	part.store.MarkUntrusted()
	part.p.m.storeFailures.Inc()
	part.p.log.Error("local state store failed; reading states from the changelog until the partition is assigned again",
		"partition", part.num, "dir", part.store.Dir(), "err", err)
	part.p.alert(integrations.Alert{Text: fmt.Sprintf("local state store of partition %d failed (%v): states are read from %s, slowly, until it is rebuilt at the next assignment",
		part.num, err, part.p.cfg.Topics.State)})
}

func (part *partition) readChangelog(key string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(part.stepCtx, time.Minute)
	defer cancel()
	adm := kadm.NewClient(part.p.cl)
	topic := part.p.cfg.Topics.State
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, false, err
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, false, err
	}
	end, _ := ends.Lookup(topic, part.num)
	start, _ := starts.Lookup(topic, part.num)
	if end.Err != nil || start.Err != nil {
		return nil, false, fmt.Errorf("list offsets of %s/%d: %v %v", topic, part.num, end.Err, start.Err)
	}
	r, err := statestore.Latest(ctx, part.p.kgoOpts, topic, part.num, []byte(key), start.Offset, end.Offset)
	if err != nil || r == nil || r.Value == nil {
		return nil, false, err
	}
	return r.Value, true, nil
}

// setState records a state acknowledged on `orders.state` at offset off
// (val its record value; nil for a tombstone) in the local store, then in
// the cache. It runs after the acknowledgement: the store's checkpoint does
// not pass off until this write is done, so a crash before it makes the
// next restore read the record again.
func (part *partition) setState(key string, st *State, val []byte, off int64) {
	if hook := part.p.beforeLocalWrite; hook != nil && !hook(part.num, key) {
		return // a test's crash between the acknowledgement and the local write
	}
	existed := false
	if c, ok := part.cache.get(key); ok {
		existed = c != nil
	} else if !part.degraded.Load() {
		existed, _ = part.store.Has(key)
	}
	if !part.degraded.Load() {
		if err := part.store.Put(key, val, off, existed); err != nil {
			part.degrade(err)
		}
	}
	if val == nil {
		part.cache.put(key, nil, 0)
	} else {
		part.cache.put(key, st, len(val))
	}
}
