// Command bench measures orderflow side by side with the design it replaces
// and writes bench/results/<date>.md and .json. `make bench` runs it inside
// test/infra (real Kafka 4.x and Redis); it needs ORDERFLOW_TEST_KAFKA and
// ORDERFLOW_TEST_REDIS.
//
// These machines are shared and noisy, so every figure that is compared is
// measured in the same run, interleaved (A B C A B C ...), and the median of
// the rounds is reported.
//
//  1. Ingest: the orderflow gateway (Kafka acks=all, Redis dedup) against a
//     bare net/http handler that only reads the body (the machine's ceiling)
//     and the peer's gateway.js (Node.js + Redis + BullMQ), same load
//     generator, payloads and connections (64 and 256).
//  2. Drain: a backlog in `orders` processed against the simulator at 0 ms
//     and 50 ms per provider call, with the Little's-law bound; and the
//     peer's worker.js at the same concurrency at 0 ms.
//     2b. Fleet: --fleet-processors (3) processors drain --fleet-orders
//     (5,000) against the simulator enforcing the providers' limits
//     (--enforce-limits), with the limits shared through Redis and with each
//     processor keeping the whole limit (per processor), interleaved: the
//     simulator's 429s, duplicate creations and orders/s against the bound
//     the tightest limit allows (fleet.go: fleetBound); with --baseline-bin
//     that build's fleet runs first with the limits shared.
//  3. Flash sale: orders posted in a burst through the gateway until every
//     confirmation email is sent.
//  4. Resources: peak RSS of gateway and processor; state restore time.
//     4b. Console: index catch-up against a plain consumer, search and page
//     latencies and peak RSS with 1,000,000 orders indexed.
//  5. Go micro-benchmarks.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/orderflow/orderflow/test/harness"
	"github.com/orderflow/orderflow/test/infra"
)

type options struct {
	out           string
	rounds        int
	ingestOrders  int
	ingestRound   time.Duration
	drainOrders   int
	drainRounds   int
	flashOrders   int
	restoreStates int
	concurrency   int
	peerDir       string
	skipPeer      bool
	only          string
	profile       string
	gatewayFlags  string
	baselineBin   string
	consoleOrders int
	consoleRounds int

	fleetOrders     int
	fleetProcessors int
	fleetLatency    time.Duration
	fleetTimeout    time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bare-handler" {
		bareHandler(os.Args[2])
		return
	}
	var o options
	flag.StringVar(&o.out, "out", "bench/results", "folder for the results")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds per ingest comparison")
	flag.IntVar(&o.ingestOrders, "ingest-orders", 6000, "events of the first sizing run per target (later rounds are sized from the measured rate to last --ingest-round)")
	flag.DurationVar(&o.ingestRound, "ingest-round", 10*time.Second, "the least time one ingest round lasts; each connection count starts with an uncounted warm-up round per target")
	flag.IntVar(&o.drainOrders, "drain-orders", 20000, "backlog of the drain runs")
	flag.IntVar(&o.drainRounds, "drain-rounds", 1, "interleaved rounds of the drain runs (every build and the peer in each; medians reported beside every round)")
	flag.IntVar(&o.flashOrders, "flash-orders", 20000, "orders of the flash sale")
	flag.IntVar(&o.restoreStates, "restore-states", 1000000, "order states in the large restored partition (compared with one of 100000)")
	flag.IntVar(&o.concurrency, "concurrency", 200, "in-flight orders of a processor (and the peer worker's CONCURRENCY)")
	flag.StringVar(&o.peerDir, "peer-dir", "../shared/peers/bullmq-seed", "the peer's folder (gateway.js, worker.js, package.json); a relative one is of the module root")
	flag.BoolVar(&o.skipPeer, "skip-peer", false, "do not run the Node.js peer")
	flag.StringVar(&o.only, "only", "", "run only these parts, comma-separated: ingest,drain,fleet,flash,restore,console,micro")
	flag.StringVar(&o.gatewayFlags, "gateway-flags", "", "extra flags for every orderflow gateway, space-separated (e.g. \"--produce-timeout 2s\")")
	flag.StringVar(&o.baselineBin, "baseline-bin", "", "an orderflow binary of another build (e.g. the previous commit's) to run beside this one, interleaved, in the ingest, drain, fleet (limits shared), restore and console parts")
	flag.IntVar(&o.consoleOrders, "console-orders", 1000000, "orders in the console's index")
	flag.IntVar(&o.consoleRounds, "console-rounds", 1, "console runs from an empty index over the same topic (each build's, interleaved with --baseline-bin's)")
	flag.IntVar(&o.fleetOrders, "fleet-orders", 5000, "backlog of the fleet runs")
	flag.IntVar(&o.fleetProcessors, "fleet-processors", 3, "processors of the fleet runs")
	flag.DurationVar(&o.fleetLatency, "fleet-latency", 50*time.Millisecond, "simulator latency per provider call in the fleet runs")
	flag.DurationVar(&o.fleetTimeout, "fleet-timeout", 4*time.Minute, "a fleet run not final by then is stopped and reported as such")
	flag.StringVar(&o.profile, "profile", "", "write CPU profiles (10 s; the console's catch-up 5 s from its first answer) of the gateway (ingest), the processor (drain, cold restore; with its heap after a cold restore) and the console (catch-up and searches, with its heap), and a Flight Recorder recording of the broker (first counted ingest round at 64 connections, first 0 ms drain; needs jcmd and jfr) into this folder; the folder is created")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := newBench(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer b.close()
	if err := b.run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		b.res.Errors = append(b.res.Errors, err.Error())
	}
	if err := b.write(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if len(b.res.Errors) > 0 {
		os.Exit(1)
	}
}

// bareHandler is the ceiling: read the body, answer 200.
func bareHandler(addr string) {
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "queued")
	})}
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type bench struct {
	o       options
	root    string
	tmp     string
	bin     string
	brokers []string
	redis   string
	peer    string // prepared peer folder, "" when unavailable
	procs   []*harness.Proc
	res     *Results
	// brokerDrainRecorded: the broker was recorded in a drain (--profile).
	brokerDrainRecorded bool
}

func newBench(ctx context.Context, o options) (*bench, error) {
	kafka, redis := os.Getenv("ORDERFLOW_TEST_KAFKA"), os.Getenv("ORDERFLOW_TEST_REDIS")
	if kafka == "" || redis == "" {
		return nil, errors.New("ORDERFLOW_TEST_KAFKA and ORDERFLOW_TEST_REDIS are unset: run 'make bench'")
	}
	root, err := harness.ModuleRoot()
	if err != nil {
		return nil, err
	}
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp("", "orderflow-bench-")
	if err != nil {
		return nil, err
	}
	bin, err := harness.Binary(ctx, root, tmp)
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, root: root, tmp: tmp, bin: bin, brokers: strings.Split(kafka, ","), redis: redis,
		res: &Results{
			Date: time.Now().UTC().Format(time.RFC3339), Cores: runtime.NumCPU(), GoVersion: runtime.Version(),
			KafkaVersion: envOr("ORDERFLOW_TEST_KAFKA_VERSION", infra.KafkaVersion), Concurrency: o.concurrency,
		}}
	b.res.CPU = cpuModel()
	b.res.RedisVersion = redisVersion(redis)
	if !o.skipPeer {
		src := o.peerDir
		if !filepath.IsAbs(src) {
			src = filepath.Join(root, src)
		}
		if dir, ver, err := preparePeer(ctx, src, tmp); err != nil {
			b.res.Notes = append(b.res.Notes, "peer not run: "+err.Error())
			fmt.Fprintf(os.Stderr, "bench: peer not run: %v\n", err)
		} else {
			b.peer, b.res.NodeVersion = dir, ver
		}
	}
	return b, nil
}

func (b *bench) close() {
	for _, p := range b.procs {
		p.Stop(10 * time.Second)
	}
	_ = os.RemoveAll(b.tmp)
}

func (b *bench) want(part string) bool {
	if b.o.only == "" {
		return true
	}
	return slices.Contains(strings.Split(b.o.only, ","), part)
}

func (b *bench) run(ctx context.Context) error {
	var errs []error
	for _, part := range []struct {
		name string
		fn   func(context.Context) error
	}{
		{"ingest", b.ingest},
		{"drain", b.drain},
		{"fleet", b.fleet},
		{"flash", b.flash},
		{"restore", b.restore},
		{"console", b.console},
		{"micro", b.micro},
	} {
		if !b.want(part.name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s\n", part.name)
		if err := part.fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", part.name, err))
			fmt.Fprintf(os.Stderr, "bench: %s failed: %v\n", part.name, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// start launches a process and registers it for cleanup.
func (b *bench) start(name string, env []string, argv ...string) (*harness.Proc, error) {
	p := harness.NewProc(name, filepath.Join(b.tmp, name+".log"), env, argv...)
	if err := p.Start(); err != nil {
		return nil, err
	}
	b.procs = append(b.procs, p)
	return p, nil
}

func (b *bench) stop(p *harness.Proc) {
	p.Stop(30 * time.Second)
	b.procs = slices.DeleteFunc(b.procs, func(q *harness.Proc) bool { return q == p })
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return ""
}

func redisVersion(addr string) string {
	out, err := exec.Command("redis-cli", "-h", strings.Split(addr, ":")[0], "-p", strings.Split(addr, ":")[1], "INFO", "server").Output()
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			return v
		}
	}
	return ""
}

// preparePeer copies the peer into a writable folder and installs its
// packages from the npm registry.
func preparePeer(ctx context.Context, src, tmp string) (string, string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", "", errors.New("node is not installed")
	}
	if _, err := os.Stat(filepath.Join(src, "gateway.js")); err != nil {
		return "", "", fmt.Errorf("no peer at %s", src)
	}
	dst := filepath.Join(tmp, "peer")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", "", err
	}
	for _, f := range []string{"gateway.js", "worker.js", "package.json", "package-lock.json"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			if f == "package-lock.json" {
				continue
			}
			return "", "", err
		}
		if err := os.WriteFile(filepath.Join(dst, f), data, 0o644); err != nil {
			return "", "", err
		}
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dst
	if out, err := cmd.CombinedOutput(); err != nil {
		cmd = exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dst
		if out2, err2 := cmd.CombinedOutput(); err2 != nil {
			return "", "", fmt.Errorf("npm ci: %v %s; npm install: %v %s", err, tailOf(out), err2, tailOf(out2))
		}
	}
	v, _ := exec.Command("node", "--version").Output()
	return dst, strings.TrimSpace(string(v)), nil
}

func tailOf(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 400 {
		s = s[len(s)-400:]
	}
	return s
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
