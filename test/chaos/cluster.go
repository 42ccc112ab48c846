// Package chaos is orderflow's reliability suite: it runs the real
// processes (one gateway, three processors, the provider simulator) against
// real Kafka and Redis, injects faults while the load generator posts a
// continuous stream of orders, waits for quiescence and checks that every
// payment the gateway accepted became exactly one completed order or one
// dead letter with a reason.
//
// The short version of every scenario runs with `go test ./test/chaos`;
// `make chaos` runs the long version (-chaos.full) and writes the results
// table.
package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/harness"
	"github.com/orderflow/orderflow/test/loadgen"
	"github.com/orderflow/orderflow/test/testenv"
	"github.com/orderflow/orderflow/topics"
)

// simVisibility is how long after a booking the simulator's PostNord
// look-up by reference shows it.
const simVisibility = time.Second

// webhookSecret signs the load generator's events; it is a test value.
const webhookSecret = "whsec_orderflow_chaos_test"

// Options are one cluster's settings.
type Options struct {
	// Brokers is the Kafka bootstrap address (shared or private broker).
	Brokers string
	// Redis is the gateway's Redis address (empty: in-process dedup).
	Redis string
	// Processors is how many processors run (default 3).
	Processors int
	// Partitions of the topics (default 6).
	Partitions int32
	// SimLatency is the simulator's per-call latency (default 5ms).
	SimLatency time.Duration
	// Retry settings passed to the processors (defaults suit a test: short
	// backoff, enough attempts that 30 % transient errors never exhaust).
	RetryBase, RetryMax time.Duration
	RetryAttempts       int
	// BreakerCooldown is the circuit's cool-down (default 1s).
	BreakerCooldown time.Duration
	// LogDir keeps the processes' logs there (empty: a temporary folder
	// removed after the test).
	LogDir string
}

func (o *Options) defaults() {
	if o.Processors <= 0 {
		o.Processors = 3
	}
	if o.Partitions <= 0 {
		o.Partitions = 6
	}
	if o.SimLatency == 0 {
		o.SimLatency = 5 * time.Millisecond
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 100 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		// Long enough to honour a provider's Retry-After (Airtable's
		// client asks to come back when its request queue has room).
		o.RetryMax = 30 * time.Second
	}
	if o.RetryAttempts <= 0 {
		o.RetryAttempts = 12
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = time.Second
	}
}

// Cluster is one scenario's running system: its own topics, simulator,
// gateway and processors, and a follower of `orders.state`.
type Cluster struct {
	t       *testing.T
	bin     string
	dir     string
	opts    Options
	Names   topics.Names
	Group   string
	Sim     harness.Sim
	SimProc *harness.Proc
	Gateway *harness.Proc
	// WebhookURL is the gateway's Stripe endpoint.
	WebhookURL string
	Procs      []*harness.Proc
	addrMu     sync.Mutex // procAddrs: a processor may move to another port
	procAddrs  []string
	States     *harness.States
	procArgs   []string // processor flags common to every processor

	factory *loadgen.Factory
}

var (
	helpOnce sync.Once
	helpText string
	helpErr  error
)

// commandHelp returns the help text of `orderflow processor` (flags the
// binary has), or an error when the binary has no processor command.
func commandHelp(bin string) (string, error) {
	helpOnce.Do(func() {
		cmd := exec.Command(bin, "processor", "--help")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		_ = cmd.Run()
		helpText = out.String()
		if strings.Contains(helpText, "unknown command") {
			helpErr = fmt.Errorf("this orderflow binary has no processor command: %s", strings.TrimSpace(helpText))
		}
	})
	return helpText, helpErr
}

var flagName = regexp.MustCompile(`(?m)^\s+--?([a-z][a-z0-9-]*)`)

// flagSet lists the flags a help text documents.
func flagSet(help string) map[string]bool {
	m := map[string]bool{}
	for _, sm := range flagName.FindAllStringSubmatch(help, -1) {
		m[sm[1]] = true
	}
	return m
}

// Start builds the binary and starts a cluster for the test; everything is
// stopped at cleanup. A missing processor command skips the test (fails
// under CI).
func Start(t *testing.T, opts Options) *Cluster {
	t.Helper()
	opts.defaults()
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := harness.Binary(ctx, root, "")
	if err != nil {
		t.Fatal(err)
	}
	help, err := commandHelp(bin)
	if err != nil {
		if testenv.InCI() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	if opts.LogDir != "" {
		dir = filepath.Join(opts.LogDir, nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("process logs in %s", dir)
	}
	c := &Cluster{t: t, bin: bin, dir: dir, opts: opts, factory: loadgen.NewFactory(false)}
	t.Cleanup(c.stopAll) // whatever started, even if a later start fails
	c.Names = createTopics(t, opts.Brokers, opts.Partitions)
	c.Group = c.Names.Prefix + "processor"

	// Simulator.
	simAddr := freeAddr(t)
	c.SimProc = c.proc("sim", "sim", "--addr", simAddr, "--latency", opts.SimLatency.String())
	c.Sim = harness.Sim{URL: "http://" + simAddr}
	if err := harness.WaitHTTP(ctx, c.Sim.URL+"/_sim/stats"); err != nil {
		t.Fatalf("sim: %v\n%s", err, c.SimProc.LogTail(20))
	}
	if err := c.Sim.SetPostNordVisibility(ctx, simVisibility); err != nil {
		t.Fatalf("sim: %v", err)
	}

	// Gateway.
	httpAddr, gmAddr := freeAddr(t), freeAddr(t)
	gargs := []string{"gateway", "--http-addr", httpAddr, "--metrics-addr", gmAddr, "--brokers", opts.Brokers,
		"--topic-prefix", c.Names.Prefix, "--webhook-secret", webhookSecret,
		"--shutdown-timeout", "5s", "--log-level", "info"}
	if opts.Redis != "" {
		gargs = append(gargs, "--redis-addr", opts.Redis)
	}
	c.Gateway = c.proc("gateway", gargs...)
	c.WebhookURL = "http://" + httpAddr + "/webhooks/stripe"
	if err := harness.WaitHTTP(ctx, "http://"+httpAddr+"/healthz"); err != nil {
		t.Fatalf("gateway: %v\n%s", err, c.Gateway.LogTail(20))
	}

	// Processors.
	c.procArgs = c.processorFlags(t, help)
	for i := 0; i < opts.Processors; i++ {
		maddr := freeAddr(t)
		args := append([]string{"processor", "--metrics-addr", maddr}, c.procArgs...)
		if flagSet(help)["state-dir"] {
			// Its own local state store, kept across its kills and restarts.
			args = append(args, "--state-dir", filepath.Join(c.dir, fmt.Sprintf("state-%d", i+1)))
		}
		c.procAddrs = append(c.procAddrs, maddr)
		c.Procs = append(c.Procs, c.proc(fmt.Sprintf("processor-%d", i+1), args...))
	}
	for i := range c.Procs {
		if err := c.WaitProcessor(ctx, i); err != nil {
			t.Fatal(err)
		}
	}

	if err := c.WaitGroupStable(ctx, opts.Processors); err != nil {
		t.Fatal(err)
	}
	c.t.Logf("cluster started in %.1fs (topics prefix %s)", time.Since(began).Seconds(), c.Names.Prefix)
	c.States, err = harness.FollowStates(strings.Split(opts.Brokers, ","), c.Names.State)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// processorFlags returns the flags every processor gets: the ones this
// binary's processor command documents, with test-sized retry, circuit and
// group timings. Settings the command lacks are logged, not fatal.
func (c *Cluster) processorFlags(t *testing.T, help string) []string {
	have := flagSet(help)
	args := []string{"--brokers", c.opts.Brokers, "--topic-prefix", c.Names.Prefix, "--group", c.Group,
		"--sim-url", c.Sim.URL, "--label-dir", filepath.Join(c.dir, "labels"), "--max-inflight", "512"}
	wanted := []struct {
		names []string
		value string
	}{
		{[]string{"retry-base-delay", "retry-base", "retry-delay", "backoff-base"}, c.opts.RetryBase.String()},
		{[]string{"retry-max-delay", "retry-max", "backoff-max"}, c.opts.RetryMax.String()},
		{[]string{"retry-attempts", "max-attempts", "retry-max-attempts", "attempts"}, strconv.Itoa(c.opts.RetryAttempts)},
		{[]string{"breaker-threshold", "breaker-failure-threshold", "breaker-failures"}, "5"},
		{[]string{"breaker-orders", "breaker-min-orders"}, "3"},
		{[]string{"breaker-window"}, "10s"},
		{[]string{"breaker-cooldown", "breaker-cool-down"}, c.opts.BreakerCooldown.String()},
		{[]string{"step-timeout"}, "10s"},
		{[]string{"revoke-deadline"}, "5s"},
		{[]string{"commit-interval"}, "200ms"},
		{[]string{"session-timeout", "group-session-timeout"}, "6s"},
		{[]string{"rebalance-timeout", "group-rebalance-timeout"}, "15s"},
		{[]string{"shutdown-timeout"}, "15s"},
		{[]string{"log-level"}, "info"},
		// Reconciling an interrupted call: the simulator shows a PostNord
		// booking 1 s after it is made (simVisibility), well inside the
		// look-up delay; look-ups may fail (503 faults) for two minutes
		// before an order is held.
		{[]string{"max-clock-drift"}, "250ms"},
		{[]string{"lookup-delay"}, "2s"},
		{[]string{"hold-after"}, "2m"},
	}
	var missing []string
	for _, w := range wanted {
		found := false
		for _, n := range w.names {
			if have[n] {
				args = append(args, "--"+n, w.value)
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, w.names[0])
		}
	}
	if len(missing) > 0 {
		t.Logf("orderflow processor has no flag for %s: using its defaults", strings.Join(missing, ", "))
	}
	return args
}

func (c *Cluster) proc(name string, args ...string) *harness.Proc {
	c.t.Helper()
	p := harness.NewProc(name, filepath.Join(c.dir, name+".log"), nil, append([]string{c.bin}, args...)...)
	if err := p.Start(); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// procAddr is processor i's metrics address.
func (c *Cluster) procAddr(i int) string {
	c.addrMu.Lock()
	defer c.addrMu.Unlock()
	return c.procAddrs[i]
}

// WaitProcessor waits until processor i serves its metrics. The port it
// was given may have been taken between the test's pick and the
// process's bind (another scenario's process, an outgoing connection): a
// processor that exits on that starts again on another port. Its own log
// line says it listens, so another process's answer on that port is not
// taken for its.
func (c *Cluster) WaitProcessor(ctx context.Context, i int) error {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	p := c.Procs[i]
	for moves := 0; ; {
		log := p.LogSinceStart()
		switch {
		case strings.Contains(log, "metrics listening"):
			if err := harness.WaitHTTP(wctx, "http://"+c.procAddr(i)+"/metrics"); err != nil {
				return fmt.Errorf("%s: %w\n%s", p.Name, err, p.LogTail(30))
			}
			return nil
		case !p.Running() && strings.Contains(log, "address already in use") && moves < 5:
			moves++
			addr := freeAddr(c.t)
			c.t.Logf("%s: metrics port %s taken; again on %s", p.Name, c.procAddr(i), addr)
			if !p.SetFlag("metrics-addr", addr) {
				return fmt.Errorf("%s: no --metrics-addr to move\n%s", p.Name, p.LogTail(30))
			}
			c.addrMu.Lock()
			c.procAddrs[i] = addr
			c.addrMu.Unlock()
			if err := p.Start(); err != nil {
				return err
			}
			continue
		case !p.Running():
			return fmt.Errorf("%s exited\n%s", p.Name, p.LogTail(30))
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("%s: no metrics listener: %w\n%s", p.Name, wctx.Err(), p.LogTail(30))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ProcMetric returns the sum of a metric's samples (every label set) on
// processor i's /metrics.
func (c *Cluster) ProcMetric(ctx context.Context, i int, name string) (float64, error) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+c.procAddr(i)+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return metricSum(string(body), name), nil
}

// metricSum adds the samples of a metric in a Prometheus text exposition.
func metricSum(text, name string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if rest[0] == '{' {
			rest = rest[strings.LastIndex(rest, "}")+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// WaitGroupStable waits until the processor group is stable with n
// members that share every partition of `orders`.
func (c *Cluster) WaitGroupStable(ctx context.Context, n int) error {
	adm, closeAdm := c.admin()
	defer closeAdm()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last string
	for {
		gs, err := adm.DescribeGroups(wctx, c.Group)
		if err == nil {
			g := gs[c.Group]
			assigned := 0
			for _, m := range g.Members {
				if ca, ok := m.Assigned.AsConsumer(); ok {
					for _, tp := range ca.Topics {
						assigned += len(tp.Partitions)
					}
				}
			}
			last = fmt.Sprintf("state %s, %d members, %d partitions assigned", g.State, len(g.Members), assigned)
			if g.State == "Stable" && len(g.Members) == n && assigned == int(c.opts.Partitions) {
				return nil
			}
		} else {
			last = err.Error()
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("group %s not stable with %d members: %s", c.Group, n, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// RestartGateway starts the gateway again and waits for /healthz.
func (c *Cluster) RestartGateway(ctx context.Context) error {
	if err := c.Gateway.Start(); err != nil {
		return err
	}
	u := strings.TrimSuffix(c.WebhookURL, "/webhooks/stripe") + "/healthz"
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := harness.WaitHTTP(wctx, u); err != nil {
		return fmt.Errorf("gateway: %w\n%s", err, c.Gateway.LogTail(30))
	}
	return nil
}

func (c *Cluster) stopAll() {
	if c.t.Failed() {
		c.DumpLogs(40)
	}
	for _, p := range c.Procs {
		p.Stop(20 * time.Second)
	}
	if c.Gateway != nil {
		c.Gateway.Stop(10 * time.Second)
	}
	if c.SimProc != nil {
		c.SimProc.Stop(5 * time.Second)
	}
	if c.States != nil {
		c.States.Close()
	}
}

// DumpLogs logs the tail of every process's log.
func (c *Cluster) DumpLogs(n int) {
	for _, p := range append([]*harness.Proc{c.SimProc, c.Gateway}, c.Procs...) {
		if p != nil {
			c.t.Logf("---- %s (last %d lines) ----\n%s", p.Name, n, p.LogTail(n))
		}
	}
}

// Load returns a load-generator configuration for n orders at rate/s
// against the gateway, with this cluster's event factory. An event that
// gets no 2xx is delivered again, as Stripe does (a 503 under a loaded
// broker is part of the contract, not a loss).
func (c *Cluster) Load(n int, rate float64) loadgen.Config {
	return loadgen.Config{URL: c.WebhookURL, Secrets: []string{webhookSecret}, Orders: n, Rate: rate,
		Connections: 16, Timeout: 10 * time.Second, Factory: c.factory, Redeliver: 20, RedeliverDelay: time.Second}
}

// RunLoad runs the load generator in the background; the returned
// function waits for its report.
func (c *Cluster) RunLoad(ctx context.Context, cfg loadgen.Config) func() (*loadgen.Report, error) {
	type result struct {
		rep *loadgen.Report
		err error
	}
	ch := make(chan result, 1)
	go func() {
		rep, err := loadgen.Run(ctx, cfg)
		ch <- result{rep, err}
	}()
	return func() (*loadgen.Report, error) {
		r := <-ch
		if r.rep != nil {
			c.t.Logf("loadgen: %s", r.rep)
		}
		return r.rep, r.err
	}
}

// Watch reports, through stop, a process of the cluster that stays down
// for longer than grace (faults restart theirs within it): something
// outside the scenario stopped it, and waiting on would only hang. It
// returns when ctx ends.
func (c *Cluster) Watch(ctx context.Context, grace time.Duration, stop func(error)) {
	downSince := map[*harness.Proc]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
		for _, p := range append([]*harness.Proc{c.SimProc, c.Gateway}, c.Procs...) {
			if p.Running() {
				delete(downSince, p)
				continue
			}
			since, ok := downSince[p]
			if !ok {
				downSince[p] = time.Now()
				continue
			}
			if time.Since(since) > grace {
				stop(fmt.Errorf("%s has not been running for %s (exit code %d); the scenario did not stop it\n%s",
					p.Name, grace, p.ExitCode(), p.LogTail(15)))
				return
			}
		}
	}
}

// AcceptedOrders maps the event ids answered 2xx to their orders.
func (c *Cluster) AcceptedOrders(rep *loadgen.Report) []string {
	byEvent := map[string]string{}
	for n := range rep.Orders {
		for _, e := range c.factory.Order(n, nil) {
			byEvent[e.ID] = e.OrderID
		}
	}
	set := map[string]bool{}
	for id := range rep.Accepted {
		o, ok := byEvent[id]
		if !ok {
			c.t.Errorf("accepted event %s belongs to no order sent", id)
			continue
		}
		set[o] = true
	}
	out := make([]string, 0, len(set))
	for o := range set {
		out = append(out, o)
	}
	sort.Strings(out)
	return out
}

// Outcome is what quiescence found.
type Outcome struct {
	Accepted      []string
	Completed     int
	DeadLettered  int
	Lost          []string // accepted but neither completed nor dead-lettered
	InProgress    int      // orders (any, accepted or not) left in_progress
	Stats         map[string]harness.StepStats
	Drain         time.Duration // from the end of the load to quiescence
	OffsetsBehind map[int32]int64
	// Flagged counts accepted orders carrying a flag for a human, such as
	// "possible_duplicate:shipping" after a crash between intent and result.
	Flagged map[string]int
	// FlaggedIDs are those orders.
	FlaggedIDs []string
}

// DupCreates sums the duplicate creations the simulator counted at every
// provider: a second contact, deal, row, shipment, invoice or email for one
// order.
func (o *Outcome) DupCreates() int64 {
	var n int64
	for _, s := range o.Stats {
		n += s.DuplicateCreates
	}
	return n
}

// ShippingDups is the duplicate shipments (part of DupCreates).
func (o *Outcome) ShippingDups() int64 { return o.Stats[integrations.StepShipping].DuplicateCreates }

// AnswersLost sums the calls whose provider acted but whose answer never
// reached the processor (a kill or freeze mid-call, under a late-answer
// fault): each is a call the processor must reconcile, not repeat.
func (o *Outcome) AnswersLost() int64 {
	var n int64
	for _, s := range o.Stats {
		n += s.AnswersLost
	}
	return n
}

// Settle waits (up to timeout) until every accepted order is in a final
// state, no order is in progress and the group's committed offsets reach
// the end of `orders`; loadDone is when the load ended. It returns what it
// found whether or not everything settled.
func (c *Cluster) Settle(ctx context.Context, accepted []string, loadDone time.Time, timeout time.Duration) *Outcome {
	c.t.Helper()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := &Outcome{Accepted: accepted}
	missing, err := c.States.WaitAll(wctx, accepted, func(s *processor.State) bool {
		return s.Status == processor.StatusCompleted || s.Status == processor.StatusDeadLettered || s.Status == processor.StatusParked
	})
	if err != nil {
		c.t.Logf("settle: %v (e.g. %v)", err, head(missing, 5))
	}
	finalAt := time.Since(loadDone)
	// In-progress orders (including ones produced but never answered) and
	// committed offsets.
	adm, closeAdm := c.admin()
	defer closeAdm()
	for {
		out.OffsetsBehind = c.offsetsBehind(wctx, adm)
		if len(out.OffsetsBehind) == 0 {
			// Every record is committed, so its states are written: the
			// view reads up to them before anything is counted, or an
			// order replayed a moment ago would be counted before its
			// states arrive and classified while they do.
			if err := c.States.WaitCaughtUp(wctx); err != nil {
				c.t.Logf("settle: %v", err)
			}
		}
		out.InProgress = c.States.Counts()[processor.StatusInProgress]
		if out.InProgress == 0 && len(out.OffsetsBehind) == 0 || wctx.Err() != nil {
			break
		}
		select {
		case <-wctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	out.Drain = time.Since(loadDone)
	c.t.Logf("settle: accepted orders final %.1fs after the load, quiescent (nothing in progress, offsets committed) after %.1fs",
		finalAt.Seconds(), out.Drain.Seconds())
	out.Flagged = map[string]int{}
	for _, id := range accepted {
		st := c.States.Get(id)
		if st != nil {
			for _, f := range st.Flags {
				out.Flagged[f]++
			}
			if len(st.Flags) > 0 {
				out.FlaggedIDs = append(out.FlaggedIDs, id)
			}
		}
		switch {
		case st == nil:
			out.Lost = append(out.Lost, id)
		case st.Status == processor.StatusCompleted:
			out.Completed++
		case st.Status == processor.StatusDeadLettered || st.Status == processor.StatusParked:
			out.DeadLettered++
		default:
			out.Lost = append(out.Lost, id)
		}
	}
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	stats, err := c.Sim.Stats(sctx)
	if err != nil {
		c.t.Errorf("sim stats: %v", err)
	}
	out.Stats = stats
	return out
}

func (c *Cluster) admin() (*kadm.Client, func()) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(c.opts.Brokers, ",")...))
	if err != nil {
		c.t.Fatal(err)
	}
	return kadm.NewClient(cl), cl.Close
}

// offsetsBehind returns, by partition of `orders`, how far the group's
// committed offset is below the end offset (empty: caught up). A failed
// look-up counts as behind (partition -1).
func (c *Cluster) offsetsBehind(ctx context.Context, adm *kadm.Client) map[int32]int64 {
	behind := map[int32]int64{}
	ends, err := adm.ListEndOffsets(ctx, c.Names.Orders)
	if err != nil {
		behind[-1] = -1
		return behind
	}
	committed, err := adm.FetchOffsets(ctx, c.Group)
	if err != nil {
		behind[-1] = -1
		return behind
	}
	ends.Each(func(lo kadm.ListedOffset) {
		if lo.Err != nil {
			behind[lo.Partition] = -1
			return
		}
		at := int64(0)
		if r, ok := committed.Lookup(c.Names.Orders, lo.Partition); ok && r.Err == nil {
			at = r.At
		}
		if at < lo.Offset {
			behind[lo.Partition] = lo.Offset - at
		}
	})
	return behind
}

// Check applies the invariants every scenario shares: every accepted order
// completed (or, only when wantDead, dead-lettered with a reason: the
// scenario replays it and checks again), not one duplicate creation at any
// provider (shipping included), no order flagged as a possible duplicate,
// nothing in progress, offsets committed to the end.
func (c *Cluster) Check(o *Outcome, wantDead bool) {
	c.t.Helper()
	if len(o.Lost) > 0 {
		for _, id := range head(o.Lost, 5) {
			if st := c.States.Get(id); st != nil {
				c.t.Logf("lost order %s: status %s, last error %q, steps %s", id, st.Status, st.LastError, stepSummary(st))
			} else {
				c.t.Logf("lost order %s: no state at all", id)
			}
		}
		c.t.Errorf("%d of %d accepted orders are neither completed nor dead-lettered (e.g. %v)", len(o.Lost), len(o.Accepted), head(o.Lost, 5))
	}
	if !wantDead && o.DeadLettered > 0 {
		c.t.Errorf("%d orders dead-lettered; this scenario must dead-letter none", o.DeadLettered)
		c.logDead(5)
	}
	for s, st := range o.Stats {
		if st.DuplicateCreates != 0 {
			c.t.Errorf("sim: %d duplicate creations at %s", st.DuplicateCreates, s)
		}
	}
	for _, id := range head(o.FlaggedIDs, 3) {
		st := c.States.Get(id)
		c.t.Errorf("order %s flagged %v: %s", id, st.Flags, stepSummary(st))
	}
	if o.InProgress != 0 {
		c.t.Errorf("%d orders left in_progress", o.InProgress)
	}
	if len(o.OffsetsBehind) != 0 {
		c.t.Errorf("committed offsets of group %s below the end of %s: partition → records behind %v", c.Group, c.Names.Orders, o.OffsetsBehind)
	}
}

func (c *Cluster) logDead(n int) {
	for _, id := range c.DeadOrders() {
		if n == 0 {
			return
		}
		n--
		st := c.States.Get(id)
		c.t.Logf("dead-lettered %s: step %s class %s error %q", id, st.DeadLetter.Step, st.DeadLetter.Class, st.LastError)
	}
}

// DeadOrders lists the orders whose state is dead-lettered or parked.
func (c *Cluster) DeadOrders() []string {
	var out []string
	for _, id := range c.States.IDs() {
		if st := c.States.Get(id); st != nil && (st.Status == processor.StatusDeadLettered || st.Status == processor.StatusParked) {
			out = append(out, id)
		}
	}
	return out
}

func stepSummary(st *processor.State) string {
	var parts []string
	for _, s := range processor.Chain {
		ss := st.Step(s)
		switch {
		case ss == nil:
			parts = append(parts, s+":-")
		case ss.Done:
			parts = append(parts, s+":done")
		case ss.Skipped:
			parts = append(parts, s+":skipped")
		default:
			parts = append(parts, fmt.Sprintf("%s:attempts=%d intent=%v err=%q", s, ss.Attempts, ss.Intent != nil, ss.LastError))
		}
	}
	return strings.Join(parts, " ")
}

// DeadLetterEntry is the part of a `dlq list --json` entry the suite checks.
type DeadLetterEntry struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	OrderID   string `json:"order_id"`
	Step      string `json:"step"`
	Class     string `json:"class"`
	Error     string `json:"error"`
}

// DLQList runs `orderflow dlq list --json` and returns its dead letters.
func (c *Cluster) DLQList(ctx context.Context) ([]DeadLetterEntry, error) {
	out, err := c.run(ctx, "dlq", "list", "--brokers", c.opts.Brokers, "--topic-prefix", c.Names.Prefix, "--json")
	if err != nil {
		return nil, err
	}
	var ds []DeadLetterEntry
	if err := json.Unmarshal(out, &ds); err != nil {
		return nil, fmt.Errorf("dlq list --json: %v\n%s", err, out)
	}
	return ds, nil
}

// DLQReplayAll runs `orderflow dlq replay --all --yes`.
func (c *Cluster) DLQReplayAll(ctx context.Context) (string, error) {
	out, err := c.run(ctx, "dlq", "replay", "--brokers", c.opts.Brokers, "--topic-prefix", c.Names.Prefix, "--all", "--yes", "--rate", "1000")
	return string(out), err
}

func (c *Cluster) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("orderflow %s: %v\n%s%s", strings.Join(args[:2], " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// createTopics creates this cluster's topics with a retry: a private broker
// just restarted may still be electing leaders.
func createTopics(t *testing.T, brokers string, partitions int32) topics.Names {
	t.Helper()
	names := topics.New(prefix(t))
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		_, err := topics.Create(ctx, kadm.NewClient(cl), names.Specs(partitions), 1)
		if err == nil {
			return names
		}
		if ctx.Err() != nil {
			t.Fatalf("create topics: %v", err)
		}
		time.Sleep(time.Second)
	}
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

func prefix(t *testing.T) string {
	name := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("chaos-%s-%d.", name, time.Now().UnixNano()%1e9)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func head(xs []string, n int) []string {
	if len(xs) > n {
		return xs[:n]
	}
	return slices.Clone(xs)
}
