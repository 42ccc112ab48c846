package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/integrations/stripe"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
)

const devUsage = `dev [flags]

Runs the whole pipeline in one process, for trying orderflow out and for
development: an embedded Kafka broker (its data under <data-dir>/kafka), the
webhook gateway, one processor (order states under <data-dir>/state) and the
provider simulator (its outbox under <data-dir>/sim/outbox). Stop it with
Ctrl-C; the next start carries on with the same topics, offsets and order
state.

Then send an order from another terminal: orderflow send-test-event`

// devConfig configures dev mode.
type devConfig struct {
	HTTPAddr    string
	KafkaAddr   string
	SimAddr     string
	MetricsAddr string // empty: no metrics listener
	ConsoleAddr string // empty: no console
	DataDir     string
	// StateDir holds the processor's local state stores (empty:
	// <DataDir>/state).
	StateDir string
	// WebhookSecrets are accepted besides the one kept in the data folder
	// (the Stripe CLI's, for example).
	WebhookSecrets []string
	SimLatency     string
	// SimEnforceLimits makes the simulator enforce the providers' limits.
	SimEnforceLimits bool
	// StripeAPIKey, a test-mode key, reads order details from the real
	// Stripe API instead of the simulator.
	StripeAPIKey string
	// StripeBaseURL reads order details from this Stripe API (a fake of
	// the user's, or stripe-mock) instead of the simulator.
	StripeBaseURL string
	RedisAddr     string
	Partitions    int
	// Command is how the banner spells this program ("orderflow", or
	// "go run ./cmd/orderflow" under make run).
	Command string
	// UnderMake says dev mode was started by make run: the banner then
	// shows how to pass flags through it (ARGS="…").
	UnderMake bool
	// Processor adjusts the processor's configuration (tests shorten
	// delays); nil keeps the defaults.
	Processor func(*processor.Config)
}

// Default addresses of dev mode.
const (
	devDefaultHTTPAddr    = "127.0.0.1:8080"
	devDefaultKafkaAddr   = "127.0.0.1:9092"
	devDefaultSimAddr     = "127.0.0.1:8090"
	devDefaultMetricsAddr = "127.0.0.1:9090"
	devDefaultConsoleAddr = "127.0.0.1:8070"
	devDefaultDataDir     = "var"
)

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev", devUsage, stderr)
	var c devConfig
	var secrets, logLevel string
	fs.StringVar(&c.HTTPAddr, "http-addr", devDefaultHTTPAddr, "listen address of the webhook endpoint (/webhooks/stripe)")
	fs.StringVar(&c.KafkaAddr, "kafka-addr", devDefaultKafkaAddr, "listen address of the embedded Kafka broker (give it to other commands as --brokers)")
	fs.StringVar(&c.SimAddr, "sim-addr", devDefaultSimAddr, "listen address of the provider simulator")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", devDefaultMetricsAddr, "listen address of Prometheus /metrics (empty: none)")
	fs.StringVar(&c.ConsoleAddr, "console-addr", devDefaultConsoleAddr, "listen address of the operator console, without login: loopback only (empty: none)")
	fs.StringVar(&c.DataDir, "data-dir", devDefaultDataDir, "folder for Kafka's data, the simulator's outbox, labels and the webhook secret")
	fs.StringVar(&c.StateDir, "state-dir", "", "folder of the processor's local order-state stores (default <data-dir>/state)")
	fs.StringVar(&secrets, "webhook-secret", "", "extra accepted webhook signing secrets, comma-separated (the Stripe CLI's whsec_…); the one kept in <data-dir>/webhook-secret is always accepted")
	fs.StringVar(&c.SimLatency, "sim-latency", "", "simulated provider latency, optionally per step: 50ms or 50ms,shipping=300ms")
	fs.BoolVar(&c.SimEnforceLimits, "sim-enforce-limits", false, "the simulator enforces the providers' documented limits (429s as the providers send them), and the clients keep to them")
	fs.StringVar(&c.StripeAPIKey, "stripe-api-key", "", "a Stripe test-mode key (sk_test_… or rk_test_…): read order details from the real Stripe API instead of the simulator (better set as ORDERFLOW_STRIPE_API_KEY)")
	fs.StringVar(&c.StripeBaseURL, "stripe-base-url", "", "read order details from this Stripe API instead of the simulator: your own fake, or stripe-mock (http://127.0.0.1:12111); the key is --stripe-api-key or a test key")
	fs.Var(checkedString{&c.RedisAddr, checkRedisAddr}, "redis-addr", "Redis `host:port` for the gateway's dedup and the provider limits (empty: in memory)")
	fs.IntVar(&c.Partitions, "partitions", 3, "partitions of the topics when they are first created")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("dev: unexpected argument %q", fs.Arg(0))
	}
	c.WebhookSecrets = splitList(secrets)
	c.Command = selfCommand()
	c.UnderMake = os.Getenv("MAKELEVEL") != ""
	logger, err := gatewayLogger(stderr, "text", logLevel)
	if err != nil {
		return err
	}
	if w := devStripeKeyWarning(c, os.Getenv); w != "" {
		logger.Warn(w)
	}
	d, err := startDev(ctx, c, stdout, logger)
	if err != nil {
		return err
	}
	<-ctx.Done()
	// A second Ctrl-C ends the process at once, without a clean stop.
	signal.Reset(os.Interrupt, syscall.SIGTERM)
	fmt.Fprintln(stdout, "\nstopping: finishing in-flight steps, saving Kafka's data (Ctrl-C again to quit at once)")
	return d.Stop()
}

// selfCommand is how a user runs this program again: "go run
// ./cmd/orderflow" when started by go run (make run), else the name it was
// started by.
func selfCommand() string {
	exe := os.Args[0]
	if strings.Contains(filepath.ToSlash(exe), "/go-build") {
		return "go run ./cmd/orderflow"
	}
	if filepath.Base(exe) == exe {
		return exe // found on PATH
	}
	if rel, err := filepath.Rel(".", exe); err == nil && !strings.HasPrefix(rel, "..") && !filepath.IsAbs(exe) {
		return "./" + filepath.ToSlash(rel)
	}
	return exe
}

// devProviders are the provider settings of dev mode: every provider on
// the simulator at simAddr, except order details from the real Stripe API
// when a test-mode key is given. Nothing is read from the environment.
func devProviders(c devConfig, simAddr string) *providerFlags {
	pf := &providerFlags{}
	if c.SimEnforceLimits {
		// The simulator's limits are the real ones: the clients keep
		// their defaults for the real providers (the flags' defaults).
		pf.register(flag.NewFlagSet("dev", flag.ContinueOnError))
		pf.simLimits = true
	}
	pf.simURL, pf.steps, pf.labelDir = "http://"+simAddr, defaultSteps, filepath.Join(c.DataDir, "labels")
	pf.getenv = func(string) string { return "" }
	pf.fleet.redisAddr = c.RedisAddr // limits shared through Redis when there is one
	st := providerOf[*stripeProvider](pf)
	if c.StripeAPIKey != "" {
		st.url = stripe.DefaultBaseURL
		st.key = c.StripeAPIKey
	}
	if c.StripeBaseURL != "" {
		st.url = strings.TrimRight(c.StripeBaseURL, "/")
		if st.key == "" {
			st.key = simStripeKey // a test-mode key, as stripe-mock wants
		}
	}
	return pf
}

// devStripeKeyWarning is the warning for a processor's Stripe key variable
// set in dev mode's environment, which dev mode does not read (its key is
// --stripe-api-key): without it a user who exported the processor's
// variable would get the simulator's invented order details without a word.
// The key itself is never named.
func devStripeKeyWarning(c devConfig, getenv func(string) string) string {
	if c.StripeAPIKey != "" || getenv(envStripeKey) == "" {
		return ""
	}
	from := "the simulator"
	if c.StripeBaseURL != "" {
		from = "--stripe-base-url with the built-in test key"
	}
	return envStripeKey + " is set but dev mode does not read it (it is the processor's): order details come from " + from + "; for Stripe's own, give the key as --stripe-api-key or ORDERFLOW_STRIPE_API_KEY"
}

// devServer is a running dev mode.
type devServer struct {
	cfg        devConfig
	log        *slog.Logger
	names      topics.Names
	kafka      *kfake.Cluster
	kafkaAddr  string
	sim        *sim.Server
	simAddr    string
	httpAddr   string
	metricAddr string
	secret     string
	outbox     string

	producer *gateway.KafkaProducer
	gw       *gateway.Gateway
	lns      []net.Listener
	servers  []*http.Server // gateway first, then metrics; the simulator's separately
	simSrv   *http.Server
	redis    *redis.Client
	cleanup  func()
	// stopTracing flushes the spans still queued (a no-op when off).
	stopTracing func()

	lock       *dataDirLock // held until Stop
	console    *consoleServer
	cancelProc context.CancelFunc
	procDone   chan error
	serving    sync.WaitGroup // the serve goroutines
	stopOnce   sync.Once
	stopErr    error
}

// startDev starts every part and prints the banner to out. Stop it with
// Stop; cancelling ctx does not stop it by itself.
func startDev(ctx context.Context, c devConfig, out io.Writer, logger *slog.Logger) (_ *devServer, err error) {
	if c.Partitions < 1 {
		return nil, usagef("--partitions must be at least 1")
	}
	if c.StripeAPIKey != "" && !strings.HasPrefix(c.StripeAPIKey, "sk_test_") && !strings.HasPrefix(c.StripeAPIKey, "rk_test_") {
		return nil, usagef("--stripe-api-key: dev mode takes a test-mode key (sk_test_… or rk_test_…), never a live one")
	}
	if c.StripeBaseURL != "" && !integrations.IsHTTPURL(c.StripeBaseURL) {
		return nil, usagef("--stripe-base-url %q: want an http(s) URL such as http://127.0.0.1:12111", c.StripeBaseURL)
	}
	latency, stepLatency, err := sim.ParseLatency(c.SimLatency)
	if err != nil {
		return nil, usagef("--sim-latency: %v", err)
	}
	kafkaHost, kafkaPort, err := splitHostPort(c.KafkaAddr)
	if err != nil {
		return nil, usagef("--kafka-addr: %v", err)
	}
	if err := checkSecrets("--webhook-secret", c.WebhookSecrets); err != nil {
		return nil, err
	}
	if c.ConsoleAddr != "" && !isLoopbackAddr(c.ConsoleAddr) {
		return nil, usagef("--console-addr needs a loopback address (127.0.0.1:port), not %q: dev mode's console has no login", c.ConsoleAddr)
	}
	if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	lock, err := lockDataDir(c.DataDir)
	if err != nil {
		return nil, err
	}
	secretPath := filepath.Join(c.DataDir, webhookSecretFile)
	secret, err := loadOrCreateWebhookSecret(secretPath)
	if err == nil {
		err = checkSecrets(secretPath, []string{secret})
	}
	if err != nil {
		lock.release()
		return nil, err
	}

	d := &devServer{cfg: c, log: logger, names: topics.New(""), secret: secret, procDone: make(chan error, 1), lock: lock}
	// On a failed start, stop what did start.
	defer func() {
		if err != nil {
			for _, ln := range d.lns {
				ln.Close()
			}
			d.Stop()
		}
	}()

	// Listeners first, so a busy port fails before anything is written.
	listen := func(flagName, addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", flagName, err)
		}
		d.lns = append(d.lns, ln)
		return ln, nil
	}
	httpLn, err := listen("http-addr", c.HTTPAddr)
	if err != nil {
		return nil, err
	}
	d.httpAddr = httpLn.Addr().String()
	simLn, err := listen("sim-addr", c.SimAddr)
	if err != nil {
		return nil, err
	}
	d.simAddr = simLn.Addr().String()
	var metricsLn net.Listener
	if c.MetricsAddr != "" {
		if metricsLn, err = listen("metrics-addr", c.MetricsAddr); err != nil {
			return nil, err
		}
		d.metricAddr = metricsLn.Addr().String()
	}
	var consoleLn net.Listener
	if c.ConsoleAddr != "" {
		if consoleLn, err = listen("console-addr", c.ConsoleAddr); err != nil {
			return nil, err
		}
	}
	// send-test-event seeds this simulator with the orders it sends.
	if err := os.WriteFile(filepath.Join(c.DataDir, simURLFile), []byte("http://"+d.simAddr+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}

	// Kafka. kfake writes each batch to its files as it is produced (no
	// fsync per batch: like Kafka, a process crash loses nothing, only a
	// machine crash could) and saves the rest of its state on Close.
	d.kafka, err = kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(kafkaPort),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(kafkaHost, strconv.Itoa(kafkaPort)))
		}),
		kfake.DataDir(filepath.Join(c.DataDir, "kafka")),
		kfake.ClusterID("orderflow-dev"),
	)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka on --kafka-addr %s: %w", c.KafkaAddr, err)
	}
	d.kafkaAddr = d.kafka.ListenAddrs()[0]
	kopts := []kgo.Opt{kgo.SeedBrokers(d.kafkaAddr)}
	if err := d.createTopics(ctx, kopts); err != nil {
		return nil, err
	}

	// Simulator.
	simDir := filepath.Join(c.DataDir, "sim")
	d.sim, err = sim.New(sim.Config{DataDir: simDir, Latency: latency, StepLatency: stepLatency, Logger: logger.With("component", "sim"), EnforceLimits: c.SimEnforceLimits})
	if err != nil {
		return nil, err
	}
	d.outbox = filepath.Join(simDir, "outbox")
	d.simSrv = &http.Server{Handler: d.sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	d.serve(d.simSrv, simLn)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoGauge())

	// Tracing, when the OTEL_* variables turn it on.
	tr, stopTracing, err := startTracing(ctx, "orderflow-dev", logger)
	if err != nil {
		return nil, err
	}
	d.stopTracing = stopTracing
	traceProviderCalls(tr)

	// Processor, with every provider pointed at the simulator.
	pf := devProviders(c, d.simAddr)
	prov, cleanup, err := pf.build(ctx, devQuiet(logger.With("component", "providers")))
	if err != nil {
		return nil, err
	}
	reg.MustRegister(pf.collectors()...)
	d.cleanup = cleanup
	pcfg := processor.DefaultConfig(d.names)
	pcfg.Group = "orderflow-dev"
	pcfg.Tracing = tr
	pcfg.StateDir = c.StateDir
	if pcfg.StateDir == "" {
		pcfg.StateDir = filepath.Join(c.DataDir, "state")
	}
	if c.Processor != nil {
		c.Processor(&pcfg)
	}
	proc, err := processor.New(pcfg, prov, kopts, logger.With("component", "processor"), reg)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancelProc = cancel
	go func() { d.procDone <- proc.Run(pctx) }()

	// Gateway.
	gcfg := gateway.Config{Topic: d.names.Orders, Secrets: append([]string{secret}, c.WebhookSecrets...), Tracing: tr}
	if err := gcfg.Validate(); err != nil {
		return nil, usagef("%v", err)
	}
	d.producer, err = gateway.NewKafkaProducer(gcfg, kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	var dedup gateway.Deduper = gateway.NewMemoryDeduper(0)
	if c.RedisAddr != "" {
		d.redis = redis.NewClient(&redis.Options{Addr: c.RedisAddr, DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
		dedup = gateway.NewRedisDeduper(d.redis, gateway.RedisKeyPrefix(d.names.Orders))
	}
	gw, err := gateway.New(gcfg, d.producer, dedup, devQuiet(logger.With("component", "gateway")), reg)
	if err != nil {
		return nil, err
	}
	d.gw = gw
	gwSrv := &http.Server{Handler: gw.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second, WriteTimeout: 30 * time.Second}
	d.servers = append(d.servers, gwSrv)
	d.serve(gwSrv, httpLn)
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		d.servers = append(d.servers, msrv)
		d.serve(msrv, metricsLn)
	}

	if c.ConsoleAddr != "" {
		cc := consoleConfig{Addr: c.ConsoleAddr, Listener: consoleLn, IndexDir: filepath.Join(c.DataDir, "console"), CacheMiB: 16, Group: pcfg.Group,
			LabelDir: filepath.Join(c.DataDir, "labels"), NoLogin: true, Names: d.names, Kafka: kopts}
		if d.metricAddr != "" {
			cc.ProcessorMetrics = []string{"http://" + d.metricAddr}
		}
		if err := cc.validate(); err != nil {
			return nil, usagef("--console-addr: %v", err)
		}
		if d.console, err = startConsole(ctx, cc, logger.With("component", "console")); err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
		go func(cs *consoleServer) {
			select {
			case err := <-cs.Failed():
				logger.Error("console: its pages no longer follow the topics; stop dev and start it again (a corrupt index is rebuilt then)", "err", err)
			case <-ctx.Done():
			}
		}(d.console)
	}

	logger.Info("dev mode started", "http_addr", d.httpAddr, "kafka_addr", d.kafkaAddr, "sim_addr", d.simAddr, "data_dir", c.DataDir)
	d.printBanner(out)
	return d, nil
}

// serve serves s on ln until it is shut down; Stop waits for it to end.
func (d *devServer) serve(s *http.Server, ln net.Listener) {
	d.serving.Add(1)
	go func() {
		defer d.serving.Done()
		// A failed start closes the listeners it opened: net.ErrClosed is
		// that stop, not a failure.
		if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			d.log.Error("http server failed", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

// createTopics creates the topics that do not exist yet (a restart finds
// them in the data folder) and checks them.
func (d *devServer) createTopics(ctx context.Context, kopts []kgo.Opt) error {
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	specs := d.names.Specs(int32(d.cfg.Partitions))
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	created, err := topics.Create(tctx, adm, specs, 1)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	if len(created) > 0 {
		d.log.Info("created topics", "topics", created)
	}
	diffs, err := topics.Check(tctx, adm, specs)
	if err != nil {
		return fmt.Errorf("check topics: %w", err)
	}
	for _, df := range diffs {
		d.log.Warn("topic differs from the expected shape", "topic", df.Topic, "reason", df.Reason)
	}
	return nil
}

// Stop stops every part, in order: the gateway (no new events), the
// processor (in-flight steps finish, state and offsets are written), the
// simulator, then Kafka, which saves its data. It is safe to call twice.
func (d *devServer) Stop() error {
	d.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var errs []error
		for _, s := range d.servers {
			if err := s.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			}
		}
		if d.producer != nil {
			if err := d.producer.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("flush producer: %w", err))
			}
		}
		if d.gw != nil {
			if err := d.gw.Flush(ctx); err != nil {
				errs = append(errs, fmt.Errorf("flush dedup marks: %w", err))
			}
		}
		if d.redis != nil {
			d.redis.Close()
		}
		if d.cancelProc != nil {
			d.cancelProc()
			select {
			case err := <-d.procDone:
				if err != nil {
					errs = append(errs, fmt.Errorf("processor: %w", err))
				}
			case <-ctx.Done():
				errs = append(errs, errors.New("processor did not stop in 30s"))
			}
		}
		if d.console != nil {
			if err := d.console.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("console: %w", err))
			}
		}
		if d.cleanup != nil {
			d.cleanup()
		}
		if d.simSrv != nil {
			if err := d.simSrv.Shutdown(ctx); err != nil {
				_ = d.simSrv.Close()
			}
		}
		if d.sim != nil {
			if err := d.sim.Close(); err != nil {
				errs = append(errs, fmt.Errorf("simulator outbox: %w", err))
			}
		}
		d.serving.Wait()
		if d.kafka != nil {
			d.kafka.Close()
		}
		if d.stopTracing != nil {
			d.stopTracing()
		}
		d.lock.release()
		d.log.Info("dev mode stopped")
		d.stopErr = errors.Join(errs...)
	})
	return d.stopErr
}

// printBanner tells a newcomer where everything is and what to do next.
func (d *devServer) printBanner(w io.Writer) {
	c := d.cfg
	cmd := c.Command
	if cmd == "" {
		cmd = "orderflow"
	}
	sendCmd := cmd + " send-test-event"
	if d.httpAddr != devDefaultHTTPAddr {
		sendCmd += " --url http://" + d.httpAddr + gateway.WebhookPath
	}
	if filepath.Clean(c.DataDir) != devDefaultDataDir {
		sendCmd += " --data-dir " + c.DataDir
	}
	if d.kafkaAddr != devDefaultKafkaAddr {
		// So that its hint to look at the order names this broker.
		sendCmd += " --brokers " + d.kafkaAddr
	}
	details := "the simulator"
	switch {
	case c.StripeBaseURL != "":
		details = c.StripeBaseURL
	case c.StripeAPIKey != "":
		details = "the Stripe API (test mode)"
	}
	fmt.Fprintf(w, "orderflow dev mode: Kafka, gateway, processor and provider simulator in one process.\n\n")
	fmt.Fprintf(w, "  webhooks   http://%s%s\n", d.httpAddr, gateway.WebhookPath)
	fmt.Fprintf(w, "  secret     %s (kept in %s)\n", d.secret, filepath.Join(c.DataDir, webhookSecretFile))
	if n := len(c.WebhookSecrets); n > 0 {
		masked := make([]string, n)
		for i, s := range c.WebhookSecrets {
			masked[i] = maskSecret(s)
		}
		fmt.Fprintf(w, "             also accepting %s from --webhook-secret: %s\n", plural(n, "secret"), strings.Join(masked, ", "))
	}
	fmt.Fprintf(w, "  kafka      %s (data in %s)\n", d.kafkaAddr, filepath.Join(c.DataDir, "kafka"))
	fmt.Fprintf(w, "  providers  simulator at http://%s (stats: /_sim/stats); order details from %s\n", d.simAddr, details)
	fmt.Fprintf(w, "  outbox     %s (labels, invoices, emails, alerts)\n", d.outbox)
	if d.metricAddr != "" {
		fmt.Fprintf(w, "  metrics    http://%s/metrics\n", d.metricAddr)
	}
	if d.console != nil {
		fmt.Fprintf(w, "  console    %s (no login: loopback dev mode)\n", d.console.URL())
	}
	fmt.Fprintf(w, "\nIn another terminal, send an order:\n  %s\n", sendCmd)
	if c.StripeAPIKey != "" {
		fmt.Fprintf(w, "  (its made-up orders are not in your Stripe account, so with --stripe-api-key\n   they fail at the details step; use the Stripe CLI below and\n   stripe trigger checkout.session.completed)\n")
	}
	fmt.Fprintf(w, "Then look at it:\n  ls %s/*\n  %s orders show <order id> --brokers %s\n  %s dlq list --brokers %s\n",
		d.outbox, cmd, d.kafkaAddr, cmd, d.kafkaAddr)
	if d.console != nil {
		fmt.Fprintf(w, "  %s orders list --console %s   (or open the console)\n", cmd, d.console.URL())
	}
	fmt.Fprintf(w, "Real test-mode webhooks from Stripe (Stripe CLI):\n  stripe listen --forward-to http://%s%s\n", d.httpAddr, gateway.WebhookPath)
	// Without a key the simulator makes up the details of a forwarded
	// event's order: the recipe names --stripe-api-key for the real ones.
	noKey := c.StripeAPIKey == ""
	if len(c.WebhookSecrets) > 0 {
		fmt.Fprintf(w, "  its events, signed with the --webhook-secret given (%s), are accepted: no restart needed\n", maskSecret(c.WebhookSecrets[len(c.WebhookSecrets)-1]))
		if noKey {
			fmt.Fprintf(w, "  (their order details are invented by the simulator unless you also give --stripe-api-key sk_test_…)\n")
		}
	} else {
		args := "--webhook-secret whsec_…"
		if noKey {
			args += " --stripe-api-key sk_test_…"
		}
		restart := cmd + " dev " + args
		if c.UnderMake {
			restart = `make run ARGS="` + args + `"`
		}
		if noKey {
			fmt.Fprintf(w, "  then restart with the whsec_… it prints and your test-mode key, for the events' real\n  customers and amounts (without it the simulator invents them): %s\n", restart)
		} else {
			fmt.Fprintf(w, "  then restart with the whsec_… it prints: %s\n", restart)
		}
	}
	fmt.Fprintf(w, "Ctrl-C stops; the next start carries on with the same data.\n\n")
}

// maskSecret shows a signing secret by its prefix and last four
// characters only (whsec_…cdef), enough to tell which one it is.
func maskSecret(s string) string {
	rest, ok := strings.CutPrefix(s, "whsec_")
	if !ok || len(rest) < 12 {
		return "whsec_…"
	}
	return "whsec_…" + rest[len(rest)-4:]
}

// plural is "1 secret", "2 secrets".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// loadOrCreateWebhookSecret returns the secret kept in path, creating it
// (mode 0600) on first use.
func loadOrCreateWebhookSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	s := "whsec_" + hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	if _, err := fmt.Fprintln(f, s); err != nil {
		f.Close()
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	return s, nil
}

// splitHostPort splits a listen address; the port may be 0 (any free one).
func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port, nil
}
