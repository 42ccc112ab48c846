// Package dhl books shipments with DHL's Parcel DE Shipping API v2 (Post &
// Parcel Germany, for business customers with a DHL contract) and stores
// their labels.
//
// One call, POST /parcel/de/shipping/v2/orders?includeDocs=include&docFormat=PDF,
// creates the shipment and returns its shipment number (the tracking
// number) with the PDF label as base64. Requests carry the application's
// API key in the dhl-api-key header and the business customer portal user
// with HTTP Basic authentication. A domestic parcel is DHL Paket (V01PAK),
// one abroad DHL Paket International (V53WPAK); each product is booked on
// its own billing number (the contract number's digits 11 and 12 name the
// product).
//
// The API has no idempotency and no look-up by our reference: a shipment
// can be read back only by the shipment number its creation answered
// (DHL's separate Parcel DE Tracking API can search by the reference; this
// client does not use it). The client therefore implements no
// processor.ShipmentFinder, and after a
// crash during a booking the processor follows the retry policy (book
// again, flag possible_duplicate:shipping). The order still travels as the
// shipment's refNo, printed on the label, so a person can match a
// duplicate; DHL bills DHL Paket by what it carried, and a label never
// handed over can be deleted (DELETE /orders?shipment=…) before the day's
// closing. Any failure after DHL answered with a shipment number (a missing
// or unreadable label, a label-store error) is permanent and names that
// number, so the processor dead-letters instead of booking again.
//
// Neither the API key nor the password appears in logs or errors.
package dhl

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/language"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/labelstore"
)

const provider = "dhl"

// DefaultBaseURL is DHL's production API host; the sandbox is
// https://api-sandbox.dhl.com.
const DefaultBaseURL = "https://api-eu.dhl.com"

// OrdersPath is the create-shipments operation (createOrders).
const OrdersPath = "/parcel/de/shipping/v2/orders"

// Products: DHL Paket within Germany, DHL Paket International abroad.
const (
	ProductDomestic      = "V01PAK"
	ProductInternational = "V53WPAK"
)

// DefaultProfile is the user group profile every business customer has.
const DefaultProfile = "STANDARD_GRUPPENPROFIL"

// DefaultTrackingURLTemplate builds the public tracking link; "{lang}" is
// de or en (the order's language), "{id}" the shipment number.
const DefaultTrackingURLTemplate = "https://www.dhl.de/{lang}/privatkunden/pakete-empfangen/verfolgen.html?piececode={id}"

// Shipper is the sender printed on the label.
type Shipper struct {
	Name       string // name1, at most 50 characters
	Street     string // street and house number
	PostalCode string
	City       string
	Country    string // ISO 3166-1 alpha-2 (sent as alpha-3)
	Email      string // optional
	Phone      string // optional
}

// Config configures a Client.
type Config struct {
	// BaseURL is the API host; default DefaultBaseURL.
	BaseURL string
	// APIKey is the application's key from DHL's developer portal (the
	// dhl-api-key header); required.
	APIKey string
	// Username and Password are the business customer portal user the
	// shipments are booked as (HTTP Basic); required.
	Username string
	Password string
	// Timeout bounds one booking call; default 30s.
	Timeout time.Duration
	// HTTPClient is used for requests; default a client with Timeout.
	HTTPClient *http.Client
	// Logger gets one line per booking (order id and shipment number only).
	Logger *slog.Logger
	// Labels stores the decoded label PDFs; required.
	Labels labelstore.Store

	// Profile is the user group profile; default DefaultProfile.
	Profile string
	// BillingNumber is the 14-character billing number of DHL Paket
	// (V01PAK, digits 11–12 "01"); required.
	BillingNumber string
	// InternationalBillingNumber is the one of DHL Paket International
	// (V53WPAK, digits 11–12 "53"); without it an order shipped abroad is
	// refused (permanent).
	InternationalBillingNumber string
	// Shipper is the sender; Name, Street, PostalCode, City and Country
	// are required.
	Shipper Shipper
	// WeightGrams is declared as each parcel's weight (DHL requires one);
	// default 1000, at most 31500.
	WeightGrams int
	// PrintFormat is the label's print format (A4, 910-300-700, ...);
	// empty leaves the portal account's setting.
	PrintFormat string
	// Customs is what the customs declaration of a parcel leaving the EU
	// VAT area takes from the shop (the order gives the rest).
	Customs Customs
	// TrackingURLTemplate builds Shipment.TrackingURL; "{id}" is replaced
	// by the shipment number, "{lang}" by de or en. Default
	// DefaultTrackingURLTemplate.
	TrackingURLTemplate string
}

func (c *Config) setDefaults() {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Profile == "" {
		c.Profile = DefaultProfile
	}
	if c.WeightGrams == 0 {
		c.WeightGrams = 1000
	}
	if c.TrackingURLTemplate == "" {
		c.TrackingURLTemplate = DefaultTrackingURLTemplate
	}
	c.Customs.setDefaults()
}

// billingPattern is the documented form of a billing number.
var billingPattern = regexp.MustCompile(`^\w{10}\d{2}\w{2}$`)

// Validate reports a missing or malformed setting; zero values that have a
// default are fine.
func (c Config) Validate() error {
	c.setDefaults()
	if !integrations.IsHTTPURL(c.BaseURL) {
		return errors.New("dhl: BaseURL must be an http(s) URL")
	}
	var problems []string
	if c.APIKey == "" {
		problems = append(problems, "APIKey is required")
	}
	if c.Username == "" || c.Password == "" {
		problems = append(problems, "Username and Password are required")
	}
	if c.Labels == nil {
		problems = append(problems, "Labels (a label store) is required")
	}
	if !billingPattern.MatchString(c.BillingNumber) || c.BillingNumber[10:12] != "01" {
		problems = append(problems, "BillingNumber must be the 14-character billing number of DHL Paket (digits 11 and 12: 01)")
	}
	if b := c.InternationalBillingNumber; b != "" && (!billingPattern.MatchString(b) || b[10:12] != "53") {
		problems = append(problems, "InternationalBillingNumber must be the 14-character billing number of DHL Paket International (digits 11 and 12: 53)")
	}
	sh := c.Shipper
	if sh.Name == "" || sh.Street == "" || sh.PostalCode == "" || sh.City == "" {
		problems = append(problems, "Shipper needs Name, Street, PostalCode and City")
	}
	if _, ok := alpha3(sh.Country); !ok {
		problems = append(problems, "Shipper.Country must be an ISO 3166-1 alpha-2 country code")
	}
	if c.WeightGrams < 0 || c.WeightGrams > 31500 {
		problems = append(problems, "WeightGrams must be between 1 and 31500")
	}
	if c.Timeout < 0 {
		problems = append(problems, "Timeout must not be negative")
	}
	if !strings.Contains(c.TrackingURLTemplate, "{id}") {
		problems = append(problems, "TrackingURLTemplate must contain {id}")
	}
	problems = append(problems, c.Customs.problems()...)
	if len(problems) > 0 {
		return errors.New("dhl: " + strings.Join(problems, "; "))
	}
	return nil
}

// Client books shipments. It is safe for concurrent use.
type Client struct {
	cfg  Config
	http *http.Client
	log  *slog.Logger
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	hc := integrations.HTTPClient(cfg.HTTPClient, cfg.Timeout)
	return &Client{cfg: cfg, http: hc, log: integrations.Logger(cfg.Logger).With("provider", provider)}, nil
}

// Reference is the refNo sent with the order's shipment (8 to 35
// characters, printed on the label): the order id when it fits
// (PaymentIntent ids do), else the order number, padded to 8.
func Reference(o integrations.Order) string {
	ref := o.ID
	if len(ref) < 8 || len(ref) > 35 {
		ref = o.Number
		if ref == "" {
			ref = integrations.OrderNumber(o.ID)
		}
	}
	if len(ref) > 35 {
		ref = ref[:35]
	}
	for len(ref) < 8 {
		ref += "-"
	}
	return ref
}

// CreateShipment books one parcel to the order's shipping address, stores
// its label and returns the shipment. Every call books a new shipment.
func (c *Client) CreateShipment(ctx context.Context, o integrations.Order) (integrations.Shipment, error) {
	const op = "create shipment"
	body, err := c.orderRequest(o)
	if err != nil {
		return integrations.Shipment{}, err
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return integrations.Shipment{}, integrations.NotSentf(provider, op, "encode request: %v", err)
	}
	q := url.Values{"includeDocs": {"include"}, "docFormat": {"PDF"}}
	if c.cfg.PrintFormat != "" {
		q.Set("printFormat", c.cfg.PrintFormat)
	}
	endpoint := strings.TrimRight(c.cfg.BaseURL, "/") + OrdersPath + "?" + q.Encode()

	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(payload))
	if err != nil {
		return integrations.Shipment{}, integrations.NotSentf(provider, op, "build request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Accept-Language", "en-US")
	req.Header.Set("dhl-api-key", c.cfg.APIKey)
	req.SetBasicAuth(c.cfg.Username, c.cfg.Password)

	resp, err := c.http.Do(req)
	if err != nil {
		// The header and the Basic credentials are not in a transport
		// error's text (only the URL, which holds neither).
		return integrations.Shipment{}, integrations.NetError(provider, op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		// The shipment may exist; the processor's intent policy decides.
		return integrations.Shipment{}, integrations.NetError(provider, op, err)
	}
	var lr labelDataResponse
	decodeErr := json.Unmarshal(raw, &lr)
	if resp.StatusCode/100 != 2 {
		return integrations.Shipment{}, integrations.HTTPError(provider, op, resp, c.redact(errorText(raw)))
	}
	if decodeErr != nil {
		return integrations.Shipment{}, integrations.Permanentf(provider, op, "DHL answered %d with a body that is not a label response", resp.StatusCode)
	}
	return c.finish(ctx, o, &lr)
}

// finish checks a 2xx answer, stores the label and builds the Shipment.
// DHL reports a shipment it did not create inside the answer, in the
// item's sstatus and validation messages.
func (c *Client) finish(ctx context.Context, o integrations.Order, lr *labelDataResponse) (integrations.Shipment, error) {
	const op = "create shipment"
	if len(lr.Items) != 1 {
		return integrations.Shipment{}, integrations.Permanentf(provider, op, "DHL answered %d items for one shipment", len(lr.Items))
	}
	it := lr.Items[0]
	if it.ShipmentNo == "" || it.Status.code() != http.StatusOK {
		return integrations.Shipment{}, integrations.Permanentf(provider, op, "shipment not created: %s", c.redact(itemText(it)))
	}
	// From here on the shipment exists at DHL: a failure must not book
	// again, so it is permanent and names the shipment number (its label
	// can be fetched with GET /orders?shipment=<number>).
	if it.Label == nil || it.Label.B64 == "" {
		return integrations.Shipment{}, integrations.Permanentf(provider, op, "created shipment %s but the answer has no label", it.ShipmentNo)
	}
	pdf, err := base64.StdEncoding.DecodeString(it.Label.B64)
	if err != nil || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		return integrations.Shipment{}, integrations.Permanentf(provider, op, "created shipment %s but its label is not a base64 PDF", it.ShipmentNo)
	}
	loc, err := c.cfg.Labels.Put(ctx, o.ID, "label-"+it.ShipmentNo+".pdf", pdf)
	if err != nil {
		e := integrations.Permanentf(provider, op, "created shipment %s but storing the label failed", it.ShipmentNo)
		e.Err = err
		return integrations.Shipment{}, e
	}
	s := integrations.Shipment{
		ShipmentID:     it.ShipmentNo,
		TrackingNumber: it.ShipmentNo,
		TrackingURL:    trackingURL(c.cfg.TrackingURLTemplate, it.ShipmentNo, o.Locale),
		LabelLocation:  loc,
	}
	if d := it.CustomsDoc; d != nil && d.B64 != "" {
		// The customs declaration (CN23) of a parcel leaving the EU comes
		// apart from the label (combine joins only label and return
		// label): kept beside it, for the warehouse to print too.
		doc, err := base64.StdEncoding.DecodeString(d.B64)
		if err != nil || !bytes.HasPrefix(doc, []byte("%PDF-")) {
			return integrations.Shipment{}, integrations.Permanentf(provider, op, "created shipment %s but its customs declaration is not a base64 PDF", it.ShipmentNo)
		}
		if s.CustomsLocation, err = c.cfg.Labels.Put(ctx, o.ID, "customs-"+it.ShipmentNo+".pdf", doc); err != nil {
			e := integrations.Permanentf(provider, op, "created shipment %s but storing its customs declaration failed", it.ShipmentNo)
			e.Err = err
			return integrations.Shipment{}, e
		}
	}
	c.log.InfoContext(ctx, "shipment created", "order_id", o.ID, "shipment_no", it.ShipmentNo)
	return s, nil
}

// The most characters DHL's ContactAddress takes (the Parcel DE Shipping
// API's schema): each of name1, name2 and name3 50, email 80, phone 20.
const (
	maxNameLine = 50
	maxEmail    = 80
	maxPhone    = 20
)

// nameLines puts a recipient's name on DHL's three name lines of at most
// maxNameLine characters each, broken between words where it can be (a
// word longer than a line is broken inside it): "Keramik Müller GmbH &
// Co. KG, Abteilung Einkauf und Logistik" is two lines, not refused. What
// does not fit on three lines is cut.
func nameLines(name string) [3]string {
	var out [3]string
	words := strings.Fields(name)
	for i := range out {
		line := ""
		for len(words) > 0 {
			w := words[0]
			n := utf8.RuneCountInString(line)
			if line != "" {
				n++
			}
			if n+utf8.RuneCountInString(w) <= maxNameLine {
				if line != "" {
					line += " "
				}
				line += w
				words = words[1:]
				continue
			}
			if line == "" { // a word longer than a line
				r := []rune(w)
				line, words[0] = string(r[:maxNameLine]), string(r[maxNameLine:])
			}
			break
		}
		out[i] = line
	}
	return out
}

// orderRequest builds the ShipmentOrderRequest of one parcel.
func (c *Client) orderRequest(o integrations.Order) (*shipmentOrderRequest, error) {
	const op = "create shipment"
	a := o.Shipping
	name := a.Name
	if name == "" {
		name = o.Customer.Name
	}
	country, ok := alpha3(a.Country)
	var missing []string
	if strings.TrimSpace(name) == "" {
		missing = append(missing, "name")
	}
	if a.Line1 == "" && a.Line2 == "" {
		missing = append(missing, "street")
	}
	if a.City == "" {
		missing = append(missing, "city")
	}
	if !ok {
		missing = append(missing, "country")
	}
	if len(missing) > 0 {
		return nil, integrations.NotSentf(provider, op, "order %s: shipping address lacks %s", o.ID, strings.Join(missing, ", "))
	}
	product, billing := ProductDomestic, c.cfg.BillingNumber
	if country != "DEU" {
		if c.cfg.InternationalBillingNumber == "" {
			return nil, integrations.NotSentf(provider, op, "order %s ships to %s: no billing number for DHL Paket International is configured", o.ID, strings.ToUpper(a.Country))
		}
		product, billing = ProductInternational, c.cfg.InternationalBillingNumber
	}
	street, extra := a.Line1, a.Line2
	if street == "" {
		street, extra = a.Line2, ""
	}
	names := nameLines(name)
	cons := contactAddress{
		Name1: names[0], Name2: names[1], Name3: names[2], AddressStreet: street, AdditionalAddressInformation1: extra,
		PostalCode: a.PostalCode, City: a.City, State: a.State, Country: country,
	}
	// The email and phone only serve DHL's notices: one longer than DHL
	// takes is left out rather than refusing the parcel.
	if e := o.Customer.Email; utf8.RuneCountInString(e) <= maxEmail {
		cons.Email = e
	}
	if country != "DEU" {
		// DHL takes no phone number for a shipment within Germany.
		if p := firstNonEmpty(a.Phone, o.Customer.Phone); utf8.RuneCountInString(p) <= maxPhone {
			cons.Phone = p
		}
	}
	sh := c.cfg.Shipper
	shipperCountry, _ := alpha3(sh.Country)
	req := shipment{
		Product:       product,
		BillingNumber: billing,
		RefNo:         Reference(o),
		Shipper:       contactAddress{Name1: sh.Name, AddressStreet: sh.Street, PostalCode: sh.PostalCode, City: sh.City, Country: shipperCountry, Email: sh.Email, Phone: sh.Phone},
		Consignee:     cons,
		Details:       details{Weight: weight{UOM: "g", Value: c.cfg.WeightGrams}},
	}
	// A parcel within Germany (DHL Paket) declares nothing, also one to
	// Heligoland or Büsingen.
	if product == ProductInternational && needsCustoms(o) {
		customs, grams, err := c.customs(o)
		if err != nil {
			return nil, err
		}
		req.Customs, req.Details.Weight.Value = customs, grams
	}
	return &shipmentOrderRequest{Profile: c.cfg.Profile, Shipments: []shipment{req}}, nil
}

// alpha3 turns an ISO 3166-1 alpha-2 country code into the alpha-3 code
// DHL wants ("DE" → "DEU").
func alpha3(cc string) (string, bool) {
	if len(cc) != 2 {
		return "", false
	}
	r, err := language.ParseRegion(strings.ToUpper(cc))
	if err != nil || !r.IsCountry() {
		return "", false
	}
	return r.ISO3(), true
}

// trackingURL fills the template for the shipment number, in German for a
// German-speaking customer and English otherwise.
func trackingURL(tmpl, id, locale string) string {
	lang := "en"
	if strings.HasPrefix(strings.ToLower(locale), "de") {
		lang = "de"
	}
	return strings.NewReplacer("{id}", url.QueryEscape(id), "{lang}", lang).Replace(tmpl)
}

// errorText summarises an error answer: the title and detail of its status
// (application/problem+json), then the first item's reason.
func errorText(raw []byte) string {
	var lr labelDataResponse
	st := &requestStatus{}
	if json.Unmarshal(raw, &lr) == nil && lr.Status != nil {
		st = lr.Status
	} else if json.Unmarshal(raw, st) != nil {
		return ""
	}
	s := strings.TrimSpace(st.Title)
	if st.Detail != "" && st.Detail != st.Title {
		s = strings.TrimSpace(s + ": " + st.Detail)
	}
	if len(lr.Items) > 0 {
		if t := itemText(lr.Items[0]); t != "" {
			s = strings.TrimSpace(s + "; " + t)
		}
	}
	return truncate(s, 300)
}

// itemText is why one item failed: its status, its validation messages
// (errors first) or its schema error.
func itemText(it responseItem) string {
	var parts []string
	if it.Status != nil && it.Status.code() != http.StatusOK {
		parts = append(parts, strings.TrimSpace(fmt.Sprintf("%d %s %s", it.Status.code(), it.Status.Title, it.Status.Detail)))
	}
	msgs := append([]validationMessage(nil), it.ValidationMessages...)
	for pass := 0; pass < 2; pass++ {
		for _, m := range msgs {
			if (pass == 0) == strings.EqualFold(m.ValidationState, "Error") {
				parts = append(parts, strings.TrimSpace(m.Property+": "+m.ValidationMessage))
			}
		}
	}
	if it.Message != "" {
		parts = append(parts, strings.TrimSpace(it.PropertyPath+": "+it.Message))
	}
	if it.ShipmentNo == "" && len(parts) == 0 {
		parts = append(parts, "no shipment number")
	}
	return truncate(strings.Join(parts, "; "), 300)
}

func (c *Client) redact(s string) string {
	for _, secret := range []string{c.cfg.APIKey, c.cfg.Password} {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "<redacted>")
		}
	}
	return s
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
