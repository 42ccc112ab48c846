package infra

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func inCI() bool { v := strings.ToLower(os.Getenv("CI")); return v == "true" || v == "1" }

// unavailable fails under CI and skips elsewhere (as package testenv does).
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func TestWithFreshPortsRetriesOnlyTakenPorts(t *testing.T) {
	inUse := errors.New("redis exited before it was ready; last lines:\nbind: Address already in use")
	other := errors.New("redis exited before it was ready; last lines:\nFatal config error")

	calls := 0
	err := withFreshPorts(1, func([]int) error {
		calls++
		if calls < 3 {
			return inUse
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("taken twice then free: err %v after %d calls; want nil after 3", err, calls)
	}

	calls = 0
	err = withFreshPorts(1, func([]int) error { calls++; return other })
	if !errors.Is(err, other) || calls != 1 {
		t.Fatalf("other failure: err %v after %d calls; want it returned after 1", err, calls)
	}

	calls = 0
	err = withFreshPorts(2, func(p []int) error {
		calls++
		if len(p) != 2 || p[0] == p[1] {
			t.Errorf("ports %v: want two different ports", p)
		}
		return inUse
	})
	if err == nil || calls != 4 || !strings.Contains(err.Error(), "every port picked was taken") {
		t.Fatalf("always taken: err %v after %d calls; want the give-up error after 4", err, calls)
	}
}

// takenFirst makes freePort hand out a port that is held open (as if
// another process took it between the pick and the bind) once, then free
// ones. It returns the taken port and how many ports were picked.
func takenFirst(t *testing.T) (taken int, picks func() int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	taken = l.Addr().(*net.TCPAddr).Port
	var mu sync.Mutex
	n := 0
	freePort = func() (int, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n == 1 {
			return taken, nil
		}
		return FreePort()
	}
	t.Cleanup(func() { freePort = FreePort })
	return taken, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func TestRedisRetriesATakenPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bin, err := RedisBinary(ctx, nil)
	if err != nil {
		unavailable(t, "redis-server: %v", err)
	}
	taken, picks := takenFirst(t)
	r, err := StartRedis(ctx, bin, filepath.Join(t.TempDir(), "redis"), 0, false)
	if err != nil {
		t.Fatalf("StartRedis with the first port taken: %v", err)
	}
	defer r.Kill()
	if r.port == taken || picks() < 2 {
		t.Fatalf("redis on port %d after %d picks; want a port other than the taken %d", r.port, picks(), taken)
	}
	if err := r.ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

// The failure seen in practice: Kafka's BindException.
func TestKafkaRetriesATakenPort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	libs := os.Getenv("ORDERFLOW_TEST_KAFKA_LIBS")
	if libs == "" {
		unavailable(t, "ORDERFLOW_TEST_KAFKA_LIBS is unset (run under test/infra)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	taken, picks := takenFirst(t)
	k, err := StartKafka(ctx, KafkaConfig{Libs: libs, Version: KafkaVersion, Dir: filepath.Join(t.TempDir(), "kafka")})
	if err != nil {
		t.Fatalf("StartKafka with the first port taken: %v", err)
	}
	defer k.Kill()
	if k.cfg.Port == taken || k.cfg.ControllerPort == taken || picks() < 4 {
		t.Fatalf("kafka on %d/%d after %d picks; want neither the taken %d", k.cfg.Port, k.cfg.ControllerPort, picks(), taken)
	}
}

// The container path binds host ports too (host network).
func TestRedisContainerRetriesATakenPort(t *testing.T) {
	if os.Getenv("ORDERFLOW_TEST_INFRA_ENGINE") != "docker" {
		t.Skip("the test infrastructure runs without Docker (ORDERFLOW_TEST_INFRA_ENGINE is not docker)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e, err := EngineFromEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	UseEngine(e)
	base, err := e.BaseImage(ctx, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	img, err := e.build(ctx, buildSpec{name: "redis", dockerfile: redisDockerfile}, map[string]string{"base": base}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	taken, picks := takenFirst(t)
	c, err := RedisContainer(ctx, img)
	if err != nil {
		t.Fatalf("RedisContainer with the first port taken: %v", err)
	}
	defer c.Stop()
	if c.Port(0) == taken || picks() < 2 {
		t.Fatalf("container on port %d after %d picks; want a port other than the taken %d", c.Port(0), picks(), taken)
	}
}
