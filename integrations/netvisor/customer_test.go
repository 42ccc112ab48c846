package netvisor_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/netvisor"
	"github.com/orderflow/orderflow/integrations/sim"
)

type nvCall struct {
	method, path, query string
	body                string
}

// nvRecorder serves the simulator and records every request.
type nvRecorder struct {
	mu    sync.Mutex
	calls []nvCall
}

func (r *nvRecorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(b))
		r.mu.Lock()
		r.calls = append(r.calls, nvCall{req.Method, req.URL.Path, req.URL.RawQuery, string(b)})
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	})
}

func (r *nvRecorder) bodies(method, path string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		if c.method == method && c.path == path {
			out = append(out, c.body)
		}
	}
	return out
}

func businessOrder(id, vat string) integrations.Order {
	return integrations.Order{
		Model: integrations.OrderModel, ID: id, Number: integrations.OrderNumber(id), Currency: "eur", AmountTotal: 90000,
		Items: []integrations.LineItem{{Description: "Werkbank", Quantity: 2, UnitAmount: 45000, AmountSubtotal: 90000, AmountTotal: 90000,
			TaxBehavior: "exclusive", Taxes: []integrations.Tax{{Amount: 0, Percentage: "0", TaxabilityReason: integrations.ReasonReverseCharge}}}},
		Customer: integrations.Customer{Name: "Müller Werkzeuge GmbH", Email: "einkauf@mueller.example.de",
			Address: integrations.Address{Line1: "Hauptstraße 1", Line2: "Rechnungsstelle", PostalCode: "10115", City: "Berlin", Country: "DE"},
			TaxIDs:  []integrations.TaxID{{Type: "eu_vat", Value: vat}}},
		Shipping:  integrations.Address{Name: "Müller Werkzeuge GmbH, Lager", Line1: "Hafenweg 7", PostalCode: "20457", City: "Hamburg", Country: "DE"},
		CreatedAt: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
	}
}

func newBusinessClient(t *testing.T, shared bool) (*netvisor.Client, *nvRecorder) {
	t.Helper()
	s, err := sim.New(sim.Config{DataDir: t.TempDir(), NetvisorCustomerKey: "ck", NetvisorPartnerKey: "pk"})
	if err != nil {
		t.Fatal(err)
	}
	rec := &nvRecorder{}
	srv := httptest.NewServer(rec.wrap(s.Handler()))
	t.Cleanup(func() { srv.Close(); _ = s.Close() })
	c, err := netvisor.New(netvisor.Config{
		BaseURL: srv.URL, Sender: "orderflow", CustomerID: "C1", CustomerKey: "ck", PartnerID: "P1", PartnerKey: "pk",
		OrganisationID: "1967543-8", CustomerIdentifier: "1", ProductIdentifier: "1697", SharedCustomerOnly: shared,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

// A buyer with a VAT number becomes a Netvisor customer of its own, with
// the VAT number as its business id, added once however many orders it
// places and however it types the number; the invoice links to it by code.
func TestBusinessCustomer(t *testing.T) {
	c, rec := newBusinessClient(t, false)
	ctx := context.Background()
	for _, o := range []integrations.Order{
		businessOrder("pi_3BusinessCustomer0001", "DE123456789"),
		businessOrder("pi_3BusinessCustomer0002", "de 123.456.789"),
	} {
		if _, err := c.CreateInvoice(ctx, o, integrations.Shipment{}); err != nil {
			t.Fatal(err)
		}
	}
	adds := rec.bodies(http.MethodPost, "/customer.nv")
	if len(adds) != 1 {
		t.Fatalf("customer.nv adds = %d, want 1: %q", len(adds), adds)
	}
	want := "<Root><Customer><CustomerBaseInformation><InternalIdentifier>DE123456789</InternalIdentifier>" +
		"<ExternalIdentifier>DE123456789</ExternalIdentifier><Name>M\xfcller Werkzeuge GmbH</Name>" +
		"<StreetAddress>Hauptstra\xdfe 1</StreetAddress><AdditionalAddressLine>Rechnungsstelle</AdditionalAddressLine>" +
		"<City>Berlin</City><PostNumber>10115</PostNumber><Country type=\"ISO-3166\">DE</Country>" +
		"<Email>einkauf@mueller.example.de</Email><IsActive>1</IsActive><IsPrivateCustomer>0</IsPrivateCustomer>" +
		"</CustomerBaseInformation></Customer></Root>"
	if adds[0] != want {
		t.Errorf("customer.nv body (ISO-8859-15)\n got %q\nwant %q", adds[0], want)
	}
	invoices := rec.bodies(http.MethodPost, "/salesinvoice.nv")
	if len(invoices) != 2 {
		t.Fatalf("invoices = %d, want 2", len(invoices))
	}
	for i, inv := range invoices {
		if !strings.Contains(inv, `<InvoicingCustomerIdentifier type="customer">DE123456789</InvoicingCustomerIdentifier>`) {
			t.Errorf("invoice %d does not link customer DE123456789: %.400s", i, inv)
		}
	}
	if n := len(rec.bodies(http.MethodGet, "/customerlist.nv")); n != 2 {
		t.Errorf("customer look-ups = %d, want 2 (one per order)", n)
	}
}

// A Finnish business buyer's business id is its Y-tunnus, as Finnish
// registers write it, not the VAT number made of it; its code stays the
// VAT number, so it is one customer however it typed the number. The VAT
// is charged as usual (no reverse charge at home).
func TestBusinessCustomerFinnish(t *testing.T) {
	c, rec := newBusinessClient(t, false)
	o := businessOrder("pi_3BusinessCustomerFi01", "FI 2345 6789")
	o.Customer.Name = "Puuseppä Oy"
	o.Customer.Address = integrations.Address{Line1: "Teollisuuskatu 5", PostalCode: "33100", City: "Tampere", Country: "FI"}
	o.Shipping = integrations.Address{Name: "Puuseppä Oy", Line1: "Teollisuuskatu 5", PostalCode: "33100", City: "Tampere", Country: "FI"}
	o.AmountTotal, o.AmountTax = 112950, 22950
	o.Items[0].AmountTotal, o.Items[0].AmountTax = 112950, 22950
	o.Items[0].Taxes = []integrations.Tax{{Amount: 22950, TaxableAmount: 90000, Percentage: "25.5", TaxabilityReason: "standard_rated"}}
	if _, err := c.CreateInvoice(context.Background(), o, integrations.Shipment{}); err != nil {
		t.Fatal(err)
	}
	adds := rec.bodies(http.MethodPost, "/customer.nv")
	if len(adds) != 1 {
		t.Fatalf("customer.nv adds = %d, want 1: %q", len(adds), adds)
	}
	if want := "<InternalIdentifier>FI23456789</InternalIdentifier><ExternalIdentifier>2345678-9</ExternalIdentifier>"; !strings.Contains(adds[0], want) {
		t.Errorf("customer.nv body %q does not hold %q", adds[0], want)
	}
	inv := rec.bodies(http.MethodPost, "/salesinvoice.nv")
	if len(inv) != 1 || !strings.Contains(inv[0], `<InvoicingCustomerIdentifier type="customer">FI23456789</InvoicingCustomerIdentifier>`) ||
		!strings.Contains(inv[0], `<ProductVatPercentage vatcode="KOMY">25,5</ProductVatPercentage>`) {
		t.Errorf("invoice does not link customer FI23456789 with VAT at 25,5 %%: %q", inv)
	}
	for code, want := range map[string]string{"FI23456789": "2345678-9", "DE123456789": "DE123456789", "FI2345678": "FI2345678", "FI2345678X": "FI2345678X", "SE556677889901": "SE556677889901"} {
		if got := netvisor.BusinessID(code); got != want {
			t.Errorf("BusinessID(%q) = %q, want %q", code, got, want)
		}
	}
}

// Two orders of one new business at once: one add wins, the other is
// refused as a duplicate code, looks again and links the same customer.
func TestBusinessCustomerRace(t *testing.T) {
	c, rec := newBusinessClient(t, false)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			o := businessOrder("pi_3BusinessCustomerRace"+string(rune('A'+i)), "SE556677889901")
			_, errs[i] = c.CreateInvoice(context.Background(), o, integrations.Shipment{})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("order %d: %v", i, err)
		}
	}
	if n := len(rec.bodies(http.MethodPost, "/salesinvoice.nv")); n != 6 {
		t.Errorf("invoices = %d, want 6", n)
	}
}

// --netvisor-shared-customer-only: no customer register calls, the invoice
// links the configured customer.
func TestSharedCustomerOnly(t *testing.T) {
	c, rec := newBusinessClient(t, true)
	if _, err := c.CreateInvoice(context.Background(), businessOrder("pi_3SharedCustomerOnly01", "DE123456789"), integrations.Shipment{}); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.bodies(http.MethodPost, "/customer.nv")) + len(rec.bodies(http.MethodGet, "/customerlist.nv")); n != 0 {
		t.Errorf("customer register calls = %d, want 0", n)
	}
	inv := rec.bodies(http.MethodPost, "/salesinvoice.nv")
	if len(inv) != 1 || !strings.Contains(inv[0], `<InvoicingCustomerIdentifier type="netvisor">1</InvoicingCustomerIdentifier>`) {
		t.Errorf("invoice = %q, want it linked to netvisor customer 1", inv)
	}
}

// An order that cannot be invoiced adds no customer; a customer register
// outage is transient and no invoice is sent.
func TestBusinessCustomerFailures(t *testing.T) {
	c, rec := newBusinessClient(t, false)
	bad := businessOrder("pi_3BusinessCustomerBad01", "DE123456789")
	bad.AmountTotal++ // the lines no longer add up to what was paid
	if _, err := c.CreateInvoice(context.Background(), bad, integrations.Shipment{}); !integrations.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	if n := len(rec.calls); n != 0 {
		t.Errorf("requests = %d, want none for an order that cannot be invoiced", n)
	}

	srv := httptest.NewServer(rec.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
	})))
	defer srv.Close()
	down, err := netvisor.New(netvisor.Config{
		BaseURL: srv.URL, Sender: "orderflow", CustomerID: "C1", CustomerKey: "ck", PartnerID: "P1", PartnerKey: "pk",
		OrganisationID: "1967543-8", CustomerIdentifier: "1", ProductIdentifier: "1697",
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = down.CreateInvoice(context.Background(), businessOrder("pi_3BusinessCustomerDown1", "DE123456789"), integrations.Shipment{})
	if err == nil || integrations.IsPermanent(err) {
		t.Fatalf("customer register answering 503: err = %v, want a transient error", err)
	}
	if n := len(rec.bodies(http.MethodPost, "/salesinvoice.nv")); n != 0 {
		t.Errorf("invoices sent = %d, want 0 while the customer is unknown", n)
	}
}
