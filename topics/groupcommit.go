package topics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrProducerClosed is a record's error when it was handed to a closed
// GroupProducer.
var ErrProducerClosed = errors.New("topics: producer closed")

// ErrNotAcknowledged is ProduceSync's error when its context ended before
// the record's outcome was known. The record may still be written: franz-go
// cannot fail an idempotent record whose produce request was already sent
// (failing it could reorder or duplicate the partition's sequence), and it
// retries it until the broker answers.
var ErrNotAcknowledged = errors.New("topics: no acknowledgement before the context ended; the record may still be written")

// GroupProducer produces in groups (a group commit) through a kgo.Client
// built with kgo.ManualFlushing: records handed to Produce wait in a queue
// while the previous group is on its way; then the whole queue goes to the
// brokers together, as one produce request per broker, and the next group
// forms while that one is acknowledged. At low load a group is one record
// and waits for nothing (there is no linger).
//
// franz-go on its own (idempotent, up to five requests in flight per
// broker) sends whatever arrived as soon as a slot frees, so with a few
// dozen concurrent writers each request carries two or three records spread
// over the partitions, and the broker's cost per request becomes the
// largest CPU cost of producing. Delivery is unchanged: the client's acks
// and idempotence apply, and a record's promise is called when the broker
// acknowledged it or it failed. A record whose context ended while it
// queued is failed with that error and never produced.
//
// With a linger (SetLinger), a busy producer lets a small group wait for
// more: while the group before it held two records or more and was
// acknowledged within the last ten lingers, a group of fewer than
// LingerGroup records waits up to the linger, and leaves as soon as it
// holds LingerGroup. Under steady load from a few dozen writers the
// writers fall into two cohorts, one in flight while the other queues,
// and the wait joins them: half the produce requests. A record after a
// lone one, or after a quiet spell, waits for nothing.
type GroupProducer struct {
	cl           *kgo.Client
	flushTimeout time.Duration

	mu        sync.Mutex
	queue     []queuedRecord
	linger    time.Duration
	lastGroup int       // records of the group sent last
	lastAck   time.Time // when it was acknowledged
	waiting   bool      // a group is lingering
	closed    bool
	wake      chan struct{} // buffered 1
	quit      chan struct{} // closed when Close gives up waiting
	done      chan struct{} // closed when the loop returns

	groups  atomic.Int64
	records atomic.Int64
}

type queuedRecord struct {
	ctx     context.Context
	rec     *kgo.Record
	promise func(*kgo.Record, error)
}

// NewGroupProducer starts a group producer on cl, which must be built with
// kgo.ManualFlushing (otherwise records leave on franz-go's own schedule
// and the groups only add a wait). flushTimeout bounds one flush; records
// a flush leaves behind go with the next one.
func NewGroupProducer(cl *kgo.Client, flushTimeout time.Duration) *GroupProducer {
	p := &GroupProducer{cl: cl, flushTimeout: flushTimeout, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	return p
}

// LingerGroup is the size at which a lingering group leaves.
const LingerGroup = 64

// SetLinger sets how long a group of a busy producer may wait for more
// records; zero or less: never (the default).
func (p *GroupProducer) SetLinger(d time.Duration) {
	p.mu.Lock()
	p.linger = max(d, 0)
	p.mu.Unlock()
}

// Produce queues r for the next group; promise is called once with the
// outcome.
func (p *GroupProducer) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		promise(r, ErrProducerClosed)
		return
	}
	p.queue = append(p.queue, queuedRecord{ctx: ctx, rec: r, promise: promise})
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// ProduceSync produces r and waits for its outcome, at most until ctx ends;
// r carries its partition and offset afterwards. When ctx ends first it
// returns a nil record and an error that is both ErrNotAcknowledged and
// ctx's error: a record already sent cannot be failed by the client (see
// ErrNotAcknowledged), so waiting on its promise alone could outlast any
// timeout the caller set. r then still belongs to the client: the caller
// must not reuse it, and should produce a fresh record to try again.
func (p *GroupProducer) ProduceSync(ctx context.Context, r *kgo.Record) (*kgo.Record, error) {
	done := make(chan error, 1)
	p.Produce(ctx, r, func(_ *kgo.Record, err error) { done <- err })
	select {
	case err := <-done:
		return r, err
	case <-ctx.Done():
		select {
		case err := <-done: // both ready: the outcome wins
			return r, err
		default:
		}
		return nil, fmt.Errorf("%w: %w", ErrNotAcknowledged, context.Cause(ctx))
	}
}

// Groups returns how many groups were sent and how many records they held.
func (p *GroupProducer) Groups() (groups, records int64) {
	return p.groups.Load(), p.records.Load()
}

// Close stops taking records and sends what is queued, waiting until that
// is acknowledged or ctx ends. When ctx ends first, the records still
// queued (not yet handed to the client) are failed at once with
// ErrProducerClosed, and the group on its way is left to the client. It
// leaves the client open: closing the client afterwards fails whatever is
// still buffered there, so every record's promise is called.
func (p *GroupProducer) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		left := p.queue
		p.queue = nil
		select {
		case <-p.quit:
		default:
			close(p.quit)
		}
		p.mu.Unlock()
		err := fmt.Errorf("%w before the record was sent: %w", ErrProducerClosed, ctx.Err())
		for _, q := range left {
			q.promise(q.rec, err)
		}
		return ctx.Err()
	}
}

func (p *GroupProducer) loop() {
	defer close(p.done)
	for {
		p.mu.Lock()
		for len(p.queue) == 0 && !p.closed && p.cl.BufferedProduceRecords() == 0 {
			p.mu.Unlock()
			select {
			case <-p.wake:
			case <-p.quit:
				return
			}
			p.mu.Lock()
		}
		select {
		case <-p.quit: // Close gave up and failed the queue
			p.mu.Unlock()
			return
		default:
		}
		if !p.lingerLocked() {
			p.mu.Unlock()
			return
		}
		group := p.queue
		p.queue = nil
		closed := p.closed
		p.mu.Unlock()
		if len(group) == 0 && closed && p.cl.BufferedProduceRecords() == 0 {
			return
		}
		n := p.send(group)
		p.mu.Lock()
		p.lastGroup, p.lastAck = n, time.Now()
		p.mu.Unlock()
		select {
		case <-p.quit:
			return
		default:
		}
	}
}

// lingerLocked lets a group wait, with p.mu held on entry and on return
// (see GroupProducer). It returns false when Close gave up meanwhile.
func (p *GroupProducer) lingerLocked() bool {
	if !p.lingering() {
		return true
	}
	t := time.NewTimer(p.linger)
	defer t.Stop()
	p.waiting = true
	defer func() { p.waiting = false }()
	for p.lingering() {
		p.mu.Unlock()
		select {
		case <-p.wake:
		case <-t.C:
			p.mu.Lock()
			return true
		case <-p.quit:
			p.mu.Lock()
			return false
		}
		p.mu.Lock()
	}
	return true
}

func (p *GroupProducer) lingering() bool {
	return p.linger > 0 && !p.closed && len(p.queue) > 0 && len(p.queue) < LingerGroup &&
		p.lastGroup >= 2 && time.Since(p.lastAck) < 10*p.linger
}

// send hands a group to the client and flushes it: one produce request per
// broker, then the acknowledgements. It returns how many records it
// handed over.
func (p *GroupProducer) send(group []queuedRecord) int {
	n := 0
	for _, q := range group {
		if err := q.ctx.Err(); err != nil {
			q.promise(q.rec, err) // its writer stopped waiting
			continue
		}
		p.cl.Produce(q.ctx, q.rec, q.promise)
		n++
	}
	if n > 0 {
		p.groups.Add(1)
		p.records.Add(int64(n))
	}
	if p.cl.BufferedProduceRecords() == 0 {
		return n
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.flushTimeout)
	defer cancel()
	_ = p.cl.Flush(ctx)
	return n
}
