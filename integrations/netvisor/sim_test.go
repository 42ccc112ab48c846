package netvisor_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/netvisor"
	"github.com/orderflow/orderflow/integrations/sim"
)

// The real client against the provider simulator, which verifies the MAC
// with the same keys: create an invoice, then find it by number.
func TestAgainstSimulator(t *testing.T) {
	s, err := sim.New(sim.Config{DataDir: t.TempDir(), NetvisorCustomerKey: "ck", NetvisorPartnerKey: "pk"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); _ = s.Close() })
	for i, alg := range []string{netvisor.AlgorithmSHA256, netvisor.AlgorithmHMACSHA256} {
		t.Run(alg, func(t *testing.T) {
			c, err := netvisor.New(netvisor.Config{
				BaseURL: srv.URL, Sender: "orderflow", CustomerID: "C1", CustomerKey: "ck", PartnerID: "P1", PartnerKey: "pk",
				OrganisationID: "1967543-8", Algorithm: alg, CustomerIdentifier: "1", ProductIdentifier: "1697",
			})
			if err != nil {
				t.Fatal(err)
			}
			id := []string{"pi_3SimulatorTestNv0001", "pi_3SimulatorTestNv0002"}[i]
			o := integrations.Order{
				Model: integrations.OrderModel, ID: id, Number: integrations.OrderNumber(id), Currency: "eur", AmountTotal: 3138, AmountTax: 638,
				Items: []integrations.LineItem{{Description: "Kahvimuki Öljy €", Quantity: 2, UnitAmount: 1250, AmountSubtotal: 2500, AmountTax: 638, AmountTotal: 3138,
					TaxBehavior: "exclusive", Taxes: []integrations.Tax{{Amount: 638, Percentage: "25.5"}}}},
				Customer:  integrations.Customer{Name: "Matti Meikäläinen"},
				Shipping:  integrations.Address{Name: "Matti Meikäläinen", Line1: "Pajukuja 1", PostalCode: "53100", City: "Lappeenranta", Country: "FI"},
				CreatedAt: time.Now(),
			}
			number := c.InvoiceNumber(o)
			if _, found, err := c.FindInvoice(context.Background(), number); err != nil || found {
				t.Fatalf("before create: found=%v err=%v", found, err)
			}
			inv, err := c.CreateInvoice(context.Background(), o, integrations.Shipment{})
			if err != nil {
				t.Fatal(err)
			}
			if inv.Number != number || inv.ProviderID == "" {
				t.Fatalf("invoice = %+v", inv)
			}
			got, found, err := c.FindInvoice(context.Background(), number)
			if err != nil || !found || got != inv {
				t.Fatalf("FindInvoice = %+v, %v, %v; want %+v", got, found, err, inv)
			}
		})
	}
	// Wrong keys fail authentication, permanently.
	c, err := netvisor.New(netvisor.Config{
		BaseURL: srv.URL, Sender: "orderflow", CustomerID: "C1", CustomerKey: "wrong", PartnerID: "P1", PartnerKey: "pk",
		OrganisationID: "1967543-8", CustomerIdentifier: "1", ProductIdentifier: "1697",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.FindInvoice(context.Background(), "1"); !integrations.IsPermanent(err) {
		t.Fatalf("wrong keys: err = %v, want permanent", err)
	}
}
