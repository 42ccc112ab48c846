package tracing

import (
	"context"
	"net/http"
	"testing"
)

func TestEnabled(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"nothing set: off by default", nil, false},
		{"otlp exporter", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{"console exporter", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true},
		{"none", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"}, false},
		{"endpoint alone: otlp", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"}, true},
		{"traces endpoint alone", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://otel-collector:4318/v1/traces"}, true},
		{"service name alone is not enough", map[string]string{"OTEL_SERVICE_NAME": "orderflow-gateway"}, false},
		{"the compose settings", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318", "OTEL_SERVICE_NAME": "orderflow-processor"}, true},
		{"sdk disabled wins", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false},
		{"sdk disabled false", map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Enabled(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("Enabled(%v) = %v, want %v", tt.env, got, tt.want)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		t.Setenv(k, "")
	}
	ctx := context.Background()
	tr, err := FromEnv(ctx, "orderflow-test")
	if err != nil || tr != nil {
		t.Fatalf("FromEnv with nothing set = %v, %v; want nil (off), no error", tr, err)
	}

	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
	if _, err := FromEnv(ctx, "orderflow-test"); err == nil {
		t.Error("FromEnv accepted OTEL_EXPORTER_OTLP_PROTOCOL=carrier-pigeon")
	}

	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	tr, err = FromEnv(ctx, "orderflow-test")
	if err != nil || tr == nil {
		t.Fatalf("FromEnv with an OTLP endpoint = %v, %v; want tracing on", tr, err)
	}
	if len(tr.KafkaProducerOpts()) != 1 || len(tr.KafkaConsumerOpts("g")) != 1 {
		t.Error("tracing on gives no kotel hooks")
	}
	// Nothing was traced: the shutdown has nothing to send to the
	// endpoint (no collector listens there).
	if err := tr.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestOff checks that nil tracing (off) adds nothing anywhere.
func TestOff(t *testing.T) {
	var tr *Tracing
	if tr.Enabled() || tr.KafkaProducerOpts() != nil || tr.KafkaConsumerOpts("g") != nil || tr.Inject(context.Background()) != "" {
		t.Error("nil tracing is not off")
	}
	base := http.DefaultTransport
	if tr.Transport(base) != base {
		t.Error("nil tracing wraps the transport")
	}
	ctx := context.Background()
	if tr.Extract(ctx, NewTraceParent()) != ctx || tr.ExtractHTTP(ctx, http.Header{"Traceparent": {NewTraceParent()}}) != ctx {
		t.Error("nil tracing extracts a context")
	}
	if err := tr.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		_ = tr.Tracer()
		_ = tr.KafkaConsumerOpts("")
		_ = TraceID("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	}); allocs != 0 {
		t.Errorf("off: %v allocations per call, want 0", allocs)
	}
}

func TestTraceID(t *testing.T) {
	for in, want := range map[string]string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": "4bf92f3577b34da6a3ce929d0e0e4736",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00": "4bf92f3577b34da6a3ce929d0e0e4736",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01": "",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01": "",
		"garbage": "",
		"":        "",
	} {
		if got := TraceID(in); got != want {
			t.Errorf("TraceID(%q) = %q, want %q", in, got, want)
		}
	}
	if id := TraceID(NewTraceParent()); len(id) != 32 {
		t.Errorf("a new traceparent has trace id %q", id)
	}
}
