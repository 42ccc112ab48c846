package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stripe/stripe-go/v76/webhook"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/topics"
	"github.com/orderflow/orderflow/topics/tracing"
)

// Paths served by Handler.
const (
	WebhookPath = "/webhooks/stripe"
	HealthPath  = "/healthz"
	ReadyPath   = "/readyz"
)

// SignatureHeader is the header carrying Stripe's signature.
const SignatureHeader = "Stripe-Signature"

// Producer is what the gateway produces through: a KafkaProducer, or a
// *kgo.Client.
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	Ping(ctx context.Context) error
}

// Gateway handles Stripe webhooks. Build it with New; it is safe for
// concurrent use and holds no per-request state beyond pooled buffers.
type Gateway struct {
	cfg      Config
	producer Producer
	dedup    Deduper
	later    LaterMarker // dedup, when it takes marks without the webhook waiting
	log      *slog.Logger
	m        *metrics
	verifier *verifier
	types    map[string]bool
	now      func() time.Time

	inflight    atomic.Int64
	dedupLog    throttle
	overloadLog throttle
	kafkaLog    throttle
	rejectLog   throttle
	bufs        sync.Pool // *bytes.Buffer for request bodies
}

// New returns a Gateway producing to cfg.Topic through producer (normally a
// KafkaProducer, shared for the process lifetime).
// dedup may be nil to disable the dedup fast path. Metrics are registered
// on reg, which must not already hold them.
func New(cfg Config, producer Producer, dedup Deduper, logger *slog.Logger, reg prometheus.Registerer) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if producer == nil {
		return nil, errors.New("gateway: producer is required")
	}
	if logger == nil {
		return nil, errors.New("gateway: logger is required")
	}
	if reg == nil {
		return nil, errors.New("gateway: metrics registerer is required")
	}
	cfg = cfg.withDefaults()
	g := &Gateway{
		cfg:      cfg,
		producer: producer,
		dedup:    dedup,
		log:      logger,
		verifier: newVerifier(cfg.Secrets, cfg.Tolerance),
		types:    make(map[string]bool, len(cfg.EventTypes)),
		now:      time.Now,
	}
	g.later, _ = dedup.(LaterMarker)
	for _, t := range cfg.EventTypes {
		g.types[t] = true
	}
	for _, th := range []*throttle{&g.dedupLog, &g.overloadLog, &g.kafkaLog, &g.rejectLog} {
		th.interval = cfg.ErrorLogInterval
	}
	m, err := newMetrics(reg, cfg.EventTypes, func() float64 { return float64(g.inflight.Load()) })
	if err != nil {
		return nil, fmt.Errorf("gateway: register metrics: %w", err)
	}
	g.m = m
	return g, nil
}

// Flush waits until the dedup store answered the marks the gateway left to
// it (see LaterMarker), or ctx ends. Call it after the HTTP server shut
// down and before the store's client is closed.
func (g *Gateway) Flush(ctx context.Context) error {
	if g.later == nil {
		return nil
	}
	return g.later.Flush(ctx)
}

// Handler serves WebhookPath (POST), HealthPath and ReadyPath.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(WebhookPath, g.ServeWebhook)
	g.HandleHealth(mux)
	return mux
}

// HandleHealth adds only /healthz and /readyz to mux: the metrics listener
// serves them without exposing the webhook endpoint there.
func (g *Gateway) HandleHealth(mux *http.ServeMux) {
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET "+ReadyPath, func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := g.Ready(ctx); err != nil {
			if errors.Is(err, ErrTopicMissing) {
				writeText(w, http.StatusServiceUnavailable, "topic "+g.cfg.Topic+" does not exist (run 'orderflow topics create')")
				return
			}
			writeText(w, http.StatusServiceUnavailable, "kafka unreachable")
			return
		}
		writeText(w, http.StatusOK, "ready")
	})
}

// Ready reports whether Kafka answers (and, for a KafkaProducer, whether
// the topic exists: ErrTopicMissing).
func (g *Gateway) Ready(ctx context.Context) error {
	if err := g.producer.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	return nil
}

// result is the answer to one webhook request.
type result struct {
	status    int
	outcome   string
	eventType string // "" until the event was read
	reason    string // body of a non-200 answer
}

// ServeWebhook handles one Stripe webhook delivery.
func (g *Gateway) ServeWebhook(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if len(r.TransferEncoding) > 0 {
		// Stripe sends Content-Length. A chunked request may have come with
		// a conflicting Content-Length through a proxy that framed it
		// differently (request smuggling); never reuse that connection.
		w.Header().Set("Connection", "close")
	}
	var span trace.Span
	if t := g.cfg.Tracing; t != nil {
		var ctx context.Context
		ctx, span = t.Tracer().Start(t.ExtractHTTP(r.Context(), r.Header), tracing.SpanWebhook,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(tracing.AttrHTTPMethod.String(r.Method), tracing.AttrHTTPRoute.String(WebhookPath)))
		r = r.WithContext(ctx)
	}
	res := g.handle(w, r)
	if span != nil {
		span.SetAttributes(tracing.AttrHTTPStatus.Int(res.status), tracing.AttrOutcome.String(res.outcome))
		if res.eventType != "" {
			span.SetAttributes(tracing.AttrEventType.String(res.eventType))
		}
		if res.status >= 500 {
			span.SetStatus(codes.Error, res.reason)
		}
		defer span.End()
	}
	switch res.status {
	case http.StatusOK:
		writeText(w, http.StatusOK, res.outcome)
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
		writeText(w, res.status, res.reason)
	case http.StatusServiceUnavailable:
		if res.outcome == OutcomeOverloaded {
			w.Header().Set("Retry-After", strconv.Itoa(int((g.cfg.RetryAfter+time.Second-1)/time.Second)))
		}
		writeText(w, res.status, res.reason)
	default:
		writeText(w, res.status, res.reason)
	}
	g.m.requests.WithLabelValues(res.outcome, res.eventType).Inc()
	g.m.requestDuration.WithLabelValues(res.outcome).Observe(time.Since(start).Seconds())
}

func (g *Gateway) handle(w http.ResponseWriter, r *http.Request) result {
	if r.Method != http.MethodPost {
		return result{status: http.StatusMethodNotAllowed, outcome: OutcomeMethodNotAllowed, reason: "method not allowed"}
	}
	if r.ContentLength > g.cfg.MaxBody {
		return tooLarge()
	}
	reserved := r.ContentLength
	if reserved < 0 {
		reserved = g.cfg.MaxBody
	}
	if !g.reserve(reserved) {
		if ok, n := g.overloadLog.allow(g.now()); ok {
			g.log.Warn("webhook rejected: in-flight byte budget exhausted", "max_inflight_bytes", g.cfg.MaxInflightBytes, "suppressed", n)
		}
		return result{status: http.StatusServiceUnavailable, outcome: OutcomeOverloaded, reason: "overloaded, retry later"}
	}
	defer func() { g.release(reserved) }()

	header := r.Header.Get(SignatureHeader)
	if header == "" {
		return g.badRequest(webhook.ErrNotSigned, "")
	}

	buf := g.getBuf()
	defer g.putBuf(buf)
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, g.cfg.MaxBody)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tooLarge()
		}
		return result{status: http.StatusBadRequest, outcome: OutcomeBadRequest, reason: "cannot read body"}
	}
	body := buf.Bytes()
	if n := int64(len(body)); n != reserved {
		g.inflight.Add(n - reserved)
		reserved = n
	}

	receivedAt := g.now()
	if err := g.verifier.verify(body, header, receivedAt); err != nil {
		return g.badRequest(err, "")
	}
	ev, key, err := parseEvent(body)
	if err != nil {
		return g.badRequest(err, "")
	}
	if !g.types[ev.Type] {
		g.log.Debug("webhook ignored", "event_id", ev.ID, "event_type", ev.Type, "outcome", OutcomeIgnored)
		return result{status: http.StatusOK, outcome: OutcomeIgnored, eventType: ev.Type}
	}
	if g.cfg.Tracing != nil {
		trace.SpanFromContext(r.Context()).SetAttributes(tracing.AttrEventID.String(ev.ID), tracing.AttrOrderID.String(key))
	}

	if g.dedup != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), g.cfg.DedupTimeout)
		seen, err := g.dedup.Seen(ctx, ev.ID)
		cancel()
		if err != nil {
			g.dedupFailed(err)
		} else if seen {
			g.m.dedupHits.Inc()
			g.logEvent(r.Context(), slog.LevelInfo, "webhook answered", &ev, key, "outcome", OutcomeDuplicate)
			return result{status: http.StatusOK, outcome: OutcomeDuplicate, eventType: ev.Type}
		}
	}

	value := encodeEnvelope(topics.Envelope{
		EventID:    ev.ID,
		EventType:  ev.Type,
		APIVersion: ev.APIVersion,
		Created:    ev.Created,
		ReceivedAt: receivedAt.UTC(),
		Key:        key,
		ObjectID:   ev.Data.Object.ID,
		Event:      body,
	})
	rec := &kgo.Record{
		Topic: g.cfg.Topic,
		Key:   []byte(key),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: topics.HeaderEventID, Value: []byte(ev.ID)},
			{Key: topics.HeaderEventType, Value: []byte(ev.Type)},
			{Key: topics.HeaderTraceParent, Value: []byte(traceParent(r.Header.Get("traceparent")))},
		},
	}
	if err := g.produce(r.Context(), rec); err != nil {
		if ok, n := g.kafkaLog.allow(g.now()); ok {
			g.logEvent(r.Context(), slog.LevelWarn, "webhook not queued: kafka", &ev, key, "outcome", OutcomeUnavailable, "err", err, "suppressed", n)
		}
		return result{status: http.StatusServiceUnavailable, outcome: OutcomeUnavailable, eventType: ev.Type, reason: "event log unavailable, retry later"}
	}

	if g.later != nil {
		g.later.MarkLater(ev.ID, g.cfg.DedupTTL, g.dedupFailed)
	} else if g.dedup != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), g.cfg.DedupTimeout)
		err := g.dedup.Mark(ctx, ev.ID, g.cfg.DedupTTL)
		cancel()
		if err != nil {
			g.dedupFailed(err)
		}
	}
	if g.log.Enabled(r.Context(), slog.LevelInfo) { // the trace id and boxed offsets are not made for nothing
		g.logEvent(r.Context(), slog.LevelInfo, "webhook answered", &ev, key, "outcome", OutcomeQueued, "partition", rec.Partition, "offset", rec.Offset, "trace_id", recordTraceID(rec))
	}
	return result{status: http.StatusOK, outcome: OutcomeQueued, eventType: ev.Type}
}

// logEvent logs msg at level with the event's id, type and key before
// args, as a logger made With them would, and builds nothing when level
// is off (a logger With them cost a fiftieth of the gateway's CPU at
// ingest, made for every webhook).
func (g *Gateway) logEvent(ctx context.Context, level slog.Level, msg string, ev *event, key string, args ...any) {
	if !g.log.Enabled(ctx, level) {
		return
	}
	g.log.Log(ctx, level, msg, append([]any{"event_id", ev.ID, "event_type", ev.Type, "key", key}, args...)...)
}

// recordTraceID is the trace id of the record's traceparent header, as it
// was produced.
func recordTraceID(rec *kgo.Record) string {
	for _, h := range rec.Headers {
		if h.Key == topics.HeaderTraceParent {
			return tracing.TraceID(string(h.Value))
		}
	}
	return ""
}

// errProduceTimeout is returned when Kafka did not acknowledge in time.
var errProduceTimeout = errors.New("no acknowledgement within the produce timeout")

// produce hands rec to the producer and waits for the acknowledgement, at
// most ProduceTimeout. The record's context does not end with the request's:
// franz-go fails a whole buffered batch when the context of its first record
// ends, so one client hanging up must not fail the records of others. The
// wait also ends at the timeout even when the producer cannot yet fail the
// record (an idempotent request already sent); the record may then still
// land, which the dedup downstream absorbs when Stripe retries.
func (g *Gateway) produce(reqCtx context.Context, rec *kgo.Record) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(reqCtx), g.cfg.ProduceTimeout)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	g.producer.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		g.m.produceDuration.Observe(time.Since(start).Seconds())
		done <- err
	})
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return errProduceTimeout
	}
}

func (g *Gateway) badRequest(err error, eventType string) result {
	reason := err.Error()
	switch {
	case errors.Is(err, webhook.ErrNotSigned):
		reason = "missing Stripe-Signature header"
	case errors.Is(err, webhook.ErrInvalidHeader):
		reason = "malformed Stripe-Signature header"
	case errors.Is(err, webhook.ErrNoValidSignature):
		reason = "no valid v1 signature"
	case errors.Is(err, webhook.ErrTooOld):
		reason = "signature timestamp outside tolerance"
	}
	if ok, n := g.rejectLog.allow(g.now()); ok {
		g.log.Info("webhook rejected", "outcome", OutcomeBadRequest, "reason", reason, "suppressed", n)
	}
	return result{status: http.StatusBadRequest, outcome: OutcomeBadRequest, eventType: eventType, reason: reason}
}

func tooLarge() result {
	return result{status: http.StatusRequestEntityTooLarge, outcome: OutcomeTooLarge, reason: "body too large"}
}

func (g *Gateway) dedupFailed(err error) {
	g.m.redisErrors.Inc()
	if ok, n := g.dedupLog.allow(g.now()); ok {
		g.log.Warn("dedup store unavailable, accepting events without it", "err", err, "suppressed", n)
	}
}

// reserve takes n bytes of the in-flight budget, or reports false when that
// would exceed it. A request is always admitted when nothing else is in
// flight, so a body up to MaxBody can never be refused forever.
func (g *Gateway) reserve(n int64) bool {
	if total := g.inflight.Add(n); total > g.cfg.MaxInflightBytes && total != n {
		g.inflight.Add(-n)
		return false
	}
	return true
}

func (g *Gateway) release(n int64) { g.inflight.Add(-n) }

// maxPooledBuf keeps unusually large bodies from pinning memory in the pool.
const maxPooledBuf = 64 << 10

func (g *Gateway) getBuf() *bytes.Buffer {
	if b, ok := g.bufs.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

func (g *Gateway) putBuf(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuf {
		return
	}
	b.Reset()
	g.bufs.Put(b)
}

func writeText(w http.ResponseWriter, status int, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text + "\n"))
}

// throttle lets a recurring log line through at most once per interval and
// counts what it held back.
type throttle struct {
	interval   time.Duration
	last       atomic.Int64 // unix nanos of the last allowed line
	suppressed atomic.Int64
}

// allow reports whether to log now, and how many lines were suppressed
// since the last one.
func (t *throttle) allow(now time.Time) (bool, int64) {
	last := t.last.Load()
	if last != 0 && now.UnixNano()-last < int64(t.interval) {
		t.suppressed.Add(1)
		return false, 0
	}
	if !t.last.CompareAndSwap(last, now.UnixNano()) {
		t.suppressed.Add(1)
		return false, 0
	}
	return true, t.suppressed.Swap(0)
}
