// Package postnord books shipments with PostNord's Booking API (EDI v3) and
// stores their labels.
//
// One call, POST /rest/shipment/v3/edi/labels/pdf?apikey=..., books the
// shipment and returns the PDF label (base64), which is decoded and put in a
// labelstore.Store. PostNord has no idempotency: every call books a new
// shipment, so the order id travels as the shipment's "CU" (customer)
// reference for reconciliation, and any failure after PostNord accepted the
// booking (missing label, label store error) is reported as permanent with
// the item id, so the processor dead-letters instead of booking again.
//
// The API key is a query parameter; it never appears in logs or errors
// (transport errors have their URL redacted).
package postnord

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/labelstore"
)

const provider = "postnord"

// DefaultBaseURL is PostNord's production API host; the sandbox is
// https://atapi2.postnord.com.
const DefaultBaseURL = "https://api2.postnord.com"

// BookingPath is the booking-with-labels operation (swagger createEDILabelPDF).
const BookingPath = "/rest/shipment/v3/edi/labels/pdf"

// DefaultTrackingURLTemplate builds the public tracking link; "{id}" is
// replaced by the item id (the tracking number).
const DefaultTrackingURLTemplate = "https://tracking.postnord.com/se/?id={id}"

// Party is the sender's name, address and contact as PostNord prints them.
type Party struct {
	Name        string   // person or company name on the label
	CompanyName string   // optional
	Streets     []string // street lines
	PostalCode  string
	City        string
	CountryCode string // ISO 3166-1 alpha-2
	ContactName string
	Email       string
	Phone       string
}

// Config configures a Client.
type Config struct {
	// BaseURL is the API host; default https://api2.postnord.com.
	BaseURL string
	// APIKey is the 32-character key sent as the apikey query parameter.
	APIKey string
	// Timeout bounds one booking call; default 30s.
	Timeout time.Duration
	// HTTPClient is used for requests; default a client with Timeout.
	HTTPClient *http.Client
	// Logger gets one line per booking (order and item ids only).
	Logger *slog.Logger
	// Labels stores the decoded label PDFs; required.
	Labels labelstore.Store

	// ApplicationID is the integer PostNord assigns to the integration;
	// 0 leaves it out. ApplicationName (default "orderflow") is sent with it.
	ApplicationID   int
	ApplicationName string
	// IssuerCode names the PostNord country organisation that holds the
	// customer number: Z11 DK, Z12 SE (default), Z13 NO, Z14 FI.
	IssuerCode string
	// CustomerNumber is the consignor's PostNord customer number
	// (partyId, at most 17 characters); required.
	CustomerNumber string
	// Consignor is the sender; Name, PostalCode, City and CountryCode are
	// required.
	Consignor Party

	// BasicServiceCode is the PostNord product, e.g. "19" (MyPack Collect,
	// default) or "17" (MyPack Home); AdditionalServiceCodes adds services.
	BasicServiceCode       string
	AdditionalServiceCodes []string
	// PackageTypeCode is the goods item's package type; default "PC" (parcel).
	PackageTypeCode string
	// GrossWeightGrams, when set, is declared as each parcel's weight.
	GrossWeightGrams int64

	// PaperSize is A4 (default), A5, A6, LETTER or LABEL; LabelType is
	// standard (default), small, ste.... Each booking's locale (the
	// language of PostNord's SMS and e-mail notifications) is the order's
	// (see NotificationLocale); Locale (sv, da, no, fi, en) is the one used
	// for an order without a language, left out when empty (PostNord then
	// uses sv).
	PaperSize string
	LabelType string
	Locale    string
	// TestIndicator books in test mode: validated only, no EDI sent, a
	// "Test" label returned.
	TestIndicator bool

	// TrackingURLTemplate builds Shipment.TrackingURL when the booking
	// response has no urls[type=TRACKING] for the item; "{id}" is replaced
	// by the item id. Default DefaultTrackingURLTemplate.
	TrackingURLTemplate string
}

func (c *Config) setDefaults() {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.ApplicationName == "" {
		c.ApplicationName = "orderflow"
	}
	if c.IssuerCode == "" {
		c.IssuerCode = "Z12"
	}
	if c.BasicServiceCode == "" {
		c.BasicServiceCode = "19"
	}
	if c.PackageTypeCode == "" {
		c.PackageTypeCode = "PC"
	}
	if c.PaperSize == "" {
		c.PaperSize = "A4"
	}
	if c.LabelType == "" {
		c.LabelType = "standard"
	}
	if c.TrackingURLTemplate == "" {
		c.TrackingURLTemplate = DefaultTrackingURLTemplate
	}
}

// Validate reports a missing or malformed setting; zero values that have a
// default are fine.
func (c Config) Validate() error {
	c.setDefaults()
	if !integrations.IsHTTPURL(c.BaseURL) {
		return errors.New("postnord: BaseURL must be an http(s) URL")
	}
	var problems []string
	if c.APIKey == "" {
		problems = append(problems, "APIKey is required")
	}
	if c.Labels == nil {
		problems = append(problems, "Labels (a label store) is required")
	}
	switch c.IssuerCode {
	case "Z11", "Z12", "Z13", "Z14", "ZDL":
	default:
		problems = append(problems, "IssuerCode must be Z11, Z12, Z13, Z14 or ZDL")
	}
	if c.CustomerNumber == "" || len(c.CustomerNumber) > 17 {
		problems = append(problems, "CustomerNumber is required (at most 17 characters)")
	}
	if c.Consignor.Name == "" || c.Consignor.PostalCode == "" || c.Consignor.City == "" || len(c.Consignor.CountryCode) != 2 {
		problems = append(problems, "Consignor needs Name, PostalCode, City and a 2-letter CountryCode")
	}
	switch c.PaperSize {
	case "A4", "A5", "A6", "LETTER", "LABEL":
	default:
		problems = append(problems, "PaperSize must be A4, A5, A6, LETTER or LABEL")
	}
	if !strings.Contains(c.TrackingURLTemplate, "{id}") {
		problems = append(problems, "TrackingURLTemplate must contain {id}")
	}
	if c.Timeout < 0 || c.GrossWeightGrams < 0 {
		problems = append(problems, "Timeout and GrossWeightGrams must not be negative")
	}
	if len(problems) > 0 {
		return errors.New("postnord: " + strings.Join(problems, "; "))
	}
	return nil
}

// Client books shipments. It is safe for concurrent use.
type Client struct {
	cfg  Config
	http *http.Client
	log  *slog.Logger
	now  func() time.Time
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	hc := integrations.HTTPClient(cfg.HTTPClient, cfg.Timeout)
	log := integrations.Logger(cfg.Logger)
	return &Client{cfg: cfg, http: hc, log: log.With("provider", provider), now: time.Now}, nil
}

// CustomerReference is the "CU" reference sent with the order's shipment:
// the order id when it fits PostNord's 35 characters (PaymentIntent ids
// do), else the order number.
func CustomerReference(o integrations.Order) string {
	if len(o.ID) <= 35 {
		return o.ID
	}
	if o.Number != "" {
		return o.Number
	}
	return integrations.OrderNumber(o.ID)
}

// CreateShipment books one parcel to the order's shipping address, stores
// its label and returns the shipment. Every call books a new shipment.
func (c *Client) CreateShipment(ctx context.Context, o integrations.Order) (integrations.Shipment, error) {
	const op = "book shipment"
	body, err := c.bookingRequest(o)
	if err != nil {
		return integrations.Shipment{}, err
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return integrations.Shipment{}, integrations.NotSentf(provider, op, "encode request: %v", err)
	}

	q := url.Values{}
	q.Set("apikey", c.cfg.APIKey)
	q.Set("paperSize", c.cfg.PaperSize)
	q.Set("labelType", c.cfg.LabelType)
	if l := NotificationLocale(o.Locale, c.cfg.Locale); l != "" {
		q.Set("locale", l)
	}
	endpoint := strings.TrimRight(c.cfg.BaseURL, "/") + BookingPath + "?" + q.Encode()

	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(payload))
	if err != nil {
		return integrations.Shipment{}, integrations.NotSentf(provider, op, "build request: %s", c.redact(err.Error()))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-External-Request-ID", body.MessageID)

	resp, err := c.http.Do(req)
	if err != nil {
		return integrations.Shipment{}, integrations.NetError(provider, op, c.redactErr(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		// The booking may have gone through; the processor's retry policy
		// decides (transient), and the CU reference allows reconciliation.
		return integrations.Shipment{}, integrations.NetError(provider, op, c.redactErr(err))
	}
	if resp.StatusCode/100 != 2 {
		e := integrations.HTTPError(provider, op, resp, c.redact(errorMessage(raw)))
		if resp.StatusCode == 499 { // gateway closed the request: PostNord may not have finished
			e.Class = integrations.Transient
		}
		return integrations.Shipment{}, e
	}
	var lr labelResponse
	if err := json.Unmarshal(raw, &lr); err != nil {
		// A proxy's maintenance page, an empty or truncated body: whether
		// PostNord booked is unknown. No status, so the processor keeps the
		// intent and looks the booking up by its CU reference (Track &
		// Trace) before booking again.
		return integrations.Shipment{}, integrations.InDoubt(provider, op, resp.StatusCode, "not a label response (message %s)", body.MessageID)
	}
	return c.finish(ctx, o, body.MessageID, &lr)
}

// finish checks a 200 booking response, stores the label and builds the
// Shipment. PostNord reports rejected bookings inside a 200, per
// idInformation entry.
func (c *Client) finish(ctx context.Context, o integrations.Order, messageID string, lr *labelResponse) (integrations.Shipment, error) {
	const op = "book shipment"
	infos := lr.BookingResponse.IDInformation
	if len(infos) == 0 {
		return integrations.Shipment{}, integrations.Permanentf(provider, op, "booking %q returned no idInformation (message %s)", lr.BookingResponse.BookingID, messageID)
	}
	var itemID, shipmentID, printID string
	for _, info := range infos {
		if !strings.EqualFold(info.Status, "OK") {
			return integrations.Shipment{}, integrations.Permanentf(provider, op, "booking rejected: status %q: %s", info.Status, truncate(c.redact(faultText(info.ErrorResponse)), 300))
		}
		for _, id := range info.IDs {
			switch {
			case strings.EqualFold(id.IDType, "itemId") && itemID == "":
				itemID, printID = id.Value, id.PrintID
			case strings.EqualFold(id.IDType, "shipmentId") && shipmentID == "":
				shipmentID = id.Value
			}
		}
	}
	if itemID == "" {
		return integrations.Shipment{}, integrations.Permanentf(provider, op, "booking %q returned no item id", lr.BookingResponse.BookingID)
	}
	if shipmentID == "" {
		shipmentID = lr.BookingResponse.BookingID
	}
	// From here on the shipment exists at PostNord: a failure must not make
	// the processor book again, so it is permanent and names the ids a
	// person needs to fetch the label (/v3/labels/ids/pdf with the printId).
	data := labelData(lr.LabelPrintout, itemID)
	if data == "" {
		return integrations.Shipment{}, integrations.Permanentf(provider, op, "booked item %s (printId %s) but the response has no label", itemID, printID)
	}
	pdf, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return integrations.Shipment{}, integrations.Permanentf(provider, op, "booked item %s (printId %s) but the label is not valid base64", itemID, printID)
	}
	loc, err := c.cfg.Labels.Put(ctx, o.ID, "label-"+itemID+".pdf", pdf)
	if err != nil {
		e := integrations.Permanentf(provider, op, "booked item %s (printId %s) but storing the label failed", itemID, printID)
		e.Err = err
		return integrations.Shipment{}, e
	}
	s := integrations.Shipment{
		ShipmentID:     shipmentID,
		TrackingNumber: itemID,
		TrackingURL:    trackingURL(infos, itemID, c.cfg.TrackingURLTemplate),
		LabelLocation:  loc,
	}
	c.log.InfoContext(ctx, "shipment booked", "order_id", o.ID, "item_id", itemID, "shipment_id", shipmentID, "message_id", messageID)
	return s, nil
}

// labelData picks the printout for the item, or the first one.
func labelData(printouts []labelPrintout, itemID string) string {
	for _, p := range printouts {
		for _, id := range p.ItemIDs {
			if idValue(id) == itemID && p.Printout.Data != "" {
				return p.Printout.Data
			}
		}
	}
	for _, p := range printouts {
		if p.Printout.Data != "" {
			return p.Printout.Data
		}
	}
	return ""
}

// idValue reads an itemIds entry, which the swagger shows as objects
// ({"itemId": "..."}) and some fixtures as plain strings.
func idValue(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		ItemID string `json:"itemId"`
	}
	_ = json.Unmarshal(raw, &o)
	return o.ItemID
}

// errorMessage summarises an error body: the documented errorResponse
// (message and first fault), the API gateway's {"error":{...}} envelope, or
// nothing.
func errorMessage(raw []byte) string {
	var body struct {
		errorResponse
		ErrorResponse *errorResponse `json:"errorResponse"`
		Error         *struct {
			StatusCode int    `json:"status_code"`
			ErrorType  string `json:"error_type"`
			Message    string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) != nil {
		return ""
	}
	switch {
	case body.ErrorResponse != nil:
		return truncate(faultText(body.ErrorResponse), 300)
	case body.Error != nil:
		return truncate(strings.TrimSpace(body.Error.ErrorType+": "+body.Error.Message), 300)
	}
	return truncate(faultText(&body.errorResponse), 300)
}

func faultText(e *errorResponse) string {
	if e == nil {
		return "no error details"
	}
	s := e.Message
	if e.CompositeFault != nil && len(e.CompositeFault.Faults) > 0 {
		f := e.CompositeFault.Faults[0]
		s = strings.TrimSpace(s + " [" + f.FaultCode + "]")
		if f.ExplanationText != e.Message { // a fault that repeats the message says it once
			s = strings.TrimSpace(s + " " + f.ExplanationText)
		}
		if n := len(e.CompositeFault.Faults); n > 1 {
			s += fmt.Sprintf(" (+%d more faults)", n-1)
		}
	}
	if s == "" {
		return "no error details"
	}
	return s
}

func (c *Client) redact(s string) string {
	if c.cfg.APIKey == "" {
		return s
	}
	return strings.ReplaceAll(s, c.cfg.APIKey, "<redacted>")
}

// redactErr removes the API key from a transport error, whose text holds
// the request URL with its query.
func (c *Client) redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: redactURL(ue.URL), Err: redactedErr{ue.Err, c.redact}}
	}
	return redactedErr{err, c.redact}
}

// redactURL replaces the apikey query value.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<url>"
	}
	q := u.Query()
	if q.Has("apikey") {
		q.Set("apikey", "REDACTED")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

type redactedErr struct {
	err    error
	redact func(string) string
}

func (r redactedErr) Error() string { return r.redact(r.err.Error()) }
func (r redactedErr) Unwrap() error { return r.err }

func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
