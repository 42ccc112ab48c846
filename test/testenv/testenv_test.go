package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRedisRoundTrip(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: Redis(t)})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := Prefix(t) + "k"
	ok, err := rdb.SetNX(ctx, key, "v1", time.Minute).Result()
	if err != nil || !ok {
		t.Fatalf("first SETNX = %v, %v; want true", ok, err)
	}
	ok, err = rdb.SetNX(ctx, key, "v2", time.Minute).Result()
	if err != nil || ok {
		t.Fatalf("second SETNX = %v, %v; want false", ok, err)
	}
	if v, err := rdb.Get(ctx, key).Result(); err != nil || v != "v1" {
		t.Fatalf("GET = %q, %v; want v1", v, err)
	}
	if ttl, err := rdb.TTL(ctx, key).Result(); err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL = %v, %v", ttl, err)
	}
}

func TestPrivateRedisStopStart(t *testing.T) {
	r := NewRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded with Redis stopped")
	}
	r.Start(t)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
}

func TestPrivateKafkaStopStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	b := NewKafka(t)
	names := Topics(t, b.Addr(), 1)
	if names.Orders == "" {
		t.Fatal("no topic names")
	}
	b.Stop()
	b.Start(t)
	// The topics survive a restart: creating them again creates nothing.
	names2 := Topics(t, b.Addr(), 1)
	if names2.Orders == names.Orders {
		t.Fatal("prefixes are not unique")
	}
}
