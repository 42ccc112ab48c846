package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics/tracing"
)

const processorUsage = `processor [flags]

Consumes the orders topic in a consumer group and runs each order's step
chain, by default: order details (Stripe), then crm, production_log and
shipping side by side, then invoice (it reads the shipment), then email (it
reads both). --steps chooses the steps, their order, each step's provider
and outbound webhook steps (webhook:<name>); a step runs once the steps it
reads are done, so crm, production_log and webhooks never delay the labels,
invoices and emails, except a webhook marked with --webhook-gate, which every
later step waits for. An invalid chain is refused at start (exit 2).
Records of one order run in order, different orders concurrently; every
step's result is stored on the orders.state topic before a step reading it
starts, then in a local store per partition (--state-dir), and offsets are
committed only below the lowest unfinished record.
Run as many instances as there are partitions; SIGTERM finishes in-flight
steps (up to --revoke-deadline), commits and leaves the group.

` + tracing.EnvHelp + `
Each order's spans (the record, every step attempt with its provider calls,
every state write) join the trace its first event brought.`

// The bounds of --session-timeout and --rebalance-timeout: the Kafka
// client refuses a group timeout below 100ms, and one that does not fit
// the protocol's 32-bit milliseconds (24.8 days). Brokers narrow the
// session timeout further (group.min.session.timeout.ms,
// group.max.session.timeout.ms: 6s and 30m by default) and refuse a member
// outside it when it joins.
const (
	minGroupTimeout = 100 * time.Millisecond
	maxGroupTimeout = 24 * 24 * time.Hour
)

// processorFlags are the flags of `orderflow processor`.
type processorFlags struct {
	kafka     kafkaFlags
	providers providerFlags

	group           string
	metricsAddr     string
	pprof           bool
	logFormat       string
	logLevel        string
	maxInflight     int
	maxInflightPart int

	retryBase     time.Duration
	retryMaxDelay time.Duration
	retryAttempts int

	breakerFailures int
	breakerOrders   int
	breakerWindow   time.Duration
	breakerCooldown time.Duration

	shippingIntent string
	emailIntent    string

	stepTimeout    time.Duration
	revokeDeadline time.Duration
	sessionTimeout time.Duration
	rebalanceTO    time.Duration
	commitInterval time.Duration
	clockDrift     time.Duration
	lookupDelay    time.Duration
	holdAfter      time.Duration

	stateDir       string
	stateCache     string
	stateKeep      time.Duration
	stateRetention time.Duration

	quotaProbe   time.Duration
	quotaRelease int
}

func (f *processorFlags) register(fs *flag.FlagSet) {
	d := processor.DefaultConfig(f.kafka.names())
	f.kafka.register(fs)
	f.kafka.registerTimeout(fs)
	fs.Lookup("timeout").Usage = "give up at start when Kafka has not answered within this long (a `duration` above 0)"
	f.providers.register(fs)
	// An empty --steps (an unset template or ConfigMap value) is the
	// default chain, as an empty --event-types is the gateway's default.
	fs.Lookup("steps").Usage += "; empty (or only commas and spaces): the default chain, as when not set"
	fs.StringVar(&f.group, "group", d.Group, "consumer group id")
	fs.StringVar(&f.metricsAddr, "metrics-addr", ":9091", "listen address of Prometheus /metrics (empty: no metrics listener)")
	fs.BoolVar(&f.pprof, "pprof", false, "also serve Go's profiler at /debug/pprof/ on the metrics listener")
	fs.StringVar(&f.logFormat, "log-format", "json", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.IntVar(&f.maxInflight, "max-inflight", d.MaxInflight, "records fetched and not finished, over all partitions; at the bound no more are taken until some finish")
	fs.IntVar(&f.maxInflightPart, "max-inflight-per-partition", d.MaxInflightPerPartition, "records fetched and not finished per partition")
	fs.DurationVar(&f.retryBase, "retry-base-delay", d.Retry.BaseDelay, "first backoff bound of a transient failure (doubles per attempt, full jitter)")
	fs.DurationVar(&f.retryMaxDelay, "retry-max-delay", d.Retry.MaxDelay, "largest backoff, Retry-After included")
	fs.IntVar(&f.retryAttempts, "retry-attempts", d.Retry.MaxAttempts, "attempts per step before the order is dead-lettered (class exhausted)")
	fs.IntVar(&f.breakerFailures, "breaker-failures", d.Breaker.FailureThreshold, "consecutive transient failures of a provider that open its circuit")
	fs.IntVar(&f.breakerOrders, "breaker-orders", d.Breaker.MinOrders, "distinct orders those failures must come from")
	fs.DurationVar(&f.breakerWindow, "breaker-window", d.Breaker.Window, "time window of those failures")
	fs.DurationVar(&f.breakerCooldown, "breaker-cooldown", d.Breaker.Cooldown, "wait before an open circuit lets one probe through")
	fs.StringVar(&f.shippingIntent, "shipping-intent-policy", string(processor.IntentReconcile), "after a crash during a shipment booking: reconcile (look the booking up by the order's reference; book again only if PostNord shows none after --lookup-delay), retry (book again and flag a possible duplicate) or dead-letter")
	fs.StringVar(&f.emailIntent, "email-intent-policy", string(processor.IntentReconcile), "after a crash while sending the email: reconcile (look it up by Message-Id; a mailer without a look-up retries), retry (send again and flag a possible duplicate) or dead-letter")
	fs.DurationVar(&f.clockDrift, "max-clock-drift", d.MaxClockDrift, "bound on the clock difference between processors: the next owner of an interrupted call waits for its lease to end plus this before looking it up")
	fs.DurationVar(&f.lookupDelay, "lookup-delay", d.LookupDelay, "how long a provider's look-up may not yet show a booking, invoice or email: an interrupted call is made again only if a look-up this long after its lease still finds nothing")
	fs.DurationVar(&f.holdAfter, "hold-after", d.HoldAfter, "how long look-ups of an interrupted call may fail before the order is held (dead-lettered with an alert, not called again); time with the step's circuit open does not count")
	fs.DurationVar(&f.stepTimeout, "step-timeout", d.StepTimeout, "bound of one provider call, a webhook step's delivery included")
	fs.DurationVar(&f.revokeDeadline, "revoke-deadline", d.RevokeDeadline, "how long in-flight steps may finish after a revocation or SIGTERM")
	fs.DurationVar(&f.sessionTimeout, "session-timeout", d.SessionTimeout, "how long the group waits for a silent processor before moving its partitions (how long a crash stalls its orders); at least 100ms and at most 24 days, and within what the brokers allow (by default 6s to 30m: group.min.session.timeout.ms, group.max.session.timeout.ms)")
	fs.DurationVar(&f.rebalanceTO, "rebalance-timeout", d.RebalanceTimeout, "how long a processor may take to give up revoked partitions (keep above --revoke-deadline; at least 100ms and at most 24 days)")
	fs.DurationVar(&f.commitInterval, "commit-interval", d.CommitInterval, "how often finished offsets are committed")
	fs.StringVar(&f.stateDir, "state-dir", "", "folder of the local order-state stores, one per assigned partition, kept across restarts so a restart reads only the changelog's tail (empty: a temporary folder, removed at exit: every start restores from orders.state); one processor per folder")
	fs.StringVar(&f.stateCache, "state-cache-size", strconv.Itoa(d.StateCacheEntries), "order states kept in memory per partition beside the orders in flight: a number of entries (10000) or a size (64MiB); the rest are read from the local store")
	fs.DurationVar(&f.stateKeep, "state-keep-unowned", d.StateKeepUnowned, "how long the local store of a partition no longer assigned is kept for its return before it is removed")
	fs.DurationVar(&f.quotaProbe, "quota-probe-interval", d.QuotaProbeInterval, "while a step is held because its provider's quota is used up (Zoho CRM's daily API credits): how often one held order's call checks whether it is back before the reset time the provider gave (0: only at the reset time)")
	fs.IntVar(&f.quotaRelease, "quota-release-rate", d.QuotaReleaseRate, "held orders resumed per second once that check succeeded")
	fs.DurationVar(&f.stateRetention, "state-retention", 0, "remove the state of a finished (completed or refunded) order not updated for this long; a later event of it then starts a new order (0: off)")
}

// parse parses args (and the environment) into the flags.
func (f *processorFlags) parse(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("processor: unexpected argument %q", fs.Arg(0))
	}
	if len(splitList(f.providers.steps)) == 0 {
		f.providers.steps = defaultSteps
	}
	return nil
}

// config builds the processor configuration from the flags.
func (f *processorFlags) config() (processor.Config, error) {
	cfg := processor.DefaultConfig(f.kafka.names())
	cfg.Group = f.group
	cfg.MaxInflight = f.maxInflight
	cfg.MaxInflightPerPartition = f.maxInflightPart
	cfg.Retry = processor.RetryPolicy{BaseDelay: f.retryBase, MaxDelay: f.retryMaxDelay, MaxAttempts: f.retryAttempts}
	cfg.Breaker = processor.BreakerConfig{FailureThreshold: f.breakerFailures, MinOrders: f.breakerOrders, Window: f.breakerWindow, Cooldown: f.breakerCooldown}
	ship, err := processor.ParseIntentPolicy(f.shippingIntent)
	if err != nil {
		return cfg, usagef("--shipping-intent-policy: %v", err)
	}
	email, err := processor.ParseIntentPolicy(f.emailIntent)
	if err != nil {
		return cfg, usagef("--email-intent-policy: %v", err)
	}
	cfg.IntentPolicy = map[string]processor.IntentPolicy{processor.StepShipping: ship, processor.StepEmail: email}
	cfg.MaxClockDrift, cfg.LookupDelay, cfg.HoldAfter = f.clockDrift, f.lookupDelay, f.holdAfter
	cfg.StepTimeout = f.stepTimeout
	cfg.RevokeDeadline = f.revokeDeadline
	for _, t := range []struct {
		flag string
		d    time.Duration
	}{{"session-timeout", f.sessionTimeout}, {"rebalance-timeout", f.rebalanceTO}} {
		if t.d < minGroupTimeout || t.d > maxGroupTimeout {
			return cfg, usagef("--%s %s: want from %s to %d days", t.flag, t.d, minGroupTimeout, maxGroupTimeout/(24*time.Hour))
		}
	}
	cfg.SessionTimeout = f.sessionTimeout
	cfg.RebalanceTimeout = f.rebalanceTO
	cfg.CommitInterval = f.commitInterval
	cfg.StateDir = f.stateDir
	entries, bytes, err := processor.ParseCacheSize(f.stateCache)
	if err != nil {
		return cfg, usagef("--state-cache-size: %v", err)
	}
	cfg.StateCacheEntries, cfg.StateCacheBytes = entries, bytes
	cfg.StateKeepUnowned = f.stateKeep
	cfg.StateRetention = f.stateRetention
	cfg.QuotaProbeInterval, cfg.QuotaReleaseRate = f.quotaProbe, f.quotaRelease
	if err := cfg.Validate(); err != nil {
		return cfg, usagef("%v", err)
	}
	return cfg, nil
}

func runProcessor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("processor", processorUsage, stderr)
	var f processorFlags
	f.register(fs)
	if err := f.parse(fs, args); err != nil {
		return err
	}
	logger, err := gatewayLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	kopts, err := f.kafka.opts()
	if err != nil {
		return err
	}
	tr, stopTracing, err := startTracing(ctx, "orderflow-processor", logger)
	if err != nil {
		return err
	}
	defer stopTracing()
	cfg.Tracing = tr
	// Said once the topics were found present and co-partitioned: a
	// script waiting for the line then knows the processor runs.
	cfg.OnStarted = func() { fmt.Fprintf(stdout, "processor consuming %s as group %s\n", cfg.Topics.Orders, cfg.Group) }
	traceProviderCalls(tr)
	f.providers.stepTimeout = cfg.StepTimeout                           // a webhook call is bounded as every provider call
	f.providers.fleet.group, f.providers.fleet.kafka = cfg.Group, kopts // live processors, for the limits' fallback share
	prov, cleanup, err := f.providers.build(ctx, logger.With("component", "providers"))
	if err != nil {
		return err
	}
	defer cleanup()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoGauge())
	reg.MustRegister(f.providers.collectors()...)
	proc, err := processor.New(cfg, prov, kopts, logger, reg)
	var ce *processor.ChainError
	if errors.As(err, &ce) {
		return usagef("--steps: %s", ce.Reason)
	}
	var se *processor.StateDirError
	if errors.As(err, &se) {
		return usagef("--state-dir: %v", se.Err)
	}
	if err != nil {
		return err
	}
	// Kafka answers before the processor says it consumes: a broker that
	// never does is named, with what to check, after --timeout.
	wctx, stop := f.kafka.wait(ctx, &stderr, "the processor's start")
	err = proc.Ready(wctx)
	stop()
	if err != nil {
		// Run releases the processor's client and stores at once.
		done, cancel := context.WithCancel(ctx)
		cancel()
		_ = proc.Run(done)
		if ctx.Err() != nil {
			return nil // stopped before it started: not a failure
		}
		return f.kafka.explain(fmt.Errorf("processor: %w", err))
	}

	var msrv *http.Server
	if f.metricsAddr != "" {
		ln, err := net.Listen("tcp", f.metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		if f.pprof {
			servePprof(mux)
		}
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := proc.Ready(ctx); err != nil {
				http.Error(w, "kafka unreachable", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		msrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
		go func() {
			if err := msrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics listener failed", "err", err)
			}
		}()
		logger.Info("metrics listening", "metrics_addr", ln.Addr().String())
	}
	runErr := f.kafka.withTopicsHint(proc.Run(ctx))
	if msrv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = msrv.Shutdown(sctx)
	}
	return runErr
}
