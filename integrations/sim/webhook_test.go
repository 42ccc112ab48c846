package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// signed builds Standard Webhooks headers with HMAC-SHA256 computed here.
func signed(id string, ts int64, body, secret string) map[string]string {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "." + body))
	return map[string]string{
		"Content-Type":      "application/json",
		"webhook-id":        id,
		"webhook-timestamp": strconv.FormatInt(ts, 10),
		"webhook-signature": "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)),
	}
}

const webhookBody = `{"type":"order.erp","version":1,"timestamp":"2026-01-02T03:04:05Z","data":{"order":{"id":"pi_1"},"results":{}}}`

// The specification's test vector, through the simulator's own verifier.
func TestWebhookSignatureTestVector(t *testing.T) {
	ws := newWebhookSim(nil, []string{testWebhookSecret}, nil)
	if !signatureMatches(ws.keys, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", []byte(`{"test": 2432232314}`),
		"v1,bm90IHRoaXMgb25l v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") {
		t.Fatal("the test vector's signature (second of two) is not accepted")
	}
	if signatureMatches(ws.keys, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265331", []byte(`{"test": 2432232314}`),
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") {
		t.Fatal("a signature for another timestamp is accepted")
	}
	if signatureMatches(ws.keys, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", []byte(`{"test": 2432232314}`),
		"v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") {
		t.Fatal("a v1a signature is taken for v1")
	}
}

func TestWebhookReceiverVerifiesAndCountsDuplicates(t *testing.T) {
	dir := t.TempDir()
	s, ts := newTest(t, Config{DataDir: dir, WebhookSecrets: []string{testWebhookSecret}})
	now := time.Now().Unix()
	url := ts.URL + "/webhooks/erp"
	r := call(t, "POST", url, signed("msg_a1", now, webhookBody, testWebhookSecret), webhookBody)
	wantStatus(t, r, 200)
	if m := r.json(t); m["ok"] != true || m["duplicate"] != false {
		t.Fatalf("first delivery: %s", r.body)
	}
	r = call(t, "POST", url, signed("msg_a1", now+5, webhookBody, testWebhookSecret), webhookBody)
	wantStatus(t, r, 200)
	if m := r.json(t); m["duplicate"] != true {
		t.Fatalf("second delivery: %s", r.body)
	}
	wantStats(t, s, StepWebhook, StepStats{Requests: 2, Created: 2, DuplicateCreates: 1})
	got := s.WebhookDeliveries()
	want := WebhookDelivery{Name: "erp", ID: "msg_a1", Type: "order.erp", Order: "pi_1", Attempts: 2, Verified: true, Timestamp: time.Unix(now+5, 0).UTC()}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("deliveries %+v, want [%+v]", got, want)
	}
	r = call(t, "GET", ts.URL+"/_sim/webhooks", nil, nil)
	if !strings.Contains(string(r.body), `"id":"msg_a1"`) || !strings.Contains(string(r.body), `"attempts":2`) {
		t.Fatalf("GET /_sim/webhooks: %s", r.body)
	}

	// Rotation: any one matching signature is enough.
	h := signed("msg_a2", now, webhookBody, testWebhookSecret)
	h["webhook-signature"] = "v1,AAAA " + h["webhook-signature"]
	wantStatus(t, call(t, "POST", url, h, webhookBody), 200)

	for _, tc := range []struct {
		name   string
		hdr    map[string]string
		body   string
		status int
		msg    string
	}{
		{"other secret", signed("msg_b", now, webhookBody, "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), webhookBody, 401, "no matching signature"},
		{"body changed", signed("msg_b", now, webhookBody, testWebhookSecret), strings.Replace(webhookBody, "pi_1", "pi_2", 1), 401, "no matching signature"},
		{"too old", signed("msg_b", now-600, webhookBody, testWebhookSecret), webhookBody, 401, "tolerance"},
		{"too new", signed("msg_b", now+600, webhookBody, testWebhookSecret), webhookBody, 401, "tolerance"},
		{"no id", map[string]string{"webhook-timestamp": "1", "webhook-signature": "v1,x"}, webhookBody, 400, "missing or malformed"},
		{"dotted id", signed("msg.b", now, webhookBody, testWebhookSecret), webhookBody, 400, "missing or malformed"},
		{"bad timestamp", map[string]string{"webhook-id": "m", "webhook-timestamp": "yesterday", "webhook-signature": "v1,x"}, webhookBody, 400, "unix seconds"},
		{"not a payload", signed("msg_b", now, `{"x":1}`, testWebhookSecret), `{"x":1}`, 400, "webhook payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, "POST", url, tc.hdr, tc.body)
			wantStatus(t, r, tc.status)
			if !strings.Contains(string(r.body), tc.msg) {
				t.Fatalf("body %q lacks %q", r.body, tc.msg)
			}
		})
	}
	wantStatus(t, call(t, "POST", ts.URL+"/webhooks/a.b", signed("msg_c", now, webhookBody, testWebhookSecret), webhookBody), 404)
	if len(s.WebhookDeliveries()) != 2 {
		t.Fatalf("refused deliveries were recorded: %+v", s.WebhookDeliveries())
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "outbox", "webhook", "erp-msg_a*.json"))
	if len(files) != 2 {
		t.Fatalf("%d payload files, want 2 (one per id)", len(files))
	}
	lines, _ := os.ReadFile(filepath.Join(dir, "outbox", "webhook.jsonl"))
	if strings.Count(string(lines), "\n") != 3 || strings.Count(string(lines), `"duplicate":true`) != 1 {
		t.Fatalf("webhook.jsonl: %s", lines)
	}
}

// Without secrets the form of the headers is still checked.
func TestWebhookReceiverWithoutSecret(t *testing.T) {
	s, ts := newTest(t, Config{})
	h := signed("msg_x", 1, webhookBody, testWebhookSecret) // any time: nothing to verify against
	wantStatus(t, call(t, "POST", ts.URL+"/webhooks/erp", h, webhookBody), 200)
	h["webhook-signature"] = "v1a,xyz"
	wantStatus(t, call(t, "POST", ts.URL+"/webhooks/erp", h, webhookBody), 400)
	if d := s.WebhookDeliveries(); len(d) != 1 || d[0].Verified {
		t.Fatalf("deliveries %+v, want one unverified", d)
	}
}

func TestWebhookFaults(t *testing.T) {
	s, ts := newTest(t, Config{})
	h := signed("msg_f", time.Now().Unix(), webhookBody, testWebhookSecret)
	for _, tc := range []struct {
		mode   Mode
		status int
	}{{ModeUnavailable, 503}, {ModeReject, 400}} {
		if err := s.SetFault(Fault{Step: StepWebhook, Mode: tc.mode}); err != nil {
			t.Fatal(err)
		}
		r := call(t, "POST", ts.URL+"/webhooks/erp", h, webhookBody)
		wantStatus(t, r, tc.status)
		if !strings.Contains(string(r.body), "(simulated)") {
			t.Fatalf("%s: body %q", tc.mode, r.body)
		}
	}
	s.ClearFaults("")
	wantStatus(t, call(t, "POST", ts.URL+"/webhooks/erp", h, webhookBody), 200)
	wantStats(t, s, StepWebhook, StepStats{Requests: 3, Created: 1})
}

func TestConfigRejectsBadWebhookSecret(t *testing.T) {
	_, err := New(Config{WebhookSecrets: []string{"whsec_!!"}})
	if err == nil || !strings.Contains(err.Error(), "webhook secret 1") {
		t.Fatalf("err = %v", err)
	}
}

// A receiver with secrets of its own verifies with those only; another
// receiver falls back to WebhookSecrets (none here: unverified).
func TestWebhookReceiverSecretsByName(t *testing.T) {
	const other = "whsec_MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0"
	s, ts := newTest(t, Config{WebhookSecretsByName: map[string][]string{"erp": {testWebhookSecret}}})
	now := time.Now().Unix()
	wantStatus(t, call(t, "POST", ts.URL+"/webhooks/erp", signed("msg_b1", now, webhookBody, testWebhookSecret), webhookBody), 200)
	wantStatus(t, call(t, "POST", ts.URL+"/webhooks/erp", signed("msg_b2", now, webhookBody, other), webhookBody), 401)
	wantStatus(t, call(t, "POST", ts.URL+"/webhooks/wms", signed("msg_b3", now, webhookBody, other), webhookBody), 200)
	verified := map[string]bool{}
	for _, d := range s.WebhookDeliveries() {
		verified[d.ID] = d.Verified
	}
	if want := map[string]bool{"msg_b1": true, "msg_b3": false}; !maps.Equal(verified, want) {
		t.Fatalf("deliveries verified %v, want %v", verified, want)
	}
	if _, err := New(Config{WebhookSecretsByName: map[string][]string{"erp": {"whsec_!!"}}}); err == nil || !strings.Contains(err.Error(), "webhook erp: secret 1") {
		t.Fatalf("bad secret of erp: err = %v", err)
	}
}
