package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/processor"
)

func emptyFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(p, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGatewayUsageErrors(t *testing.T) {
	t.Setenv("ORDERFLOW_WEBHOOK_SECRET", "")
	badSecretFile := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(badSecretFile, []byte("whsec_new\nsk_live_oops\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no secret", []string{"--brokers", "127.0.0.1:1"}, "no webhook signing secret (none given): set ORDERFLOW_WEBHOOK_SECRET, or give --webhook-secret-file FILE (secrets comma- or newline-separated), or --webhook-secret whsec_…"},
		{"empty secret file", []string{"--brokers", "127.0.0.1:1", "--webhook-secret-file", emptyFile(t)}, "holds none): set ORDERFLOW_WEBHOOK_SECRET, or give --webhook-secret-file"},
		{"bad log format", []string{"--webhook-secret", "whsec_x", "--log-format", "xml"}, "--log-format"},
		{"zero max body", []string{"--webhook-secret", "whsec_x", "--max-body", "0"}, "must be positive"},
		{"negative linger", []string{"--webhook-secret", "whsec_x", "--produce-linger", "-1ms"}, "--produce-linger must not be negative"},
		{"stray argument", []string{"--webhook-secret", "whsec_x", "extra"}, "unexpected argument"},
		{"missing secret file", []string{"--webhook-secret-file", "/nonexistent/secret"}, "--webhook-secret-file"},
		{"secret without whsec_", []string{"--webhook-secret", "sk_live_oops"}, "--webhook-secret (or ORDERFLOW_WEBHOOK_SECRET): the secret does not start with whsec_: Stripe endpoint signing secrets start with whsec_"},
		{"second secret without whsec_", []string{"--webhook-secret", "whsec_old,sk_live_oops"}, "--webhook-secret (or ORDERFLOW_WEBHOOK_SECRET): secret 2 of 2 does not start with whsec_: Stripe endpoint signing secrets start with whsec_"},
		{"secret file with a secret without whsec_", []string{"--webhook-secret", "whsec_old", "--webhook-secret-file", badSecretFile}, "--webhook-secret-file " + badSecretFile + ": secret 2 of 2 does not start with whsec_"},
		{"mistyped event types", []string{"--webhook-secret", "whsec_x", "--event-types", "payment_intent.succeded,checkout.session.complete"},
			`--event-types: the processor does not handle "payment_intent.succeded", "checkout.session.complete"; it handles payment_intent.succeeded,checkout.session.completed,checkout.session.async_payment_succeeded,checkout.session.async_payment_failed,charge.refunded,charge.refund.updated,payment_intent.canceled,charge.dispute.created`},
		{"event type the processor does not act on", []string{"--webhook-secret", "whsec_x", "--event-types", "payment_intent.succeeded, customer.created"}, `--event-types: the processor does not handle "customer.created"; it handles payment_intent.succeeded,`},
		{"bad redis CA", []string{"--webhook-secret", "whsec_x", "--brokers", "127.0.0.1:1", "--redis-addr", "127.0.0.1:1", "--redis-tls-ca", "/nonexistent/ca.pem"}, "--redis-tls-ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runGateway(context.Background(), tt.args, io.Discard, io.Discard)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want a usage error containing %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "sk_live_oops") {
				t.Errorf("err %v shows the secret", err)
			}
		})
	}
}

// TestGatewayEventTypes: --event-types takes the types the processor acts
// on, and an empty value is the whole list.
func TestGatewayEventTypes(t *testing.T) {
	all := []string{
		processor.EventPaymentSucceeded, processor.EventCheckoutCompleted, processor.EventAsyncPaymentSucceded, processor.EventAsyncPaymentFailed,
		processor.EventChargeRefunded, processor.EventRefundUpdated, processor.EventPaymentCanceled, processor.EventDisputeCreated,
	}
	if !slices.Equal(gateway.DefaultEventTypes, all) {
		t.Errorf("gateway.DefaultEventTypes %q, want the processor's types %q", gateway.DefaultEventTypes, all)
	}
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"", all},
		{" , ", all},
		{"payment_intent.succeeded, charge.refunded", []string{"payment_intent.succeeded", "charge.refunded"}},
	} {
		if got, err := gatewayEventTypes(tt.in); err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("gatewayEventTypes(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestGatewayServesAndShutsDown runs the command on an in-process Kafka,
// queues one event and checks that cancelling the context (SIGTERM) stops it
// cleanly.
func TestGatewayServesAndShutsDown(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "cmdtest.orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	// The new secret comes from a file (one per line), the old one from the
	// flag: both are accepted.
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("whsec_new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- runGateway(ctx, []string{
			"--brokers", strings.Join(cluster.ListenAddrs(), ","),
			"--topic-prefix", "cmdtest.",
			"--webhook-secret", "whsec_old",
			"--webhook-secret-file", secretFile,
			"--http-addr", "127.0.0.1:0",
			"--metrics-addr", "",
			"--log-format", "json",
			"--event-types", "", // the defaults, logged as such
		}, &stdout, &stderr)
	}()
	var addr string
	deadline := time.Now().Add(10 * time.Second)
	for addr == "" {
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not start; stderr: %s", stderr.String())
		}
		if out := stdout.String(); strings.HasPrefix(out, "gateway listening on ") {
			addr = strings.TrimSpace(strings.TrimPrefix(out, "gateway listening on "))
		}
		time.Sleep(10 * time.Millisecond)
	}

	body, err := os.ReadFile("../../gateway/testdata/payment_intent.succeeded.json")
	if err != nil {
		t.Fatal(err)
	}
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_new"})
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Stripe-Signature", sig.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != "queued\n" {
		t.Fatalf("got %d %q, want 200 queued", resp.StatusCode, got)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gateway exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not stop after cancellation")
	}
	logs := stderr.String()
	if want := `"event_types":["payment_intent.succeeded","checkout.session.completed","checkout.session.async_payment_succeeded","checkout.session.async_payment_failed","charge.refunded","charge.refund.updated","payment_intent.canceled","charge.dispute.created"]`; !strings.Contains(logs, want) {
		t.Errorf("start-up log lacks %s: %s", want, logs)
	}
	if !strings.Contains(logs, `"gateway stopped"`) || strings.Contains(logs, "whsec_") || strings.Contains(logs, "aino@example.com") {
		t.Errorf("logs: %s", logs)
	}
}
