package processor

import (
	"context"
	"sync"
	"sync/atomic"
)

// partition is one assigned partition of `orders`: its scheduler, the order
// states restored from the same partition of `orders.state`, and its stop
// signals.
type partition struct {
	num   int32
	sched *scheduler

	// ready is closed when the states are restored; no record runs before.
	ready chan struct{}

	smu    sync.Mutex
	states map[string]*State

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
		num:       num,
		ready:     make(chan struct{}),
		states:    map[string]*State{},
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

func (part *partition) state(key string) *State {
	part.smu.Lock()
	defer part.smu.Unlock()
	return part.states[key]
}

func (part *partition) setState(key string, st *State) {
	part.smu.Lock()
	part.states[key] = st
	part.smu.Unlock()
}
