package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkHandler measures the request path up to the producer: size
// checks, signature, parse, dedup lookup and mark, envelope and record
// building, with a producer that acknowledges at once.
func BenchmarkHandler(b *testing.B) {
	for _, tc := range []struct {
		name  string
		dedup Deduper
	}{
		{"queued", nil},
		{"duplicate", NewMemoryDeduper(1 << 20)}, // after the first delivery every one is a duplicate
	} {
		b.Run(tc.name, func(b *testing.B) {
			prod := &discardProducer{}
			g, err := New(Config{Topic: testTopic, Secrets: []string{otherSecret, testSecret}}, prod, tc.dedup, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			h := g.Handler()
			body := fixture(b, "payment_intent.succeeded")
			header := sign(body, testSecret, time.Now())
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body))
					req.Header.Set(SignatureHeader, header)
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != 200 {
						b.Fatalf("status %d", rec.Code)
					}
				}
			})
		})
	}
}

type discardProducer struct{ fakeProducer }

func (*discardProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	promise(r, nil)
}
