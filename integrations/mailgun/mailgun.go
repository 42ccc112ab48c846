// Package mailgun sends the order confirmation through Mailgun's messages
// API with a stored template. The template gets its variables (locale, order
// number, tracking number and URL, invoice number, and the items, discount,
// shipping, tax added, VAT included and total, as the customer saw them at
// checkout) from the h:X-Mailgun-Variables header, and the message carries a
// Message-Id derived from the order, so a resent confirmation is recognisably
// the same message.
//
// Request:
//
//	POST https://api.eu.mailgun.net/v3/{domain}/messages
//	Authorization: Basic base64("api:" + key)
//	Content-Type: multipart/form-data
//
//	from, to, [subject], template, [t:version], h:Message-Id, h:X-Mailgun-Variables,
//	v:order_id, [o:tag ...], [o:testmode=yes]
//
// Mailgun has no idempotency key; the processor records a sent message and
// never calls SendConfirmation again for it.
package mailgun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

const (
	provider = "mailgun"
	// DefaultBaseURL is Mailgun's EU region; US domains use
	// https://api.mailgun.net.
	DefaultBaseURL = "https://api.eu.mailgun.net"
	// DefaultTemplate is the stored template's name.
	DefaultTemplate = "order-confirmation"
	// optionsLimit is Mailgun's limit on all o:, h:, v: and t: values of
	// one message together.
	optionsLimit = 16 * 1024
	maxBody      = 1 << 20
)

// Config configures a Client.
type Config struct {
	// BaseURL is the API host; default https://api.eu.mailgun.net (the
	// region is fixed when the sending domain is created).
	BaseURL string
	// APIKey is the account key or a domain sending key.
	APIKey string
	// Domain is the sending domain, e.g. mg.example.com. Message-Ids are
	// built on it.
	Domain string
	// From is the sender, e.g. "Shop <orders@mg.example.com>". It may be
	// empty when the template sets it.
	From string
	// Template is the stored template; default "order-confirmation".
	Template string
	// TemplateVersion selects a template version (t:version) when set.
	TemplateVersion string
	// Subject is sent when set; otherwise the template's subject is used.
	Subject string
	// DefaultLocale is the template's locale variable when the order has
	// none; default "en".
	DefaultLocale string
	// Tags are sent as o:tag.
	Tags []string
	// TestMode sends o:testmode=yes: Mailgun accepts but does not deliver.
	TestMode bool
	// Timeout bounds each HTTP request; default 15 s. Ignored when
	// HTTPClient is set.
	Timeout    time.Duration
	HTTPClient *http.Client
	// Logger is optional; only order ids and message ids are logged.
	Logger *slog.Logger
}

// Validate reports a missing or malformed setting.
func (c Config) Validate() error {
	var errs []error
	if c.APIKey == "" {
		errs = append(errs, errors.New("mailgun: API key is required"))
	}
	if c.Domain == "" || strings.ContainsAny(c.Domain, "/?#@ <>") {
		errs = append(errs, fmt.Errorf("mailgun: sending domain %q is missing or malformed", c.Domain))
	}
	if c.From != "" {
		if _, err := mail.ParseAddress(c.From); err != nil {
			errs = append(errs, fmt.Errorf("mailgun: from address: %w", err))
		}
	}
	if c.BaseURL != "" {
		if !integrations.IsHTTPURL(c.BaseURL) {
			errs = append(errs, fmt.Errorf("mailgun: base URL %q is not an http(s) URL", c.BaseURL))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("mailgun: timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// Client sends confirmation emails. It is safe for concurrent use.
type Client struct {
	cfg Config
	url string
	hc  *http.Client
	log *slog.Logger
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.Template == "" {
		cfg.Template = DefaultTemplate
	}
	if cfg.DefaultLocale == "" {
		cfg.DefaultLocale = "en"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 15 * time.Second
	}
	c := &Client{
		cfg: cfg,
		url: strings.TrimRight(cfg.BaseURL, "/") + "/v3/" + url.PathEscape(cfg.Domain) + "/messages",
		hc:  cfg.HTTPClient,
		log: cfg.Logger,
	}
	c.hc = integrations.HTTPClient(c.hc, cfg.Timeout)
	c.log = integrations.Logger(c.log)
	return c, nil
}

// MessageID is the Message-Id header of the order's confirmation:
// "<OF-…@domain>". It depends on the order only, so every attempt to send
// the same confirmation carries the same id.
func (c *Client) MessageID(o integrations.Order) string {
	n := o.Number
	if n == "" {
		n = integrations.OrderNumber(o.ID)
	}
	return "<" + n + "@" + c.cfg.Domain + ">"
}

// Item is one line of the template's items variable, as the customer saw
// it at checkout, before the line's discount: Stripe's amount_subtotal,
// gross for a price inclusive of tax and net for one exclusive of tax (the
// tax is then added on top, in tax_added). Money is formatted with the
// currency's exponent ("15.00 EUR", "1500 JPY", "1.500 KWD").
type Item struct {
	Description string `json:"description"`
	Quantity    int64  `json:"quantity"`
	// UnitPrice is one unit's price as shown (Total / Quantity); empty
	// when Total does not divide evenly by the quantity.
	UnitPrice string `json:"unit_price,omitempty"`
	// Total is the line's amount as shown, before its discount.
	Total string `json:"total"`
	// Discount is the line's discount, empty when none.
	Discount string `json:"discount,omitempty"`
}

// Variables are the template variables sent in h:X-Mailgun-Variables.
// Mailgun includes this header in the delivered message, so it carries
// nothing the customer may not see.
//
// The amounts are Stripe's, as the customer saw them at checkout, and add
// up: subtotal (Σ item totals) − discount + shipping + tax_added = total.
// Each line and the shipping are shown as priced, gross when inclusive of
// tax and net when exclusive; tax_added is the tax added on top of the
// prices exclusive of tax and vat_included the tax inside the prices
// inclusive of it, so vat_included + tax_added is the tax charged. For an
// order whose prices all include tax, tax_added is 0.
type Variables struct {
	Locale         string `json:"locale"`
	OrderID        string `json:"order_id"`
	OrderNumber    string `json:"order_number"`
	CustomerName   string `json:"customer_name"`
	TrackingNumber string `json:"tracking_number"`
	TrackingURL    string `json:"tracking_url"`
	InvoiceNumber  string `json:"invoice_number"`
	Items          []Item `json:"items"`
	// ItemsOmitted counts lines left out to stay under Mailgun's 16 KB
	// limit for headers and variables.
	ItemsOmitted int    `json:"items_omitted,omitempty"`
	Currency     string `json:"currency"`
	Subtotal     string `json:"subtotal"`
	Discount     string `json:"discount"`
	Shipping     string `json:"shipping"`
	TaxAdded     string `json:"tax_added"`
	VATIncluded  string `json:"vat_included"`
	Total        string `json:"total"`
	// VATNumber is the buyer's VAT number, when it gave one; ReverseCharge
	// says the buyer accounts for the VAT (an EU business buying from
	// another member state), so vat_included and tax_added are 0 and the
	// email should say why.
	VATNumber     string `json:"vat_number,omitempty"`
	ReverseCharge bool   `json:"reverse_charge,omitempty"`
}

// TemplateVariables builds the template variables for an order. It fails
// when the order's amounts would not add up in the email (Order.Check), or
// when a line or the shipping adds to its shown price something other than
// none or all of its tax.
func (c *Client) TemplateVariables(o integrations.Order, s integrations.Shipment, inv integrations.Invoice) (Variables, error) {
	if err := o.Check(); err != nil {
		return Variables{}, err
	}
	cur := o.Currency
	v := Variables{
		Locale:         o.Locale,
		OrderID:        o.ID,
		OrderNumber:    o.Number,
		CustomerName:   o.BuyerName(),
		TrackingNumber: s.TrackingNumber,
		TrackingURL:    s.TrackingURL,
		InvoiceNumber:  inv.Number,
		Items:          make([]Item, 0, len(o.Items)),
		Currency:       strings.ToUpper(cur),
		Total:          integrations.FormatMoney(o.AmountTotal, cur),
		VATNumber:      o.Customer.VATID(),
		ReverseCharge:  o.ReverseCharge(),
	}
	if v.Locale == "" {
		v.Locale = c.cfg.DefaultLocale
	}
	if v.OrderNumber == "" {
		v.OrderNumber = integrations.OrderNumber(o.ID)
	}
	// added is the tax added on top of a shown price: none of it for a
	// price inclusive of tax, all of it for one exclusive of tax.
	var subtotal, discount, shipping, taxAdded, vatIncluded int64
	for i, it := range o.Items {
		shown := it.AmountSubtotal
		added := it.AmountTotal - it.AmountSubtotal + it.AmountDiscount
		if added != 0 && added != it.AmountTax {
			return Variables{}, fmt.Errorf("the email's amounts would not add up: line %d adds %s to its price %s, its tax is %s",
				i+1, integrations.FormatMoney(added, cur), integrations.FormatMoney(shown, cur), integrations.FormatMoney(it.AmountTax, cur))
		}
		item := Item{Description: it.Description, Quantity: it.Quantity, Total: integrations.FormatMoney(shown, cur)}
		if it.Quantity > 0 && shown%it.Quantity == 0 {
			item.UnitPrice = integrations.FormatMoney(shown/it.Quantity, cur)
		}
		if it.AmountDiscount != 0 {
			item.Discount = integrations.FormatMoney(it.AmountDiscount, cur)
		}
		v.Items = append(v.Items, item)
		subtotal += shown
		discount += it.AmountDiscount
		taxAdded += added
		vatIncluded += it.AmountTax - added
	}
	if sc := o.ShippingCost; sc != nil {
		shipping = sc.AmountSubtotal
		added := sc.AmountTotal - sc.AmountSubtotal
		if added != 0 && added != sc.AmountTax {
			return Variables{}, fmt.Errorf("the email's amounts would not add up: shipping adds %s to its price %s, its tax is %s",
				integrations.FormatMoney(added, cur), integrations.FormatMoney(shipping, cur), integrations.FormatMoney(sc.AmountTax, cur))
		}
		taxAdded += added
		vatIncluded += sc.AmountTax - added
	}
	if subtotal-discount+shipping+taxAdded != o.AmountTotal {
		return Variables{}, fmt.Errorf("the email's amounts would not add up: %s − %s + %s + %s ≠ %s",
			integrations.FormatMoney(subtotal, cur), integrations.FormatMoney(discount, cur),
			integrations.FormatMoney(shipping, cur), integrations.FormatMoney(taxAdded, cur),
			integrations.FormatMoney(o.AmountTotal, cur))
	}
	if vatIncluded+taxAdded != o.AmountTax {
		return Variables{}, fmt.Errorf("the email's amounts would not add up: VAT %s included + %s added ≠ %s",
			integrations.FormatMoney(vatIncluded, cur), integrations.FormatMoney(taxAdded, cur),
			integrations.FormatMoney(o.AmountTax, cur))
	}
	v.Subtotal = integrations.FormatMoney(subtotal, cur)
	v.Discount = integrations.FormatMoney(discount, cur)
	v.Shipping = integrations.FormatMoney(shipping, cur)
	v.TaxAdded = integrations.FormatMoney(taxAdded, cur)
	v.VATIncluded = integrations.FormatMoney(vatIncluded, cur)
	return v, nil
}

// SendConfirmation sends the confirmation email for the order and returns
// Mailgun's message id.
func (c *Client) SendConfirmation(ctx context.Context, o integrations.Order, s integrations.Shipment, inv integrations.Invoice) (integrations.Message, error) {
	const op = "send confirmation"
	if o.Customer.Email == "" {
		return integrations.Message{}, integrations.NotSentf(provider, op, "order has no customer email")
	}
	to := (&mail.Address{Name: o.BuyerName(), Address: o.Customer.Email}).String()
	msgID := c.MessageID(o)

	fields := [][2]string{}
	add := func(k, v string) { fields = append(fields, [2]string{k, v}) }
	if c.cfg.From != "" {
		add("from", c.cfg.From)
	}
	add("to", to)
	if c.cfg.Subject != "" {
		add("subject", c.cfg.Subject)
	}
	add("template", c.cfg.Template)
	options := [][2]string{{"h:Message-Id", msgID}, {"v:order_id", o.ID}}
	if c.cfg.TemplateVersion != "" {
		options = append(options, [2]string{"t:version", c.cfg.TemplateVersion})
	}
	for _, t := range c.cfg.Tags {
		options = append(options, [2]string{"o:tag", t})
	}
	if c.cfg.TestMode {
		options = append(options, [2]string{"o:testmode", "yes"})
	}
	used := 0
	for _, kv := range options {
		used += len(kv[1])
	}
	tv, err := c.TemplateVariables(o, s, inv)
	if err != nil {
		return integrations.Message{}, integrations.NotSentf(provider, op, "order %s: %v", o.ID, err)
	}
	vars, err := fitVariables(tv, optionsLimit-used)
	if err != nil {
		return integrations.Message{}, integrations.NotSentf(provider, op, "%v", err)
	}
	fields = append(fields, options...)
	add("h:X-Mailgun-Variables", string(vars))

	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for _, kv := range fields {
		if err := w.WriteField(kv[0], kv[1]); err != nil {
			return integrations.Message{}, integrations.NotSentf(provider, op, "encode form: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		return integrations.Message{}, integrations.NotSentf(provider, op, "encode form: %v", err)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, &body)
	if err != nil {
		return integrations.Message{}, integrations.Permanentf(provider, op, "bad URL")
	}
	req.SetBasicAuth("api", c.cfg.APIKey)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return integrations.Message{}, integrations.NetError(provider, op, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return integrations.Message{}, integrations.NetError(provider, op, err)
	}
	var out struct {
		ID      string `json:"id"`
		Message string `json:"message"`
	}
	decodeErr := json.Unmarshal(respBody, &out)
	if resp.StatusCode/100 != 2 {
		return integrations.Message{}, statusError(op, resp, out.Message)
	}
	if decodeErr != nil || out.ID == "" {
		// Mailgun queues a message with {"id": "<…>", "message": "Queued.
		// Thank you."}. Anything else in a 2xx (a proxy's maintenance
		// page, an empty or truncated body) does not say the message was
		// queued, nor that it was not: the next attempt looks it up by its
		// Message-Id (FindMessage) before sending again.
		c.log.WarnContext(ctx, "mailgun: 2xx answer without a message id; whether the message was queued is unknown", "order_id", o.ID, "status", resp.StatusCode)
		return integrations.Message{}, integrations.InDoubt(provider, op, resp.StatusCode, "no message id (message %s)", msgID)
	}
	c.log.InfoContext(ctx, "mailgun: confirmation queued", "order_id", o.ID, "message_id", out.ID)
	return integrations.Message{MessageID: out.ID}, nil
}

// FindMessage looks the order's confirmation up by its Message-Id in
// Mailgun's events (GET /v3/{domain}/events?message-id=…&event=accepted), so
// a send interrupted by a crash is not made twice. found is false when
// Mailgun has no accepted message with that id. (The events API is not in
// the provider facts this client was written from: UNCONFIRMED beyond
// Mailgun's public documentation of the message-id filter.)
func (c *Client) FindMessage(ctx context.Context, o integrations.Order) (integrations.Message, bool, error) {
	const op = "find message"
	msgID := c.MessageID(o)
	q := url.Values{"message-id": {strings.Trim(msgID, "<>")}, "event": {"accepted"}, "limit": {"1"}}
	u := strings.TrimSuffix(c.url, "/messages") + "/events?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return integrations.Message{}, false, integrations.Permanentf(provider, op, "bad URL")
	}
	req.SetBasicAuth("api", c.cfg.APIKey)
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return integrations.Message{}, false, integrations.NetError(provider, op, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return integrations.Message{}, false, integrations.NetError(provider, op, err)
	}
	var out struct {
		Message string `json:"message"`
		Items   []struct {
			Event string `json:"event"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &out); err != nil && resp.StatusCode/100 == 2 {
		return integrations.Message{}, false, integrations.Transientf(provider, op, "unreadable events answer")
	}
	if resp.StatusCode/100 != 2 {
		return integrations.Message{}, false, statusError(op, resp, out.Message)
	}
	for _, it := range out.Items {
		if it.Event == "accepted" {
			return integrations.Message{MessageID: msgID}, true, nil
		}
	}
	return integrations.Message{}, false, nil
}

// fitVariables encodes the variables in at most limit bytes, leaving out
// item lines from the end if needed.
func fitVariables(v Variables, limit int) ([]byte, error) {
	all := v.Items
	for keep := len(all); keep >= 0; keep-- {
		v.Items = all[:keep]
		v.ItemsOmitted = len(all) - keep
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode variables: %w", err)
		}
		if len(b) <= limit {
			return b, nil
		}
	}
	return nil, fmt.Errorf("template variables exceed Mailgun's %d-byte limit even without items", optionsLimit)
}

// statusError maps a non-2xx answer: 429 and 5xx transient with the delay
// Mailgun asked for, 404 transient (Mailgun documents it as possibly
// transient: its system is eventually consistent), other 4xx permanent.
func statusError(op string, resp *http.Response, msg string) *integrations.Error {
	e := integrations.HTTPError(provider, op, resp, redact(msg))
	switch resp.StatusCode {
	case http.StatusNotFound:
		e.Class = integrations.Transient
	case http.StatusTooManyRequests:
		if e.RetryAfter == 0 {
			e.RetryAfter = rateLimitReset(resp.Header.Get("X-RateLimit-Reset"), time.Now())
		}
	}
	return e
}

// rateLimitReset reads X-RateLimit-Reset, which may be a Unix time in
// seconds or milliseconds, or a number of seconds from now.
func rateLimitReset(v string, now time.Time) time.Duration {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	var d time.Duration
	switch {
	case n > 1e12:
		d = time.UnixMilli(n).Sub(now)
	case n > 1e9:
		d = time.Unix(n, 0).Sub(now)
	default:
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0
	}
	return (d + time.Second - 1).Truncate(time.Second) // whole seconds, rounded up
}

// redact shortens a provider message and hides anything that looks like an
// email address.
func redact(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		if strings.Contains(w, "@") {
			words[i] = "<address>"
		}
	}
	s = strings.Join(words, " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}
