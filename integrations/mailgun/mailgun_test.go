package mailgun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
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

const (
	testKey    = "key-0123456789abcdef"
	testDomain = "mg.example.com"
)

type reply struct {
	status  int
	file    string
	body    string
	headers map[string]string
}

type seen struct {
	method, path, query, contentType string
	user, pass                       string
	authOK                           bool
	form                             map[string][]string
	files                            int
}

type fakeMailgun struct {
	t     *testing.T
	reply reply
	mu    sync.Mutex
	reqs  []seen
}

func (f *fakeMailgun) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := seen{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, contentType: r.Header.Get("Content-Type")}
	s.user, s.pass, s.authOK = r.BasicAuth()
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		f.t.Errorf("body is not multipart/form-data: %v", err)
	} else {
		s.form = r.MultipartForm.Value
		s.files = len(r.MultipartForm.File)
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
	if rp.status != http.StatusUnauthorized {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(rp.status)
	_, _ = w.Write(body)
}

func (f *fakeMailgun) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

func newTest(t *testing.T, rp reply, mod ...func(*Config)) (*Client, *fakeMailgun, *bytes.Buffer) {
	t.Helper()
	f := &fakeMailgun{t: t, reply: rp}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	logs := &bytes.Buffer{}
	cfg := Config{BaseURL: srv.URL, APIKey: testKey, Domain: testDomain, From: "Villakauppa <orders@mg.example.com>",
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, f, logs
}

// testOrder has VAT-inclusive prices, a 10 % coupon on both lines and
// taxed shipping: what the customer saw was 30.00 + 18.00 − 4.80 + 5.90 =
// 49.10 EUR, VAT 8.62 included.
func testOrder() integrations.Order {
	vat := func(a int64, p string) []integrations.Tax { return []integrations.Tax{{Amount: a, Percentage: p}} }
	return integrations.Order{
		Model:          2,
		ID:             "pi_3OabcDEF1234567890",
		Number:         "OF-1234567890",
		Currency:       "eur",
		AmountTotal:    4910,
		AmountSubtotal: 4800,
		AmountDiscount: 480,
		AmountTax:      862,
		AmountShipping: 590,
		Items: []integrations.LineItem{
			{Description: "Villasukat – käsin neulottu", Quantity: 2, UnitAmount: 1500, AmountSubtotal: 3000, AmountDiscount: 300, AmountTax: 549, AmountTotal: 2700, TaxBehavior: "inclusive", Taxes: vat(549, "25.5")},
			{Description: "Kirja", Quantity: 1, UnitAmount: 1800, AmountSubtotal: 1800, AmountDiscount: 180, AmountTax: 193, AmountTotal: 1620, TaxBehavior: "inclusive", Taxes: vat(193, "13.5")},
		},
		ShippingCost: &integrations.ShippingCost{AmountSubtotal: 590, AmountTax: 120, AmountTotal: 590, TaxBehavior: "inclusive", Taxes: vat(120, "25.5")},
		Customer:     integrations.Customer{Name: "Åsa Öberg-Järvinen", Email: "asa@example.fi"},
		Locale:       "fi-FI",
	}
}

var (
	testShipment = integrations.Shipment{TrackingNumber: "00373500454541020957", TrackingURL: "https://tracking.postnord.com/fi/?id=00373500454541020957"}
	testInvoice  = integrations.Invoice{Number: "INV-OF-1234567890", ProviderID: "1802"}
)

func TestConfigValidate(t *testing.T) {
	ok := Config{APIKey: "k", Domain: "mg.example.com"}
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"minimal", func(*Config) {}, true},
		{"with from", func(c *Config) { c.From = "Shop <orders@mg.example.com>" }, true},
		{"US region", func(c *Config) { c.BaseURL = "https://api.mailgun.net" }, true},
		{"no key", func(c *Config) { c.APIKey = "" }, false},
		{"no domain", func(c *Config) { c.Domain = "" }, false},
		{"domain with a slash", func(c *Config) { c.Domain = "mg.example.com/x" }, false},
		{"bad from", func(c *Config) { c.From = "not an address" }, false},
		{"bad URL", func(c *Config) { c.BaseURL = "api.eu.mailgun.net" }, false},
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

func TestDefaultBaseIsEU(t *testing.T) {
	c, err := New(Config{APIKey: "k", Domain: testDomain})
	if err != nil {
		t.Fatal(err)
	}
	if c.url != "https://api.eu.mailgun.net/v3/mg.example.com/messages" {
		t.Errorf("url = %s", c.url)
	}
}

func TestSendConfirmationRequest(t *testing.T) {
	c, f, logs := newTest(t, reply{file: "send_ok.json"})
	msg, err := c.SendConfirmation(context.Background(), testOrder(), testShipment, testInvoice)
	if err != nil {
		t.Fatal(err)
	}
	if msg.MessageID != "<20261128100000.1.ABCDEF@mg.example.com>" {
		t.Errorf("MessageID = %q, want the id Mailgun returned", msg.MessageID)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/v3/mg.example.com/messages" || r.query != "" {
		t.Errorf("request = %s %s?%s", r.method, r.path, r.query)
	}
	if !r.authOK || r.user != "api" || r.pass != testKey {
		t.Errorf("basic auth = %q/%q (%v)", r.user, r.pass, r.authOK)
	}
	if !strings.HasPrefix(r.contentType, "multipart/form-data; boundary=") || r.files != 0 {
		t.Errorf("content type %q, %d files", r.contentType, r.files)
	}
	vars := r.form["h:X-Mailgun-Variables"]
	delete(r.form, "h:X-Mailgun-Variables")
	want := map[string][]string{
		"from":         {"Villakauppa <orders@mg.example.com>"},
		"to":           {"=?utf-8?q?=C3=85sa_=C3=96berg-J=C3=A4rvinen?= <asa@example.fi>"},
		"template":     {"order-confirmation"},
		"h:Message-Id": {"<OF-1234567890@mg.example.com>"},
		"v:order_id":   {"pi_3OabcDEF1234567890"},
	}
	if !reflect.DeepEqual(r.form, want) {
		t.Errorf("form\n got %v\nwant %v", r.form, want)
	}
	if len(vars) != 1 {
		t.Fatalf("h:X-Mailgun-Variables = %v", vars)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(vars[0]), &got); err != nil {
		t.Fatal(err)
	}
	wantVars := map[string]any{
		"locale":          "fi-FI",
		"order_id":        "pi_3OabcDEF1234567890",
		"order_number":    "OF-1234567890",
		"customer_name":   "Åsa Öberg-Järvinen",
		"tracking_number": "00373500454541020957",
		"tracking_url":    "https://tracking.postnord.com/fi/?id=00373500454541020957",
		"invoice_number":  "INV-OF-1234567890",
		"items": []any{
			map[string]any{"description": "Villasukat – käsin neulottu", "quantity": 2.0, "unit_price": "15.00 EUR", "total": "30.00 EUR", "discount": "3.00 EUR"},
			map[string]any{"description": "Kirja", "quantity": 1.0, "unit_price": "18.00 EUR", "total": "18.00 EUR", "discount": "1.80 EUR"},
		},
		"currency":     "EUR",
		"subtotal":     "48.00 EUR",
		"discount":     "4.80 EUR",
		"shipping":     "5.90 EUR",
		"tax_added":    "0.00 EUR",
		"vat_included": "8.62 EUR",
		"total":        "49.10 EUR",
	}
	if !reflect.DeepEqual(got, wantVars) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(wantVars)
		t.Errorf("variables\n got %s\nwant %s", g, w)
	}
	for _, s := range []string{"asa@example.fi", testKey, "Åsa"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log contains %q: %s", s, logs)
		}
	}
	if !strings.Contains(logs.String(), "pi_3OabcDEF1234567890") {
		t.Errorf("log does not name the order: %s", logs)
	}
}

func TestOptionalFields(t *testing.T) {
	c, f, _ := newTest(t, reply{file: "send_ok.json"}, func(cfg *Config) {
		cfg.From = ""
		cfg.Subject = "Tilausvahvistus"
		cfg.Template = "tilaus"
		cfg.TemplateVersion = "v2"
		cfg.Tags = []string{"order", "confirmation"}
		cfg.TestMode = true
	})
	o := testOrder()
	o.Locale = ""
	o.Customer.Name = ""
	if _, err := c.SendConfirmation(context.Background(), o, integrations.Shipment{}, integrations.Invoice{}); err != nil {
		t.Fatal(err)
	}
	form := f.requests()[0].form
	checks := map[string][]string{
		"from":       nil,
		"to":         {"<asa@example.fi>"},
		"subject":    {"Tilausvahvistus"},
		"template":   {"tilaus"},
		"t:version":  {"v2"},
		"o:tag":      {"order", "confirmation"},
		"o:testmode": {"yes"},
		"v:order_id": {"pi_3OabcDEF1234567890"},
	}
	for k, want := range checks {
		if got := form[k]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	var vars Variables
	if err := json.Unmarshal([]byte(form["h:X-Mailgun-Variables"][0]), &vars); err != nil {
		t.Fatal(err)
	}
	if vars.Locale != "en" || vars.TrackingNumber != "" || vars.InvoiceNumber != "" {
		t.Errorf("variables = %+v, want default locale and empty tracking/invoice", vars)
	}
}

func TestMessageIDIsDeterministic(t *testing.T) {
	c, _, _ := newTest(t, reply{})
	o := testOrder()
	if a, b := c.MessageID(o), c.MessageID(o); a != b || a != "<OF-1234567890@mg.example.com>" {
		t.Errorf("MessageID = %q then %q", a, b)
	}
	o.Number = ""
	if got := c.MessageID(o); got != "<"+integrations.OrderNumber(o.ID)+"@mg.example.com>" {
		t.Errorf("MessageID without a number = %q", got)
	}
}

func TestMoneyFormatting(t *testing.T) {
	tests := []struct {
		currency                    string
		qty, sub, line, tax         int64
		wantUnit, wantLine, wantTot string
	}{
		{"eur", 2, 3000, 3000, 0, "15.00 EUR", "30.00 EUR", "30.00 EUR"},
		{"jpy", 2, 3300, 3300, 0, "1650 JPY", "3300 JPY", "3300 JPY"},
		{"kwd", 2, 12346, 12346, 0, "6.173 KWD", "12.346 KWD", "12.346 KWD"},
		// Exclusive of tax, 3 × 10.01 + 25.5 % (7.66): the line shows its
		// net 30.03, the tax is added on top.
		{"eur", 3, 3003, 3769, 766, "10.01 EUR", "30.03 EUR", "37.69 EUR"},
		// Inclusive, 3 × 6.2475 (unit_amount_decimal 624.75) = 18.74: it
		// does not divide by 3, so no unit price is shown.
		{"eur", 3, 1874, 1874, 381, "", "18.74 EUR", "18.74 EUR"},
	}
	for _, tt := range tests {
		t.Run(tt.currency, func(t *testing.T) {
			c, _, _ := newTest(t, reply{})
			o := testOrder()
			o.Currency, o.AmountTotal, o.AmountTax, o.ShippingCost = tt.currency, tt.line, tt.tax, nil
			it := integrations.LineItem{Description: "x", Quantity: tt.qty, AmountSubtotal: tt.sub, AmountTotal: tt.line, AmountTax: tt.tax}
			if tt.tax != 0 {
				it.Taxes = []integrations.Tax{{Amount: tt.tax, Percentage: "25.5"}}
			}
			o.Items = []integrations.LineItem{it}
			v, err := c.TemplateVariables(o, testShipment, testInvoice)
			if err != nil {
				t.Fatal(err)
			}
			if v.Items[0].UnitPrice != tt.wantUnit || v.Items[0].Total != tt.wantLine || v.Total != tt.wantTot || v.Currency != strings.ToUpper(tt.currency) {
				t.Errorf("got %+v total %s", v.Items[0], v.Total)
			}
		})
	}
}

// Lines and shipping are shown as the customer saw them at checkout: a
// price exclusive of tax net, with its tax added on top in tax_added; one
// inclusive of tax gross, its tax in vat_included. The expected amounts are
// worked out by hand from Stripe's integers (tax at 25.5 %, rounded half
// up per line).
func TestAmountsAsSeenAtCheckout(t *testing.T) {
	vat := func(a int64) []integrations.Tax { return []integrations.Tax{{Amount: a, Percentage: "25.5"}} }
	type amounts struct {
		items                                            []Item
		subtotal, discount, shipping, added, incl, total string
	}
	tests := []struct {
		name  string
		items []integrations.LineItem
		ship  *integrations.ShippingCost
		want  amounts
	}{
		{
			// 100.00 net − 10 % = 90.00, + 22.95 tax = 112.95.
			name: "exclusive with a percent coupon",
			items: []integrations.LineItem{
				{Description: "Teapot", Quantity: 1, UnitAmount: 10000, AmountSubtotal: 10000, AmountDiscount: 1000, AmountTax: 2295, AmountTotal: 11295, TaxBehavior: integrations.TaxExclusive, Taxes: vat(2295)},
			},
			want: amounts{
				items:    []Item{{Description: "Teapot", Quantity: 1, UnitPrice: "100.00 EUR", Total: "100.00 EUR", Discount: "10.00 EUR"}},
				subtotal: "100.00 EUR", discount: "10.00 EUR", shipping: "0.00 EUR", added: "22.95 EUR", incl: "0.00 EUR", total: "112.95 EUR",
			},
		},
		{
			// 39.90 − 5.00 = 34.90, tax 8.8995 → 8.90, line 43.80;
			// 2 × 15.00 = 30.00, tax 7.65, line 37.65; free shipping.
			// 69.90 − 5.00 + 0.00 + 16.55 = 81.45.
			name: "exclusive with an amount-off coupon and a second line",
			items: []integrations.LineItem{
				{Description: "Teapot", Quantity: 1, UnitAmount: 3990, AmountSubtotal: 3990, AmountDiscount: 500, AmountTax: 890, AmountTotal: 4380, TaxBehavior: integrations.TaxExclusive, Taxes: vat(890)},
				{Description: "Cup", Quantity: 2, UnitAmount: 1500, AmountSubtotal: 3000, AmountTax: 765, AmountTotal: 3765, TaxBehavior: integrations.TaxExclusive, Taxes: vat(765)},
			},
			ship: &integrations.ShippingCost{TaxBehavior: integrations.TaxExclusive},
			want: amounts{
				items: []Item{
					{Description: "Teapot", Quantity: 1, UnitPrice: "39.90 EUR", Total: "39.90 EUR", Discount: "5.00 EUR"},
					{Description: "Cup", Quantity: 2, UnitPrice: "15.00 EUR", Total: "30.00 EUR"},
				},
				subtotal: "69.90 EUR", discount: "5.00 EUR", shipping: "0.00 EUR", added: "16.55 EUR", incl: "0.00 EUR", total: "81.45 EUR",
			},
		},
		{
			// 29.00 incl. (5.89 VAT in it) + shipping 5.90 net + 1.50
			// (5.9 × 0.255 = 1.5045) = 36.40.
			name: "inclusive goods, exclusive shipping",
			items: []integrations.LineItem{
				{Description: "Book", Quantity: 1, UnitAmount: 2900, AmountSubtotal: 2900, AmountTax: 589, AmountTotal: 2900, TaxBehavior: integrations.TaxInclusive, Taxes: vat(589)},
			},
			ship: &integrations.ShippingCost{AmountSubtotal: 590, AmountTax: 150, AmountTotal: 740, TaxBehavior: integrations.TaxExclusive, Taxes: vat(150)},
			want: amounts{
				items:    []Item{{Description: "Book", Quantity: 1, UnitPrice: "29.00 EUR", Total: "29.00 EUR"}},
				subtotal: "29.00 EUR", discount: "0.00 EUR", shipping: "5.90 EUR", added: "1.50 EUR", incl: "5.89 EUR", total: "36.40 EUR",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := newTest(t, reply{})
			o := testOrder()
			o.Items, o.ShippingCost = tt.items, tt.ship
			o.AmountSubtotal, o.AmountDiscount, o.AmountTax, o.AmountTotal, o.AmountShipping = 0, 0, 0, 0, 0
			for _, it := range tt.items {
				o.AmountSubtotal += it.AmountSubtotal
				o.AmountDiscount += it.AmountDiscount
				o.AmountTax += it.AmountTax
				o.AmountTotal += it.AmountTotal
			}
			if s := tt.ship; s != nil {
				o.AmountShipping = s.AmountSubtotal
				o.AmountTax += s.AmountTax
				o.AmountTotal += s.AmountTotal
			}
			v, err := c.TemplateVariables(o, testShipment, testInvoice)
			if err != nil {
				t.Fatal(err)
			}
			got := amounts{v.Items, v.Subtotal, v.Discount, v.Shipping, v.TaxAdded, v.VATIncluded, v.Total}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// A line or shipping that adds to its price something other than none or
// all of its tax is neither inclusive nor exclusive: the email could not
// show it as the customer saw it.
func TestEmailRefusesTaxNeitherIncludedNorAdded(t *testing.T) {
	vat := func(a int64) []integrations.Tax { return []integrations.Tax{{Amount: a, Percentage: "25.5"}} }
	tests := []struct {
		name string
		mod  func(*integrations.Order)
	}{
		{"line", func(o *integrations.Order) {
			// 100.00 net, tax 25.50, but 120.00 paid: 20.00 added.
			o.Items = []integrations.LineItem{{Description: "Teapot", Quantity: 1, AmountSubtotal: 10000, AmountTax: 2550, AmountTotal: 12000, TaxBehavior: integrations.TaxExclusive, Taxes: vat(2550)}}
			o.ShippingCost = nil
			o.AmountSubtotal, o.AmountDiscount, o.AmountShipping, o.AmountTax, o.AmountTotal = 10000, 0, 0, 2550, 12000
		}},
		{"shipping", func(o *integrations.Order) {
			// 5.90 net, tax 1.50, but 7.00 paid: 1.10 added.
			o.ShippingCost = &integrations.ShippingCost{AmountSubtotal: 590, AmountTax: 150, AmountTotal: 700, TaxBehavior: integrations.TaxExclusive, Taxes: vat(150)}
			o.AmountTax, o.AmountTotal = 742+150, 4320+700
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f, _ := newTest(t, reply{file: "send_ok.json"})
			o := testOrder()
			tt.mod(&o)
			if err := o.Check(); err != nil {
				t.Fatalf("the order must pass Order.Check: %v", err)
			}
			if _, err := c.TemplateVariables(o, testShipment, testInvoice); err == nil || !strings.Contains(err.Error(), "would not add up") {
				t.Fatalf("err = %v, want the amounts refused", err)
			}
			if _, err := c.SendConfirmation(context.Background(), o, testShipment, testInvoice); !integrations.IsPermanent(err) || len(f.requests()) != 0 {
				t.Fatalf("err = %v, %d requests, want permanent and nothing sent", err, len(f.requests()))
			}
		})
	}
}

// An order whose amounts do not add up is not mailed: the customer would
// see a total that is not the sum of the lines.
func TestEmailRefusesAmountsThatDoNotAddUp(t *testing.T) {
	c, f, _ := newTest(t, reply{file: "send_ok.json"})
	o := testOrder()
	o.AmountTotal++
	if _, err := c.SendConfirmation(context.Background(), o, testShipment, testInvoice); !integrations.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	if len(f.requests()) != 0 {
		t.Fatal("sent anyway")
	}
}

func TestVariablesStayUnderTheOptionsLimit(t *testing.T) {
	c, f, _ := newTest(t, reply{file: "send_ok.json"})
	o := testOrder()
	o.Items, o.ShippingCost, o.AmountTax, o.AmountTotal = nil, nil, 0, 400*1500
	for i := 0; i < 400; i++ {
		o.Items = append(o.Items, integrations.LineItem{Description: "Villasukat – käsin neulottu, koko " + strconv.Itoa(i), Quantity: 1, UnitAmount: 1500, AmountSubtotal: 1500, AmountTotal: 1500})
	}
	if _, err := c.SendConfirmation(context.Background(), o, testShipment, testInvoice); err != nil {
		t.Fatal(err)
	}
	form := f.requests()[0].form
	total := 0
	for k, vs := range form {
		if strings.HasPrefix(k, "h:") || strings.HasPrefix(k, "o:") || strings.HasPrefix(k, "v:") || strings.HasPrefix(k, "t:") {
			for _, v := range vs {
				total += len(v)
			}
		}
	}
	if total > 16*1024 {
		t.Errorf("options total %d bytes, over 16 KB", total)
	}
	var vars Variables
	if err := json.Unmarshal([]byte(form["h:X-Mailgun-Variables"][0]), &vars); err != nil {
		t.Fatal(err)
	}
	if vars.ItemsOmitted == 0 || len(vars.Items)+vars.ItemsOmitted != 400 || len(vars.Items) == 0 {
		t.Errorf("%d items kept, %d omitted", len(vars.Items), vars.ItemsOmitted)
	}
}

func TestNoEmailIsPermanent(t *testing.T) {
	c, f, _ := newTest(t, reply{file: "send_ok.json"})
	o := testOrder()
	o.Customer.Email = ""
	_, err := c.SendConfirmation(context.Background(), o, testShipment, testInvoice)
	if !integrations.IsPermanent(err) || !integrations.IsNotSent(err) || len(f.requests()) != 0 {
		t.Fatalf("err = %v, %d requests", err, len(f.requests()))
	}
}

// A 2xx that is not Mailgun's {"id": …, "message": "Queued. Thank you."}
// is no confirmation: the outcome is unknown (transient, no status, so the
// processor keeps the intent and looks the message up by its Message-Id
// before sending again), never a sent message.
func TestSuccessWithoutIDIsInDoubt(t *testing.T) {
	for _, tt := range []struct {
		name  string
		reply reply
	}{
		{"JSON without an id", reply{body: `{"message":"Queued. Thank you."}`}},
		{"HTML maintenance page", reply{body: "<!DOCTYPE html><html><body>Scheduled maintenance</body></html>"}},
		{"empty body", reply{}},
		{"truncated JSON", reply{body: `{"id":"<2026`}},
		{"202 with an empty body", reply{status: 202}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, f, _ := newTest(t, tt.reply)
			msg, err := c.SendConfirmation(context.Background(), testOrder(), testShipment, testInvoice)
			var e *integrations.Error
			if !errors.As(err, &e) || e.Class != integrations.Transient || e.Status != 0 || e.NotSent || msg != (integrations.Message{}) {
				t.Fatalf("msg = %+v, err = %#v; want a transient error without a status", msg, err)
			}
			if len(f.requests()) != 1 {
				t.Fatalf("%d requests, want 1", len(f.requests()))
			}
		})
	}
}

func TestErrors(t *testing.T) {
	reset := strconv.FormatInt(time.Now().Add(90*time.Second).Unix(), 10)
	tests := []struct {
		name         string
		reply        reply
		class        integrations.Class
		status       int
		msg          string
		retryAfterAt time.Duration // lower bound
		retryAfterTo time.Duration // upper bound
	}{
		{"400 invalid address", reply{status: 400, file: "error_400.json"}, integrations.Permanent, 400, "not a valid address", 0, 0},
		{"400 quoting the address is redacted", reply{status: 400, file: "error_400_address.json"}, integrations.Permanent, 400, "<address>", 0, 0},
		{"401 plain text", reply{status: 401, body: "Forbidden"}, integrations.Permanent, 401, "", 0, 0},
		{"403 sandbox recipient", reply{status: 403, file: "error_403_sandbox.json"}, integrations.Permanent, 403, "Free accounts", 0, 0},
		{"404 may be transient", reply{status: 404, file: "error_404.json"}, integrations.Transient, 404, "Domain not found", 0, 0},
		{"429 with Retry-After", reply{status: 429, file: "error_429.json", headers: map[string]string{"Retry-After": "20"}}, integrations.Transient, 429, "Too Many Requests", 20 * time.Second, 20 * time.Second},
		{"429 with X-RateLimit-Reset", reply{status: 429, file: "error_429.json", headers: map[string]string{"X-RateLimit-Reset": reset}}, integrations.Transient, 429, "", 80 * time.Second, 91 * time.Second},
		{"429 without a hint", reply{status: 429, file: "error_429.json"}, integrations.Transient, 429, "", 0, 0},
		{"500", reply{status: 500, file: "error_500.json"}, integrations.Transient, 500, "Internal Server Error", 0, 0},
		{"502 HTML", reply{status: 502, body: "<html>"}, integrations.Transient, 502, "", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := newTest(t, tt.reply)
			_, err := c.SendConfirmation(context.Background(), testOrder(), testShipment, testInvoice)
			var e *integrations.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v", err)
			}
			if e.Class != tt.class || e.Status != tt.status || !strings.Contains(e.Msg, tt.msg) ||
				e.RetryAfter < tt.retryAfterAt || e.RetryAfter > tt.retryAfterTo {
				t.Errorf("err = %+v, want class %v status %d msg ~%q retry in [%v,%v]", e, tt.class, tt.status, tt.msg, tt.retryAfterAt, tt.retryAfterTo)
			}
			for _, s := range []string{"@example.fi", testKey} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error contains %q: %v", s, err)
				}
			}
		})
	}
}

func TestRateLimitReset(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"junk", 0},
		{"30", 30 * time.Second},
		{"1800000045", 45 * time.Second},
		{"1800000045500", 46 * time.Second},
		{"1799999990", 0},
	}
	for _, tt := range tests {
		if got := rateLimitReset(tt.v, now); got != tt.want {
			t.Errorf("rateLimitReset(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	c, err := New(Config{BaseURL: base, APIKey: testKey, Domain: testDomain})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.SendConfirmation(context.Background(), testOrder(), testShipment, testInvoice)
	var e *integrations.Error
	if !errors.As(err, &e) || e.Class != integrations.Transient {
		t.Fatalf("err = %v", err)
	}
}
