package dhl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/dhl"
	"github.com/orderflow/orderflow/integrations/labelstore"
	"github.com/orderflow/orderflow/integrations/sim"
)

func simClient(t *testing.T) (*dhl.Client, *sim.Server, string) {
	t.Helper()
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
	c, err := dhl.New(dhl.Config{
		BaseURL: srv.URL, APIKey: "sim-key", Username: "user-valid", Password: "SandboxPasswort2023!", Labels: store,
		BillingNumber: "33333333330102", InternationalBillingNumber: "33333333335301",
		Shipper: dhl.Shipper{Name: "Werkstatt GmbH", Street: "Hafenstraße 7", PostalCode: "20457", City: "Hamburg", Country: "DE"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, s, srv.URL
}

var shipmentNo = regexp.MustCompile(`^00340434\d{12}$`)

// The real client against the simulator: a domestic and an international
// shipment created, their labels stored as PDFs; a second booking of the
// same order is a second shipment (DHL has no idempotency), which the
// simulator counts as a duplicate.
func TestAgainstSimulator(t *testing.T) {
	c, s, _ := simClient(t)
	orders := []integrations.Order{
		{ID: "pi_3SimDhl0000000000001", Number: "OF-0000000001", Customer: integrations.Customer{Name: "Jörg Müller", Email: "j@example.de"},
			Shipping: integrations.Address{Name: "Jörg Müller", Line1: "Kurt-Schumacher-Str. 20", PostalCode: "53113", City: "Bonn", Country: "DE"}},
		{ID: "pi_3SimDhl0000000000002", Number: "OF-0000000002", Customer: integrations.Customer{Name: "Åsa Öberg", Email: "a@example.se"},
			Shipping: integrations.Address{Name: "Åsa Öberg", Line1: "Storgatan 1", PostalCode: "41138", City: "Göteborg", Country: "SE"}},
	}
	for _, o := range orders {
		sh, err := c.CreateShipment(context.Background(), o)
		if err != nil {
			t.Fatalf("%s: %v", o.ID, err)
		}
		if !shipmentNo.MatchString(sh.TrackingNumber) || sh.ShipmentID != sh.TrackingNumber {
			t.Errorf("%s: shipment %+v", o.ID, sh)
		}
		if !strings.HasPrefix(sh.TrackingURL, "https://www.dhl.de/en/privatkunden/pakete-empfangen/verfolgen.html?piececode=00340434") {
			t.Errorf("%s: tracking URL %q", o.ID, sh.TrackingURL)
		}
		u, err := url.Parse(sh.LabelLocation)
		if err != nil {
			t.Fatal(err)
		}
		pdf, err := os.ReadFile(filepath.FromSlash(u.Path))
		if err != nil || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
			t.Errorf("%s: label at %s: %.20q, %v", o.ID, sh.LabelLocation, pdf, err)
		}
		if want := o.ID + "_label-" + sh.TrackingNumber + ".pdf"; filepath.Base(u.Path) != want {
			t.Errorf("%s: label file %s, want %s", o.ID, filepath.Base(u.Path), want)
		}
	}
	if _, err := c.CreateShipment(context.Background(), orders[0]); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats().Steps[sim.StepShipping]; st.Created != 3 || st.DuplicateCreates != 1 {
		t.Errorf("simulator shipping stats %+v, want 3 created, 1 duplicate", st)
	}
}

// The simulator's faults reach the client in DHL's error shapes: a
// rejection is permanent with its validation message, unavailability
// transient.
func TestSimulatorFaults(t *testing.T) {
	c, s, _ := simClient(t)
	o := integrations.Order{ID: "pi_3SimDhlFault000000001", Customer: integrations.Customer{Name: "A"},
		Shipping: integrations.Address{Name: "A", Line1: "Weg 1", PostalCode: "53113", City: "Bonn", Country: "DE"}}
	if err := s.SetFault(sim.Fault{Step: sim.StepShipping, Mode: sim.ModeReject, Rate: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateShipment(context.Background(), o)
	if !integrations.IsPermanent(err) || !strings.Contains(err.Error(), "HTTP 400: Bad Request: 0 of 1 shipment successfully created.; 400 Bad Request; shipment: request rejected (simulated)") {
		t.Errorf("rejected: %v", err)
	}
	s.ClearFaults(sim.StepShipping)
	if err := s.SetFault(sim.Fault{Step: sim.StepShipping, Mode: sim.ModeUnavailable, Rate: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateShipment(context.Background(), o)
	if err == nil || integrations.IsPermanent(err) || !strings.Contains(err.Error(), "HTTP 503: Service Unavailable: service temporarily unavailable (simulated)") {
		t.Errorf("unavailable: %v", err)
	}
}

// The simulator checks what DHL checks: credentials, the schema (alpha-3
// countries, billing numbers) and the product rules.
func TestSimulatorRefusesWhatDHLRefuses(t *testing.T) {
	_, _, base := simClient(t)
	good := `{"profile":"STANDARD_GRUPPENPROFIL","shipments":[{"product":"V01PAK","billingNumber":"33333333330102","refNo":"pi_3abcdefgh",
		"shipper":{"name1":"S","addressStreet":"Weg 1","postalCode":"53113","city":"Bonn","country":"DEU"},
		"consignee":{"name1":"C","addressStreet":"Weg 2","postalCode":"53113","city":"Bonn","country":"%s"},
		"details":{"weight":{"uom":"g","value":500}}}]}`
	tests := []struct {
		name        string
		key, user   string
		body        string
		status      int
		contentType string
		want        string
	}{
		{"no api key", "", "user-valid", strings.Replace(good, "%s", "DEU", 1), 401, "application/problem+json", `"title":"Unauthorized"`},
		{"no basic auth", "k", "", strings.Replace(good, "%s", "DEU", 1), 401, "application/problem+json", `"detail":"Unauthorized for given resource."`},
		{"alpha-2 country", "k", "user-valid", strings.Replace(good, "%s", "DE", 1), 400, "application/json", `"propertyPath":"shipments[0].consignee.country"`},
		{"not JSON", "k", "user-valid", "{", 400, "application/json", `"detail":"Your request contained technical errors as listed below."`},
		{"DHL Paket abroad", "k", "user-valid", strings.Replace(good, "%s", "SWE", 1), 400, "application/json", `"validationMessage":"The product DHL Paket can only be shipped within Germany."`},
		{"created", "k", "user-valid", strings.Replace(good, "%s", "DEU", 1), 200, "application/json", `"detail":"1 of 1 shipment successfully created."`},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodPost, base+"/parcel/de/shipping/v2/orders?includeDocs=include", strings.NewReader(tt.body))
		if tt.key != "" {
			req.Header.Set("dhl-api-key", tt.key)
		}
		if tt.user != "" {
			req.SetBasicAuth(tt.user, "pw")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != tt.contentType || !strings.Contains(string(b), tt.want) {
			t.Errorf("%s: %d %s %s, want %d %s with %s", tt.name, resp.StatusCode, resp.Header.Get("Content-Type"), b, tt.status, tt.contentType, tt.want)
		}
		if tt.status == 200 {
			var lr struct {
				Items []struct {
					ShipmentNo    string `json:"shipmentNo"`
					ShipmentRefNo string `json:"shipmentRefNo"`
				} `json:"items"`
			}
			if err := json.Unmarshal(b, &lr); err != nil || len(lr.Items) != 1 || !shipmentNo.MatchString(lr.Items[0].ShipmentNo) || lr.Items[0].ShipmentRefNo != "pi_3abcdefgh" {
				t.Errorf("created: %s", b)
			}
		}
	}
}

// The simulator's PostNord rate (enforced limits) is PostNord's alone: DHL
// bookings right after each other are not refused by it.
func TestSimulatorPostNordLimitLeavesDHL(t *testing.T) {
	s, err := sim.New(sim.Config{EnforceLimits: true, Limits: sim.Limits{PostNordPerSecond: 1}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); _ = s.Close() })
	store, _ := labelstore.NewDir(t.TempDir())
	c, err := dhl.New(dhl.Config{BaseURL: srv.URL, APIKey: "k", Username: "u", Password: "p", Labels: store, BillingNumber: "33333333330102",
		Shipper: dhl.Shipper{Name: "S", Street: "Weg 1", PostalCode: "20457", City: "Hamburg", Country: "DE"}})
	if err != nil {
		t.Fatal(err)
	}
	o := integrations.Order{ID: "pi_3SimDhlLimit000000001", Customer: integrations.Customer{Name: "A"},
		Shipping: integrations.Address{Name: "A", Line1: "Weg 2", PostalCode: "53113", City: "Bonn", Country: "DE"}}
	for i := 0; i < 3; i++ {
		if _, err := c.CreateShipment(context.Background(), o); err != nil {
			t.Fatalf("booking %d: %v", i+1, err)
		}
	}
}

// The simulator refuses what DHL's schema refuses on the optional lines
// too, and the client's long name, email and phone pass it.
func TestLongValuesAgainstSimulator(t *testing.T) {
	c, _, base := simClient(t)
	o := integrations.Order{ID: "pi_3DhlLongNames00000001", Number: "OF-LONGNAMES01",
		Customer: integrations.Customer{Name: "Einkauf", Email: strings.Repeat("e", 81) + "@example.de"},
		Shipping: integrations.Address{Name: "Keramik Müller GmbH & Co. KG, Abteilung Einkauf und Logistik, z. Hd. Frau Dr. Annegret Schulze-Hohenfels",
			Line1: "Kurt-Schumacher-Str. 20", PostalCode: "53113", City: "Bonn", Country: "DE"}}
	if _, err := c.CreateShipment(context.Background(), o); err != nil {
		t.Fatalf("a 104-character name and a 92-character email: %v", err)
	}
	body := `{"profile":"STANDARD_GRUPPENPROFIL","shipments":[{"product":"V01PAK","billingNumber":"33333333330102","refNo":"pi_3abcdefgh",
		"shipper":{"name1":"S","addressStreet":"Weg 1","postalCode":"53113","city":"Bonn","country":"DEU"},
		"consignee":{"name1":"C","name2":"` + strings.Repeat("n", 51) + `","addressStreet":"Weg 2","postalCode":"53113","city":"Bonn","country":"DEU","email":"` + strings.Repeat("e", 81) + `"},
		"details":{"weight":{"uom":"g","value":500}}}]}`
	status, got := postRaw(t, base, body)
	for _, want := range []string{`"propertyPath":"shipments[0].consignee.name2"`, `"propertyPath":"shipments[0].consignee.email"`} {
		if status != 400 || !strings.Contains(got, want) {
			t.Errorf("%d %s: want 400 naming %s", status, got, want)
		}
	}
}

// postRaw books body at the simulator and returns its status and answer.
func postRaw(t *testing.T, base, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/parcel/de/shipping/v2/orders?includeDocs=include", strings.NewReader(body))
	req.Header.Set("dhl-api-key", "k")
	req.SetBasicAuth("user-valid", "SandboxPasswort2023!")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(got)
}

// A parcel to Switzerland: the real client's declaration is accepted,
// and the CN23 DHL answers apart from the label is stored beside it; the simulator refuses, as DHL does, such a
// parcel without one, and a declaration without its postal charges. A
// parcel to Northern Ireland needs none.
func TestCustomsAgainstSimulator(t *testing.T) {
	c, _, base := simClient(t)
	o := integrations.Order{ID: "pi_3SimDhlCustoms0000001", Number: "OF-CUSTOMS0001", Currency: "eur", AmountTotal: 4990,
		Customer: integrations.Customer{Name: "Urs Keller", Email: "urs@example.ch"},
		Shipping: integrations.Address{Name: "Urs Keller", Line1: "Bahnhofstrasse 12", PostalCode: "8001", City: "Zürich", Country: "CH"},
		Items: []integrations.LineItem{{Description: "Keramikbecher", Quantity: 3, AmountTotal: 3000, HSCode: "69120010", OriginCountry: "DE"},
			{Description: "Geschirrtuch", Quantity: 3, AmountTotal: 1000}},
		ShippingCost: &integrations.ShippingCost{AmountTotal: 990}}
	sh, err := c.CreateShipment(context.Background(), o)
	if err != nil {
		t.Fatalf("parcel to Switzerland: %v", err)
	}
	u, _ := url.Parse(sh.CustomsLocation)
	pdf, err := os.ReadFile(filepath.FromSlash(u.Path))
	if err != nil {
		t.Fatalf("customs declaration at %q: %v", sh.CustomsLocation, err)
	}
	if want := o.ID + "_customs-" + sh.TrackingNumber + ".pdf"; filepath.Base(u.Path) != want {
		t.Errorf("customs declaration file %s, want %s", filepath.Base(u.Path), want)
	}
	for _, want := range []string{"Export type COMMERCIAL_GOODS", "3 x Keramikbecher at 10 EUR  69120010 DEU", "2 x Geschirrtuch at 3.33 EUR", "1 x Geschirrtuch at 3.34 EUR", "Postal charges 9.9 EUR"} {
		if !bytes.Contains(pdf, []byte(want)) {
			t.Errorf("CN23 lacks %q", want)
		}
	}

	shipment := `{"profile":"STANDARD_GRUPPENPROFIL","shipments":[{"product":"V53WPAK","billingNumber":"33333333335301","refNo":"pi_3abcdefgh",
		"shipper":{"name1":"S","addressStreet":"Weg 1","postalCode":"53113","city":"Bonn","country":"DEU"},
		"consignee":{"name1":"C","addressStreet":"Weg 2","postalCode":"%s","city":"Town","country":"%s"},
		"details":{"weight":{"uom":"g","value":500}}%s}]}`
	noPostage := `,"customs":{"exportType":"COMMERCIAL_GOODS","items":[{"itemDescription":"Becher","packagedQuantity":1,"itemValue":{"currency":"EUR","value":10},"itemWeight":{"uom":"g","value":300}}]}`
	tests := []struct {
		name, postal, country, customs string
		status                         int
		want                           string
	}{
		{"Switzerland without customs", "8001", "CHE", "", 400, `"validationMessage":"Customs details are required for a shipment leaving the EU."`},
		{"no postal charges", "8001", "CHE", noPostage, 400, `"propertyPath":"shipments[0].customs.postalCharges"`},
		{"the Canary Islands without customs", "35001", "ESP", "", 400, `"validationMessage":"Customs details are required for a shipment leaving the EU."`},
		{"Northern Ireland", "BT1 5GS", "GBR", "", 200, `"detail":"1 of 1 shipment successfully created."`},
	}
	for _, tt := range tests {
		status, got := postRaw(t, base, fmt.Sprintf(shipment, tt.postal, tt.country, tt.customs))
		if status != tt.status || !strings.Contains(got, tt.want) {
			t.Errorf("%s: %d %s, want %d with %s", tt.name, status, got, tt.status, tt.want)
		}
	}
}
