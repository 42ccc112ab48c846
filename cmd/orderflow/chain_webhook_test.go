package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Secrets of 24 and 32 bytes in the Standard Webhooks form.
const (
	hookSecretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	hookSecretB = "whsec_7u4nG1Wq0cMCJ5b8v6m7vJ2vN1n3J8k0f1q2r3s4t5U="
)

// processorExit runs the processor with args (and the test's environment)
// against a simulator that is never called, and returns its exit code and
// stderr. Validation fails with 2 before any connection; a chain that
// passes it fails with 1 at Kafka (nothing listens on 127.0.0.1:9).
func processorExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	base := []string{"processor", "--brokers", "127.0.0.1:9", "--timeout", "100ms", "--sim-url", "http://127.0.0.1:9", "--metrics-addr", "", "--label-dir", t.TempDir()}
	code := run(context.Background(), append(base, args...), &stdout, &stderr)
	return code, stderr.String()
}

// webhookConfigs parses args as the processor does (flags and the
// environment), the built-in steps on a simulator, and returns the
// configurations.
func webhookConfigs(t *testing.T, env map[string]string, args ...string) (providerConfigs, error) {
	t.Helper()
	fs := newFlagSet("test", "test", io.Discard)
	var p providerFlags
	p.register(fs)
	if err := parseFlags(fs, append([]string{"--sim-url", "http://127.0.0.1:9"}, args...)); err != nil {
		return providerConfigs{}, err
	}
	p.getenv = func(k string) string { return env[k] }
	return p.configs(discardLogger())
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// --steps: spaces around '=' do not count, the webhook: prefix takes any
// case, and an unknown step is named as typed.
func TestStepsSpellings(t *testing.T) {
	chain, err := parseChain(" details , shipping = DHL ,Webhook:erp, WEBHOOK: wms ,invoice")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range chain {
		got = append(got, e.name+"/"+e.provider+"/"+e.webhook)
	}
	want := []string{"details/stripe/", "shipping/dhl/", "webhook:erp//erp", "webhook:wms//wms", "invoice/netvisor/"}
	if !slices.Equal(got, want) {
		t.Errorf("chain %v, want %v", got, want)
	}
	for _, tt := range []struct{ steps, want string }{
		{"details,Shiping", `--steps: unknown step "Shiping"`},
		{"details,webhooks:erp", `--steps: unknown step "webhooks:erp"`},
	} {
		if _, err := parseChain(tt.steps); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("--steps %s: %v, want %q", tt.steps, err, tt.want)
		}
	}
}

// --webhook and --webhook-step-secret-file take the webhook: prefix of
// --steps, as --webhook-gate does.
func TestWebhookFlagsTakeStepPrefix(t *testing.T) {
	secret := writeFile(t, "erp", hookSecretA+"\n")
	c, err := webhookConfigs(t, nil, "--steps", "details,webhook:erp,shipping", "--webhook-gate", "webhook:erp",
		"--webhook", "webhook:erp=https://erp.shop.example/hooks", "--webhook-step-secret-file", "Webhook:erp="+secret)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Webhooks) != 1 || c.Webhooks[0].URL != "https://erp.shop.example/hooks" || !slices.Equal(c.Webhooks[0].Secrets, []string{hookSecretA}) {
		t.Fatalf("webhooks %+v", c.Webhooks)
	}
}

// Two webhook names that map to one ORDERFLOW_WEBHOOK_<NAME>_* variable
// are refused at start: configured by environment both would post to one
// URL.
func TestWebhookNamesSharingVariablesRefused(t *testing.T) {
	for _, tt := range []struct{ steps, want string }{
		{"details,webhook:erp,webhook:ERP", "--steps: webhook:erp and webhook:ERP would share the variables ORDERFLOW_WEBHOOK_ERP_URL and ORDERFLOW_WEBHOOK_ERP_SECRET"},
		{"details,webhook:a-b,shipping,webhook:a_b", "--steps: webhook:a-b and webhook:a_b would share the variables ORDERFLOW_WEBHOOK_A_B_URL and ORDERFLOW_WEBHOOK_A_B_SECRET"},
	} {
		code, out := processorExit(t, "--steps", tt.steps)
		if code != 2 || !strings.Contains(out, tt.want) || strings.Count(out, "\n") != 1 {
			t.Errorf("--steps %s: exit %d, stderr %q; want 2 and one line with %q", tt.steps, code, out, tt.want)
		}
	}
}

// ORDERFLOW_WEBHOOK and ORDERFLOW_WEBHOOK_STEP_SECRET_FILE take a
// comma-separated list of <name>=<value> pairs; a value that cannot be
// split so is refused without showing it.
func TestWebhookEnvironmentLists(t *testing.T) {
	erp, wms := writeFile(t, "erp", hookSecretA), writeFile(t, "wms", hookSecretB)
	t.Setenv("ORDERFLOW_WEBHOOK", "erp=https://erp.shop.example/in, webhook:wms=https://wms.shop.example/in?a=1")
	t.Setenv("ORDERFLOW_WEBHOOK_STEP_SECRET_FILE", "erp="+erp+",wms="+wms)
	c, err := webhookConfigs(t, nil, "--steps", "details,webhook:erp,webhook:wms")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, w := range c.Webhooks {
		got[w.Name] = w.URL + " " + strings.Join(w.Secrets, " ")
	}
	want := map[string]string{"erp": "https://erp.shop.example/in " + hookSecretA, "wms": "https://wms.shop.example/in?a=1 " + hookSecretB}
	if len(got) != 2 || got["erp"] != want["erp"] || got["wms"] != want["wms"] {
		t.Errorf("webhooks %v, want %v", got, want)
	}

	t.Setenv("ORDERFLOW_WEBHOOK", "erp=https://erp.shop.example/in?ids=1,2")
	_, err = webhookConfigs(t, nil, "--steps", "details,webhook:erp")
	want2 := "part 2 of 2 is not <name>=<value> (a value holding a comma cannot be split"
	if err == nil || !strings.Contains(err.Error(), want2) || strings.Contains(err.Error(), "erp.shop.example") {
		t.Errorf("URL with a comma: %v, want %q", err, want2)
	}
	t.Setenv("ORDERFLOW_WEBHOOK", "erp=https://a.example/1,erp=https://a.example/2")
	if _, err = webhookConfigs(t, nil, "--steps", "details,webhook:erp"); err == nil || !strings.Contains(err.Error(), "webhook erp given twice") {
		t.Errorf("a name twice: %v", err)
	}
}

// An empty ORDERFLOW_WEBHOOK_GATE, ORDERFLOW_WEBHOOK or
// ORDERFLOW_WEBHOOK_STEP_SECRET_FILE (an unset template or ConfigMap value)
// is not set, as an empty ORDERFLOW_STEPS.
func TestEmptyWebhookVariablesAreUnset(t *testing.T) {
	for _, v := range []string{"ORDERFLOW_WEBHOOK_GATE", "ORDERFLOW_WEBHOOK", "ORDERFLOW_WEBHOOK_STEP_SECRET_FILE"} {
		t.Setenv(v, "")
	}
	c, err := webhookConfigs(t, nil, "--steps", "details,webhook:erp,shipping")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Webhooks) != 1 || c.Webhooks[0].URL != "http://127.0.0.1:9/webhooks/erp" {
		t.Errorf("webhooks %+v, want erp on the simulator", c.Webhooks)
	}
	if slices.ContainsFunc(c.Chain, func(e chainEntry) bool { return e.gate }) {
		t.Error("an empty ORDERFLOW_WEBHOOK_GATE made a gate")
	}
}

// ORDERFLOW_WEBHOOK_SECRET_FILE is the gateway's Stripe secret file: one
// environment serving the gateway and the processor does not stop the
// processor, which takes its webhook steps' secrets from
// --webhook-step-secret-file (the old flag name still works on the command
// line).
func TestGatewaySecretFileVariableLeftToGateway(t *testing.T) {
	stripe := writeFile(t, "stripe", "whsec_stripe0123456789abcdef\n")
	t.Setenv("ORDERFLOW_WEBHOOK_SECRET_FILE", stripe)
	code, out := processorExit(t, "--steps", "details,shipping")
	if code != 1 || strings.Contains(out, "ORDERFLOW_WEBHOOK_SECRET_FILE") {
		t.Errorf("exit %d, stderr %q; want 1 (at Kafka) without a word of ORDERFLOW_WEBHOOK_SECRET_FILE", code, out)
	}
	erp := writeFile(t, "erp", hookSecretB)
	c, err := webhookConfigs(t, nil, "--steps", "details,webhook:erp", "--webhook", "erp=https://erp.shop.example/in", "--webhook-secret-file", "erp="+erp)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Webhooks[0].Secrets, []string{hookSecretB}) {
		t.Errorf("secrets from the old flag name: %v", c.Webhooks[0].Secrets)
	}
}

// An empty or blank secret file is refused naming the file: with --sim-url
// it must not fall back to the simulator's public test secret.
func TestEmptyWebhookSecretFileRefused(t *testing.T) {
	for name, content := range map[string]string{"empty": "", "blank": " \n\n"} {
		f := writeFile(t, name, content)
		code, out := processorExit(t, "--steps", "details,webhook:erp", "--webhook", "erp=http://127.0.0.1:9/erp", "--webhook-step-secret-file", "erp="+f)
		want := "--webhook-step-secret-file erp: " + f + " is empty"
		if code != 2 || !strings.Contains(out, want) {
			t.Errorf("%s file: exit %d, stderr %q; want 2 and %q", name, code, out, want)
		}
	}
}

// A secret file may hold several secrets (a rotation), one per line or
// space-separated: the step signs with each.
func TestWebhookSecretRotation(t *testing.T) {
	for name, content := range map[string]string{"lines": hookSecretA + "\n" + hookSecretB + "\n", "spaces": hookSecretA + " " + hookSecretB} {
		f := writeFile(t, name, content)
		c, err := webhookConfigs(t, nil, "--steps", "details,webhook:erp", "--webhook", "erp=https://erp.shop.example/in", "--webhook-step-secret-file", "erp="+f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := c.Webhooks[0].Secrets; !slices.Equal(got, []string{hookSecretA, hookSecretB}) {
			t.Errorf("%s: secrets %v, want both", name, got)
		}
	}
	c, err := webhookConfigs(t, map[string]string{"ORDERFLOW_WEBHOOK_ERP_SECRET": hookSecretB + " " + hookSecretA}, "--steps", "details,webhook:erp", "--webhook", "erp=https://erp.shop.example/in")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Webhooks[0].Secrets; !slices.Equal(got, []string{hookSecretB, hookSecretA}) {
		t.Errorf("ORDERFLOW_WEBHOOK_ERP_SECRET: secrets %v, want both", got)
	}
}

// A webhook call is bounded by --step-timeout, as every provider call.
func TestWebhookTimeoutIsStepTimeout(t *testing.T) {
	fs := newFlagSet("processor", processorUsage, io.Discard)
	var f processorFlags
	f.register(fs)
	if err := f.parse(fs, []string{"--sim-url", "http://127.0.0.1:9", "--steps", "details,webhook:erp", "--step-timeout", "45s"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	f.providers.stepTimeout = cfg.StepTimeout
	c, err := f.providers.configs(discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Webhooks[0].Timeout; got != 45*time.Second {
		t.Errorf("webhook timeout %s, want 45s", got)
	}
	c, err = webhookConfigs(t, nil, "--steps", "details,webhook:erp")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Webhooks[0].Timeout; got != 30*time.Second {
		t.Errorf("webhook timeout without --step-timeout %s, want the default 30s", got)
	}
}
