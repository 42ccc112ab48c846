package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/processor"
)

// Every provider registers only flags of its own prefix, and the registry
// is in chain order with the alert channels last.
func TestProviderRegistry(t *testing.T) {
	var names []string
	for _, pr := range newProviders() {
		names = append(names, pr.name())
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		pr.register(fs)
		n := 0
		fs.VisitAll(func(f *flag.Flag) {
			n++
			if !strings.HasPrefix(f.Name, pr.name()+"-") {
				t.Errorf("provider %s registers --%s, outside --%s-*", pr.name(), f.Name, pr.name())
			}
		})
		if n == 0 {
			t.Errorf("provider %s registers no flags", pr.name())
		}
	}
	// The defaults of the built-in chain and the alert channels, in this
	// order; an alternative provider (a second shipping provider, say) may
	// sit among them, so a new provider needs no edit here.
	want := []string{"stripe", "zoho", "airtable", "postnord", "netvisor", "mailgun", "slack", "telegram"}
	var got []string
	for _, n := range names {
		if slices.Contains(want, n) {
			got = append(got, n)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("providers %v, want %v among them in this order", names, want)
	}
	// Chain order, by name within a step, alert channels last.
	ps := newProviders()
	pos := func(p provider) int {
		if i := slices.Index(processor.Chain, p.step()); i >= 0 {
			return i
		}
		return len(processor.Chain)
	}
	for i := 1; i < len(ps); i++ {
		a, b := ps[i-1], ps[i]
		if pos(a) > pos(b) || pos(a) == pos(b) && a.name() > b.name() {
			t.Errorf("provider %s (%q) before %s (%q): not in chain order, by name within a step", a.name(), a.step(), b.name(), b.step())
		}
	}
	// The default provider of each built-in step is its first.
	defaults := map[string]string{"details": "stripe", "crm": "zoho", "production_log": "airtable", "shipping": "postnord", "invoice": "netvisor", "email": "mailgun"}
	for step, prov := range defaults {
		if got := stepProviders()[step]; len(got) == 0 || got[0] != prov {
			t.Errorf("providers of %s %v, want %s first (the default)", step, got, prov)
		}
	}
}

// Bad values of several providers are all reported in one usage error,
// each naming its provider's flags; the missing settings are listed in
// chain order.
func TestProviderFlagsValidationErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{
			name: "bad values of three providers at once",
			args: []string{"--sim-url", "http://sim:1", "--netvisor-mac-algorithm", "MD5", "--telegram-chat-id", "shop-alerts", "--zoho-currency-mode", "guess"},
			want: []string{`currency mode "guess"`, "(flags --zoho-*)", "(flags --netvisor-*)", "telegram: ChatID must be a number or @channelusername (flags --telegram-*)"},
		},
		{
			name: "missing settings in chain order",
			env:  map[string]string{envStripeKey: "sk_test_x"},
			args: []string{"--steps", "email,crm"},
			want: []string{"--zoho-client-id, --zoho-client-secret-file (or " + envZohoClientSecret + "), --zoho-refresh-token-file (or " + envZohoRefreshToken + "), --mailgun-api-key-file (or " + envMailgunKey + "), --mailgun-domain; or run against the simulator with --sim-url"},
		},
		{
			name: "unreadable label folder",
			args: []string{"--sim-url", "http://sim:1", "--label-dir", "/dev/null/labels"},
			want: []string{"--label-dir: "},
		},
		{
			name: "unreadable telegram token file",
			env:  map[string]string{envStripeKey: "sk_test_x"},
			args: []string{"--steps", "details", "--telegram-token-file", "/nonexistent/token"},
			want: []string{"--telegram-token-file: "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !slices.Contains(args, "--label-dir") {
				args = append([]string{"--label-dir", t.TempDir()}, args...)
			}
			p := parseProviderFlags(t, tt.env, args...)
			_, _, err := p.build(context.Background(), discardLogger())
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v (%T), want a usage error", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// A bad value in a provider's flag is refused while parsing, naming it.
func TestProviderFlagsBadNumbers(t *testing.T) {
	for _, args := range [][]string{
		{"--airtable-requests-per-second", "-2"},
		{"--netvisor-max-concurrent", "many"},
	} {
		fs := newFlagSet("test", "test", io.Discard)
		var p providerFlags
		p.register(fs)
		err := parseFlags(fs, args)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), args[0][1:]) {
			t.Errorf("%v: err = %v, want a usage error naming %s", args, err, args[0])
		}
	}
}

// The limits' defaults: the real providers' numbers, none against a
// simulator that enforces none, the real ones again when it does.
func TestProviderLimitDefaults(t *testing.T) {
	dir := t.TempDir()
	live := append([]string{"--label-dir", dir}, realArgs...)
	tests := []struct {
		name          string
		args          []string
		zoho          int
		airtableLimit bool
		netvisor      int
	}{
		{"real providers", live, 10, true, 4},
		{"simulator", []string{"--label-dir", dir, "--sim-url", "http://sim:1"}, 0, false, -1},
		{"simulator enforcing limits", []string{"--label-dir", dir, "--sim-url", "http://sim:1", "--sim-enforces-limits"}, 10, true, 4},
		{"set", append(live, "--zoho-max-concurrent", "25"), 25, true, 4},
		{"off", append(live, "--zoho-max-concurrent", "0"), 0, true, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parseProviderFlags(t, realEnv, tt.args...)
			c, err := view(p.configs(discardLogger()))
			if err != nil {
				t.Fatal(err)
			}
			if got := providerOf[*zohoProvider](p).conc; got != tt.zoho {
				t.Errorf("zoho concurrency %d, want %d", got, tt.zoho)
			}
			if c.Airtable.NoRateLimit == tt.airtableLimit {
				t.Errorf("airtable NoRateLimit %v", c.Airtable.NoRateLimit)
			}
			if c.Netvisor.MaxConcurrent != tt.netvisor {
				t.Errorf("netvisor MaxConcurrent %d, want %d", c.Netvisor.MaxConcurrent, tt.netvisor)
			}
		})
	}
}
