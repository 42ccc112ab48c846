package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
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
	var answer struct {
		Items []struct {
			ShipmentNo string `json:"shipmentNo"`
		} `json:"items"`
	}
	if err := json.Unmarshal(bookings[0].resp, &answer); err != nil || len(answer.Items) != 1 {
		t.Fatalf("DHL answer %s: %v", bookings[0].resp, err)
	}
	no := answer.Items[0].ShipmentNo
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
