package dhl

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/test/ordergen"
)

// swissOrder is an order of two lines to Zürich: three mugs with their
// customs data (tariff number written with dots, origin, weight), and
// three tea towels without, whose 10.00 EUR does not divide by three.
func swissOrder() integrations.Order {
	o := germanOrder()
	o.Currency = "eur"
	o.Shipping = integrations.Address{Name: "Urs Keller", Line1: "Bahnhofstrasse 12", PostalCode: "8001", City: "Zürich", Country: "CH", Phone: "+41 44 123 45 67"}
	o.Items = []integrations.LineItem{
		{Description: "Keramikbecher", Quantity: 3, AmountSubtotal: 3000, AmountTotal: 3000, HSCode: "6912.00.10", OriginCountry: "DE", WeightGrams: 350},
		{Description: "Leinen-Geschirrtuch", Quantity: 3, AmountSubtotal: 1000, AmountTotal: 1000},
	}
	o.ShippingCost = &integrations.ShippingCost{AmountSubtotal: 990, AmountTotal: 990}
	o.AmountSubtotal, o.AmountShipping, o.AmountTotal = 4000, 990, 4990
	return o
}

// customsSent books o and returns the customs object and the parcel
// weight the client sent.
func customsSent(t *testing.T, o integrations.Order, mod func(*Config)) (customs string, grams float64) {
	t.Helper()
	f := &fakeDHL{status: 200, body: okBody("00340434161094042559", testPDF)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, _ := newTestClient(t, srv.URL, mod)
	if _, err := c.CreateShipment(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	var body struct {
		Shipments []struct {
			Customs json.RawMessage
			Details struct{ Weight struct{ Value float64 } }
		}
	}
	if err := json.Unmarshal(f.reqs[0].body, &body); err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if len(body.Shipments[0].Customs) > 0 {
		if err := json.Compact(&compact, body.Shipments[0].Customs); err != nil {
			t.Fatal(err)
		}
	}
	return compact.String(), body.Shipments[0].Details.Weight.Value
}

// A parcel to Switzerland declares each line at what was paid for it,
// its units sharing that to the cent (10.00 for three: two at 3.33 and
// one at 3.34), the shipping as postal charges, the mugs' own tariff
// number (without its dots), origin and weight, and for the towels the
// configured origin and the rest of the parcel's weight shared out:
// (2000 − 3 × 350) ÷ 3 = 316 g.
func TestCustomsDeclaration(t *testing.T) {
	got, grams := customsSent(t, swissOrder(), func(c *Config) {
		c.WeightGrams = 2000
		c.Customs = Customs{OriginCountry: "de", ShipperCustomsRef: "DE1234567890123"}
	})
	want := `{"exportType":"COMMERCIAL_GOODS","shipperCustomsRef":"DE1234567890123","postalCharges":{"currency":"EUR","value":9.90},"items":[` +
		`{"itemDescription":"Keramikbecher","countryOfOrigin":"DEU","hsCode":"69120010","packagedQuantity":3,"itemValue":{"currency":"EUR","value":10.00},"itemWeight":{"uom":"g","value":350}},` +
		`{"itemDescription":"Leinen-Geschirrtuch","countryOfOrigin":"DEU","packagedQuantity":2,"itemValue":{"currency":"EUR","value":3.33},"itemWeight":{"uom":"g","value":316}},` +
		`{"itemDescription":"Leinen-Geschirrtuch","countryOfOrigin":"DEU","packagedQuantity":1,"itemValue":{"currency":"EUR","value":3.34},"itemWeight":{"uom":"g","value":316}}]}`
	if got != want {
		t.Errorf("customs\n%s\nwant\n%s", got, want)
	}
	if grams != 2000 {
		t.Errorf("parcel weight %v g, want the configured 2000", grams)
	}
}

// What was paid less its tax is declared: an order to Norway with
// Norwegian VAT collected at checkout (prices inclusive of 25 %) declares
// 80.00 NOK for a line of 100.00, and the shipping's 40.00 less its 8.00
// of tax. A yen order is declared in whole yen.
func TestCustomsDeclarationNetOfTax(t *testing.T) {
	o := germanOrder()
	o.Currency = "nok"
	o.Shipping = integrations.Address{Name: "Kari Nordmann", Line1: "Karl Johans gate 1", PostalCode: "0154", City: "Oslo", Country: "NO"}
	o.Items = []integrations.LineItem{{Description: "Ullvotter", Quantity: 1, AmountSubtotal: 10000, AmountTax: 2000, AmountTotal: 10000, TaxBehavior: integrations.TaxInclusive}}
	o.ShippingCost = &integrations.ShippingCost{AmountSubtotal: 4000, AmountTax: 800, AmountTotal: 4000}
	o.AmountTotal, o.AmountTax = 14000, 2800
	got, _ := customsSent(t, o, nil)
	want := `{"exportType":"COMMERCIAL_GOODS","postalCharges":{"currency":"NOK","value":32.00},"items":[` +
		`{"itemDescription":"Ullvotter","packagedQuantity":1,"itemValue":{"currency":"NOK","value":80.00},"itemWeight":{"uom":"g","value":1000}}]}`
	if got != want {
		t.Errorf("customs\n%s\nwant\n%s", got, want)
	}

	jp := germanOrder()
	jp.Currency = "jpy"
	jp.Shipping = integrations.Address{Name: "Sato Hanako", Line1: "1-1 Chiyoda", PostalCode: "100-0001", City: "Tokyo", Country: "JP"}
	jp.Items = []integrations.LineItem{{Description: "Teekanne", Quantity: 2, AmountSubtotal: 9001, AmountTotal: 9001}}
	jp.AmountTotal = 9001
	got, _ = customsSent(t, jp, func(c *Config) { c.Customs.HSCode = "691200" })
	want = `{"exportType":"COMMERCIAL_GOODS","postalCharges":{"currency":"JPY","value":0},"items":[` +
		`{"itemDescription":"Teekanne","hsCode":"691200","packagedQuantity":1,"itemValue":{"currency":"JPY","value":4500},"itemWeight":{"uom":"g","value":500}},` +
		`{"itemDescription":"Teekanne","hsCode":"691200","packagedQuantity":1,"itemValue":{"currency":"JPY","value":4501},"itemWeight":{"uom":"g","value":500}}]}`
	if got != want {
		t.Errorf("yen customs\n%s\nwant\n%s", got, want)
	}
}

// Goods whose products weigh more than the configured parcel make the
// parcel that heavy; more than DHL's 31.5 kg is refused before the call.
func TestCustomsDeclarationWeights(t *testing.T) {
	o := swissOrder()
	o.Items[0].WeightGrams = 900 // 2700 g of mugs
	_, grams := customsSent(t, o, nil)
	// 2700 g of mugs and the towels' share of nothing left: 1 g each.
	if grams != 2703 {
		t.Errorf("parcel weight %v g, want 2703", grams)
	}

	o.Items[0].WeightGrams = 11000
	f := &fakeDHL{status: 200, body: okBody("1", testPDF)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, _ := newTestClient(t, srv.URL, nil)
	_, err := c.CreateShipment(context.Background(), o)
	if !integrations.IsPermanent(err) || !strings.Contains(err.Error(), "its goods weigh 33003 g, more than a DHL parcel takes (31500 g)") {
		t.Errorf("too heavy: %v", err)
	}
	if len(f.reqs) != 0 {
		t.Errorf("%d requests for a refused parcel", len(f.reqs))
	}
}

// Only a parcel leaving the EU VAT area is declared: Sweden, Northern
// Ireland (BT) and Monaco are not; the Canary Islands, Åland and London
// are. A parcel within Germany never is.
func TestCustomsOnlyLeavingTheVATArea(t *testing.T) {
	tests := []struct {
		country, postal string
		want            bool
	}{
		{"SE", "411 38", false},
		{"GB", "BT1 5GS", false},
		{"MC", "98000", false},
		{"ES", "35001", true},
		{"FI", "22100", true},
		{"AX", "22100", true},
		{"GB", "SW1A 1AA", true},
		{"DE", "27498", false}, // Heligoland: DHL Paket, within Germany
	}
	for _, tt := range tests {
		o := swissOrder()
		o.Shipping.Country, o.Shipping.PostalCode = tt.country, tt.postal
		got, _ := customsSent(t, o, nil)
		if (got != "") != tt.want {
			t.Errorf("%s %s: customs %q, want declared %v", tt.country, tt.postal, got, tt.want)
		}
	}
}

// A declaration that cannot be made is refused before the call, with
// the reason; a malformed tariff number or origin is left out instead
// (both are optional).
func TestCustomsDeclarationRefused(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*integrations.Order)
		want string
	}{
		{"no description", func(o *integrations.Order) { o.Items[1].Description = " " }, "line 2 has no description for its customs declaration"},
		{"a unit over 100,000", func(o *integrations.Order) {
			o.Items[0].Quantity, o.Items[0].AmountTotal, o.AmountTotal = 1, 10000001, 10000001+1000+990
		}, "line 1 declares 100000.01 EUR a unit, more than DHL takes (100000 EUR)"},
		{"sums that do not add up", func(o *integrations.Order) { o.AmountTotal++ }, "the customs declaration adds up to 49.90 EUR, not the 49.91 EUR paid less tax"},
	}
	for _, tt := range tests {
		o := swissOrder()
		tt.mod(&o)
		f := &fakeDHL{status: 200, body: okBody("1", testPDF)}
		srv := httptest.NewServer(f)
		c, _ := newTestClient(t, srv.URL, nil)
		_, err := c.CreateShipment(context.Background(), o)
		srv.Close()
		if !integrations.IsPermanent(err) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
		if len(f.reqs) != 0 {
			t.Errorf("%s: %d requests for a refused parcel", tt.name, len(f.reqs))
		}
	}

	o := swissOrder()
	o.Items[0].HSCode, o.Items[0].OriginCountry = "ceramics", "Germany"
	got, _ := customsSent(t, o, nil)
	if strings.Contains(got, `"hsCode"`) || strings.Contains(got, `"countryOfOrigin"`) {
		t.Errorf("malformed tariff number and origin sent: %s", got)
	}
	// With configured ones, those stand in for the line's malformed ones.
	got, _ = customsSent(t, o, func(c *Config) { c.Customs.HSCode, c.Customs.OriginCountry = "691200", "AT" })
	if want := `{"itemDescription":"Keramikbecher","countryOfOrigin":"AUT","hsCode":"691200",`; !strings.Contains(got, want) {
		t.Errorf("customs %s, want the configured tariff number and origin: %s", got, want)
	}
}

func TestCustomsConfigValidate(t *testing.T) {
	tests := []struct {
		c    Customs
		want string
	}{
		{Customs{ExportType: "GIFT"}, "Customs.ExportType must be one of"},
		{Customs{ExportType: "OTHER"}, "Customs.ExportDescription is required for ExportType OTHER"},
		{Customs{HSCode: "6912"}, "Customs.HSCode must be a tariff number of 6 to 11 digits"},
		{Customs{OriginCountry: "Deutschland"}, "Customs.OriginCountry must be an ISO 3166-1 alpha-2 country code"},
		{Customs{ShipperCustomsRef: strings.Repeat("D", 36)}, "Customs.ShipperCustomsRef must be at most 35 characters"},
	}
	for _, tt := range tests {
		p := strings.Join(tt.c.problems(), "; ")
		if !strings.Contains(p, tt.want) {
			t.Errorf("%+v: %q, want %q", tt.c, p, tt.want)
		}
	}
	if p := (Customs{ExportType: "OTHER", ExportDescription: "Ersatzteile", HSCode: "8483 40 21", OriginCountry: "CN"}).problems(); len(p) != 0 {
		t.Errorf("good settings: %v", p)
	}
}

// The customs invariant over generated orders (ordergen plays Stripe:
// inclusive and exclusive prices, discounts, several rates, taxed and
// untaxed shipping, 0-, 2- and 3-decimal currencies), each sent to
// Zürich: Σ packagedQuantity × itemValue + postalCharges = the amount
// paid less the tax charged, to the minor unit; each line's units are
// all declared, at values at most one minor unit apart. An order with a
// unit worth more than DHL's 100,000 is refused, and only such an order.
func TestCustomsInvariantGenerated(t *testing.T) {
	f := &fakeDHL{status: 200, body: okBody("00340434161094042560", testPDF)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, _ := newTestClient(t, srv.URL, nil)
	minor := func(v json.Number) int64 {
		n, err := strconv.ParseInt(strings.Replace(string(v), ".", "", 1), 10, 64)
		if err != nil {
			t.Fatalf("value %q: %v", v, err)
		}
		return n
	}
	rng := rand.New(rand.NewPCG(15, 2026))
	refused := 0
	for n := range 1000 {
		o := ordergen.Order(rng, n)
		o.Shipping = integrations.Address{Name: "Urs Keller", Line1: "Bahnhofstrasse 12", PostalCode: "8001", City: "Zürich", Country: "CH"}
		limit := int64(100000)
		for range integrations.Exponent(o.Currency) {
			limit *= 10
		}
		tooDear := false
		for _, it := range o.Items {
			net := it.AmountTotal - it.AmountTax
			if (net+it.Quantity-1)/it.Quantity > limit {
				tooDear = true
			}
		}
		f.reqs = nil
		_, err := c.CreateShipment(context.Background(), o)
		if tooDear {
			if !integrations.IsPermanent(err) || !strings.Contains(err.Error(), "more than DHL takes") || len(f.reqs) != 0 {
				t.Fatalf("order %d: a unit over %d: %v", n, limit, err)
			}
			refused++
			continue
		}
		if err != nil {
			t.Fatalf("order %d: %v", n, err)
		}
		var body struct {
			Shipments []struct{ Customs customsDetails }
		}
		if err := json.Unmarshal(f.reqs[0].body, &body); err != nil {
			t.Fatal(err)
		}
		cd := body.Shipments[0].Customs
		total := minor(cd.PostalCharges.Value)
		units := map[string]int64{}
		lo, hi := map[string]int64{}, map[string]int64{}
		for _, it := range cd.Items {
			v := minor(it.ItemValue.Value)
			if it.ItemValue.Currency != strings.ToUpper(o.Currency) || v < 0 {
				t.Fatalf("order %d: item %+v", n, it)
			}
			total += it.PackagedQuantity * v
			units[it.ItemDescription] += it.PackagedQuantity
			if l, ok := lo[it.ItemDescription]; !ok || v < l {
				lo[it.ItemDescription] = v
			}
			hi[it.ItemDescription] = max(hi[it.ItemDescription], v)
		}
		if want := o.AmountTotal - o.AmountTax; total != want {
			t.Fatalf("order %d (%s): declared %d, paid less tax %d", n, o.Currency, total, want)
		}
		for _, it := range o.Items {
			if units[it.Description] != it.Quantity || hi[it.Description]-lo[it.Description] > 1 {
				t.Fatalf("order %d line %q: %d units declared of %d, values %d to %d", n, it.Description, units[it.Description], it.Quantity, lo[it.Description], hi[it.Description])
			}
		}
	}
	if refused == 0 || refused > 300 {
		t.Errorf("%d of 1000 refused: the generator no longer makes the case, or most orders are refused", refused)
	}
}

// The customs declaration (CN23) DHL answers apart from the label is
// stored beside it; one that is no PDF fails the step without booking
// again.
func TestCustomsDocumentApart(t *testing.T) {
	cn23 := []byte("%PDF-1.4\n% CN23\n%%EOF\n")
	body := strings.Replace(okBody("00340434161094042561", testPDF), `"fileFormat":"PDF"`,
		`"fileFormat":"PDF"},"customsDoc":{"b64":"`+base64.StdEncoding.EncodeToString(cn23)+`","fileFormat":"PDF"`, 1)
	f := &fakeDHL{status: 200, body: body}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, dir := newTestClient(t, srv.URL, nil)
	sh, err := c.CreateShipment(context.Background(), swissOrder())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "pi_3DhlTest0000000000001_customs-00340434161094042561.pdf"))
	if err != nil || !bytes.Equal(got, cn23) || !strings.HasSuffix(sh.CustomsLocation, "_customs-00340434161094042561.pdf") {
		t.Errorf("customs document %q at %q: %v", got, sh.CustomsLocation, err)
	}

	f.body = strings.Replace(body, base64.StdEncoding.EncodeToString(cn23), base64.StdEncoding.EncodeToString([]byte("not a pdf")), 1)
	_, err = c.CreateShipment(context.Background(), swissOrder())
	if !integrations.IsPermanent(err) || !strings.Contains(err.Error(), "created shipment 00340434161094042561 but its customs declaration is not a base64 PDF") {
		t.Errorf("customs document not a PDF: %v", err)
	}
}
