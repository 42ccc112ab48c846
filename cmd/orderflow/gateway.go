package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/topics/tracing"
)

const gatewayUsage = `gateway [flags]

Receives Stripe webhooks on POST /webhooks/stripe, verifies them and queues
the handled event types on the orders topic. Serves /healthz and /readyz on
--http-addr, Prometheus /metrics on --metrics-addr. The webhook secret is
best given as ORDERFLOW_WEBHOOK_SECRET rather than on the command line.

` + tracing.EnvHelp + `
The webhook's server span continues the request's traceparent header; the
record on orders carries the trace (its traceparent header).`

// gatewayFlags are the flags of `orderflow gateway`.
type gatewayFlags struct {
	kafka            kafkaFlags
	httpAddr         string
	metricsAddr      string
	pprof            bool
	secrets          string
	secretsFile      string
	redisAddr        string
	redisUser        string
	redisPassFile    string
	redisTLS         bool
	redisTLSCA       string
	dedupTTL         time.Duration
	maxBody          int64
	produceTimeout   time.Duration
	produceLinger    time.Duration
	maxInflightBytes int64
	eventTypes       string
	shutdownTimeout  time.Duration
	logFormat        string
	logLevel         string
}

func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gateway", gatewayUsage, stderr)
	var f gatewayFlags
	f.kafka.register(fs)
	fs.StringVar(&f.httpAddr, "http-addr", ":8080", "listen address of the webhook endpoint, /healthz and /readyz")
	fs.StringVar(&f.metricsAddr, "metrics-addr", ":9090", "listen address of /metrics (empty: no metrics listener)")
	fs.BoolVar(&f.pprof, "pprof", false, "also serve Go's profiler at /debug/pprof/ on the metrics listener")
	fs.StringVar(&f.secrets, "webhook-secret", "", "Stripe endpoint signing secrets (whsec_…), comma-separated; any of them is accepted, for rotation")
	fs.Var(checkedString{&f.redisAddr, checkRedisAddr}, "redis-addr", "Redis `host:port` for the dedup fast path (empty: an in-process dedup cache)")
	fs.StringVar(&f.secretsFile, "webhook-secret-file", "", "file holding the signing secrets, comma- or newline-separated (keeps them out of the process list); added to --webhook-secret")
	fs.StringVar(&f.redisUser, "redis-username", "", "Redis ACL user name (empty: the default user)")
	fs.StringVar(&f.redisPassFile, "redis-password-file", "", "file holding the Redis password (or set ORDERFLOW_REDIS_PASSWORD)")
	fs.BoolVar(&f.redisTLS, "redis-tls", false, "connect to Redis over TLS")
	fs.StringVar(&f.redisTLSCA, "redis-tls-ca", "", "PEM file of CAs to trust for Redis TLS (default: system roots)")
	fs.DurationVar(&f.dedupTTL, "dedup-ttl", gateway.DefaultDedupTTL, "how long a queued event id is remembered (longer than Stripe's 3-day retry window)")
	fs.Int64Var(&f.maxBody, "max-body", gateway.DefaultMaxBody, "largest accepted webhook body in bytes (413 above)")
	fs.DurationVar(&f.produceTimeout, "produce-timeout", gateway.DefaultProduceTimeout, "longest wait for Kafka's acknowledgement before answering 503")
	fs.DurationVar(&f.produceLinger, "produce-linger", gateway.DefaultProduceLinger, "while Kafka is busy with this gateway's records (the last produce request held two or more, answered within ten lingers), longest a produce request of fewer than 64 records waits for more (0: never waits)")
	fs.Int64Var(&f.maxInflightBytes, "max-inflight-bytes", gateway.DefaultMaxInflightBytes, "bytes of webhook bodies handled at once; beyond it 503 with Retry-After")
	fs.StringVar(&f.eventTypes, "event-types", strings.Join(gateway.DefaultEventTypes, ","), "Stripe event types to queue, comma-separated: some of the default, the types the processor handles (empty: all of them); others are answered 200 and ignored")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long to finish in-flight requests, flush the producer and then the dedup marks still queued for Redis")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("gateway: unexpected argument %q", fs.Arg(0))
	}
	logger, err := gatewayLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	if f.shutdownTimeout <= 0 {
		return usagef("--shutdown-timeout must be positive")
	}
	secrets := splitList(f.secrets)
	if err := checkSecrets("--webhook-secret (or ORDERFLOW_WEBHOOK_SECRET)", secrets); err != nil {
		return err
	}
	if f.secretsFile != "" {
		b, err := os.ReadFile(f.secretsFile)
		if err != nil {
			return usagef("--webhook-secret-file: %v", err)
		}
		fromFile := splitList(strings.ReplaceAll(string(b), "\n", ","))
		if err := checkSecrets("--webhook-secret-file "+f.secretsFile, fromFile); err != nil {
			return err
		}
		secrets = append(secrets, fromFile...)
	}
	if len(secrets) == 0 {
		where := "none given"
		if f.secretsFile != "" {
			where = f.secretsFile + " holds none"
		}
		return usagef("no webhook signing secret (%s): set ORDERFLOW_WEBHOOK_SECRET, or give --webhook-secret-file FILE (secrets comma- or newline-separated), or --webhook-secret whsec_… (visible in the process list). Stripe shows it as the endpoint's signing secret; the Stripe CLI prints it", where)
	}
	eventTypes, err := gatewayEventTypes(f.eventTypes)
	if err != nil {
		return err
	}
	cfg := gateway.Config{
		Topic:            f.kafka.names().Orders,
		Secrets:          secrets,
		EventTypes:       eventTypes,
		MaxBody:          f.maxBody,
		MaxInflightBytes: f.maxInflightBytes,
		ProduceTimeout:   f.produceTimeout,
		ProduceLinger:    f.produceLinger,
		DedupTTL:         f.dedupTTL,
	}
	if f.produceLinger == 0 {
		cfg.ProduceLinger = -1
	}
	if f.produceLinger < 0 {
		return usagef("--produce-linger must not be negative")
	}
	if f.maxBody <= 0 || f.maxInflightBytes <= 0 || f.produceTimeout <= 0 || f.dedupTTL <= 0 {
		return usagef("--max-body, --max-inflight-bytes, --produce-timeout and --dedup-ttl must be positive")
	}
	if f.maxInflightBytes < f.maxBody {
		return usagef("--max-inflight-bytes %d is below --max-body %d: one body of the largest size would never be let in; raise --max-inflight-bytes or lower --max-body", f.maxInflightBytes, f.maxBody)
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	kopts, err := f.kafka.opts()
	if err != nil {
		return err
	}
	tr, stopTracing, err := startTracing(ctx, "orderflow-gateway", logger)
	if err != nil {
		return err
	}
	defer stopTracing()
	cfg.Tracing = tr
	producer, err := gateway.NewKafkaProducer(cfg, kopts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	producerClosed := false
	defer func() {
		if !producerClosed {
			ctx, cancel := context.WithTimeout(context.Background(), cfg.ProduceTimeout)
			defer cancel()
			_ = producer.Close(ctx)
		}
	}()

	var dedup gateway.Deduper = gateway.NewMemoryDeduper(0)
	if f.redisAddr != "" {
		pass, err := secretFromFileOrEnv(f.redisPassFile, "ORDERFLOW_REDIS_PASSWORD")
		if err != nil {
			return usagef("--redis-password-file: %v", err)
		}
		redis.SetLogger(gateway.RedisLogger{Logger: logger})
		ropts := gateway.RedisOptions(f.redisAddr, pass)
		ropts.Username = f.redisUser
		if f.redisTLS || f.redisTLSCA != "" {
			tc, err := tlsConfig(f.redisTLSCA)
			if err != nil {
				return usagef("--redis-tls-ca: %v", err)
			}
			ropts.TLSConfig = tc
		}
		rdb := redis.NewClient(ropts)
		defer rdb.Close()
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := rdb.Ping(pctx).Err(); err != nil {
			logger.Warn("redis unreachable at start; accepting events without the dedup fast path until it answers", "addr", f.redisAddr, "err", err)
		}
		cancel()
		dedup = gateway.NewRedisDeduper(rdb, gateway.RedisKeyPrefix(f.kafka.names().Orders))
	} else {
		logger.Info("no --redis-addr: deduplicating in process only")
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoGauge())
	gw, err := gateway.New(cfg, producer, dedup, logger, reg)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := gw.Ready(pctx); errors.Is(err, gateway.ErrTopicMissing) {
		// Kafka answers, but every webhook would be answered 503: refuse
		// to start, as the processor does.
		cancel()
		return f.kafka.withTopicsHint(fmt.Errorf("gateway: topic %s does not exist (run 'orderflow topics create')", cfg.Topic))
	} else if err != nil {
		logger.Warn("kafka unreachable at start; /readyz reports it until it answers", "err", err)
	}
	cancel()

	srv := &http.Server{
		Handler:           gw.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15*time.Second + cfg.ProduceTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	servers := []*http.Server{srv}
	listeners := []net.Listener{}
	ln, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	listeners = append(listeners, ln)
	if f.metricsAddr != "" {
		mux := http.NewServeMux()
		if f.pprof {
			servePprof(mux)
		}
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		gw.HandleHealth(mux) // /healthz and /readyz, never the webhook endpoint
		msrv := &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          srv.ErrorLog,
		}
		mln, err := net.Listen("tcp", f.metricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		servers = append(servers, msrv)
		listeners = append(listeners, mln)
	}

	serveErr := make(chan error, len(servers))
	for i, s := range servers {
		go func() {
			if err := s.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- err
			}
		}()
	}
	logger.Info("gateway listening", "http_addr", ln.Addr().String(), "metrics_addr", f.metricsAddr, "topic", cfg.Topic, "event_types", cfg.EventTypes, "secrets", len(cfg.Secrets))
	fmt.Fprintf(stdout, "gateway listening on %s\n", ln.Addr())

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down: finishing in-flight requests")
	case runErr = <-serveErr:
		logger.Error("http server failed", "err", runErr)
	}

	// Stop accepting and finish in-flight webhook requests (each waits at
	// most --produce-timeout for Kafka), then flush what the producer still
	// holds, then stop the metrics listener last so the drain stays visible.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
	defer scancel()
	for _, s := range servers {
		if err := s.Shutdown(sctx); err != nil {
			logger.Warn("http shutdown incomplete", "err", err)
		}
	}
	producerClosed = true
	if err := producer.Close(sctx); err != nil {
		logger.Warn("producer flush incomplete", "err", err)
	}
	if err := gw.Flush(sctx); err != nil {
		logger.Warn("dedup marks not all written", "err", err)
	}
	logger.Info("gateway stopped")
	return runErr
}

// checkSecrets refuses a secret of where that is not a Stripe endpoint
// signing secret: every webhook would get 400. It names the secret by its
// place in the list, never by its value.
func checkSecrets(where string, secrets []string) error {
	for i, s := range secrets {
		if err := gateway.CheckSecret(s); err != nil {
			if len(secrets) == 1 {
				return usagef("%s: the secret %v", where, err)
			}
			return usagef("%s: secret %d of %d %v", where, i+1, len(secrets), err)
		}
	}
	return nil
}

// gatewayEventTypes reads --event-types: empty means the default list, and
// every type must be one the processor acts on (gateway.DefaultEventTypes).
// A type queued but never acted on, or a mistyped one answered 200
// "ignored", would lose the order: Stripe does not retry a 2xx.
func gatewayEventTypes(s string) ([]string, error) {
	types := splitList(s)
	if len(types) == 0 {
		return gateway.DefaultEventTypes, nil
	}
	var unknown []string
	for _, t := range types {
		if !slices.Contains(gateway.DefaultEventTypes, t) {
			unknown = append(unknown, strconv.Quote(t))
		}
	}
	if len(unknown) > 0 {
		return nil, usagef("--event-types: the processor does not handle %s; it handles %s", strings.Join(unknown, ", "), strings.Join(gateway.DefaultEventTypes, ","))
	}
	return types, nil
}

// gatewayLogger returns the slog logger for --log-format and --log-level.
func gatewayLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, usagef("--log-format %q: want text or json", format)
	}
}
