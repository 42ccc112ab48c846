package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/test/testenv"
	"github.com/redis/go-redis/v9"
	"github.com/stripe/stripe-go/v76/webhook"
	"github.com/twmb/franz-go/pkg/kfake"
)

// markHolder is a TCP proxy in front of Redis that holds back every byte a
// client sends from its first SET command on (the dedup mark), until
// release is called: a Redis that is slow to take the marks.
type markHolder struct {
	Addr    string
	held    chan struct{} // closed when a SET was first held
	release chan struct{}

	heldOnce, releaseOnce sync.Once
}

func newMarkHolder(t *testing.T, redisAddr string) *markHolder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &markHolder{Addr: ln.Addr().String(), held: make(chan struct{}), release: make(chan struct{})}
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", redisAddr)
			if err != nil {
				c.Close()
				continue
			}
			track(c)
			track(up)
			go func() { _, _ = io.Copy(c, up) }()
			go func() {
				buf := make([]byte, 64<<10)
				holding := false
				for {
					n, err := c.Read(buf)
					if n > 0 {
						// go-redis sends command names in lower case:
						// the bulk string "set" is the mark.
						if !holding && bytes.Contains(bytes.ToLower(buf[:n]), []byte("\r\n$3\r\nset\r\n")) {
							holding = true
							h.heldOnce.Do(func() { close(h.held) })
							<-h.release
						}
						if _, werr := up.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		h.Release()
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return h
}

// Release lets the held bytes, and all later ones, through.
func (h *markHolder) Release() { h.releaseOnce.Do(func() { close(h.release) }) }

// startGatewayWithRedis runs the gateway command on a kfake cluster with
// its dedup in Redis at redisAddr, and returns its address, its stderr and
// the channel of its exit.
func startGatewayWithRedis(t *testing.T, ctx context.Context, redisAddr string, extra ...string) (string, *lockedBuffer, <-chan error) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "cmdflush.orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	var stdout lockedBuffer
	stderr := &lockedBuffer{}
	done := make(chan error, 1)
	args := append([]string{
		"--brokers", strings.Join(cluster.ListenAddrs(), ","),
		"--topic-prefix", "cmdflush.",
		"--webhook-secret", "whsec_flush",
		"--http-addr", "127.0.0.1:0",
		"--metrics-addr", "",
		"--redis-addr", redisAddr,
		"--log-format", "json",
	}, extra...)
	go func() { done <- runGateway(ctx, args, &stdout, stderr) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if out := stdout.String(); strings.HasPrefix(out, "gateway listening on ") {
			return strings.TrimSpace(strings.TrimPrefix(out, "gateway listening on ")), stderr, done
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not start; stderr: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// postUniqueEvent posts the payment_intent.succeeded test event under a new
// event id and returns that id once the gateway answered 200 queued.
func postUniqueEvent(t *testing.T, addr string) string {
	t.Helper()
	body, err := os.ReadFile("../../gateway/testdata/payment_intent.succeeded.json")
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("evt_flushtest%d", time.Now().UnixNano())
	body = bytes.Replace(body, []byte(`"evt_3OKpiLJZ4cn2Yx0b1c2Ld9Xa"`), []byte(`"`+id+`"`), 1)
	if !bytes.Contains(body, []byte(id)) {
		t.Fatal("test event has no id to replace")
	}
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_flush"})
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Stripe-Signature", sig.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != "queued\n" {
		t.Fatalf("got %d %q, want 200 queued", resp.StatusCode, got)
	}
	return id
}

// waitFor polls cond every 10 ms until it holds or 10 s have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A 200 does not wait for the event's dedup mark; a gateway told to stop
// writes the marks still queued before it exits.
func TestGatewayShutdownWritesQueuedMarks(t *testing.T) {
	redisAddr := testenv.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	holder := newMarkHolder(t, redisAddr)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, stderr, done := startGatewayWithRedis(t, ctx, holder.Addr)
	id := postUniqueEvent(t, addr)
	key := gateway.RedisKeyPrefix("cmdflush.orders") + id
	t.Cleanup(func() { rdb.Del(context.Background(), key) })

	select {
	case <-holder.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway sent no mark after its 200")
	}
	if n := rdb.Exists(ctx, key).Val(); n != 0 {
		t.Fatalf("mark in Redis while held: EXISTS = %d", n)
	}

	cancel()
	waitFor(t, "the shutdown to start", func() bool { return strings.Contains(stderr.String(), "shutting down") })
	holder.Release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gateway exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not stop")
	}
	if n := rdb.Exists(context.Background(), key).Val(); n != 1 {
		t.Errorf("after the gateway exited, EXISTS %s = %d, want 1 (the queued mark written before exit)", key, n)
	}
	if logs := stderr.String(); strings.Contains(logs, "dedup marks not all written") {
		t.Errorf("shutdown reported unwritten marks: %s", logs)
	}
}

// A Redis that never takes the marks holds the shutdown for at most
// --shutdown-timeout, and the gateway says that marks were lost.
func TestGatewayShutdownGivesUpOnHeldMarks(t *testing.T) {
	redisAddr := testenv.Redis(t)
	holder := newMarkHolder(t, redisAddr)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, stderr, done := startGatewayWithRedis(t, ctx, holder.Addr, "--shutdown-timeout", "1s")
	postUniqueEvent(t, addr)
	select {
	case <-holder.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway sent no mark after its 200")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gateway exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not stop within its shutdown timeout")
	}
	logs := stderr.String()
	if !strings.Contains(logs, "dedup marks not all written") {
		t.Errorf("no warning about the unwritten mark: %s", logs)
	}
	if !strings.Contains(logs, `"gateway stopped"`) {
		t.Errorf("no stop line: %s", logs)
	}
}

// A gateway whose orders topic does not exist refuses to start (every
// webhook would be answered 503 while /readyz said ready) and names the
// command that creates it.
func TestGatewayRefusesAMissingTopic(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "other.orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	var stdout, stderr lockedBuffer
	err = runGateway(context.Background(), []string{
		"--brokers", strings.Join(cluster.ListenAddrs(), ","),
		"--topic-prefix", "notcreated.",
		"--webhook-secret", "whsec_missing",
		"--http-addr", "127.0.0.1:0",
		"--metrics-addr", "",
	}, &stdout, &stderr)
	want := "gateway: topic notcreated.orders does not exist (run 'orderflow topics create --brokers " + strings.Join(cluster.ListenAddrs(), ",") + " --topic-prefix notcreated.')"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if strings.Contains(stdout.String(), "listening") {
		t.Errorf("it listened: %s", stdout.String())
	}
}
