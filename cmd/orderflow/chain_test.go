package main

import (
	"bytes"
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/processor"
)

// An invalid chain is refused at start, before any connection, with a
// one-line reason and exit code 2. The runs name a broker nothing listens
// on: one that got past its refusal would start a real processor.
func TestProcessorRefusesInvalidChain(t *testing.T) {
	tests := []struct{ steps, want string }{
		{"details,crm,klaviyo", `--steps: unknown step "klaviyo"`},
		{"details,invoice,shipping,email", `--steps: step "invoice" reads "shipping", which comes after it`},
		{"details,crm,shipping,crm", `--steps: step "crm" listed twice`},
		{"details,webhook:erp,webhook:erp", `--steps: step "webhook:erp" listed twice`},
		{"crm,details", "details must come first"},
		{"details,shipping=ups", `unknown provider "ups" for shipping (providers: postnord`},
		{"details,webhook:e r p", "webhook: name"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"processor", "--brokers", refusedBrokers, "--timeout", "1s", "--sim-url", "http://127.0.0.1:9", "--metrics-addr", "", "--steps", tt.steps}, &stdout, &stderr)
		out := stderr.String()
		if code != 2 || !strings.Contains(out, tt.want) || strings.Count(out, "\n") != 1 {
			t.Errorf("--steps %s: exit %d, stderr %q; want 2 and one line with %q", tt.steps, code, out, tt.want)
		}
	}
	gates := []struct{ steps, gate, want string }{
		{"details,webhook:wms,shipping", "erp", "--webhook-gate erp: --steps has no step webhook:erp"},
		{"details,shipping,webhook:wms", "wms", "--webhook-gate wms: no step comes after webhook:wms in --steps, so none would wait for it"},
		{"details,shipping,invoice", "shipping", "--webhook-gate shipping: --steps has no step webhook:shipping"},
	}
	for _, tt := range gates {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"processor", "--brokers", refusedBrokers, "--timeout", "1s", "--sim-url", "http://127.0.0.1:9", "--metrics-addr", "", "--steps", tt.steps, "--webhook-gate", tt.gate}, &stdout, &stderr)
		out := stderr.String()
		if code != 2 || !strings.Contains(out, tt.want) || strings.Count(out, "\n") != 1 {
			t.Errorf("--steps %s: exit %d, stderr %q; want 2 and one line with %q", tt.steps, code, out, tt.want)
		}
	}
	// A webhook's URL or secret for a name --steps does not list is a typo:
	// the step it was meant for would go without it.
	stray := []struct {
		args []string
		want string
	}{
		{[]string{"--webhook", "epr=https://erp.shop.example/hooks"}, "--webhook epr: --steps has no step webhook:epr"},
		{[]string{"--webhook", "erp=https://erp.shop.example/hooks", "--webhook-step-secret-file", "wms=/run/secrets/wms"}, "--webhook-step-secret-file wms: --steps has no step webhook:wms"},
		{[]string{"--webhook", "erp=https://erp.shop.example/hooks", "--webhook-secret-file", "wms=/run/secrets/wms"}, "--webhook-step-secret-file wms: --steps has no step webhook:wms"},
		{[]string{"--webhook", "webhook:epr=https://erp.shop.example/hooks"}, "--webhook epr: --steps has no step webhook:epr"},
	}
	for _, tt := range stray {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"processor", "--brokers", refusedBrokers, "--timeout", "1s", "--sim-url", "http://127.0.0.1:9", "--metrics-addr", "", "--steps", "details,webhook:erp"}, tt.args...), &stdout, &stderr)
		out := stderr.String()
		if code != 2 || !strings.Contains(out, tt.want) || strings.Count(out, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line with %q", tt.args, code, out, tt.want)
		}
	}
}

// --steps sets the chain: order, providers and webhook steps, each webhook
// reading the steps before it; details is added first when left out.
func TestChainFromSteps(t *testing.T) {
	p := providerFlags{simURL: "http://127.0.0.1:9", steps: "shipping=postnord,invoice,webhook:erp,email,crm", labelDir: t.TempDir(),
		getenv: func(string) string { return "" }}
	prov, cleanup, err := p.build(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	var names []string
	var reads [][]string
	for _, s := range prov.Chain {
		names = append(names, s.Name())
		reads = append(reads, s.Reads())
	}
	want := []string{"details", "shipping", "invoice", "webhook:erp", "email", "crm"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("chain %v, want %v", names, want)
	}
	if got := strings.Join(reads[3], ","); got != "details,shipping,invoice" {
		t.Errorf("webhook:erp reads %s, want details,shipping,invoice", got)
	}
	if prov.ProductionLog != nil {
		t.Error("production_log built though left out")
	}
	if err := processor.ValidateChain(prov.Chain); err != nil {
		t.Error(err)
	}
}

// --webhook-gate marks the webhook step as a gate: the steps after it wait
// for it; the others stay as they are.
func TestChainWebhookGate(t *testing.T) {
	p := providerFlags{simURL: "http://127.0.0.1:9", steps: "details,webhook:wms,shipping,invoice,email,webhook:erp", labelDir: t.TempDir(),
		getenv: func(string) string { return "" }, webhooks: webhookFlags{gates: listFlag{"wms"}}}
	prov, cleanup, err := p.build(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	gate := map[string]bool{}
	for _, s := range prov.Chain {
		g, ok := s.(processor.Gate)
		gate[s.Name()] = ok && g.Gate()
	}
	want := map[string]bool{"details": false, "webhook:wms": true, "shipping": false, "invoice": false, "email": false, "webhook:erp": false}
	if !maps.Equal(gate, want) {
		t.Errorf("gates %v, want %v", gate, want)
	}
}
