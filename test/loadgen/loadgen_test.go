package loadgen

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// fakeGateway verifies signatures and answers 503 to the first delivery of
// every fifth event, like a gateway during a broker blip.
type fakeGateway struct {
	mu     sync.Mutex
	seen   map[string]int // event id → deliveries
	orders map[string]bool
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := webhook.ValidatePayload(body, r.Header.Get("Stripe-Signature"), "whsec_a"); err != nil {
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			Object map[string]any `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen[ev.ID]++
	n := g.seen[ev.ID]
	if ev.ID[len(ev.ID)-2] == '5' && n == 1 { // order numbers ending in 5
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	if ev.Type == "checkout.session.completed" {
		g.orders[ev.Data.Object["payment_intent"].(string)] = true
	} else {
		g.orders[ev.Data.Object["id"].(string)] = true
	}
	if n > 1 {
		io.WriteString(w, "duplicate")
		return
	}
	io.WriteString(w, "queued")
}

func TestRunCheckoutDuplicatesRedelivery(t *testing.T) {
	g := &fakeGateway{seen: map[string]int{}, orders: map[string]bool{}}
	srv := httptest.NewServer(g)
	defer srv.Close()
	rep, err := Run(context.Background(), Config{
		URL: srv.URL, Secrets: []string{"whsec_old", "whsec_a"}, Orders: 40, Connections: 8,
		Checkout: true, Duplicates: 0.5, Redeliver: 2, RedeliverDelay: 10 * time.Millisecond, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unanswered) != 0 {
		t.Fatalf("unanswered after redelivery: %v", rep.Unanswered)
	}
	if len(g.orders) != 40 || len(rep.AcceptedAt) != 40 {
		t.Fatalf("gateway saw %d orders, report accepted %d; want 40", len(g.orders), len(rep.AcceptedAt))
	}
	if len(rep.Accepted) != 80 {
		t.Fatalf("accepted %d distinct events, want 80", len(rep.Accepted))
	}
	if rep.Status[503] != 8 { // orders 5, 15, 25, 35 × 2 events
		t.Errorf("503s = %d, want 8", rep.Status[503])
	}
	if rep.Bodies["duplicate"] == 0 {
		t.Errorf("no duplicate deliveries in %v", rep.Bodies)
	}
	if rep.Deliveries != rep.Status[200]+rep.Status[503] || rep.OK != rep.Status[200] {
		t.Errorf("counts disagree: %+v", rep)
	}
	if rep.P50 <= 0 || rep.Max < rep.P99 || rep.P99 < rep.P50 {
		t.Errorf("latencies p50 %v p99 %v max %v", rep.P50, rep.P99, rep.Max)
	}
}

func TestRunRate(t *testing.T) {
	g := &fakeGateway{seen: map[string]int{}, orders: map[string]bool{}}
	srv := httptest.NewServer(g)
	defer srv.Close()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Secrets: []string{"whsec_a"}, Orders: 20, Connections: 4, Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	// 20 deliveries at 100/s are spaced over at least ~190 ms.
	if rep.Duration < 150*time.Millisecond {
		t.Fatalf("20 deliveries at 100/s took %v", rep.Duration)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	if _, err := Run(context.Background(), Config{URL: "http://x"}); err == nil {
		t.Fatal("no error for missing secrets and orders")
	}
}
