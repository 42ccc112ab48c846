package zoho

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

const (
	testClientID     = "1000.CLIENTID"
	testClientSecret = "s3cr3t-client"
	testRefresh      = "1000.refresh.token"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type reply struct {
	status  int
	body    string
	headers map[string]string
}

type crmRequest struct {
	method, path, auth, contentType string
	query                           url.Values
	body                            map[string]any
}

// fakeZoho is the accounts server and the CRM API in one handler.
type fakeZoho struct {
	t          *testing.T
	tokenDelay time.Duration
	tokenGate  chan struct{} // when set, token requests are answered once it is closed
	// token answers the n-th token request (1-based); default: "tok-n".
	token func(n int) reply
	// crm answers a CRM request made with the given access token; default:
	// success (insert for contacts, update for deals).
	crm func(module, token string) reply

	// org answers GET /crm/v3/org/currencies and /crm/v3/org; default:
	// multi-currency with EUR home and EUR, SEK, JPY, KWD active.
	org func(path string) reply

	tokenCalls atomic.Int64
	mu         sync.Mutex
	tokenReqs  []crmRequest
	crmReqs    []crmRequest
	getReqs    []crmRequest
}

const defaultCurrencies = `{"currencies":[{"iso_code":"EUR","is_active":true,"is_base":true},{"iso_code":"SEK","is_active":true,"is_base":false},
 {"iso_code":"JPY","is_active":true,"is_base":false},{"iso_code":"KWD","is_active":true,"is_base":false},{"iso_code":"USD","is_active":false,"is_base":false}]}`

func (f *fakeZoho) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := crmRequest{method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization"),
		contentType: r.Header.Get("Content-Type"), query: r.URL.Query()}
	var rp reply
	if r.URL.Path == "/oauth/v2/token" {
		n := int(f.tokenCalls.Add(1))
		if len(body) != 0 {
			f.t.Errorf("token request has a body")
		}
		f.mu.Lock()
		f.tokenReqs = append(f.tokenReqs, rec)
		f.mu.Unlock()
		time.Sleep(f.tokenDelay)
		if f.tokenGate != nil {
			<-f.tokenGate
		}
		if f.token != nil {
			rp = f.token(n)
		} else {
			rp = reply{body: fmt.Sprintf(`{"access_token":"tok-%d","api_domain":"https://www.zohoapis.com","token_type":"Bearer","expires_in":3600}`, n)}
		}
	} else if r.Method == http.MethodGet {
		f.mu.Lock()
		f.getReqs = append(f.getReqs, rec)
		f.mu.Unlock()
		if f.org != nil {
			rp = f.org(r.URL.Path)
		} else {
			rp = reply{body: defaultCurrencies}
		}
	} else {
		if err := json.Unmarshal(body, &rec.body); err != nil {
			f.t.Errorf("CRM body is not JSON: %v", err)
		}
		f.mu.Lock()
		f.crmReqs = append(f.crmReqs, rec)
		f.mu.Unlock()
		module := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/crm/v3/"), "/upsert")
		tok := strings.TrimPrefix(rec.auth, "Zoho-oauthtoken ")
		if f.crm != nil {
			rp = f.crm(module, tok)
		} else {
			rp = okReply(f.t, module)
		}
	}
	for k, v := range rp.headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	if rp.status == 0 {
		rp.status = http.StatusOK
	}
	w.WriteHeader(rp.status)
	_, _ = io.WriteString(w, rp.body)
}

func okReply(t *testing.T, module string) reply {
	if module == "Contacts" {
		return reply{status: 200, body: fixture(t, "contact_upsert_insert.json")}
	}
	return reply{status: 200, body: fixture(t, "deal_upsert_update.json")}
}

func (f *fakeZoho) getRequests() []crmRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]crmRequest(nil), f.getReqs...)
}

func (f *fakeZoho) crmRequests() []crmRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]crmRequest(nil), f.crmReqs...)
}

// fakeClock is a settable clock for the token cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTest(t *testing.T, f *fakeZoho, mod ...func(*Config)) (*Client, *fakeClock, *bytes.Buffer) {
	t.Helper()
	f.t = t
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	logs := &bytes.Buffer{}
	cfg := Config{
		APIBaseURL:   srv.URL,
		AccountsURL:  srv.URL,
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		RefreshToken: testRefresh,
		Timeout:      5 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(&syncWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	c.tokens.now = clock.now
	return c, clock, logs
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func testOrder() integrations.Order {
	return integrations.Order{
		ID:          "pi_3OabcDEF1234567890",
		Number:      integrations.OrderNumber("pi_3OabcDEF1234567890"),
		Currency:    "eur",
		AmountTotal: 5478,
		Items:       []integrations.LineItem{{Description: "Villasukat", Quantity: 2}, {Description: "Kirja", Quantity: 1}},
		// A gift: the buyer in Tampere, the recipient in Helsinki.
		Customer: integrations.Customer{Name: "Åsa Öberg-Järvinen", Email: "asa@example.fi", Phone: "+358401234567",
			Address: integrations.Address{Line1: "Hämeenkatu 10 B 7", Line2: "PL 12", PostalCode: "33100", City: "Tampere", Country: "FI"}},
		Shipping:  integrations.Address{Name: "Mikko Virtanen", Line1: "Mannerheimintie 12 B 7", Line2: "c/o Ø", PostalCode: "00100", City: "Helsinki", Country: "FI"},
		CreatedAt: time.Date(2026, 11, 27, 23, 30, 0, 0, time.UTC),
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{ClientID: "a", ClientSecret: "b", RefreshToken: "c"}
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"minimal", func(*Config) {}, true},
		{"other data centre", func(c *Config) {
			c.APIBaseURL, c.AccountsURL = "https://www.zohoapis.com", "https://accounts.zoho.com"
		}, true},
		{"no refresh token", func(c *Config) { c.RefreshToken = "" }, false},
		{"no client secret", func(c *Config) { c.ClientSecret = "" }, false},
		{"bad API URL", func(c *Config) { c.APIBaseURL = "www.zohoapis.eu" }, false},
		{"bad accounts URL", func(c *Config) { c.AccountsURL = "ftp://accounts" }, false},
		{"negative timeout", func(c *Config) { c.Timeout = -1 }, false},
		{"margin too large", func(c *Config) { c.TokenRefreshMargin = time.Hour }, false},
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

func TestUpsertContactAndDealRequests(t *testing.T) {
	f := &fakeZoho{}
	c, _, logs := newTest(t, f)
	res, err := c.UpsertContactAndDeal(context.Background(), testOrder())
	if err != nil {
		t.Fatal(err)
	}
	if res.ContactID != "4150868000003194003" || res.DealID != "4150868000000376008" {
		t.Errorf("result = %+v", res)
	}

	// The token request: POST with the grant in the query string.
	if len(f.tokenReqs) != 1 {
		t.Fatalf("%d token requests, want 1", len(f.tokenReqs))
	}
	tr := f.tokenReqs[0]
	wantQ := url.Values{"refresh_token": {testRefresh}, "client_id": {testClientID}, "client_secret": {testClientSecret}, "grant_type": {"refresh_token"}}
	if tr.method != http.MethodPost || tr.query.Encode() != wantQ.Encode() {
		t.Errorf("token request = %s %s?%s", tr.method, tr.path, tr.query.Encode())
	}

	reqs := f.crmRequests()
	if len(reqs) != 2 {
		t.Fatalf("%d CRM requests, want 2", len(reqs))
	}
	for i, want := range []string{"/crm/v3/Contacts/upsert", "/crm/v3/Deals/upsert"} {
		r := reqs[i]
		if r.method != http.MethodPost || r.path != want || r.auth != "Zoho-oauthtoken tok-1" || r.contentType != "application/json" {
			t.Errorf("request %d = %s %s auth %q type %q", i, r.method, r.path, r.auth, r.contentType)
		}
		if _, ok := r.body["trigger"]; ok {
			t.Errorf("request %d sends trigger though none is configured", i)
		}
	}
	contact := reqs[0].body
	if got := fmt.Sprint(contact["duplicate_check_fields"]); got != "[Email]" {
		t.Errorf("contact duplicate_check_fields = %s", got)
	}
	rec := contact["data"].([]any)[0].(map[string]any)
	wantContact := map[string]any{
		"Email": "asa@example.fi", "First_Name": "Åsa", "Last_Name": "Öberg-Järvinen", "Phone": "+358401234567",
		// The buyer's billing address, not the gift recipient's.
		"Mailing_Street": "Hämeenkatu 10 B 7, PL 12", "Mailing_City": "Tampere", "Mailing_Zip": "33100", "Mailing_Country": "FI",
	}
	for k, v := range wantContact {
		if rec[k] != v {
			t.Errorf("contact %s = %v, want %v", k, rec[k], v)
		}
	}

	deal := reqs[1].body
	if got := fmt.Sprint(deal["duplicate_check_fields"]); got != "[Order_ID]" {
		t.Errorf("deal duplicate_check_fields = %s", got)
	}
	drec := deal["data"].([]any)[0].(map[string]any)
	wantDeal := map[string]any{
		"Order_ID": "pi_3OabcDEF1234567890", "Deal_Name": "OF-1234567890 Åsa Öberg-Järvinen", "Stage": "Closed Won",
		"Amount": 54.78, "Currency": "EUR", "Closing_Date": "2026-11-27",
		"Description": "Order OF-1234567890 (pi_3OabcDEF1234567890), 2 line(s), 54.78 EUR",
	}
	for k, v := range wantDeal {
		if drec[k] != v {
			t.Errorf("deal %s = %v, want %v", k, drec[k], v)
		}
	}
	if gets := f.getRequests(); len(gets) != 1 || gets[0].path != "/crm/v3/org/currencies" || gets[0].auth != "Zoho-oauthtoken tok-1" {
		t.Errorf("currency look-ups = %+v, want one GET /crm/v3/org/currencies", gets)
	}
	if cn, _ := drec["Contact_Name"].(map[string]any); cn["id"] != "4150868000003194003" {
		t.Errorf("deal Contact_Name = %v", drec["Contact_Name"])
	}

	for _, secret := range []string{"asa@example.fi", testClientSecret, testRefresh, "tok-1", "Åsa"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs.String(), "pi_3OabcDEF1234567890") {
		t.Errorf("log does not name the order:\n%s", logs)
	}
}

func TestDealOptions(t *testing.T) {
	tests := []struct {
		name        string
		mod         func(*Config)
		wantTrigger string // "" = absent
		wantKey     string
	}{
		{"suppress triggers", func(c *Config) { c.Triggers = []string{} }, "[]", "Order_ID"},
		{"workflow only", func(c *Config) { c.Triggers = []string{"workflow"} }, "[workflow]", "Order_ID"},
		{"custom key field and pipeline", func(c *Config) {
			c.DealKeyField, c.DealPipeline, c.DealStage = "Stripe_Order", "Webshop", "Paid"
		}, "", "Stripe_Order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeZoho{}
			c, _, _ := newTest(t, f, tt.mod)
			if _, err := c.UpsertContactAndDeal(context.Background(), testOrder()); err != nil {
				t.Fatal(err)
			}
			deal := f.crmRequests()[1].body
			trig, has := deal["trigger"]
			if (tt.wantTrigger == "") == has || (has && fmt.Sprint(trig) != tt.wantTrigger) {
				t.Errorf("trigger = %v (present %v), want %q", trig, has, tt.wantTrigger)
			}
			if got := fmt.Sprint(deal["duplicate_check_fields"]); got != "["+tt.wantKey+"]" {
				t.Errorf("duplicate_check_fields = %s", got)
			}
			rec := deal["data"].([]any)[0].(map[string]any)
			if rec[tt.wantKey] != "pi_3OabcDEF1234567890" {
				t.Errorf("key field %s = %v", tt.wantKey, rec[tt.wantKey])
			}
			if tt.wantKey == "Stripe_Order" && (rec["Pipeline"] != "Webshop" || rec["Stage"] != "Paid") {
				t.Errorf("pipeline/stage = %v/%v", rec["Pipeline"], rec["Stage"])
			}
		})
	}
}

func TestDealAmountUsesCurrencyExponent(t *testing.T) {
	tests := []struct {
		currency string
		minor    int64
		want     string
	}{
		{"eur", 5478, "54.78"},
		{"jpy", 3300, "3300"},
		{"kwd", 12345, "12.345"},
	}
	for _, tt := range tests {
		t.Run(tt.currency, func(t *testing.T) {
			f := &fakeZoho{}
			c, _, _ := newTest(t, f)
			o := testOrder()
			o.Currency, o.AmountTotal = tt.currency, tt.minor
			if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			var raw struct {
				Data []struct {
					Amount json.Number `json:"Amount"`
				} `json:"data"`
			}
			b, _ := json.Marshal(f.crmRequests()[1].body)
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			if err := dec.Decode(&raw); err != nil {
				t.Fatal(err)
			}
			if got := raw.Data[0].Amount.String(); got != tt.want {
				t.Errorf("Amount = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestContactWithoutName(t *testing.T) {
	f := &fakeZoho{}
	c, _, _ := newTest(t, f)
	o := testOrder()
	o.Customer.Name, o.Customer.Address, o.Shipping = "", integrations.Address{}, integrations.Address{}
	if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	rec := f.crmRequests()[0].body["data"].([]any)[0].(map[string]any)
	if rec["Last_Name"] != "asa" || rec["First_Name"] != nil || rec["Mailing_Street"] != nil {
		t.Errorf("contact = %v", rec)
	}
}

func TestNoEmailIsPermanent(t *testing.T) {
	f := &fakeZoho{}
	c, _, _ := newTest(t, f)
	o := testOrder()
	o.Customer.Email = ""
	_, err := c.UpsertContactAndDeal(context.Background(), o)
	if !integrations.IsPermanent(err) || f.tokenCalls.Load() != 0 || len(f.crmRequests()) != 0 {
		t.Fatalf("err = %v, token calls %d, CRM calls %d", err, f.tokenCalls.Load(), len(f.crmRequests()))
	}
}

func TestTokenCachedUntilShortlyBeforeExpiry(t *testing.T) {
	f := &fakeZoho{}
	c, clock, _ := newTest(t, f)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := c.UpsertContactAndDeal(ctx, testOrder()); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.tokenCalls.Load(); n != 1 {
		t.Fatalf("%d token requests for 3 calls, want 1", n)
	}
	clock.add(57 * time.Minute) // 3 minutes left, more than the 2-minute margin
	if _, err := c.UpsertContactAndDeal(ctx, testOrder()); err != nil {
		t.Fatal(err)
	}
	if n := f.tokenCalls.Load(); n != 1 {
		t.Fatalf("refreshed with 3 minutes left: %d token requests", n)
	}
	clock.add(90 * time.Second) // 90 s left: inside the margin
	if _, err := c.UpsertContactAndDeal(ctx, testOrder()); err != nil {
		t.Fatal(err)
	}
	if n := f.tokenCalls.Load(); n != 2 {
		t.Fatalf("%d token requests after nearing expiry, want 2", n)
	}
	if got := f.crmRequests()[len(f.crmRequests())-1].auth; got != "Zoho-oauthtoken tok-2" {
		t.Errorf("after refresh Authorization = %q", got)
	}
}

func TestOneRefreshForConcurrentCalls(t *testing.T) {
	f := &fakeZoho{tokenDelay: 50 * time.Millisecond}
	c, _, _ := newTest(t, f)
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.UpsertContactAndDeal(context.Background(), testOrder()); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := f.tokenCalls.Load(); got != 1 {
		t.Fatalf("%d token requests for %d concurrent calls, want exactly 1", got, n)
	}
	if got := len(f.crmRequests()); got != 2*n {
		t.Errorf("%d CRM requests, want %d", got, 2*n)
	}
}

func TestRefreshOn401InvalidToken(t *testing.T) {
	// tok-1 has been revoked on the server side; tok-2 is good.
	f := &fakeZoho{}
	f.crm = func(module, tok string) reply {
		if tok == "tok-1" {
			return reply{status: 401, body: fixture(f.t, "error_invalid_token.json")}
		}
		return okReply(f.t, module)
	}
	c, _, _ := newTest(t, f)
	res, err := c.UpsertContactAndDeal(context.Background(), testOrder())
	if err != nil {
		t.Fatal(err)
	}
	if res.DealID == "" || f.tokenCalls.Load() != 2 {
		t.Fatalf("result %+v after %d token requests, want 2", res, f.tokenCalls.Load())
	}
	reqs := f.crmRequests()
	if len(reqs) != 3 || reqs[0].auth != "Zoho-oauthtoken tok-1" || reqs[1].auth != "Zoho-oauthtoken tok-2" || reqs[1].path != "/crm/v3/Contacts/upsert" {
		t.Fatalf("CRM requests: %+v", reqs)
	}
}

func TestRefreshOn401ConcurrentCallsRefreshOnce(t *testing.T) {
	f := &fakeZoho{tokenDelay: 20 * time.Millisecond}
	f.crm = func(module, tok string) reply {
		if tok == "tok-1" {
			return reply{status: 401, body: fixture(f.t, "error_invalid_token.json")}
		}
		return okReply(f.t, module)
	}
	c, _, _ := newTest(t, f)
	// Prime the cache with tok-1.
	if _, err := c.tokens.get(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.UpsertContactAndDeal(context.Background(), testOrder()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := f.tokenCalls.Load(); got != 2 {
		t.Fatalf("%d token requests, want 2 (the first and one refresh for all rejected calls)", got)
	}
}

func TestStill401AfterRefresh(t *testing.T) {
	f := &fakeZoho{}
	f.crm = func(string, string) reply {
		return reply{status: 401, body: fixture(f.t, "error_invalid_token.json")}
	}
	c, _, _ := newTest(t, f)
	_, err := c.UpsertContactAndDeal(context.Background(), testOrder())
	var e *integrations.Error
	if !errors.As(err, &e) || e.Status != 401 || !strings.Contains(e.Msg, "INVALID_TOKEN") {
		t.Fatalf("err = %v", err)
	}
	if f.tokenCalls.Load() != 2 || len(f.crmRequests()) != 2 {
		t.Fatalf("token requests %d, CRM requests %d; want one refresh and one repeat", f.tokenCalls.Load(), len(f.crmRequests()))
	}
}

func TestTokenEndpointThrottled(t *testing.T) {
	for _, status := range []int{400, 200, 429} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			var throttled atomic.Bool
			throttled.Store(true)
			f := &fakeZoho{}
			f.token = func(n int) reply {
				if throttled.Load() {
					return reply{status: status, body: fixture(f.t, "token_throttled.json")}
				}
				return reply{body: fixture(f.t, "token_ok.json")}
			}
			c, clock, _ := newTest(t, f)
			ctx := context.Background()

			_, err := c.UpsertContactAndDeal(ctx, testOrder())
			var e *integrations.Error
			if !errors.As(err, &e) || e.Class != integrations.Transient || e.RetryAfter != time.Minute {
				t.Fatalf("err = %#v, want transient with RetryAfter 1m", err)
			}
			// While throttled, no further token request is made.
			clock.add(20 * time.Second)
			_, err = c.UpsertContactAndDeal(ctx, testOrder())
			if !errors.As(err, &e) || e.Class != integrations.Transient || e.RetryAfter != 40*time.Second {
				t.Fatalf("second err = %#v, want transient with RetryAfter 40s", err)
			}
			if got := f.tokenCalls.Load(); got != 1 {
				t.Fatalf("%d token requests while throttled, want 1", got)
			}
			// After the cool-down the next call asks again and succeeds.
			throttled.Store(false)
			clock.add(41 * time.Second)
			if _, err := c.UpsertContactAndDeal(ctx, testOrder()); err != nil {
				t.Fatal(err)
			}
			if got := f.tokenCalls.Load(); got != 2 {
				t.Fatalf("%d token requests, want 2", got)
			}
			if got := f.crmRequests()[0].auth; got != "Zoho-oauthtoken 1000.access.token" {
				t.Errorf("Authorization = %q", got)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	tests := []struct {
		name  string
		reply reply
		class integrations.Class
	}{
		{"invalid_code in a 200 body", reply{status: 200, body: `{"error":"invalid_code"}`}, integrations.Permanent},
		{"invalid_client in a 400 body", reply{status: 400, body: `{"error":"invalid_client"}`}, integrations.Permanent},
		{"500", reply{status: 500, body: `oops`}, integrations.Transient},
		{"200 without a token", reply{status: 200, body: `{}`}, integrations.Transient},
		{"403 without a body", reply{status: 403}, integrations.Permanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeZoho{}
			f.token = func(int) reply { return tt.reply }
			c, _, _ := newTest(t, f)
			_, err := c.UpsertContactAndDeal(context.Background(), testOrder())
			var e *integrations.Error
			if !errors.As(err, &e) || e.Class != tt.class || e.Op != "refresh token" {
				t.Fatalf("err = %#v, want %v refresh-token error", err, tt.class)
			}
			if strings.Contains(err.Error(), testClientSecret) || strings.Contains(err.Error(), testRefresh) {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestTokenNetworkErrorHidesSecrets(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	c, err := New(Config{APIBaseURL: base, AccountsURL: base, ClientID: testClientID, ClientSecret: testClientSecret, RefreshToken: testRefresh})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.UpsertContactAndDeal(context.Background(), testOrder())
	var e *integrations.Error
	if !errors.As(err, &e) || e.Class != integrations.Transient {
		t.Fatalf("err = %v, want transient", err)
	}
	if strings.Contains(err.Error(), testClientSecret) || strings.Contains(err.Error(), testRefresh) {
		t.Errorf("error leaks a secret: %v", err)
	}
}

func TestCRMErrors(t *testing.T) {
	tests := []struct {
		name       string
		reply      func(t *testing.T) reply
		class      integrations.Class
		status     int
		msg        string
		retryAfter time.Duration
	}{
		{"record error MANDATORY_NOT_FOUND inside 200", func(t *testing.T) reply {
			return reply{status: 200, body: fixture(t, "record_mandatory_not_found.json")}
		}, integrations.Permanent, 200, "MANDATORY_NOT_FOUND (field Last_Name)", 0},
		{"record error DUPLICATE_DATA inside 202", func(t *testing.T) reply {
			return reply{status: 202, body: fixture(t, "record_duplicate_data.json")}
		}, integrations.Permanent, 202, "DUPLICATE_DATA (field Order_ID)", 0},
		{"record error inside 207", func(t *testing.T) reply {
			return reply{status: 207, body: fixture(t, "record_mandatory_not_found.json")}
		}, integrations.Permanent, 207, "MANDATORY_NOT_FOUND", 0},
		{"record error in a 400 body", func(t *testing.T) reply {
			return reply{status: 400, body: fixture(t, "record_mandatory_not_found.json")}
		}, integrations.Permanent, 400, "MANDATORY_NOT_FOUND", 0},
		{"400 INVALID_DATA", func(t *testing.T) reply {
			return reply{status: 400, body: fixture(t, "error_invalid_data.json")}
		}, integrations.Permanent, 400, "INVALID_DATA (field Amount)", 0},
		{"401 OAUTH_SCOPE_MISMATCH does not refresh", func(t *testing.T) reply {
			return reply{status: 401, body: fixture(t, "error_scope_mismatch.json")}
		}, integrations.Permanent, 401, "OAUTH_SCOPE_MISMATCH", 0},
		{"403 NO_PERMISSION", func(t *testing.T) reply {
			return reply{status: 403, body: `{"code":"NO_PERMISSION","details":{},"message":"permission denied","status":"error"}`}
		}, integrations.Permanent, 403, "NO_PERMISSION", 0},
		{"429 TOO_MANY_REQUESTS with Retry-After", func(t *testing.T) reply {
			return reply{status: 429, body: fixture(t, "error_too_many_requests.json"), headers: map[string]string{"Retry-After": "12"}}
		}, integrations.Transient, 429, "TOO_MANY_REQUESTS", 12 * time.Second},
		{"400 TOO_MANY_REQUESTS is still transient", func(t *testing.T) reply {
			return reply{status: 400, body: fixture(t, "error_too_many_requests.json")}
		}, integrations.Transient, 400, "TOO_MANY_REQUESTS", 0},
		{"500 INTERNAL_ERROR", func(t *testing.T) reply {
			return reply{status: 500, body: fixture(t, "error_internal.json")}
		}, integrations.Transient, 500, "INTERNAL_ERROR", 0},
		{"502 HTML", func(t *testing.T) reply {
			return reply{status: 502, body: "<html>bad gateway</html>"}
		}, integrations.Transient, 502, "", 0},
		{"200 that is not JSON", func(t *testing.T) reply {
			return reply{status: 200, body: "<html>"}
		}, integrations.Transient, 200, "response without a record result", 0},
		{"204 no content", func(t *testing.T) reply {
			return reply{status: 204}
		}, integrations.Transient, 204, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeZoho{}
			f.crm = func(string, string) reply { return tt.reply(t) }
			c, _, _ := newTest(t, f)
			_, err := c.UpsertContactAndDeal(context.Background(), testOrder())
			var e *integrations.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T)", err, err)
			}
			if e.Class != tt.class || e.Status != tt.status || !strings.Contains(e.Msg, tt.msg) || e.RetryAfter != tt.retryAfter || e.Op != "upsert contact" {
				t.Errorf("err = %+v, want class %v status %d msg ~%q retry %v", e, tt.class, tt.status, tt.msg, tt.retryAfter)
			}
			if f.tokenCalls.Load() != 1 {
				t.Errorf("%d token requests, want 1", f.tokenCalls.Load())
			}
			if strings.Contains(err.Error(), "asa@example.fi") {
				t.Errorf("error names the customer: %v", err)
			}
		})
	}
}

func TestDealErrorAfterContact(t *testing.T) {
	f := &fakeZoho{}
	f.crm = func(module, tok string) reply {
		if module == "Deals" {
			return reply{status: 200, body: fixture(f.t, "record_duplicate_data.json")}
		}
		return okReply(f.t, module)
	}
	c, _, _ := newTest(t, f)
	_, err := c.UpsertContactAndDeal(context.Background(), testOrder())
	var e *integrations.Error
	if !errors.As(err, &e) || e.Op != "upsert deal" || e.Class != integrations.Permanent {
		t.Fatalf("err = %v", err)
	}
}

func TestCancelledWhileWaitingForToken(t *testing.T) {
	f := &fakeZoho{tokenGate: make(chan struct{})}
	c, _, _ := newTest(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.UpsertContactAndDeal(ctx, testOrder())
		errc <- err
	}()
	// The token request is at the server and held there; the caller gives up.
	for deadline := time.Now().Add(10 * time.Second); f.tokenCalls.Load() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d token requests, want 1 within 10 s", f.tokenCalls.Load())
		}
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// The refresh goes on without the caller: once the server answers, the
	// token is cached. Had the refresh been cancelled with its caller,
	// nothing would be cached and this wait would fail.
	close(f.tokenGate)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		c.tokens.mu.Lock()
		tok, inFlight := c.tokens.token, c.tokens.flight != nil
		c.tokens.mu.Unlock()
		if tok == "tok-1" && !inFlight {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token after the refresh: %q (refresh in flight %v), want tok-1 cached", tok, inFlight)
		}
	}
	if _, err := c.UpsertContactAndDeal(context.Background(), testOrder()); err != nil {
		t.Fatal(err)
	}
	if n := f.tokenCalls.Load(); n != 1 {
		t.Errorf("%d token requests, want 1: the next call uses the cached token", n)
	}
	for _, r := range f.crmRequests() {
		if r.auth != "Zoho-oauthtoken tok-1" {
			t.Errorf("%s %s sent with %q, want the refreshed tok-1", r.method, r.path, r.auth)
		}
	}
}

func TestShortLivedTokenIsUsedForHalfItsLife(t *testing.T) {
	f := &fakeZoho{}
	f.token = func(n int) reply {
		return reply{body: fmt.Sprintf(`{"access_token":"tok-%d","expires_in":60}`, n)}
	}
	c, clock, _ := newTest(t, f)
	for i := 0; i < 3; i++ {
		if _, err := c.UpsertContactAndDeal(context.Background(), testOrder()); err != nil {
			t.Fatal(err)
		}
		clock.add(5 * time.Second)
	}
	if n := f.tokenCalls.Load(); n != 1 {
		t.Fatalf("%d token requests within 15 s of a 60 s token, want 1", n)
	}
	clock.add(20 * time.Second) // 35 s: past half its life
	if _, err := c.UpsertContactAndDeal(context.Background(), testOrder()); err != nil {
		t.Fatal(err)
	}
	if n := f.tokenCalls.Load(); n != 2 {
		t.Fatalf("%d token requests, want 2", n)
	}
}

func TestExpiresInMilliseconds(t *testing.T) {
	// Older accounts servers sent expires_in in ms next to expires_in_sec.
	f := &fakeZoho{}
	f.token = func(n int) reply {
		return reply{body: fmt.Sprintf(`{"access_token":"tok-%d","expires_in":3600000,"expires_in_sec":3600}`, n)}
	}
	c, clock, _ := newTest(t, f)
	if _, err := c.UpsertContactAndDeal(context.Background(), testOrder()); err != nil {
		t.Fatal(err)
	}
	clock.add(59 * time.Minute)
	if _, err := c.UpsertContactAndDeal(context.Background(), testOrder()); err != nil {
		t.Fatal(err)
	}
	if n := f.tokenCalls.Load(); n != 2 {
		t.Fatalf("%d token requests, want 2 (a 1-hour token, not a 1000-hour one)", n)
	}
}

// The deal's currency per CurrencyMode: in auto, the org's currencies are
// read once and a currency the CRM cannot book gets no Amount rather than
// a number in the wrong currency.
func TestDealCurrency(t *testing.T) {
	notEnabled := func(path string) reply {
		if path == "/crm/v3/org/currencies" {
			return reply{status: 403, body: `{"code":"CURRENCIES_NOT_ENABLED","details":{},"message":"Multi currency is not enabled","status":"error"}`}
		}
		return reply{body: `{"org":[{"currency":"Euro - EUR","currency_locale":"en_FI","mc_status":false}]}`}
	}
	noScope := func(string) reply {
		return reply{status: 401, body: `{"code":"OAUTH_SCOPE_MISMATCH","details":{},"message":"invalid oauth scope to access this URL","status":"error"}`}
	}
	tests := []struct {
		name     string
		org      func(string) reply
		mod      func(*Config)
		currency string
		amount   any // nil: absent
		cur      any
		note     string
		gets     []string
	}{
		{"auto, active", nil, nil, "sek", 11.26, "SEK", "", []string{"/crm/v3/org/currencies"}},
		{"auto, inactive", nil, nil, "usd", nil, nil, "; amount not booked: USD is not an active currency of the CRM", []string{"/crm/v3/org/currencies"}},
		{"auto, not enabled, home", notEnabled, nil, "eur", 11.26, nil, "", []string{"/crm/v3/org/currencies", "/crm/v3/org"}},
		{"auto, not enabled, other", notEnabled, nil, "sek", nil, nil, "; amount not booked: the CRM books EUR only (multi-currency is off), the order is in SEK", []string{"/crm/v3/org/currencies", "/crm/v3/org"}},
		{"auto, no scope, configured home", noScope, func(c *Config) { c.HomeCurrency = "sek" }, "sek", 11.26, nil, "", []string{"/crm/v3/org/currencies"}},
		{"auto, no scope, no home", noScope, nil, "eur", nil, nil, "; amount not booked: the CRM's home currency is unknown (set the home currency, or allow the token ZohoCRM.org.READ)", []string{"/crm/v3/org/currencies"}},
		{"multi", nil, func(c *Config) { c.CurrencyMode = CurrencyMulti }, "jpy", 1126.0, "JPY", "", nil},
		{"home, same", nil, func(c *Config) { c.CurrencyMode, c.HomeCurrency = CurrencyHome, "EUR" }, "eur", 11.26, nil, "", nil},
		{"home, other", nil, func(c *Config) { c.CurrencyMode, c.HomeCurrency = CurrencyHome, "EUR" }, "kwd", nil, nil, "; amount not booked: the CRM books EUR only, the order is in KWD", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeZoho{org: tt.org}
			var mods []func(*Config)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			c, _, _ := newTest(t, f, mods...)
			o := testOrder()
			o.Currency, o.AmountTotal = tt.currency, 1126
			for range 2 { // the look-up is cached
				if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
					t.Fatal(err)
				}
			}
			rec := f.crmRequests()[1].body["data"].([]any)[0].(map[string]any)
			if rec["Amount"] != tt.amount || rec["Currency"] != tt.cur {
				t.Errorf("Amount %v Currency %v, want %v %v", rec["Amount"], rec["Currency"], tt.amount, tt.cur)
			}
			want := "Order OF-1234567890 (pi_3OabcDEF1234567890), 2 line(s), " + integrations.FormatMoney(1126, tt.currency) + tt.note
			if rec["Description"] != want {
				t.Errorf("Description = %q\nwant %q", rec["Description"], want)
			}
			var gets []string
			for _, g := range f.getRequests() {
				gets = append(gets, g.path)
			}
			if fmt.Sprint(gets) != fmt.Sprint(tt.gets) {
				t.Errorf("look-ups = %v, want %v", gets, tt.gets)
			}
		})
	}
}

// A failing look-up (the CRM is down) fails the step transiently; nothing
// is booked with a guessed currency.
func TestDealCurrencyLookupUnavailable(t *testing.T) {
	f := &fakeZoho{org: func(string) reply {
		return reply{status: 500, body: `{"code":"INTERNAL_ERROR","details":{},"message":"x","status":"error"}`}
	}}
	c, _, _ := newTest(t, f)
	_, err := c.UpsertContactAndDeal(context.Background(), testOrder())
	if err == nil || integrations.IsPermanent(err) {
		t.Fatalf("err = %v, want transient", err)
	}
	if n := len(f.crmRequests()); n != 1 {
		t.Errorf("%d upserts, want only the contact", n)
	}
}

func TestConfigCurrency(t *testing.T) {
	base := Config{ClientID: "a", ClientSecret: "b", RefreshToken: "c"}
	for _, tt := range []struct {
		mode, home string
		ok         bool
	}{{"", "", true}, {"auto", "EUR", true}, {"multi", "", true}, {"home", "", false}, {"home", "EURO", false}, {"both", "", false}} {
		cfg := base
		cfg.CurrencyMode, cfg.HomeCurrency = tt.mode, tt.home
		if err := cfg.Validate(); (err == nil) != tt.ok {
			t.Errorf("mode %q home %q: Validate = %v, want ok=%v", tt.mode, tt.home, err, tt.ok)
		}
	}
}

func TestSplitName(t *testing.T) {
	for _, tt := range []struct {
		name        string
		business    bool
		first, last string
	}{
		{"Åsa Öberg-Järvinen", false, "Åsa", "Öberg-Järvinen"},
		{"Anna Maria  de la Cruz ", false, "Anna Maria de la", "Cruz"},
		{"Cher", false, "", "Cher"},
		// Family name first in Japanese, Chinese and Korean script.
		{"山田 花子", false, "花子", "山田"},
		{"佐藤　健", false, "健", "佐藤"}, // an ideographic space
		{"ヤマダ ハナコ", false, "ハナコ", "ヤマダ"},
		{"김 민준", false, "민준", "김"},
		{"王小明", false, "", "王小明"},
		// A business is one name.
		{"Keramik Müller GmbH", true, "", "Keramik Müller GmbH"},
		{"株式会社 山田陶器", true, "", "株式会社 山田陶器"},
		// A company's legal form makes a business without a VAT number.
		{"Keramiikkapaja Savi ja Lasi Oy", false, "", "Keramiikkapaja Savi ja Lasi Oy"},
		{"Fjord Handel AS", false, "", "Fjord Handel AS"},
		{"Nordic Tools AB (publ)", false, "", "Nordic Tools AB (publ)"},
		{"Acme Widgets LTD.", false, "", "Acme Widgets LTD."},
		{"Kowalski Sp. z o.o.", false, "", "Kowalski Sp. z o.o."},
		{"Blumen Schmidt GmbH", false, "", "Blumen Schmidt GmbH"},
		// Written as a family name, the same letters are one.
		{"Liisa As", false, "Liisa", "As"},
		{"Nguyen Cao Ky", false, "Nguyen Cao", "Ky"},
		{"Oy", false, "", "Oy"},
	} {
		first, last := splitName(tt.name, tt.business)
		if first != tt.first || last != tt.last {
			t.Errorf("splitName(%q, %v) = %q, %q; want %q, %q", tt.name, tt.business, first, last, tt.first, tt.last)
		}
	}
}

func TestContactOfABusiness(t *testing.T) {
	f := &fakeZoho{}
	c, _, _ := newTest(t, f)
	o := testOrder()
	o.Customer.Name = "Keramik Müller GmbH"
	o.Customer.TaxIDs = []integrations.TaxID{{Type: "eu_vat", Value: "DE123456789"}}
	if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	// Reverse charged without a VAT number given: a business too.
	o.Customer.Name, o.Customer.TaxIDs = "Holzbau Gruber KG", nil
	o.Items[0].Taxes = []integrations.Tax{{TaxabilityReason: integrations.ReasonReverseCharge}}
	if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	reqs := f.crmRequests()
	for i, want := range map[int]string{0: "Keramik Müller GmbH", 2: "Holzbau Gruber KG"} {
		rec := reqs[i].body["data"].([]any)[0].(map[string]any)
		if rec["Last_Name"] != want || rec["First_Name"] != nil {
			t.Errorf("contact of a business = %v, want Last_Name %q alone", rec, want)
		}
	}
}

// Values longer than Zoho's fields hold are cut at a character, so a long
// business name does not dead-letter the order (Zoho answers INVALID_DATA
// to a longer one); a too long phone is left out, a too long email is
// refused before anything is sent.
func TestLongValuesFitZohosFields(t *testing.T) {
	f := &fakeZoho{}
	c, _, _ := newTest(t, f)
	o := testOrder()
	// 87 characters: a business name (it gave a VAT number).
	o.Customer.Name = "Öljynjalostamo- ja Kemianteollisuuden Tutkimus- ja Kehittämisosuuskunta Pohjois-Savo ry"
	o.Customer.TaxIDs = []integrations.TaxID{{Type: "eu_vat", Value: "FI23456789"}}
	o.Customer.Phone = "+358 40 123 4567 (vaihde) tai +358 40 765 4321"
	if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	reqs := f.crmRequests()
	contact := reqs[0].body["data"].([]any)[0].(map[string]any)
	deal := reqs[1].body["data"].([]any)[0].(map[string]any)
	if want := "Öljynjalostamo- ja Kemianteollisuuden Tutkimus- ja Kehittämisosuuskunta Pohjois-"; contact["Last_Name"] != want {
		t.Errorf("Last_Name = %q, want the first 80 characters %q", contact["Last_Name"], want)
	}
	if p, has := contact["Phone"]; has {
		t.Errorf("Phone = %q, want none: a 46-character number is left out, not cut into another", p)
	}
	if want := "OF-1234567890 Öljynjalostamo- ja Kemianteollisuuden Tutkimus- ja Kehittämisosuuskunta Pohjois-Savo ry"; deal["Deal_Name"] != want {
		t.Errorf("Deal_Name = %q, want %q (within 120)", deal["Deal_Name"], want)
	}
	if contact["Email"] != "asa@example.fi" || contact["Mailing_Street"] != "Hämeenkatu 10 B 7, PL 12" {
		t.Errorf("short fields changed: %v", contact)
	}
	// A private buyer with a long first name.
	o.Customer.TaxIDs = nil
	o.Customer.Name = "Anna-Kaisa Maria Johanna Elisabet Kristiina Virtanen"
	if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	contact = f.crmRequests()[2].body["data"].([]any)[0].(map[string]any)
	if contact["First_Name"] != "Anna-Kaisa Maria Johanna Elisabet Kristi" || contact["Last_Name"] != "Virtanen" {
		t.Errorf("First_Name %q, Last_Name %q; want the first 40 characters and Virtanen", contact["First_Name"], contact["Last_Name"])
	}
	n := len(f.crmRequests())
	o.Customer.Email = strings.Repeat("a", 95) + "@example.fi" // 106 characters
	_, err := c.UpsertContactAndDeal(context.Background(), o)
	if !integrations.IsPermanent(err) || !integrations.IsNotSent(err) || !strings.Contains(err.Error(), "106 characters") || len(f.crmRequests()) != n {
		t.Errorf("err = %v, CRM calls %d (want none more than %d): want a refusal naming 106 characters", err, len(f.crmRequests()), n)
	}
}

// The deal's Closing_Date is the order's day in the shop's zone: 23:30 UTC
// on 27 November is 01:30 on the 28th in Helsinki.
func TestClosingDateInTheShopsZone(t *testing.T) {
	helsinki, err := time.LoadLocation("Europe/Helsinki")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeZoho{}
	c, _, _ := newTest(t, f, func(c *Config) { c.Location = helsinki })
	if _, err := c.UpsertContactAndDeal(context.Background(), testOrder()); err != nil {
		t.Fatal(err)
	}
	deal := f.crmRequests()[1].body["data"].([]any)[0].(map[string]any)
	if deal["Closing_Date"] != "2026-11-28" {
		t.Errorf("Closing_Date = %v, want 2026-11-28", deal["Closing_Date"])
	}
}
