package sim

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkPeerShipping measures the handler alone (no network) for the
// peer's create-every-time endpoint with the outbox on.
func BenchmarkPeerShipping(b *testing.B) {
	s, err := New(Config{DataDir: b.TempDir(), Peer: true, MaxOutboxFiles: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/shipping", strings.NewReader(`{"order_id":"pi_bench"}`))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}

// BenchmarkStripePaymentIntent measures a deterministic Stripe read.
func BenchmarkStripePaymentIntent(b *testing.B) {
	s, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("GET", "/v1/payment_intents/pi_bench", nil)
			req.Header.Set("Authorization", "Bearer sk_test_1")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}
