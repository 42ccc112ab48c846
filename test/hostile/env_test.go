package hostile

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stripe/stripe-go/v76/webhook"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/topics"
)

// Test values only: the endpoint secrets the corpus signs with (the gateway
// accepts both, as while Stripe rolls an endpoint's secret) and the topic.
const (
	primarySecret = "whsec_hostile_primary_0123456789abcdef"
	rotatedSecret = "whsec_hostile_rotated_fedcba9876543210"
	ordersTopic   = "hostile.orders"
)

// Customer data in the corpus events. It must never appear in a log line
// or an answer.
var customerData = []string{"Aino Virtanen", "Hämeenkatu", "aino@example.com", "+358401234567"}

// producer is an in-process Kafka producer that acknowledges every record.
type producer struct {
	mu      sync.Mutex
	records []*kgo.Record
}

func (p *producer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	r.Partition, r.Offset = 0, int64(len(p.records))
	p.records = append(p.records, r)
	p.mu.Unlock()
	promise(r, nil)
}

func (p *producer) Ping(context.Context) error { return nil }

func (p *producer) produced() []*kgo.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*kgo.Record(nil), p.records...)
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

// env is one gateway with the production defaults (body limit, tolerance,
// event types) behind a real HTTP server, producing in process.
type env struct {
	prod *producer
	srv  *httptest.Server
	logs *syncBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{prod: &producer{}, logs: &syncBuffer{}}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gw, err := gateway.New(gateway.Config{Topic: ordersTopic, Secrets: []string{primarySecret, rotatedSecret}},
		e.prod, gateway.NewMemoryDeduper(0), logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(gw.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// checkLogs fails when a log line carries customer data or a secret.
func checkLogs(t *testing.T, logs string, extra ...string) {
	t.Helper()
	for _, s := range append(append([]string{primarySecret, rotatedSecret}, customerData...), extra...) {
		if strings.Contains(logs, s) {
			t.Errorf("a log line contains %q:\n%s", s, logs)
		}
	}
}

// checkRecord asserts that rec is the record of the event body: on the
// orders topic under key, with the event id and type headers, and an
// envelope carrying the body byte for byte.
func checkRecord(t *testing.T, rec *kgo.Record, topic string, body []byte, key string) {
	t.Helper()
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("the test's body is not an event: %v", err)
	}
	if rec.Topic != topic || string(rec.Key) != key {
		t.Errorf("record on %q key %q, want %q key %q", rec.Topic, rec.Key, topic, key)
	}
	headers := map[string]string{}
	for _, h := range rec.Headers {
		headers[h.Key] = string(h.Value)
	}
	if headers[topics.HeaderEventID] != ev.ID || headers[topics.HeaderEventType] != ev.Type {
		t.Errorf("record headers %q, want event id %q type %q", headers, ev.ID, ev.Type)
	}
	envl, err := topics.DecodeEnvelope(rec.Value)
	if err != nil {
		t.Fatalf("record value is not an envelope: %v", err)
	}
	if envl.EventID != ev.ID || envl.EventType != ev.Type || envl.Key != key {
		t.Errorf("envelope ids %q/%q/%q, want %q/%q/%q", envl.EventID, envl.EventType, envl.Key, ev.ID, ev.Type, key)
	}
	// The record carries the body verbatim; decoded, the envelope's event is
	// the body without the JSON whitespace around it.
	if !bytes.Contains(rec.Value, body) {
		t.Errorf("the record does not carry the body verbatim")
	}
	if want := bytes.Trim(body, " \t\r\n"); !bytes.Equal(envl.Event, want) {
		t.Errorf("envelope event differs from the body received: %s", firstDiff(envl.Event, want))
	}
}

func firstDiff(got, want []byte) string {
	n := min(len(got), len(want))
	i := 0
	for i < n && got[i] == want[i] {
		i++
	}
	clip := func(b []byte) []byte { return b[i:min(len(b), i+24)] }
	return fmt.Sprintf("at byte %d of %d/%d: got %q, want %q", i, len(got), len(want), clip(got), clip(want))
}

// signer returns the Stripe-Signature header for a body sent at now.
type signer func(body []byte, now time.Time) string

func hmacHex(secret string, ts int64, body []byte) string {
	return hex.EncodeToString(webhook.ComputeSignature(time.Unix(ts, 0), body, secret))
}

// hmacOfBody is an HMAC-SHA256 of the body alone, without Stripe's
// "<timestamp>." prefix.
func hmacOfBody(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// signedAt signs with secret at now+offset, as Stripe does.
func signedAt(secret string, offset time.Duration) signer {
	return func(body []byte, now time.Time) string {
		ts := now.Add(offset).Unix()
		return fmt.Sprintf("t=%d,v1=%s", ts, hmacHex(secret, ts, body))
	}
}

// headerOf builds a header from now's timestamp and the primary secret's
// valid signature of the body for it.
func headerOf(format func(ts int64, sig string) string) signer {
	return func(body []byte, now time.Time) string {
		ts := now.Unix()
		return format(ts, hmacHex(primarySecret, ts, body))
	}
}

// Ids of the corpus events.
const (
	eventID   = "evt_hostile_3OKpiLJZ4cn2Yx0b"
	piID      = "pi_hostile_3OKpiLJZ4cn2Yx0b"
	sessionID = "cs_hostile_a1B2c3D4e5F6g7H8"
)

// person holds raw JSON string contents (already escaped as the test wants
// them on the wire) for the customer fields of a payment_intent event.
type person struct{ name, line1, city string }

var aino = person{"Aino Virtanen", "Hämeenkatu 10", "Tampere"}

// paymentIntent returns a payment_intent object with p's fields inserted
// verbatim and metadata as the raw members of the metadata object.
func paymentIntent(p person, metadata string) string {
	return `{"id":"` + piID + `","object":"payment_intent","amount":4990,"amount_received":4990,` +
		`"currency":"eur","status":"succeeded","receipt_email":"aino@example.com",` +
		`"metadata":{` + metadata + `},"shipping":{"name":"` + p.name + `","phone":"+358401234567",` +
		`"address":{"line1":"` + p.line1 + `","city":"` + p.city + `","postal_code":"33100","country":"FI"}}}`
}

// event wraps a raw data.object in a Stripe event of type typ.
func event(typ, object string) []byte {
	return []byte(`{"id":"` + eventID + `","object":"event","api_version":"2023-10-16","created":1701475200,` +
		`"data":{"object":` + object + `},"livemode":false,"pending_webhooks":1,"type":"` + typ + `"}`)
}

// piEvent is a payment_intent.succeeded event for p.
func piEvent(p person) []byte {
	return event("payment_intent.succeeded", paymentIntent(p, `"order_ref":"1042"`))
}

// sizedEvent is a payment_intent.succeeded event of exactly size bytes,
// padded with metadata values as a shop with large metadata would send.
func sizedEvent(size int) []byte {
	const valueLen = 400
	var md strings.Builder
	md.WriteString(`"order_ref":"1042"`)
	base := len(event("payment_intent.succeeded", paymentIntent(aino, "")))
	for i := 0; ; i++ {
		entry := fmt.Sprintf(`,"k%04d":"%s"`, i, strings.Repeat("m", valueLen))
		if base+md.Len()+len(entry) > size {
			break
		}
		md.WriteString(entry)
	}
	rest := size - base - md.Len()
	if rest > 0 {
		// Lengthen the first value to land on size exactly.
		s := md.String()
		md.Reset()
		md.WriteString(strings.Replace(s, `"order_ref":"1042"`, `"order_ref":"1042`+strings.Repeat("0", rest)+`"`, 1))
	}
	b := event("payment_intent.succeeded", paymentIntent(aino, md.String()))
	if len(b) != size {
		panic(fmt.Sprintf("sizedEvent: %d bytes, want %d", len(b), size))
	}
	return b
}
