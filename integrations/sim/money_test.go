package sim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The org's currencies: listed while multi-currency is on, 403
// CURRENCIES_NOT_ENABLED and the home currency in /org when off; a deal's
// Currency must be active.
func TestZohoCurrencies(t *testing.T) {
	s, ts := newTest(t, Config{})
	auth := map[string]string{"Authorization": "Zoho-oauthtoken " + zohoToken(t, ts.URL)}
	r := call(t, "GET", ts.URL+"/crm/v3/org/currencies", auth, nil)
	wantStatus(t, r, 200)
	if path(r.json(t), "currencies", 0, "iso_code") != "EUR" || path(r.json(t), "currencies", 0, "is_base") != true {
		t.Fatalf("currencies: %s", r.body)
	}
	deal := func(currency string) resp {
		return call(t, "POST", ts.URL+"/crm/v3/Deals/upsert", auth, map[string]any{
			"data": []any{map[string]any{"Deal_Name": "OF-1 " + currency, "Currency": currency, "Amount": 12.5}}})
	}
	wantStatus(t, deal("SEK"), 200)
	if r := deal("ISK"); r.status != 400 || path(r.json(t), "data", 0, "details", "api_name") != "Currency" {
		t.Fatalf("inactive currency accepted: %d %s", r.status, r.body)
	}
	wantStatus(t, call(t, "PUT", ts.URL+"/_sim/zoho/currencies", nil, map[string]any{"multi_currency": false, "home": "sek"}), 200)
	if r := call(t, "GET", ts.URL+"/crm/v3/org/currencies", auth, nil); r.status != 403 || path(r.json(t), "code") != "CURRENCIES_NOT_ENABLED" {
		t.Fatalf("multi-currency off: %d %s", r.status, r.body)
	}
	if r := call(t, "GET", ts.URL+"/crm/v3/org", auth, nil); path(r.json(t), "org", 0, "currency") != "Home currency - SEK" {
		t.Fatalf("org: %s", r.body)
	}
	if r := deal("SEK"); r.status != 400 {
		t.Fatalf("Currency accepted with multi-currency off: %s", r.body)
	}
	s.SetZohoCurrencies(DefaultZohoCurrencies)
}

// A template send without a subject gets the simulator's stand-in for
// the template's subject in the .eml.
func TestMailgunTemplateSubject(t *testing.T) {
	dir := t.TempDir()
	_, ts := newTest(t, Config{DataDir: dir})
	ct, body := multipartBody(t, [][2]string{{"from", "Shop <o@mg.example.com>"}, {"to", "a@example.com"}, {"template", "order-confirmation"},
		{"h:Message-Id", "<OF-1@mg.example.com>"}, {"h:X-Mailgun-Variables", `{"order_number":"OF-0JNDYLE8CG"}`}})
	r := call(t, "POST", ts.URL+"/v3/mg.example.com/messages", map[string]string{"Authorization": "Basic YXBpOmtleS0xMjM=", "Content-Type": ct}, body)
	wantStatus(t, r, 200)
	files, _ := filepath.Glob(filepath.Join(dir, "outbox", "email", "*.eml"))
	if len(files) != 1 {
		t.Fatalf("%d emails", len(files))
	}
	eml, _ := os.ReadFile(files[0])
	if !strings.Contains(string(eml), "Subject: Your order OF-0JNDYLE8CG\r\n") {
		t.Fatalf("no subject:\n%s", eml)
	}
}
