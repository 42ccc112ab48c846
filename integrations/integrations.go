// Package integrations holds what every provider client shares: the order
// model handed from the Stripe order-details step to the other steps, the
// step result types, money in integer minor units, and the typed error that
// says whether a failure is permanent or transient. Each provider's client
// lives in its own subpackage (integrations/stripe, integrations/zoho, ...).
package integrations

import (
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Order is one paid order, built from Stripe (PaymentIntent, its Checkout
// Session and line items). Every amount is in the currency's minor units.
type Order struct {
	// ID is the order key: the PaymentIntent id (pi_...), or for a Checkout
	// Session without one, the session id (cs_...).
	ID                string `json:"id"`
	PaymentIntentID   string `json:"payment_intent_id,omitempty"`
	CheckoutSessionID string `json:"checkout_session_id,omitempty"`
	// Number is a short human-readable order number derived from ID; it is
	// stable, so references built from it (invoice number, shipment
	// reference, Message-Id) are the same on every retry.
	Number   string `json:"number"`
	Currency string `json:"currency"` // ISO 4217, lower case as Stripe sends it
	// AmountTotal is what the customer paid, tax and shipping included.
	AmountTotal    int64             `json:"amount_total"`
	AmountSubtotal int64             `json:"amount_subtotal"`
	AmountTax      int64             `json:"amount_tax"`
	AmountShipping int64             `json:"amount_shipping"`
	Items          []LineItem        `json:"items"`
	Customer       Customer          `json:"customer"`
	Shipping       Address           `json:"shipping"`
	Locale         string            `json:"locale,omitempty"` // BCP 47, from metadata["locale"]
	Metadata       map[string]string `json:"metadata,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
}

// LineItem is one line of an order.
type LineItem struct {
	SKU         string `json:"sku,omitempty"` // price or product id
	Description string `json:"description"`
	Quantity    int64  `json:"quantity"`
	UnitAmount  int64  `json:"unit_amount"`  // minor units, before tax
	AmountTotal int64  `json:"amount_total"` // minor units, tax included
	AmountTax   int64  `json:"amount_tax"`
	// TaxRateBasisPoints is the VAT rate in hundredths of a percent
	// (2550 = 25.5 %); 0 when Stripe had no tax rate for the line.
	TaxRateBasisPoints int64 `json:"tax_rate_bp"`
}

// Customer is who bought.
type Customer struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	Phone string `json:"phone,omitempty"`
}

// Address is a postal address; Country is ISO 3166-1 alpha-2.
type Address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	PostalCode string `json:"postal_code"`
	City       string `json:"city"`
	State      string `json:"state,omitempty"`
	Country    string `json:"country"`
}

// CRMResult is what the CRM step created or updated.
type CRMResult struct {
	ContactID string `json:"contact_id"`
	DealID    string `json:"deal_id"`
}

// ProductionLogResult is the production-log row for the order.
type ProductionLogResult struct {
	RecordID string `json:"record_id"`
}

// Shipment is a booked shipment with its label.
type Shipment struct {
	ShipmentID     string `json:"shipment_id"`
	TrackingNumber string `json:"tracking_number"` // the item id
	TrackingURL    string `json:"tracking_url"`
	LabelLocation  string `json:"label_location"` // where the label store put the PDF
}

// Invoice is an invoice created in the accounting system.
type Invoice struct {
	Number     string `json:"number"`      // our invoice number, derived from the order
	ProviderID string `json:"provider_id"` // the accounting system's own id
}

// Message is a sent email.
type Message struct {
	MessageID string `json:"message_id"`
}

// Alert is a message for the humans who run the shop.
type Alert struct {
	OrderID string
	Step    string
	Text    string
}

// OrderNumber derives the short human-readable order number from the order
// key: "OF-" and the last 10 characters of the id, upper-cased. It is a pure
// function of the key, so every reference built from it is stable.
func OrderNumber(orderID string) string {
	s := orderID
	if i := strings.LastIndexByte(s, '_'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 10 {
		s = s[len(s)-10:]
	}
	return "OF-" + strings.ToUpper(s)
}

// Transport is the HTTP transport every provider client uses unless given
// an http.Client of its own. Go's default keeps only two idle connections
// per host, so a processor with hundreds of orders in flight would open and
// close a connection for most calls; this one keeps enough for them.
var Transport http.RoundTripper = &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	ForceAttemptHTTP2:     true,
	MaxIdleConns:          1024,
	MaxIdleConnsPerHost:   256,
	IdleConnTimeout:       90 * time.Second,
	TLSHandshakeTimeout:   10 * time.Second,
	ExpectContinueTimeout: time.Second,
}

// HTTPClient returns hc, or, when it is nil, a client on Transport whose
// requests time out after timeout: what every provider client uses.
func HTTPClient(hc *http.Client, timeout time.Duration) *http.Client {
	if hc != nil {
		return hc
	}
	return &http.Client{Timeout: timeout, Transport: Transport}
}

// Logger returns l, or a logger that discards everything when l is nil.
func Logger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// IsHTTPURL reports whether raw is an absolute http or https URL with a
// host: what every client accepts as a base URL.
func IsHTTPURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
