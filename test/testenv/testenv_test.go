package testenv

import (
	"context"
	"errors"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
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

// A private broker stops (clients cannot reach it) and starts again on the
// same address with its data: the topics and a record written before the
// stop are there, and it takes writes again.
func TestPrivateKafkaStopStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	b := NewKafka(t)
	names := Topics(t, b.Addr(), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	produce := func(key string) error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic(names.Orders),
			kgo.RecordDeliveryTimeout(5*time.Second))
		if err != nil {
			return err
		}
		defer cl.Close()
		return cl.ProduceSync(ctx, &kgo.Record{Key: []byte(key), Value: []byte("v")}).FirstErr()
	}
	if err := produce("before"); err != nil {
		t.Fatalf("produce before the stop: %v", err)
	}

	b.Stop()
	if err := produce("while-stopped"); err == nil {
		t.Fatal("a record was acknowledged while the broker was stopped")
	}

	b.Start(t)
	if err := produce("after"); err != nil {
		t.Fatalf("produce after the restart: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics(names.Orders),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var keys []string
	for len(keys) < 2 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { keys = append(keys, string(r.Key)) })
	}
	if len(keys) != 2 || keys[0] != "before" || keys[1] != "after" {
		t.Errorf("%s holds %v after the restart, want [before after]", names.Orders, keys)
	}
	details, err := kadm.NewClient(cl).ListTopics(ctx, names.State, names.DLQ)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{names.State, names.DLQ} {
		if d, ok := details[topic]; !ok || d.Err != nil {
			t.Errorf("topic %s missing after the restart", topic)
		}
	}
}

// Prefix gives each call a distinct, Kafka-legal topic prefix derived from
// the test's name.
func TestPrefix(t *testing.T) {
	legal := regexp.MustCompile(`^t-[a-z0-9-]+-[0-9a-f]{8}\.$`)
	a, b := Prefix(t), Prefix(t)
	for _, p := range []string{a, b} {
		if !legal.MatchString(p) || !strings.HasPrefix(p, "t-testprefix-") {
			t.Errorf("prefix %q: want t-testprefix-<8 hex>.", p)
		}
	}
	if a == b {
		t.Errorf("two prefixes are both %q", a)
	}
}

// A Silent server takes what is sent and answers nothing.
func TestSilentServer(t *testing.T) {
	s := NewSilent(t)
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Received:
	case <-time.After(10 * time.Second):
		t.Fatal("the first byte was not received")
	}
	if err := c.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 16)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read %d bytes, err %v: want no answer until the deadline", n, err)
	}
}
