// Package netvisor creates VAT sales invoices in Netvisor, the Finnish
// accounting service, through its XML API (salesinvoice.nv?method=add), and
// finds them again by invoice number (salesinvoicelist.nv) to reconcile an
// uncertain create.
//
// Every request carries Netvisor's authentication headers and a MAC over the
// request URL, those headers and the two secret keys (SHA256 by default,
// HMAC-SHA256 selectable); the keys themselves are never sent or logged.
// Netvisor answers inside <ResponseStatus>: "OK", or "FAILED" followed by
// "CODE :: message", which becomes an *integrations.Error wrapping an
// *APIError (see classify for which codes are permanent).
//
// Creating an invoice is not idempotent: a fresh TransactionId is used per
// request, and a retried create makes a second invoice. The invoice number
// is derived from the order (InvoiceNumber), so FindInvoice can tell whether
// a create that failed in transit went through.
package netvisor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

const provider = "netvisor"

// DefaultBaseURL is Netvisor's production integration host; the test
// environment is https://isvapi.netvisor.fi (with its own credentials).
const DefaultBaseURL = "https://integration.netvisor.fi"

// MAC algorithms (X-Netvisor-Authentication-MACHashCalculationAlgorithm).
const (
	AlgorithmSHA256     = "SHA256"
	AlgorithmHMACSHA256 = "HMACSHA256"
)

// Request encodings. Netvisor documents ISO-8859-15 for Scandinavian
// characters; characters outside it are sent as XML character references.
const (
	EncodingISO885915 = "ISO-8859-15"
	EncodingUTF8      = "UTF-8"
)

// Config configures a Client.
type Config struct {
	// BaseURL is the API host; default https://integration.netvisor.fi.
	BaseURL string
	// MaxConcurrent bounds the requests in flight to the company (0:
	// DefaultMaxConcurrent, negative: no bound). Netvisor's documentation
	// checked for this project states no concurrency limit (UNCONFIRMED);
	// third-party clients send one request at a time, so the default is
	// small. Set 1 if the account is throttled.
	MaxConcurrent int
	// Sender names the sending software (X-Netvisor-Authentication-Sender).
	Sender string
	// CustomerID and CustomerKey are the customer's integration user id and
	// key; PartnerID and PartnerKey the software partner's. The keys only
	// enter the MAC.
	CustomerID  string
	CustomerKey string
	PartnerID   string
	PartnerKey  string
	// OrganisationID is the company's business id, e.g. "1967543-8".
	OrganisationID string
	// Language of Netvisor's messages: FI, EN (default) or SE.
	Language string
	// Algorithm is SHA256 (default) or HMACSHA256. HMACSHA256 also sends
	// TimestampUnix and asks for HTTP status codes on errors.
	Algorithm string
	// Encoding of request bodies: ISO-8859-15 (default) or UTF-8.
	Encoding string
	// Timeout bounds one call; default 120s, the minimum Netvisor advises.
	Timeout time.Duration
	// HTTPClient is used for requests; default a client with Timeout.
	HTTPClient *http.Client
	// Logger gets one line per invoice (order id and invoice number only).
	Logger *slog.Logger
	// Location decides the invoice date from the order time; default
	// Europe/Helsinki (UTC if the zone database is unavailable).
	Location *time.Location

	// CustomerIdentifier links the invoices of buyers without a VAT number
	// to one Netvisor customer (a web shop's "consumer" customer); the
	// buyer's name and addresses are set on the invoice itself. CustomerIdentifierType is "netvisor" (the
	// customer's Netvisor key, default) or "customer" (its customer code).
	CustomerIdentifier     string
	CustomerIdentifierType string
	// SharedCustomerOnly links every invoice to CustomerIdentifier, business
	// buyers too. By default a buyer who gave a VAT number is invoiced as a
	// Netvisor customer of its own, added on its first order with the VAT
	// number as its code (see CustomerCode) and business id, a Finnish
	// buyer's Y-tunnus (see BusinessID).
	SharedCustomerOnly bool
	// ProductIdentifier is the product each order line is linked to, of
	// ProductIdentifierType "netvisor" (default) or "customer" (product
	// code). With UseSKUAsProduct, a line's SKU is used as the product code
	// instead (type "customer"), when it has one.
	ProductIdentifier     string
	ProductIdentifierType string
	UseSKUAsProduct       bool
	// ShippingProductIdentifier is the product of the shipping line;
	// default ProductIdentifier. ShippingProductName defaults to "Shipping".
	ShippingProductIdentifier string
	ShippingProductName       string
	// VATCode is the vatcode of a taxed line, and of an untaxed one sold
	// inside the EU; default "KOMY" (domestic sales). Sales under the EU's
	// OSS scheme at another country's rate also get it: ask the
	// accountant whether the company needs another code.
	VATCode string
	// ReverseChargeVATCode is the vatcode of a line Stripe marked
	// reverse_charge (or of every line when the buyer is tax_exempt
	// "reverse"); default "EUMY" (EU sales of goods). A shop selling
	// services sets "EUPM309" or "EUPM312" (the VAT-return box). The
	// invoice then names the buyer's VAT number and carries
	// ReverseChargeText.
	ReverseChargeVATCode string
	// ExportVATCode is the vatcode of an untaxed line whose goods go
	// outside the EU; default "EUUM" (sales outside the EU). A line of
	// such goods that carries a foreign tax (another country's sales tax
	// or VAT, Stripe's tax country neither FI nor AX) gets it too, without
	// VAT, and its tax becomes a line of its own: ForeignTaxProductIdentifier
	// (default ProductIdentifier) at ForeignTaxVATCode (default "NONE", no
	// VAT handling), so that the foreign tax is not reported as Finnish
	// output VAT.
	ExportVATCode               string
	ForeignTaxVATCode           string
	ForeignTaxProductIdentifier string
	// ReverseChargeText is written after the lines of a reverse-charge
	// invoice; default "Reverse charge / Käännetty verovelvollisuus".
	ReverseChargeText string
	// InvoiceStatus is the status of created invoices; default "unsent".
	InvoiceStatus string
	// PaymentTermNetDays; default 14. Orders are paid already, but Netvisor
	// requires a payment term.
	PaymentTermNetDays int
}

func (c *Config) setDefaults() {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.Language == "" {
		c.Language = "EN"
	}
	if c.Algorithm == "" {
		c.Algorithm = AlgorithmSHA256
	}
	if c.Encoding == "" {
		c.Encoding = EncodingISO885915
	}
	if c.Timeout == 0 {
		c.Timeout = 120 * time.Second
	}
	if c.CustomerIdentifierType == "" {
		c.CustomerIdentifierType = "netvisor"
	}
	if c.ProductIdentifierType == "" {
		c.ProductIdentifierType = "netvisor"
	}
	if c.ShippingProductIdentifier == "" {
		c.ShippingProductIdentifier = c.ProductIdentifier
	}
	if c.ShippingProductName == "" {
		c.ShippingProductName = "Shipping"
	}
	if c.VATCode == "" {
		c.VATCode = "KOMY"
	}
	if c.ReverseChargeVATCode == "" {
		c.ReverseChargeVATCode = "EUMY"
	}
	if c.ExportVATCode == "" {
		c.ExportVATCode = "EUUM"
	}
	if c.ForeignTaxVATCode == "" {
		c.ForeignTaxVATCode = "NONE"
	}
	if c.ForeignTaxProductIdentifier == "" {
		c.ForeignTaxProductIdentifier = c.ProductIdentifier
	}
	if c.ReverseChargeText == "" {
		c.ReverseChargeText = "Reverse charge / Käännetty verovelvollisuus"
	}
	if c.InvoiceStatus == "" {
		c.InvoiceStatus = "unsent"
	}
	if c.PaymentTermNetDays == 0 {
		c.PaymentTermNetDays = 14
	}
	if c.Location == nil {
		if loc, err := time.LoadLocation("Europe/Helsinki"); err == nil {
			c.Location = loc
		} else {
			c.Location = time.UTC
		}
	}
}

// Validate reports a missing or malformed setting; zero values that have a
// default are fine.
func (c Config) Validate() error {
	c.setDefaults()
	if !integrations.IsHTTPURL(c.BaseURL) || strings.Contains(c.BaseURL, "?") {
		return errors.New("netvisor: BaseURL must be an http(s) URL without a query")
	}
	var problems []string
	for _, f := range []struct{ name, v string }{
		{"Sender", c.Sender}, {"CustomerID", c.CustomerID}, {"CustomerKey", c.CustomerKey},
		{"PartnerID", c.PartnerID}, {"PartnerKey", c.PartnerKey}, {"OrganisationID", c.OrganisationID},
		{"CustomerIdentifier", c.CustomerIdentifier}, {"ProductIdentifier", c.ProductIdentifier},
	} {
		if f.v == "" {
			problems = append(problems, f.name+" is required")
		}
	}
	for _, f := range []struct{ name, v string }{
		{"Sender", c.Sender}, {"CustomerID", c.CustomerID}, {"PartnerID", c.PartnerID}, {"OrganisationID", c.OrganisationID},
	} {
		if !headerSafe(f.v) {
			problems = append(problems, f.name+" must be printable ASCII (it is sent as a header)")
		}
	}
	for _, f := range []struct{ name, v string }{{"CustomerKey", c.CustomerKey}, {"PartnerKey", c.PartnerKey}} {
		for _, r := range f.v {
			if _, ok := iso885915Byte(r); !ok {
				problems = append(problems, f.name+" holds a character ISO-8859-15 (the encoding of the MAC) cannot hold")
				break
			}
		}
	}
	switch c.Language {
	case "FI", "EN", "SE":
	default:
		problems = append(problems, "Language must be FI, EN or SE")
	}
	switch c.Algorithm {
	case AlgorithmSHA256, AlgorithmHMACSHA256:
	default:
		problems = append(problems, "Algorithm must be SHA256 or HMACSHA256")
	}
	switch c.Encoding {
	case EncodingISO885915, EncodingUTF8:
	default:
		problems = append(problems, "Encoding must be ISO-8859-15 or UTF-8")
	}
	for _, f := range []struct{ name, v string }{{"CustomerIdentifierType", c.CustomerIdentifierType}, {"ProductIdentifierType", c.ProductIdentifierType}} {
		if f.v != "netvisor" && f.v != "customer" {
			problems = append(problems, f.name+` must be "netvisor" or "customer"`)
		}
	}
	for _, f := range []struct{ name, v string }{{"VATCode", c.VATCode}, {"ReverseChargeVATCode", c.ReverseChargeVATCode}, {"ExportVATCode", c.ExportVATCode}, {"ForeignTaxVATCode", c.ForeignTaxVATCode}} {
		if !vatCodes[f.v] {
			problems = append(problems, fmt.Sprintf("%s %q is not one of Netvisor's vatcodes (%s)", f.name, f.v, vatCodeList))
		}
	}
	if c.Timeout < 0 || c.PaymentTermNetDays < 0 {
		problems = append(problems, "Timeout and PaymentTermNetDays must not be negative")
	}
	if len(problems) > 0 {
		return errors.New("netvisor: " + strings.Join(problems, "; "))
	}
	return nil
}

// vatCodes are the vatcode values of salesinvoice.nv's DTD.
var vatCodes = map[string]bool{}

const vatCodeList = "NONE KOOS EUOS EUUO EUPO 100 KOMY EUMY EUUM EUPM312 EUPM309 MUUL EVTO EVPO RAMY RAOS EVRO"

func init() {
	for _, c := range strings.Fields(vatCodeList) {
		vatCodes[c] = true
	}
}

func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// DefaultMaxConcurrent is the default bound of requests in flight.
const DefaultMaxConcurrent = 4

// Client talks to one Netvisor company, with at most Config.MaxConcurrent
// requests in flight.
type Client struct {
	cfg  Config
	http *http.Client
	log  *slog.Logger
	base string
	now  func() time.Time
	txID func() string
	sem  chan struct{}
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	hc := integrations.HTTPClient(cfg.HTTPClient, cfg.Timeout)
	log := integrations.Logger(cfg.Logger)
	return &Client{
		cfg:  cfg,
		http: hc,
		log:  log.With("provider", provider),
		base: strings.TrimRight(cfg.BaseURL, "/"),
		now:  time.Now,
		txID: newTransactionID,
		sem:  newSem(cfg.MaxConcurrent),
	}, nil
}

// newSem returns the in-flight bound: nil (none) for a negative n.
func newSem(n int) chan struct{} {
	switch {
	case n < 0:
		return nil
	case n == 0:
		n = DefaultMaxConcurrent
	}
	return make(chan struct{}, n)
}

// InvoiceNumber is the order's invoice number: the order number's 10-
// character suffix (letters and digits, from the payment id) read as a
// base-36 number and written in decimal, e.g. "OF-00000000RS" → "1000".
// Netvisor invoice numbers are numeric, so a decimal number is used; the
// mapping is one-to-one, so two orders share an invoice number only if they
// share an order number. An order number that is not base-36 falls back to
// a 15-digit FNV-1a hash of the order id.
func InvoiceNumber(o integrations.Order) string {
	num := o.Number
	if num == "" && o.ID != "" {
		num = integrations.OrderNumber(o.ID)
	}
	s := strings.TrimPrefix(num, "OF-")
	if s != "" && len(s) <= 12 {
		if v, err := strconv.ParseUint(strings.ToLower(s), 36, 64); err == nil {
			return strconv.FormatUint(v, 10)
		}
	}
	h := uint64(14695981039346656037)
	for i := 0; i < len(o.ID); i++ {
		h ^= uint64(o.ID[i])
		h *= 1099511628211
	}
	return strconv.FormatUint(h%1_000_000_000_000_000, 10)
}

// InvoiceNumber implements processor.Invoicing.
func (c *Client) InvoiceNumber(o integrations.Order) string { return InvoiceNumber(o) }

// CreateInvoice imports the order as a sales invoice and returns our number
// and Netvisor's key (InsertedDataIdentifier). A retry after a transient
// error may create a second invoice: check FindInvoice first.
func (c *Client) CreateInvoice(ctx context.Context, o integrations.Order, s integrations.Shipment) (integrations.Invoice, error) {
	const op = "add sales invoice"
	number := InvoiceNumber(o)
	// Build the document first: an order that cannot be invoiced fails
	// before any customer is added for it.
	if _, err := c.invoiceXML(o, s, number, c.cfg.CustomerIdentifier, c.cfg.CustomerIdentifierType); err != nil {
		return integrations.Invoice{}, err
	}
	custID, custType, err := c.invoiceCustomer(ctx, o)
	if err != nil {
		return integrations.Invoice{}, err
	}
	doc, err := c.invoiceXML(o, s, number, custID, custType)
	if err != nil {
		return integrations.Invoice{}, err
	}
	body := doc
	if c.cfg.Encoding == EncodingISO885915 {
		body = encodeISO885915(doc)
	}
	raw, err := c.do(ctx, op, http.MethodPost, "/salesinvoice.nv", url.Values{"method": {"add"}}, body)
	if err != nil {
		return integrations.Invoice{}, err
	}
	var r struct {
		Replies struct {
			InsertedDataIdentifier string `xml:"InsertedDataIdentifier"`
		} `xml:"Replies"`
	}
	if err := unmarshal(raw, &r); err != nil {
		// Status was OK, so the invoice exists; only its key is unreadable.
		c.log.WarnContext(ctx, "invoice created but reply unreadable", "order_id", o.ID, "invoice_number", number)
	}
	inv := integrations.Invoice{Number: number, ProviderID: strings.TrimSpace(r.Replies.InsertedDataIdentifier)}
	c.log.InfoContext(ctx, "invoice created", "order_id", o.ID, "invoice_number", number, "netvisor_key", inv.ProviderID)
	return inv, nil
}

// FindInvoice looks the invoice up by our number with
// salesinvoicelist.nv?InvoiceNumber=<number>, matching the number exactly.
func (c *Client) FindInvoice(ctx context.Context, number string) (integrations.Invoice, bool, error) {
	const op = "find sales invoice"
	if number == "" {
		return integrations.Invoice{}, false, integrations.Permanentf(provider, op, "empty invoice number")
	}
	raw, err := c.do(ctx, op, http.MethodGet, "/salesinvoicelist.nv", url.Values{"InvoiceNumber": {number}}, nil)
	if err != nil {
		return integrations.Invoice{}, false, err
	}
	var r struct {
		Invoices []struct {
			NetvisorKey   string `xml:"NetvisorKey"`
			InvoiceNumber string `xml:"InvoiceNumber"`
		} `xml:"SalesInvoiceList>SalesInvoice"`
	}
	if err := unmarshal(raw, &r); err != nil {
		return integrations.Invoice{}, false, integrations.Transientf(provider, op, "unreadable invoice list")
	}
	for _, inv := range r.Invoices {
		if strings.TrimSpace(inv.InvoiceNumber) == number {
			return integrations.Invoice{Number: number, ProviderID: strings.TrimSpace(inv.NetvisorKey)}, true, nil
		}
	}
	return integrations.Invoice{}, false, nil
}

// do sends one authenticated request and returns the body of an OK reply;
// a FAILED reply or an HTTP error becomes an *integrations.Error.
func (c *Client) do(ctx context.Context, op, method, path string, query url.Values, body []byte) ([]byte, error) {
	endpoint := c.base + path + "?" + query.Encode()
	if c.sem != nil {
		select {
		case c.sem <- struct{}{}:
			defer func() { <-c.sem }()
		case <-ctx.Done():
			return nil, integrations.NetError(provider, op, ctx.Err())
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint, rd)
	if err != nil {
		return nil, integrations.NotSentf(provider, op, "build request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "text/xml; charset="+c.cfg.Encoding)
	}
	c.sign(req.Header, endpoint)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, integrations.NetError(provider, op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, integrations.NetError(provider, op, err)
	}
	st, parseErr := parseStatus(raw)
	if parseErr == nil && st.failed() {
		e := classify(st.apiError())
		e.Op = op
		e.Status = resp.StatusCode
		if resp.StatusCode/100 != 2 {
			e.RetryAfter = integrations.ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())
		}
		return nil, e
	}
	if resp.StatusCode/100 != 2 {
		return nil, integrations.HTTPError(provider, op, resp, "")
	}
	if parseErr != nil || !st.ok() {
		// Neither OK nor FAILED: a proxy page or a format change. Whether
		// the invoice was created is unknown: no status, so the processor
		// keeps the intent and a retry looks the invoice up first.
		if parseErr == nil && st.first() != "" {
			return nil, integrations.InDoubt(provider, op, resp.StatusCode, "unexpected response status %q", truncate(st.first(), 40))
		}
		return nil, integrations.InDoubt(provider, op, resp.StatusCode, "reply is not Netvisor XML")
	}
	return raw, nil
}

func newTransactionID() string {
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
