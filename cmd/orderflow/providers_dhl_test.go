package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
)

// An order runs end to end with DHL as the shipping provider, chosen only
// by --steps shipping=dhl: real Kafka, the processor, the real clients and
// the simulator. DHL (not PostNord) books the parcel, the label is stored,
// and its shipment number reaches the invoice and the confirmation email.
func TestDHLShippingEndToEnd(t *testing.T) {
	r := startChain(t, "--steps", "details,shipping=dhl,invoice,email")
	const key = "pi_3DhlEndToEnd00000001"
	r.pay(key)
	st := r.wait(key, processor.StatusCompleted)
	rec, labels := r.rec, r.labels

	// DHL booked it, once; PostNord was not called.
	bookings := rec.matching(http.MethodPost, regexp.MustCompile(`^/parcel/de/shipping/v2/orders$`))
	if len(bookings) != 1 {
		t.Fatalf("%d DHL bookings, want 1", len(bookings))
	}
	if n := len(rec.matching(http.MethodPost, regexp.MustCompile(`^/rest/shipment/`))); n != 0 {
		t.Errorf("%d PostNord bookings, want 0", n)
	}
	no := shipmentNumber(t, bookings[0].resp)
	if !regexp.MustCompile(`^00340434\d{12}$`).MatchString(no) {
		t.Fatalf("shipment number %q", no)
	}
	var req struct {
		Shipments []struct {
			RefNo string `json:"refNo"`
		} `json:"shipments"`
	}
	if err := json.Unmarshal(bookings[0].body, &req); err != nil || len(req.Shipments) != 1 || req.Shipments[0].RefNo != key {
		t.Errorf("DHL request refNo %+v (%v), want %s", req, err, key)
	}

	// The state has DHL's shipment; the label is a PDF in --label-dir.
	var sh integrations.Shipment
	if ss := st.Steps[processor.StepShipping]; ss == nil || json.Unmarshal(ss.Result, &sh) != nil {
		t.Fatalf("shipping result %+v", st.Steps[processor.StepShipping])
	}
	if sh.TrackingNumber != no || sh.ShipmentID != no {
		t.Errorf("shipment recorded %+v, want tracking number %s", sh, no)
	}
	pdf, err := os.ReadFile(filepath.Join(labels, key+"_label-"+no+".pdf"))
	if err != nil || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Errorf("label: %.20q, %v", pdf, err)
	}

	// The invoice carries the tracking number, the email the number and
	// DHL's tracking link.
	invoices := rec.matching(http.MethodPost, regexp.MustCompile(`(?i)^/salesinvoice\.nv$`))
	if len(invoices) != 1 || !bytes.Contains(invoices[0].body, []byte("Tracking "+no)) {
		t.Errorf("%d invoices; want one with \"Tracking %s\"", len(invoices), no)
	}
	emails := rec.matching(http.MethodPost, regexp.MustCompile(`^/v3/[^/]+/messages$`))
	if len(emails) != 1 {
		t.Fatalf("%d emails, want 1", len(emails))
	}
	form, _ := http.NewRequest(http.MethodPost, "/", bytes.NewReader(emails[0].body))
	form.Header.Set("Content-Type", emails[0].contentType)
	if err := form.ParseMultipartForm(1 << 20); err != nil && err != http.ErrNotMultipart {
		t.Fatal(err)
	}
	var vars struct {
		TrackingNumber string `json:"tracking_number"`
		TrackingURL    string `json:"tracking_url"`
	}
	if err := json.Unmarshal([]byte(form.FormValue("h:X-Mailgun-Variables")), &vars); err != nil {
		t.Fatalf("email variables: %v", err)
	}
	if vars.TrackingNumber != no || !regexp.MustCompile(`^https://www\.dhl\.de/(de|en)/privatkunden/pakete-empfangen/verfolgen\.html\?piececode=`+no+`$`).MatchString(vars.TrackingURL) {
		t.Errorf("email tracking %+v, want number %s and DHL's link", vars, no)
	}
}

// shipmentNumber is the shipment number of DHL's answer to one booking.
func shipmentNumber(t *testing.T, resp []byte) string {
	t.Helper()
	var answer struct {
		Items []struct {
			ShipmentNo string `json:"shipmentNo"`
		} `json:"items"`
	}
	if err := json.Unmarshal(resp, &answer); err != nil || len(answer.Items) != 1 {
		t.Fatalf("DHL answer %s: %v", resp, err)
	}
	return answer.Items[0].ShipmentNo
}

// swissSession is a Checkout order to Zürich: mugs whose product holds
// their customs data, and tea towels with a 10 % coupon whose price names
// their tariff number and whose product their origin.
const swissSession = `{"id":"cs_test_DhlCustomsE2E01","object":"checkout.session","amount_subtotal":6585,"amount_total":7716,"currency":"eur",
 "created":1795860180,"locale":"de","metadata":{},"mode":"payment","payment_intent":"pi_3DhlCustomsE2E0001","payment_status":"paid","status":"complete",
 "customer_details":{"name":"Urs Keller","email":"urs.keller@example.ch","address":{"line1":"Bahnhofstrasse 12","city":"Zürich","postal_code":"8001","country":"CH"},"tax_exempt":"none","tax_ids":[]},
 "shipping_details":{"name":"Urs Keller","address":{"line1":"Bahnhofstrasse 12","city":"Zürich","postal_code":"8001","country":"CH"}},
 "shipping_cost":{"amount_subtotal":1490,"amount_tax":0,"amount_total":1490,"shipping_rate":{"id":"shr_intl","object":"shipping_rate","display_name":"DHL International","tax_behavior":"unspecified"},"taxes":[]},
 "total_details":{"amount_discount":359,"amount_shipping":1490,"amount_tax":0,"breakdown":{"discounts":[],"taxes":[]}},
 "line_items":[
  {"id":"li_DhlCustoms_1","object":"item","amount_subtotal":3000,"amount_discount":0,"amount_tax":0,"amount_total":3000,"currency":"eur","description":"Keramikbecher","quantity":3,
   "price":{"id":"price_mug","object":"price","currency":"eur","unit_amount":1000,"tax_behavior":"unspecified","metadata":{},
    "product":{"id":"prod_mug","object":"product","metadata":{"hs_code":"6912.00.10","origin_country":"DE","weight_grams":"350"}}},"discounts":[],"taxes":[]},
  {"id":"li_DhlCustoms_2","object":"item","amount_subtotal":3585,"amount_discount":359,"amount_tax":0,"amount_total":3226,"currency":"eur","description":"Leinen-Geschirrtuch","quantity":3,
   "price":{"id":"price_towel","object":"price","currency":"eur","unit_amount":1195,"tax_behavior":"unspecified","metadata":{"hs_code":"6302 60 00"},
    "product":{"id":"prod_towel","object":"product","metadata":{"origin_country":"PT"}}},
   "discounts":[{"amount":359,"discount":{"id":"di_TUCH10","object":"discount","coupon":{"id":"TUCH10","object":"coupon","name":"Tücher 10 %","percent_off":10}}}],"taxes":[]}]}`

// With --steps shipping=dhl, an order to Switzerland reads its products'
// customs data from Stripe (one more call, its line items with their
// products) and DHL gets the declaration: each line at what was paid for
// it (the towels' 32.26 after the coupon: two at 10.75, one at 10.76),
// the shipping as postal charges, tariff numbers, origins and the mugs'
// weight from the products and prices; the towels would share what is
// left of the parcel's 1000 g, but the mugs weigh 1050 g: a gram each.
func TestDHLCustomsEndToEnd(t *testing.T) {
	r := startChain(t, "--steps", "details,shipping=dhl,invoice,email", "--dhl-eori", "DE1234567890123")
	const key = "pi_3DhlCustomsE2E0001"
	seed := httptest.NewRecorder()
	r.sim.Handler().ServeHTTP(seed, httptest.NewRequest(http.MethodPut, "/_sim/stripe/checkout/sessions/cs_test_DhlCustomsE2E01", strings.NewReader(swissSession)))
	if seed.Code != http.StatusOK {
		t.Fatalf("seed: %d %s", seed.Code, seed.Body)
	}
	r.pay(key)
	st := r.wait(key, processor.StatusCompleted)

	if n := len(r.rec.matching(http.MethodGet, regexp.MustCompile(`^/v1/checkout/sessions/cs_test_DhlCustomsE2E01/line_items$`))); n != 1 {
		t.Errorf("%d reads of the line items with their products, want 1", n)
	}
	bookings := r.rec.matching(http.MethodPost, regexp.MustCompile(`^/parcel/de/shipping/v2/orders$`))
	if len(bookings) != 1 {
		t.Fatalf("%d DHL bookings, want 1", len(bookings))
	}
	var req struct {
		Shipments []struct {
			Product string          `json:"product"`
			Customs json.RawMessage `json:"customs"`
			Details struct {
				Weight struct{ Value int } `json:"weight"`
			} `json:"details"`
		} `json:"shipments"`
	}
	if err := json.Unmarshal(bookings[0].body, &req); err != nil || len(req.Shipments) != 1 {
		t.Fatalf("DHL request %s: %v", bookings[0].body, err)
	}
	var got bytes.Buffer
	if err := json.Compact(&got, req.Shipments[0].Customs); err != nil {
		t.Fatalf("customs %s: %v", req.Shipments[0].Customs, err)
	}
	want := `{"exportType":"COMMERCIAL_GOODS","shipperCustomsRef":"DE1234567890123","postalCharges":{"currency":"EUR","value":14.90},"items":[` +
		`{"itemDescription":"Keramikbecher","countryOfOrigin":"DEU","hsCode":"69120010","packagedQuantity":3,"itemValue":{"currency":"EUR","value":10.00},"itemWeight":{"uom":"g","value":350}},` +
		`{"itemDescription":"Leinen-Geschirrtuch","countryOfOrigin":"PRT","hsCode":"63026000","packagedQuantity":2,"itemValue":{"currency":"EUR","value":10.75},"itemWeight":{"uom":"g","value":1}},` +
		`{"itemDescription":"Leinen-Geschirrtuch","countryOfOrigin":"PRT","hsCode":"63026000","packagedQuantity":1,"itemValue":{"currency":"EUR","value":10.76},"itemWeight":{"uom":"g","value":1}}]}`
	if got.String() != want {
		t.Errorf("customs\n%s\nwant\n%s", got.String(), want)
	}
	// 1050 g of mugs and 3 g of towels: heavier than the configured 1000.
	if s := req.Shipments[0]; s.Product != "V53WPAK" || s.Details.Weight.Value != 1053 {
		t.Errorf("product %s, parcel weight %d g; want V53WPAK and 1053", s.Product, s.Details.Weight.Value)
	}
	// The CN23 DHL answered is stored beside the label, and the state
	// says where.
	var sh integrations.Shipment
	if ss := st.Steps[processor.StepShipping]; ss == nil || json.Unmarshal(ss.Result, &sh) != nil {
		t.Fatalf("shipping result %+v", st.Steps[processor.StepShipping])
	}
	name := key + "_customs-" + shipmentNumber(t, bookings[0].resp) + ".pdf"
	cn23, err := os.ReadFile(filepath.Join(r.labels, name))
	if err != nil || !bytes.HasPrefix(cn23, []byte("%PDF-")) || !strings.HasSuffix(sh.CustomsLocation, "/"+name) {
		t.Errorf("CN23 %s: %.20q, %v; recorded at %q", name, cn23, err, sh.CustomsLocation)
	}
}
