package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
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

// sessionExpansions is what every session read must ask for, in order.
var sessionExpansions = []string{"line_items", "line_items.data.taxes", "line_items.data.discounts",
	"total_details.breakdown", "shipping_cost.taxes", "shipping_cost.shipping_rate", "payment_intent"}

func expandQuery(prefix string, v url.Values) url.Values {
	for i, e := range sessionExpansions {
		v.Set(fmt.Sprintf("expand[%d]", i), prefix+e)
	}
	return v
}

func checkRequests(t *testing.T, reqs []*http.Request, want []struct {
	path  string
	query url.Values
}) {
	t.Helper()
	if len(reqs) != len(want) {
		for _, r := range reqs {
			t.Logf("request %s?%s", r.URL.Path, r.URL.RawQuery)
		}
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
}

// A Checkout order with VAT-inclusive prices, a coupon on both lines,
// taxed inclusive shipping, two rates, a gift (the buyer's billing address
// differs from the recipient's) and a second page of line items.
func TestOrderDetailsPaymentIntent(t *testing.T) {
	const pi = "pi_3OabcDEF1234567890"
	f, srv := newFake(t, map[string]route{
		"/v1/checkout/sessions":                             {file: "sessions_list.json"},
		"/v1/checkout/sessions/cs_test_a1B2c3D4/line_items": {file: "line_items.json"},
	})
	o, err := newClient(t, srv.URL).OrderDetails(context.Background(), pi)
	if err != nil {
		t.Fatal(err)
	}
	checkRequests(t, f.requests(), []struct {
		path  string
		query url.Values
	}{
		{"/v1/checkout/sessions", expandQuery("data.", url.Values{"payment_intent": {pi}, "limit": {"1"}})},
		// The expanded list has more: the rest after its last item.
		{"/v1/checkout/sessions/cs_test_a1B2c3D4/line_items", url.Values{"limit": {"100"}, "starting_after": {"li_1"},
			"expand[0]": {"data.taxes"}, "expand[1]": {"data.discounts"}}},
	})

	checks := []struct {
		name      string
		got, want any
	}{
		{"Model", o.Model, 2},
		{"ID", o.ID, pi},
		{"Number", o.Number, integrations.OrderNumber(pi)},
		{"PaymentIntentID", o.PaymentIntentID, pi},
		{"CheckoutSessionID", o.CheckoutSessionID, "cs_test_a1B2c3D4"},
		{"Currency", o.Currency, "eur"},
		{"AmountTotal", o.AmountTotal, int64(4910)},
		{"AmountSubtotal", o.AmountSubtotal, int64(4800)},
		{"AmountDiscount", o.AmountDiscount, int64(480)},
		{"AmountTax", o.AmountTax, int64(862)},
		{"AmountShipping", o.AmountShipping, int64(590)},
		{"Customer.Email (customer_details)", o.Customer.Email, "åsa.öberg@example.fi"},
		{"Customer.Name", o.Customer.Name, "Åsa Öberg-Järvinen"},
		{"Customer.Phone", o.Customer.Phone, "+358401234567"},
		{"Customer.Address (billing)", o.Customer.Address, integrations.Address{Name: "Åsa Öberg-Järvinen", Line1: "Hämeenkatu 10 B 7", Line2: "PL 12", PostalCode: "33100", City: "Tampere", Country: "FI"}},
		{"Customer.TaxExempt", o.Customer.TaxExempt, "none"},
		{"Shipping (the recipient)", o.Shipping, integrations.Address{Name: "Mikko Virtanen", Line1: "Mannerheimintie 12 B 7", Line2: "c/o Ø", PostalCode: "00100", City: "Helsinki", Country: "FI", Phone: "+358409999999"}},
		{"Locale from metadata", o.Locale, "fi-FI"},
		{"Metadata merged", o.Metadata["campaign"] + "/" + o.Metadata["channel"], "black-friday/web"},
		{"Description", o.Description, "Order 1042"},
		{"CreatedAt", o.CreatedAt, time.Unix(1732780790, 0).UTC()},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	coupon := integrations.Discount{CouponID: "SUMMER10", Name: "Summer 10 %", PromotionCode: "KESA10", PercentOff: "10"}
	withAmount := func(d integrations.Discount, a int64) integrations.Discount { d.Amount = a; return d }
	wantItems := []integrations.LineItem{
		{ID: "li_1", SKU: "prod_socks", Description: "Villasukat – käsin neulottu", Quantity: 2, UnitAmount: 1500,
			AmountSubtotal: 3000, AmountDiscount: 300, AmountTax: 549, AmountTotal: 2700, TaxBehavior: "inclusive",
			Taxes:     []integrations.Tax{{Amount: 549, TaxableAmount: 2151, Percentage: "25.5", Inclusive: true, TaxabilityReason: "standard_rated", RateID: "txr_fi", DisplayName: "ALV", Jurisdiction: "FI", Country: "FI", TaxType: "vat"}},
			Discounts: []integrations.Discount{withAmount(coupon, 300)}},
		{ID: "li_2", SKU: "prod_book", Description: "Kirja: Seitsemän veljestä", Quantity: 1, UnitAmount: 1800,
			AmountSubtotal: 1800, AmountDiscount: 180, AmountTax: 193, AmountTotal: 1620, TaxBehavior: "inclusive",
			Taxes:     []integrations.Tax{{Amount: 193, TaxableAmount: 1427, Percentage: "13.5", Inclusive: true, TaxabilityReason: "reduced_rated", RateID: "txr_fi_books", DisplayName: "ALV", Jurisdiction: "FI", Country: "FI", TaxType: "vat"}},
			Discounts: []integrations.Discount{withAmount(coupon, 180)}},
	}
	if !reflect.DeepEqual(o.Items, wantItems) {
		t.Errorf("items =\n %+v\nwant\n %+v", o.Items, wantItems)
	}
	wantShip := &integrations.ShippingCost{AmountSubtotal: 590, AmountTax: 120, AmountTotal: 590, TaxBehavior: "inclusive", RateID: "shr_posti", Name: "Posti Smartpost",
		Taxes: []integrations.Tax{{Amount: 120, TaxableAmount: 470, Percentage: "25.5", Inclusive: true, TaxabilityReason: "standard_rated", RateID: "txr_fi", DisplayName: "ALV", Jurisdiction: "FI", Country: "FI", TaxType: "vat"}}}
	if !reflect.DeepEqual(o.ShippingCost, wantShip) {
		t.Errorf("shipping cost = %+v, want %+v", o.ShippingCost, wantShip)
	}
	if len(o.Discounts) != 1 || o.Discounts[0] != withAmount(coupon, 480) {
		t.Errorf("order discounts = %+v", o.Discounts)
	}
	if len(o.Taxes) != 2 || o.Taxes[0].Amount != 669 || o.Taxes[0].Percentage != "25.5" || o.Taxes[1].Amount != 193 || o.Taxes[1].Percentage != "13.5" {
		t.Errorf("order taxes = %+v", o.Taxes)
	}
}

// A PaymentIntent made without Checkout: one line of its amount and
// description, the buyer from the latest charge's billing details.
func TestOrderDetailsPaymentIntentWithoutSession(t *testing.T) {
	const pi = "pi_3OabcDEF1234567890"
	f, srv := newFake(t, map[string]route{
		"/v1/payment_intents/" + pi: {file: "payment_intent.json"},
		"/v1/checkout/sessions":     {body: `{"object":"list","url":"/v1/checkout/sessions","has_more":false,"data":[]}`},
	})
	o, err := newClient(t, srv.URL).OrderDetails(context.Background(), pi)
	if err != nil {
		t.Fatal(err)
	}
	checkRequests(t, f.requests(), []struct {
		path  string
		query url.Values
	}{
		{"/v1/checkout/sessions", expandQuery("data.", url.Values{"payment_intent": {pi}, "limit": {"1"}})},
		{"/v1/payment_intents/" + pi, url.Values{"expand[0]": {"latest_charge"}}},
	})
	want := integrations.Order{
		Model: 2, ID: pi, PaymentIntentID: pi, Number: integrations.OrderNumber(pi), Currency: "eur",
		AmountTotal: 12900, AmountSubtotal: 12900,
		Items: []integrations.LineItem{{Description: "Invoice 77: consulting, 3 h", Quantity: 1, UnitAmount: 12900, AmountSubtotal: 12900, AmountTotal: 12900, TaxBehavior: "unspecified"}},
		Customer: integrations.Customer{Name: "Pirjo Maksaja", Email: "pirjo@example.fi", Phone: "+358405555555",
			Address: integrations.Address{Name: "Pirjo Maksaja", Line1: "Kauppakatu 1", PostalCode: "90100", City: "Oulu", Country: "FI"}},
		Shipping:    integrations.Address{Name: "Mikko Virtanen", Line1: "Fallback 1", PostalCode: "02100", City: "Espoo", Country: "FI", Phone: "+358401111111"},
		Locale:      "fi-FI",
		Metadata:    map[string]string{"locale": "fi-FI", "channel": "web"},
		Description: "Invoice 77: consulting, 3 h",
		CreatedAt:   time.Unix(1732780800, 0).UTC(),
	}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("order from PaymentIntent alone =\n %+v\nwant\n %+v", o, want)
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
	// The session came without its line items: every page is read.
	checkRequests(t, f.requests(), []struct {
		path  string
		query url.Values
	}{
		{"/v1/checkout/sessions/" + cs, expandQuery("", url.Values{})},
		{"/v1/checkout/sessions/" + cs + "/line_items", url.Values{"limit": {"100"}, "expand[0]": {"data.taxes"}, "expand[1]": {"data.discounts"}}},
	})
	if o.ID != cs || o.Number != integrations.OrderNumber(cs) || o.PaymentIntentID != "" {
		t.Errorf("ids = %q %q %q", o.ID, o.Number, o.PaymentIntentID)
	}
	// JPY has no minor unit: 3300 is ¥3,300, not ¥33.00.
	if o.Currency != "jpy" || o.AmountTotal != 3300 || o.AmountTax != 300 || integrations.FormatMoney(o.AmountTotal, o.Currency) != "3300 JPY" {
		t.Errorf("money = %d %s tax %d", o.AmountTotal, o.Currency, o.AmountTax)
	}
	if o.Customer.Email != "yamada@example.jp" || o.Customer.Name != "山田 太郎" || o.Shipping.State != "東京都" || o.ShippingCost != nil {
		t.Errorf("customer = %+v shipping = %+v", o.Customer, o.Shipping)
	}
	if !o.Customer.Address.IsZero() || o.BillingAddress() != o.Shipping {
		t.Errorf("without a billing address the buyer is invoiced at the shipping address: %+v", o.BillingAddress())
	}
	if o.Locale != "ja" {
		t.Errorf("locale = %q, want the session's locale when metadata has none", o.Locale)
	}
	if len(o.Items) != 1 || o.Items[0].UnitAmount != 1000 || o.Items[0].Quantity != 3 || o.Items[0].SKU != "price_matcha" ||
		o.Items[0].TaxBehavior != "exclusive" || len(o.Items[0].Taxes) != 1 || o.Items[0].Taxes[0].Percentage != "10" {
		t.Errorf("items = %+v", o.Items)
	}
}

// US sales tax: three rates on one line, 8.875 % together, each carried
// exactly with Stripe's own amount.
func TestOrderDetailsSeveralRatesPerLine(t *testing.T) {
	const cs = "cs_test_nyc"
	body := `{"id":"cs_test_nyc","object":"checkout.session","amount_subtotal":10000,"amount_total":10888,"currency":"usd","created":1732780000,
	 "payment_status":"paid","customer_details":{"email":"j@example.com","name":"Jo Doe","address":{"line1":"1 Main St","city":"New York","state":"NY","postal_code":"10001","country":"US"},"tax_exempt":"none","tax_ids":[]},
	 "total_details":{"amount_discount":0,"amount_shipping":0,"amount_tax":888},
	 "line_items":{"object":"list","has_more":false,"data":[{"id":"li_1","object":"item","amount_subtotal":10000,"amount_tax":888,"amount_total":10888,"amount_discount":0,
	   "currency":"usd","description":"Desk lamp","quantity":1,"price":{"id":"price_lamp","object":"price","unit_amount":10000,"tax_behavior":"exclusive"},
	   "taxes":[{"amount":400,"taxable_amount":10000,"taxability_reason":"standard_rated","rate":{"id":"txr_ny","percentage":4,"jurisdiction":"NEW YORK","state":"NY","country":"US","tax_type":"sales_tax","display_name":"Sales Tax"}},
	            {"amount":450,"taxable_amount":10000,"taxability_reason":"standard_rated","rate":{"id":"txr_nyc","percentage":4.5,"jurisdiction":"NEW YORK CITY","state":"NY","country":"US","tax_type":"sales_tax","display_name":"Sales Tax"}},
	            {"amount":38,"taxable_amount":10000,"taxability_reason":"standard_rated","rate":{"id":"txr_mctd","percentage":0.375,"jurisdiction":"MCTD","state":"NY","country":"US","tax_type":"sales_tax","display_name":"Sales Tax"}}]}]}}`
	_, srv := newFake(t, map[string]route{"/v1/checkout/sessions/" + cs: {body: body}})
	o, err := newClient(t, srv.URL).OrderDetails(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	var pcts []string
	for _, tx := range o.Items[0].Taxes {
		pcts = append(pcts, tx.Percentage+"="+strconv.FormatInt(tx.Amount, 10))
	}
	if got := strings.Join(pcts, " "); got != "4=400 4.5=450 0.375=38" {
		t.Errorf("taxes = %s", got)
	}
	if sum, _ := integrations.SumPercent("4", "4.5", "0.375"); sum != "8.875" {
		t.Errorf("sum = %s", sum)
	}
}

// An order whose amounts do not add up (here a line total that is not the
// session's) is refused as permanent: no later step may write it.
func TestOrderDetailsAmountsMustAddUp(t *testing.T) {
	const cs = "cs_test_bad"
	body := `{"id":"cs_test_bad","object":"checkout.session","amount_subtotal":1000,"amount_total":1255,"currency":"eur","payment_status":"paid",
	 "total_details":{"amount_discount":0,"amount_shipping":0,"amount_tax":255},
	 "line_items":{"object":"list","has_more":false,"data":[{"id":"li_1","object":"item","amount_subtotal":1000,"amount_tax":255,"amount_total":1200,"quantity":1,
	   "taxes":[{"amount":255,"rate":{"percentage":25.5}}]}]}}`
	_, srv := newFake(t, map[string]route{"/v1/checkout/sessions/" + cs: {body: body}})
	_, err := newClient(t, srv.URL).OrderDetails(context.Background(), cs)
	if !integrations.IsPermanent(err) || !strings.Contains(err.Error(), "12.00 EUR, the amount paid is 12.55 EUR") {
		t.Fatalf("err = %v, want a permanent error naming the mismatch", err)
	}
}

// Percent recovers the decimal Stripe sent from stripe-go's float64: every
// percentage with up to four decimals from 0 to 100, exhaustively.
func TestPercentIsExact(t *testing.T) {
	for n := 1; n <= 1_000_000; n++ {
		want := strconv.Itoa(n / 10000)
		if frac := n % 10000; frac != 0 {
			want += "." + strings.TrimRight(fmt.Sprintf("%04d", frac), "0")
		}
		f, err := strconv.ParseFloat(want, 64) // what encoding/json does
		if err != nil {
			t.Fatal(err)
		}
		if got := Percent(f); got != want {
			t.Fatalf("Percent(%v) = %q, want %q", f, got, want)
		}
	}
	if Percent(0) != "0" {
		t.Errorf("Percent(0) = %q", Percent(0))
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
		{"200 with a truncated body is transient", route{status: 200, body: `{"object":"list","data":[{"id":"cs_1","customer_details":{"email":"<html>buyer@example.com`}, integrations.Transient, 0, 0},
		{"200 with HTML is transient", route{status: 200, body: `<html>maintenance</html>`}, integrations.Transient, 0, 0},
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
		"/v1/checkout/sessions/" + cs: {file: "session_no_shipping.json"},
	})
	o, err := newClient(t, srv.URL).OrderDetails(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.requests()); n != 1 {
		t.Fatalf("requests: %d, want 1 (line items and PaymentIntent expanded)", n)
	}
	if o.ID != cs || o.PaymentIntentID != "pi_3OabcDEF1234567890" || o.Shipping.City != "Kuwait City" || o.Shipping.Country != "KW" ||
		o.Customer.Email != "buyer@example.com" || o.Customer.Name != "فاطمة" || o.Locale != "ar-KW" {
		t.Errorf("order = %+v", o)
	}
	// KWD has three decimals: 1000 fils is 1.000 KWD.
	if o.Currency != "kwd" || o.AmountTotal != 1000 || integrations.FormatMoney(o.AmountTotal, o.Currency) != "1.000 KWD" {
		t.Errorf("money = %d %s", o.AmountTotal, o.Currency)
	}
}

// When Stripe returns the session with all its line items expanded, the
// order takes one call and is the same order as when it takes two.
func TestOrderDetailsPaymentIntentOneCall(t *testing.T) {
	const pi = "pi_3OabcDEF1234567890"
	_, paged := newFake(t, map[string]route{
		"/v1/checkout/sessions":                             {file: "sessions_list.json"},
		"/v1/checkout/sessions/cs_test_a1B2c3D4/line_items": {file: "line_items.json"},
	})
	want, err := newClient(t, paged.URL).OrderDetails(context.Background(), pi)
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

// Stripe expands at most four levels; every expansion the client asks for
// stays within it.
func TestExpansionsWithinStripesDepth(t *testing.T) {
	for _, prefix := range []string{"", "data."} {
		for _, e := range sessionExpand(prefix) {
			if n := strings.Count(e, ".") + 1; n > 4 {
				t.Errorf("expand %q is %d levels deep", e, n)
			}
		}
	}
}

// A price in fractions of a cent has no unit_amount; its
// unit_amount_decimal is kept exactly as Stripe sent it.
func TestOrderDetailsDecimalUnitPrice(t *testing.T) {
	const cs = "cs_test_dec"
	body := `{"id":"cs_test_dec","object":"checkout.session","amount_subtotal":1250,"amount_total":1250,"currency":"eur","payment_status":"paid",
	 "total_details":{"amount_discount":0,"amount_shipping":0,"amount_tax":250},
	 "line_items":{"object":"list","has_more":false,"data":[{"id":"li_1","object":"item","amount_subtotal":1250,"amount_tax":250,"amount_total":1250,"amount_discount":0,
	   "currency":"eur","description":"Seeds","quantity":2,"price":{"id":"price_seeds","object":"price","unit_amount":null,"unit_amount_decimal":"624.75","tax_behavior":"inclusive"},
	   "taxes":[{"amount":250,"taxable_amount":1000,"taxability_reason":"standard_rated","rate":{"id":"txr_fi","percentage":25}}]}]}}`
	_, srv := newFake(t, map[string]route{"/v1/checkout/sessions/" + cs: {body: body}})
	o, err := newClient(t, srv.URL).OrderDetails(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	if it := o.Items[0]; it.UnitAmount != 0 || it.UnitAmountDecimal != "624.75" || it.AmountSubtotal != 1250 {
		t.Errorf("item = %+v, want unit_amount_decimal 624.75", it)
	}
}

// A Checkout order authorized for capture later and captured for less than
// its total (49.10 EUR authorized, 40.00 captured) is refused before any
// step sends anything, by its PaymentIntent and by its session; captured
// in full it is an order like any other.
func TestOrderDetailsPartialCapture(t *testing.T) {
	list, err := os.ReadFile(filepath.Join("testdata", "sessions_list_expanded.json"))
	if err != nil {
		t.Fatal(err)
	}
	full := strings.Replace(string(list), `"status": "succeeded"`, `"capture_method": "manual", "status": "succeeded"`, 1)
	partial := strings.Replace(full, `"amount_received": 4910`, `"amount_received": 4000`, 1)
	if partial == full || !strings.Contains(full, `"capture_method": "manual"`) {
		t.Fatal("fixture changed: no PaymentIntent status or amount_received to edit")
	}
	var l struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(partial), &l); err != nil || len(l.Data) != 1 {
		t.Fatalf("fixture: %v", err)
	}
	const pi, cs = "pi_3OabcDEF1234567890", "cs_test_a1B2c3D4"
	for _, c := range []struct {
		id    string
		route string
		body  string
	}{
		{pi, "/v1/checkout/sessions", partial},
		{cs, "/v1/checkout/sessions/" + cs, string(l.Data[0])},
	} {
		_, srv := newFake(t, map[string]route{c.route: {body: c.body}})
		_, err := newClient(t, srv.URL).OrderDetails(context.Background(), c.id)
		want := "Stripe captured 40.00 of the order's 49.10 EUR (a partial capture)"
		if !integrations.IsPermanent(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want a permanent error saying %q", c.id, err, want)
		}
	}
	_, srv := newFake(t, map[string]route{"/v1/checkout/sessions": {body: full}})
	o, err := newClient(t, srv.URL).OrderDetails(context.Background(), pi)
	if err != nil || o.AmountTotal != 4910 {
		t.Fatalf("captured in full: total %d, err %v; want 4910 and no error", o.AmountTotal, err)
	}
}

// Checkout's default locale "auto" does not say which language the page
// showed: the order takes the language of the country the goods go to,
// when it has one, else none (the providers' configured default); the
// shop's metadata["locale"] and a page's own locale win.
func TestOrderDetailsLocaleFromCountry(t *testing.T) {
	for _, c := range []struct{ locale, metadata, shipping, billing, want string }{
		{"auto", "", "SE", "FI", "sv-SE"}, // where the goods go, not the buyer
		{"auto", "", "", "FI", "fi-FI"},   // no shipping: the buyer's
		{"auto", "", "BE", "", ""},        // three languages: none
		{"", "", "AX", "", "sv-AX"},       // Åland speaks Swedish
		{"auto", "da-DK", "SE", "", "da-DK"},
		{"auto", "auto", "FI", "", "fi-FI"}, // metadata copied from the page: still no language
		{"", "AUTO", "SE", "", "sv-SE"},
		{"fi", "", "SE", "", "fi"},
	} {
		addr := func(country string) string {
			if country == "" {
				return "null"
			}
			return `{"line1":"Gatan 1","city":"Stad","postal_code":"12345","country":"` + country + `"}`
		}
		md := "{}"
		if c.metadata != "" {
			md = `{"locale":"` + c.metadata + `"}`
		}
		shipping := "null"
		if c.shipping != "" {
			shipping = `{"name":"Anna","address":` + addr(c.shipping) + `}`
		}
		body := `{"id":"cs_test_loc","object":"checkout.session","amount_subtotal":1000,"amount_total":1000,"currency":"eur","payment_status":"paid",
		 "locale":"` + c.locale + `","metadata":` + md + `,
		 "customer_details":{"name":"Anna","email":"anna@example.com","address":` + addr(c.billing) + `},
		 "shipping_details":` + shipping + `,
		 "total_details":{"amount_discount":0,"amount_shipping":0,"amount_tax":0},
		 "line_items":{"object":"list","has_more":false,"data":[{"id":"li_1","object":"item","amount_subtotal":1000,"amount_tax":0,"amount_total":1000,"quantity":1}]}}`
		_, srv := newFake(t, map[string]route{"/v1/checkout/sessions/cs_test_loc": {body: body}})
		o, err := newClient(t, srv.URL).OrderDetails(context.Background(), "cs_test_loc")
		if err != nil || o.Locale != c.want {
			t.Errorf("locale %q, metadata %q, shipping %q, billing %q: got %q (%v), want %q", c.locale, c.metadata, c.shipping, c.billing, o.Locale, err, c.want)
		}
	}
}

// swissSession is a Checkout Session shipping to Zürich: a mug whose
// price names its tariff number, and a towel whose product holds its
// customs data (the product is an id unless expanded).
func swissSession(product string) string {
	return `{"id":"cs_test_swiss","object":"checkout.session","amount_subtotal":4000,"amount_total":4000,"currency":"eur","created":1732780000,
"payment_status":"paid","payment_intent":"pi_3SwissOrder000000001",
"customer_details":{"email":"urs@example.ch","name":"Urs Keller","address":{"country":"CH","postal_code":"8001"}},
"shipping_details":{"name":"Urs Keller","address":{"line1":"Bahnhofstrasse 12","city":"Zürich","postal_code":"8001","country":"CH"}},
"total_details":{"amount_discount":0,"amount_shipping":0,"amount_tax":0},
"line_items":{"object":"list","has_more":false,"data":[
 {"id":"li_mug","object":"item","amount_subtotal":3000,"amount_total":3000,"amount_tax":0,"amount_discount":0,"currency":"eur","description":"Keramikbecher","quantity":3,
  "price":{"id":"price_mug","object":"price","unit_amount":1000,"currency":"eur","tax_behavior":"unspecified","metadata":{"hs_code":"6912.00.10"},"product":"prod_mug"}},
 {"id":"li_towel","object":"item","amount_subtotal":1000,"amount_total":1000,"amount_tax":0,"amount_discount":0,"currency":"eur","description":"Geschirrtuch","quantity":1,
  "price":{"id":"price_towel","object":"price","unit_amount":1000,"currency":"eur","tax_behavior":"unspecified","metadata":{},"product":` + product + `}}]}}`
}

// With ProductCustoms, an order leaving the EU VAT area takes one more
// call, its line items with their products expanded, for the products'
// customs metadata; a price's own metadata comes first, and a weight
// that is no whole number of grams is not taken. Without the option, or
// for an order within the area, there is no such call.
func TestOrderDetailsProductCustoms(t *testing.T) {
	products := `{"object":"list","has_more":false,"data":[
 {"id":"li_mug","object":"item","amount_total":3000,"quantity":3,"price":{"id":"price_mug","object":"price","metadata":{"hs_code":"6912.00.10"},
  "product":{"id":"prod_mug","object":"product","metadata":{"hs_code":"999999","origin_country":"pt","weight_grams":"350.5"}}}},
 {"id":"li_towel","object":"item","amount_total":1000,"quantity":1,"price":{"id":"price_towel","object":"price","metadata":{},
  "product":{"id":"prod_towel","object":"product","metadata":{"hs_code":"6302 60 00","origin_country":"PT","weight_grams":" 120 "}}}}]}`
	const cs = "cs_test_swiss"
	f, srv := newFake(t, map[string]route{
		"/v1/checkout/sessions/" + cs:                 {body: swissSession(`"prod_towel"`)},
		"/v1/checkout/sessions/" + cs + "/line_items": {body: products},
	})
	c, err := New(Config{BaseURL: srv.URL, SecretKey: testKey, ProductCustoms: true})
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.OrderDetails(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 2 || reqs[1].URL.Path != "/v1/checkout/sessions/"+cs+"/line_items" || reqs[1].URL.Query().Get("expand[0]") != "data.price.product" {
		for _, r := range reqs {
			t.Logf("request %s", r.URL)
		}
		t.Fatalf("want the session, then its line items with products expanded")
	}
	type customs struct {
		hs, origin string
		grams      int64
	}
	want := []customs{{"6912.00.10", "PT", 0}, {"6302 60 00", "PT", 120}}
	for i, w := range want {
		it := o.Items[i]
		if got := (customs{it.HSCode, it.OriginCountry, it.WeightGrams}); got != w {
			t.Errorf("line %d customs %+v, want %+v", i+1, got, w)
		}
	}

	// Without the option: the price's metadata only, in one call.
	f2, srv2 := newFake(t, map[string]route{"/v1/checkout/sessions/" + cs: {body: swissSession(`"prod_towel"`)}})
	o, err = newClient(t, srv2.URL).OrderDetails(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f2.requests()); n != 1 || o.Items[0].HSCode != "6912.00.10" || o.Items[1].HSCode != "" {
		t.Errorf("%d requests, customs %q %q; want 1 and the price's tariff number only", n, o.Items[0].HSCode, o.Items[1].HSCode)
	}

	// Within the EU VAT area: no customs call.
	de := strings.ReplaceAll(swissSession(`"prod_towel"`), `"country":"CH"`, `"country":"DE"`)
	f3, srv3 := newFake(t, map[string]route{"/v1/checkout/sessions/" + cs: {body: de}})
	c3, err := New(Config{BaseURL: srv3.URL, SecretKey: testKey, ProductCustoms: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c3.OrderDetails(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	if n := len(f3.requests()); n != 1 {
		t.Errorf("order to Germany: %d requests, want 1", n)
	}
}
