package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/webhook"
)

// The secrets are 24 and 32 random bytes, base64 with the whsec_ prefix.
const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the specification's test-vector secret
	secretB = "whsec_7u4nG1Wq0cMCJ5b8v6m7vJ2vN1n3J8k0f1q2r3s4t5U="
	secretC = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)

// The specification's test vector (libraries/go TestWebhookSign).
func TestSignTestVector(t *testing.T) {
	key, err := webhook.ParseSecret(secretA)
	if err != nil {
		t.Fatal(err)
	}
	got := webhook.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestMessageIDStable(t *testing.T) {
	// sha256("erp\x00pi_3Abc"), first 16 bytes in hex, computed outside Go.
	if got, want := webhook.MessageID("erp", "pi_3Abc"), "msg_a0b7d627a8fc00c8f9da608b1d9b6f3f"; got != want {
		t.Fatalf("MessageID = %s, want %s", got, want)
	}
	if webhook.MessageID("erp", "pi_3Abc") == webhook.MessageID("warehouse", "pi_3Abc") {
		t.Fatal("two webhook steps share a message id")
	}
}

// receiver records deliveries and answers with the scripted statuses, then 200.
type receiver struct {
	mu      sync.Mutex
	got     []delivery
	replies []reply
}

type delivery struct {
	header http.Header
	body   []byte
}

type reply struct {
	status int
	header map[string]string
	body   string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.got = append(rc.got, delivery{r.Header.Clone(), body})
	rep := reply{status: 200, body: "ok"}
	if len(rc.replies) > 0 {
		rep, rc.replies = rc.replies[0], rc.replies[1:]
	}
	rc.mu.Unlock()
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

func newClient(t *testing.T, url string, mod func(*webhook.Config)) *webhook.Client {
	t.Helper()
	cfg := webhook.Config{Name: "erp", URL: url, Secrets: []string{secretA}}
	if mod != nil {
		mod(&cfg)
	}
	c, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testOrder() integrations.Order {
	return integrations.Order{
		ID: "pi_3Abc", Number: "OF-3ABC", Currency: "eur", AmountTotal: 12490, AmountTax: 2490,
		Items:    []integrations.LineItem{{Description: "Mug", Quantity: 2, UnitAmount: 5000, AmountTotal: 12490, AmountTax: 2490, Taxes: []integrations.Tax{{Amount: 2490, Percentage: "25.5"}}}},
		Customer: integrations.Customer{Name: "Åsa Öberg", Email: "asa@example.com"},
	}
}

func testResults() map[string]json.RawMessage {
	return map[string]json.RawMessage{
		"invoice":  json.RawMessage(`{"number":"55433853972160","provider_id":"1811"}`),
		"shipping": json.RawMessage(`{"shipment_id":"7000","tracking_number":"0037","tracking_url":"https://t.example/0037","label_location":"file:///l.pdf"}`),
	}
}

func TestDeliverSignedPayload(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	c := newClient(t, srv.URL+"/hooks/orders", func(c *webhook.Config) { c.Now = func() time.Time { return fixed } })

	res, err := c.Deliver(context.Background(), testOrder(), testResults())
	if err != nil {
		t.Fatal(err)
	}
	if res != (webhook.Result{MessageID: "msg_a0b7d627a8fc00c8f9da608b1d9b6f3f", Status: 200}) {
		t.Fatalf("result = %+v", res)
	}
	d := rc.deliveries()
	if len(d) != 1 {
		t.Fatalf("%d deliveries, want 1", len(d))
	}
	h := d[0].header
	if h.Get("webhook-id") != "msg_a0b7d627a8fc00c8f9da608b1d9b6f3f" || h.Get("webhook-timestamp") != "1767323045" {
		t.Errorf("id %q timestamp %q", h.Get("webhook-id"), h.Get("webhook-timestamp"))
	}
	if h.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type = %q", h.Get("Content-Type"))
	}
	// The official library verifies the signature (its own HMAC code).
	wh, err := standardwebhooks.NewWebhook(secretA)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.VerifyIgnoringTimestamp(d[0].body, h); err != nil {
		t.Fatalf("official library rejects the delivery: %v", err)
	}
	other, _ := standardwebhooks.NewWebhook(secretC)
	if err := other.VerifyIgnoringTimestamp(d[0].body, h); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Fatalf("another secret verifies: %v", err)
	}
	tampered := append([]byte(nil), d[0].body...)
	tampered[len(tampered)-2] = ' '
	if err := wh.VerifyIgnoringTimestamp(tampered, h); err == nil {
		t.Fatal("a changed body verifies")
	}

	var p map[string]any
	if err := json.Unmarshal(d[0].body, &p); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		path []string
		want any
	}{
		{[]string{"type"}, "order.erp"},
		{[]string{"version"}, float64(1)},
		{[]string{"timestamp"}, "2026-01-02T03:04:05Z"},
		{[]string{"data", "order", "id"}, "pi_3Abc"},
		{[]string{"data", "order", "amount_total"}, float64(12490)},
		{[]string{"data", "order", "customer", "name"}, "Åsa Öberg"},
		{[]string{"data", "results", "invoice", "number"}, "55433853972160"},
		{[]string{"data", "results", "shipping", "tracking_number"}, "0037"},
	}
	for _, c := range checks {
		var cur any = p
		for _, k := range c.path {
			m, _ := cur.(map[string]any)
			cur = m[k]
		}
		if cur != c.want {
			t.Errorf("%s = %#v, want %#v", strings.Join(c.path, "."), cur, c.want)
		}
	}
}

// With the real clock the library's full Verify (±5 minutes) passes too,
// and a second delivery of the same order carries the same id.
func TestDeliverVerifiesWithToleranceAndKeepsID(t *testing.T) {
	rc := &receiver{replies: []reply{{status: 503}}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	c := newClient(t, srv.URL, nil)
	if _, err := c.Deliver(context.Background(), testOrder(), nil); err == nil || integrations.IsPermanent(err) {
		t.Fatalf("first attempt: err = %v, want transient", err)
	}
	if _, err := c.Deliver(context.Background(), testOrder(), nil); err != nil {
		t.Fatal(err)
	}
	d := rc.deliveries()
	if len(d) != 2 || d[0].header.Get("webhook-id") != d[1].header.Get("webhook-id") {
		t.Fatalf("retry changed the id: %d deliveries", len(d))
	}
	wh, _ := standardwebhooks.NewWebhook(secretA)
	if err := wh.Verify(d[1].body, d[1].header); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !strings.Contains(string(d[1].body), `"results":{}`) {
		t.Errorf("nil results should be an empty object: %s", d[1].body)
	}
}

func TestKeyRotationSignsWithEverySecret(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	c := newClient(t, srv.URL, func(c *webhook.Config) { c.Secrets = []string{secretA, secretB} })
	if _, err := c.Deliver(context.Background(), testOrder(), nil); err != nil {
		t.Fatal(err)
	}
	d := rc.deliveries()[0]
	sigs := strings.Split(d.header.Get("webhook-signature"), " ")
	if len(sigs) != 2 || !strings.HasPrefix(sigs[0], "v1,") || !strings.HasPrefix(sigs[1], "v1,") || sigs[0] == sigs[1] {
		t.Fatalf("signature header %q, want two different v1 signatures", d.header.Get("webhook-signature"))
	}
	for _, s := range []string{secretA, secretB} {
		wh, _ := standardwebhooks.NewWebhook(s)
		if err := wh.Verify(d.body, d.header); err != nil {
			t.Errorf("a receiver with one of the secrets rejects: %v", err)
		}
	}
}

func TestStatusClasses(t *testing.T) {
	httpDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		rep        reply
		ok         bool
		permanent  bool
		retryAfter time.Duration // lower bound
		msg        string
	}{
		{"200", reply{status: 200}, true, false, 0, ""},
		{"201", reply{status: 201}, true, false, 0, ""},
		{"204", reply{status: 204}, true, false, 0, ""},
		{"301 not followed", reply{status: 301, header: map[string]string{"Location": "https://elsewhere.example/x"}}, false, true, 0, "redirects are not followed"},
		{"307 not followed", reply{status: 307, header: map[string]string{"Location": "/other"}}, false, true, 0, "redirects are not followed"},
		{"400", reply{status: 400, body: "missing field\n  order_id"}, false, true, 0, "HTTP 400: missing field order_id"},
		{"401", reply{status: 401, body: "bad signature"}, false, true, 0, "bad signature"},
		{"404", reply{status: 404}, false, true, 0, "HTTP 404"},
		{"409 is permanent", reply{status: 409}, false, true, 0, "HTTP 409"},
		{"410 gone", reply{status: 410, body: "gone"}, false, true, 0, "endpoint gone"},
		{"408", reply{status: 408}, false, false, 0, "HTTP 408"},
		{"429 seconds", reply{status: 429, header: map[string]string{"Retry-After": "7"}}, false, false, 7 * time.Second, "HTTP 429"},
		{"500", reply{status: 500, body: strings.Repeat("x", 500)}, false, false, 0, "…"},
		{"502", reply{status: 502}, false, false, 0, "HTTP 502"},
		{"503 date", reply{status: 503, header: map[string]string{"Retry-After": httpDate}}, false, false, 80 * time.Second, "HTTP 503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var followed bool
			mux := http.NewServeMux()
			rc := &receiver{replies: []reply{tt.rep}}
			mux.Handle("/hook", rc)
			mux.HandleFunc("/other", func(http.ResponseWriter, *http.Request) { followed = true })
			srv := httptest.NewServer(mux)
			defer srv.Close()
			c := newClient(t, srv.URL+"/hook", nil)
			res, err := c.Deliver(context.Background(), testOrder(), nil)
			if tt.ok {
				if err != nil || res.Status != tt.rep.status {
					t.Fatalf("res %+v err %v, want status %d", res, err, tt.rep.status)
				}
				return
			}
			var e *integrations.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *integrations.Error", err)
			}
			if e.Provider != "webhook" || e.Status != tt.rep.status || integrations.IsPermanent(err) != tt.permanent {
				t.Errorf("provider %q status %d permanent %v; want webhook %d %v", e.Provider, e.Status, integrations.IsPermanent(err), tt.rep.status, tt.permanent)
			}
			if e.RetryAfter < tt.retryAfter || (tt.retryAfter == 0 && e.RetryAfter != 0) {
				t.Errorf("RetryAfter = %v, want ≥ %v", e.RetryAfter, tt.retryAfter)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "erp") {
				t.Errorf("error %q lacks %q or the webhook's name", err, tt.msg)
			}
			if len(err.Error()) > 250 {
				t.Errorf("error is %d characters, want a short excerpt", len(err.Error()))
			}
			if followed || len(rc.deliveries()) != 1 {
				t.Errorf("redirect followed %v, %d deliveries", followed, len(rc.deliveries()))
			}
		})
	}
}

func TestTimeoutIsTransient(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	c := newClient(t, srv.URL, func(c *webhook.Config) { c.Timeout = 50 * time.Millisecond })
	_, err := c.Deliver(context.Background(), testOrder(), nil)
	if err == nil || integrations.IsPermanent(err) || !integrations.IsTimeout(err) {
		t.Fatalf("err = %v, want a transient timeout", err)
	}
}

func TestPayloadLimit(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	c := newClient(t, srv.URL, func(c *webhook.Config) { c.MaxPayloadBytes = 1000 })
	o := testOrder()
	o.Metadata = map[string]string{"note": strings.Repeat("n", 2000)}
	_, err := c.Deliver(context.Background(), o, nil)
	if !integrations.IsPermanent(err) || !strings.Contains(err.Error(), "over the limit of 1000") {
		t.Fatalf("err = %v, want permanent over the limit", err)
	}
	if n := len(rc.deliveries()); n != 0 {
		t.Fatalf("%d deliveries of an oversized payload", n)
	}
}

func TestURLNeverInErrors(t *testing.T) {
	const token = "tok-s3cr3t-value"
	// The receiver's answer quotes the URL it was called at.
	rc := &receiver{replies: []reply{{status: 400, body: "nope: POST /in/" + token + "?shop=" + token + "2"}}}
	srv := httptest.NewServer(rc)
	c := newClient(t, srv.URL+"/in/"+token+"?shop="+token+"2", nil)
	_, err := c.Deliver(context.Background(), testOrder(), nil)
	if err == nil || strings.Contains(err.Error(), token) {
		t.Fatalf("4xx error %q is nil or shows the URL", err)
	}
	srv.Close() // nothing listens any more
	_, err = c.Deliver(context.Background(), testOrder(), nil)
	if err == nil || integrations.IsPermanent(err) {
		t.Fatalf("err = %v, want transient", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatalf("network error shows the URL: %q", err)
	}
}

func TestDenyPrivateNetworks(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc) // on 127.0.0.1
	defer srv.Close()
	c := newClient(t, srv.URL, func(c *webhook.Config) { c.DenyPrivateNetworks = true })
	_, err := c.Deliver(context.Background(), testOrder(), nil)
	if !integrations.IsPermanent(err) || !strings.Contains(err.Error(), "DenyPrivateNetworks") {
		t.Fatalf("err = %v, want a permanent refusal", err)
	}
	if len(rc.deliveries()) != 0 {
		t.Fatal("the loopback receiver was reached")
	}
	local := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	c = newClient(t, local, func(c *webhook.Config) { c.DenyPrivateNetworks = true })
	if _, err := c.Deliver(context.Background(), testOrder(), nil); !integrations.IsPermanent(err) {
		t.Fatalf("a name resolving to loopback: err = %v, want permanent", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := webhook.Config{Name: "erp", URL: "https://erp.example/hook", Secrets: []string{secretA}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*webhook.Config)
		msg  string
	}{
		{"no name", func(c *webhook.Config) { c.Name = "" }, "name"},
		{"dotted name", func(c *webhook.Config) { c.Name = "a.b" }, "name"},
		{"relative url", func(c *webhook.Config) { c.URL = "/hook" }, "absolute http(s) URL"},
		{"ftp url", func(c *webhook.Config) { c.URL = "ftp://x/y" }, "absolute http(s) URL"},
		{"userinfo", func(c *webhook.Config) { c.URL = "https://u:p@erp.example/" }, "user:password"},
		{"no secret", func(c *webhook.Config) { c.Secrets = nil }, "at least one secret"},
		{"not base64", func(c *webhook.Config) { c.Secrets = []string{"whsec_!!!"} }, "base64"},
		{"short key", func(c *webhook.Config) { c.Secrets = []string{"whsec_c2hvcnQ="} }, "5 bytes"},
		{"negative timeout", func(c *webhook.Config) { c.Timeout = -1 }, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			c.Secrets = append([]string(nil), ok.Secrets...)
			tt.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), "MfKQ9r8") || strings.Contains(err.Error(), "u:p") {
				t.Fatalf("error shows a secret: %v", err)
			}
		})
	}
}

// The receiver's host and address stay out of a transport error (some
// receivers put the credential in the host name); the webhook's name says
// which step failed.
func TestHostNeverInNetworkErrors(t *testing.T) {
	const host = "user-tok3n-s3cr3t.hooks.example"
	dnsFail := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: host, Server: "10.0.0.53:53", IsNotFound: true}}
	}}}
	c := newClient(t, "https://"+host+"/hook", func(c *webhook.Config) { c.HTTPClient = dnsFail })
	_, err := c.Deliver(context.Background(), testOrder(), nil)
	if err == nil || integrations.IsPermanent(err) {
		t.Fatalf("err = %v, want transient", err)
	}
	if got, want := err.Error(), "webhook: erp: deliver: lookup of the URL's host: no such host"; got != want {
		t.Errorf("DNS failure: %q, want %q", got, want)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused
	c = newClient(t, "http://"+addr+"/hook", nil)
	_, err = c.Deliver(context.Background(), testOrder(), nil)
	if err == nil || integrations.IsPermanent(err) {
		t.Fatalf("err = %v, want transient", err)
	}
	if got, want := err.Error(), "webhook: erp: deliver: dial: connect: connection refused"; got != want {
		t.Errorf("refused connection: %q, want %q", got, want)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("%v does not unwrap to ECONNREFUSED", err)
	}
}
