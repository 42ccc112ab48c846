package main

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/integrations/slack"
	"github.com/orderflow/orderflow/integrations/telegram"
)

const testSlackURL = "https://hooks.slack.com/services/T0SHOP/B0OPS/secretTOKEN123"

func TestSlackSettings(t *testing.T) {
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "slack-url")
	if err := os.WriteFile(urlFile, []byte(testSlackURL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notURL := filepath.Join(dir, "not-a-url")
	if err := os.WriteFile(notURL, []byte("hooks.slack.com/services/T0SHOP/B0OPS/secretTOKEN123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--label-dir", dir, "--steps", "details"}
	stripeEnv := map[string]string{envStripeKey: "sk_test_x"}
	withEnv := map[string]string{envStripeKey: "sk_test_x", envSlackWebhookURL: testSlackURL}

	t.Run("from the environment: the only alerter", func(t *testing.T) {
		p := parseProviderFlags(t, withEnv, base...)
		prov, cleanup, err := p.build(context.Background(), discardLogger())
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		if _, ok := prov.Alerter.(*slack.Client); !ok {
			t.Fatalf("alerter %T, want the Slack client", prov.Alerter)
		}
	})
	t.Run("from a file, beside Telegram", func(t *testing.T) {
		p := parseProviderFlags(t, map[string]string{envStripeKey: "sk_test_x", envTelegramToken: "123:abc"},
			append(base, "--slack-webhook-url-file", urlFile, "--telegram-chat-id", "-100123")...)
		prov, cleanup, err := p.build(context.Background(), discardLogger())
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		f, ok := prov.Alerter.(fanoutAlerter)
		if !ok || len(f) != 2 {
			t.Fatalf("alerter %T %v, want both channels", prov.Alerter, prov.Alerter)
		}
		if _, ok := f[0].Alerter.(*slack.Client); !ok {
			t.Errorf("first channel %T, want Slack", f[0].Alerter)
		}
		if _, ok := f[1].Alerter.(*telegram.Client); !ok {
			t.Errorf("second channel %T, want Telegram", f[1].Alerter)
		}
	})
	t.Run("off with --sim-url unless given", func(t *testing.T) {
		p := parseProviderFlags(t, nil, "--label-dir", dir, "--sim-url", "http://sim:1")
		prov, cleanup, err := p.build(context.Background(), discardLogger())
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		if _, ok := prov.Alerter.(*telegram.Client); !ok {
			t.Fatalf("alerter %T, want Telegram only", prov.Alerter)
		}
	})
	bad := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"the URL given as the flag", stripeEnv, append(base, "--slack-webhook-url-file", testSlackURL), "takes the path of a file"},
		{"unreadable file", stripeEnv, append(base, "--slack-webhook-url-file", filepath.Join(dir, "missing")), "--slack-webhook-url-file: read secret"},
		{"not an http URL", stripeEnv, append(base, "--slack-webhook-url-file", notURL), "slack: WebhookURL must be an absolute http(s) URL (https://hooks.slack.com/services/…) (flags --slack-*)"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			p := parseProviderFlags(t, tt.env, tt.args...)
			_, _, err := p.build(context.Background(), discardLogger())
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a usage error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secretTOKEN123") {
				t.Errorf("error %q shows the webhook URL", err)
			}
		})
	}
}

// End to end through the simulator with the providers' limits enforced:
// the wiring's alerter sends a burst to both Slack and Telegram, batched
// within their limits (no 429), and every order id reaches Slack.
func TestSlackAndTelegramAgainstSimulator(t *testing.T) {
	dataDir := t.TempDir()
	s, err := sim.New(sim.Config{DataDir: dataDir, EnforceLimits: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	defer s.Close()

	urlFile := filepath.Join(t.TempDir(), "slack-url")
	if err := os.WriteFile(urlFile, []byte(srv.URL+"/services/T0SHOP/B0OPS/abcDEF123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := parseProviderFlags(t, nil, "--sim-url", srv.URL, "--label-dir", t.TempDir(), "--slack-webhook-url-file", urlFile)
	prov, cleanup, err := p.build(context.Background(), discardLogger())
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	const n = 30
	for i := range n {
		a := integrations.Alert{OrderID: fmt.Sprintf("pi_3Qslack%04d", i), Step: "shipping", Text: "dead-lettered: <!channel> label refused"}
		if err := prov.Alerter.Alert(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	cleanup() // flushes both batches

	st := s.Stats().Steps
	for _, step := range []string{sim.StepSlack, sim.StepAlert} {
		if st[step].Created == 0 || st[step].RejectedRateLimited != 0 {
			t.Errorf("%s: %+v, want messages and no 429", step, st[step])
		}
	}
	files, err := filepath.Glob(filepath.Join(dataDir, "outbox", sim.StepSlack, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Slack message in the outbox (%v)", err)
	}
	var all strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	text := all.String()
	if !strings.Contains(text, "*orderflow: 30 alerts*") {
		t.Errorf("Slack text lacks the batch count: %q", text)
	}
	if !strings.Contains(text, "&lt;!channel&gt;") || strings.Contains(text, "<!channel>") {
		t.Errorf("Slack text does not escape the mention: %q", text)
	}
	// Orders by their OF- numbers (pi_3Qslack0000 is OF-QSLACK0000).
	for _, id := range []string{"OF-QSLACK0000", "OF-QSLACK0009"} {
		if !strings.Contains(text, id) {
			t.Errorf("Slack text lacks %s", id)
		}
	}
}
