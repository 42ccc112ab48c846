package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
)

// ConsoleResult is the console with a large index: every run, and the
// figures of this build's median run (by catch-up ratio) at the top.
type ConsoleResult struct {
	Orders     int          `json:"orders"`
	StateBytes int64        `json:"state_bytes"`
	Runs       []ConsoleRun `json:"runs,omitempty"`
	ConsoleRun
}

// ConsoleRun is one console from an empty index: its catch-up against a
// plain consumer, then its latencies and RSS.
type ConsoleRun struct {
	Build string `json:"build,omitempty"`
	Round int    `json:"round,omitempty"`
	// PlainPerSec is the faster of two plain reads of the topic, one just
	// before the console starts and one right after it has caught up (one
	// read can be far slower than the next: 240,000 records/s in one full
	// run against about 600,000 in the two after it).
	PlainPerSec       float64 `json:"plain_consumer_records_per_sec"`
	PlainBeforePerSec float64 `json:"plain_consumer_before_records_per_sec"`
	PlainAfterPerSec  float64 `json:"plain_consumer_after_records_per_sec"`
	IndexPerSec       float64 `json:"index_catch_up_records_per_sec"`
	CatchUpSecs       float64 `json:"index_catch_up_seconds"`
	Ratio             float64 `json:"catch_up_of_plain"`
	// CPU of each read per record (µs), the broker's apart: the plain
	// consumer's (this process, the faster read's) and the console's from
	// its start to caught up. A catch-up at half the plain rate on a
	// machine both saturate may spend per record what the read does.
	PlainCPUMicros        float64 `json:"plain_consumer_cpu_us_per_record"`
	PlainBrokerCPUMicros  float64 `json:"plain_consumer_broker_cpu_us_per_record"`
	CatchUpCPUMicros      float64 `json:"catch_up_cpu_us_per_record"`
	CatchUpBrokerCPUMicro float64 `json:"catch_up_broker_cpu_us_per_record"`
	PeakRSS               int64   `json:"console_peak_rss"`
	IndexBytes            int64   `json:"index_bytes"`
	// Latencies (ms) measured over HTTP from this process: p50 and p99.
	Queries []QueryLatency `json:"queries"`
}

// QueryLatency is one kind of request's latency.
type QueryLatency struct {
	What  string  `json:"what"`
	N     int     `json:"n"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	Limit float64 `json:"limit_ms"`
}

// benchState is a realistic finished order: customer, address, items,
// every step's result.
func benchState(i int, created time.Time) *processor.State {
	id := fmt.Sprintf("pi_3Qbench%08dXy", i)
	st := &processor.State{Version: 1, OrderID: id, Status: processor.StatusCompleted, CreatedAt: created, UpdatedAt: created.Add(3 * time.Second),
		Order: &integrations.Order{Model: integrations.OrderModel, ID: id, PaymentIntentID: id, CheckoutSessionID: fmt.Sprintf("cs_test_bench%08d", i),
			Number: integrations.OrderNumber(id), Currency: "sek", AmountTotal: 68182, AmountSubtotal: 54545, AmountTax: 13637, AmountShipping: 4900,
			Items: []integrations.LineItem{{SKU: "price_1QbenchShirt", Description: "T-shirt, organic cotton, navy, L", Quantity: 2, UnitAmount: 24900,
				AmountSubtotal: 49800, AmountTotal: 62250, AmountTax: 12450, Taxes: []integrations.Tax{{Amount: 12450, TaxableAmount: 49800, Percentage: "25", TaxabilityReason: "standard_rated"}}}},
			Customer: integrations.Customer{Name: "Sanna Öhman-Kärkkäinen", Email: fmt.Sprintf("buyer%08d@example.com", i), Phone: "+46701234567"},
			Shipping: integrations.Address{Name: "Sanna Öhman-Kärkkäinen", Line1: "Kungsgatan 21", PostalCode: "11156", City: "Stockholm", Country: "SE"},
			Locale:   "sv-SE", CreatedAt: created},
		AppliedEvents:  []string{fmt.Sprintf("evt_bench%08da", i), fmt.Sprintf("evt_bench%08db", i)},
		AppliedObjects: []string{"checkout.session.completed/cs_test_bench", "payment_intent.succeeded/" + id},
	}
	results := map[string]any{
		processor.StepCRM:           integrations.CRMResult{ContactID: "4150868000000000004", DealID: "4150868000000000005"},
		processor.StepProductionLog: integrations.ProductionLogResult{RecordID: "rec00000000000006"},
		processor.StepShipping: integrations.Shipment{ShipmentID: "700000000000000008", TrackingNumber: fmt.Sprintf("0037350%013d", i),
			TrackingURL: fmt.Sprintf("https://tracking.postnord.com/se/?id=0037350%013d", i), LabelLocation: "file:///labels/" + id + "_label-1.pdf"},
		processor.StepInvoice: integrations.Invoice{Number: fmt.Sprintf("5543%010d", i), ProviderID: "1811"},
		processor.StepEmail:   integrations.Message{MessageID: "<" + st.Order.Number + "@mg.shop.example>"},
	}
	for k, step := range processor.Chain {
		ss := st.Step(step)
		ss.Done = true
		at := created.Add(time.Duration(k) * 400 * time.Millisecond)
		ss.DoneAt = &at
		if r, ok := results[step]; ok {
			ss.Result, _ = json.Marshal(r)
		}
	}
	return st
}

// console measures the console over a large orders.state: how fast its
// index catches up against a plain consumer of the same topic, its peak
// RSS, and search and page latencies with every order indexed.
func (b *bench) console(ctx context.Context) error {
	n := b.o.consoleOrders
	names, err := b.createTopics(ctx, "console", topics.DefaultPartitions)
	if err != nil {
		return err
	}
	res := &ConsoleResult{Orders: n}
	b.res.Console = res
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.ProducerLinger(10*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(50000))
	if err != nil {
		return err
	}
	// Orders spread over the last 30 days.
	start := time.Now().Add(-30 * 24 * time.Hour)
	step := 30 * 24 * time.Hour / time.Duration(n)
	var produceErr error
	for i := range n {
		st := benchState(i, start.Add(time.Duration(i)*step))
		v, err := st.Encode()
		if err != nil {
			cl.Close()
			return err
		}
		// As the processor writes it: the digest header with the value.
		hs := processor.StateHeaders(st, v)
		res.StateBytes += int64(len(v))
		for _, h := range hs {
			res.StateBytes += int64(len(h.Key) + len(h.Value))
		}
		cl.Produce(ctx, &kgo.Record{Topic: names.State, Key: []byte(st.OrderID), Value: v, Headers: hs}, func(_ *kgo.Record, err error) {
			if err != nil && produceErr == nil {
				produceErr = err
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		cl.Close()
		return err
	}
	cl.Close()
	if produceErr != nil {
		return produceErr
	}
	fmt.Fprintf(os.Stderr, "bench: console: %d states (%d MiB) on %s\n", n, res.StateBytes>>20, names.State)

	builds := []struct{ bin, name string }{{b.bin, "this build"}}
	if b.o.baselineBin != "" {
		builds = append([]struct{ bin, name string }{{b.o.baselineBin, "baseline"}}, builds...)
	}
	for round := 1; round <= max(1, b.o.consoleRounds); round++ {
		for _, bd := range builds {
			run := ConsoleRun{Build: bd.name, Round: round}
			if err := b.consoleRun(ctx, names, n, bd.bin, &run); err != nil {
				return fmt.Errorf("%s, round %d: %w", bd.name, round, err)
			}
			res.Runs = append(res.Runs, run)
		}
	}
	var mine []ConsoleRun
	for _, r := range res.Runs {
		if r.Build == "this build" {
			mine = append(mine, r)
		}
	}
	slices.SortFunc(mine, func(a, b ConsoleRun) int { return cmp.Compare(a.Ratio, b.Ratio) })
	res.ConsoleRun = mine[len(mine)/2]
	return nil
}

// consoleRun starts bin's console from an empty index over the topics of
// names (n states) and measures it into res.
func (b *bench) consoleRun(ctx context.Context, names topics.Names, n int, bin string, res *ConsoleRun) error {
	tag := fmt.Sprintf("%s, round %d", res.Build, res.Round)
	// The plain consumer: read every record, decode nothing.
	kafka, _ := infraPIDs()
	perRecord := func(cpu map[string]float64, name string, n int) float64 {
		if v, ok := cpu[name]; ok && n > 0 {
			return v * 1e6 / float64(n)
		}
		return 0
	}
	t0 := time.Now()
	meter := newCPUMeter(map[string]int{"client": os.Getpid(), "kafka": kafka})
	got, err := b.plainReadAll(ctx, names.State, n)
	if err != nil {
		return err
	}
	res.PlainBeforePerSec = float64(got) / time.Since(t0).Seconds()
	cpu := meter.stop()
	res.PlainCPUMicros, res.PlainBrokerCPUMicros = perRecord(cpu, "client", got), perRecord(cpu, "kafka", got)

	// The console, as its own process, from an empty index.
	token := "bench-console-token"
	sum := sha256.Sum256([]byte(token))
	tokens := filepath.Join(b.tmp, "console-tokens")
	if err := os.WriteFile(tokens, []byte("bench:operator:"+hex.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	indexDir := filepath.Join(b.tmp, "console-index")
	if err := os.RemoveAll(indexDir); err != nil {
		return err
	}
	defer os.RemoveAll(indexDir)
	argv := []string{bin, "console", "--brokers", strings.Join(b.brokers, ","), "--topic-prefix", names.Prefix,
		"--http-addr", addr, "--index-dir", indexDir, "--tokens-file", tokens, "--log-format", "text"}
	pprofAddr := ""
	profile := b.o.profile != "" && bin == b.bin // another build may not have --pprof-addr
	if profile {
		if pprofAddr, err = freeAddr(); err != nil {
			return err
		}
		argv = append(argv, "--pprof-addr", pprofAddr)
	}
	t0 = time.Now()
	proc, err := b.start("console", nil, argv...)
	if err != nil {
		return err
	}
	defer b.stop(proc)
	meter = newCPUMeter(map[string]int{"console": proc.PID(), "kafka": kafka})
	// The profiles end before the console stops (deferred calls run last
	// first), and one at a time: Go serves one CPU profile at once.
	var catchUpProfile, searchProfile sync.WaitGroup
	defer searchProfile.Wait()
	defer catchUpProfile.Wait()
	base := "http://" + addr
	get := func(path string) ([]byte, int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, 0, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return body, resp.StatusCode, err
	}
	profiled := false
	for {
		body, code, err := get("/api/index")
		var st struct {
			Behind int64
			Known  bool
		}
		if err == nil && code == 200 && json.Unmarshal(body, &st) == nil && st.Known && st.Behind == 0 {
			break
		}
		if profile && !profiled && err == nil && code == 200 {
			// From the first answer, for 5 s: a catch-up of the default
			// size takes longer, and a profile the console's stop cuts
			// short is lost.
			profiled = true
			catchUpProfile.Go(func() {
				b.consoleProfile(ctx, pprofAddr, fmt.Sprintf("console-catchup-%s-%d", strings.ReplaceAll(res.Build, " ", "-"), res.Round), 5)
			})
		}
		if !proc.Running() || time.Since(t0) > 15*time.Minute || ctx.Err() != nil {
			return fmt.Errorf("console did not catch up (running %v)\n%s", proc.Running(), proc.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.CatchUpSecs = time.Since(t0).Seconds()
	res.IndexPerSec = float64(n) / res.CatchUpSecs
	cpu = meter.stop()
	res.CatchUpCPUMicros, res.CatchUpBrokerCPUMicro = perRecord(cpu, "console", n), perRecord(cpu, "kafka", n)
	t1 := time.Now()
	meter = newCPUMeter(map[string]int{"client": os.Getpid(), "kafka": kafka})
	got, err = b.plainReadAll(ctx, names.State, n)
	if err != nil {
		return err
	}
	res.PlainAfterPerSec = float64(got) / time.Since(t1).Seconds()
	if res.PlainAfterPerSec > res.PlainBeforePerSec {
		cpu = meter.stop()
		res.PlainCPUMicros, res.PlainBrokerCPUMicros = perRecord(cpu, "client", got), perRecord(cpu, "kafka", got)
	}
	res.PlainPerSec = max(res.PlainBeforePerSec, res.PlainAfterPerSec)
	res.Ratio = res.IndexPerSec / res.PlainPerSec
	fmt.Fprintf(os.Stderr, "bench: console (%s): plain consumer %.0f records/s (before %.0f, after %.0f), index catch-up %.0f records/s (%.2f×) in %.1fs\n",
		tag, res.PlainPerSec, res.PlainBeforePerSec, res.PlainAfterPerSec, res.IndexPerSec, res.Ratio, res.CatchUpSecs)

	rng := rand.New(rand.NewPCG(1, 2))
	search := func(term string) (int, error) {
		body, _ := json.Marshal(map[string]string{"term": term})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/orders/search", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var page struct{ Orders []struct{ ID string } }
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
			return 0, err
		}
		return len(page.Orders), nil
	}
	measure := func(what string, limit float64, rounds int, fn func(i int) error) error {
		var ms []float64
		for i := range rounds {
			t := time.Now()
			if err := fn(i); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			ms = append(ms, float64(time.Since(t).Microseconds())/1000)
		}
		slices.Sort(ms)
		q := QueryLatency{What: what, N: rounds, P50Ms: ms[len(ms)/2], P99Ms: ms[len(ms)*99/100], Limit: limit}
		res.Queries = append(res.Queries, q)
		fmt.Fprintf(os.Stderr, "bench: console (%s): %s p50 %.1f ms, p99 %.1f ms\n", tag, what, q.P50Ms, q.P99Ms)
		return nil
	}
	one := func(found int, err error) error {
		if err == nil && found != 1 {
			err = fmt.Errorf("found %d orders, want 1", found)
		}
		return err
	}
	page := func(path string) error {
		body, code, err := get(path)
		if err == nil && (code != 200 || !bytes.Contains(body, []byte(`<a href="/orders/pi_3Qbench`))) {
			err = fmt.Errorf("%s: %d without orders", path, code)
		}
		return err
	}
	var cursor string
	if body, _, err := get("/api/orders"); err == nil {
		var p struct{ Next string }
		_ = json.Unmarshal(body, &p)
		cursor = p.Next
	}
	steps := []struct {
		what  string
		limit float64
		fn    func(int) error
	}{
		{"search by email", 100, func(int) error { return one(search(fmt.Sprintf("buyer%08d@example.com", rng.IntN(n)))) }},
		{"search by order id", 100, func(int) error { return one(search(fmt.Sprintf("pi_3Qbench%08dXy", rng.IntN(n)))) }},
		{"search by OF- number", 100, func(int) error {
			return one(search(integrations.OrderNumber(fmt.Sprintf("pi_3Qbench%08dXy", rng.IntN(n)))))
		}},
		{"search by tracking number", 100, func(int) error { return one(search(fmt.Sprintf("0037350%013d", rng.IntN(n)))) }},
		{"orders page (newest)", 200, func(int) error { return page("/orders") }},
		{"orders page (status completed)", 200, func(int) error { return page("/orders?status=completed") }},
		{"orders page (second page)", 200, func(int) error { return page("/orders?cursor=" + cursor) }},
		{"orders page (since 7d)", 200, func(int) error { return page("/orders?since=7d") }},
	}
	for i, s := range steps {
		if profile && i == 0 {
			catchUpProfile.Wait()
			searchProfile.Go(func() {
				b.consoleProfile(ctx, pprofAddr, fmt.Sprintf("console-search-%s-%d", strings.ReplaceAll(res.Build, " ", "-"), res.Round), 10)
			})
		}
		if err := measure(s.what, s.limit, 300, s.fn); err != nil {
			return err
		}
	}
	res.PeakRSS = proc.PeakRSS()
	res.IndexBytes = dirSize(indexDir)
	fmt.Fprintf(os.Stderr, "bench: console (%s): peak RSS %d MiB, index %d MiB\n", tag, res.PeakRSS>>20, res.IndexBytes>>20)
	return nil
}

// consoleProfile saves a CPU profile lasting seconds, then the heap, of the console
// serving Go's profiler at addr, as <name>.cpu.pprof and <name>.heap.pprof
// in the --profile folder.
func (b *bench) consoleProfile(ctx context.Context, addr, name string, seconds int) {
	for _, p := range []struct{ path, file string }{{fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), ".cpu.pprof"}, {"/debug/pprof/heap", ".heap.pprof"}} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: console profile %s: %v\n", name, err)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			err = os.WriteFile(filepath.Join(b.o.profile, name+p.file), body, 0o644)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: console profile %s: %v\n", name, err)
		}
	}
}

// plainReadAll reads n records of every partition of topic with a plain
// franz-go consumer that decodes nothing.
func (b *bench) plainReadAll(ctx context.Context, topic string, n int) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	got := 0
	for got < n {
		fs := cl.PollRecords(ctx, 20000)
		if ctx.Err() != nil {
			return got, ctx.Err()
		}
		got += len(fs.Records())
	}
	return got, nil
}

func dirSize(dir string) int64 {
	var total int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return nil
	})
	return total
}

// consoleMarkdown is the console's section of the results.
func (r *Results) consoleMarkdown(s *strings.Builder) {
	c := r.Console
	if c == nil {
		return
	}
	fmt.Fprintf(s, "## Console (%d orders indexed)\n\n", c.Orders)
	fmt.Fprintf(s, "orders.state: %d records, %d MiB, 12 partitions. Index catch-up from an empty index, process start to caught up, against a plain franz-go consumer reading the same topic and decoding nothing: the faster of a read just before the console starts and one right after it has caught up (one read can be far slower than the next). This build's median run (by catch-up ratio):\n\n", c.Orders, c.StateBytes>>20)
	s.WriteString("| measure | value | target |\n|---|---|---|\n")
	fmt.Fprintf(s, "| plain consumer | %.0f records/s (before %.0f, after %.0f) | |\n", c.PlainPerSec, c.PlainBeforePerSec, c.PlainAfterPerSec)
	fmt.Fprintf(s, "| index catch-up | %.0f records/s (%.1f s) | |\n", c.IndexPerSec, c.CatchUpSecs)
	fmt.Fprintf(s, "| catch-up ÷ plain | %.2f | ≥ 0.5 |\n", c.Ratio)
	if c.PlainCPUMicros > 0 {
		fmt.Fprintf(s, "| CPU per record, plain read (the faster one) | %.2f µs consumer + %.2f µs broker | |\n", c.PlainCPUMicros, c.PlainBrokerCPUMicros)
		fmt.Fprintf(s, "| CPU per record, catch-up | %.2f µs console + %.2f µs broker | |\n", c.CatchUpCPUMicros, c.CatchUpBrokerCPUMicro)
	}
	fmt.Fprintf(s, "| console peak RSS | %d MiB | ≤ 256 MiB |\n", c.PeakRSS>>20)
	fmt.Fprintf(s, "| index on disk | %d MiB | |\n\n", c.IndexBytes>>20)
	s.WriteString("| request (over HTTP, 300 each) | p50 ms | p99 ms | target p99 |\n|---|---|---|---|\n")
	for _, q := range c.Queries {
		fmt.Fprintf(s, "| %s | %.1f | %.1f | ≤ %.0f ms |\n", q.What, q.P50Ms, q.P99Ms, q.Limit)
	}
	s.WriteString("\n")
	if len(c.Runs) < 2 {
		return
	}
	s.WriteString("Every run, in the order run (p99 ms of each request; CPU µs per record, consumer or console + broker):\n\n| build | round | plain rec/s | catch-up rec/s | ratio | CPU plain | CPU catch-up | peak RSS MiB |")
	for _, q := range c.Runs[0].Queries {
		fmt.Fprintf(s, " %s |", q.What)
	}
	s.WriteString("\n|---|---|---|---|---|---|---|---|" + strings.Repeat("---|", len(c.Runs[0].Queries)) + "\n")
	for _, run := range c.Runs {
		fmt.Fprintf(s, "| %s | %d | %.0f | %.0f | %.2f | %.2f + %.2f | %.2f + %.2f | %d |", run.Build, run.Round, run.PlainPerSec, run.IndexPerSec, run.Ratio,
			run.PlainCPUMicros, run.PlainBrokerCPUMicros, run.CatchUpCPUMicros, run.CatchUpBrokerCPUMicro, run.PeakRSS>>20)
		for _, q := range run.Queries {
			fmt.Fprintf(s, " %.1f |", q.P99Ms)
		}
		s.WriteString("\n")
	}
	s.WriteString("\n")
}
