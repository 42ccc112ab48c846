// Package testenv gives tests the real infrastructure they run on: the
// shared Kafka broker, Redis and stripe-mock started by test/infra (their
// addresses in ORDERFLOW_TEST_* variables), or, where those are unset and
// a Docker engine answers, the same servers started with testcontainers-go
// from the local images test/infra builds.
// Where neither is available a test skips with a one-line reason, except
// under CI=true, where it fails: CI never skips infrastructure silently.
//
// Tests that stop and start a server (a broker outage, a Redis outage) get a
// private one with NewKafka or NewRedis.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/test/infra"
	"github.com/orderflow/orderflow/topics"
)

// Environment variables written by test/infra.
const (
	EnvKafka      = "ORDERFLOW_TEST_KAFKA"
	EnvKafkaLibs  = "ORDERFLOW_TEST_KAFKA_LIBS"
	EnvRedis      = "ORDERFLOW_TEST_REDIS"
	EnvStripeMock = "ORDERFLOW_TEST_STRIPE_MOCK"
)

// InCI reports whether the tests run under CI (CI=true), where missing
// infrastructure is a failure rather than a skip.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// unavailable fails the test under CI and skips it elsewhere.
func unavailable(t testing.TB, what, why string) {
	t.Helper()
	msg := what + " unavailable: " + why + " (run the tests with 'make test', or 'make infra-up' and source test/.infra.env)"
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Kafka returns the bootstrap address of the shared Kafka 4.x broker.
func Kafka(t testing.TB) string {
	t.Helper()
	if a := os.Getenv(EnvKafka); a != "" {
		return a
	}
	addr, err := dockerKafka()
	if err != nil {
		unavailable(t, "Kafka", "$"+EnvKafka+" is unset and "+err.Error())
	}
	return addr
}

// Redis returns the address of the shared Redis server.
func Redis(t testing.TB) string {
	t.Helper()
	if a := os.Getenv(EnvRedis); a != "" {
		return a
	}
	addr, err := dockerRedis()
	if err != nil {
		unavailable(t, "Redis", "$"+EnvRedis+" is unset and "+err.Error())
	}
	return addr
}

// StripeMock returns the HTTP base URL of stripe-mock.
func StripeMock(t testing.TB) string {
	t.Helper()
	if a := os.Getenv(EnvStripeMock); a != "" {
		return a
	}
	url, err := dockerStripeMock()
	if err != nil {
		unavailable(t, "stripe-mock", "$"+EnvStripeMock+" is unset and "+err.Error())
	}
	return url
}

var nonName = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// Prefix returns a topic/group prefix unique to this test run.
func Prefix(t testing.TB) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := strings.ToLower(strings.Trim(nonName.ReplaceAllString(t.Name(), "-"), "-"))
	if len(name) > 40 {
		name = name[:40]
	}
	return "t-" + name + "-" + hex.EncodeToString(b) + "."
}

// Topics creates a fresh, uniquely prefixed set of orderflow topics on
// brokers with the given partition count (default 3) and returns their
// names.
func Topics(t testing.TB, brokers string, partitions ...int32) topics.Names {
	t.Helper()
	p := int32(3)
	if len(partitions) > 0 {
		p = partitions[0]
	}
	names := topics.New(Prefix(t))
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		_, err := topics.Create(ctx, kadm.NewClient(cl), names.Specs(p), 1)
		if err == nil {
			return names
		}
		// A broker that missed its heartbeats on a loaded machine is
		// fenced for a moment, and the controller then counts no
		// available broker: try again until it is back.
		if !errors.Is(err, kerr.InvalidReplicationFactor) || ctx.Err() != nil {
			t.Fatalf("create topics: %v", err)
		}
		t.Logf("create topics: %v; trying again", err)
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Broker is a private Kafka broker a test may stop and start.
type Broker struct{ *infra.Kafka }

// Start restarts a stopped broker on the same address and data.
func (b *Broker) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.Kafka.Start(ctx); err != nil {
		t.Fatalf("restart kafka: %v", err)
	}
}

var libsOnce struct {
	sync.Once
	libs string
	err  error
}

// NewKafka starts a private Kafka broker for this test, stopped at cleanup.
// It needs the broker jars test/infra resolved ($ORDERFLOW_TEST_KAFKA_LIBS,
// or the cache); a container cannot be stopped and restarted on the same
// address, so Docker is no substitute here.
func NewKafka(t testing.TB) *Broker {
	t.Helper()
	libs := os.Getenv(EnvKafkaLibs)
	if libs == "" {
		libsOnce.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			libsOnce.libs, libsOnce.err = infra.KafkaLibs(ctx, infra.KafkaVersion, nil)
		})
		if libsOnce.err != nil {
			unavailable(t, "private Kafka broker", libsOnce.err.Error())
		}
		libs = libsOnce.libs
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k, err := infra.StartKafka(ctx, infra.KafkaConfig{Libs: libs, Version: infra.KafkaVersion, Dir: filepath.Join(t.TempDir(), "kafka")})
	if err != nil {
		if InCI() {
			t.Fatalf("start private kafka: %v", err)
		}
		t.Skipf("private Kafka broker unavailable: %v", err)
	}
	t.Cleanup(k.Kill)
	return &Broker{k}
}

// RedisServer is a private Redis a test may stop and start.
type RedisServer struct{ *infra.Redis }

// Start restarts a stopped server on the same address.
func (r *RedisServer) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Redis.Start(ctx); err != nil {
		t.Fatalf("restart redis: %v", err)
	}
}

// NewRedis starts a private redis-server for this test, stopped at cleanup.
func NewRedis(t testing.TB) *RedisServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bin, err := infra.RedisBinary(ctx, nil)
	if err != nil {
		unavailable(t, "private Redis", err.Error())
	}
	r, err := infra.StartRedis(ctx, bin, filepath.Join(t.TempDir(), "redis"), 0, false)
	if err != nil {
		t.Fatalf("start private redis: %v", err)
	}
	t.Cleanup(r.Kill)
	return &RedisServer{r}
}
