package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics/tracing"
)

// startTracing turns tracing on when the OTEL_* variables ask for it (see
// tracing.EnvHelp), with service as the default service name. It returns
// nil tracing when off, and a stop function that flushes the spans still
// queued (at most 5 s). A bad OTEL_* value is a usage error.
func startTracing(ctx context.Context, service string, log *slog.Logger) (*tracing.Tracing, func(), error) {
	t, err := tracing.FromEnv(ctx, service)
	if err != nil {
		return nil, func() {}, usagef("%v", err)
	}
	if t == nil {
		return nil, func() {}, nil
	}
	exporter := os.Getenv("OTEL_TRACES_EXPORTER")
	if exporter == "" {
		exporter = "otlp"
	}
	log.Info("tracing on", "exporter", exporter, "endpoint", otlpEndpoint())
	return t, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := t.Shutdown(sctx); err != nil {
			log.Warn("tracing: spans not all exported at exit", "err", err)
		}
	}, nil
}

// otlpEndpoint is the OTLP endpoint the exporter uses, as configured ("" for
// the exporter's default).
func otlpEndpoint() string {
	if v := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); v != "" {
		return v
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
}

// traceProviderCalls makes every provider client built after it trace its
// HTTP calls (a client span per call made within a step attempt's span).
func traceProviderCalls(t *tracing.Tracing) {
	if t != nil {
		integrations.Transport = t.Transport(integrations.Transport)
	}
}
