package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestTracingHelp(t *testing.T) {
	for _, cmd := range []string{"gateway", "processor"} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{cmd, "--help"}, &stdout, &stderr); code != 0 {
			t.Errorf("%s --help: exit %d", cmd, code)
		}
		for _, v := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER", "off unless"} {
			if !strings.Contains(stdout.String(), v) {
				t.Errorf("%s --help does not mention %s", cmd, v)
			}
		}
	}
}

// A bad OTEL_* value is a usage error with a one-line reason, before
// anything connects.
func TestTracingBadEnvironment(t *testing.T) {
	t.Setenv("ORDERFLOW_WEBHOOK_SECRET", "whsec_test")
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"gateway", "--brokers", "127.0.0.1:1", "--http-addr", "127.0.0.1:0", "--metrics-addr", ""}, &stdout, &stderr)
	if code != 2 {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, "tracing: exporter") || !strings.Contains(last, "protocol") {
		t.Errorf("stderr's last line %q does not name the tracing exporter's protocol", last)
	}
}
