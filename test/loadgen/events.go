// Package loadgen posts Stripe-signed webhook events at a gateway, at a
// target rate or as fast as it can over N connections, with a share of
// duplicates and both Checkout event types, and reports accepted/s, latency
// percentiles and status counts. It redelivers events that got no 2xx, as
// Stripe does, when asked to. `orderflow loadgen`, the benchmarks and the
// reliability harness all use it.
package loadgen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// Event is one webhook delivery's content.
type Event struct {
	ID      string // evt_...
	Type    string
	OrderID string // the PaymentIntent id the event is about
	Body    []byte
}

// Customer data from several countries and scripts, so that every test run
// carries non-ASCII names and addresses through the pipeline.
var customers = []struct {
	name, email, line1, postal, city, country, locale, currency string
}{
	{"Aino Mäkinen", "aino.makinen@example.fi", "Hämeenkatu 12 A 4", "33100", "Tampere", "FI", "fi", "eur"},
	{"Åsa Öberg", "asa.oberg@example.se", "Storgatan 5", "11455", "Stockholm", "SE", "sv", "sek"},
	{"山田 花子", "hanako.yamada@example.jp", "千代田区丸の内1-1", "100-0005", "東京都", "JP", "ja", "jpy"},
	{"Jürgen Groß", "juergen.gross@example.de", "Straße des 17. Juni 135", "10623", "Berlin", "DE", "de", "eur"},
	{"Zoë O'Brien-Łukasz", "zoe.obrien@example.ie", "1 Grafton Street", "D02 X285", "Dublin", "IE", "en", "eur"},
}

// Factory builds realistic events for order numbers.
type Factory struct {
	// Run distinguishes ids between runs (so a second run is not all
	// duplicates); empty picks a random one.
	Run string
	// Checkout: an order is paid through Checkout and so sends both
	// checkout.session.completed and payment_intent.succeeded.
	Checkout bool
}

// NewFactory returns a factory with a random run id.
func NewFactory(checkout bool) *Factory {
	return &Factory{Run: strconv.FormatUint(rand.Uint64()%1e9, 36), Checkout: checkout}
}

// OrderID is the PaymentIntent id of order n.
func (f *Factory) OrderID(n int) string { return fmt.Sprintf("pi_lg%s%07d", f.Run, n) }

// Order returns the events of order n: one payment_intent.succeeded, or with
// Checkout also a checkout.session.completed, in random order.
func (f *Factory) Order(n int, rng *rand.Rand) []Event {
	pi := f.OrderID(n)
	c := customers[n%len(customers)]
	amount := int64(1990 + (n%7)*1000)
	if c.currency == "jpy" {
		amount = int64(2400 + (n%7)*1000)
	}
	now := time.Now().Unix()
	piObj := map[string]any{
		"id": pi, "object": "payment_intent", "amount": amount, "amount_received": amount,
		"currency": c.currency, "status": "succeeded", "receipt_email": c.email,
		"metadata": map[string]string{"locale": c.locale, "order_ref": "lg-" + strconv.Itoa(n)},
		"shipping": map[string]any{"name": c.name, "address": map[string]any{
			"line1": c.line1, "postal_code": c.postal, "city": c.city, "country": c.country}},
	}
	events := []Event{f.event(fmt.Sprintf("evt_lg%s%07dp", f.Run, n), "payment_intent.succeeded", pi, now, piObj)}
	if f.Checkout {
		cs := fmt.Sprintf("cs_lg%s%07d", f.Run, n)
		csObj := map[string]any{
			"id": cs, "object": "checkout.session", "mode": "payment", "status": "complete",
			"payment_status": "paid", "payment_intent": pi, "amount_total": amount, "currency": c.currency,
			"customer_details": map[string]any{"name": c.name, "email": c.email, "address": map[string]any{
				"line1": c.line1, "postal_code": c.postal, "city": c.city, "country": c.country}},
			"shipping_details": map[string]any{"name": c.name, "address": map[string]any{
				"line1": c.line1, "postal_code": c.postal, "city": c.city, "country": c.country}},
			"metadata": map[string]string{"locale": c.locale},
		}
		events = append(events, f.event(fmt.Sprintf("evt_lg%s%07dc", f.Run, n), "checkout.session.completed", pi, now, csObj))
		if rng != nil && rng.IntN(2) == 0 {
			events[0], events[1] = events[1], events[0]
		}
	}
	return events
}

func (f *Factory) event(id, typ, orderID string, created int64, obj map[string]any) Event {
	body, _ := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": "2023-10-16", "created": created,
		"livemode": false, "pending_webhooks": 1, "type": typ,
		"request": map[string]any{"id": nil, "idempotency_key": nil},
		"data":    map[string]any{"object": obj},
	})
	return Event{ID: id, Type: typ, OrderID: orderID, Body: body}
}

// Sign returns the Stripe-Signature header for body, signed now with every
// secret (as Stripe does during a secret rotation).
func Sign(body []byte, secrets ...string) string {
	now := time.Now()
	h := "t=" + strconv.FormatInt(now.Unix(), 10)
	for _, s := range secrets {
		h += ",v1=" + fmt.Sprintf("%x", webhook.ComputeSignature(now, body, s))
	}
	return h
}
