package airtable

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

const (
	// MaxBatch is the most records Airtable accepts in one upsert request.
	MaxBatch = 10
	// defaultMaxInFlight bounds the requests to the base in flight at once.
	// At 5 requests per second and a few hundred milliseconds per
	// response, two would do; four leaves room for slow responses and,
	// without a client-side limit, lets batches form while requests run.
	defaultMaxInFlight = 4
	// unlimitedMaxInFlight is the bound without a client-side rate limit
	// (NoRateLimit): requests are then as fast as the endpoint answers, and
	// four at 50 ms each made orders queue 30 ms for a turn at 400 orders/s.
	unlimitedMaxInFlight = 8
)

// errClosed is returned to callers after Close.
var errClosed = errors.New("client closed")

// call is one UpsertOrder waiting for its record to be sent. Its fields
// other than done are guarded by Client.mu.
type call struct {
	orderID string
	fields  map[string]any
	// progress marks a progress report (ReportProgress): nobody waits
	// for it, and it is sent only in room a batch of waiting calls
	// leaves.
	progress bool
	// alone marks a record to be sent in a request of its own: it came
	// back from a batch that Airtable rejected as a whole.
	alone bool
	// queued is true while the call is in Client.pending (not yet sent).
	queued bool
	// gone is set when the caller stopped waiting.
	gone bool
	// deadline of the caller's context, zero if none.
	deadline time.Time
	done     chan callResult // buffered 1: the sender never blocks
}

type callResult struct {
	res     integrations.ProductionLogResult
	created bool
	err     error
}

// enqueue adds cl to the queue and makes sure a sender runs.
func (c *Client) enqueue(cl *call) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return &integrations.Error{Provider: provider, Op: opUpsert, Class: integrations.Transient, Err: errClosed}
	}
	cl.queued = true
	c.pending = append(c.pending, cl)
	// The row this call writes is newer than a progress report still
	// queued for the order.
	if p, ok := c.progressBy[cl.orderID]; ok {
		c.removeProgressLocked(p)
	}
	c.startSenderLocked()
	return nil
}

func (c *Client) startSenderLocked() {
	if c.senderRunning {
		c.notify()
		return
	}
	c.senderRunning = true
	c.wg.Add(1)
	go c.sender()
}

// notify wakes the sender if it is waiting for a request to finish.
func (c *Client) notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// await waits for cl's result or for ctx to end. A caller whose record has
// not been sent yet leaves the queue; one whose request is under way just
// stops waiting (the row is still written).
func (c *Client) await(ctx context.Context, cl *call) (callResult, error) {
	select {
	case r := <-cl.done:
		return r, nil
	case <-ctx.Done():
	}
	c.mu.Lock()
	cl.gone = true
	sent := !cl.queued
	if cl.queued {
		c.removeLocked(cl)
	}
	c.mu.Unlock()
	select {
	case r := <-cl.done: // finished meanwhile
		return r, nil
	default:
	}
	msg := "waited for a turn at the base until the context ended"
	if sent {
		msg = "stopped waiting for the response"
	}
	return callResult{}, &integrations.Error{Provider: provider, Op: opUpsert, Class: integrations.Transient, Msg: msg, Err: ctx.Err()}
}

func (c *Client) removeLocked(cl *call) {
	if i := slices.Index(c.pending, cl); i >= 0 {
		c.pending = slices.Delete(c.pending, i, i+1)
	}
	cl.queued = false
}

// sender sends the queue: it waits for a free request slot and a turn from
// the limiter, then takes up to MaxBatch records and sends them while it
// waits for the next turn. It exits when the queue is empty, so an idle
// client runs no goroutine.
func (c *Client) sender() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		for !c.closed && (c.inFlight >= c.maxInFlight || !c.hasSendableLocked()) {
			if len(c.pending) == 0 && len(c.progress) == 0 {
				c.senderRunning = false
				c.mu.Unlock()
				return
			}
			// Records wait for a request slot, or for the request that
			// carries their order to finish.
			c.mu.Unlock()
			select {
			case <-c.wake:
			case <-c.ctx.Done():
			}
			c.mu.Lock()
		}
		if c.closed {
			c.senderRunning = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()

		err := c.limiter.wait(c.ctx, opUpsert)
		if err == nil && c.cfg.Turn != nil {
			err = c.cfg.Turn(c.ctx)
		}

		c.mu.Lock()
		if err != nil {
			// The base is paused after a 429 (or the client is closing):
			// nothing queued can be sent before the callers' next retry.
			// Progress reports stay queued and go when the pause is over.
			for _, cl := range c.pending {
				cl.queued = false
				cl.done <- callResult{err: err}
			}
			c.pending = nil
			wait := len(c.progress) > 0 && !c.closed
			c.mu.Unlock()
			if d, ok := integrations.RetryAfterOf(err); wait && ok && d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-c.wake: // a call arrived: it fails at once
				case <-c.ctx.Done():
				}
				t.Stop()
			}
			continue
		}
		batch := c.takeLocked()
		if len(batch) > 0 {
			c.inFlight++
			c.wg.Add(1)
		}
		c.mu.Unlock()
		if len(batch) > 0 {
			go c.run(batch)
		}
	}
}

// hasSendableLocked reports whether a queued record's order is not in a
// request already.
func (c *Client) hasSendableLocked() bool {
	for _, cl := range c.pending {
		if !c.sending[cl.orderID] {
			return true
		}
	}
	for _, cl := range c.progress {
		if !c.sending[cl.orderID] {
			return true
		}
	}
	return false
}

// takeLocked takes the next batch off the queue in queue order: up to
// MaxBatch records, at most one per order (Airtable rejects a request that
// names one merge value twice, and two concurrent requests for one order
// could both create its row), none for an order already in a request. A
// record marked alone goes by itself.
func (c *Client) takeLocked() []*call {
	var batch []*call
	ids := map[string]bool{}
	rest := c.pending[:0]
	for _, cl := range c.pending {
		take := len(batch) < MaxBatch && !c.sending[cl.orderID] && !ids[cl.orderID] &&
			(!cl.alone || len(batch) == 0) && !(len(batch) == 1 && batch[0].alone)
		if !take {
			rest = append(rest, cl)
			continue
		}
		cl.queued = false
		ids[cl.orderID] = true
		batch = append(batch, cl)
	}
	clear(c.pending[len(rest):])
	c.pending = rest
	// Progress reports fill the room the waiting calls left, oldest
	// first; a record sent alone goes without them.
	if len(batch) < MaxBatch && !(len(batch) == 1 && batch[0].alone) && len(c.progress) > 0 {
		restP := c.progress[:0]
		full := false
		for _, cl := range c.progress {
			take := !full && len(batch) < MaxBatch && !c.sending[cl.orderID] && !ids[cl.orderID] && (!cl.alone || len(batch) == 0)
			if !take {
				restP = append(restP, cl)
				continue
			}
			cl.queued = false
			delete(c.progressBy, cl.orderID)
			ids[cl.orderID] = true
			batch = append(batch, cl)
			full = cl.alone
		}
		clear(c.progress[len(restP):])
		c.progress = restP
	}
	for id := range ids {
		c.sending[id] = true
	}
	return batch
}

// run sends one batch and hands each caller its result.
func (c *Client) run(batch []*call) {
	defer c.wg.Done()
	results := c.send(batch)
	c.mu.Lock()
	for _, cl := range batch {
		delete(c.sending, cl.orderID)
	}
	var again, againP []*call
	for i, cl := range batch {
		if cl.progress {
			switch {
			case results[i].split && !c.closed:
				if _, newer := c.progressBy[cl.orderID]; !newer {
					cl.alone, cl.queued = true, true
					againP = append(againP, cl)
					c.progressBy[cl.orderID] = cl
				}
			case results[i].err != nil:
				c.progressFailedLocked(cl, results[i].err)
			}
			continue
		}
		if results[i].split {
			if !cl.gone && !c.closed {
				cl.alone, cl.queued = true, true
				again = append(again, cl)
			} else {
				cl.done <- callResult{err: results[i].err}
			}
			continue
		}
		cl.done <- results[i].callResult
	}
	if len(again) > 0 || len(againP) > 0 {
		// Retried records keep their place at the head of the queue.
		c.pending = append(again, c.pending...)
		c.progress = append(againP, c.progress...)
		c.log.Info("airtable: batch rejected as a whole, retrying its records one by one", "records", len(batch))
	}
	c.inFlight--
	if (len(c.pending) > 0 || len(c.progress) > 0) && !c.closed {
		c.startSenderLocked()
	}
	c.mu.Unlock()
}

// Close stops the client: records not yet sent fail with a transient
// error, requests under way are cancelled, and Close returns when no
// goroutine of the client is left. UpsertOrder fails after Close. Close is
// safe to call more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		err := &integrations.Error{Provider: provider, Op: opUpsert, Class: integrations.Transient, Err: errClosed}
		for _, cl := range c.pending {
			cl.queued = false
			cl.done <- callResult{err: err}
		}
		c.pending = nil
		c.progress, c.progressBy = nil, map[string]*call{}
	}
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

// batchContext is the context of a batch's request: it ends when the
// client closes or when the last caller's deadline passes (if every caller
// has one), since nobody waits for the answer after that.
func (c *Client) batchContext(batch []*call) (context.Context, context.CancelFunc) {
	var last time.Time
	for _, cl := range batch {
		if cl.deadline.IsZero() {
			return context.WithCancel(c.ctx)
		}
		if cl.deadline.After(last) {
			last = cl.deadline
		}
	}
	return context.WithDeadline(c.ctx, last)
}
