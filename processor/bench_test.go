package processor

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkBacklog measures orders/s for a backlog of 10,000 orders on 12
// partitions, with fake providers answering at once and after 50 ms per
// call. Each iteration uses fresh topics and a fresh group. Run with
//
//	go test -run '^$' -bench Backlog -benchtime 1x ./processor/
func BenchmarkBacklog(b *testing.B) {
	for _, latency := range []time.Duration{0, 50 * time.Millisecond} {
		b.Run(fmt.Sprintf("latency=%s", latency), func(b *testing.B) {
			for range b.N {
				benchBacklog(b, 10000, latency)
			}
		})
	}
}

func benchBacklog(b *testing.B, orders int, latency time.Duration) {
	b.StopTimer()
	h := newHarness(b, 12)
	ks := keys("bench", orders)
	var promised atomic.Int64
	errs := make(chan error, 1)
	for _, k := range ks {
		h.prod.Produce(context.Background(), h.record(paid(k)), func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
			promised.Add(1)
		})
	}
	if err := h.prod.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}

	f := newFakes()
	var emails atomic.Int64
	f.latency = func(string, string) time.Duration { return latency }
	f.afterCreate = func(step, _ string) {
		if step == StepEmail {
			emails.Add(1)
		}
	}
	cfg := h.config()
	cfg.MaxInflight = 10000
	cfg.MaxInflightPerPartition = 2000
	cfg.CommitInterval = time.Second
	start := time.Now()
	b.StartTimer()
	r := h.start(cfg, f.providers())
	deadline := time.Now().Add(10 * time.Minute)
	for emails.Load() < int64(orders) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d orders done", emails.Load(), orders)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	elapsed := time.Since(start)
	b.ReportMetric(float64(orders)/elapsed.Seconds(), "orders/s")
	r.stop(b)
}
