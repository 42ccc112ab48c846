package chaos

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/harness"
	"github.com/orderflow/orderflow/test/loadgen"
	"github.com/orderflow/orderflow/test/testenv"
	"github.com/orderflow/orderflow/topics"
)

var (
	full    = flag.Bool("chaos.full", false, "run the long version of every scenario (make chaos) and write the results table")
	results = flag.String("chaos.results", "results.md", "where the full run writes its results table (Markdown)")
	logDir  = flag.String("chaos.logs", "", "keep every process's log in this folder (default: a temporary folder, removed)")
)

// opts returns a cluster's options with the command-line settings.
func opts(o Options) Options {
	o.LogDir = *logDir
	return o
}

// TestMain lets the short scenarios, which mostly wait (for rebalances,
// outages, backoff), run four at a time unless -test.parallel says
// otherwise.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set && !*full {
		_ = flag.Set("test.parallel", "4")
	}
	os.Exit(m.Run())
}

// rate is the load generator's orders per second: below what three
// processors sustain (the production log's Airtable client spaces its
// requests to 5/s per process), so that a backlog is the fault's doing.
const rate = 12.0

// size picks the short or the long value of a setting.
func size[T any](short, long T) T {
	if *full {
		return long
	}
	return short
}

// scenario is one fault scenario: it starts its cluster, runs load and
// faults, checks the invariants and returns its table row.
type scenario struct {
	name string
	run  func(t *testing.T) Row
}

// TestChaos runs every fault scenario in turn and reports the table.
func TestChaos(t *testing.T) {
	scenarios := []scenario{
		{"1-processor-kill", processorKills},
		{"2-rolling-restart", rollingRestart},
		{"3-broker-outage", brokerOutage},
		{"4-redis-outage", redisOutage},
		{"5-provider-unavailable", providerUnavailable},
		{"6-provider-slow", providerSlow},
		{"7-provider-flaky", providerFlaky},
		{"8-provider-rejects", providerRejects},
		{"9-gateway-kill", gatewayKills},
		{"10-kill-storm", killStorm},
		{"11-processor-freeze", processorFreeze},
	}
	var (
		mu   sync.Mutex
		rows []Row
	)
	// The group returns when every scenario has finished; short scenarios
	// run in parallel (as many at once as -parallel allows), long ones one
	// after the other so that their timings are not shared.
	t.Run("scenarios", func(t *testing.T) {
		for _, s := range scenarios {
			t.Run(s.name, func(t *testing.T) {
				if !*full {
					t.Parallel()
				}
				row := Row{Scenario: s.name}
				defer func() {
					if t.Skipped() {
						return
					}
					row.Scenario, row.Pass = s.name, !t.Failed()
					t.Logf("%s: sent %d, accepted %d, completed %d, dead-lettered %d, lost %d, duplicate creations %d (shipping %d), drained in %.1fs",
						row.Scenario, row.Sent, row.Accepted, row.Completed, row.DeadLettered, row.Lost, row.DupCreates, row.ShippingDups, row.Drain.Seconds())
					mu.Lock()
					rows = append(rows, row)
					mu.Unlock()
				}()
				row = s.run(t)
			})
		}
	})
	slices.SortFunc(rows, func(a, b Row) int { return strings.Compare(a.Scenario, b.Scenario) })
	if len(rows) == 0 {
		return
	}
	t.Logf("results:\n%s", Table(rows))
	if *full {
		if err := WriteResults(*results, "full", rows, time.Now()); err != nil {
			t.Errorf("write results: %v", err)
		} else {
			t.Logf("results written to %s", *results)
		}
	}
}

// settleTimeout bounds the wait for quiescence after the load.
func settleTimeout() time.Duration { return size(3*time.Minute, 10*time.Minute) }

// fault is injected while the load runs; loadDone closes when the load
// generator has finished. It returns a description of what it did.
type fault func(ctx context.Context, loadDone <-chan struct{}) (string, error)

// runScenario runs the load with the fault alongside, then waits for
// quiescence and returns the load report, the outcome and the fault's
// description.
func runScenario(t *testing.T, c *Cluster, cfg loadgen.Config, f fault) (*loadgen.Report, *Outcome, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var (
		watchMu  sync.Mutex
		watchErr error
	)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go c.Watch(wctx, 30*time.Second, func(err error) {
		watchMu.Lock()
		watchErr = err
		watchMu.Unlock()
		cancel()
	})
	wait := c.RunLoad(ctx, cfg)
	loadDone := make(chan struct{})
	type faultResult struct {
		desc string
		err  error
	}
	fres := make(chan faultResult, 1)
	go func() {
		d, err := f(ctx, loadDone)
		fres <- faultResult{d, err}
	}()
	rep, lerr := wait()
	close(loadDone)
	fr := <-fres
	watched := func() {
		watchMu.Lock()
		err := watchErr
		watchMu.Unlock()
		if err != nil {
			t.Fatalf("stopped: %v", err)
		}
	}
	watched()
	if lerr != nil {
		t.Fatalf("loadgen: %v", lerr)
	}
	if fr.err != nil {
		t.Errorf("fault injection: %v", fr.err)
	}
	end := time.Now()
	accepted := c.AcceptedOrders(rep)
	out := c.Settle(ctx, accepted, end, settleTimeout())
	stopWatch()
	watched()
	t.Logf("faults: %s; settled: %d accepted, %d completed, %d dead-lettered, %d lost, %d in progress, drain %.1fs; flags %v",
		fr.desc, len(accepted), out.Completed, out.DeadLettered, len(out.Lost), out.InProgress, out.Drain.Seconds(), out.Flagged)
	return rep, out, fr.desc
}

// sleep waits d or until ctx ends; it reports whether the full time passed.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// processorKills: kill -9 of a random processor every few seconds,
// restarted each time.
func processorKills(t *testing.T) Row {
	c := Start(t, opts(Options{Brokers: testenv.Kafka(t), Redis: testenv.Redis(t)}))
	kills, every := size(3, 12), size(time.Second, 4*time.Second)
	orders := size(150, 720)
	rep, out, desc := runScenario(t, c, c.Load(orders, rate), func(ctx context.Context, _ <-chan struct{}) (string, error) {
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
		for i := 0; i < kills; i++ {
			if !sleep(ctx, every) {
				return fmt.Sprintf("%d × kill -9", i), ctx.Err()
			}
			n := rng.IntN(len(c.Procs))
			c.Procs[n].Kill()
			if err := c.Procs[n].Start(); err != nil {
				return fmt.Sprintf("%d × kill -9", i+1), err
			}
			if err := c.WaitProcessor(ctx, n); err != nil {
				return fmt.Sprintf("%d × kill -9", i+1), err
			}
		}
		return fmt.Sprintf("%d × kill -9 of a random processor, every %s", kills, every), nil
	})
	c.Check(out, false)
	row := Row{Faults: desc}
	row.Fill(rep.Orders, out)
	return row
}

// rollingRestart: SIGTERM each processor in turn, start it again, next.
func rollingRestart(t *testing.T) Row {
	c := Start(t, opts(Options{Brokers: testenv.Kafka(t), Redis: testenv.Redis(t)}))
	rounds := size(1, 3)
	orders := size(150, 600)
	rep, out, desc := runScenario(t, c, c.Load(orders, rate), func(ctx context.Context, _ <-chan struct{}) (string, error) {
		restarts := 0
		for r := 0; r < rounds; r++ {
			for i, p := range c.Procs {
				if !sleep(ctx, time.Second) {
					return fmt.Sprintf("%d graceful restarts", restarts), ctx.Err()
				}
				if !p.Stop(30 * time.Second) {
					t.Errorf("%s did not stop within 30s of SIGTERM (killed)\n%s", p.Name, p.LogTail(20))
				}
				if code := p.ExitCode(); code != 0 {
					t.Errorf("%s exited %d after SIGTERM, want 0\n%s", p.Name, code, p.LogTail(20))
				}
				if err := p.Start(); err != nil {
					return fmt.Sprintf("%d graceful restarts", restarts), err
				}
				if err := c.WaitProcessor(ctx, i); err != nil {
					return fmt.Sprintf("%d graceful restarts", restarts), err
				}
				restarts++
			}
		}
		return fmt.Sprintf("%d round(s) of SIGTERM + start of each processor (%d restarts)", rounds, restarts), nil
	})
	c.Check(out, false)
	row := Row{Faults: desc}
	row.Fill(rep.Orders, out)
	return row
}

// brokerOutage: the Kafka broker stopped and restarted under load; the
// load generator redelivers what got no 2xx, as Stripe does.
func brokerOutage(t *testing.T) Row {
	broker := testenv.NewKafka(t)
	c := Start(t, opts(Options{Brokers: broker.Addr(), Redis: testenv.Redis(t)}))
	outage := size(6*time.Second, 30*time.Second)
	orders := size(150, 720)
	cfg := c.Load(orders, rate)
	cfg.Redeliver, cfg.RedeliverDelay = 200, time.Second
	rep, out, desc := runScenario(t, c, cfg, func(ctx context.Context, _ <-chan struct{}) (string, error) {
		if !sleep(ctx, 3*time.Second) {
			return "none", ctx.Err()
		}
		broker.Stop()
		down := time.Now()
		sleep(ctx, outage)
		if err := broker.Kafka.Start(ctx); err != nil {
			return "broker stopped", fmt.Errorf("restart kafka: %w", err)
		}
		return fmt.Sprintf("broker stopped %s (down %.1fs with restart)", outage, time.Since(down).Seconds()), nil
	})
	if len(rep.Unanswered) > 0 {
		t.Errorf("%d events never answered 2xx despite redelivery (e.g. %v)", len(rep.Unanswered), head(rep.Unanswered, 5))
	}
	c.Check(out, false)
	row := Row{Faults: desc}
	row.Fill(rep.Orders, out)
	return row
}

// redisOutage: the gateway's Redis killed and restarted under load, with
// duplicate deliveries in the stream.
func redisOutage(t *testing.T) Row {
	r := testenv.NewRedis(t)
	c := Start(t, opts(Options{Brokers: testenv.Kafka(t), Redis: r.Addr()}))
	outage := size(5*time.Second, 30*time.Second)
	orders := size(150, 600)
	cfg := c.Load(orders, rate)
	cfg.Duplicates = 0.1
	rep, out, desc := runScenario(t, c, cfg, func(ctx context.Context, _ <-chan struct{}) (string, error) {
		if !sleep(ctx, 2*time.Second) {
			return "none", ctx.Err()
		}
		r.Kill()
		sleep(ctx, outage)
		if err := r.Redis.Start(ctx); err != nil {
			return "redis killed", fmt.Errorf("restart redis: %w", err)
		}
		return fmt.Sprintf("redis kill -9, down %s", outage), nil
	})
	c.Check(out, false)
	row := Row{Faults: desc}
	row.Fill(rep.Orders, out)
	return row
}

// providerUnavailable: one provider answers 503 to every call for a while:
// the circuit breaker holds orders back; none is dead-lettered.
func providerUnavailable(t *testing.T) Row {
	c := Start(t, opts(Options{Brokers: testenv.Kafka(t), Redis: testenv.Redis(t)}))
	outage := size(10*time.Second, 60*time.Second)
	orders := size(180, 1080)
	var during harness.StepStats
	rep, out, desc := runScenario(t, c, c.Load(orders, rate), func(ctx context.Context, _ <-chan struct{}) (string, error) {
		if !sleep(ctx, 2*time.Second) {
			return "none", ctx.Err()
		}
		before, err := c.Sim.Stats(ctx)
		if err != nil {
			return "none", err
		}
		if err := c.Sim.SetFault(ctx, harness.Fault{Step: "invoice", Mode: "unavailable", Rate: 1}); err != nil {
			return "none", err
		}
		sleep(ctx, outage)
		after, err := c.Sim.Stats(ctx)
		if err != nil {
			return "invoice unavailable", err
		}
		if err := c.Sim.ClearFaults(ctx); err != nil {
			return "invoice unavailable", err
		}
		during.Requests = after["invoice"].Requests - before["invoice"].Requests
		return fmt.Sprintf("invoice provider 503 on every call for %s", outage), nil
	})
	t.Logf("invoice calls during the outage: %d (orders accepted: %d)", during.Requests, len(out.Accepted))
	// Without a circuit every order reaching invoice would retry on its own
	// (up to the attempt limit); with it, only the calls that open it and
	// one probe per cool-down per processor reach the provider.
	if during.Requests > int64(len(out.Accepted)) {
		t.Errorf("%d invoice calls during the outage for %d orders: the circuit breaker did not hold orders back", during.Requests, len(out.Accepted))
	}
	c.Check(out, false)
	row := Row{Faults: desc}
	row.Fill(rep.Orders, out)
	return row
}

// providerSlow: half the shipping calls take 5 s: the other orders keep
// flowing instead of queueing behind the slow ones.
func providerSlow(t *testing.T) Row {
	c := Start(t, opts(Options{Brokers: testenv.Kafka(t), Redis: testenv.Redis(t)}))
	orders, rate := size(150, 600), 10.0 // well below capacity: latencies are the measure here
	ctx := context.Background()
	if err := c.Sim.SetFault(ctx, harness.Fault{Step: "shipping", Mode: "slow", Rate: 0.5, Latency: "5s"}); err != nil {
		t.Fatal(err)
	}
	rep, out, desc := runScenario(t, c, c.Load(orders, rate), func(ctx context.Context, loadDone <-chan struct{}) (string, error) {
		<-loadDone
		return "shipping: 50 % of calls take 5 s, while the load runs", c.Sim.ClearFaults(ctx)
	})
	// Orders whose shipping call was not slowed must not wait behind the
	// ones that were: most of them complete soon after the gateway
	// accepted them.
	var fast, unaffected, slowed, examples int
	var lat []time.Duration
	for _, id := range out.Accepted {
		st := c.States.Get(id)
		done, ok := c.States.CompletedAt(id)
		at, acc := rep.AcceptedAt[id]
		if st == nil || !ok || !acc {
			continue
		}
		ship, prev := st.Step(processor.StepShipping), st.Step(processor.StepProductionLog)
		if ship == nil || prev == nil || ship.DoneAt == nil || prev.DoneAt == nil {
			continue
		}
		if ship.DoneAt.Sub(*prev.DoneAt) >= 4*time.Second {
			slowed++
			continue
		}
		unaffected++
		lat = append(lat, done.Sub(at))
		if done.Sub(at) < 4*time.Second {
			fast++
		} else if examples < 3 {
			examples++
			t.Logf("order %s without a slow call took %s: %s", id, done.Sub(at).Round(time.Millisecond), timeline(st, at))
		}
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		t.Logf("%d orders had a slow shipping call, %d did not; of those, accept→complete p50 %s, p90 %s, max %s; %d under 4s",
			slowed, unaffected, lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*9/10].Round(time.Millisecond),
			lat[len(lat)-1].Round(time.Millisecond), fast)
	}
	if slowed == 0 {
		t.Errorf("no order had a slow shipping call: the fault did not apply")
	}
	if fast*2 < unaffected {
		t.Errorf("only %d of %d orders without a slow call completed within 4s: orders wait behind slow calls", fast, unaffected)
	}
	c.Check(out, false)
	row := Row{Faults: desc}
	row.Fill(rep.Orders, out)
	return row
}

// providerFlaky: 30 % of one provider's calls fail transiently throughout.
func providerFlaky(t *testing.T) Row {
	c := Start(t, opts(Options{Brokers: testenv.Kafka(t), Redis: testenv.Redis(t)}))
	orders := size(150, 720)
	ctx := context.Background()
	if err := c.Sim.SetFault(ctx, harness.Fault{Step: "shipping", Mode: "unavailable", Rate: 0.3}); err != nil {
		t.Fatal(err)
	}
	rep, out, desc := runScenario(t, c, c.Load(orders, rate), func(ctx context.Context, loadDone <-chan struct{}) (string, error) {
		<-loadDone
		return "shipping: 30 % of calls 503, throughout", nil // the fault stays until quiescence
	})
	c.Check(out, false)
	row := Row{Faults: desc}
	row.Fill(rep.Orders, out)
	return row
}

// providerRejects: a provider rejects some orders permanently: they are
// dead-lettered with a reason, and `dlq replay` completes them once the
// fault is gone.
func providerRejects(t *testing.T) Row {
	c := Start(t, opts(Options{Brokers: testenv.Kafka(t), Redis: testenv.Redis(t)}))
	orders := size(150, 720)
	ctx := context.Background()
	if err := c.Sim.SetFault(ctx, harness.Fault{Step: "invoice", Mode: "reject", Rate: 0.1}); err != nil {
		t.Fatal(err)
	}
	rep, out, _ := runScenario(t, c, c.Load(orders, rate), func(ctx context.Context, loadDone <-chan struct{}) (string, error) {
		<-loadDone
		return "invoice rejects 10 % of calls (permanent)", nil
	})
	c.Check(out, true)
	dead := c.DeadOrders()
	if len(dead) == 0 {
		t.Errorf("no order dead-lettered while 10 %% of invoice calls were rejected")
	}
	// Every dead letter says why.
	for _, id := range dead {
		st := c.States.Get(id)
		if st.DeadLetter == nil || st.DeadLetter.Step != processor.StepInvoice || st.DeadLetter.Class != topics.ClassPermanent || st.LastError == "" {
			t.Errorf("dead-lettered order %s: dead letter %+v, last error %q; want step %s, class %s and a reason",
				id, st.DeadLetter, st.LastError, processor.StepInvoice, topics.ClassPermanent)
		}
	}
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ds, err := c.DLQList(lctx)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, d := range ds {
		listed[d.OrderID] = true
		if d.Error == "" || d.Class == "" {
			t.Errorf("dlq list: dead letter of %s at %d/%d has no reason (class %q, error %q)", d.OrderID, d.Partition, d.Offset, d.Class, d.Error)
		}
	}
	for _, id := range dead {
		if !listed[id] {
			t.Errorf("dead-lettered order %s missing from dlq list", id)
		}
	}
	t.Logf("dlq list: %d dead letters for %d dead-lettered orders", len(ds), len(dead))

	// Clear the fault, replay everything: every accepted order completes.
	if err := c.Sim.ClearFaults(ctx); err != nil {
		t.Fatal(err)
	}
	replayStart := time.Now()
	msg, err := c.DLQReplayAll(lctx)
	if err != nil {
		t.Fatalf("dlq replay: %v", err)
	}
	t.Logf("dlq replay: %s", msg)
	after := c.Settle(ctx, out.Accepted, replayStart, settleTimeout())
	t.Logf("after replay: %d completed, %d dead-lettered, %d lost, drain %.1fs", after.Completed, after.DeadLettered, len(after.Lost), after.Drain.Seconds())
	c.Check(after, false)
	if after.Completed != len(out.Accepted) {
		t.Errorf("after replay %d of %d accepted orders completed", after.Completed, len(out.Accepted))
	}
	// The row shows the end state (after the replay); the drain is the
	// first one, from the end of the load to quiescence with the dead
	// letters written.
	row := Row{Faults: fmt.Sprintf("invoice rejects 10 %% (permanent): %d dead-lettered with a reason, then `dlq replay --all`", len(dead))}
	row.Fill(rep.Orders, after)
	row.Drain = out.Drain
	return row
}

// gatewayKills: kill -9 of the gateway under load; what got no answer is
// redelivered and still makes exactly one order.
func gatewayKills(t *testing.T) Row {
	c := Start(t, opts(Options{Brokers: testenv.Kafka(t), Redis: testenv.Redis(t)}))
	kills, every := size(2, 10), size(3*time.Second, 5*time.Second)
	orders := size(150, 720)
	cfg := c.Load(orders, rate)
	cfg.Redeliver, cfg.RedeliverDelay = 50, 500*time.Millisecond
	rep, out, desc := runScenario(t, c, cfg, func(ctx context.Context, _ <-chan struct{}) (string, error) {
		for i := 0; i < kills; i++ {
			if !sleep(ctx, every) {
				return fmt.Sprintf("%d × kill -9", i), ctx.Err()
			}
			c.Gateway.Kill()
			sleep(ctx, time.Second)
			if err := c.RestartGateway(ctx); err != nil {
				return fmt.Sprintf("%d × kill -9", i+1), err
			}
		}
		return fmt.Sprintf("%d × kill -9 of the gateway, every %s, 1 s down", kills, every), nil
	})
	if len(rep.Unanswered) > 0 {
		t.Errorf("%d events never answered 2xx despite redelivery (e.g. %v)", len(rep.Unanswered), head(rep.Unanswered, 5))
	}
	if len(out.Accepted) != rep.Orders {
		t.Errorf("%d of %d orders accepted", len(out.Accepted), rep.Orders)
	}
	c.Check(out, false)
	row := Row{Faults: desc}
	row.Fill(rep.Orders, out)
	return row
}

// timeline renders when each step of an order finished, relative to t0.
func timeline(st *processor.State, t0 time.Time) string {
	var parts []string
	for _, name := range processor.Chain {
		if s := st.Step(name); s != nil && s.DoneAt != nil {
			parts = append(parts, fmt.Sprintf("%s +%s", name, s.DoneAt.Sub(t0).Round(time.Millisecond)))
		}
	}
	return strings.Join(parts, ", ")
}

// callLatency makes every call that is not idempotent (shipping, invoice,
// email) take 200-500 ms, its object created half-way (the simulator's
// late-answer fault), so that kills and freezes land inside calls: before
// the provider acted or after it, with the answer lost.
func callLatency(ctx context.Context, c *Cluster) error {
	for _, step := range []string{integrations.StepShipping, integrations.StepInvoice, integrations.StepEmail} {
		if err := c.Sim.SetFault(ctx, harness.Fault{Step: step, Mode: "late-answer", Rate: 1, Latency: "200ms", MaxLatency: "500ms"}); err != nil {
			return err
		}
	}
	return nil
}

// pickBusy returns a random processor that has records in flight, waiting
// (up to a few seconds) for one to have some; -1 when none had any.
func pickBusy(ctx context.Context, c *Cluster, rng *rand.Rand) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		var busy []int
		for i := range c.Procs {
			if v, err := c.ProcMetric(ctx, i, "orderflow_orders_inflight"); err == nil && v > 0 {
				busy = append(busy, i)
			}
		}
		if len(busy) > 0 {
			return busy[rng.IntN(len(busy))]
		}
		if time.Now().After(deadline) || !sleep(ctx, 50*time.Millisecond) {
			return -1
		}
	}
}

// nonIdempotentRequests sums the simulator's shipping, invoice and email
// requests.
func nonIdempotentRequests(ctx context.Context, c *Cluster) (int64, error) {
	st, err := c.Sim.Stats(ctx)
	if err != nil {
		return 0, err
	}
	return st["shipping"].Requests + st["invoice"].Requests + st["email"].Requests, nil
}

// awaitNewCall waits until the simulator receives a new shipping, invoice
// or email call (one that will be in flight for 200-500 ms).
func awaitNewCall(ctx context.Context, c *Cluster) error {
	before, err := nonIdempotentRequests(ctx, c)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if !sleep(ctx, 10*time.Millisecond) {
			return ctx.Err()
		}
		if n, err := nonIdempotentRequests(ctx, c); err == nil && n > before {
			return nil
		}
	}
	return nil // no new call: the kill goes ahead anyway
}

// killStorm: SIGKILL of a busy processor, timed right after a call that is
// not idempotent started, at least 20 times, each restarted at once; every
// call takes 200-500 ms. Fails, besides the shared invariants, if no kill
// cut off an answer (the storm missed the calls).
func killStorm(t *testing.T) Row {
	c := Start(t, opts(Options{Brokers: testenv.Kafka(t), Redis: testenv.Redis(t)}))
	ctx := context.Background()
	if err := callLatency(ctx, c); err != nil {
		t.Fatal(err)
	}
	kills, every := size(20, 30), size(1400*time.Millisecond, 2*time.Second)
	orders := size(360, 900)
	rep, out, desc := runScenario(t, c, c.Load(orders, rate), func(ctx context.Context, _ <-chan struct{}) (string, error) {
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
		done := func(i int) string {
			return fmt.Sprintf("%d × kill -9 of a busy processor right after a call started (calls 200-500 ms), every %s", i, every)
		}
		for i := 0; i < kills; i++ {
			if !sleep(ctx, every) {
				return done(i), ctx.Err()
			}
			n := pickBusy(ctx, c, rng)
			if n < 0 {
				n = rng.IntN(len(c.Procs))
			}
			if err := awaitNewCall(ctx, c); err != nil {
				return done(i), err
			}
			c.Procs[n].Kill()
			if err := c.Procs[n].Start(); err != nil {
				return done(i + 1), err
			}
			if err := c.WaitProcessor(ctx, n); err != nil {
				return done(i + 1), err
			}
		}
		return done(kills), nil
	})
	if out.AnswersLost() == 0 {
		t.Errorf("no call lost its answer to a kill: the storm did not land inside calls")
	}
	t.Logf("answers lost mid-call: %d (shipping %d, invoice %d, email %d)", out.AnswersLost(),
		out.Stats["shipping"].AnswersLost, out.Stats["invoice"].AnswersLost, out.Stats["email"].AnswersLost)
	c.Check(out, false)
	row := Row{Faults: desc}
	row.Fill(rep.Orders, out)
	return row
}

// processorFreeze: SIGSTOP of a busy processor right after a call started,
// held past its session timeout until the group has moved its partitions
// to the other two, then SIGCONT: the woken processor must neither call
// nor write for the orders it lost, and the new owners must not repeat a
// call it may still have been making. Every call takes 200-500 ms.
func processorFreeze(t *testing.T) Row {
	c := Start(t, opts(Options{Brokers: testenv.Kafka(t), Redis: testenv.Redis(t)}))
	ctx := context.Background()
	if err := callLatency(ctx, c); err != nil {
		t.Fatal(err)
	}
	freezes, hold := size(1, 3), size(12*time.Second, 15*time.Second)
	orders := size(300, 900)
	var moved []string
	var frozen []int
	rep, out, desc := runScenario(t, c, c.Load(orders, rate), func(ctx context.Context, _ <-chan struct{}) (string, error) {
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
		done := func(i int) string {
			return fmt.Sprintf("%d × SIGSTOP of a busy processor right after a call started (calls 200-500 ms), %s (session timeout 6s; partitions moved after %s), then SIGCONT",
				i, hold, strings.Join(moved, ", "))
		}
		for i := 0; i < freezes; i++ {
			if !sleep(ctx, 4*time.Second) {
				return done(i), ctx.Err()
			}
			n := pickBusy(ctx, c, rng)
			if n < 0 {
				n = rng.IntN(len(c.Procs))
			}
			if err := awaitNewCall(ctx, c); err != nil {
				return done(i), err
			}
			p := c.Procs[n]
			if !p.Signal(syscall.SIGSTOP) {
				return done(i), fmt.Errorf("%s is not running", p.Name)
			}
			frozen = append(frozen, n)
			at := time.Now()
			// The other two take its partitions once the coordinator
			// expels it.
			err := c.WaitGroupStable(ctx, len(c.Procs)-1)
			moved = append(moved, fmt.Sprintf("%.1fs", time.Since(at).Seconds()))
			if err == nil {
				sleep(ctx, time.Until(at.Add(hold)))
			}
			p.Signal(syscall.SIGCONT)
			if err != nil {
				return done(i + 1), fmt.Errorf("while %s was frozen: %w", p.Name, err)
			}
			if err := c.WaitGroupStable(ctx, len(c.Procs)); err != nil {
				return done(i + 1), fmt.Errorf("after %s thawed: %w", p.Name, err)
			}
		}
		return done(freezes), nil
	})
	for _, n := range slices.Compact(slices.Sorted(slices.Values(frozen))) {
		if !strings.Contains(c.Procs[n].LogTail(5000), "partitions lost") {
			t.Errorf("%s was frozen past its session timeout but never reported its partitions lost", c.Procs[n].Name)
		}
	}
	var lookups float64
	for i := range c.Procs {
		if v, err := c.ProcMetric(ctx, i, "orderflow_reconcile_lookups_total"); err == nil {
			lookups += v
		}
	}
	t.Logf("reconcile look-ups by the new owners: %.0f", lookups)
	c.Check(out, false)
	row := Row{Faults: fmt.Sprintf("%s; %.0f look-ups of interrupted calls", desc, lookups)}
	row.Fill(rep.Orders, out)
	return row
}
