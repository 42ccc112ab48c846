package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/integrations/stripe"
	"github.com/orderflow/orderflow/topics"
)

// fakeProducer records what the gateway produces and acknowledges it.
type fakeProducer struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

func (p *fakeProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	p.recs = append(p.recs, r)
	p.mu.Unlock()
	promise(r, nil)
}

func (p *fakeProducer) Ping(context.Context) error { return nil }

const testSecret = "whsec_sendtest"

// startGateway serves the real gateway handler with a fake producer.
func startGateway(t *testing.T) (*httptest.Server, *fakeProducer) {
	t.Helper()
	prod := &fakeProducer{}
	gw, err := gateway.New(gateway.Config{Topic: "orders", Secrets: []string{testSecret}}, prod,
		gateway.NewMemoryDeduper(0), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	return srv, prod
}

func TestSendTestEventsThroughGateway(t *testing.T) {
	srv, prod := startGateway(t)
	var out bytes.Buffer
	sum, err := sendTestEvents(context.Background(), testEventOptions{
		URL: srv.URL + gateway.WebhookPath, Secret: testSecret, Type: typeCheckout,
		Count: 40, Duplicates: 0.3, Seed: 7,
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed != 0 {
		t.Fatalf("%d events failed:\n%s", sum.Failed, out.String())
	}
	if len(sum.Orders) != 40 || sum.Sent != 80+sum.Duplicates || sum.Duplicates == 0 {
		t.Fatalf("summary %+v: want 40 orders, 80 events plus duplicates, some duplicates", sum)
	}
	if got := sum.Answers["200 duplicate"]; got != sum.Duplicates {
		t.Errorf("gateway answered duplicate %d times, want %d (answers %v)", got, sum.Duplicates, sum.Answers)
	}
	if !strings.Contains(out.String(), "sent ") || !strings.Contains(out.String(), "→ 200 queued") {
		t.Errorf("output lacks per-event answers or the summary:\n%s", out.String())
	}

	// Every order queued both event types, keyed by its PaymentIntent, and
	// neither type always comes first.
	types := map[string][]string{}
	for _, r := range prod.recs {
		env, err := topics.DecodeEnvelope(r.Value)
		if err != nil {
			t.Fatalf("record value: %v", err)
		}
		if env.Key != string(r.Key) {
			t.Errorf("envelope key %q, record key %q", env.Key, r.Key)
		}
		types[string(r.Key)] = append(types[string(r.Key)], env.EventType)
	}
	firstSession := 0
	for _, id := range sum.Orders {
		got := types[id]
		if len(got) != 2 || got[0] == got[1] {
			t.Errorf("order %s queued %v, want both event types once", id, got)
			continue
		}
		if got[0] == typeSessionCompleted {
			firstSession++
		}
	}
	if firstSession == 0 || firstSession == len(sum.Orders) {
		t.Errorf("checkout.session.completed came first in %d of %d orders; want a random order", firstSession, len(sum.Orders))
	}
}

func TestTestOrderEvents(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	currencies := map[string]bool{}
	nonLatin := false
	for range 200 {
		o := newTestOrder(rng, time.Now())
		if !strings.HasPrefix(o.PaymentIntentID, "pi_") || strings.TrimPrefix(o.CheckoutSessionID, "cs_test_") != strings.TrimPrefix(o.PaymentIntentID, "pi_") {
			t.Fatalf("ids %s %s do not share a suffix", o.PaymentIntentID, o.CheckoutSessionID)
		}
		if o.total != o.subtotal+o.ship || o.tax <= 0 || o.tax >= o.total {
			t.Fatalf("amounts: subtotal %d shipping %d tax %d total %d", o.subtotal, o.ship, o.tax, o.total)
		}
		evs := o.events(rng, typeCheckout)
		if len(evs) != 2 {
			t.Fatalf("checkout gives %d events", len(evs))
		}
		for _, ev := range evs {
			var e struct {
				ID   string `json:"id"`
				Type string `json:"type"`
				Data struct {
					Object struct {
						ID            string `json:"id"`
						PaymentIntent string `json:"payment_intent"`
						Currency      string `json:"currency"`
						AmountTotal   int64  `json:"amount_total"`
						Amount        int64  `json:"amount"`
						Shipping      struct {
							Name string `json:"name"`
						} `json:"shipping"`
						ShippingDetails struct {
							Name string `json:"name"`
						} `json:"shipping_details"`
					} `json:"object"`
				} `json:"data"`
			}
			if err := json.Unmarshal(ev.body, &e); err != nil {
				t.Fatal(err)
			}
			obj := e.Data.Object
			currencies[obj.Currency] = true
			name := obj.Shipping.Name + obj.ShippingDetails.Name
			for _, r := range name {
				if r > unicode.MaxLatin1 && !unicode.Is(unicode.Latin, r) {
					nonLatin = true
				}
			}
			switch e.Type {
			case typeSessionCompleted:
				if obj.ID != o.CheckoutSessionID || obj.PaymentIntent != o.PaymentIntentID || obj.AmountTotal != o.total {
					t.Fatalf("session event: %+v", obj)
				}
			case typePaymentIntentSucceeded:
				if obj.ID != o.PaymentIntentID || obj.Amount != o.total {
					t.Fatalf("payment intent event: %+v", obj)
				}
			default:
				t.Fatalf("type %q", e.Type)
			}
		}
		for _, typ := range []string{typeSessionCompleted, typePaymentIntentSucceeded} {
			if evs := o.events(rng, typ); len(evs) != 1 || evs[0].typ != typ {
				t.Fatalf("--type %s gives %v", typ, evs)
			}
		}
	}
	for _, c := range []string{"eur", "sek", "jpy"} {
		if !currencies[c] {
			t.Errorf("no order in %s", c)
		}
	}
	if !nonLatin {
		t.Error("no customer name in a non-Latin script")
	}
}

func TestSendTestEventCommand(t *testing.T) {
	srv, _ := startGateway(t)
	url := srv.URL + gateway.WebhookPath
	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, webhookSecretFile), []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ORDERFLOW_WEBHOOK_SECRET", "")
	tests := []struct {
		name     string
		args     []string
		env      string
		wantCode int
		wantOut  string
	}{
		{"secret from the dev data folder", []string{"--url", url, "--data-dir", dataDir}, "", 0, "2 events for 1 order (0 sent again): 2 × 200 queued"},
		{"secret flag", []string{"--url", url, "--secret", testSecret, "--data-dir", t.TempDir(), "--count", "2"}, "", 0, "4 × 200 queued"},
		{"secret from the environment", []string{"--url", url, "--data-dir", t.TempDir(), "--type", typePaymentIntentSucceeded}, testSecret, 0, "1 × 200 queued"},
		{"wrong secret: exit 1", []string{"--url", url, "--secret", "whsec_wrong"}, "", 1, "× 400"},
		{"no secret anywhere", []string{"--url", url, "--data-dir", t.TempDir()}, "", 2, ""},
		{"gateway unreachable", []string{"--url", "http://127.0.0.1:1/webhooks/stripe", "--secret", testSecret}, "", 1,
			"nothing reached the gateway at http://127.0.0.1:1/webhooks/stripe: is it running? Start it with 'make run'"},
		{"bad count", []string{"--count", "0", "--secret", testSecret}, "", 2, ""},
		{"bad duplicates", []string{"--duplicates", "1.5", "--secret", testSecret}, "", 2, ""},
		{"bad type", []string{"--type", "charge.refunded", "--secret", testSecret}, "", 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("ORDERFLOW_WEBHOOK_SECRET", tt.env)
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"send-test-event"}, tt.args...), &out, &errb)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.wantCode, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out.String())
			}
			// Only an order the gateway accepted is worth looking up.
			if hint := strings.Contains(out.String(), "orders show"); hint != (tt.wantCode == 0 && !strings.Contains(tt.name, "--count")) && tt.name != "secret flag" {
				t.Errorf("orders show hint %v, want it only after a fully accepted single order:\n%s", hint, out.String())
			}
		})
	}
}

func TestSendTestEventsStopsOnCancel(t *testing.T) {
	srv, _ := startGateway(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := sendTestEvents(ctx, testEventOptions{URL: srv.URL, Secret: testSecret, Type: typeCheckout, Count: 3}, io.Discard)
	if err == nil {
		t.Fatal("no error after cancel")
	}
}

// With a simulator to seed, the objects the events describe are what the
// simulator's Stripe serves: the real client reads the same customer,
// amounts and date as the events carry, and the amounts add up.
func TestSendTestEventsSeedTheSimulator(t *testing.T) {
	srv, prod := startGateway(t)
	s, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { simSrv.Close(); _ = s.Close() })
	sum, err := sendTestEvents(context.Background(), testEventOptions{URL: srv.URL + gateway.WebhookPath, Secret: testSecret,
		Type: typeCheckout, Count: 20, Seed: 11, SimURL: simSrv.URL, Quiet: true}, io.Discard)
	if err != nil || sum.Failed != 0 {
		t.Fatalf("send: %v (%d failed)", err, sum.Failed)
	}
	c, err := stripe.New(stripe.Config{BaseURL: simSrv.URL, SecretKey: simStripeKey})
	if err != nil {
		t.Fatal(err)
	}
	events := map[string]map[string]any{}
	for _, r := range prod.recs {
		env, _ := topics.DecodeEnvelope(r.Value)
		if env.EventType != typeSessionCompleted {
			continue
		}
		var e struct {
			Data struct {
				Object map[string]any `json:"object"`
			} `json:"data"`
		}
		if err := json.Unmarshal(env.Event, &e); err != nil {
			t.Fatal(err)
		}
		events[env.Key] = e.Data.Object
	}
	for _, id := range sum.Orders {
		o, err := c.OrderDetails(context.Background(), id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		ev := events[id]
		details := ev["customer_details"].(map[string]any)
		if o.Customer.Name != details["name"] || o.Customer.Email != details["email"] || float64(o.AmountTotal) != ev["amount_total"] ||
			o.Currency != ev["currency"] || o.CheckoutSessionID != ev["id"] {
			t.Errorf("%s: order %s %s %d %s, event %v", id, o.Customer.Name, o.Customer.Email, o.AmountTotal, o.Currency, ev)
		}
		if d := time.Since(o.CreatedAt); d < 0 || d > 10*time.Minute {
			t.Errorf("%s: created %v, want now", id, o.CreatedAt)
		}
		if o.ShippingCost == nil || o.ShippingCost.AmountTax == 0 || len(o.Items) == 0 || o.Items[0].TaxBehavior != "inclusive" {
			t.Errorf("%s: order lacks its taxed shipping or inclusive lines: %+v", id, o)
		}
	}

	// A simulator that is not there is an error naming it, before any
	// event is sent.
	n := len(prod.recs)
	_, err = sendTestEvents(context.Background(), testEventOptions{URL: srv.URL + gateway.WebhookPath, Secret: testSecret,
		Type: typeCheckout, Count: 1, SimURL: "http://127.0.0.1:1", Quiet: true}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "seed the simulator at http://127.0.0.1:1") || len(prod.recs) != n {
		t.Fatalf("unreachable simulator: err %v, %d events sent", err, len(prod.recs)-n)
	}
}

func TestResolveSimURL(t *testing.T) {
	dir := t.TempDir()
	if u, err := resolveSimURL("", dir); err != nil || u != "" {
		t.Errorf("no file: %q %v", u, err)
	}
	if err := os.WriteFile(filepath.Join(dir, simURLFile), []byte("http://127.0.0.1:8091/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{"": "http://127.0.0.1:8091", "none": "", "http://sim:8090/": "http://sim:8090"} {
		if u, err := resolveSimURL(flag, dir); err != nil || u != want {
			t.Errorf("--sim-url %q: %q %v, want %q", flag, u, err, want)
		}
	}
	if _, err := resolveSimURL("sim:8090", dir); err == nil {
		t.Error("a URL without scheme is accepted")
	}
}

// loadgen finds the secret where send-test-event does.
func TestLoadgenReadsTheDevSecret(t *testing.T) {
	srv, _ := startGateway(t)
	url := srv.URL + gateway.WebhookPath
	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, webhookSecretFile), []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ORDERFLOW_WEBHOOK_SECRET", "")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"loadgen", "--url", url, "--data-dir", dataDir, "--orders", "3", "--checkout=false", "--duplicates", "0", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("loadgen with the dev secret: exit %d\n%s%s", code, out.String(), errb.String())
	}
	var rep struct {
		OK     int64            `json:"ok"`
		Status map[string]int64 `json:"status"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out.String())
	}
	if rep.OK != 3 || rep.Status["200"] != 3 {
		t.Errorf("report ok %d, status %v; want 3 accepted (the dev secret signed them)", rep.OK, rep.Status)
	}
	// Without one anywhere it says where it looked, exit 2.
	out.Reset()
	errb.Reset()
	code = run(context.Background(), []string{"loadgen", "--url", url, "--data-dir", t.TempDir()}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "no webhook secret: give --secret, set ORDERFLOW_WEBHOOK_SECRET, or start 'orderflow dev' first") {
		t.Errorf("loadgen without a secret: exit %d, stderr %q", code, errb.String())
	}
}
