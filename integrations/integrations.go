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
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// OrderModel is the version of the Order model this build writes
// (Order.Model). Version 2 carries what Stripe computed per line, per tax
// and for shipping; an order recorded by the previous version (no "model"
// field, a basis-point rate per line) has Model 0, and the processor reads
// its details from Stripe again before any later step (see DESIGN.md).
const OrderModel = 2

// Order is one paid order, built from Stripe (the Checkout Session with its
// line items, taxes, discounts and shipping cost, or a PaymentIntent made
// without Checkout). Every amount is an integer in the currency's minor
// units, copied from Stripe: nothing is recomputed from rates.
//
// The amounts obey the identities Stripe's own totals do (Check):
// AmountTotal = Σ Items[].AmountTotal + Shipping.AmountTotal and
// AmountTax = Σ Items[].AmountTax + Shipping.AmountTax.
type Order struct {
	// Model is OrderModel for an order built by this version; 0 for one
	// recorded by the previous version.
	Model int `json:"model,omitempty"`
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
	// AmountTotal is what the customer paid, tax and shipping included
	// (the session's amount_total, or the PaymentIntent's amount received).
	AmountTotal int64 `json:"amount_total"`
	// AmountSubtotal is the lines before discounts (and, for prices
	// exclusive of tax, before tax); shipping is not in it.
	AmountSubtotal int64 `json:"amount_subtotal"`
	// AmountDiscount, AmountTax and AmountShipping are Stripe's
	// total_details: every discount, every tax (inclusive taxes too) and
	// the shipping before tax.
	AmountDiscount int64      `json:"amount_discount,omitempty"`
	AmountTax      int64      `json:"amount_tax"`
	AmountShipping int64      `json:"amount_shipping"`
	Items          []LineItem `json:"items"`
	// ShippingCost is what Stripe charged for shipping; nil when the order
	// has none.
	ShippingCost *ShippingCost `json:"shipping_cost,omitempty"`
	// Discounts and Taxes are the session's breakdown: each discount with
	// its total amount, each tax rate with its total amount.
	Discounts []Discount `json:"discounts,omitempty"`
	Taxes     []Tax      `json:"taxes,omitempty"`
	// Customer is the buyer (Checkout's customer_details): who pays and is
	// invoiced. Shipping is the recipient (shipping_details): where the
	// goods go. For a gift they differ.
	Customer Customer `json:"customer"`
	Shipping Address  `json:"shipping"`
	// Locale is the customer's language, BCP 47: metadata["locale"], else
	// the Checkout page's locale, else (locale "auto") the language of the
	// destination country when it has one language (CountryLocale).
	Locale   string            `json:"locale,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Description is the PaymentIntent's description.
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// Tax behaviours of a price or shipping rate (Stripe's tax_behavior).
const (
	TaxInclusive   = "inclusive"
	TaxExclusive   = "exclusive"
	TaxUnspecified = "unspecified"
)

// Taxability reasons the pipeline acts on; Stripe's list is longer and may
// grow, so code never switches on it exhaustively.
const (
	ReasonReverseCharge = "reverse_charge"
)

// LineItem is one line of an order, with Stripe's amounts:
// AmountTotal = AmountSubtotal − AmountDiscount (+ AmountTax when the price
// is exclusive of tax). The line's gross is AmountTotal and its net
// AmountTotal − AmountTax, whatever the tax behaviour.
type LineItem struct {
	ID          string `json:"id,omitempty"`  // Stripe's line item id (li_...)
	SKU         string `json:"sku,omitempty"` // product id, else price id
	Description string `json:"description"`
	Quantity    int64  `json:"quantity"`
	// UnitAmount is the price's unit_amount (inclusive of tax when
	// TaxBehavior is inclusive); informational, never multiplied.
	UnitAmount int64 `json:"unit_amount"`
	// UnitAmountDecimal is the price's unit_amount_decimal, in minor units
	// ("624.75": 6.2475 EUR), when the price is in fractions of the minor
	// unit and so has no unit_amount; informational, never multiplied.
	UnitAmountDecimal string `json:"unit_amount_decimal,omitempty"`
	AmountSubtotal    int64  `json:"amount_subtotal"`
	AmountDiscount    int64  `json:"amount_discount,omitempty"`
	AmountTax         int64  `json:"amount_tax"`
	AmountTotal       int64  `json:"amount_total"`
	TaxBehavior       string `json:"tax_behavior,omitempty"`
	// Taxes are the line's taxes, one per rate (several for US state,
	// county and city tax); Discounts the discounts applied to it.
	Taxes     []Tax      `json:"taxes,omitempty"`
	Discounts []Discount `json:"discounts,omitempty"`
	// The goods' customs data, for a parcel that leaves the EU VAT area:
	// the metadata hs_code, origin_country and weight_grams of the price,
	// else of its product. HSCode is the tariff number as written,
	// OriginCountry an ISO 3166-1 alpha-2 code, WeightGrams one unit's
	// weight (0: not known).
	HSCode        string `json:"hs_code,omitempty"`
	OriginCountry string `json:"origin_country,omitempty"`
	WeightGrams   int64  `json:"weight_grams,omitempty"`
}

// Tax is one tax of a line, of the shipping or of the whole order.
type Tax struct {
	// Amount is the tax Stripe computed; TaxableAmount what it was
	// computed on.
	Amount        int64 `json:"amount"`
	TaxableAmount int64 `json:"taxable_amount,omitempty"`
	// Percentage is the rate as the exact decimal Stripe sent, e.g.
	// "25.5" or "4.5" (never rounded to basis points).
	Percentage string `json:"percentage"`
	Inclusive  bool   `json:"inclusive,omitempty"`
	// TaxabilityReason is Stripe's, e.g. standard_rated, reverse_charge,
	// not_collecting; empty for manual tax rates.
	TaxabilityReason string `json:"taxability_reason,omitempty"`
	RateID           string `json:"rate_id,omitempty"`
	DisplayName      string `json:"display_name,omitempty"`
	Jurisdiction     string `json:"jurisdiction,omitempty"`
	Country          string `json:"country,omitempty"`
	State            string `json:"state,omitempty"`
	TaxType          string `json:"tax_type,omitempty"`
}

// Discount is one discount (a coupon or promotion code) with its amount.
type Discount struct {
	Amount        int64  `json:"amount"`
	CouponID      string `json:"coupon_id,omitempty"`
	Name          string `json:"name,omitempty"` // the coupon's name
	PromotionCode string `json:"promotion_code,omitempty"`
	// PercentOff is the coupon's percentage as an exact decimal ("10"),
	// AmountOff its fixed amount in minor units; informational.
	PercentOff string `json:"percent_off,omitempty"`
	AmountOff  int64  `json:"amount_off,omitempty"`
}

// ShippingCost is what Stripe charged for shipping, with the same rule as
// a line: AmountTotal is gross, AmountTotal − AmountTax net.
type ShippingCost struct {
	AmountSubtotal int64  `json:"amount_subtotal"`
	AmountTax      int64  `json:"amount_tax"`
	AmountTotal    int64  `json:"amount_total"`
	TaxBehavior    string `json:"tax_behavior,omitempty"`
	RateID         string `json:"rate_id,omitempty"`
	Name           string `json:"name,omitempty"` // the shipping rate's display name
	Taxes          []Tax  `json:"taxes,omitempty"`
}

// Customer is who bought: the buyer, invoiced at Address.
type Customer struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	Phone string `json:"phone,omitempty"`
	// Address is the buyer's billing address.
	Address Address `json:"address,omitzero"`
	// TaxExempt is Stripe's none, exempt or reverse.
	TaxExempt string  `json:"tax_exempt,omitempty"`
	TaxIDs    []TaxID `json:"tax_ids,omitempty"`
}

// TaxID is a buyer's tax id, e.g. {eu_vat DE123456789}.
type TaxID struct {
	Type  string `json:"type"`
	Value string `json:"value"`
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
	Phone      string `json:"phone,omitempty"`
}

// IsZero reports whether the address is empty.
func (a Address) IsZero() bool { return a == Address{} }

// Street is the address's street lines joined: "Line1, Line2".
func (a Address) Street() string {
	if a.Line2 == "" {
		return a.Line1
	}
	if a.Line1 == "" {
		return a.Line2
	}
	return a.Line1 + ", " + a.Line2
}

// reaches reports whether a letter can reach the address: it has a street
// line or a city, not only the country and postal code a card form asks
// for.
func (a Address) reaches() bool { return a.Line1 != "" || a.Line2 != "" || a.City != "" }

// LargestFirst reports whether s is written in a script that puts the
// larger part first: Han (Chinese, Japanese kanji, Korean hanja),
// Hiragana, Katakana or Hangul write a name family name first ("山田 花子")
// and an address from the prefecture down (東京都千代田区).
func LargestFirst(s string) bool {
	for _, r := range s {
		if unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) {
			return true
		}
	}
	return false
}

// BillingAddress is where the buyer is invoiced: the customer's billing
// address when Stripe collected one a letter reaches. By default Checkout
// collects a billing address only where the payment needs it
// (billing_address_collection "auto"): a country, perhaps a postal code.
// Such a part of an address, when the shipping address agrees with it (the
// same country, state and postal code where given) and goes to the buyer (the
// same name, ignoring case, accents and punctuation, or no name on
// either), is completed by the shipping address, under the buyer's name.
// A part that disagrees, or goods sent to someone else (a gift), keeps the
// part: the buyer's street is not known. With no billing address at all
// (a PaymentIntent without billing details, customer_details.address
// null) it is the shipping address when that goes to the buyer (or either
// has no name), and for a gift only the buyer's name: the recipient's
// address is not the buyer's, and would overwrite the one a CRM has.
func (o Order) BillingAddress() Address {
	a := o.Customer.Address
	if a.IsZero() {
		if sameName(o.BuyerName(), o.Shipping.Name) {
			return o.Shipping
		}
		return Address{Name: o.BuyerName()}
	}
	if a.Name == "" {
		a.Name = o.Customer.Name
	}
	if s := o.Shipping; !a.reaches() && s.reaches() && partOf(a, s) && sameName(o.BuyerName(), s.Name) {
		if a.Name != "" {
			s.Name = a.Name
		}
		s.Phone = ""
		return s
	}
	return a
}

// Destination is the address the goods go to: the shipping address when
// it has a country, else the buyer's (BillingAddress).
func (o Order) Destination() Address {
	if o.Shipping.Country != "" {
		return o.Shipping
	}
	return o.BillingAddress()
}

// partOf reports whether the country, state and postal code of part,
// where given, are those of whole.
func partOf(part, whole Address) bool {
	if part.Country != "" && !strings.EqualFold(part.Country, whole.Country) {
		return false
	}
	if part.State != "" && !strings.EqualFold(part.State, whole.State) {
		return false
	}
	return part.PostalCode == "" || foldKey(part.PostalCode) == foldKey(whole.PostalCode)
}

// sameName reports whether two names are one person's as typed in two
// forms ("SANNA OHMAN" on the card, "Sanna Öhman" on the parcel); an empty
// name matches any.
func sameName(a, b string) bool {
	a, b = foldKey(a), foldKey(b)
	return a == "" || b == "" || a == b
}

// foldKey is s in lower case with its accents, spaces and punctuation
// removed, and ø, æ, ß and the like as ASCII writes them:
// "Öhman-Kärkkäinen" → "ohmankarkkainen", "Søren" → "soren",
// "SE-111 56" → "se11156".
func foldKey(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		r = unicode.ToLower(r)
		switch {
		case unicode.Is(unicode.Mn, r):
		case folded[r] != "":
			b.WriteString(folded[r])
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// folded are the Latin letters that have no accent to remove, as a card's
// ASCII writes them.
var folded = map[rune]string{'ø': "o", 'æ': "ae", 'œ': "oe", 'ß': "ss", 'ł': "l", 'đ': "d", 'ð': "d", 'þ': "th", 'ı': "i"}

// BuyerName is the buyer's name, else the billing or shipping name.
func (o Order) BuyerName() string {
	switch {
	case o.Customer.Name != "":
		return o.Customer.Name
	case o.Customer.Address.Name != "":
		return o.Customer.Address.Name
	}
	return o.Shipping.Name
}

// VATID returns the buyer's VAT number: the first tax id of an EU, GB, CH
// or NO VAT type, else the first tax id; "" when the buyer gave none.
func (c Customer) VATID() string {
	for _, t := range c.TaxIDs {
		switch t.Type {
		case "eu_vat", "gb_vat", "ch_vat", "no_vat":
			return t.Value
		}
	}
	if len(c.TaxIDs) > 0 {
		return c.TaxIDs[0].Value
	}
	return ""
}

// ReverseCharge reports whether the buyer accounts for the VAT: Stripe
// marked a tax reverse_charge, or the customer is tax_exempt "reverse".
func (o Order) ReverseCharge() bool {
	if o.Customer.TaxExempt == "reverse" {
		return true
	}
	for _, it := range o.Items {
		for _, t := range it.Taxes {
			if t.TaxabilityReason == ReasonReverseCharge {
				return true
			}
		}
	}
	if o.ShippingCost != nil {
		for _, t := range o.ShippingCost.Taxes {
			if t.TaxabilityReason == ReasonReverseCharge {
				return true
			}
		}
	}
	return false
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
	// CustomsLocation is where the label store put the customs
	// declaration (CN23) the carrier sent apart from the label, for a
	// parcel leaving the EU; empty when there is none.
	CustomsLocation string `json:"customs_location,omitempty"`
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

// Progress is where an order stands after one of its state writes, for a
// reporter that shows it to people (the production log's status field).
type Progress struct {
	OrderID string
	// Order is nil until the details step has read it.
	Order *Order
	// Status is the order's status: in_progress, completed,
	// dead_lettered, parked, refunded, awaiting_payment or
	// payment_failed.
	Status string
	// CompletedSteps are the steps done, in chain order.
	CompletedSteps []string
	// FailedStep and Failure say where and why a dead-lettered order
	// stopped; empty otherwise.
	FailedStep string
	Failure    string
	At         time.Time
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

// countryLocales are the countries where one language is spoken by nearly
// everyone, with that language. Countries of several (Belgium,
// Switzerland, Luxembourg, Malta, Canada) have none.
var countryLocales = map[string]string{
	"AT": "de-AT", "AX": "sv-AX", "BG": "bg-BG", "CY": "el-CY", "CZ": "cs-CZ",
	"DE": "de-DE", "DK": "da-DK", "EE": "et-EE", "ES": "es-ES", "FI": "fi-FI",
	"FR": "fr-FR", "GB": "en-GB", "GR": "el-GR", "HR": "hr-HR", "HU": "hu-HU",
	"IE": "en-IE", "IS": "is-IS", "IT": "it-IT", "JP": "ja-JP", "KR": "ko-KR",
	"LT": "lt-LT", "LV": "lv-LV", "NL": "nl-NL", "NO": "nb-NO", "PL": "pl-PL",
	"PT": "pt-PT", "RO": "ro-RO", "SE": "sv-SE", "SI": "sl-SI", "SK": "sk-SK",
	"US": "en-US",
}

// CountryLocale is the language of a country (ISO 3166-1 alpha-2) where
// one is spoken by nearly everyone, as a BCP 47 tag ("SE" → "sv-SE"), and
// "" for any other: an order without a locale of its own then gets the
// shop's configured default.
func CountryLocale(country string) string {
	return countryLocales[strings.ToUpper(country)]
}
