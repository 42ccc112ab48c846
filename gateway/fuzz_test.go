package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// FuzzHandler feeds arbitrary bodies and headers, signed or not, through the
// whole handler: it must never panic and only answer documented statuses.
func FuzzHandler(f *testing.F) {
	for _, name := range []string{"payment_intent.succeeded", "checkout.session.completed", "checkout.session.completed.no_payment_intent", "charge.refunded", "customer.created"} {
		f.Add(fixture(f, name), "", true, uint8(0))
	}
	f.Add([]byte(`{"id":"evt","type":"charge.refunded","data":{"object":{"id":"ch","payment_intent":{"id":5}}}}`), "", true, uint8(0))
	f.Add([]byte(`{}`), "t=1,v1=00", false, uint8(0))
	f.Add([]byte(`null`), "", true, uint8(1))
	f.Add([]byte(nil), "t=,=,,v1", false, uint8(2))

	hs := newHarness(f, func(c *Config) { c.MaxBody = 4096 })
	allowed := map[int]bool{200: true, 400: true, 405: true, 413: true}
	methods := []string{http.MethodPost, http.MethodGet, http.MethodPut, http.MethodDelete}
	f.Fuzz(func(t *testing.T, body []byte, header string, signIt bool, method uint8) {
		if signIt {
			header = sign(body, testSecret, time.Now())
		}
		req := httptest.NewRequest(methods[int(method)%len(methods)], WebhookPath, bytes.NewReader(body))
		req.Header.Set(SignatureHeader, header)
		rec := httptest.NewRecorder()
		hs.h.ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Fatalf("status %d (%q) is not documented", rec.Code, rec.Body.String())
		}
		if rec.Code == 200 {
			switch rec.Body.String() {
			case "queued\n", "duplicate\n", "ignored\n":
			default:
				t.Fatalf("200 with body %q", rec.Body.String())
			}
		}
		if n := hs.g.inflight.Load(); n != 0 {
			t.Fatalf("in-flight bytes %d leaked", n)
		}
	})
}
