package stripe

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

const testKey = "sk_test_orderflow"

// route is one canned response of the fake Stripe.
type route struct {
	status  int
	file    string
	headers map[string]string
	body    string // used when file is empty
}

// fakeStripe serves canned responses by path and records every request.
type fakeStripe struct {
	t      *testing.T
	routes map[string]route
	mu     sync.Mutex
	reqs   []*http.Request
}

func newFake(t *testing.T, routes map[string]route) (*fakeStripe, *httptest.Server) {
	f := &fakeStripe{t: t, routes: routes}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeStripe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	f.mu.Unlock()
	rt, ok := f.routes[r.URL.Path]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"Unrecognized request URL"}}`))
		return
	}
	for k, v := range rt.headers {
		w.Header().Set(k, v)
	}
	body := []byte(rt.body)
	if rt.file != "" {
		var err error
		if body, err = os.ReadFile(filepath.Join("testdata", rt.file)); err != nil {
			f.t.Errorf("fixture: %v", err)
		}
	}
	if rt.status == 0 {
		rt.status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rt.status)
	_, _ = w.Write(body)
}

func (f *fakeStripe) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.reqs...)
}

func newClient(t *testing.T, base string) *Client {
	t.Helper()
	c, err := New(Config{BaseURL: base, SecretKey: testKey, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"minimal", Config{SecretKey: "sk_test_1"}, true},
		{"custom base", Config{SecretKey: "sk_test_1", BaseURL: "http://localhost:12111"}, true},
		{"no key", Config{}, false},
		{"bad base", Config{SecretKey: "sk_test_1", BaseURL: "localhost:12111"}, false},
		{"negative timeout", Config{SecretKey: "sk_test_1", Timeout: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestOrderDetailsPaymentIntent(t *testing.T) {
	const pi = "pi_3OabcDEF1234567890"
	f, srv := newFake(t, map[string]route{
		"/v1/payment_intents/" + pi:                         {file: "payment_intent.json"},
		"/v1/checkout/sessions":                             {file: "sessions_list.json"},
		"/v1/checkout/sessions/cs_test_a1B2c3D4/line_items": {file: "line_items.json"},
	})
	o, err := newClient(t, srv.URL).OrderDetails(context.Background(), pi)
	if err != nil {
		t.Fatal(err)
	}

	reqs := f.requests()
	want := []struct {
		path  string
		query url.Values
	}{
		// The session with its line items and PaymentIntent expanded; this
		// fixture has neither (as if Stripe had left them out), so both are
		// read on their own.
		{"/v1/checkout/sessions", url.Values{"payment_intent": {pi}, "limit": {"1"},
			"expand[0]": {"data.line_items"}, "expand[1]": {"data.line_items.data.taxes"}, "expand[2]": {"data.payment_intent"}}},
		{"/v1/checkout/sessions/cs_test_a1B2c3D4/line_items", url.Values{"limit": {"100"}, "expand[0]": {"data.taxes"}}},
		{"/v1/payment_intents/" + pi, url.Values{}},
	}
	if len(reqs) != len(want) {
		t.Fatalf("got %d requests, want %d", len(reqs), len(want))
	}
	for i, w := range want {
		r := reqs[i]
		if r.Method != http.MethodGet || r.URL.Path != w.path {
			t.Errorf("request %d = %s %s, want GET %s", i, r.Method, r.URL.Path, w.path)
		}
		if got := r.URL.Query(); got.Encode() != w.query.Encode() {
			t.Errorf("request %d query = %q, want %q", i, got.Encode(), w.query.Encode())
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
			t.Errorf("request %d Authorization = %q", i, got)
		}
		if got := r.Header.Get("Stripe-Version"); got != "2023-10-16" {
			t.Errorf("request %d Stripe-Version = %q", i, got)
		}
	}

	checks := []struct {
		name      string
		got, want any
	}{
		{"ID", o.ID, pi},
		{"Number", o.Number, integrations.OrderNumber(pi)},
		{"PaymentIntentID", o.PaymentIntentID, pi},
		{"CheckoutSessionID", o.CheckoutSessionID, "cs_test_a1B2c3D4"},
		{"Currency", o.Currency, "eur"},
		{"AmountTotal", o.AmountTotal, int64(5478)},
		{"AmountSubtotal", o.AmountSubtotal, int64(4800)},
		{"AmountTax", o.AmountTax, int64(1088)},
		{"AmountShipping", o.AmountShipping, int64(590)},
		{"Customer.Email (session wins over receipt_email)", o.Customer.Email, "åsa.öberg@example.fi"},
		{"Customer.Name", o.Customer.Name, "Åsa Öberg-Järvinen"},
		{"Customer.Phone", o.Customer.Phone, "+358401234567"},
		{"Shipping (session wins over PI)", o.Shipping, integrations.Address{Name: "Åsa Öberg-Järvinen", Line1: "Mannerheimintie 12 B 7", Line2: "c/o Ø", PostalCode: "00100", City: "Helsinki", Country: "FI"}},
		{"Locale from metadata", o.Locale, "fi-FI"},
		{"Metadata merged", o.Metadata["campaign"] + "/" + o.Metadata["channel"], "black-friday/web"},
		{"CreatedAt", o.CreatedAt, time.Unix(1732780790, 0).UTC()},
		{"items", len(o.Items), 2},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if len(o.Items) == 2 {
		wantItems := []integrations.LineItem{
			{SKU: "prod_socks", Description: "Villasukat – käsin neulottu", Quantity: 2, UnitAmount: 1500, AmountTotal: 3765, AmountTax: 765, TaxRateBasisPoints: 2550},
			{SKU: "prod_book", Description: "Kirja: Seitsemän veljestä", Quantity: 1, UnitAmount: 1800, AmountTotal: 2043, AmountTax: 243, TaxRateBasisPoints: 1350},
		}
		for i, w := range wantItems {
			if o.Items[i] != w {
				t.Errorf("item %d = %+v, want %+v", i, o.Items[i], w)
			}
		}
	}
}

func TestOrderDetailsPaymentIntentWithoutSession(t *testing.T) {
	const pi = "pi_3OabcDEF1234567890"
	_, srv := newFake(t, map[string]route{
		"/v1/payment_intents/" + pi: {file: "payment_intent.json"},
		"/v1/checkout/sessions":     {body: `{"object":"list","url":"/v1/checkout/sessions","has_more":false,"data":[]}`},
	})
	o, err := newClient(t, srv.URL).OrderDetails(context.Background(), pi)
	if err != nil {
		t.Fatal(err)
	}
	if o.AmountTotal != 5478 || o.Customer.Email != "receipt@example.com" || o.Shipping.City != "Espoo" ||
		o.Shipping.Country != "FI" || o.Customer.Name != "Pi Shipping Name" || o.Locale != "fi-FI" || len(o.Items) != 0 || o.CheckoutSessionID != "" {
		t.Fatalf("order from PaymentIntent alone = %+v", o)
	}
}

func TestOrderDetailsCheckoutSessionJPY(t *testing.T) {
	const cs = "cs_test_jpY9"
	f, srv := newFake(t, map[string]route{
		"/v1/checkout/sessions/" + cs:                 {file: "session_jpy.json"},
		"/v1/checkout/sessions/" + cs + "/line_items": {file: "line_items_jpy.json"},
	})
	o, err := newClient(t, srv.URL).OrderDetails(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.requests()); n != 2 {
		t.Errorf("got %d requests, want 2 (no PaymentIntent to fetch)", n)
	}
	if o.ID != cs || o.Number != integrations.OrderNumber(cs) || o.PaymentIntentID != "" {
		t.Errorf("ids = %q %q %q", o.ID, o.Number, o.PaymentIntentID)
	}
	// JPY has no minor unit: 3300 is ¥3,300, not ¥33.00.
	if o.Currency != "jpy" || o.AmountTotal != 3300 || o.AmountTax != 300 || integrations.FormatMoney(o.AmountTotal, o.Currency) != "3300 JPY" {
		t.Errorf("money = %d %s tax %d", o.AmountTotal, o.Currency, o.AmountTax)
	}
	if o.Customer.Email != "yamada@example.jp" || o.Customer.Name != "山田 太郎" || o.Shipping.City != "東京都" {
		t.Errorf("customer = %+v shipping = %+v", o.Customer, o.Shipping)
	}
	if o.Locale != "ja" {
		t.Errorf("locale = %q, want the session's locale when metadata has none", o.Locale)
	}
	if len(o.Items) != 1 || o.Items[0].UnitAmount != 1000 || o.Items[0].Quantity != 3 || o.Items[0].SKU != "price_matcha" {
		t.Errorf("items = %+v", o.Items)
	}
}

func TestOrderDetailsErrors(t *testing.T) {
	const pi = "pi_missing"
	tests := []struct {
		name       string
		rt         route
		class      integrations.Class
		status     int
		retryAfter time.Duration
	}{
		{"404 resource missing is permanent", route{status: 404, file: "error_404.json"}, integrations.Permanent, 404, 0},
		{"400 invalid request is permanent", route{status: 400, body: `{"error":{"type":"invalid_request_error","message":"bad"}}`}, integrations.Permanent, 400, 0},
		{"401 bad key is permanent", route{status: 401, body: `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****"}}`}, integrations.Permanent, 401, 0},
		{"429 honours Retry-After", route{status: 429, file: "error_429.json", headers: map[string]string{"Retry-After": "7"}}, integrations.Transient, 429, 7 * time.Second},
		{"409 lock timeout is transient", route{status: 409, file: "error_409.json"}, integrations.Transient, 409, 0},
		{"408 is transient", route{status: 408, body: `{"error":{"type":"invalid_request_error","message":"timeout"}}`}, integrations.Transient, 408, 0},
		{"500 api_error is transient", route{status: 500, file: "error_500.json"}, integrations.Transient, 500, 0},
		{"400 with Stripe-Should-Retry is transient", route{status: 400, body: `{"error":{"type":"invalid_request_error","message":"x"}}`, headers: map[string]string{"Stripe-Should-Retry": "true"}}, integrations.Transient, 400, 0},
		{"502 HTML from a proxy is transient", route{status: 502, body: `<html>bad gateway</html>`}, integrations.Transient, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newFake(t, map[string]route{"/v1/checkout/sessions": tt.rt})
			_, err := newClient(t, srv.URL).OrderDetails(context.Background(), pi)
			var e *integrations.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *integrations.Error", err, err)
			}
			if e.Class != tt.class || e.Status != tt.status || e.RetryAfter != tt.retryAfter || e.Provider != "stripe" {
				t.Errorf("err = %+v, want class %v status %d retry after %v", e, tt.class, tt.status, tt.retryAfter)
			}
			if strings.Contains(err.Error(), "<html>") {
				t.Errorf("error quotes the response body: %v", err)
			}
			if n := len(f.requests()); n != 1 {
				t.Errorf("stripe-go retried: %d requests, want 1", n)
			}
		})
	}
}

func TestOrderDetailsLaterCallFails(t *testing.T) {
	const pi = "pi_3OabcDEF1234567890"
	_, srv := newFake(t, map[string]route{
		"/v1/payment_intents/" + pi:                         {file: "payment_intent.json"},
		"/v1/checkout/sessions":                             {file: "sessions_list.json"},
		"/v1/checkout/sessions/cs_test_a1B2c3D4/line_items": {status: 503, body: `{"error":{"type":"api_error","message":"unavailable"}}`, headers: map[string]string{"Retry-After": "3"}},
	})
	_, err := newClient(t, srv.URL).OrderDetails(context.Background(), pi)
	var e *integrations.Error
	if !errors.As(err, &e) || e.Class != integrations.Transient || e.Op != "list line items" || e.RetryAfter != 3*time.Second {
		t.Fatalf("err = %#v", err)
	}
}

func TestOrderDetailsBadID(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1")
	_, err := c.OrderDetails(context.Background(), "ch_123")
	if !integrations.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
}

func TestOrderDetailsNetworkErrorIsTransient(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens any more
	_, err := newClient(t, base).OrderDetails(context.Background(), "pi_123")
	var e *integrations.Error
	if !errors.As(err, &e) || e.Class != integrations.Transient {
		t.Fatalf("err = %v, want transient *integrations.Error", err)
	}
	if strings.Contains(err.Error(), base) {
		t.Errorf("error names the URL: %v", err)
	}
}

func TestOrderDetailsCancelled(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	_, err := newClient(t, srv.URL).OrderDetails(ctx, "pi_123")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestOrderDetailsSessionFallsBackToPaymentIntentShipping(t *testing.T) {
	const cs = "cs_test_noShip"
	f, srv := newFake(t, map[string]route{
		"/v1/checkout/sessions/" + cs:                 {file: "session_no_shipping.json"},
		"/v1/checkout/sessions/" + cs + "/line_items": {body: `{"object":"list","data":[],"has_more":false,"url":"/v1/checkout/sessions/cs_test_noShip/line_items"}`},
		"/v1/payment_intents/pi_3OabcDEF1234567890":   {file: "payment_intent.json"},
	})
	o, err := newClient(t, srv.URL).OrderDetails(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 3 || reqs[2].URL.Path != "/v1/payment_intents/pi_3OabcDEF1234567890" {
		t.Fatalf("requests: %d", len(reqs))
	}
	if o.ID != cs || o.PaymentIntentID != "pi_3OabcDEF1234567890" || o.Shipping.City != "Espoo" ||
		o.Customer.Email != "buyer@example.com" || o.Customer.Name != "فاطمة" || o.Locale != "ar-KW" {
		t.Errorf("order = %+v", o)
	}
	// KWD has three decimals: 1000 fils is 1.000 KWD.
	if o.Currency != "kwd" || o.AmountTotal != 1000 || integrations.FormatMoney(o.AmountTotal, o.Currency) != "1.000 KWD" {
		t.Errorf("money = %d %s", o.AmountTotal, o.Currency)
	}
}

// When Stripe returns the session with its line items and PaymentIntent
// expanded, the order takes one call and is the same order.
func TestOrderDetailsPaymentIntentOneCall(t *testing.T) {
	const pi = "pi_3OabcDEF1234567890"
	_, full := newFake(t, map[string]route{
		"/v1/payment_intents/" + pi:                         {file: "payment_intent.json"},
		"/v1/checkout/sessions":                             {file: "sessions_list.json"},
		"/v1/checkout/sessions/cs_test_a1B2c3D4/line_items": {file: "line_items.json"},
	})
	want, err := newClient(t, full.URL).OrderDetails(context.Background(), pi)
	if err != nil {
		t.Fatal(err)
	}
	f, srv := newFake(t, map[string]route{"/v1/checkout/sessions": {file: "sessions_list_expanded.json"}})
	got, err := newClient(t, srv.URL).OrderDetails(context.Background(), pi)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("one-call order differs:\n got %+v\nwant %+v", got, want)
	}
}
