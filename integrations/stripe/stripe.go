// Package stripe reads a paid order from Stripe: the Checkout Session that
// created the PaymentIntent, with its line items, taxes, discounts, tax and
// discount breakdown and shipping cost, turned into an integrations.Order
// whose amounts are Stripe's own integers (minor units), never recomputed.
// A PaymentIntent made without Checkout becomes an order of one line.
//
// The client uses stripe-go v76 with its own backend (no package-level
// stripe.Key or backend), so several clients with different keys or base URLs
// can live in one process, and stripe-go's own network retries are off: the
// processor owns retries and backoff. Responses are decoded in one pass
// (decode.go), with encoding/json's result.
//
// Requests sent for OrderDetails("pi_…"), one for a Checkout order:
//
//	GET /v1/checkout/sessions?limit=1&payment_intent=pi_…&expand[]=data.line_items&expand[]=data.line_items.data.taxes
//	    &expand[]=data.line_items.data.discounts&expand[]=data.total_details.breakdown&expand[]=data.shipping_cost.taxes
//	    &expand[]=data.shipping_cost.shipping_rate&expand[]=data.payment_intent
//	GET /v1/checkout/sessions/cs_…/line_items?expand[]=data.taxes&expand[]=data.discounts&limit=100&starting_after=li_…
//	    (only when the expanded list has more; further pages likewise)
//	GET /v1/payment_intents/pi_…?expand[]=latest_charge   (only when no session created the PaymentIntent)
//
// and for OrderDetails("cs_…") the session itself with the same expansions
// (without the "data." prefix), then the further line-item pages if any.
// Expansions are at most four levels deep, Stripe's limit.
//
// Every request carries "Authorization: Bearer <secret key>" and
// "Stripe-Version: 2023-10-16".
package stripe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/checkout/session"
	"github.com/stripe/stripe-go/v76/paymentintent"

	"github.com/orderflow/orderflow/integrations"
)

const provider = "stripe"

// DefaultBaseURL is Stripe's API host.
const DefaultBaseURL = "https://api.stripe.com"

// Config configures a Client.
type Config struct {
	// BaseURL is the API root; default https://api.stripe.com. Point it at
	// stripe-mock or the provider simulator in tests and dev mode.
	BaseURL string
	// SecretKey is the restricted or secret API key (rk_… or sk_…). It needs
	// read access to PaymentIntents and Checkout Sessions.
	SecretKey string
	// Timeout bounds each HTTP request; default 10 s. Ignored when
	// HTTPClient is set (its own Timeout applies).
	Timeout time.Duration
	// HTTPClient is optional.
	HTTPClient *http.Client
	// Logger is optional; nothing but order ids is logged.
	Logger *slog.Logger
	// ProductCustoms reads, for a Checkout order whose goods leave the EU
	// VAT area, the customs data of its lines' products (their metadata
	// hs_code, origin_country, weight_grams), with one more call for such
	// an order. For a carrier that declares customs (DHL); a price's own
	// metadata is read for every order at no cost.
	ProductCustoms bool
}

// Validate reports a missing or malformed setting.
func (c Config) Validate() error {
	if c.SecretKey == "" {
		return errors.New("stripe: secret key is required")
	}
	if c.BaseURL != "" {
		if !integrations.IsHTTPURL(c.BaseURL) {
			return fmt.Errorf("stripe: base URL %q is not an http(s) URL", c.BaseURL)
		}
	}
	if c.Timeout < 0 {
		return errors.New("stripe: timeout must not be negative")
	}
	return nil
}

// Client looks up orders. It is safe for concurrent use.
type Client struct {
	productCustoms bool
	pis            paymentintent.Client
	sessions       session.Client
	log            *slog.Logger
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	hc := integrations.HTTPClient(cfg.HTTPClient, timeout)
	log := integrations.Logger(cfg.Logger)
	var backend stripego.Backend = stripego.GetBackendWithConfig(stripego.APIBackend, &stripego.BackendConfig{
		URL:               stripego.String(base),
		HTTPClient:        hc,
		MaxNetworkRetries: stripego.Int64(0),
		// stripe-go's logger prints request failures with their messages;
		// errors reach our log through the processor instead.
		LeveledLogger:   &stripego.LeveledLogger{Level: stripego.LevelNull},
		EnableTelemetry: stripego.Bool(false),
	})
	if impl, ok := backend.(*stripego.BackendImplementation); ok {
		backend = decodingBackend{impl}
	}
	return &Client{
		productCustoms: cfg.ProductCustoms,
		pis:            paymentintent.Client{B: backend, Key: cfg.SecretKey},
		sessions:       session.Client{B: backend, Key: cfg.SecretKey},
		log:            log,
	}, nil
}

// OrderDetails returns the order for a PaymentIntent id (pi_…) or a Checkout
// Session id (cs_…). The order's ID and Number are derived from orderID.
// An order whose amounts do not add up (Order.Check) is a permanent error:
// every later step would write wrong data.
func (c *Client) OrderDetails(ctx context.Context, orderID string) (integrations.Order, error) {
	var o integrations.Order
	var err error
	switch {
	case strings.HasPrefix(orderID, "pi_"):
		o, err = c.fromPaymentIntent(ctx, orderID)
	case strings.HasPrefix(orderID, "cs_"):
		o, err = c.fromSession(ctx, orderID)
	default:
		return integrations.Order{}, integrations.Permanentf(provider, "order details", "order id %q is neither a PaymentIntent nor a Checkout Session id", orderID)
	}
	if err != nil {
		return integrations.Order{}, err
	}
	if err := o.Check(); err != nil {
		return integrations.Order{}, integrations.Permanentf(provider, "order details", "order %s: Stripe's amounts do not add up: %v", orderID, err)
	}
	return o, nil
}

// sessionExpand are the expansions of a Checkout Session that the order
// needs; Stripe returns none of them by default. prefix is "data." for a
// session in a list. The deepest, data.line_items.data.taxes, is four
// levels: Stripe's limit.
func sessionExpand(prefix string) []string {
	return []string{
		prefix + "line_items",
		prefix + "line_items.data.taxes",
		prefix + "line_items.data.discounts",
		prefix + "total_details.breakdown",
		prefix + "shipping_cost.taxes",
		prefix + "shipping_cost.shipping_rate",
		prefix + "payment_intent",
	}
}

func (c *Client) fromPaymentIntent(ctx context.Context, id string) (integrations.Order, error) {
	// One call for a Checkout order: the session found by its PaymentIntent,
	// with its line items (their taxes and discounts), the tax and discount
	// breakdown, the shipping cost's taxes and rate, and the PaymentIntent
	// itself expanded. Stripe's rate limit counts calls, so a flash sale
	// costs a third of the calls of reading each object on its own.
	cs, err := c.sessionForPaymentIntent(ctx, id)
	if err != nil {
		return integrations.Order{}, err
	}
	if cs == nil {
		// A PaymentIntent made without Checkout: no line items, taxes or
		// discounts exist; the order is one line of its amount.
		c.log.DebugContext(ctx, "stripe: no checkout session for payment intent", "order_id", id)
		pp := &stripego.PaymentIntentParams{}
		pp.AddExpand("latest_charge")
		pp.Context = ctx
		pi, err := c.pis.Get(id, pp)
		if err != nil {
			return integrations.Order{}, classify("get payment intent", err)
		}
		return buildPaymentIntentOrder(id, pi), nil
	}
	items, err := c.sessionItems(ctx, cs)
	if err != nil {
		return integrations.Order{}, err
	}
	var pi *stripego.PaymentIntent
	if cs.PaymentIntent != nil && cs.PaymentIntent.Object == "payment_intent" {
		pi = cs.PaymentIntent // expanded
	}
	if err := partialCapture(id, cs, pi); err != nil {
		return integrations.Order{}, err
	}
	o := buildSessionOrder(id, cs, pi, items)
	if err := c.readProductCustoms(ctx, &o); err != nil {
		return integrations.Order{}, err
	}
	return o, nil
}

func (c *Client) fromSession(ctx context.Context, id string) (integrations.Order, error) {
	sp := &stripego.CheckoutSessionParams{}
	for _, e := range sessionExpand("") {
		sp.AddExpand(e)
	}
	sp.Context = ctx
	cs, err := c.sessions.Get(id, sp)
	if err != nil {
		return integrations.Order{}, classify("get checkout session", err)
	}
	items, err := c.sessionItems(ctx, cs)
	if err != nil {
		return integrations.Order{}, err
	}
	var pi *stripego.PaymentIntent
	if cs.PaymentIntent != nil && cs.PaymentIntent.Object == "payment_intent" {
		pi = cs.PaymentIntent
	}
	if err := partialCapture(id, cs, pi); err != nil {
		return integrations.Order{}, err
	}
	o := buildSessionOrder(id, cs, pi, items)
	if err := c.readProductCustoms(ctx, &o); err != nil {
		return integrations.Order{}, err
	}
	return o, nil
}

// partialCapture refuses a Checkout order whose PaymentIntent, authorized
// for capture later (capture_method manual), was captured for less than
// the session's total (amount_to_capture): the customer paid less than its
// lines and shipping add up to, and nothing says which goods the capture
// covers, so no invoice, label or email of it could be right. The order
// is dead-lettered at its first step, before anything is sent.
func partialCapture(id string, cs *stripego.CheckoutSession, pi *stripego.PaymentIntent) error {
	if pi == nil || pi.Status != stripego.PaymentIntentStatusSucceeded || pi.AmountReceived == 0 || pi.AmountReceived >= cs.AmountTotal {
		return nil
	}
	cur := strings.ToLower(string(cs.Currency))
	return integrations.Permanentf(provider, "order details",
		"order %s: Stripe captured %s of the order's %s (a partial capture): which goods were paid for is not known; invoice and ship it by hand, or refund it",
		id, integrations.FormatAmount(pi.AmountReceived, cur), integrations.FormatMoney(cs.AmountTotal, cur))
}

// sessionItems returns every line item of the session: the expanded first
// page, then the following pages (GET …/line_items?starting_after=…), or
// every page when the session came without its line items.
func (c *Client) sessionItems(ctx context.Context, cs *stripego.CheckoutSession) ([]*stripego.LineItem, error) {
	var items []*stripego.LineItem
	after := ""
	if cs.LineItems != nil {
		items = append(items, cs.LineItems.Data...)
		if !cs.LineItems.HasMore {
			return items, nil
		}
		if len(items) > 0 {
			after = items[len(items)-1].ID
		}
	}
	rest, err := c.lineItems(ctx, cs.ID, after)
	if err != nil {
		return nil, err
	}
	return append(items, rest...), nil
}

// sessionForPaymentIntent finds the Checkout Session that created the
// PaymentIntent, expanded as sessionExpand lists:
// GET /v1/checkout/sessions?payment_intent=…&limit=1&expand[]=data.line_items&…
// It returns nil when there is none.
func (c *Client) sessionForPaymentIntent(ctx context.Context, piID string) (*stripego.CheckoutSession, error) {
	lp := &stripego.CheckoutSessionListParams{PaymentIntent: stripego.String(piID)}
	lp.Limit = stripego.Int64(1)
	for _, e := range sessionExpand("data.") {
		lp.AddExpand(e)
	}
	lp.Context = ctx
	it := c.sessions.List(lp)
	var cs *stripego.CheckoutSession
	if it.Next() {
		cs = it.CheckoutSession()
	}
	if err := it.Err(); err != nil {
		return nil, classify("find checkout session", err)
	}
	return cs, nil
}

// lineItems reads the session's line items after the item with id after
// ("" from the start), 100 per page, with their taxes and discounts
// expanded.
func (c *Client) lineItems(ctx context.Context, sessionID, after string) ([]*stripego.LineItem, error) {
	lp := &stripego.CheckoutSessionListLineItemsParams{Session: stripego.String(sessionID)}
	lp.Limit = stripego.Int64(100)
	if after != "" {
		lp.StartingAfter = stripego.String(after)
	}
	lp.AddExpand("data.taxes")
	lp.AddExpand("data.discounts")
	lp.Context = ctx
	it := c.sessions.ListLineItems(lp)
	var items []*stripego.LineItem
	for it.Next() {
		items = append(items, it.LineItem())
	}
	if err := it.Err(); err != nil {
		return nil, classify("list line items", err)
	}
	return items, nil
}

// buildSessionOrder maps a Checkout Session (and its PaymentIntent, when
// expanded) to the order model: the session's amounts, the buyer from
// customer_details, the recipient from shipping_details.
func buildSessionOrder(id string, cs *stripego.CheckoutSession, pi *stripego.PaymentIntent, items []*stripego.LineItem) integrations.Order {
	o := integrations.Order{Model: integrations.OrderModel, ID: id, Number: integrations.OrderNumber(id), Metadata: map[string]string{}}
	o.CheckoutSessionID = cs.ID
	o.Currency = strings.ToLower(string(cs.Currency))
	o.AmountTotal = cs.AmountTotal
	o.AmountSubtotal = cs.AmountSubtotal
	if pi != nil {
		o.PaymentIntentID = pi.ID
		o.Description = pi.Description
		for k, v := range pi.Metadata {
			o.Metadata[k] = v
		}
		if o.Currency == "" {
			o.Currency = strings.ToLower(string(pi.Currency))
		}
	} else if cs.PaymentIntent != nil {
		o.PaymentIntentID = cs.PaymentIntent.ID
	}
	if td := cs.TotalDetails; td != nil {
		o.AmountDiscount = td.AmountDiscount
		o.AmountTax = td.AmountTax
		o.AmountShipping = td.AmountShipping
		if b := td.Breakdown; b != nil {
			for _, d := range b.Discounts {
				if d != nil {
					o.Discounts = append(o.Discounts, discount(d.Amount, d.Discount))
				}
			}
			for _, t := range b.Taxes {
				if t != nil {
					o.Taxes = append(o.Taxes, tax(t.Amount, t.TaxableAmount, string(t.TaxabilityReason), t.Rate))
				}
			}
		}
	}
	if sc := cs.ShippingCost; sc != nil {
		s := &integrations.ShippingCost{AmountSubtotal: sc.AmountSubtotal, AmountTax: sc.AmountTax, AmountTotal: sc.AmountTotal}
		if r := sc.ShippingRate; r != nil {
			s.RateID, s.Name, s.TaxBehavior = r.ID, r.DisplayName, string(r.TaxBehavior)
		}
		for _, t := range sc.Taxes {
			if t != nil {
				s.Taxes = append(s.Taxes, tax(t.Amount, t.TaxableAmount, string(t.TaxabilityReason), t.Rate))
			}
		}
		o.ShippingCost = s
	}
	// The buyer is who filled in Checkout; customer_email is only what the
	// shop pre-filled.
	o.Customer.Email = cs.CustomerEmail
	if d := cs.CustomerDetails; d != nil {
		if d.Email != "" {
			o.Customer.Email = d.Email
		}
		o.Customer.Name = d.Name
		o.Customer.Phone = d.Phone
		if d.Address != nil {
			o.Customer.Address = address(d.Name, "", d.Address)
		}
		o.Customer.TaxExempt = string(d.TaxExempt)
		for _, t := range d.TaxIDs {
			if t != nil && t.Value != "" {
				o.Customer.TaxIDs = append(o.Customer.TaxIDs, integrations.TaxID{Type: string(t.Type), Value: t.Value})
			}
		}
	}
	if o.Customer.Email == "" && pi != nil {
		o.Customer.Email = pi.ReceiptEmail
	}
	switch {
	case cs.ShippingDetails != nil && cs.ShippingDetails.Address != nil:
		sd := cs.ShippingDetails
		o.Shipping = address(sd.Name, sd.Phone, sd.Address)
	case pi != nil && pi.Shipping != nil && pi.Shipping.Address != nil:
		o.Shipping = address(pi.Shipping.Name, pi.Shipping.Phone, pi.Shipping.Address)
	case !o.Customer.Address.IsZero():
		// No shipping collected: the goods go to the buyer.
		o.Shipping = o.Customer.Address
		o.Shipping.Phone = o.Customer.Phone
	}
	if o.Customer.Name == "" {
		o.Customer.Name = o.Shipping.Name
	}
	for k, v := range cs.Metadata {
		o.Metadata[k] = v
	}
	if cs.Created != 0 {
		o.CreatedAt = time.Unix(cs.Created, 0).UTC()
	} else if pi != nil && pi.Created != 0 {
		o.CreatedAt = time.Unix(pi.Created, 0).UTC()
	}
	if cs.Locale != "" && cs.Locale != "auto" {
		o.Locale = cs.Locale
	}
	finish(&o)
	for _, li := range items {
		if li != nil {
			o.Items = append(o.Items, lineItem(li))
		}
	}
	return o
}

// buildPaymentIntentOrder maps a PaymentIntent made without Checkout: one
// line of its amount and description, no tax (Stripe computed none); the
// buyer from the latest charge's billing details, the recipient from its
// shipping.
func buildPaymentIntentOrder(id string, pi *stripego.PaymentIntent) integrations.Order {
	o := integrations.Order{Model: integrations.OrderModel, ID: id, Number: integrations.OrderNumber(id), Metadata: map[string]string{}}
	o.PaymentIntentID = pi.ID
	o.Currency = strings.ToLower(string(pi.Currency))
	o.AmountTotal = pi.Amount
	if pi.AmountReceived > 0 {
		o.AmountTotal = pi.AmountReceived
	}
	o.AmountSubtotal = o.AmountTotal
	o.Description = pi.Description
	o.Customer.Email = pi.ReceiptEmail
	if ch := pi.LatestCharge; ch != nil && ch.BillingDetails != nil {
		b := ch.BillingDetails
		o.Customer.Name, o.Customer.Phone = b.Name, b.Phone
		if b.Email != "" {
			o.Customer.Email = b.Email
		}
		if b.Address != nil && (b.Address.Line1 != "" || b.Address.City != "" || b.Address.PostalCode != "") {
			o.Customer.Address = address(b.Name, "", b.Address)
		}
	}
	if pi.Shipping != nil {
		o.Shipping = address(pi.Shipping.Name, pi.Shipping.Phone, pi.Shipping.Address)
	} else if !o.Customer.Address.IsZero() {
		o.Shipping = o.Customer.Address
		o.Shipping.Phone = o.Customer.Phone
	}
	if o.Customer.Name == "" {
		o.Customer.Name = o.Shipping.Name
	}
	if o.Customer.Phone == "" {
		o.Customer.Phone = o.Shipping.Phone
	}
	for k, v := range pi.Metadata {
		o.Metadata[k] = v
	}
	if pi.Created != 0 {
		o.CreatedAt = time.Unix(pi.Created, 0).UTC()
	}
	finish(&o)
	desc := pi.Description
	if desc == "" {
		desc = "Payment " + pi.ID
	}
	o.Items = []integrations.LineItem{{
		Description: desc, Quantity: 1,
		UnitAmount: o.AmountTotal, AmountSubtotal: o.AmountTotal, AmountTotal: o.AmountTotal,
		TaxBehavior: integrations.TaxUnspecified,
	}}
	return o
}

// finish applies what both kinds of order share: the shop's
// metadata["locale"] wins over the Checkout page's locale; with neither
// (Checkout's default locale "auto" does not say which language the page
// showed) the language of the country the goods go to, where it has one
// (integrations.CountryLocale); empty metadata is left out.
func finish(o *integrations.Order) {
	if l := o.Metadata["locale"]; l != "" {
		o.Locale = l
	}
	if strings.EqualFold(strings.TrimSpace(o.Locale), "auto") {
		o.Locale = "" // a shop copying Checkout's locale into its metadata
	}
	if o.Locale == "" {
		o.Locale = integrations.CountryLocale(o.Destination().Country)
	}
	if len(o.Metadata) == 0 {
		o.Metadata = nil
	}
}

func address(name, phone string, a *stripego.Address) integrations.Address {
	if a == nil {
		return integrations.Address{Name: name, Phone: phone}
	}
	return integrations.Address{
		Name:       name,
		Line1:      a.Line1,
		Line2:      a.Line2,
		PostalCode: a.PostalCode,
		City:       a.City,
		State:      a.State,
		Country:    strings.ToUpper(a.Country),
		Phone:      phone,
	}
}

func lineItem(li *stripego.LineItem) integrations.LineItem {
	it := integrations.LineItem{
		ID:             li.ID,
		Description:    li.Description,
		Quantity:       li.Quantity,
		AmountSubtotal: li.AmountSubtotal,
		AmountDiscount: li.AmountDiscount,
		AmountTax:      li.AmountTax,
		AmountTotal:    li.AmountTotal,
	}
	if p := li.Price; p != nil {
		it.SKU = p.ID
		if p.Product != nil && p.Product.ID != "" {
			it.SKU = p.Product.ID
		}
		it.UnitAmount = p.UnitAmount
		if p.UnitAmount == 0 && p.UnitAmountDecimal > 0 {
			// A price in fractions of the minor unit has no unit_amount.
			// stripe-go reads unit_amount_decimal into a float64; the
			// shortest decimal that rounds to it is the one Stripe sent
			// (exact for up to 15 significant digits).
			it.UnitAmountDecimal = strconv.FormatFloat(p.UnitAmountDecimal, 'f', -1, 64)
		}
		it.TaxBehavior = string(p.TaxBehavior)
		customsData(&it, p.Metadata)
		if p.Product != nil {
			// An expanded product (the customs call); an id has none.
			customsData(&it, p.Product.Metadata)
		}
	}
	for _, t := range li.Taxes {
		if t != nil {
			it.Taxes = append(it.Taxes, tax(t.Amount, t.TaxableAmount, string(t.TaxabilityReason), t.Rate))
		}
	}
	for _, d := range li.Discounts {
		if d != nil {
			it.Discounts = append(it.Discounts, discount(d.Amount, d.Discount))
		}
	}
	return it
}

// Metadata keys of a price or product that carry its customs data.
const (
	MetadataHSCode        = "hs_code"
	MetadataOriginCountry = "origin_country"
	MetadataWeightGrams   = "weight_grams"
)

// customsData fills what it of the line's customs data md holds and the
// line has not yet: the price's metadata comes first, then its product's.
// A weight that is not a whole number of grams from 1 to 31,500 is not
// taken (the carrier then shares out the parcel's).
func customsData(it *integrations.LineItem, md map[string]string) {
	if it.HSCode == "" {
		it.HSCode = strings.TrimSpace(md[MetadataHSCode])
	}
	if it.OriginCountry == "" {
		it.OriginCountry = strings.ToUpper(strings.TrimSpace(md[MetadataOriginCountry]))
	}
	if it.WeightGrams == 0 {
		if g, err := strconv.ParseInt(strings.TrimSpace(md[MetadataWeightGrams]), 10, 64); err == nil && g >= 1 && g <= 31500 {
			it.WeightGrams = g
		}
	}
}

// readProductCustoms (with Config.ProductCustoms) completes the customs
// data of the lines of a Checkout order whose goods leave the EU VAT area
// (integrations.LeavesEUVATArea) from their products' metadata, with one
// more call, made only for such an order and only when a line lacks some
// of it:
// GET /v1/checkout/sessions/{id}/line_items?expand[]=data.price.product.
// (The order's own read cannot expand the products: in a list of
// sessions they are five levels deep, past Stripe's four.)
func (c *Client) readProductCustoms(ctx context.Context, o *integrations.Order) error {
	if !c.productCustoms || o.CheckoutSessionID == "" || !integrations.LeavesEUVATArea(o.Destination()) {
		return nil
	}
	if !slices.ContainsFunc(o.Items, func(l integrations.LineItem) bool {
		return l.HSCode == "" || l.OriginCountry == "" || l.WeightGrams == 0
	}) {
		return nil
	}
	lp := &stripego.CheckoutSessionListLineItemsParams{Session: stripego.String(o.CheckoutSessionID)}
	lp.Limit = stripego.Int64(100)
	lp.AddExpand("data.price.product")
	lp.Context = ctx
	it := c.sessions.ListLineItems(lp)
	products := map[string]map[string]string{}
	for it.Next() {
		if li := it.LineItem(); li.Price != nil && li.Price.Product != nil {
			products[li.ID] = li.Price.Product.Metadata
		}
	}
	if err := it.Err(); err != nil {
		return classify("list line items with their products", err)
	}
	for i := range o.Items {
		customsData(&o.Items[i], products[o.Items[i].ID])
	}
	return nil
}

func tax(amount, taxable int64, reason string, r *stripego.TaxRate) integrations.Tax {
	t := integrations.Tax{Amount: amount, TaxableAmount: taxable, TaxabilityReason: reason, Percentage: "0"}
	if r != nil {
		t.Percentage = Percent(r.Percentage)
		t.Inclusive = r.Inclusive
		t.RateID = r.ID
		t.DisplayName = r.DisplayName
		t.Jurisdiction = r.Jurisdiction
		t.Country = r.Country
		t.State = r.State
		t.TaxType = string(r.TaxType)
	}
	return t
}

func discount(amount int64, d *stripego.Discount) integrations.Discount {
	out := integrations.Discount{Amount: amount}
	if d == nil {
		return out
	}
	if c := d.Coupon; c != nil {
		out.CouponID, out.Name, out.AmountOff = c.ID, c.Name, c.AmountOff
		if c.PercentOff != 0 {
			out.PercentOff = Percent(c.PercentOff)
		}
	}
	if pc := d.PromotionCode; pc != nil {
		out.PromotionCode = pc.Code
		if out.PromotionCode == "" {
			out.PromotionCode = pc.ID
		}
	}
	return out
}

// Percent writes a percentage that stripe-go decoded into a float64 as the
// decimal Stripe sent. The float64 is the correctly rounded value of that
// decimal, and for any decimal of up to 15 significant digits (Stripe's
// rates have at most four decimals) the shortest representation that
// rounds back to the same float64 is the decimal itself, so nothing is
// lost. The rate only describes the tax: no amount is computed from it.
func Percent(f float64) string {
	if f <= 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return "0"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// classify turns a stripe-go error into an *integrations.Error: 408, 409,
// 429 and 5xx transient (honouring Retry-After; Stripe-Should-Retry: true
// makes any status transient),
// other 4xx permanent, transport failures transient, cancellation as is.
func classify(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	var se *stripego.Error
	if errors.As(err, &se) {
		e := &integrations.Error{
			Provider: provider,
			Op:       op,
			Status:   se.HTTPStatusCode,
			Class:    integrations.ClassifyStatus(se.HTTPStatusCode),
			Msg:      errorMessage(se),
		}
		if r := se.LastResponse; r != nil && r.Header != nil {
			e.RetryAfter = integrations.ParseRetryAfter(r.Header.Get("Retry-After"), time.Now())
			// Stripe says explicitly when a retry can help (a lock
			// timeout, for example).
			if r.Header.Get("Stripe-Should-Retry") == "true" {
				e.Class = integrations.Transient
			}
		}
		return e
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// url.Error's text holds the full URL; keep only the cause.
		return integrations.NetError(provider, op, ue.Err)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return integrations.NetError(provider, op, err)
	}
	// stripe-go could not decode the response (an HTML page from a proxy,
	// a truncated body). Its error text quotes the body, so it is not kept.
	return integrations.Transientf(provider, op, "response not understood")
}

// errorMessage is a short reason from a Stripe error: type, code, param and
// Stripe's message cut to a sane length.
func errorMessage(se *stripego.Error) string {
	parts := []string{}
	if se.Type != "" {
		parts = append(parts, string(se.Type))
	}
	if se.Code != "" {
		parts = append(parts, string(se.Code))
	}
	if se.Param != "" {
		parts = append(parts, "param "+se.Param)
	}
	msg := se.Msg
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg != "" {
		parts = append(parts, msg)
	}
	if se.RequestID != "" {
		parts = append(parts, "request "+se.RequestID)
	}
	return strings.Join(parts, ": ")
}
