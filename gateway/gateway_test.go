package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stripe/stripe-go/v76/webhook"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/topics"
)

const (
	testSecret  = "whsec_test_primary_0123456789abcdef"
	otherSecret = "whsec_test_rotated_fedcba9876543210"
	testTopic   = "t.orders"
)

// fakeProducer acknowledges, fails or holds records like a kgo.Client would.
type fakeProducer struct {
	mu      sync.Mutex
	records []*kgo.Record
	err     error         // fail every record with it
	hang    bool          // never call the promise
	gate    chan struct{} // when set, acknowledge only after it is closed
	pingErr error
}

func (p *fakeProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	err, hang, gate := p.err, p.hang, p.gate
	p.mu.Unlock()
	switch {
	case hang:
		return
	case err != nil:
		promise(r, err)
		return
	}
	ack := func() {
		p.mu.Lock()
		r.Partition, r.Offset = 0, int64(len(p.records))
		p.records = append(p.records, r)
		p.mu.Unlock()
		promise(r, nil)
	}
	if gate != nil {
		go func() { <-gate; ack() }()
		return
	}
	ack()
}

func (p *fakeProducer) Ping(context.Context) error { return p.pingErr }

func (p *fakeProducer) produced() []*kgo.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*kgo.Record(nil), p.records...)
}

// fakeDeduper is a MemoryDeduper that can be made to fail.
type fakeDeduper struct {
	*MemoryDeduper
	seenErr, markErr error
}

func (d *fakeDeduper) Seen(ctx context.Context, id string) (bool, error) {
	if d.seenErr != nil {
		return false, d.seenErr
	}
	return d.MemoryDeduper.Seen(ctx, id)
}

func (d *fakeDeduper) Mark(ctx context.Context, id string, ttl time.Duration) error {
	if d.markErr != nil {
		return d.markErr
	}
	return d.MemoryDeduper.Mark(ctx, id, ttl)
}

type harness struct {
	g    *Gateway
	prod *fakeProducer
	dd   *fakeDeduper
	reg  *prometheus.Registry
	logs *syncBuffer
	h    http.Handler
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newHarness(t testing.TB, mod func(*Config)) *harness {
	t.Helper()
	cfg := Config{Topic: testTopic, Secrets: []string{testSecret}, ProduceTimeout: 200 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	hs := &harness{
		prod: &fakeProducer{},
		dd:   &fakeDeduper{MemoryDeduper: NewMemoryDeduper(100)},
		reg:  prometheus.NewRegistry(),
		logs: &syncBuffer{},
	}
	logger := slog.New(slog.NewJSONHandler(hs.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g, err := New(cfg, hs.prod, hs.dd, logger, hs.reg)
	if err != nil {
		t.Fatal(err)
	}
	hs.g, hs.h = g, g.Handler()
	return hs
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sign(body []byte, secret string, ts time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: ts}).Header
}

func (hs *harness) post(body []byte, header string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body))
	if header != "" {
		req.Header.Set(SignatureHeader, header)
	}
	rec := httptest.NewRecorder()
	hs.h.ServeHTTP(rec, req)
	return rec
}

// metricValue returns the value of the series of name with exactly labels.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !labelsMatch(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	if len(m.GetLabel()) != len(want) {
		return false
	}
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
			return false
		}
	}
	return true
}

func withEventID(t testing.TB, body []byte, id string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m["id"] = id
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestQueuedEvents(t *testing.T) {
	tests := []struct {
		fixture  string
		eventID  string
		key      string
		objectID string
	}{
		{"payment_intent.succeeded", "evt_3OKpiLJZ4cn2Yx0b1c2Ld9Xa", "pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t", "pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t"},
		{"checkout.session.completed", "evt_1OKpjAJZ4cn2Yx0bT6vWn2Ke", "pi_3OKpjAJZ4cn2Yx0b0Hk2Lm4N", "cs_test_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ"},
		{"checkout.session.completed.no_payment_intent", "evt_1OKpkBJZ4cn2Yx0bR2s4T6uV", "cs_test_b9Z8y7X6w5V4u3T2s1R0qPoNmLkJiHgFeDcB", "cs_test_b9Z8y7X6w5V4u3T2s1R0qPoNmLkJiHgFeDcB"},
		{"charge.refunded", "evt_3OKpiLJZ4cn2Yx0b1W9xYz0A", "pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t", "ch_3OKpiLJZ4cn2Yx0b1F3cDk9q"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			hs := newHarness(t, nil)
			body := fixture(t, tt.fixture)
			before := time.Now()
			rec := hs.post(body, sign(body, testSecret, time.Now()))
			if rec.Code != http.StatusOK || rec.Body.String() != "queued\n" {
				t.Fatalf("got %d %q, want 200 queued", rec.Code, rec.Body.String())
			}
			recs := hs.prod.produced()
			if len(recs) != 1 {
				t.Fatalf("produced %d records, want 1", len(recs))
			}
			r := recs[0]
			if r.Topic != testTopic || string(r.Key) != tt.key {
				t.Errorf("record topic %q key %q, want %q %q", r.Topic, r.Key, testTopic, tt.key)
			}
			env, err := topics.DecodeEnvelope(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			var raw map[string]any
			_ = json.Unmarshal(body, &raw)
			if env.EventID != tt.eventID || env.EventType != raw["type"] || env.Key != tt.key || env.ObjectID != tt.objectID ||
				env.APIVersion != "2023-10-16" || env.Created != int64(raw["created"].(float64)) {
				t.Errorf("envelope %+v", env)
			}
			if env.ReceivedAt.Before(before.Add(-time.Second)) || env.ReceivedAt.After(time.Now()) {
				t.Errorf("received_at %v not around now", env.ReceivedAt)
			}
			if !bytes.Equal(env.Event, bytes.TrimSpace(body)) {
				t.Errorf("envelope event differs from the received body")
			}
			headers := map[string]string{}
			for _, h := range r.Headers {
				headers[h.Key] = string(h.Value)
			}
			if headers[topics.HeaderEventID] != tt.eventID || headers[topics.HeaderEventType] != raw["type"] {
				t.Errorf("headers %v", headers)
			}
			if !validTraceParent(headers[topics.HeaderTraceParent]) {
				t.Errorf("traceparent %q is not valid", headers[topics.HeaderTraceParent])
			}
			if seen, _ := hs.dd.Seen(context.Background(), tt.eventID); !seen {
				t.Error("event id not marked after the ack")
			}
			if got := metricValue(t, hs.reg, "orderflow_gateway_requests_total", map[string]string{"outcome": "queued", "event_type": raw["type"].(string)}); got != 1 {
				t.Errorf("queued counter %v, want 1", got)
			}
			if got := metricValue(t, hs.reg, "orderflow_gateway_produce_duration_seconds", nil); got != 1 {
				t.Errorf("produce duration samples %v, want 1", got)
			}
			if got := metricValue(t, hs.reg, "orderflow_gateway_inflight_bytes", nil); got != 0 {
				t.Errorf("in-flight bytes %v after the request, want 0", got)
			}
			logs := hs.logs.String()
			for _, secret := range []string{testSecret, "aino@example.com", "Hämeenkatu", "eero@example.com"} {
				if strings.Contains(logs, secret) {
					t.Errorf("logs contain %q", secret)
				}
			}
			if !strings.Contains(logs, tt.eventID) || !strings.Contains(logs, tt.key) {
				t.Errorf("logs do not name the event id and key: %s", logs)
			}
		})
	}
}

func TestRejections(t *testing.T) {
	pi := fixture(t, "payment_intent.succeeded")
	now := time.Now()
	valid := sign(pi, testSecret, now)
	v0only := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: pi, Secret: testSecret, Scheme: "v0"}).Header
	withoutT := valid[strings.Index(valid, ",")+1:]
	signed := func(body string) ([]byte, string) { return []byte(body), sign([]byte(body), testSecret, now) }

	tests := []struct {
		name   string
		method string
		body   []byte
		header string
		status int
		reason string
	}{
		{name: "GET", method: http.MethodGet, body: nil, header: valid, status: 405, reason: "method not allowed"},
		{name: "PUT", method: http.MethodPut, body: pi, header: valid, status: 405, reason: "method not allowed"},
		{name: "missing header", body: pi, header: "", status: 400, reason: "missing Stripe-Signature header"},
		{name: "malformed header", body: pi, header: "garbage", status: 400, reason: "malformed Stripe-Signature header"},
		{name: "non-numeric timestamp", body: pi, header: "t=abc,v1=" + strings.Repeat("0", 64), status: 400, reason: "malformed Stripe-Signature header"},
		{name: "no timestamp", body: pi, header: withoutT, status: 400, reason: "malformed Stripe-Signature header"},
		{name: "v0 only is a downgrade", body: pi, header: v0only, status: 400, reason: "no valid v1 signature"},
		{name: "wrong secret", body: pi, header: sign(pi, "whsec_wrong", now), status: 400, reason: "no valid v1 signature"},
		{name: "tampered body", body: append(bytes.Clone(pi), ' '), header: valid, status: 400, reason: "no valid v1 signature"},
		{name: "too old", body: pi, header: sign(pi, testSecret, now.Add(-301*time.Second)), status: 400, reason: "signature timestamp outside tolerance"},
		// Well past the tolerance ahead: the header carries whole seconds,
		// and the check runs a moment after now (under load, most of a
		// second), so 301 s ahead can read as 299.
		{name: "too far in the future", body: pi, header: sign(pi, testSecret, now.Add(330*time.Second)), status: 400, reason: "signature timestamp outside tolerance"},
		{name: "not JSON", body: nil, header: "", status: 400, reason: "body is not a JSON Stripe event"},
		{name: "JSON array", body: nil, header: "", status: 400, reason: "body is not a JSON Stripe event"},
		{name: "not an event object", body: nil, header: "", status: 400, reason: "body is not a JSON Stripe event"},
		{name: "no id", body: nil, header: "", status: 400, reason: "event has no id"},
		{name: "no type", body: nil, header: "", status: 400, reason: "event has no type"},
		{name: "no data.object", body: nil, header: "", status: 400, reason: "event has no data.object"},
		{name: "null data.object", body: nil, header: "", status: 400, reason: "event has no data.object"},
		{name: "object without id", body: nil, header: "", status: 400, reason: "event data.object has no id"},
		{name: "JSON null", body: nil, header: "", status: 400, reason: "body is not a JSON Stripe event"},
		{name: "blank event id", body: nil, header: "", status: 400, reason: "event id is blank"},
		{name: "event id of invalid UTF-8", body: nil, header: "", status: 400, reason: "event id is not valid UTF-8"},
		{name: "event id with a newline", body: nil, header: "", status: 400, reason: "event id has a control character"},
		{name: "blank object id", body: nil, header: "", status: 400, reason: "object id is blank"},
		{name: "object id with a newline", body: nil, header: "", status: 400, reason: "object id has a control character"},
		{name: "payment_intent with a newline", body: nil, header: "", status: 400, reason: "payment_intent id has a control character"},
		{name: "blank payment_intent", body: nil, header: "", status: 400, reason: "payment_intent id is blank"},
	}
	bodies := map[string]string{
		"not JSON":                      `not json`,
		"JSON array":                    `[1,2]`,
		"not an event object":           `{"id":"cus_1","object":"customer","type":"x","data":{"object":{"id":"a"}}}`,
		"no id":                         `{"object":"event","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}}`,
		"no type":                       `{"id":"evt_1","object":"event","data":{"object":{"id":"pi_1"}}}`,
		"no data.object":                `{"id":"evt_1","object":"event","type":"payment_intent.succeeded","data":{}}`,
		"null data.object":              `{"id":"evt_1","object":"event","type":"payment_intent.succeeded","data":{"object":null}}`,
		"object without id":             `{"id":"evt_1","object":"event","type":"payment_intent.succeeded","data":{"object":{"amount":5}}}`,
		"JSON null":                     `null`,
		"blank event id":                `{"id":"  ","object":"event","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}}`,
		"event id of invalid UTF-8":     "{\"id\":\"evt_\xff\",\"object\":\"event\",\"type\":\"payment_intent.succeeded\",\"data\":{\"object\":{\"id\":\"pi_1\"}}}",
		"event id with a newline":       `{"id":"evt_1\nx","object":"event","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}}`,
		"blank object id":               `{"id":"evt_1","object":"event","type":"payment_intent.succeeded","data":{"object":{"id":" "}}}`,
		"object id with a newline":      `{"id":"evt_1","object":"event","type":"payment_intent.succeeded","data":{"object":{"id":"A\nB"}}}`,
		"payment_intent with a newline": `{"id":"evt_1","object":"event","type":"charge.refunded","data":{"object":{"id":"ch_1","payment_intent":"pi_A\nB"}}}`,
		"blank payment_intent":          `{"id":"evt_1","object":"event","type":"checkout.session.completed","data":{"object":{"id":"cs_x","payment_intent":"  "}}}`,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, ok := bodies[tt.name]; ok {
				tt.body, tt.header = signed(b)
			}
			hs := newHarness(t, nil)
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, WebhookPath, bytes.NewReader(tt.body))
			if tt.header != "" {
				req.Header.Set(SignatureHeader, tt.header)
			}
			rec := httptest.NewRecorder()
			hs.h.ServeHTTP(rec, req)
			if rec.Code != tt.status || rec.Body.String() != tt.reason+"\n" {
				t.Fatalf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tt.status, tt.reason)
			}
			if tt.status == 405 && rec.Header().Get("Allow") != http.MethodPost {
				t.Errorf("Allow %q, want POST", rec.Header().Get("Allow"))
			}
			if n := len(hs.prod.produced()); n != 0 {
				t.Errorf("produced %d records for a rejected request", n)
			}
			outcome := map[int]string{400: "bad_request", 405: "method_not_allowed"}[tt.status]
			if got := metricValue(t, hs.reg, "orderflow_gateway_requests_total", map[string]string{"outcome": outcome, "event_type": ""}); got != 1 {
				t.Errorf("%s counter %v, want 1", outcome, got)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	pi := fixture(t, "payment_intent.succeeded")
	big := append(bytes.Clone(pi), bytes.Repeat([]byte(" "), 2048)...)
	tests := []struct {
		name    string
		body    []byte
		chunked bool
		status  int
	}{
		{"declared length over the limit", big, false, 413},
		{"chunked body over the limit", big, true, 413},
		{"body at the limit", pi, false, 200},
		{"chunked body under the limit", pi, true, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, func(c *Config) { c.MaxBody = int64(len(pi)) })
			req := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(tt.body))
			if tt.chunked {
				req.Body = io.NopCloser(bytes.NewReader(tt.body))
				req.ContentLength = -1
			}
			req.Header.Set(SignatureHeader, sign(tt.body, testSecret, time.Now()))
			rec := httptest.NewRecorder()
			hs.h.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("got %d %q, want %d", rec.Code, rec.Body.String(), tt.status)
			}
			if tt.status == 413 {
				if rec.Body.String() != "body too large\n" {
					t.Errorf("body %q", rec.Body.String())
				}
				if got := metricValue(t, hs.reg, "orderflow_gateway_requests_total", map[string]string{"outcome": "too_large", "event_type": ""}); got != 1 {
					t.Errorf("too_large counter %v, want 1", got)
				}
			}
			if got := hs.g.inflight.Load(); got != 0 {
				t.Errorf("in-flight bytes %d after the request, want 0", got)
			}
		})
	}
}

func TestAnyAPIVersionAccepted(t *testing.T) {
	for _, v := range []string{"2023-10-16", "2024-06-20", "2025-03-31.basil", ""} {
		t.Run(v, func(t *testing.T) {
			hs := newHarness(t, nil)
			var m map[string]any
			_ = json.Unmarshal(fixture(t, "payment_intent.succeeded"), &m)
			if v == "" {
				delete(m, "api_version")
			} else {
				m["api_version"] = v
			}
			body, _ := json.Marshal(m)
			if rec := hs.post(body, sign(body, testSecret, time.Now())); rec.Code != 200 || rec.Body.String() != "queued\n" {
				t.Fatalf("api_version %q: got %d %q", v, rec.Code, rec.Body.String())
			}
			env, err := topics.DecodeEnvelope(hs.prod.produced()[0].Value)
			if err != nil || env.APIVersion != v {
				t.Errorf("envelope api_version %q (%v), want %q", env.APIVersion, err, v)
			}
		})
	}
}

func TestIgnoredEventType(t *testing.T) {
	hs := newHarness(t, nil)
	body := fixture(t, "customer.created")
	rec := hs.post(body, sign(body, testSecret, time.Now()))
	if rec.Code != 200 || rec.Body.String() != "ignored\n" {
		t.Fatalf("got %d %q, want 200 ignored", rec.Code, rec.Body.String())
	}
	if n := len(hs.prod.produced()); n != 0 {
		t.Errorf("produced %d records for an ignored type", n)
	}
	if seen, _ := hs.dd.Seen(context.Background(), "evt_1OKpiHJZ4cn2Yx0bM3n5P7qR"); seen {
		t.Error("ignored event was marked")
	}
	if got := metricValue(t, hs.reg, "orderflow_gateway_requests_total", map[string]string{"outcome": "ignored", "event_type": "customer.created"}); got != 1 {
		t.Errorf("ignored counter %v, want 1", got)
	}

	// --event-types overrides the defaults.
	hs = newHarness(t, func(c *Config) { c.EventTypes = []string{"customer.created"} })
	if rec := hs.post(body, sign(body, testSecret, time.Now())); rec.Body.String() != "queued\n" {
		t.Errorf("configured type: got %q, want queued", rec.Body.String())
	}
	pi := fixture(t, "payment_intent.succeeded")
	if rec := hs.post(pi, sign(pi, testSecret, time.Now())); rec.Body.String() != "ignored\n" {
		t.Errorf("default type not configured: got %q, want ignored", rec.Body.String())
	}
}

func TestDuplicate(t *testing.T) {
	hs := newHarness(t, nil)
	body := fixture(t, "payment_intent.succeeded")
	for i, want := range []string{"queued\n", "duplicate\n", "duplicate\n"} {
		// Stripe re-signs every retry with a new timestamp.
		rec := hs.post(body, sign(body, testSecret, time.Now().Add(time.Duration(i)*time.Second)))
		if rec.Code != 200 || rec.Body.String() != want {
			t.Fatalf("delivery %d: got %d %q, want 200 %q", i+1, rec.Code, rec.Body.String(), want)
		}
	}
	if n := len(hs.prod.produced()); n != 1 {
		t.Errorf("produced %d records, want 1", n)
	}
	if got := metricValue(t, hs.reg, "orderflow_gateway_dedup_hits_total", nil); got != 2 {
		t.Errorf("dedup hits %v, want 2", got)
	}
}

func TestKafkaUnavailable(t *testing.T) {
	tests := []struct {
		name string
		set  func(*fakeProducer)
	}{
		{"produce fails", func(p *fakeProducer) { p.err = errors.New("broker gone") }},
		{"no acknowledgement in time", func(p *fakeProducer) { p.hang = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, func(c *Config) { c.ProduceTimeout = 50 * time.Millisecond })
			tt.set(hs.prod)
			body := fixture(t, "payment_intent.succeeded")
			start := time.Now()
			rec := hs.post(body, sign(body, testSecret, time.Now()))
			if rec.Code != 503 || rec.Body.String() != "event log unavailable, retry later\n" {
				t.Fatalf("got %d %q, want 503", rec.Code, rec.Body.String())
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("answered after %v, want about the produce timeout", el)
			}
			if seen, _ := hs.dd.Seen(context.Background(), "evt_3OKpiLJZ4cn2Yx0b1c2Ld9Xa"); seen {
				t.Error("event marked although Kafka did not acknowledge it")
			}
			if got := metricValue(t, hs.reg, "orderflow_gateway_requests_total", map[string]string{"outcome": "unavailable", "event_type": "payment_intent.succeeded"}); got != 1 {
				t.Errorf("unavailable counter %v, want 1", got)
			}

			// Kafka back: Stripe's retry is queued.
			hs.prod.mu.Lock()
			hs.prod.err, hs.prod.hang = nil, false
			hs.prod.mu.Unlock()
			if rec := hs.post(body, sign(body, testSecret, time.Now())); rec.Body.String() != "queued\n" {
				t.Errorf("retry after recovery: got %d %q, want queued", rec.Code, rec.Body.String())
			}
		})
	}
}

func TestDedupStoreDown(t *testing.T) {
	hs := newHarness(t, nil)
	hs.dd.seenErr = errors.New("dial tcp: connection refused")
	hs.dd.markErr = errors.New("dial tcp: connection refused")
	for i, name := range []string{"payment_intent.succeeded", "charge.refunded"} {
		body := fixture(t, name)
		if rec := hs.post(body, sign(body, testSecret, time.Now())); rec.Code != 200 || rec.Body.String() != "queued\n" {
			t.Fatalf("%s: got %d %q, want 200 queued", name, rec.Code, rec.Body.String())
		}
		if n := len(hs.prod.produced()); n != i+1 {
			t.Fatalf("produced %d records, want %d", n, i+1)
		}
	}
	if got := metricValue(t, hs.reg, "orderflow_gateway_redis_errors_total", nil); got != 4 {
		t.Errorf("redis errors %v, want 4 (a lookup and a mark per event)", got)
	}
	if n := strings.Count(hs.logs.String(), "dedup store unavailable"); n != 1 {
		t.Errorf("dedup failure logged %d times within the interval, want 1", n)
	}
}

func TestOverloaded(t *testing.T) {
	pi := fixture(t, "payment_intent.succeeded")
	hs := newHarness(t, func(c *Config) {
		c.MaxBody = int64(len(pi))
		c.MaxInflightBytes = int64(len(pi)) + 10
		c.ProduceTimeout = 10 * time.Second
		c.RetryAfter = 3 * time.Second
	})
	gate := make(chan struct{})
	hs.prod.gate = gate

	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- hs.post(pi, sign(pi, testSecret, time.Now())) }()
	// Wait until the first request holds its bytes while awaiting the ack.
	deadline := time.Now().Add(5 * time.Second)
	for hs.g.inflight.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("first request never got in flight")
		}
		time.Sleep(time.Millisecond)
	}
	if got := metricValue(t, hs.reg, "orderflow_gateway_inflight_bytes", nil); got != float64(len(pi)) {
		t.Errorf("in-flight gauge %v, want %d", got, len(pi))
	}
	rec := hs.post(pi, sign(pi, testSecret, time.Now()))
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "3" {
		t.Fatalf("second request: got %d Retry-After %q, want 503 with Retry-After 3", rec.Code, rec.Header().Get("Retry-After"))
	}
	if got := metricValue(t, hs.reg, "orderflow_gateway_requests_total", map[string]string{"outcome": "overloaded", "event_type": ""}); got != 1 {
		t.Errorf("overloaded counter %v, want 1", got)
	}
	close(gate)
	if r := <-first; r.Code != 200 {
		t.Errorf("first request: got %d, want 200", r.Code)
	}
	if got := hs.g.inflight.Load(); got != 0 {
		t.Errorf("in-flight bytes %d after both requests, want 0", got)
	}
	if rec := hs.post(withEventID(t, pi, "evt_after"), ""); rec.Code != 400 {
		t.Errorf("budget not released: got %d", rec.Code)
	}
}

func TestSecretRotation(t *testing.T) {
	body := fixture(t, "payment_intent.succeeded")
	now := time.Now()
	oldSig := sign(body, testSecret, now)
	newSig := sign(body, otherSecret, now)
	both := oldSig + "," + newSig[strings.Index(newSig, ",")+1:]
	tests := []struct {
		name    string
		secrets []string
		header  string
		status  int
	}{
		{"old secret of two", []string{testSecret, otherSecret}, oldSig, 200},
		{"new secret of two", []string{testSecret, otherSecret}, newSig, 200},
		{"two signatures, second matches", []string{otherSecret}, both, 200},
		{"two signatures, first matches", []string{testSecret}, both, 200},
		{"retired secret", []string{otherSecret}, oldSig, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, func(c *Config) { c.Secrets = tt.secrets })
			if rec := hs.post(body, tt.header); rec.Code != tt.status {
				t.Errorf("got %d %q, want %d", rec.Code, rec.Body.String(), tt.status)
			}
		})
	}
}

func TestTraceParent(t *testing.T) {
	const upstream = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		in   string
		pass bool
	}{
		{upstream, true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", true},
		{"", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{upstream + "-x", false},
		{"garbage", false},
	}
	for _, tt := range tests {
		got := traceParent(tt.in)
		if tt.pass && got != tt.in {
			t.Errorf("traceParent(%q) = %q, want it passed through", tt.in, got)
		}
		if !tt.pass && (got == tt.in || !validTraceParent(got) || !strings.HasPrefix(got, "00-") || !strings.HasSuffix(got, "-01")) {
			t.Errorf("traceParent(%q) = %q, want a new valid one", tt.in, got)
		}
	}
	if traceParent("") == traceParent("") {
		t.Error("generated trace ids repeat")
	}

	hs := newHarness(t, nil)
	body := fixture(t, "payment_intent.succeeded")
	req := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body))
	req.Header.Set(SignatureHeader, sign(body, testSecret, time.Now()))
	req.Header.Set("traceparent", upstream)
	hs.h.ServeHTTP(httptest.NewRecorder(), req)
	recs := hs.prod.produced()
	if len(recs) != 1 {
		t.Fatal("no record")
	}
	for _, h := range recs[0].Headers {
		if h.Key == topics.HeaderTraceParent && string(h.Value) != upstream {
			t.Errorf("traceparent header %q, want %q", h.Value, upstream)
		}
	}
}

func TestHealthAndReady(t *testing.T) {
	hs := newHarness(t, nil)
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		hs.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	if rec := get(HealthPath); rec.Code != 200 {
		t.Errorf("healthz %d", rec.Code)
	}
	if rec := get(ReadyPath); rec.Code != 200 {
		t.Errorf("readyz %d with Kafka up", rec.Code)
	}
	hs.prod.pingErr = errors.New("no brokers")
	if rec := get(ReadyPath); rec.Code != 503 {
		t.Errorf("readyz %d with Kafka down, want 503", rec.Code)
	}
	if rec := get(HealthPath); rec.Code != 200 {
		t.Errorf("healthz %d with Kafka down, want 200", rec.Code)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no topic", Config{Secrets: []string{testSecret}}, "topic is required"},
		{"no secret", Config{Topic: "o"}, "at least one webhook secret"},
		{"empty secret", Config{Topic: "o", Secrets: []string{testSecret, " "}}, "webhook secret 2 is empty"},
		{"secret without whsec_", Config{Topic: "o", Secrets: []string{testSecret, "notwhsec"}}, "webhook secret 2: does not start with whsec_: Stripe endpoint signing secrets start with whsec_"},
		{"bad type", Config{Topic: "o", Secrets: []string{testSecret}, EventTypes: []string{"a b"}}, "not a Stripe event type"},
		{"negative timeout", Config{Topic: "o", Secrets: []string{testSecret}, ProduceTimeout: -1}, "produce timeout must be positive"},
		{"budget below body", Config{Topic: "o", Secrets: []string{testSecret}, MaxBody: 100, MaxInflightBytes: 10}, "below max body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, &fakeProducer{}, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := New(Config{Topic: "o", Secrets: []string{testSecret}}, &fakeProducer{}, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestNoDeduper(t *testing.T) {
	reg := prometheus.NewRegistry()
	prod := &fakeProducer{}
	g, err := New(Config{Topic: testTopic, Secrets: []string{testSecret}}, prod, nil, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	body := fixture(t, "payment_intent.succeeded")
	for range 2 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body))
		req.Header.Set(SignatureHeader, sign(body, testSecret, time.Now()))
		g.Handler().ServeHTTP(rec, req)
		if rec.Body.String() != "queued\n" {
			t.Fatalf("got %q", rec.Body.String())
		}
	}
	if n := len(prod.produced()); n != 2 {
		t.Errorf("without a deduper both deliveries are produced; got %d", n)
	}
}

// TestWebhookLogLines: each outcome of an event logs one line naming the
// event, its type and its order key, and what happened; the body is never
// logged.
func TestWebhookLogLines(t *testing.T) {
	hs := newHarness(t, func(c *Config) { c.ProduceTimeout = 50 * time.Millisecond })
	body := fixture(t, "payment_intent.succeeded")
	hs.post(body, sign(body, testSecret, time.Now()))
	hs.post(body, sign(body, testSecret, time.Now()))
	other := withEventID(t, body, "evt_kafka_down")
	hs.prod.mu.Lock()
	hs.prod.err = errors.New("broker gone")
	hs.prod.mu.Unlock()
	hs.post(other, sign(other, testSecret, time.Now()))

	type line struct {
		Level, Msg, Outcome, Key, Err string
		EventID                       string `json:"event_id"`
		EventType                     string `json:"event_type"`
		Partition                     *int32
	}
	var got []line
	for _, s := range strings.Split(strings.TrimSpace(hs.logs.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("log line %q: %v", s, err)
		}
		if strings.HasPrefix(l.Msg, "webhook") {
			got = append(got, l)
		}
	}
	const pi = "pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t"
	want := []line{
		{Level: "INFO", Msg: "webhook answered", Outcome: "queued", Key: pi, EventID: "evt_3OKpiLJZ4cn2Yx0b1c2Ld9Xa", EventType: "payment_intent.succeeded"},
		{Level: "INFO", Msg: "webhook answered", Outcome: "duplicate", Key: pi, EventID: "evt_3OKpiLJZ4cn2Yx0b1c2Ld9Xa", EventType: "payment_intent.succeeded"},
		{Level: "WARN", Msg: "webhook not queued: kafka", Outcome: "unavailable", Key: pi, EventID: "evt_kafka_down", EventType: "payment_intent.succeeded", Err: "broker gone"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d webhook lines, want %d:\n%s", len(got), len(want), hs.logs.String())
	}
	for i := range want {
		g := got[i]
		if (g.Partition != nil) != (i == 0) {
			t.Errorf("line %d: partition %v, want one only on the queued line", i, g.Partition)
		}
		g.Partition = nil
		if g != want[i] {
			t.Errorf("line %d: got %+v, want %+v", i, g, want[i])
		}
	}
	if strings.Contains(hs.logs.String(), `"amount"`) {
		t.Error("the event's body is in the log")
	}
}

// TestNoWebhookLineWhenInfoOff: with info off, a queued webhook logs nothing.
func TestNoWebhookLineWhenInfoOff(t *testing.T) {
	var logs syncBuffer
	g, err := New(Config{Topic: testTopic, Secrets: []string{testSecret}}, &discardProducer{}, nil, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	body := fixture(t, "payment_intent.succeeded")
	req := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body))
	req.Header.Set(SignatureHeader, sign(body, testSecret, time.Now()))
	rec := httptest.NewRecorder()
	g.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 || logs.String() != "" {
		t.Errorf("got %d, logs %q; want 200 and no line", rec.Code, logs.String())
	}
}
