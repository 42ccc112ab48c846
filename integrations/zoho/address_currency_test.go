package zoho

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/orderflow/orderflow/integrations"
)

// The contact gets every part of the billing address that is known and
// none that is not: a gift's billing address Checkout collected in part
// (a country, perhaps a postal code) is kept as it is, so the contact has
// what the invoice has, and an empty value never blanks what an earlier
// order stored.
func TestContactMailingAddressParts(t *testing.T) {
	buyer := map[string]any{"Email": "asa@example.fi", "First_Name": "Åsa", "Last_Name": "Öberg-Järvinen", "Phone": "+358401234567"}
	with := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range buyer {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name    string
		billing integrations.Address
		want    map[string]any
	}{
		{"gift, country and postal code", integrations.Address{Country: "FI", PostalCode: "00100"},
			with(map[string]any{"Mailing_Zip": "00100", "Mailing_Country": "FI"})},
		{"gift, country only", integrations.Address{Country: "SE"},
			with(map[string]any{"Mailing_Country": "SE"})},
		{"full address", integrations.Address{Line1: "Hämeenkatu 10 B 7", Line2: "PL 12", PostalCode: "33100", City: "Tampere", Country: "FI"},
			with(map[string]any{"Mailing_Street": "Hämeenkatu 10 B 7, PL 12", "Mailing_City": "Tampere", "Mailing_Zip": "33100", "Mailing_Country": "FI"})},
		{"full address with a state", integrations.Address{Line1: "1 Main St", PostalCode: "10001", City: "New York", State: "NY", Country: "US"},
			with(map[string]any{"Mailing_Street": "1 Main St", "Mailing_City": "New York", "Mailing_Zip": "10001", "Mailing_Country": "US", "Mailing_State": "NY"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeZoho{}
			c, _, _ := newTest(t, f)
			o := testOrder() // a gift: the goods go to Mikko Virtanen
			o.Customer.Address = tt.billing
			if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			rec := f.crmRequests()[0].body["data"].([]any)[0].(map[string]any)
			if fmt.Sprint(rec) != fmt.Sprint(tt.want) {
				t.Errorf("contact = %v\nwant      %v", rec, tt.want)
			}
		})
	}
}

// invalidCurrency is Zoho's refusal of a deal's Currency.
const invalidCurrency = `{"data":[{"code":"INVALID_DATA","details":{"api_name":"Currency","json_path":"$.data[0].Currency","expected_data_type":"picklist"},"message":"invalid data","status":"error"}]}`

// fakeCurrencies is a CRM whose currency set-up a test changes between
// orders: the currencies it lists (EUR the home currency) and, as Zoho
// does, the refusal of a deal whose Currency is not active or comes while
// multi-currency is off; refuse also refuses a listed one.
type fakeCurrencies struct {
	mu     sync.Mutex
	multi  bool
	active []string
	refuse string
}

func (fc *fakeCurrencies) set(multi bool, refuse string, active ...string) {
	fc.mu.Lock()
	fc.multi, fc.refuse, fc.active = multi, refuse, active
	fc.mu.Unlock()
}

func (fc *fakeCurrencies) install(f *fakeZoho) {
	f.org = func(path string) reply {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		if path == "/crm/v3/org" {
			return reply{body: `{"org":[{"currency":"Euro - EUR","currency_locale":"en_FI","mc_status":false}]}`}
		}
		if !fc.multi {
			return reply{status: 403, body: `{"code":"CURRENCIES_NOT_ENABLED","details":{},"message":"Multi currency is not enabled","status":"error"}`}
		}
		var list []string
		for _, code := range fc.active {
			list = append(list, fmt.Sprintf(`{"iso_code":%q,"is_active":true,"is_base":%t}`, code, code == "EUR"))
		}
		return reply{body: `{"currencies":[` + strings.Join(list, ",") + `]}`}
	}
	f.crm = func(module, tok string) reply {
		if module == "Deals" {
			reqs := f.crmRequests() // the one being answered is the last
			rec := reqs[len(reqs)-1].body["data"].([]any)[0].(map[string]any)
			if cur, has := rec["Currency"].(string); has {
				fc.mu.Lock()
				refused := !fc.multi || cur == fc.refuse || !contains(fc.active, cur)
				fc.mu.Unlock()
				if refused {
					return reply{status: http.StatusBadRequest, body: invalidCurrency}
				}
			}
		}
		return okReply(f.t, module)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func deals(f *fakeZoho) []map[string]any {
	var out []map[string]any
	for _, r := range f.crmRequests() {
		if r.path == "/crm/v3/Deals/upsert" {
			out = append(out, r.body["data"].([]any)[0].(map[string]any))
		}
	}
	return out
}

func gets(f *fakeZoho) []string {
	var out []string
	for _, g := range f.getRequests() {
		out = append(out, g.path)
	}
	return out
}

func warnings(logs string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "level=WARN") {
			out = append(out, l)
		}
	}
	return out
}

// SEK is deactivated in the CRM after the client read its currencies: the
// deal refused for its Currency has them read again, once, and is booked
// without Amount and Currency, its description saying why.
func TestDealCurrencyDeactivatedSinceRead(t *testing.T) {
	fc := &fakeCurrencies{}
	fc.set(true, "", "EUR", "SEK")
	f := &fakeZoho{}
	fc.install(f)
	c, _, logs := newTest(t, f)
	o := testOrder()
	o.Currency, o.AmountTotal = "sek", 1126
	if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	fc.set(true, "", "EUR")
	res, err := c.UpsertContactAndDeal(context.Background(), o)
	if err != nil {
		t.Fatalf("err = %v, want the deal booked without an amount", err)
	}
	if res.DealID != "4150868000000376008" {
		t.Errorf("result = %+v", res)
	}
	d := deals(f)
	if len(d) != 3 {
		t.Fatalf("%d deal upserts, want 3 (the first order's, the refused one, the one booked again)", len(d))
	}
	if d[1]["Currency"] != "SEK" || d[1]["Amount"] != 11.26 {
		t.Errorf("refused deal: Amount %v Currency %v, want 11.26 SEK", d[1]["Amount"], d[1]["Currency"])
	}
	if _, has := d[2]["Amount"]; has {
		t.Errorf("deal booked again with Amount %v", d[2]["Amount"])
	}
	if _, has := d[2]["Currency"]; has {
		t.Errorf("deal booked again with Currency %v", d[2]["Currency"])
	}
	want := "Order OF-1234567890 (pi_3OabcDEF1234567890), 2 line(s), 11.26 SEK; amount not booked: SEK is not an active currency of the CRM"
	if d[2]["Description"] != want {
		t.Errorf("Description = %q\nwant %q", d[2]["Description"], want)
	}
	if g := gets(f); fmt.Sprint(g) != "[/crm/v3/org/currencies /crm/v3/org/currencies]" {
		t.Errorf("look-ups = %v, want the currencies read twice", g)
	}
	w := warnings(logs.String())
	if len(w) != 1 || !strings.Contains(w[0], "order_id=pi_3OabcDEF1234567890") || !strings.Contains(w[0], "currency=SEK") {
		t.Errorf("warnings = %q, want one naming the order and SEK", w)
	}
	for _, secret := range []string{"asa@example.fi", "Åsa", "Öberg"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log contains %q", secret)
		}
	}
	// The fresh list is kept: the next order is booked at once.
	if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if n, g := len(deals(f)), gets(f); n != 4 || len(g) != 2 {
		t.Errorf("next order: %d deal upserts, %d look-ups; want 4 and 2", n, len(g))
	}
}

// The CRM refuses a currency its own list says is active: read once more,
// the list still says so, and the order fails for good, without a loop.
func TestDealCurrencyRefusedThoughActive(t *testing.T) {
	fc := &fakeCurrencies{}
	fc.set(true, "", "EUR", "SEK")
	f := &fakeZoho{}
	fc.install(f)
	c, _, _ := newTest(t, f)
	o := testOrder()
	o.Currency = "sek"
	if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	fc.set(true, "SEK", "EUR", "SEK")
	_, err := c.UpsertContactAndDeal(context.Background(), o)
	var e *integrations.Error
	if !errors.As(err, &e) || e.Class != integrations.Permanent || e.Op != "upsert deal" || e.Status != http.StatusBadRequest {
		t.Fatalf("err = %v, want a permanent error of the deal upsert", err)
	}
	if want := "zoho: upsert deal: HTTP 400: the CRM refused the order's currency SEK although its currencies list it as active: INVALID_DATA (field Currency): invalid data"; err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
	if n := len(deals(f)); n != 2 {
		t.Errorf("%d deal upserts, want 2 (the first order's and the refused one)", n)
	}
	if g := gets(f); len(g) != 2 {
		t.Errorf("look-ups = %v, want the currencies read twice", g)
	}
}

// Multi-currency is switched off after the client read it on: the EUR
// deal refused for its Currency is booked again in the home currency,
// with Amount and without Currency.
func TestDealCurrencyMultiSwitchedOff(t *testing.T) {
	fc := &fakeCurrencies{}
	fc.set(true, "", "EUR", "SEK")
	f := &fakeZoho{}
	fc.install(f)
	c, _, logs := newTest(t, f)
	o := testOrder()
	o.AmountTotal = 1126
	if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	fc.set(false, "")
	if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
		t.Fatalf("err = %v", err)
	}
	d := deals(f)
	if len(d) != 3 {
		t.Fatalf("%d deal upserts, want 3", len(d))
	}
	if d[2]["Amount"] != 11.26 {
		t.Errorf("Amount = %v, want 11.26", d[2]["Amount"])
	}
	if _, has := d[2]["Currency"]; has {
		t.Errorf("Currency %v sent with multi-currency off", d[2]["Currency"])
	}
	if want := "Order OF-1234567890 (pi_3OabcDEF1234567890), 2 line(s), 11.26 EUR"; d[2]["Description"] != want {
		t.Errorf("Description = %q, want %q", d[2]["Description"], want)
	}
	if g := gets(f); fmt.Sprint(g) != "[/crm/v3/org/currencies /crm/v3/org/currencies /crm/v3/org]" {
		t.Errorf("look-ups = %v", g)
	}
	if w := warnings(logs.String()); len(w) != 1 || !strings.Contains(w[0], "currency=EUR") {
		t.Errorf("warnings = %q", w)
	}
}

// The configuration, not the CRM's list, decided the currency (mode
// multi): nothing to read again, the refusal stands as it was.
func TestDealCurrencyRefusedInMultiMode(t *testing.T) {
	fc := &fakeCurrencies{}
	fc.set(true, "", "EUR")
	f := &fakeZoho{}
	fc.install(f)
	c, _, _ := newTest(t, f, func(c *Config) { c.CurrencyMode = CurrencyMulti })
	o := testOrder()
	o.Currency = "sek"
	_, err := c.UpsertContactAndDeal(context.Background(), o)
	if !integrations.IsPermanent(err) || !strings.Contains(err.Error(), "HTTP 400: INVALID_DATA (field Currency): invalid data") {
		t.Fatalf("err = %v, want the refusal", err)
	}
	if n, g := len(deals(f)), gets(f); n != 1 || len(g) != 0 {
		t.Errorf("%d deal upserts and look-ups %v, want 1 and none", n, g)
	}
}

// Another field refused is not taken for a stale currency.
func TestDealOtherFieldRefusedNotRetried(t *testing.T) {
	f := &fakeZoho{}
	f.crm = func(module, tok string) reply {
		if module == "Deals" {
			return reply{status: http.StatusBadRequest, body: strings.ReplaceAll(invalidCurrency, "Currency", "Amount")}
		}
		return okReply(f.t, module)
	}
	c, _, _ := newTest(t, f)
	for range 2 { // the second with the currencies from the cache
		if _, err := c.UpsertContactAndDeal(context.Background(), testOrder()); !integrations.IsPermanent(err) {
			t.Fatalf("err = %v, want permanent", err)
		}
	}
	if n, g := len(deals(f)), gets(f); n != 2 || len(g) != 1 {
		t.Errorf("%d deal upserts and look-ups %v, want 2 and one", n, g)
	}
}
