package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisKeyPrefix prefixes every event id the RedisDeduper stores
// for the default `orders` topic.
const DefaultRedisKeyPrefix = "orderflow:gateway:event:"

// RedisKeyPrefix is the key prefix of the gateway producing to topic:
// DefaultRedisKeyPrefix for `orders`, "orderflow:gateway:<topic>:event:"
// for another. Stripe sends an event to every endpoint of the account
// with one id, so two pipelines (two topic prefixes) sharing a Redis must
// not take each other's marks for their own: the second would answer
// 200 duplicate to an event it never queued, and Stripe would not send it
// again.
func RedisKeyPrefix(topic string) string {
	if topic == "" || topic == "orders" {
		return DefaultRedisKeyPrefix
	}
	return "orderflow:gateway:" + topic + ":event:"
}

// RedisDeduper is the production Deduper: one EXISTS before the produce and
// one SET NX EX after the acknowledgement. Several gateways sharing one
// Redis share one view of what was queued.
//
// Commands of concurrent requests are pipelined together: a request that
// finds no flush under way sends at once; those arriving meanwhile go in the
// next pipeline. A request still waits for its own answer, but a burst of a
// thousand webhooks costs a few round trips and system calls, not two
// thousand (the ingest profile showed Redis writes as a third of the
// gateway's CPU).
//
// The gateway does not wait for its marks (MarkLater): a mark joins the
// queue and the webhook is answered. Pipelines leave one after another, in
// the order their commands queued, each after the previous one was
// answered, so an EXISTS queued after a mark is executed after it: a
// redelivery this gateway receives after its 200 is still found.
//
// The queue is bounded (maxQueued): while Redis hangs, a command that would
// exceed it fails at once, as a lookup whose caller gave up is dropped from
// the queue unsent, so a slow Redis costs the fast path, not the
// gateway's memory.
type RedisDeduper struct {
	rdb       redis.Cmdable
	prefix    string
	maxQueued int

	mu        sync.Mutex
	queue     []*redisOp
	busy      bool
	marks     int           // queued by MarkLater and not yet answered
	marksDone chan struct{} // closed when marks falls to zero; nil while it is zero
}

// redisOp is one command waiting for a pipeline.
type redisOp struct {
	ctx    context.Context       // the caller's; a command whose caller gave up is not sent
	add    func(redis.Pipeliner) // queues the command
	finish func(sent bool)       // called once, after the pipeline answered or failed
}

// maxPipeline bounds the commands of one pipeline.
const maxPipeline = 512

// defaultMaxQueued bounds the commands waiting for a pipeline.
const defaultMaxQueued = 16 * maxPipeline

// errBacklog is returned for a command the full queue refused.
var errBacklog = errors.New("redis too slow: command queue full")

// enqueue queues op, counting it among the marks Flush waits for when
// mark is set, and reports whether the caller is to flush (no flush is
// under way), or errBacklog.
func (d *RedisDeduper) enqueue(op *redisOp, mark bool) (lead bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.queue) >= d.maxQueued {
		return false, errBacklog
	}
	if mark {
		if d.marks == 0 {
			d.marksDone = make(chan struct{})
		}
		d.marks++
	}
	d.queue = append(d.queue, op)
	lead = !d.busy
	d.busy = true
	return lead, nil
}

// do runs the command that add queues, in a pipeline shared with the
// commands of concurrent requests, and waits for it (or ctx).
func (d *RedisDeduper) do(ctx context.Context, add func(redis.Pipeliner)) error {
	done := make(chan struct{})
	var sent bool
	lead, err := d.enqueue(&redisOp{ctx: ctx, add: add, finish: func(s bool) { sent = s; close(done) }}, false)
	if err != nil {
		return err
	}
	if lead {
		d.flush()
	}
	select {
	case <-done:
		if !sent { // ctx had ended when the pipeline left
			return ctx.Err()
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush sends what is queued as one pipeline; when more has queued
// meanwhile, another flush follows in the background, so no request waits
// on others' traffic beyond one round trip.
func (d *RedisDeduper) flush() {
	d.mu.Lock()
	n := min(len(d.queue), maxPipeline)
	batch := d.queue[:n:n]
	d.queue = d.queue[n:]
	d.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	pipe := d.rdb.Pipeline()
	sent := make([]bool, len(batch))
	for i, op := range batch {
		if sent[i] = op.ctx.Err() == nil; sent[i] {
			op.add(pipe)
		}
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	cancel()
	for i, op := range batch {
		op.finish(sent[i])
	}

	d.mu.Lock()
	if len(d.queue) == 0 {
		d.busy = false
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	go d.flush()
}

// NewRedisDeduper returns a Deduper on rdb (a *redis.Client, a cluster or
// ring client). prefix namespaces the keys; empty means
// DefaultRedisKeyPrefix.
func NewRedisDeduper(rdb redis.Cmdable, prefix string) *RedisDeduper {
	if prefix == "" {
		prefix = DefaultRedisKeyPrefix
	}
	return &RedisDeduper{rdb: rdb, prefix: prefix, maxQueued: defaultMaxQueued}
}

// RedisOptions returns client options for the dedup store: short dial and
// I/O timeouts and a single retry, so a Redis outage costs each webhook a
// bounded delay instead of go-redis's default retries with backoff, and a
// pool sized for many concurrent requests.
func RedisOptions(addr, password string) *redis.Options {
	return &redis.Options{
		Addr:         addr,
		Password:     password,
		DialTimeout:  500 * time.Millisecond,
		ReadTimeout:  500 * time.Millisecond,
		WriteTimeout: 500 * time.Millisecond,
		MaxRetries:   1,
		// One dial attempt per request: the next webhook tries again.
		DialerRetries: 1,
		PoolSize:      128,
		PoolTimeout:   time.Second,
	}
}

// Key returns the Redis key holding eventID.
func (d *RedisDeduper) Key(eventID string) string { return d.prefix + eventID }

// Seen reports whether the event id is stored.
func (d *RedisDeduper) Seen(ctx context.Context, eventID string) (bool, error) {
	var cmd *redis.IntCmd
	if err := d.do(ctx, func(p redis.Pipeliner) { cmd = p.Exists(ctx, d.Key(eventID)) }); err != nil {
		return false, fmt.Errorf("redis exists: %w", err)
	}
	n, err := cmd.Result()
	if err != nil {
		return false, fmt.Errorf("redis exists: %w", err)
	}
	return n > 0, nil
}

// Mark stores the event id for ttl unless it is stored already.
func (d *RedisDeduper) Mark(ctx context.Context, eventID string, ttl time.Duration) error {
	var cmd *redis.BoolCmd
	if err := d.do(ctx, func(p redis.Pipeliner) { cmd = p.SetNX(ctx, d.Key(eventID), "1", ttl) }); err != nil {
		return fmt.Errorf("redis set nx: %w", err)
	}
	if err := cmd.Err(); err != nil {
		return fmt.Errorf("redis set nx: %w", err)
	}
	return nil
}

// MarkLater stores the event id for ttl unless it is stored already,
// without waiting: the mark is queued and sent with the next pipeline.
// failed gets the error of a mark Redis refused or never answered (it runs
// on the flushing goroutine). A Seen called after MarkLater returned is
// answered after the mark was written. Flush waits for the queued marks.
func (d *RedisDeduper) MarkLater(eventID string, ttl time.Duration, failed func(error)) {
	var cmd *redis.BoolCmd
	lead, err := d.enqueue(&redisOp{
		ctx: context.Background(),
		add: func(p redis.Pipeliner) { cmd = p.SetNX(context.Background(), d.Key(eventID), "1", ttl) },
		finish: func(bool) {
			if err := cmd.Err(); err != nil {
				failed(fmt.Errorf("redis set nx: %w", err))
			}
			d.markDone()
		},
	}, true)
	if err != nil {
		failed(fmt.Errorf("redis set nx: %w", err))
		return
	}
	if lead {
		go d.flush()
	}
}

// markDone counts one queued mark as answered.
func (d *RedisDeduper) markDone() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.marks--; d.marks == 0 {
		close(d.marksDone)
		d.marksDone = nil
	}
}

// Flush waits until no mark queued by MarkLater is unanswered, or ctx
// ends.
func (d *RedisDeduper) Flush(ctx context.Context) error {
	d.mu.Lock()
	done := d.marksDone
	d.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RedisLogger sends go-redis's own log lines (dial failures, pool events) to
// slog at debug level: the gateway already reports dedup store failures,
// counted and rate-limited, and go-redis would otherwise print one line per
// failed dial to stderr. Install it once with redis.SetLogger.
type RedisLogger struct{ Logger *slog.Logger }

// Printf implements go-redis's logging interface.
func (l RedisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.Logger.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
