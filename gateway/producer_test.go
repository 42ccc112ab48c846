package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The group commit itself is tested in package topics (grouping, expired
// records, Close); these tests cover what KafkaProducer adds: its client
// and closing it.

// produceWait produces one record and waits for its promise.
func produceWait(ctx context.Context, p Producer, key string) error {
	done := make(chan error, 1)
	p.Produce(ctx, &kgo.Record{Key: []byte(key), Value: []byte("v-" + key)}, func(_ *kgo.Record, err error) { done <- err })
	return <-done
}

// With no broker reachable, a record fails by its own deadline.
func TestProducerUnreachableBroker(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p, err := NewKafkaProducer(Config{Topic: "orders", Secrets: []string{testSecret}, ProduceTimeout: time.Second},
		kgo.SeedBrokers(addr), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := produceWait(ctx, p, "pi_nobroker"); err == nil {
		t.Error("produce to an unreachable broker succeeded")
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("the record failed after %v, want about its 500 ms deadline", waited)
	}
}

// A broker that accepts connections and never answers holds a record
// unacknowledged: Close gives up at its context, and closing the client
// fails the record instead of leaving its webhook waiting.
func TestProducerCloseGivesUpOnASilentBroker(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }() // read, never answer
		}
	}()
	p, err := NewKafkaProducer(Config{Topic: "orders", Secrets: []string{testSecret}, ProduceTimeout: 30 * time.Second},
		kgo.SeedBrokers(ln.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	p.Produce(context.Background(), &kgo.Record{Key: []byte("pi_silent"), Value: []byte("v")},
		func(_ *kgo.Record, err error) { result <- err })
	// Wait until the group producer handed the record to the client (it
	// then waits there for the broker's metadata, which never comes).
	for deadline := time.Now().Add(10 * time.Second); p.cl.BufferedProduceRecords() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the record was not handed to the client within 10 s (%d buffered)", p.cl.BufferedProduceRecords())
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v, want context.DeadlineExceeded", err)
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("Close took %v, want about its 300 ms", waited)
	}
	select {
	case err := <-result:
		if err == nil {
			t.Error("the record was acknowledged by a broker that never answers")
		}
	case <-time.After(5 * time.Second):
		t.Error("the record's promise was not called after Close")
	}
}

// The gateway's produce requests linger by default; a negative linger
// turns it off and stays so.
func TestProduceLingerDefault(t *testing.T) {
	if got := (Config{}).withDefaults().ProduceLinger; got != 500*time.Microsecond {
		t.Errorf("default ProduceLinger %v, want 500µs", got)
	}
	if got := (Config{ProduceLinger: -1}).withDefaults().ProduceLinger; got != -1 {
		t.Errorf("ProduceLinger -1 became %v, want it kept (off)", got)
	}
}
