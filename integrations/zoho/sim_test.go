package zoho_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/integrations/zoho"
)

// The real client against the simulator's daily credits: the refusal is
// recognised as the quota, with the reset the answer gives, and a new day
// lets the next order through.
func TestCreditsExhaustedAgainstSimulator(t *testing.T) {
	s, err := sim.New(sim.Config{EnforceLimits: true, Limits: sim.Limits{ZohoDailyCredits: 2, ZohoConcurrency: -1}})
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
	order := func(id string) integrations.Order {
		return integrations.Order{ID: id, Number: integrations.OrderNumber(id), Currency: "eur", AmountTotal: 1000,
			Customer: integrations.Customer{Name: "Åsa Öberg", Email: id + "@example.fi"}}
	}
	if _, err := c.UpsertContactAndDeal(context.Background(), order("pi_credits_1")); err != nil {
		t.Fatalf("first order (2 credits of 2): %v", err)
	}
	before := time.Now()
	_, err = c.UpsertContactAndDeal(context.Background(), order("pi_credits_2"))
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
