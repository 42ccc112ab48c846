package postnord_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/labelstore"
	"github.com/orderflow/orderflow/integrations/postnord"
	"github.com/orderflow/orderflow/integrations/sim"
)

// The real client against the provider simulator: the same code path as
// production, end to end.
func TestAgainstSimulator(t *testing.T) {
	s, err := sim.New(sim.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); _ = s.Close() })
	store, err := labelstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := postnord.New(postnord.Config{
		BaseURL: srv.URL, APIKey: "0123456789abcdef0123456789abcdef", Labels: store,
		ApplicationID: 1, CustomerNumber: "1234567890",
		Consignor: postnord.Party{Name: "Verkstad AB", Streets: []string{"Industrigatan 4"}, PostalCode: "11122", City: "Stockholm", CountryCode: "SE"},
	})
	if err != nil {
		t.Fatal(err)
	}
	o := integrations.Order{
		ID: "pi_3SimulatorTest000001", Number: integrations.OrderNumber("pi_3SimulatorTest000001"),
		Customer: integrations.Customer{Name: "Åsa Öberg", Email: "asa@example.se"},
		Shipping: integrations.Address{Name: "Åsa Öberg", Line1: "Storgatan 1", PostalCode: "41301", City: "Göteborg", Country: "SE"},
	}
	sh, err := c.CreateShipment(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sh.TrackingNumber == "" || sh.ShipmentID == "" || sh.TrackingURL == "" {
		t.Fatalf("shipment = %+v", sh)
	}
	u, err := url.Parse(sh.LabelLocation)
	if err != nil {
		t.Fatal(err)
	}
	pdf, err := os.ReadFile(filepath.FromSlash(u.Path))
	if err != nil || len(pdf) < 5 || string(pdf[:5]) != "%PDF-" {
		t.Fatalf("label at %s: %.20q, %v", sh.LabelLocation, pdf, err)
	}
}
