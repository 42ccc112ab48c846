// Package stripe reads a paid order from Stripe: the PaymentIntent, the
// Checkout Session that created it and the session's line items, turned into
// an integrations.Order in integer minor units.
//
// The client uses stripe-go v76 with its own backend (no package-level
// stripe.Key or backend), so several clients with different keys or base URLs
// can live in one process, and stripe-go's own network retries are off: the
// processor owns retries and backoff.
//
// Requests sent for OrderDetails("pi_…"), one for a Checkout order:
//
//	GET /v1/checkout/sessions?limit=1&payment_intent=pi_…&expand[0]=data.line_items&expand[1]=data.line_items.data.taxes&expand[2]=data.payment_intent
//	GET /v1/checkout/sessions/cs_…/line_items?expand[0]=data.taxes&limit=100   (only when the expanded list is incomplete; more pages via starting_after)
//	GET /v1/payment_intents/pi_…   (only when there is no session, or it came without the PaymentIntent)
//
// and for OrderDetails("cs_…"):
//
//	GET /v1/checkout/sessions/cs_…
//	GET /v1/checkout/sessions/cs_…/line_items?expand[0]=data.taxes&limit=100
//	GET /v1/payment_intents/pi_…   (only when the session has a PaymentIntent and no email or shipping of its own)
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
	pis      paymentintent.Client
	sessions session.Client
	log      *slog.Logger
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
	backend := stripego.GetBackendWithConfig(stripego.APIBackend, &stripego.BackendConfig{
		URL:               stripego.String(base),
		HTTPClient:        hc,
		MaxNetworkRetries: stripego.Int64(0),
		// stripe-go's logger prints request failures with their messages;
		// errors reach our log through the processor instead.
		LeveledLogger:   &stripego.LeveledLogger{Level: stripego.LevelNull},
		EnableTelemetry: stripego.Bool(false),
	})
	return &Client{
		pis:      paymentintent.Client{B: backend, Key: cfg.SecretKey},
		sessions: session.Client{B: backend, Key: cfg.SecretKey},
		log:      log,
	}, nil
}

// OrderDetails returns the order for a PaymentIntent id (pi_…) or a Checkout
// Session id (cs_…). The order's ID and Number are derived from orderID.
func (c *Client) OrderDetails(ctx context.Context, orderID string) (integrations.Order, error) {
	switch {
	case strings.HasPrefix(orderID, "pi_"):
		return c.fromPaymentIntent(ctx, orderID)
	case strings.HasPrefix(orderID, "cs_"):
		return c.fromSession(ctx, orderID)
	}
	return integrations.Order{}, integrations.Permanentf(provider, "order details", "order id %q is neither a PaymentIntent nor a Checkout Session id", orderID)
}

func (c *Client) fromPaymentIntent(ctx context.Context, id string) (integrations.Order, error) {
	// One call for a Checkout order: the session found by its PaymentIntent,
	// with its line items (and their taxes) and the PaymentIntent itself
	// expanded. The PaymentIntent is read on its own only when there is no
	// session. Stripe's rate limit counts calls, so this keeps a flash sale
	// at a third of the calls.
	cs, err := c.sessionForPaymentIntent(ctx, id)
	if err != nil {
		return integrations.Order{}, err
	}
	var items []*stripego.LineItem
	var pi *stripego.PaymentIntent
	if cs != nil {
		if items, err = c.sessionItems(ctx, cs); err != nil {
			return integrations.Order{}, err
		}
		if cs.PaymentIntent != nil && cs.PaymentIntent.Object == "payment_intent" {
			pi = cs.PaymentIntent // expanded
		}
	} else {
		// A PaymentIntent made without Checkout has no line items; the
		// order is still valid (amount, customer, shipping come from the PI).
		c.log.DebugContext(ctx, "stripe: no checkout session for payment intent", "order_id", id)
	}
	if pi == nil {
		pp := &stripego.PaymentIntentParams{}
		pp.Context = ctx
		if pi, err = c.pis.Get(id, pp); err != nil {
			return integrations.Order{}, classify("get payment intent", err)
		}
	}
	return buildOrder(id, pi, cs, items), nil
}

// sessionItems returns the session's line items: the expanded ones when
// they are complete, else every page read again.
func (c *Client) sessionItems(ctx context.Context, cs *stripego.CheckoutSession) ([]*stripego.LineItem, error) {
	if cs.LineItems != nil && !cs.LineItems.HasMore {
		return cs.LineItems.Data, nil
	}
	return c.lineItems(ctx, cs.ID)
}

func (c *Client) fromSession(ctx context.Context, id string) (integrations.Order, error) {
	sp := &stripego.CheckoutSessionParams{}
	sp.Context = ctx
	cs, err := c.sessions.Get(id, sp)
	if err != nil {
		return integrations.Order{}, classify("get checkout session", err)
	}
	items, err := c.lineItems(ctx, id)
	if err != nil {
		return integrations.Order{}, err
	}
	var pi *stripego.PaymentIntent
	if cs.PaymentIntent != nil && cs.PaymentIntent.ID != "" && needsPaymentIntent(cs) {
		pp := &stripego.PaymentIntentParams{}
		pp.Context = ctx
		if pi, err = c.pis.Get(cs.PaymentIntent.ID, pp); err != nil {
			return integrations.Order{}, classify("get payment intent", err)
		}
	}
	return buildOrder(id, pi, cs, items), nil
}

// needsPaymentIntent reports whether the session lacks the email or the
// shipping address, which the PaymentIntent may then supply.
func needsPaymentIntent(cs *stripego.CheckoutSession) bool {
	hasEmail := cs.CustomerEmail != "" || (cs.CustomerDetails != nil && cs.CustomerDetails.Email != "")
	hasShipping := cs.ShippingDetails != nil && cs.ShippingDetails.Address != nil
	return !hasEmail || !hasShipping
}

// sessionForPaymentIntent finds the Checkout Session that created the
// PaymentIntent, with its line items and their taxes:
// GET /v1/checkout/sessions?payment_intent=…&limit=1&expand[]=data.line_items&expand[]=data.line_items.data.taxes&expand[]=data.payment_intent.
// It returns nil when there is none.
func (c *Client) sessionForPaymentIntent(ctx context.Context, piID string) (*stripego.CheckoutSession, error) {
	lp := &stripego.CheckoutSessionListParams{PaymentIntent: stripego.String(piID)}
	lp.Limit = stripego.Int64(1)
	lp.AddExpand("data.line_items")
	lp.AddExpand("data.line_items.data.taxes")
	lp.AddExpand("data.payment_intent")
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

// lineItems reads every line item of a session, with the tax rates
// expanded (expand[]=data.taxes) for the VAT rate of each line.
func (c *Client) lineItems(ctx context.Context, sessionID string) ([]*stripego.LineItem, error) {
	lp := &stripego.CheckoutSessionListLineItemsParams{Session: stripego.String(sessionID)}
	lp.Limit = stripego.Int64(100)
	lp.AddExpand("data.taxes")
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

// buildOrder maps Stripe objects to the order model. pi or cs may be nil
// (not both). Session values win over PaymentIntent values where both exist.
func buildOrder(id string, pi *stripego.PaymentIntent, cs *stripego.CheckoutSession, items []*stripego.LineItem) integrations.Order {
	o := integrations.Order{ID: id, Number: integrations.OrderNumber(id), Metadata: map[string]string{}}
	if pi != nil {
		o.PaymentIntentID = pi.ID
		o.Currency = strings.ToLower(string(pi.Currency))
		o.AmountTotal = pi.Amount
		if pi.AmountReceived > 0 {
			o.AmountTotal = pi.AmountReceived
		}
		o.AmountSubtotal = o.AmountTotal
		o.Customer.Email = pi.ReceiptEmail
		if pi.Shipping != nil {
			o.Shipping = address(pi.Shipping.Name, pi.Shipping.Address)
			o.Customer.Name = pi.Shipping.Name
			o.Customer.Phone = pi.Shipping.Phone
		}
		for k, v := range pi.Metadata {
			o.Metadata[k] = v
		}
		if pi.Created != 0 {
			o.CreatedAt = time.Unix(pi.Created, 0).UTC()
		}
	}
	if cs != nil {
		o.CheckoutSessionID = cs.ID
		if cs.PaymentIntent != nil && cs.PaymentIntent.ID != "" {
			o.PaymentIntentID = cs.PaymentIntent.ID
		}
		if cs.Currency != "" {
			o.Currency = strings.ToLower(string(cs.Currency))
		}
		o.AmountTotal = cs.AmountTotal
		o.AmountSubtotal = cs.AmountSubtotal
		if cs.TotalDetails != nil {
			o.AmountTax = cs.TotalDetails.AmountTax
			o.AmountShipping = cs.TotalDetails.AmountShipping
		}
		if cs.CustomerEmail != "" {
			o.Customer.Email = cs.CustomerEmail
		}
		if d := cs.CustomerDetails; d != nil {
			if d.Email != "" {
				o.Customer.Email = d.Email
			}
			if d.Name != "" {
				o.Customer.Name = d.Name
			}
			if d.Phone != "" {
				o.Customer.Phone = d.Phone
			}
		}
		if s := cs.ShippingDetails; s != nil && s.Address != nil {
			o.Shipping = address(s.Name, s.Address)
			if o.Customer.Name == "" {
				o.Customer.Name = s.Name
			}
			if o.Customer.Phone == "" {
				o.Customer.Phone = s.Phone
			}
		}
		for k, v := range cs.Metadata {
			o.Metadata[k] = v
		}
		if cs.Created != 0 {
			o.CreatedAt = time.Unix(cs.Created, 0).UTC()
		}
		if o.Locale == "" && cs.Locale != "" && cs.Locale != "auto" {
			o.Locale = cs.Locale
		}
	}
	// The shop puts the customer's language in metadata["locale"]; it wins
	// over the Checkout page's locale.
	if l := o.Metadata["locale"]; l != "" {
		o.Locale = l
	}
	if len(o.Metadata) == 0 {
		o.Metadata = nil
	}
	for _, li := range items {
		o.Items = append(o.Items, lineItem(li))
	}
	return o
}

func address(name string, a *stripego.Address) integrations.Address {
	if a == nil {
		return integrations.Address{Name: name}
	}
	return integrations.Address{
		Name:       name,
		Line1:      a.Line1,
		Line2:      a.Line2,
		PostalCode: a.PostalCode,
		City:       a.City,
		State:      a.State,
		Country:    strings.ToUpper(a.Country),
	}
}

func lineItem(li *stripego.LineItem) integrations.LineItem {
	it := integrations.LineItem{
		Description: li.Description,
		Quantity:    li.Quantity,
		AmountTotal: li.AmountTotal,
		AmountTax:   li.AmountTax,
	}
	if p := li.Price; p != nil {
		it.SKU = p.ID
		if p.Product != nil && p.Product.ID != "" {
			it.SKU = p.Product.ID
		}
		it.UnitAmount = p.UnitAmount
	}
	if it.UnitAmount == 0 && li.Quantity > 0 {
		it.UnitAmount = li.AmountSubtotal / li.Quantity
	}
	// The first tax rate is the line's VAT rate; Stripe gives it as a float
	// percentage (25.5), stored here in basis points (2550).
	for _, t := range li.Taxes {
		if t != nil && t.Rate != nil {
			it.TaxRateBasisPoints = int64(math.Round(t.Rate.Percentage * 100))
			break
		}
	}
	return it
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
