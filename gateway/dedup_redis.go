package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisKeyPrefix prefixes every event id the RedisDeduper stores.
const DefaultRedisKeyPrefix = "orderflow:gateway:event:"

// RedisDeduper is the production Deduper: one EXISTS before the produce and
// one SET NX EX after the acknowledgement, each a single round trip. Several
// gateways sharing one Redis share one view of what was queued.
type RedisDeduper struct {
	rdb    redis.Cmdable
	prefix string
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
	n, err := d.rdb.Exists(ctx, d.Key(eventID)).Result()
	if err != nil {
		return false, fmt.Errorf("redis exists: %w", err)
	}
	return n > 0, nil
}

// Mark stores the event id for ttl unless it is stored already.
func (d *RedisDeduper) Mark(ctx context.Context, eventID string, ttl time.Duration) error {
	if err := d.rdb.SetNX(ctx, d.Key(eventID), "1", ttl).Err(); err != nil {
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
