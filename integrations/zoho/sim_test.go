package zoho_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/integrations/zoho"
)

// simClient is the real client against a simulator of cfg, and the
// simulator's URL.
func simClient(t *testing.T, cfg sim.Config) (*zoho.Client, *sim.Server, string) {
	t.Helper()
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); _ = s.Close() })
	c, err := zoho.New(zoho.Config{APIBaseURL: srv.URL, AccountsURL: srv.URL, ClientID: "1000.SIM", ClientSecret: "sim",
		RefreshToken: "1000.sim", CurrencyMode: zoho.CurrencyMulti})
	if err != nil {
		t.Fatal(err)
	}
	return c, s, srv.URL
}

// The real client against the simulator's daily credits: the refusal is
// recognised as the quota, with the reset the answer gives, and a new day
// lets the next order through.
func TestCreditsExhaustedAgainstSimulator(t *testing.T) {
	c, s, _ := simClient(t, sim.Config{EnforceLimits: true, Limits: sim.Limits{ZohoDailyCredits: 2, ZohoConcurrency: -1}})
	order := func(id string) integrations.Order {
		return integrations.Order{ID: id, Number: integrations.OrderNumber(id), Currency: "eur", AmountTotal: 1000,
			Customer: integrations.Customer{Name: "Åsa Öberg", Email: id + "@example.fi"}}
	}
	if _, err := c.UpsertContactAndDeal(context.Background(), order("pi_credits_1")); err != nil {
		t.Fatalf("first order (2 credits of 2): %v", err)
	}
	before := time.Now()
	_, err := c.UpsertContactAndDeal(context.Background(), order("pi_credits_2"))
	reset, quota := integrations.QuotaResetOf(err)
	if !quota {
		t.Fatalf("second order: err = %v, want the credits used up", err)
	}
	// Both credits were spent this minute: they leave the window a day
	// after its end, between 24 h and 24 h 1 min from now.
	if reset.Before(before.Add(24*time.Hour)) || reset.After(before.Add(24*time.Hour+61*time.Second)) {
		t.Errorf("reset %v, want about 24 h after %v", reset, before)
	}
	if err := s.ResetZohoCredits(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpsertContactAndDeal(context.Background(), order("pi_credits_2")); err != nil {
		t.Fatalf("after a new day: %v", err)
	}
}

// The simulator refuses a value longer than Zoho's field holds, as Zoho
// does, and the client's cut values pass it.
func TestLongValuesAgainstSimulator(t *testing.T) {
	c, _, base := simClient(t, sim.Config{})
	o := integrations.Order{ID: "pi_long_names", Number: integrations.OrderNumber("pi_long_names"), Currency: "eur", AmountTotal: 1000,
		Customer: integrations.Customer{Name: strings.Repeat("Väinämöinen ", 12) + "Oy", Email: "long@example.fi",
			TaxIDs: []integrations.TaxID{{Type: "eu_vat", Value: "FI23456789"}}}}
	if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
		t.Fatalf("a 146-character business name: %v", err)
	}
	// The simulator's own check, with a record the client did not cut.
	tr, err := http.PostForm(base+"/oauth/v2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"1000.SIM"},
		"client_secret": {"sim"}, "refresh_token": {"1000.sim"}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(tr.Body).Decode(&tok)
	tr.Body.Close()
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("token: %v %+v", err, tok)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/crm/v3/Contacts/upsert", strings.NewReader(
		`{"data":[{"Last_Name":"`+strings.Repeat("x", 81)+`","Email":"x@example.fi"}],"duplicate_check_fields":["Email"]}`))
	req.Header.Set("Authorization", "Zoho-oauthtoken "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `"INVALID_DATA"`) || !strings.Contains(string(body), `"maximum_length":80`) {
		t.Errorf("an 81-character Last_Name: %d %s, want INVALID_DATA with maximum_length 80", resp.StatusCode, body)
	}
}

// The real client in currency mode auto against the simulator, whose SEK
// is deactivated after the client read the currencies: the refused deal is
// booked again without Amount and Currency, the currencies read twice.
func TestDeactivatedCurrencyAgainstSimulator(t *testing.T) {
	s, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reads int
	var deals []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/crm/v3/Deals/upsert" {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			mu.Lock()
			deals = append(deals, string(b))
			mu.Unlock()
		}
		if r.URL.Path == "/crm/v3/org/currencies" {
			mu.Lock()
			reads++
			mu.Unlock()
		}
		s.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.Close(); _ = s.Close() })
	c, err := zoho.New(zoho.Config{APIBaseURL: srv.URL, AccountsURL: srv.URL, ClientID: "1000.SIM", ClientSecret: "sim", RefreshToken: "1000.sim"})
	if err != nil {
		t.Fatal(err)
	}
	o := integrations.Order{ID: "pi_stale_sek", Number: integrations.OrderNumber("pi_stale_sek"), Currency: "sek", AmountTotal: 1126,
		Customer: integrations.Customer{Name: "Åsa Öberg", Email: "stale@example.se"}}
	if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
		t.Fatalf("SEK active: %v", err)
	}
	s.SetZohoCurrencies(sim.ZohoCurrencies{Multi: true, Home: "EUR", Active: []string{"EUR", "NOK"}})
	if _, err := c.UpsertContactAndDeal(context.Background(), o); err != nil {
		t.Fatalf("SEK deactivated: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if reads != 2 || len(deals) != 3 {
		t.Fatalf("%d currency reads and %d deal upserts, want 2 and 3", reads, len(deals))
	}
	var last struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(deals[2]), &last); err != nil || len(last.Data) != 1 {
		t.Fatalf("deal upsert %s: %v", deals[2], err)
	}
	d := last.Data[0]
	_, amount := d["Amount"]
	_, currency := d["Currency"]
	want := "Order " + o.Number + " (pi_stale_sek), 0 line(s), 11.26 SEK; amount not booked: SEK is not an active currency of the CRM"
	if amount || currency || d["Description"] != want {
		t.Errorf("deal booked again = %v, want no Amount, no Currency and the description %q", d, want)
	}
}
