package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/airtable"
	"github.com/orderflow/orderflow/integrations/mailgun"
	"github.com/orderflow/orderflow/integrations/netvisor"
	"github.com/orderflow/orderflow/integrations/postnord"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/integrations/stripe"
	"github.com/orderflow/orderflow/integrations/telegram"
	"github.com/orderflow/orderflow/integrations/zoho"
)

// configView is providerConfigs by provider, typed, for the assertions.
type configView struct {
	Stripe   stripe.Config
	Zoho     *zoho.Config
	Airtable *airtable.Config
	PostNord *postnord.Config
	Netvisor *netvisor.Config
	Mailgun  *mailgun.Config
	Telegram *telegram.Config
	LabelDir string
}

func view(c providerConfigs, err error) (configView, error) {
	if err != nil {
		return configView{}, err
	}
	v := configView{LabelDir: c.LabelDir}
	if s, ok := c.byName["stripe"].(*stripe.Config); ok {
		v.Stripe = *s
	}
	v.Zoho, _ = c.byName["zoho"].(*zoho.Config)
	v.Airtable, _ = c.byName["airtable"].(*airtable.Config)
	v.PostNord, _ = c.byName["postnord"].(*postnord.Config)
	v.Netvisor, _ = c.byName["netvisor"].(*netvisor.Config)
	v.Mailgun, _ = c.byName["mailgun"].(*mailgun.Config)
	v.Telegram, _ = c.byName["telegram"].(*telegram.Config)
	return v, nil
}

// parseProviderFlags parses args into providerFlags with secrets read from
// env (a map) instead of the process environment.
func parseProviderFlags(t *testing.T, env map[string]string, args ...string) *providerFlags {
	t.Helper()
	fs := newFlagSet("test", "test", io.Discard)
	var p providerFlags
	p.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	p.getenv = func(k string) string { return env[k] }
	return &p
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestProviderFlagsSimURLFillsEveryClient(t *testing.T) {
	const simURL = "http://127.0.0.1:8090"
	p := parseProviderFlags(t, nil, "--sim-url", simURL+"/", "--label-dir", t.TempDir())
	c, err := view(p.configs(discardLogger()))
	if err != nil {
		t.Fatalf("configs: %v", err)
	}
	urls := map[string]string{
		"stripe":        c.Stripe.BaseURL,
		"zoho api":      c.Zoho.APIBaseURL,
		"zoho accounts": c.Zoho.AccountsURL,
		"airtable":      c.Airtable.BaseURL,
		"postnord":      c.PostNord.BaseURL,
		"netvisor":      c.Netvisor.BaseURL,
		"mailgun":       c.Mailgun.BaseURL,
		"telegram":      c.Telegram.BaseURL,
	}
	for name, got := range urls {
		if got != simURL {
			t.Errorf("%s: base URL %q, want %q", name, got, simURL)
		}
	}
	creds := map[string]string{
		"stripe key":          c.Stripe.SecretKey,
		"zoho client id":      c.Zoho.ClientID,
		"zoho client secret":  c.Zoho.ClientSecret,
		"zoho refresh token":  c.Zoho.RefreshToken,
		"airtable token":      c.Airtable.Token,
		"airtable base":       c.Airtable.BaseID,
		"airtable table":      c.Airtable.Table,
		"postnord key":        c.PostNord.APIKey,
		"postnord customer":   c.PostNord.CustomerNumber,
		"postnord sender":     c.PostNord.Consignor.Name,
		"netvisor customer":   c.Netvisor.CustomerID,
		"netvisor key":        c.Netvisor.CustomerKey,
		"netvisor partner":    c.Netvisor.PartnerID,
		"netvisor partnerkey": c.Netvisor.PartnerKey,
		"mailgun key":         c.Mailgun.APIKey,
		"mailgun domain":      c.Mailgun.Domain,
		"telegram token":      c.Telegram.Token,
		"telegram chat":       c.Telegram.ChatID,
	}
	for name, v := range creds {
		if v == "" {
			t.Errorf("%s: empty with --sim-url", name)
		}
	}
	if !strings.HasPrefix(c.Stripe.SecretKey, "sk_test_") {
		t.Errorf("stripe key %q is not a test-mode key", c.Stripe.SecretKey)
	}

	prov, cleanup, err := p.build(context.Background(), discardLogger())
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	defer cleanup()
	if prov.Details == nil || prov.CRM == nil || prov.ProductionLog == nil || prov.Shipping == nil ||
		prov.Invoicing == nil || prov.Mailer == nil || prov.Alerter == nil {
		t.Fatalf("a provider is nil: %+v", prov)
	}
	if _, ok := prov.Alerter.(*telegram.Client); !ok {
		t.Errorf("alerter is %T, want the Telegram client pointed at the simulator", prov.Alerter)
	}
}

// TestProviderFlagsAgainstSimulator runs one call of every built client
// against the real simulator: the test credentials must pass its checks.
func TestProviderFlagsAgainstSimulator(t *testing.T) {
	s, err := sim.New(sim.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	defer s.Close()

	p := parseProviderFlags(t, nil, "--sim-url", srv.URL, "--label-dir", t.TempDir())
	prov, cleanup, err := p.build(context.Background(), discardLogger())
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o, err := prov.Details.OrderDetails(ctx, "pi_3QproviderFlagsTest0001")
	if err != nil {
		t.Fatalf("details: %v", err)
	}
	if _, err := prov.CRM.UpsertContactAndDeal(ctx, o); err != nil {
		t.Errorf("crm: %v", err)
	}
	if _, err := prov.ProductionLog.UpsertOrder(ctx, o, []string{"details", "crm"}); err != nil {
		t.Errorf("production log: %v", err)
	}
	ship, err := prov.Shipping.CreateShipment(ctx, o)
	if err != nil {
		t.Errorf("shipping: %v", err)
	}
	inv, err := prov.Invoicing.CreateInvoice(ctx, o, ship)
	if err != nil {
		t.Errorf("invoice: %v", err)
	}
	if _, err := prov.Mailer.SendConfirmation(ctx, o, ship, inv); err != nil {
		t.Errorf("email: %v", err)
	}
	if err := prov.Alerter.Alert(ctx, integrations.Alert{OrderID: o.ID, Step: "shipping", Text: "test alert"}); err != nil {
		t.Errorf("alert: %v", err)
	}
	cleanup() // flushes the alert batch

	st := s.Stats().Steps
	for _, step := range []string{sim.StepStripe, sim.StepCRM, sim.StepProductionLog, sim.StepShipping, sim.StepInvoice, sim.StepEmail, sim.StepAlert} {
		if st[step].Requests == 0 {
			t.Errorf("simulator saw no %s request", step)
		}
	}
	for _, step := range []string{sim.StepShipping, sim.StepInvoice, sim.StepEmail} {
		if st[step].Created != 1 {
			t.Errorf("%s: created %d, want 1", step, st[step].Created)
		}
	}
}

// realEnv is a complete set of provider secrets in the environment.
var realEnv = map[string]string{
	envStripeKey:        "sk_test_realkey",
	envZohoClientSecret: "zoho-secret-value",
	envZohoRefreshToken: "1000.refresh-value",
	envAirtableToken:    "patRealToken",
	envPostNordAPIKey:   "0123456789abcdef0123456789abcdef",
	envNetvisorCustKey:  "nv-customer-key-value",
	envNetvisorPartKey:  "nv-partner-key-value",
	envMailgunKey:       "key-mailgun-value",
}

// realArgs are the non-secret settings of every provider.
var realArgs = []string{
	"--zoho-client-id", "1000.CLIENT",
	"--airtable-base-id", "appBASE", "--airtable-table", "tblORDERS",
	"--postnord-customer-number", "1234567890", "--postnord-sender-name", "Shop AB",
	"--postnord-sender-postal-code", "11122", "--postnord-sender-city", "Stockholm", "--postnord-sender-country", "se",
	"--netvisor-customer-id", "CUST", "--netvisor-partner-id", "PART", "--netvisor-organisation-id", "1234567-8",
	"--netvisor-customer", "7", "--netvisor-product", "8",
	"--mailgun-domain", "mg.shop.example",
}

func without(m map[string]string, key string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

func withoutFlag(args []string, flagName string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == flagName {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

func TestProviderFlagsMissingSettings(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		// want are the flags the error must name; notWant must not appear.
		want    []string
		notWant []string
	}{
		{
			name: "no stripe key",
			env:  without(realEnv, envStripeKey), args: realArgs,
			want: []string{"--stripe-secret-key-file", envStripeKey},
		},
		{
			name: "no zoho client id",
			env:  realEnv, args: withoutFlag(realArgs, "--zoho-client-id"),
			want: []string{"--zoho-client-id"}, notWant: []string{"stripe"},
		},
		{
			name: "no postnord key nor sender",
			env:  without(realEnv, envPostNordAPIKey), args: withoutFlag(realArgs, "--postnord-sender-city"),
			want: []string{"--postnord-api-key-file", envPostNordAPIKey, "--postnord-sender-city"},
		},
		{
			name: "netvisor partner key",
			env:  without(realEnv, envNetvisorPartKey), args: realArgs,
			want: []string{"--netvisor-partner-key-file"},
		},
		{
			name: "mailgun domain",
			env:  realEnv, args: withoutFlag(realArgs, "--mailgun-domain"),
			want: []string{"--mailgun-domain"},
		},
		{
			name: "only the steps that are on need settings",
			env:  map[string]string{envStripeKey: "sk_test_x"},
			args: []string{"--steps", "details,crm"},
			want: []string{"--zoho-client-id", "--zoho-client-secret-file", "--zoho-refresh-token-file"},
			// Airtable, PostNord, Netvisor, Mailgun are off.
			notWant: []string{"airtable", "postnord", "netvisor", "mailgun", "stripe"},
		},
		{
			name: "telegram token without chat",
			env:  map[string]string{envStripeKey: "sk_test_x", envTelegramToken: "123:abc"},
			args: []string{"--steps", "details"},
			want: []string{"--telegram-chat-id"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--label-dir", t.TempDir()}, tt.args...)
			p := parseProviderFlags(t, tt.env, args...)
			_, _, err := p.build(context.Background(), discardLogger())
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v (%T), want a usage error", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
			for _, nw := range tt.notWant {
				if strings.Contains(err.Error(), nw) {
					t.Errorf("error %q names %s, which is not missing", err, nw)
				}
			}
			for _, secret := range tt.env {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q prints a secret", err)
				}
			}
		})
	}
}

func TestProviderFlagsRealSettings(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "stripe.key")
	if err := os.WriteFile(keyFile, []byte("sk_test_fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--label-dir", dir, "--stripe-secret-key-file", keyFile}, realArgs...)
	p := parseProviderFlags(t, realEnv, args...)
	c, err := view(p.configs(discardLogger()))
	if err != nil {
		t.Fatalf("configs: %v", err)
	}
	if c.Stripe.SecretKey != "sk_test_fromfile" {
		t.Errorf("stripe key from file = %q", c.Stripe.SecretKey)
	}
	if c.Stripe.BaseURL != "" || c.Zoho.APIBaseURL != "" || c.Mailgun.BaseURL != "" {
		t.Errorf("without --sim-url the clients' default URLs must apply, got %q %q %q", c.Stripe.BaseURL, c.Zoho.APIBaseURL, c.Mailgun.BaseURL)
	}
	if c.Zoho.ClientSecret != realEnv[envZohoClientSecret] || c.Netvisor.PartnerKey != realEnv[envNetvisorPartKey] {
		t.Errorf("secrets not read from the environment")
	}
	if c.PostNord.Consignor.CountryCode != "SE" {
		t.Errorf("sender country %q, want SE", c.PostNord.Consignor.CountryCode)
	}
	if c.Telegram != nil {
		t.Errorf("telegram configured without a token")
	}
	prov, cleanup, err := p.build(context.Background(), discardLogger())
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	defer cleanup()
	if prov.Alerter != nil {
		t.Errorf("alerter %T, want none without Telegram (the processor logs each alert)", prov.Alerter)
	}
}

func TestProviderFlagsExplicitWinsOverSim(t *testing.T) {
	p := parseProviderFlags(t, map[string]string{envStripeKey: "sk_test_real"},
		"--sim-url", "http://sim:8090", "--stripe-base-url", "https://api.stripe.com", "--airtable-table", "tblMine")
	c, err := view(p.configs(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Stripe.BaseURL != "https://api.stripe.com" || c.Stripe.SecretKey != "sk_test_real" {
		t.Errorf("stripe = %q %q, want the explicit settings", c.Stripe.BaseURL, c.Stripe.SecretKey)
	}
	if c.Airtable.Table != "tblMine" || c.Airtable.BaseURL != "http://sim:8090" {
		t.Errorf("airtable = %q %q", c.Airtable.Table, c.Airtable.BaseURL)
	}
}

func TestProviderFlagsBadValues(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown step", []string{"--sim-url", "http://x:1", "--steps", "details,fax"}, `unknown step "fax"`},
		{"bad sim url", []string{"--sim-url", "localhost:8090"}, "--sim-url"},
		{"missing secret file", []string{"--sim-url", "http://x:1", "--stripe-secret-key-file", "/nonexistent/key"}, "--stripe-secret-key-file"},
		{"bad issuer", []string{"--sim-url", "http://x:1", "--postnord-issuer-code", "Z99"}, "--postnord-*"},
		{"unknown zone", []string{"--sim-url", "http://x:1", "--time-zone", "Europe/Atlantis"}, `--time-zone "Europe/Atlantis": want an IANA zone name`},
		{"local zone", []string{"--sim-url", "http://x:1", "--time-zone", "Local"}, `--time-zone "Local"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parseProviderFlags(t, nil, append([]string{"--label-dir", t.TempDir()}, tt.args...)...)
			_, _, err := p.build(context.Background(), discardLogger())
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a usage error containing %q", err, tt.want)
			}
		})
	}
}

func TestProviderFlagsAirtableRate(t *testing.T) {
	dir := t.TempDir()
	simArgs := []string{"--label-dir", dir, "--sim-url", "http://sim:8090"}
	liveArgs := slices.Concat([]string{"--label-dir", dir}, realArgs)
	with := func(args []string, rate string) []string {
		return slices.Concat(args, []string{"--airtable-requests-per-second", rate})
	}
	tests := []struct {
		name    string
		args    []string
		rate    float64
		noLimit bool
	}{
		{"real Airtable: 5 per second", liveArgs, 5, false},
		{"real Airtable, limit off", with(liveArgs, "0"), 0, true},
		{"real Airtable, other limit", with(liveArgs, "2.5"), 2.5, false},
		{"simulator: no limit", simArgs, 5, true},
		{"simulator, limit given", with(simArgs, "5"), 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parseProviderFlags(t, realEnv, tt.args...)
			c, err := view(p.configs(discardLogger()))
			if err != nil {
				t.Fatal(err)
			}
			if c.Airtable.RequestsPerSecond != tt.rate || c.Airtable.NoRateLimit != tt.noLimit {
				t.Errorf("rate %v no limit %v, want %v %v", c.Airtable.RequestsPerSecond, c.Airtable.NoRateLimit, tt.rate, tt.noLimit)
			}
		})
	}
	var r rateFlag
	for _, bad := range []string{"-1", "fast", "Inf", "NaN"} {
		if err := r.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

func TestProviderFlagsNetvisorConcurrency(t *testing.T) {
	dir := t.TempDir()
	simArgs := []string{"--label-dir", dir, "--sim-url", "http://sim:8090"}
	liveArgs := slices.Concat([]string{"--label-dir", dir}, realArgs)
	with := func(args []string, n string) []string {
		return slices.Concat(args, []string{"--netvisor-max-concurrent", n})
	}
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"real Netvisor: default bound", liveArgs, netvisor.DefaultMaxConcurrent},
		{"real Netvisor, one at a time", with(liveArgs, "1"), 1},
		{"real Netvisor, no bound", with(liveArgs, "0"), -1},
		{"simulator: no bound", simArgs, -1},
		{"simulator, bound given", with(simArgs, "2"), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parseProviderFlags(t, realEnv, tt.args...)
			c, err := view(p.configs(discardLogger()))
			if err != nil {
				t.Fatal(err)
			}
			if c.Netvisor.MaxConcurrent != tt.want {
				t.Errorf("MaxConcurrent %d, want %d", c.Netvisor.MaxConcurrent, tt.want)
			}
		})
	}
}

// The money settings reach the clients: the CRM's currency booking, the
// invoice's VAT codes, the production log's failure field.
func TestProviderFlagsMoneySettings(t *testing.T) {
	dir := t.TempDir()
	args := append([]string{"--label-dir", dir, "--zoho-currency-mode", "home", "--zoho-home-currency", "SEK",
		"--netvisor-reverse-charge-vat-code", "EUPM309", "--netvisor-export-vat-code", "MUUL", "--netvisor-foreign-tax-vat-code", "MUUL",
		"--netvisor-foreign-tax-product", "1700", "--airtable-failure-field", "Failure"}, realArgs...)
	p := parseProviderFlags(t, realEnv, args...)
	c, err := view(p.configs(discardLogger()))
	if err != nil {
		t.Fatalf("configs: %v", err)
	}
	if c.Zoho.CurrencyMode != "home" || c.Zoho.HomeCurrency != "SEK" || c.Netvisor.ReverseChargeVATCode != "EUPM309" ||
		c.Netvisor.ExportVATCode != "MUUL" || c.Netvisor.ForeignTaxVATCode != "MUUL" || c.Netvisor.ForeignTaxProductIdentifier != "1700" || c.Airtable.Fields.Failure != "Failure" {
		t.Errorf("zoho %+v netvisor %q %q %q %q airtable %q", c.Zoho, c.Netvisor.ReverseChargeVATCode, c.Netvisor.ExportVATCode,
			c.Netvisor.ForeignTaxVATCode, c.Netvisor.ForeignTaxProductIdentifier, c.Airtable.Fields.Failure)
	}
	// A mode the client does not know is a usage error naming it.
	p = parseProviderFlags(t, realEnv, append([]string{"--label-dir", dir, "--zoho-currency-mode", "guess", "--netvisor-export-vat-code", "EUPM", "--netvisor-foreign-tax-vat-code", "TAX"}, realArgs...)...)
	_, _, err = p.build(context.Background(), discardLogger())
	if err == nil || !strings.Contains(err.Error(), `currency mode "guess"`) || !strings.Contains(err.Error(), `ExportVATCode "EUPM"`) || !strings.Contains(err.Error(), `ForeignTaxVATCode "TAX"`) {
		t.Fatalf("build = %v", err)
	}
}

// --time-zone is the one zone of the dates every provider gets: the
// invoice's, the deal's closing date and the production log's order date.
func TestProviderFlagsTimeZone(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "Europe/Helsinki"},
		{[]string{"--time-zone", "America/New_York"}, "America/New_York"},
		{[]string{"--time-zone", "UTC"}, "UTC"},
	} {
		p := parseProviderFlags(t, nil, append([]string{"--sim-url", "http://x:1", "--label-dir", t.TempDir()}, tt.args...)...)
		c, err := view(p.configs(discardLogger()))
		if err != nil {
			t.Fatal(err)
		}
		for name, loc := range map[string]*time.Location{"netvisor": c.Netvisor.Location, "zoho": c.Zoho.Location, "airtable": c.Airtable.Location} {
			if loc == nil || loc.String() != tt.want {
				t.Errorf("%v: %s zone %v, want %s", tt.args, name, loc, tt.want)
			}
		}
	}
}

// Every provider client's request timeout is --step-timeout: a client's
// own shorter default (Airtable's 10 s, Zoho's and Mailgun's 15 s) would
// cut a call the README says --step-timeout bounds.
func TestProviderCallsBoundedByStepTimeout(t *testing.T) {
	for _, stepTimeout := range []time.Duration{0, 60 * time.Second} {
		p := parseProviderFlags(t, nil, "--sim-url", "http://127.0.0.1:8090", "--label-dir", t.TempDir())
		p.stepTimeout = stepTimeout
		c, err := view(p.configs(discardLogger()))
		if err != nil {
			t.Fatal(err)
		}
		want := stepTimeout
		if want == 0 {
			want = 30 * time.Second // the processor's default --step-timeout
		}
		for name, got := range map[string]time.Duration{
			"zoho": c.Zoho.Timeout, "airtable": c.Airtable.Timeout, "postnord": c.PostNord.Timeout,
			"netvisor": c.Netvisor.Timeout, "mailgun": c.Mailgun.Timeout,
		} {
			if got != want {
				t.Errorf("--step-timeout %v: %s timeout %v, want %v", stepTimeout, name, got, want)
			}
		}
	}
}
