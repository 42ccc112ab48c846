package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/harness"
	"github.com/orderflow/orderflow/test/loadgen"
	"github.com/orderflow/orderflow/topics"
)

// startSim runs `orderflow sim` with a per-call latency and extra flags.
func (b *bench) startSim(ctx context.Context, latency time.Duration, extra ...string) (*harness.Proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	p, err := b.start("sim", nil, append([]string{b.bin, "sim", "--addr", addr, "--peer", "--latency", latency.String(), "--pprof"}, extra...)...)
	if err != nil {
		return nil, "", err
	}
	url := "http://" + addr
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := harness.WaitHTTP(wctx, url+"/_sim/stats"); err != nil {
		return nil, "", fmt.Errorf("sim: %w\n%s", err, p.LogTail(20))
	}
	return p, url, nil
}

// startProcessor runs `orderflow processor` against the simulator.
func (b *bench) startProcessor(ctx context.Context, name string, names topics.Names, simURL string, extra ...string) (*harness.Proc, string, error) {
	return b.startProcessorBin(ctx, b.bin, name, names, simURL, extra...)
}

// startProcessorBin runs the processor of the orderflow binary bin.
func (b *bench) startProcessorBin(ctx context.Context, bin, name string, names topics.Names, simURL string, extra ...string) (*harness.Proc, string, error) {
	maddr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	args := append([]string{bin, "processor", "--brokers", b.brokers[0], "--topic-prefix", names.Prefix,
		"--group", names.Prefix + "processor", "--metrics-addr", maddr, "--sim-url", simURL,
		"--max-inflight", strconv.Itoa(b.o.concurrency), "--label-dir", b.tmp + "/labels", "--log-level", "warn", "--pprof"}, extra...)
	p, err := b.start(name, nil, args...)
	if err != nil {
		return nil, "", err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := harness.WaitHTTP(wctx, "http://"+maddr+"/metrics"); err != nil {
		return nil, "", fmt.Errorf("processor: %w\n%s", err, p.LogTail(20))
	}
	return p, "http://" + maddr, nil
}

// cpuProfile fetches a 10 s CPU profile from a metrics listener in the
// background when --profile is set.
func (b *bench) cpuProfile(baseURL, name string) {
	if b.o.profile == "" {
		return
	}
	go b.saveProfile(baseURL+"/debug/pprof/profile?seconds=10", name)
}

// heapProfile saves the heap profile of a metrics listener (in use now,
// and every allocation since the start) when --profile is set.
func (b *bench) heapProfile(baseURL, name string) {
	if b.o.profile != "" {
		b.saveProfile(baseURL+"/debug/pprof/heap", name)
	}
}

func (b *bench) saveProfile(url, name string) {
	resp, err := http.Get(url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: profile %s: %v\n", name, err)
		return
	}
	defer resp.Body.Close()
	_ = os.MkdirAll(b.o.profile, 0o755)
	f, err := os.Create(filepath.Join(b.o.profile, name+".pprof"))
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

// backlog produces n payment_intent.succeeded envelopes to orders.
func (b *bench) backlog(ctx context.Context, names topics.Names, n int) ([]string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	f := loadgen.NewFactory(false)
	ids := make([]string, 0, n)
	errc := make(chan error, 1)
	for i := 0; i < n; i++ {
		ev := f.Order(i, nil)[0]
		env := topics.Envelope{EventID: ev.ID, EventType: ev.Type, Key: ev.OrderID, ObjectID: ev.OrderID,
			ReceivedAt: time.Now().UTC(), Event: json.RawMessage(ev.Body)}
		val, err := env.Encode()
		if err != nil {
			return nil, err
		}
		ids = append(ids, ev.OrderID)
		cl.Produce(ctx, &kgo.Record{Topic: names.Orders, Key: []byte(ev.OrderID), Value: val,
			Headers: []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte(ev.ID)}, {Key: topics.HeaderEventType, Value: []byte(ev.Type)}}},
			func(_ *kgo.Record, err error) {
				if err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			})
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, err
	}
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	return ids, nil
}

// drainOnce measures one drain of n orders at a provider latency by the
// processor of the orderflow binary bin.
func (b *bench) drainOnce(ctx context.Context, bin, system string, latency time.Duration, n int) (DrainRow, error) {
	row := DrainRow{System: system, Orders: n, LatencyMs: float64(latency.Milliseconds()), Concurrency: b.o.concurrency}
	names, err := b.createTopics(ctx, fmt.Sprintf("drain%d", latency.Milliseconds()), 12)
	if err != nil {
		return row, err
	}
	ids, err := b.backlog(ctx, names, n)
	if err != nil {
		return row, err
	}
	sim, simURL, err := b.startSim(ctx, latency)
	if err != nil {
		return row, err
	}
	defer b.stop(sim)
	start := time.Now()
	proc, metrics, err := b.startProcessorBin(ctx, bin, "processor-drain", names, simURL)
	if err != nil {
		return row, err
	}
	defer b.stop(proc)
	kafka, redis := infraPIDs()
	meter := newCPUMeter(map[string]int{"processor": proc.PID(), "simulator": sim.PID(), "kafka": kafka, "redis": redis, "observer": os.Getpid()})
	// The other build's profiles (--baseline-bin) are named apart, so
	// both builds' can be compared.
	tag := ""
	if bin != b.bin {
		tag = "-baseline"
	}
	b.cpuProfile(metrics, fmt.Sprintf("processor-drain-%s%s", latency, tag))
	b.cpuProfile(simURL, fmt.Sprintf("sim-drain-%s%s", latency, tag))
	var rec *brokerRecording
	if latency == 0 && tag == "" && !b.brokerDrainRecorded {
		b.brokerDrainRecorded = true
		rec = b.startBrokerRecording("drain-0s")
		defer rec.abandon()
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	// While the drain runs, the bench only polls the processor's completed
	// counter, so that it takes next to no CPU from what it measures; the
	// state topic is read afterwards, for the check and the timestamps.
	if err := waitCompleted(wctx, metrics, n, proc); err != nil {
		return row, err
	}
	row.CPUMsPerOrder = perOrder(meter.stop(), n)
	b.stopBrokerRecording(rec, "drain, 0 ms", int64(n), "order")
	row.StepMs, _ = stepMeans(ctx, metrics)
	states, err := harness.FollowCompletions(b.brokers, names.State)
	if err != nil {
		return row, err
	}
	defer states.Close()
	if missing, err := states.WaitAll(wctx, ids, func(s *processor.State) bool { return s.Status == processor.StatusCompleted }); err != nil {
		return row, fmt.Errorf("%w (e.g. %v)\n%s", err, first(missing, 3), proc.LogTail(20))
	}
	first, last := completionSpan(states, ids)
	row.Seconds = last.Sub(first).Seconds()
	row.FromStartSeconds = last.Sub(start).Seconds()
	if row.Seconds > 0 {
		row.OrdersPerSec = float64(n-1) / row.Seconds
	}
	stats, err := harness.Sim{URL: simURL}.Stats(ctx)
	if err != nil {
		return row, err
	}
	var calls, waits int64
	for step, s := range stats {
		calls += s.Requests
		waits += s.Requests
		if step == integrations.StepProductionLog {
			// Up to 10 orders share an Airtable request, yet each of them
			// waits for a whole one: count the rows, not the requests.
			waits += max(s.Created-s.Requests, 0)
		}
	}
	row.CallsPerOrder = float64(calls) / float64(n)
	row.WaitsPerOrder = float64(waits) / float64(n)
	if latency > 0 {
		perOrder := row.WaitsPerOrder * latency.Seconds()
		row.LittleBound = float64(b.o.concurrency) / perOrder
		row.OfBound = row.OrdersPerSec / row.LittleBound
	}
	row.DuplicateCreates = dupCreates(stats)
	b.res.PeakRSS = append(b.res.PeakRSS, RSS{Process: fmt.Sprintf("%s (drain %s)", system, latency), Bytes: proc.PeakRSS()})
	return row, nil
}

// completedMetric is the processor's counter of completed orders.
const completedMetric = `orderflow_orders_total{status="completed"}`

// waitCompleted polls a processor's metrics until it has completed n orders.
func waitCompleted(ctx context.Context, metricsURL string, n int, proc *harness.Proc) error {
	for {
		if c, err := metricValue(ctx, metricsURL, completedMetric); err == nil && c >= float64(n) {
			return nil
		}
		if !proc.Running() {
			return fmt.Errorf("processor exited:\n%s", proc.LogTail(20))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d completed orders: %w\n%s", n, ctx.Err(), proc.LogTail(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// metricValue reads one sample from a Prometheus text endpoint.
func metricValue(ctx context.Context, baseURL, sample string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s not in %s/metrics", sample, baseURL)
}

// stepMeans reads the processor's mean successful call time per step, in
// ms, from orderflow_step_duration_seconds.
func stepMeans(ctx context.Context, metricsURL string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sums, counts := map[string]float64{}, map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var into map[string]float64
		switch {
		case strings.HasPrefix(line, "orderflow_step_duration_seconds_sum{"):
			into = sums
		case strings.HasPrefix(line, "orderflow_step_duration_seconds_count{"):
			into = counts
		default:
			continue
		}
		if !strings.Contains(line, `outcome="ok"`) {
			continue
		}
		_, rest, _ := strings.Cut(line, `step="`)
		step, _, _ := strings.Cut(rest, `"`)
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil && step != "" {
			into[step] = v
		}
	}
	out := map[string]float64{}
	for step, c := range counts {
		if c > 0 {
			out[step] = sums[step] / c * 1000
		}
	}
	return out, sc.Err()
}

// perOrder turns CPU seconds into milliseconds per order.
func perOrder(secs map[string]float64, n int) map[string]float64 {
	out := make(map[string]float64, len(secs))
	for k, v := range secs {
		out[k] = v * 1000 / float64(max(n, 1))
	}
	return out
}

func first(xs []string, n int) []string {
	if len(xs) > n {
		return xs[:n]
	}
	return xs
}

// completionSpan is the time from the first to the last completion.
func completionSpan(s *harness.States, ids []string) (time.Time, time.Time) {
	var lo, hi time.Time
	for _, id := range ids {
		t, ok := s.CompletedAt(id)
		if !ok {
			continue
		}
		if lo.IsZero() || t.Before(lo) {
			lo = t
		}
		if t.After(hi) {
			hi = t
		}
	}
	return lo, hi
}

func dupCreates(stats map[string]harness.StepStats) int64 {
	var d int64
	for _, s := range stats {
		d += s.DuplicateCreates
	}
	return d
}

// drainPeer measures the peer's worker.js on n jobs at 0 ms.
func (b *bench) drainPeer(ctx context.Context, n int) (DrainRow, error) {
	row := DrainRow{System: "peer worker.js", Orders: n, Concurrency: b.o.concurrency}
	redisURL := "redis://" + b.redis + "/3"
	host, port, _ := strings.Cut(b.redis, ":")
	if out, err := exec.CommandContext(ctx, "redis-cli", "-h", host, "-p", port, "-n", "3", "FLUSHDB").CombinedOutput(); err != nil {
		return row, fmt.Errorf("flush peer db: %v %s", err, out)
	}
	gport, err := freeAddr()
	if err != nil {
		return row, err
	}
	_, p, _ := strings.Cut(gport, ":")
	gw, err := b.start("peer-gateway-drain", []string{"PORT=" + p, "STRIPE_WEBHOOK_SECRET=" + benchSecret, "REDIS_URL=" + redisURL}, "node", b.peer+"/gateway.js")
	if err != nil {
		return row, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := waitPOST(wctx, "http://"+gport+"/"); err != nil {
		return row, err
	}
	rep, err := loadgen.Run(ctx, loadgen.Config{URL: "http://" + gport + "/", Secrets: []string{benchSecret}, Orders: n, Connections: 64})
	b.stop(gw)
	if err != nil {
		return row, err
	}
	if rep.OK != int64(n) {
		return row, fmt.Errorf("peer gateway accepted %d of %d", rep.OK, n)
	}
	sim, simURL, err := b.startSim(ctx, 0)
	if err != nil {
		return row, err
	}
	defer b.stop(sim)
	start := time.Now()
	kafka, redis := infraPIDs()
	w, err := b.start("peer-worker", []string{"REDIS_URL=" + redisURL, "FAKE_URL=" + simURL, "CONCURRENCY=" + strconv.Itoa(b.o.concurrency)}, "node", b.peer+"/worker.js")
	if err != nil {
		return row, err
	}
	defer b.stop(w)
	meter := newCPUMeter(map[string]int{"processor": w.PID(), "simulator": sim.PID(), "kafka": kafka, "redis": redis, "observer": os.Getpid()})
	var firstAt, doneAt time.Time
	logFile := b.tmp + "/peer-worker.log"
	deadline := time.Now().Add(30 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		c := lastCompleted(logFile)
		if c > 0 && firstAt.IsZero() {
			firstAt = time.Now()
		}
		if c >= n {
			doneAt = time.Now()
			break
		}
		if !w.Running() {
			return row, fmt.Errorf("worker.js exited:\n%s", w.LogTail(20))
		}
	}
	if doneAt.IsZero() {
		return row, fmt.Errorf("worker.js completed %d of %d", lastCompleted(logFile), n)
	}
	row.CPUMsPerOrder = perOrder(meter.stop(), n)
	row.Seconds = doneAt.Sub(firstAt).Seconds()
	row.FromStartSeconds = doneAt.Sub(start).Seconds()
	if row.Seconds > 0 {
		row.OrdersPerSec = float64(n) / row.Seconds
	}
	stats, err := harness.Sim{URL: simURL}.Stats(ctx)
	if err == nil {
		row.DuplicateCreates = dupCreates(stats)
		var calls int64
		for _, s := range stats {
			calls += s.Requests
		}
		row.CallsPerOrder = float64(calls) / float64(n)
		row.WaitsPerOrder = row.CallsPerOrder // worker.js batches nothing
	}
	return row, nil
}

// lastCompleted reads the last "completed=N" line worker.js printed.
func lastCompleted(file string) int {
	f, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "completed="); ok {
			if c, err := strconv.Atoi(v); err == nil {
				n = c
			}
		}
	}
	return n
}

func (b *bench) drain(ctx context.Context) error {
	type build struct{ bin, system string }
	builds := []build{{b.bin, "orderflow processor"}}
	if b.o.baselineBin != "" {
		builds = []build{{b.o.baselineBin, "orderflow processor (baseline)"}, builds[0]}
	}
	cost, err := labelFileCost(ctx, b.tmp+"/labels")
	if err != nil {
		return fmt.Errorf("label probe: %w", err)
	}
	b.res.LabelFileCPUMicros = float64(cost.Microseconds())
	fmt.Fprintf(os.Stderr, "bench: a label file costs %s of CPU in the processors' --label-dir\n", cost)
	rounds := max(1, b.o.drainRounds)
	for round := 1; round <= rounds; round++ {
		for _, lat := range []time.Duration{0, 50 * time.Millisecond} {
			for _, bd := range builds {
				row, err := b.drainOnce(ctx, bd.bin, bd.system, lat, b.o.drainOrders)
				if err != nil {
					return err
				}
				if rounds > 1 {
					row.Round = round
				}
				fmt.Fprintf(os.Stderr, "bench: drain %s, %s (round %d): %.0f orders/s\n", lat, bd.system, round, row.OrdersPerSec)
				b.res.Drain = append(b.res.Drain, row)
			}
		}
		if b.peer != "" {
			row, err := b.drainPeer(ctx, b.o.drainOrders)
			if err != nil {
				return fmt.Errorf("peer: %w", err)
			}
			if rounds > 1 {
				row.Round = round
			}
			fmt.Fprintf(os.Stderr, "bench: drain peer (round %d): %.0f orders/s\n", round, row.OrdersPerSec)
			b.res.Drain = append(b.res.Drain, row)
		}
	}
	return nil
}
