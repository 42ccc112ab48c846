package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/test/testenv"
)

func newTestProducer(t *testing.T, brokers, topic string) *KafkaProducer {
	t.Helper()
	p, err := NewKafkaProducer(Config{Topic: topic, Secrets: []string{testSecret}, ProduceTimeout: 5 * time.Second},
		kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// produceWait produces one record and waits for its promise.
func produceWait(ctx context.Context, p Producer, key string) error {
	done := make(chan error, 1)
	p.Produce(ctx, &kgo.Record{Key: []byte(key), Value: []byte("v-" + key)}, func(_ *kgo.Record, err error) { done <- err })
	return <-done
}

// Close sends what is queued, then refuses new records.
func TestIntegrationProducerClose(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers, 3)
	p, err := NewKafkaProducer(Config{Topic: names.Orders, Secrets: []string{testSecret}}, kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		p.Produce(context.Background(), &kgo.Record{Key: []byte(fmt.Sprintf("pi_close%02d", i)), Value: []byte("v")},
			func(_ *kgo.Record, err error) { results <- err })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	for i := 0; i < n; i++ {
		if err := <-results; err != nil {
			t.Errorf("record queued before Close: %v", err)
		}
	}
	if err := produceWait(context.Background(), p, "pi_after"); !errors.Is(err, ErrProducerClosed) {
		t.Errorf("record after Close: %v, want ErrProducerClosed", err)
	}
	if got := len(countConsumed(t, brokers, names.Orders, n)); got != n {
		t.Errorf("topic holds %d records, want %d", got, n)
	}
}

// With no broker reachable, a record fails by its own deadline and Close
// gives up at its context instead of hanging.
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
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := produceWait(ctx, p, "pi_nobroker"); err == nil {
		t.Error("produce to an unreachable broker succeeded")
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("the record failed after %v, want about its 500 ms deadline", waited)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer ccancel()
	start = time.Now()
	_ = p.Close(cctx)
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("Close took %v", waited)
	}
}
