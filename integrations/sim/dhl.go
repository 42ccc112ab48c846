package sim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/text/language"

	"github.com/orderflow/orderflow/integrations"
)

// dhlSim serves DHL's Parcel DE Shipping API v2 create-shipments call,
// POST /parcel/de/shipping/v2/orders, in its documented wire format: the
// dhl-api-key header and HTTP Basic credentials are required (401 with a
// problem+json RequestStatus otherwise), the ShipmentOrderRequest is
// checked (a malformed body or a missing required property is a 400 schema
// error: items of propertyPath and message; a business rule broken is a
// 400 whose item carries sstatus and validationMessages; a parcel leaving
// the EU VAT area needs its customs declaration), and each valid
// shipment gets a new shipment number and a base64 PDF label, and a
// declared one its CN23 as customsDoc. Like the
// real API it has no idempotency: every call creates new shipments, so a
// booking repeated for one refNo (the order) counts as a duplicate.
type dhlSim struct{ s *Server }

func init() {
	registerRoutes(func(s *Server, m *http.ServeMux) {
		d := &dhlSim{s: s}
		m.Handle("POST /parcel/de/shipping/v2/orders", s.step(StepShipping, dhlErrors, d.orders))
	})
}

// dhlProducts maps each product to the digits 11–12 its billing numbers
// carry.
var dhlProducts = map[string]string{"V01PAK": "01", "V53WPAK": "53", "V54EPAK": "54", "V62KP": "62", "V66WPI": "66"}

var (
	dhlBilling = regexp.MustCompile(`^\w{10}\d{2}\w{2}$`)
	dhlCountry = regexp.MustCompile(`^[A-Z]{3}$`)
	dhlPostal  = regexp.MustCompile(`^[0-9A-Za-z]+([ -]?[0-9A-Za-z]+)*$`)
)

type dhlStatus struct {
	Title      string `json:"title"`
	StatusCode int    `json:"statusCode"`
	Status     int    `json:"status"`
	Detail     string `json:"detail,omitempty"`
}

func dhlProblem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(dhlStatus{Title: title, StatusCode: status, Status: status, Detail: detail})
}

// dhlErrors answers a simulated fault: 503 as a RequestStatus, a rejection
// as a shipment refused with a validation error.
func dhlErrors(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if status >= 500 || status == http.StatusTooManyRequests {
		dhlProblem(w, status, http.StatusText(status), msg)
		return
	}
	writeJSON(w, status, obj{
		"status": dhlStatus{Title: "Bad Request", StatusCode: status, Status: status, Detail: "0 of 1 shipment successfully created."},
		"items": []any{obj{"sstatus": dhlStatus{Title: "Bad Request", StatusCode: status, Status: status},
			"validationMessages": []any{obj{"property": "shipment", "validationMessage": msg, "validationState": "Error"}}}},
	})
}

type dhlAddress struct {
	Name1         string `json:"name1"`
	Name2         string `json:"name2"`
	Name3         string `json:"name3"`
	AddressStreet string `json:"addressStreet"`
	Additional1   string `json:"additionalAddressInformation1"`
	PostalCode    string `json:"postalCode"`
	City          string `json:"city"`
	State         string `json:"state"`
	Country       string `json:"country"`
	Email         string `json:"email"`
	Phone         string `json:"phone"`
}

type dhlShipment struct {
	Product       string      `json:"product"`
	BillingNumber string      `json:"billingNumber"`
	RefNo         string      `json:"refNo"`
	Shipper       *dhlAddress `json:"shipper"`
	Consignee     *dhlAddress `json:"consignee"`
	Details       *struct {
		Weight *dhlWeight `json:"weight"`
	} `json:"details"`
	Customs *dhlCustoms `json:"customs"`
}

type dhlWeight struct {
	UOM   string   `json:"uom"`
	Value *float64 `json:"value"`
}

type dhlValue struct {
	Currency string   `json:"currency"`
	Value    *float64 `json:"value"`
}

// dhlCustoms is the CustomsDetails of a parcel leaving the EU.
type dhlCustoms struct {
	ExportType        string    `json:"exportType"`
	ExportDescription string    `json:"exportDescription"`
	ShipperCustomsRef string    `json:"shipperCustomsRef"`
	PostalCharges     *dhlValue `json:"postalCharges"`
	Items             []struct {
		ItemDescription  string     `json:"itemDescription"`
		CountryOfOrigin  string     `json:"countryOfOrigin"`
		HSCode           string     `json:"hsCode"`
		PackagedQuantity int64      `json:"packagedQuantity"`
		ItemValue        *dhlValue  `json:"itemValue"`
		ItemWeight       *dhlWeight `json:"itemWeight"`
	} `json:"items"`
}

var (
	dhlExportTypes = map[string]bool{"OTHER": true, "PRESENT": true, "COMMERCIAL_SAMPLE": true, "DOCUMENT": true, "RETURN_OF_GOODS": true, "COMMERCIAL_GOODS": true}
	dhlCurrency    = regexp.MustCompile(`^[A-Z]{3}$`)
	dhlHSCode      = regexp.MustCompile(`^.{6,11}$`)
)

// schema returns the schema errors of a customs declaration.
func (c *dhlCustoms) schema(p string, bad func(path, msg string)) {
	if !dhlExportTypes[c.ExportType] {
		bad(p+".exportType", "must be one of OTHER, PRESENT, COMMERCIAL_SAMPLE, DOCUMENT, RETURN_OF_GOODS, COMMERCIAL_GOODS")
	}
	if len([]rune(c.ExportDescription)) > 80 {
		bad(p+".exportDescription", "size must be between 0 and 80")
	}
	if len([]rune(c.ShipperCustomsRef)) > 35 {
		bad(p+".shipperCustomsRef", "size must be between 0 and 35")
	}
	value := func(vp string, v *dhlValue) {
		switch {
		case v == nil || v.Value == nil:
			bad(vp, "must not be null")
		case !dhlCurrency.MatchString(v.Currency):
			bad(vp+".currency", "must be an ISO 4217 currency code")
		case *v.Value < 0 || *v.Value > 100000:
			bad(vp+".value", "must be between 0 and 100000")
		}
	}
	value(p+".postalCharges", c.PostalCharges)
	if len(c.Items) < 1 || len(c.Items) > 99 {
		bad(p+".items", "size must be between 1 and 99")
	}
	for i, it := range c.Items {
		ip := fmt.Sprintf("%s.items[%d]", p, i)
		if n := len([]rune(it.ItemDescription)); n < 1 || n > 256 {
			bad(ip+".itemDescription", "size must be between 1 and 256")
		}
		if it.HSCode != "" && !dhlHSCode.MatchString(it.HSCode) {
			bad(ip+".hsCode", "size must be between 6 and 11")
		}
		if it.CountryOfOrigin != "" && !dhlCountry.MatchString(it.CountryOfOrigin) {
			bad(ip+".countryOfOrigin", "Parameter country must be a valid country code consisting of three characters according to ISO 3166-1 alpha-3.")
		}
		if it.PackagedQuantity < 1 {
			bad(ip+".packagedQuantity", "must be at least 1")
		}
		value(ip+".itemValue", it.ItemValue)
		if w := it.ItemWeight; w == nil || w.Value == nil || (w.UOM != "g" && w.UOM != "kg") || *w.Value <= 0 {
			bad(ip+".itemWeight", "uom must be g or kg and value above 0")
		}
	}
}

// leavesEU reports whether a consignee (alpha-3 country) is outside the
// EU VAT area, where DHL wants a customs declaration.
func leavesEU(a *dhlAddress) bool {
	r, err := language.ParseRegion(a.Country)
	if err != nil {
		return true
	}
	return integrations.LeavesEUVATArea(integrations.Address{Country: r.String(), PostalCode: a.PostalCode})
}

type dhlOrder struct {
	Profile   *string       `json:"profile"`
	Shipments []dhlShipment `json:"shipments"`
}

// schema returns the schema errors of the request (required properties,
// lengths, patterns), each a propertyPath and a message.
func (o dhlOrder) schema() []any {
	var errs []any
	bad := func(path, msg string) { errs = append(errs, obj{"propertyPath": path, "message": msg}) }
	if o.Profile == nil {
		bad("profile", "must not be null")
	}
	if len(o.Shipments) == 0 || len(o.Shipments) > 30 {
		bad("shipments", "size must be between 1 and 30")
	}
	for i, sh := range o.Shipments {
		p := fmt.Sprintf("shipments[%d]", i)
		if sh.RefNo != "" && (len(sh.RefNo) < 8 || len(sh.RefNo) > 35) {
			bad(p+".refNo", "size must be between 8 and 35")
		}
		if !dhlBilling.MatchString(sh.BillingNumber) {
			bad(p+".billingNumber", `must match "\w{10}\d{2}\w{2}"`)
		}
		for _, a := range []struct {
			name string
			addr *dhlAddress
		}{{"shipper", sh.Shipper}, {"consignee", sh.Consignee}} {
			ap := p + "." + a.name
			if a.addr == nil {
				bad(ap, "must not be null")
				continue
			}
			if n := len([]rune(a.addr.Name1)); n < 1 || n > 50 {
				bad(ap+".name1", "size must be between 1 and 50")
			}
			if n := len([]rune(a.addr.AddressStreet)); n < 1 || n > 50 {
				bad(ap+".addressStreet", "size must be between 1 and 50")
			}
			if n := len([]rune(a.addr.City)); n < 1 || n > 40 {
				bad(ap+".city", "size must be between 1 and 40")
			}
			for _, f := range []struct {
				field, v string
				min, max int
			}{{"name2", a.addr.Name2, 1, 50}, {"name3", a.addr.Name3, 1, 50}, {"additionalAddressInformation1", a.addr.Additional1, 1, 60},
				{"state", a.addr.State, 1, 20}, {"email", a.addr.Email, 3, 80}, {"phone", a.addr.Phone, 1, 20}} {
				// Optional: an empty one is left out of the request.
				if n := len([]rune(f.v)); n > 0 && (n < f.min || n > f.max) {
					bad(ap+"."+f.field, fmt.Sprintf("size must be between %d and %d", f.min, f.max))
				}
			}
			if !dhlCountry.MatchString(a.addr.Country) {
				bad(ap+".country", "Parameter country must be a valid country code consisting of three characters according to ISO 3166-1 alpha-3.")
			}
			if a.addr.PostalCode != "" && (len(a.addr.PostalCode) < 3 || len(a.addr.PostalCode) > 10 || !dhlPostal.MatchString(a.addr.PostalCode)) {
				bad(ap+".postalCode", "must be a postal code of 3 to 10 letters and digits")
			}
		}
		if sh.Customs != nil {
			sh.Customs.schema(p+".customs", bad)
		}
		if sh.Details == nil || sh.Details.Weight == nil || sh.Details.Weight.Value == nil {
			bad(p+".details.weight", "must not be null")
		} else if wt := sh.Details.Weight; (wt.UOM != "g" && wt.UOM != "kg") || *wt.Value < 0 || *wt.Value > 31500 {
			bad(p+".details.weight", "uom must be g or kg and value between 0 and 31500")
		}
	}
	return errs
}

// rules returns the validation messages of one schema-valid shipment.
func (sh dhlShipment) rules() []any {
	var msgs []any
	msg := func(prop, text string) {
		msgs = append(msgs, obj{"property": prop, "validationMessage": text, "validationState": "Error"})
	}
	digits, ok := dhlProducts[sh.Product]
	switch {
	case !ok:
		msg("product", "The product entered is not valid.")
	case sh.BillingNumber[10:12] != digits:
		msg("billingNumber", "The billing number entered does not match the product.")
	}
	switch {
	case sh.Product == "V01PAK" && sh.Consignee.Country != "DEU":
		msg("consignee.country", "The product DHL Paket can only be shipped within Germany.")
	case sh.Product == "V53WPAK" && sh.Consignee.Country == "DEU":
		msg("consignee.country", "The product DHL Paket International cannot be shipped within Germany.")
	}
	if sh.Consignee.Country == "DEU" && sh.Consignee.PostalCode == "" {
		msg("consignee.postalCode", "Please enter a postal code.")
	}
	if sh.Product == "V53WPAK" && sh.Customs == nil && leavesEU(sh.Consignee) {
		msg("customs", "Customs details are required for a shipment leaving the EU.")
	}
	if c := sh.Customs; c != nil && c.ExportType == "OTHER" && strings.TrimSpace(c.ExportDescription) == "" {
		msg("customs.exportDescription", "An export description is required for the export type OTHER.")
	}
	return msgs
}

func (d *dhlSim) orders(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("dhl-api-key") == "" {
		dhlProblem(w, http.StatusUnauthorized, "Unauthorized", "The API key is missing or invalid.")
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u == "" || p == "" {
		dhlProblem(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized for given resource.")
		return
	}
	raw, err := readBody(w, r)
	var in dhlOrder
	if err == nil {
		err = json.Unmarshal(raw, &in)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, obj{
			"status": dhlStatus{Title: "Bad Request", StatusCode: 400, Status: 400, Detail: "Your request contained technical errors as listed below."},
			"items":  []any{obj{"propertyPath": "", "message": "The request body is not valid JSON."}},
		})
		return
	}
	if errs := in.schema(); len(errs) > 0 {
		writeJSON(w, http.StatusBadRequest, obj{
			"status": dhlStatus{Title: "Bad Request", StatusCode: 400, Status: 400, Detail: "Your request contained technical errors as listed below."},
			"items":  errs,
		})
		return
	}
	items := make([]any, 0, len(in.Shipments))
	created := 0
	for _, sh := range in.Shipments {
		if msgs := sh.rules(); len(msgs) > 0 {
			items = append(items, obj{"sstatus": dhlStatus{Title: "Bad Request", StatusCode: 400, Status: 400}, "validationMessages": msgs})
			continue
		}
		no := fmt.Sprintf("00340434%012d", nextID())
		pdf := labelPDF(d.labelLines(sh, no), "DE")
		file := d.s.outbox.write(StepShipping, no+".pdf", pdf)
		order := sh.RefNo
		if order == "" {
			order = no
		}
		dup := d.s.stats.created(StepShipping, "shipment", order)
		d.s.outbox.record(entry{Time: nowUTC(), Step: StepShipping, Order: order, Kind: "shipment", ID: no, Action: "create", Duplicate: dup, File: file})
		item := obj{
			"shipmentNo": no, "sstatus": dhlStatus{Title: "OK", StatusCode: 200, Status: 200},
			"routingCode": "40327653113+99000933090010",
			"label":       obj{"b64": base64.StdEncoding.EncodeToString(pdf), "fileFormat": "PDF", "printFormat": "910-300-700"},
		}
		if sh.RefNo != "" {
			item["shipmentRefNo"] = sh.RefNo
		}
		if sh.Customs != nil {
			// The CN23 comes apart from the label (combine does not
			// join customs documents).
			doc := labelPDF(customsLines(sh, no), "DE")
			d.s.outbox.write(StepShipping, no+"-cn23.pdf", doc)
			item["customsDoc"] = obj{"b64": base64.StdEncoding.EncodeToString(doc), "fileFormat": "PDF", "printFormat": "A4"}
		}
		items = append(items, item)
		created++
	}
	n := len(in.Shipments)
	status, title := http.StatusOK, "OK"
	switch {
	case n > 1:
		status, title = http.StatusMultiStatus, "Multi-Status"
	case created == 0:
		status, title = http.StatusBadRequest, "Bad Request"
	}
	plural := "shipments"
	if n == 1 {
		plural = "shipment"
	}
	writeJSON(w, status, obj{
		"status": dhlStatus{Title: title, StatusCode: status, Status: status, Detail: fmt.Sprintf("%d of %d %s successfully created.", created, n, plural)},
		"items":  items,
	})
}

func (d *dhlSim) labelLines(sh dhlShipment, no string) []string {
	c := sh.Consignee
	lines := []string{"DHL Paket  " + no, "Product " + sh.Product + "   Ref " + sh.RefNo, "", "To: " + c.Name1}
	for _, l := range []string{c.Name2, c.Name3} {
		if l != "" {
			lines = append(lines, "    "+l)
		}
	}
	return append(lines, c.AddressStreet, strings.TrimSpace(c.PostalCode+" "+c.City), c.Country,
		"", "From: "+sh.Shipper.Name1)
}

// customsLines are the lines of the CN23 DHL answers, apart from the
// label, for a shipment with a customs declaration.
func customsLines(sh dhlShipment, no string) []string {
	cu := sh.Customs
	num := func(v *float64) string { return strconv.FormatFloat(*v, 'f', -1, 64) }
	lines := []string{"CN23 customs declaration  " + no, "Export type " + cu.ExportType + "   Ref " + sh.RefNo,
		"To: " + sh.Consignee.Name1 + ", " + sh.Consignee.Country, ""}
	for _, it := range cu.Items {
		lines = append(lines, strings.TrimSpace(fmt.Sprintf("%d x %s at %s %s  %s %s", it.PackagedQuantity, it.ItemDescription,
			num(it.ItemValue.Value), it.ItemValue.Currency, it.HSCode, it.CountryOfOrigin)))
	}
	return append(lines, "", "Postal charges "+num(cu.PostalCharges.Value)+" "+cu.PostalCharges.Currency)
}
