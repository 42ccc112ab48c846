package processor

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/orderflow/orderflow/topics"
	"github.com/orderflow/orderflow/topics/tracing"
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

// BenchmarkBacklogTracing drains the same backlog (5,000 orders, 12
// partitions, providers answering at once) with tracing off and on, side
// by side in each iteration, and reports both rates and their ratio. On is
// the SDK with every span sampled and batched to an exporter that drops
// them (the export's encoding and network are the collector's side); off
// is Config.Tracing nil, the default. Run with
//
//	go test -run '^$' -bench BacklogTracing -benchtime 3x ./processor/
func BenchmarkBacklogTracing(b *testing.B) {
	const orders = 5000
	var offSum, onSum float64
	for range b.N {
		off := benchDrain(b, orders, nil)
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		on := benchDrain(b, orders, tracing.New(tp))
		_ = tp.Shutdown(context.Background())
		offSum += off
		onSum += on
		b.Logf("off %.0f orders/s, on %.0f orders/s, on/off %.2f", off, on, on/off)
	}
	b.ReportMetric(offSum/float64(b.N), "off-orders/s")
	b.ReportMetric(onSum/float64(b.N), "on-orders/s")
	b.ReportMetric(onSum/offSum, "on/off")
}

// benchDrain drains a backlog of orders with tr (nil: off) and returns
// orders/s.
func benchDrain(b *testing.B, orders int, tr *tracing.Tracing) float64 {
	b.StopTimer()
	h := newHarness(b, 12)
	ks := keys("bench", orders)
	for _, k := range ks {
		h.prod.Produce(context.Background(), h.record(paid(k)), func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := h.prod.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	f := newFakes()
	var emails atomic.Int64
	f.afterCreate = func(step, _ string) {
		if step == StepEmail {
			emails.Add(1)
		}
	}
	cfg := h.config()
	cfg.MaxInflight = 10000
	cfg.MaxInflightPerPartition = 2000
	cfg.CommitInterval = time.Second
	cfg.Tracing = tr
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
	r.stop(b)
	return float64(orders) / elapsed.Seconds()
}

// BenchmarkOrderSpans measures the processor's own span sites for one
// order as the chain makes them (the record's span, six step attempts, an
// intent write and seven state writes), with tracing off and on (every
// span sampled, batched to an exporter that drops them). It needs no
// broker, so its figures are steadier than the drain's on a busy machine;
// kotel's receive span and the provider calls' otelhttp spans come on top.
//
//	go test -run '^$' -bench OrderSpans -benchmem ./processor/
func BenchmarkOrderSpans(b *testing.B) {
	rec := &kgo.Record{Topic: "orders", Partition: 3, Offset: 1207, Context: context.Background()}
	env := topics.Envelope{EventID: "evt_bench", EventType: EventPaymentSucceeded, Key: "pi_bench"}
	run := func(b *testing.B, tr *tracing.Tracing) {
		p := &Processor{cfg: Config{Tracing: tr}}
		st := &State{OrderID: "pi_bench", Status: StatusInProgress, TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
		b.ReportAllocs()
		for b.Loop() {
			h := &handling{p: p, rec: rec, env: env, key: env.Key, st: st, traceParent: st.TraceParent}
			h.startProcess()
			for i, step := range Chain {
				actx, span := h.startAttempt(step, 1)
				if i == 3 { // the shipping intent
					endWrite(h.startStateWrite(actx, st.Status), nil)
				}
				_ = callContext(context.Background(), span)
				endWrite(h.startStateWrite(actx, st.Status), nil)
				endAttempt(span, resultOK, nil)
			}
			endWrite(h.startStateWrite(nil, StatusCompleted), nil)
			h.endProcess(true)
		}
	}
	b.Run("tracing=off", func(b *testing.B) { run(b, nil) })
	b.Run("tracing=on", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		run(b, tracing.New(tp))
	})
}
