package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/test/harness"
)

func TestFlagSet(t *testing.T) {
	help := `Usage: orderflow processor [flags]

Consumes the orders topic in a consumer group -- not a flag line.

Flags (each also ORDERFLOW_<FLAG>):
  -breaker-cooldown duration
    	wait before an open circuit lets one probe through (default 30s)
  --retry-attempts int
    	attempts per step (default 5)
  -kafka-tls
    	connect to Kafka over TLS
`
	got := flagSet(help)
	tests := []struct {
		name string
		want bool
	}{
		{"breaker-cooldown", true},
		{"retry-attempts", true},
		{"kafka-tls", true},
		{"session-timeout", false},
		{"not", false}, // "-- not a flag line" is prose, not indented
		{"wait", false},
	}
	for _, tt := range tests {
		if got[tt.name] != tt.want {
			t.Errorf("flag %q documented = %v, want %v (parsed %v)", tt.name, got[tt.name], tt.want, got)
		}
	}
}

func TestTableAndResults(t *testing.T) {
	rows := []Row{
		{Scenario: "1-processor-kill", Faults: "3 × kill -9", Sent: 150, Accepted: 150, Completed: 150, Drain: 1500 * time.Millisecond, Pass: true},
		{Scenario: "8-provider-rejects", Faults: "invoice rejects", Sent: 150, Accepted: 149, Completed: 130, DeadLettered: 18, Lost: 1, DupCreates: 2, ShippingDups: 1, AnswersLost: 3, Drain: 2 * time.Second},
	}
	table := Table(rows)
	for _, want := range []string{
		"| scenario | faults | sent |",
		"| 1-processor-kill | 3 × kill -9 | 150 | 150 | 150 | 0 | 0 | 0 | 0 | 0 | 1.5 s | pass |",
		"| 8-provider-rejects | invoice rejects | 150 | 149 | 130 | 18 | 1 | 2 | 1 | 3 | 2.0 s | FAIL |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	path := filepath.Join(t.TempDir(), "results.md")
	if err := WriteResults(path, "full", rows, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); !strings.HasPrefix(s, "# orderflow reliability suite (full)") || !strings.Contains(s, "2026-01-02T03:04:05Z") || !strings.HasSuffix(s, table) {
		t.Errorf("results file:\n%s", s)
	}
}

func TestOutcomeDuplicates(t *testing.T) {
	o := &Outcome{Stats: map[string]harness.StepStats{
		"crm": {DuplicateCreates: 1}, "production_log": {DuplicateCreates: 2}, "invoice": {AnswersLost: 2}, "email": {DuplicateCreates: 4},
		"shipping": {DuplicateCreates: 8, AnswersLost: 3}, "stripe": {DuplicateCreates: 16},
	}}
	if got := o.DupCreates(); got != 31 {
		t.Errorf("DupCreates = %d, want 31 (every provider, shipping included)", got)
	}
	if got := o.AnswersLost(); got != 5 {
		t.Errorf("AnswersLost = %d, want 5", got)
	}
	if got := o.ShippingDups(); got != 8 {
		t.Errorf("ShippingDups = %d, want 8", got)
	}
}

func TestMetricSum(t *testing.T) {
	text := `# HELP orderflow_reconcile_lookups_total Look-ups.
# TYPE orderflow_reconcile_lookups_total counter
orderflow_reconcile_lookups_total{outcome="found",step="shipping"} 3
orderflow_reconcile_lookups_total{outcome="not_found",step="email"} 2
orderflow_reconcile_lookups_totally 100
orderflow_orders_inflight 7
`
	if got := metricSum(text, "orderflow_reconcile_lookups_total"); got != 5 {
		t.Errorf("labelled sum = %v, want 5", got)
	}
	if got := metricSum(text, "orderflow_orders_inflight"); got != 7 {
		t.Errorf("unlabelled = %v, want 7", got)
	}
	if got := metricSum(text, "orderflow_missing"); got != 0 {
		t.Errorf("missing = %v, want 0", got)
	}
}
