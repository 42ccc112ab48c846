// Package tracing is orderflow's OpenTelemetry tracing: one trace per
// order, from the gateway's webhook request through every step of the
// processor (DESIGN.md, "Tracing").
//
// It is off unless the standard OTEL_* variables ask for it (FromEnv), and
// a nil *Tracing is tracing turned off: every method is safe on it and does
// nothing, so the callers test one pointer and pay nothing else. The package
// also holds the W3C traceparent helpers the gateway and the processor use
// whether tracing is on or not: the trace id is carried in the record's
// traceparent header, the order's state and its log lines in both cases.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

var (
	noopProvider trace.TracerProvider = noop.NewTracerProvider()
	noopTracer                        = noopProvider.Tracer(InstrumentationName)
)

// InstrumentationName names the tracer of orderflow's own spans.
const InstrumentationName = "github.com/orderflow/orderflow"

// EnvHelp is the paragraph the --help of the commands that trace shows.
const EnvHelp = `Tracing (OpenTelemetry) is off unless the environment turns it on:
OTEL_TRACES_EXPORTER=otlp (or console), or an OTLP endpoint in
OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT. Also read:
OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf, the default, or grpc),
OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, OTEL_BSP_*.
OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true turns it off.`

// Tracing holds the tracer provider and propagator of one process. A nil
// *Tracing is tracing turned off.
type Tracing struct {
	tp       trace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	shutdown func(context.Context) error
}

// Propagator is the context propagation of every trace: W3C Trace Context
// (the traceparent header) and W3C Baggage.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Enabled reports whether the environment (getenv, os.Getenv when nil) turns
// tracing on: OTEL_TRACES_EXPORTER names an exporter other than none, or it
// is unset and an OTLP endpoint is set. OTEL_SDK_DISABLED=true wins.
func Enabled(getenv func(string) string) bool {
	if getenv == nil {
		getenv = os.Getenv
	}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	switch e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e {
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	case "none":
		return false
	default:
		return true
	}
}

// FromEnv returns the process's tracing as the OTEL_* variables configure
// it, or nil (off) when they do not turn it on (Enabled). service is the
// service name used when OTEL_SERVICE_NAME (or service.name in
// OTEL_RESOURCE_ATTRIBUTES) does not give one. The exporter is
// OpenTelemetry's autoexport: OTLP over HTTP/protobuf by default, gRPC with
// OTEL_EXPORTER_OTLP_PROTOCOL=grpc, or the console; spans leave in batches
// (OTEL_BSP_*), sampled as OTEL_TRACES_SAMPLER says (parent-based, always
// on by default). Call Shutdown before the process exits.
func FromEnv(ctx context.Context, service string) (*Tracing, error) {
	if !Enabled(nil) {
		return nil, nil
	}
	// OTEL_TRACES_EXPORTER unset (an endpoint set): OTLP, autoexport's
	// default as the specification's.
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win over the default name
		resource.WithTelemetrySDK(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t := New(tp)
	t.shutdown = tp.Shutdown
	return t, nil
}

// New returns tracing through tp (tests pass a provider recording spans in
// memory). Shutdown does not shut tp down.
func New(tp trace.TracerProvider) *Tracing {
	return &Tracing{tp: tp, tracer: tp.Tracer(InstrumentationName), prop: Propagator}
}

// Enabled reports whether t traces (t is not nil).
func (t *Tracing) Enabled() bool { return t != nil }

// Tracer is the tracer of orderflow's spans; a no-op tracer when off.
func (t *Tracing) Tracer() trace.Tracer {
	if t == nil {
		return noopTracer
	}
	return t.tracer
}

// Provider is the tracer provider; a no-op provider when off.
func (t *Tracing) Provider() trace.TracerProvider {
	if t == nil {
		return noopProvider
	}
	return t.tp
}

// KafkaProducerOpts are the franz-go options that trace a producer's
// records with kotel: a "<topic> publish" span per record, child of the
// record's context, whose context is injected into the record's traceparent
// header (replacing one already there). Nil when off.
func (t *Tracing) KafkaProducerOpts() []kgo.Opt {
	if t == nil {
		return nil
	}
	k := kotel.NewKotel(kotel.WithTracer(kotel.NewTracer(kotel.TracerProvider(t.tp), kotel.TracerPropagator(t.prop))))
	return []kgo.Opt{kgo.WithHooks(k.Hooks()...)}
}

// KafkaConsumerOpts are the franz-go options that trace a consumer's
// records with kotel: a "<topic> receive" span per fetched record, child of
// the context in its traceparent header, left in the record's Context.
// Only the fetch hooks are installed, so what the same client produces is
// not traced (nor its headers changed). group names the consumer group in
// the spans. Nil when off.
func (t *Tracing) KafkaConsumerOpts(group string) []kgo.Opt {
	if t == nil {
		return nil
	}
	opts := []kotel.TracerOpt{kotel.TracerProvider(t.tp), kotel.TracerPropagator(t.prop)}
	if group != "" {
		opts = append(opts, kotel.ConsumerGroup(group))
	}
	return []kgo.Opt{kgo.WithHooks(fetchHooks{kotel.NewTracer(opts...)})}
}

// fetchHooks are kotel's fetch hooks alone.
type fetchHooks struct{ t *kotel.Tracer }

func (h fetchHooks) OnFetchRecordBuffered(r *kgo.Record) { h.t.OnFetchRecordBuffered(r) }
func (h fetchHooks) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	h.t.OnFetchRecordUnbuffered(r, polled)
}

// Transport wraps base with otelhttp: a client span per request made within
// a span (a step attempt's), its child. No trace header is sent: the providers are third
// parties, and the trace is ours. The span sees the URL with every query
// value replaced by REDACTED and without user info: providers take keys
// (PostNord's apikey, Zoho's client secret and refresh token) and customer
// data (a VAT number, an email) in the query, and spans go to a trace
// backend. base itself when off.
func (t *Tracing) Transport(base http.RoundTripper) http.RoundTripper {
	if t == nil {
		return base
	}
	return redactingTransport{otelhttp.NewTransport(unredactTransport{base},
		otelhttp.WithTracerProvider(t.tp),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Host }),
		// Only calls made for an order (within one of its spans) are
		// traced: batches, reports and alerts sent on their own are not
		// made root spans of traces of their own.
		otelhttp.WithFilter(func(r *http.Request) bool { return trace.SpanContextFromContext(r.Context()).IsValid() }),
	)}
}

// redactingTransport hands the traced transport a copy of the request with
// RedactURL's URL, the request itself kept in the copy's context for
// unredactTransport, which sends it.
type redactingTransport struct{ traced http.RoundTripper }

type originalRequestKey struct{}

// secretURLKey marks a request whose URL is itself a credential.
type secretURLKey struct{}

// WithSecretURL marks the requests made with ctx as going to a URL that is
// itself a credential (a Slack incoming webhook, an outbound webhook's
// receiver): their spans show the scheme alone, host and path REDACTED.
func WithSecretURL(ctx context.Context) context.Context {
	return context.WithValue(ctx, secretURLKey{}, true)
}

func (rt redactingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	u := RedactURL(r.URL)
	if secret, _ := r.Context().Value(secretURLKey{}).(bool); secret {
		u = &url.URL{Scheme: r.URL.Scheme, Host: "REDACTED", Path: "/REDACTED"}
	}
	if u.String() == r.URL.String() {
		return rt.traced.RoundTrip(r)
	}
	c := r.Clone(context.WithValue(r.Context(), originalRequestKey{}, r))
	c.URL = u
	c.Host = u.Host
	resp, err := rt.traced.RoundTrip(c)
	if resp != nil {
		resp.Request = r
	}
	return resp, err
}

// unredactTransport sends the request redactingTransport kept, in the
// context the traced transport made (its span's).
type unredactTransport struct{ base http.RoundTripper }

func (ut unredactTransport) RoundTrip(c *http.Request) (*http.Response, error) {
	r, ok := c.Context().Value(originalRequestKey{}).(*http.Request)
	if !ok {
		return ut.base.RoundTrip(c)
	}
	resp, err := ut.base.RoundTrip(r.WithContext(c.Context()))
	if err != nil {
		if secret, _ := r.Context().Value(secretURLKey{}).(bool); secret {
			// The span's status is the error's text, which names the
			// host ("lookup <host>: no such host").
			err = &hiddenHostError{err: err, host: r.URL.Host, name: r.URL.Hostname()}
		}
	}
	return resp, err
}

// hiddenHostError is a transport error of a secret URL, its text without
// the host; it unwraps to the error itself.
type hiddenHostError struct {
	err        error
	host, name string
}

func (e *hiddenHostError) Error() string {
	s := e.err.Error()
	for _, h := range []string{e.host, e.name} {
		if h != "" {
			s = strings.ReplaceAll(s, h, "REDACTED")
		}
	}
	return s
}

func (e *hiddenHostError) Unwrap() error { return e.err }

// RedactURL is u without user info and with every query value replaced by
// REDACTED (the keys kept, in their order), as spans show it.
func RedactURL(u *url.URL) *url.URL {
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		parts := strings.Split(c.RawQuery, "&")
		for i, p := range parts {
			k, _, found := strings.Cut(p, "=")
			if found || k != "" {
				parts[i] = k + "=REDACTED"
			}
		}
		c.RawQuery = strings.Join(parts, "&")
	}
	c.Fragment, c.RawFragment = "", ""
	return &c
}

// Extract returns ctx with the remote span context of a W3C traceparent
// value (and no span when it is not valid).
func (t *Tracing) Extract(ctx context.Context, traceparent string) context.Context {
	if t == nil || traceparent == "" {
		return ctx
	}
	return t.prop.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// Inject returns the W3C traceparent of ctx's span ("" without one).
func (t *Tracing) Inject(ctx context.Context) string {
	if t == nil {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// Shutdown flushes the spans still queued and stops the exporter, at most
// until ctx ends. Nothing to do when off or built with New.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// ExtractHTTP returns ctx with the remote span context (and baggage) of an
// HTTP request's traceparent, tracestate and baggage headers.
func (t *Tracing) ExtractHTTP(ctx context.Context, h http.Header) context.Context {
	if t == nil {
		return ctx
	}
	return t.prop.Extract(ctx, propagation.HeaderCarrier(h))
}

// Attribute keys of orderflow's spans.
const (
	AttrOrderID     = attribute.Key("orderflow.order_id")
	AttrEventID     = attribute.Key("orderflow.event_id")
	AttrEventType   = attribute.Key("orderflow.event_type")
	AttrOutcome     = attribute.Key("orderflow.outcome")
	AttrStep        = attribute.Key("orderflow.step")
	AttrAttempt     = attribute.Key("orderflow.attempt")
	AttrResult      = attribute.Key("orderflow.result")
	AttrReplay      = attribute.Key("orderflow.replay_source")
	AttrLink        = attribute.Key("orderflow.link")
	AttrStatus      = attribute.Key("orderflow.status")
	AttrWrite       = attribute.Key("orderflow.write")
	AttrDLQClass    = attribute.Key("orderflow.dlq_class")
	AttrPartition   = attribute.Key("messaging.destination.partition.id")
	AttrOffset      = attribute.Key("messaging.kafka.offset")
	AttrHTTPMethod  = attribute.Key("http.request.method")
	AttrHTTPRoute   = attribute.Key("http.route")
	AttrHTTPStatus  = attribute.Key("http.response.status_code")
	AttrMessageKey  = attribute.Key("messaging.kafka.message.key")
	AttrDestination = attribute.Key("messaging.destination.name")
)

// Span names.
const (
	SpanWebhook    = "POST " + "/webhooks/stripe"
	SpanProcess    = "order process" // one record of `orders` handled by the processor
	SpanStepPrefix = "step "         // + step name: one attempt of a step
	SpanStateWrite = "state write"
	SpanDeadLetter = "dead letter write"
	SpanReplay     = "dlq replay" // one dead letter sent again
)
