package airtable

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

	"github.com/orderflow/orderflow/integrations"
)

const (
	testToken = "patTEST.secret"
	testBase  = "appTESTBASE123"
	testTable = "Production log"
)

type reply struct {
	status  int
	file    string
	body    string
	headers map[string]string
}

type seen struct {
	method, path, rawPath, query, auth, contentType string
	body                                            map[string]any
}

type fakeAirtable struct {
	t     *testing.T
	reply reply
	mu    sync.Mutex
	reqs  []seen
}

func (f *fakeAirtable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s := seen{method: r.Method, path: r.URL.Path, rawPath: r.URL.EscapedPath(), query: r.URL.RawQuery,
		auth: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type")}
	if err := json.Unmarshal(b, &s.body); err != nil {
		f.t.Errorf("body is not JSON: %v", err)
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, s)
	f.mu.Unlock()
	rp := f.reply
	if rp.status == 0 {
		rp.status = 200
	}
	body := []byte(rp.body)
	if rp.file != "" {
		var err error
		if body, err = os.ReadFile(filepath.Join("testdata", rp.file)); err != nil {
			f.t.Error(err)
		}
	}
	for k, v := range rp.headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rp.status)
	_, _ = w.Write(body)
}

func (f *fakeAirtable) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

func newTest(t *testing.T, rp reply, mod ...func(*Config)) (*Client, *fakeAirtable, *bytes.Buffer) {
	t.Helper()
	f := &fakeAirtable{t: t, reply: rp}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	logs := &bytes.Buffer{}
	cfg := Config{BaseURL: srv.URL, Token: testToken, BaseID: testBase, Table: testTable,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, f, logs
}

func testOrder() integrations.Order {
	return integrations.Order{
		ID:          "pi_3OabcDEF1234567890",
		Number:      "OF-1234567890",
		Currency:    "eur",
		AmountTotal: 5478,
		Items: []integrations.LineItem{
			{SKU: "prod_socks", Description: "Villasukat – käsin neulottu", Quantity: 2, UnitAmount: 1500, AmountTotal: 3000},
			{Description: "Kirja", Quantity: 1, UnitAmount: 1800, AmountTotal: 1800},
		},
		Customer:  integrations.Customer{Name: "Åsa Öberg-Järvinen", Email: "asa@example.fi"},
		Shipping:  integrations.Address{Country: "FI", City: "Helsinki"},
		CreatedAt: time.Date(2026, 11, 27, 23, 30, 0, 0, time.UTC),
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Token: "pat", BaseID: "app1", Table: "tbl1"}
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"minimal", func(*Config) {}, true},
		{"no token", func(c *Config) { c.Token = "" }, false},
		{"no base", func(c *Config) { c.BaseID = "" }, false},
		{"base with slash", func(c *Config) { c.BaseID = "app1/x" }, false},
		{"no table", func(c *Config) { c.Table = "" }, false},
		{"bad URL", func(c *Config) { c.BaseURL = "api.airtable.com" }, false},
		{"negative rate", func(c *Config) { c.RequestsPerSecond = -1 }, false},
		{"merge field left out", func(c *Config) { c.Fields.OrderID = "-" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			if err := cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestUpsertOrderRequest(t *testing.T) {
	c, f, logs := newTest(t, reply{file: "upsert_created.json"})
	res, err := c.UpsertOrder(context.Background(), testOrder(), []string{"details", "crm"})
	if err != nil {
		t.Fatal(err)
	}
	if res.RecordID != "recA1b2C3d4E5f6G7" {
		t.Errorf("record id = %q", res.RecordID)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPatch || r.path != "/v0/"+testBase+"/"+testTable || r.rawPath != "/v0/appTESTBASE123/Production%20log" || r.query != "" {
		t.Errorf("request = %s %s (%s) ?%s", r.method, r.path, r.rawPath, r.query)
	}
	if r.auth != "Bearer "+testToken || r.contentType != "application/json" {
		t.Errorf("headers: auth %q type %q", r.auth, r.contentType)
	}
	want := map[string]any{
		"performUpsert": map[string]any{"fieldsToMergeOn": []any{"Order ID"}},
		"typecast":      true,
		"records": []any{map[string]any{"fields": map[string]any{
			"Order ID":     "pi_3OabcDEF1234567890",
			"Order Number": "OF-1234567890",
			"Status":       "details, crm",
			"Customer":     "Åsa Öberg-Järvinen",
			"Items":        "2 × Villasukat – käsin neulottu (30.00 EUR) [prod_socks]\n1 × Kirja (18.00 EUR)",
			"Total":        "54.78 EUR",
			"Country":      "FI",
			"Order Date":   "2026-11-27",
		}}},
	}
	gotJSON, _ := json.Marshal(r.body)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("body\n got %s\nwant %s", gotJSON, wantJSON)
	}
	for _, s := range []string{testToken, "asa@example.fi", "Åsa"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log contains %q: %s", s, logs)
		}
	}
	if !strings.Contains(logs.String(), "pi_3OabcDEF1234567890") {
		t.Errorf("log does not name the order: %s", logs)
	}
}

func TestConfigurableFields(t *testing.T) {
	c, f, _ := newTest(t, reply{file: "upsert_updated.json"}, func(cfg *Config) {
		cfg.Fields = Fields{OrderID: "Stripe ID", Status: "Done steps", Customer: "-", Items: "-", Country: "-", OrderDate: "-", Total: "Sum", OrderNumber: "-"}
		cfg.StatusAsList = true
		cfg.NoTypecast = true
	})
	if _, err := c.UpsertOrder(context.Background(), testOrder(), []string{"details"}); err != nil {
		t.Fatal(err)
	}
	body := f.requests()[0].body
	got, _ := json.Marshal(body)
	want := `{"performUpsert":{"fieldsToMergeOn":["Stripe ID"]},"records":[{"fields":{"Done steps":["details"],"Stripe ID":"pi_3OabcDEF1234567890","Sum":"54.78 EUR"}}],"typecast":false}`
	if string(got) != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

func TestMoneyFormatting(t *testing.T) {
	tests := []struct {
		currency         string
		unit, total      int64
		wantItem, wantTo string
	}{
		// The line as charged (its total, after discounts, tax included).
		{"eur", 3000, 5478, "2 × Villasukat (30.00 EUR)", "54.78 EUR"},
		{"jpy", 3000, 3300, "2 × Villasukat (3000 JPY)", "3300 JPY"},
		{"kwd", 3000, 12345, "2 × Villasukat (3.000 KWD)", "12.345 KWD"},
	}
	for _, tt := range tests {
		t.Run(tt.currency, func(t *testing.T) {
			c, f, _ := newTest(t, reply{file: "upsert_created.json"})
			o := testOrder()
			o.Currency, o.AmountTotal = tt.currency, tt.total
			o.Items = []integrations.LineItem{{Description: "Villasukat", Quantity: 2, AmountTotal: tt.unit}}
			if _, err := c.UpsertOrder(context.Background(), o, nil); err != nil {
				t.Fatal(err)
			}
			fields := f.requests()[0].body["records"].([]any)[0].(map[string]any)["fields"].(map[string]any)
			if fields["Items"] != tt.wantItem || fields["Total"] != tt.wantTo {
				t.Errorf("Items %q Total %q, want %q %q", fields["Items"], fields["Total"], tt.wantItem, tt.wantTo)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name       string
		reply      reply
		class      integrations.Class
		status     int
		msg        string
		retryAfter time.Duration
	}{
		{"422 invalid value is permanent", reply{status: 422, file: "error_422.json"}, integrations.Permanent, 422, "INVALID_VALUE_FOR_COLUMN", 0},
		{"401", reply{status: 401, file: "error_401.json"}, integrations.Permanent, 401, "AUTHENTICATION_REQUIRED", 0},
		{"403", reply{status: 403, file: "error_403.json"}, integrations.Permanent, 403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", 0},
		{"404 bare error string", reply{status: 404, file: "error_404.json"}, integrations.Permanent, 404, "NOT_FOUND", 0},
		{"400 invalid JSON", reply{status: 400, body: `{"error":{"type":"INVALID_REQUEST_UNKNOWN","message":"Invalid request: parameter validation failed"}}`}, integrations.Permanent, 400, "INVALID_REQUEST_UNKNOWN", 0},
		{"413 too large", reply{status: 413, body: `{"error":{"type":"REQUEST_TOO_LARGE","message":"Request body is too large"}}`}, integrations.Permanent, 413, "REQUEST_TOO_LARGE", 0},
		{"429 backs off 30 s", reply{status: 429, file: "error_429.json"}, integrations.Transient, 429, "", 30 * time.Second},
		{"429 with a longer Retry-After", reply{status: 429, file: "error_429.json", headers: map[string]string{"Retry-After": "45"}}, integrations.Transient, 429, "", 45 * time.Second},
		{"429 with a shorter Retry-After still waits 30 s", reply{status: 429, file: "error_429.json", headers: map[string]string{"Retry-After": "1"}}, integrations.Transient, 429, "", 30 * time.Second},
		{"500", reply{status: 500, body: `{"error":{"type":"SERVER_ERROR","message":"x"}}`}, integrations.Transient, 500, "SERVER_ERROR", 0},
		{"502 HTML", reply{status: 502, body: `<html>`}, integrations.Transient, 502, "", 0},
		{"503", reply{status: 503, body: ``}, integrations.Transient, 503, "", 0},
		{"200 without records", reply{status: 200, body: `{"records":[]}`}, integrations.Transient, 200, "response without a record", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := newTest(t, tt.reply)
			_, err := c.UpsertOrder(context.Background(), testOrder(), nil)
			var e *integrations.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v", err)
			}
			if e.Class != tt.class || e.Status != tt.status || !strings.Contains(e.Msg, tt.msg) || e.RetryAfter != tt.retryAfter {
				t.Errorf("err = %+v, want class %v status %d msg ~%q retry %v", e, tt.class, tt.status, tt.msg, tt.retryAfter)
			}
			if strings.Contains(err.Error(), "Åsa") {
				t.Errorf("error quotes customer data: %v", err)
			}
		})
	}
}

func TestAfter429NothingIsSentDuringThePenalty(t *testing.T) {
	c, f, _ := newTest(t, reply{status: 429, file: "error_429.json"})
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	c.limiter.now = clock.now
	c.limiter.sleep = clock.sleep
	ctx := context.Background()
	if _, err := c.UpsertOrder(ctx, testOrder(), nil); err == nil {
		t.Fatal("want the 429 error")
	}
	clock.advance(10 * time.Second)
	_, err := c.UpsertOrder(ctx, testOrder(), nil)
	if d, ok := integrations.RetryAfterOf(err); !ok || d != 20*time.Second || integrations.IsPermanent(err) {
		t.Fatalf("during the penalty err = %v, retry after %v", err, d)
	}
	if n := len(f.requests()); n != 1 {
		t.Fatalf("%d requests sent, want 1 (none during the penalty)", n)
	}
	f.mu.Lock()
	f.reply = reply{file: "upsert_updated.json"}
	f.mu.Unlock()
	clock.advance(20 * time.Second)
	if _, err := c.UpsertOrder(ctx, testOrder(), nil); err != nil {
		t.Fatalf("after the penalty: %v", err)
	}
}

func TestNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	c, err := New(Config{BaseURL: base, Token: testToken, BaseID: testBase, Table: testTable})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.UpsertOrder(context.Background(), testOrder(), nil)
	var e *integrations.Error
	if !errors.As(err, &e) || e.Class != integrations.Transient {
		t.Fatalf("err = %v", err)
	}
}

func TestClientSpacesRequests(t *testing.T) {
	c, f, _ := newTest(t, reply{file: "upsert_updated.json"})
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	c.limiter.now = clock.now
	c.limiter.sleep = clock.sleep
	for i := 0; i < 6; i++ {
		if _, err := c.UpsertOrder(context.Background(), testOrder(), nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.requests()); n != 6 {
		t.Fatalf("%d requests", n)
	}
	// The clock only moves by the limiter's sleeps: six requests at 5/s
	// take one second of waiting (the first goes at once).
	if got := clock.slept(); got != time.Second {
		t.Errorf("slept %v for 6 requests, want 1s", got)
	}
}

// The Order Date is the order's day in the shop's zone: 23:30 UTC on 27
// November is 01:30 on the 28th in Helsinki.
func TestOrderDateInTheShopsZone(t *testing.T) {
	helsinki, err := time.LoadLocation("Europe/Helsinki")
	if err != nil {
		t.Fatal(err)
	}
	c, f, _ := newTest(t, reply{file: "upsert_created.json"}, func(c *Config) { c.Location = helsinki })
	if _, err := c.UpsertOrder(context.Background(), testOrder(), []string{"details"}); err != nil {
		t.Fatal(err)
	}
	rec := f.requests()[0].body["records"].([]any)[0].(map[string]any)["fields"].(map[string]any)
	if rec["Order Date"] != "2026-11-28" {
		t.Errorf("Order Date = %v, want 2026-11-28", rec["Order Date"])
	}
}
