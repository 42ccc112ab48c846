package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisKeyPrefix prefixes every event id the RedisDeduper stores.
const DefaultRedisKeyPrefix = "orderflow:gateway:event:"

// RedisDeduper is the production Deduper: one EXISTS before the produce and
// one SET NX EX after the acknowledgement, each a single round trip. Several
// gateways sharing one Redis share one view of what was queued.
//
// Commands of concurrent requests are pipelined together: a request that
// finds no flush under way sends at once; those arriving meanwhile go in the
// next pipeline. A request still waits for its own answer, but a burst of a
// thousand webhooks costs a few round trips and system calls, not two
// thousand (the ingest profile showed Redis writes as a third of the
// gateway's CPU).
type RedisDeduper struct {
	rdb    redis.Cmdable
	prefix string

	mu    sync.Mutex
	queue []*redisOp
	busy  bool
}

// redisOp is one request's command waiting for a pipeline.
type redisOp struct {
	add  func(redis.Pipeliner) // queues the command
	done chan struct{}
}

// maxPipeline bounds the commands of one pipeline.
const maxPipeline = 512

// do runs the command that add queues, in a pipeline shared with the
// commands of concurrent requests, and waits for it (or ctx).
func (d *RedisDeduper) do(ctx context.Context, add func(redis.Pipeliner)) error {
	op := &redisOp{add: add, done: make(chan struct{})}
	d.mu.Lock()
	d.queue = append(d.queue, op)
	lead := !d.busy
	d.busy = true
	d.mu.Unlock()
	if lead {
		d.flush()
	}
	select {
	case <-op.done:
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
	for _, op := range batch {
		op.add(pipe)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	cancel()
	for _, op := range batch {
		close(op.done)
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
	return &RedisDeduper{rdb: rdb, prefix: prefix}
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

// RedisLogger sends go-redis's own log lines (dial failures, pool events) to
// slog at debug level: the gateway already reports dedup store failures,
// counted and rate-limited, and go-redis would otherwise print one line per
// failed dial to stderr. Install it once with redis.SetLogger.
type RedisLogger struct{ Logger *slog.Logger }

// Printf implements go-redis's logging interface.
func (l RedisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.Logger.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
