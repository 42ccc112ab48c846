package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

const sendTestUsage = `send-test-event [flags]

Posts realistic, signed Stripe test events to the webhook endpoint and prints
what the gateway answered. A Checkout payment (--type checkout, the default)
sends both checkout.session.completed and payment_intent.succeeded for one
PaymentIntent, in random order, as Stripe does. Customers come from several
countries and scripts (Finnish, Swedish, Japanese, German, ...), paying in
EUR, SEK or JPY, with VAT-inclusive prices and taxed shipping, dated now.
--duplicates re-sends that fraction of events, as Stripe's retries do.
Exits 1 if any event was not answered 2xx, or the simulator could not be
seeded.

Before an order's events, the simulator's Stripe is seeded with exactly the
Checkout Session (line items, taxes, shipping, customer) and PaymentIntent
the events describe, so label, CRM, invoice and email show that order.
--sim-url defaults to the simulator of 'orderflow dev' on --data-dir (its
address is kept in <data-dir>/sim-url); give --sim-url none when the
processor reads order details from elsewhere.

The secret defaults to ORDERFLOW_WEBHOOK_SECRET, then to the one 'orderflow
dev' keeps in <data-dir>/webhook-secret.`

// Event types send-test-event can send. typeCheckout is a Checkout payment:
// both events of it.
const (
	typeCheckout               = "checkout"
	typeSessionCompleted       = "checkout.session.completed"
	typePaymentIntentSucceeded = "payment_intent.succeeded"
)

// webhookSecretFile is the file in the dev data folder holding the webhook
// signing secret.
const webhookSecretFile = "webhook-secret"

// simURLFile is the file in the dev data folder holding the simulator's
// URL, for send-test-event to seed it.
const simURLFile = "sim-url"

func runSendTestEvent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("send-test-event", sendTestUsage, stderr)
	url := fs.String("url", "http://127.0.0.1:8080/webhooks/stripe", "webhook endpoint of the gateway")
	secret := fs.String("secret", "", "endpoint signing secret (whsec_…); default ORDERFLOW_WEBHOOK_SECRET or <data-dir>/webhook-secret")
	dataDir := fs.String("data-dir", "var", "data folder of 'orderflow dev', where the default secret is kept")
	typ := fs.String("type", typeCheckout, "what to send: checkout (both events of a Checkout payment), checkout.session.completed or payment_intent.succeeded")
	count := fs.Int("count", 1, "number of orders")
	dups := fs.Float64("duplicates", 0, "fraction of events sent twice, 0 to 1 (Stripe retries deliver an event again)")
	seed := fs.Uint64("seed", 0, "random seed, for a repeatable run (0: a new one each run)")
	var timeout time.Duration
	positiveDurationVar(fs, &timeout, "timeout", 10*time.Second, "timeout of each request (a `duration` above 0)")
	brokers := defaultBrokers
	fs.Var(checkedString{&brokers, checkBrokers}, "brokers", "Kafka brokers of the pipeline the gateway queues on (the --kafka-addr of 'orderflow dev'), named in the 'orders show' hint after one order")
	var prefix string
	fs.Var(checkedString{&prefix, checkTopicPrefix}, "topic-prefix", "the gateway's --topic-prefix, named in the 'orders show' hint after one order")
	simURL := fs.String("sim-url", "", "provider simulator to seed with the orders' Stripe objects (default: the one in <data-dir>/sim-url, written by 'orderflow dev'; none: do not seed)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("send-test-event: unexpected argument %q", fs.Arg(0))
	}
	opts := testEventOptions{URL: *url, Type: *typ, Count: *count, Duplicates: *dups, Seed: *seed, Timeout: timeout, Command: selfCommand(), TopicPrefix: prefix}
	if brokers != defaultBrokers {
		opts.Brokers = brokers
	}
	var err error
	if opts.Secret, err = resolveWebhookSecret(*secret, os.Getenv("ORDERFLOW_WEBHOOK_SECRET"), *dataDir); err != nil {
		return err
	}
	if opts.SimURL, err = resolveSimURL(*simURL, *dataDir); err != nil {
		return err
	}
	if opts.SimURL == "" && *simURL == "" {
		fmt.Fprintf(stderr, "note: not seeding a simulator (no %s; give --sim-url): the processor reads these orders' details from wherever it is configured to\n", filepath.Join(*dataDir, simURLFile))
	}
	if err := opts.validate(); err != nil {
		return err
	}
	sum, err := sendTestEvents(ctx, opts, stdout)
	if err != nil {
		return err
	}
	if sum.Failed > 0 {
		return fmt.Errorf("%d of %d events were not accepted", sum.Failed, sum.Sent)
	}
	return nil
}

// resolveWebhookSecret picks the secret: the flag, else the environment,
// else the dev data folder's file. One that does not start with whsec_ is
// a usage error naming where it came from, as the gateway refuses it:
// every event signed with it would get 400.
func resolveWebhookSecret(flagValue, envValue, dataDir string) (string, error) {
	if s := strings.TrimSpace(flagValue); s != "" {
		return s, checkSecrets("--secret", []string{s})
	}
	if s := strings.TrimSpace(envValue); s != "" {
		return s, checkSecrets("ORDERFLOW_WEBHOOK_SECRET", []string{s})
	}
	path := filepath.Join(dataDir, webhookSecretFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", usagef("no webhook secret: give --secret, set ORDERFLOW_WEBHOOK_SECRET, or start 'orderflow dev' first (it keeps one in %s)", path)
	}
	if err != nil {
		return "", fmt.Errorf("read webhook secret: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", usagef("%s is empty", path)
	}
	return s, checkSecrets(path, []string{s})
}

// resolveSimURL picks the simulator to seed: the flag ("none": none), else
// the one dev mode wrote in the data folder, else none.
func resolveSimURL(flagValue, dataDir string) (string, error) {
	switch v := strings.TrimSpace(flagValue); {
	case v == "none":
		return "", nil
	case v != "":
		if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
			return "", usagef("--sim-url %q: want an http(s) URL such as http://127.0.0.1:8090, or none", v)
		}
		return strings.TrimRight(v, "/"), nil
	}
	b, err := os.ReadFile(filepath.Join(dataDir, simURLFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the simulator's address: %w", err)
	}
	return strings.TrimRight(strings.TrimSpace(string(b)), "/"), nil
}

// testEventOptions configures sendTestEvents.
type testEventOptions struct {
	URL        string
	Secret     string
	Type       string
	Count      int
	Duplicates float64
	// Seed makes a run repeatable; 0 picks a random one.
	Seed    uint64
	Timeout time.Duration
	// SimURL, when set, is the provider simulator seeded with each order's
	// Checkout Session and PaymentIntent before its events are sent.
	SimURL string
	// Client is optional.
	Client *http.Client
	// Quiet prints only the summary.
	Quiet bool
	// Command is how the hint after a single order spells this program;
	// empty means "orderflow".
	Command string
	// Brokers, when not the default, is given to the hint's orders show.
	Brokers string
	// TopicPrefix, when set, is given to the hint's orders show.
	TopicPrefix string
}

func (o testEventOptions) command() string {
	if o.Command == "" {
		return "orderflow"
	}
	return o.Command
}

func (o testEventOptions) validate() error {
	switch o.Type {
	case typeCheckout, typeSessionCompleted, typePaymentIntentSucceeded:
	default:
		return usagef("--type %q: want %s, %s or %s", o.Type, typeCheckout, typeSessionCompleted, typePaymentIntentSucceeded)
	}
	if o.Count < 1 {
		return usagef("--count must be at least 1")
	}
	if !(o.Duplicates >= 0 && o.Duplicates <= 1) { // NaN too
		return usagef("--duplicates must be between 0 and 1")
	}
	if !strings.HasPrefix(o.URL, "http://") && !strings.HasPrefix(o.URL, "https://") {
		return usagef("--url %q: want an http(s) URL", o.URL)
	}
	if o.Secret == "" {
		return usagef("no webhook secret")
	}
	return nil
}

// testEventSummary counts what sendTestEvents did.
type testEventSummary struct {
	Orders     []string       // the order keys (PaymentIntent ids)
	Sent       int            // requests made
	Duplicates int            // of them, events sent again
	Failed     int            // answered other than 2xx, or not at all
	Unreached  int            // of them, not answered at all (no connection, timeout)
	Answers    map[string]int // "200 queued" → count
}

// testEvent is one event to deliver.
type testEvent struct {
	id, typ, order string
	body           []byte
	dup            bool
}

// sendTestEvents builds opts.Count orders' events, posts them signed and
// writes one line per answer and a summary to out.
func sendTestEvents(ctx context.Context, opts testEventOptions, out io.Writer) (testEventSummary, error) {
	if err := opts.validate(); err != nil {
		return testEventSummary{}, err
	}
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	client := opts.Client
	if client == nil {
		t := opts.Timeout
		if t <= 0 {
			t = 10 * time.Second
		}
		client = &http.Client{Timeout: t}
	}

	sum := testEventSummary{Answers: map[string]int{}}
	var late []testEvent // duplicates delivered after the other orders, as a late retry
	send := func(ev testEvent) error {
		status, body, err := postSigned(ctx, client, opts.URL, opts.Secret, ev.body)
		sum.Sent++
		if ev.dup {
			sum.Duplicates++
		}
		answer := fmt.Sprintf("%d %s", status, body)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			answer = "error: " + err.Error()
		}
		if err != nil {
			sum.Unreached++
		}
		if err != nil || status < 200 || status > 299 {
			sum.Failed++
		}
		sum.Answers[answer]++
		if !opts.Quiet {
			again := ""
			if ev.dup {
				again = " (again)"
			}
			fmt.Fprintf(out, "%-27s %s  %s%s → %s\n", ev.typ, ev.id, ev.order, again, answer)
		}
		return nil
	}
	for range opts.Count {
		o := newTestOrder(rng, time.Now())
		if opts.SimURL != "" {
			if err := o.seed(ctx, client, opts.SimURL); err != nil {
				return sum, fmt.Errorf("seed the simulator at %s with order %s: %w (is 'orderflow dev' running? --sim-url none to send without)", opts.SimURL, o.PaymentIntentID, err)
			}
		}
		sum.Orders = append(sum.Orders, o.PaymentIntentID)
		events := o.events(rng, opts.Type)
		for _, ev := range events {
			if err := send(ev); err != nil {
				return sum, err
			}
			if rng.Float64() < opts.Duplicates {
				ev.dup = true
				if rng.IntN(2) == 0 {
					if err := send(ev); err != nil {
						return sum, err
					}
				} else {
					late = append(late, ev)
				}
			}
		}
	}
	rng.Shuffle(len(late), func(i, j int) { late[i], late[j] = late[j], late[i] })
	for _, ev := range late {
		if err := send(ev); err != nil {
			return sum, err
		}
	}
	orders := "orders"
	if len(sum.Orders) == 1 {
		orders = "order"
	}
	fmt.Fprintf(out, "sent %d events for %d %s (%d sent again): %s\n", sum.Sent, len(sum.Orders), orders, sum.Duplicates, formatAnswers(sum.Answers))
	switch {
	case sum.Unreached == sum.Sent:
		fmt.Fprintf(out, "nothing reached the gateway at %s: is it running? Start it with 'make run' (or %s dev), or give --url\n", opts.URL, opts.command())
	case sum.Failed == 0 && len(sum.Orders) == 1:
		flags := ""
		if opts.Brokers != "" {
			flags = " --brokers " + opts.Brokers
		}
		if opts.TopicPrefix != "" {
			flags += " --topic-prefix " + opts.TopicPrefix
		}
		fmt.Fprintf(out, "see the order with: %s orders show %s%s\n", opts.command(), sum.Orders[0], flags)
	}
	return sum, nil
}

func formatAnswers(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Sorted for a stable line; "200 …" answers come first.
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d × %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}

// postSigned posts body with a fresh Stripe-Signature and returns the
// status and the answer's first line.
func postSigned(ctx context.Context, client *http.Client, url, secret string, body []byte) (int, string, error) {
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks) orderflow-send-test-event")
	req.Header.Set("Stripe-Signature", signed.Header)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return resp.StatusCode, line, nil
}

// testCustomer is a buyer with an address in their own script.
type testCustomer struct {
	name, email, phone           string
	line1, line2, postal, city   string
	state, country, locale, curr string
	// vatBP is the VAT rate in basis points included in the prices (the
	// generator plays Stripe; every rate here has two decimals at most).
	vatBP int64
}

var testCustomers = []testCustomer{
	{name: "Aino Mäkelä", email: "aino.makela@example.fi", phone: "+358401234567", line1: "Hämeenkatu 10 B 7", postal: "33100", city: "Tampere", country: "FI", locale: "fi", curr: "eur", vatBP: 2550},
	{name: "Väinö Äijälä", email: "vaino@example.fi", phone: "+358501112233", line1: "Mannerheimintie 12", postal: "00100", city: "Helsinki", country: "FI", locale: "fi", curr: "eur", vatBP: 2550},
	{name: "Åsa Sjöström", email: "asa.sjostrom@example.se", phone: "+46701234567", line1: "Drottninggatan 53", postal: "111 21", city: "Stockholm", country: "SE", locale: "sv", curr: "sek", vatBP: 2500},
	{name: "Björn Ödmark", email: "bjorn@example.se", line1: "Storgatan 4", line2: "lgh 1102", postal: "903 26", city: "Umeå", country: "SE", locale: "sv", curr: "sek", vatBP: 2500},
	{name: "山田 花子", email: "hanako.yamada@example.jp", phone: "+81312345678", line1: "丸の内1-9-1", line2: "グラントウキョウノースタワー 5F", postal: "100-0005", city: "千代田区", state: "東京都", country: "JP", locale: "ja", curr: "jpy", vatBP: 1000},
	{name: "佐藤 健", email: "ken.sato@example.jp", line1: "梅田3-1-3", postal: "530-0001", city: "大阪市北区", state: "大阪府", country: "JP", locale: "ja", curr: "jpy", vatBP: 1000},
	{name: "Jürgen Weiß", email: "juergen.weiss@example.de", phone: "+4930123456", line1: "Straße des 17. Juni 135", postal: "10623", city: "Berlin", country: "DE", locale: "de", curr: "eur", vatBP: 1900},
	{name: "Zoë Lefèvre", email: "zoe.lefevre@example.fr", line1: "12 rue de l'Évangile", postal: "75018", city: "Paris", country: "FR", locale: "fr", curr: "eur", vatBP: 2000},
	{name: "Олена Коваленко", email: "olena.k@example.fi", line1: "Itäinen Rantakatu 6 A 3", postal: "20700", city: "Turku", country: "FI", locale: "uk", curr: "eur", vatBP: 2550},
	{name: "Ελένη Παπαδοπούλου", email: "eleni.p@example.gr", line1: "Οδός Ερμού 25", postal: "105 63", city: "Αθήνα", country: "GR", locale: "el", curr: "eur", vatBP: 2400},
}

// testProduct is a catalogue line; prices are in minor units per currency,
// VAT included.
type testProduct struct {
	sku, name string
	price     map[string]int64
}

var testProducts = []testProduct{
	{"sku_mug_blue", "Hand-thrown mug, blue glaze", map[string]int64{"eur": 2900, "sek": 32900, "jpy": 4200}},
	{"sku_teapot", "Stoneware teapot, 0.8 l", map[string]int64{"eur": 7900, "sek": 89900, "jpy": 11800}},
	{"sku_bowl_set", "Bowl set of four, ash white", map[string]int64{"eur": 5400, "sek": 59900, "jpy": 7900}},
	{"sku_vase_small", "Small vase, tenmoku", map[string]int64{"eur": 3600, "sek": 39900, "jpy": 5300}},
}

var testShipping = map[string]int64{"eur": 590, "sek": 6900, "jpy": 900}

// testLine is one line of a test order, VAT included.
type testLine struct {
	product   testProduct
	qty       int64
	total     int64 // unit price × quantity, VAT included
	tax       int64
	lineIndex int
}

// testOrder is one Checkout payment.
type testOrder struct {
	suffix            string
	PaymentIntentID   string
	CheckoutSessionID string
	customer          testCustomer
	lines             []testLine
	subtotal, ship    int64
	shipTax           int64
	tax, total        int64
	created           time.Time
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func randomID(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = base62[rng.IntN(len(base62))]
	}
	return string(b)
}

// inclusiveTax is the VAT inside a gross amount at bp basis points,
// rounded half up: gross × bp / (10000 + bp).
func inclusiveTax(gross, bp int64) int64 {
	return (2*gross*bp + 10000 + bp) / (2 * (10000 + bp))
}

// newTestOrder makes an order placed now (give or take two minutes). Its
// PaymentIntent pi_X and Checkout Session cs_test_X share the suffix.
func newTestOrder(rng *rand.Rand, now time.Time) testOrder {
	suffix := "3Q" + randomID(rng, 22)
	c := testCustomers[rng.IntN(len(testCustomers))]
	o := testOrder{
		suffix:            suffix,
		PaymentIntentID:   "pi_" + suffix,
		CheckoutSessionID: "cs_test_" + suffix,
		customer:          c,
		ship:              testShipping[c.curr],
		created:           now.Add(-time.Duration(rng.IntN(120)) * time.Second),
	}
	for i := range 1 + rng.IntN(3) {
		p := testProducts[rng.IntN(len(testProducts))]
		qty := int64(1 + rng.IntN(2))
		l := testLine{product: p, qty: qty, total: p.price[c.curr] * qty, lineIndex: i + 1}
		l.tax = inclusiveTax(l.total, c.vatBP)
		o.lines = append(o.lines, l)
		o.subtotal += l.total
		o.tax += l.tax
	}
	o.shipTax = inclusiveTax(o.ship, c.vatBP)
	o.tax += o.shipTax
	o.total = o.subtotal + o.ship
	return o
}

// percent writes basis points as Stripe's percentage: 2550 → 25.5.
func percent(bp int64) json.Number {
	s := strings.TrimRight(strings.TrimRight(fmt.Sprintf("%d.%02d", bp/100, bp%100), "0"), ".")
	return json.Number(s)
}

func (o testOrder) address() map[string]any {
	c := o.customer
	return map[string]any{
		"line1": c.line1, "line2": nullable(c.line2), "postal_code": c.postal,
		"city": c.city, "state": nullable(c.state), "country": c.country,
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// events returns the order's events for typ, in random order for a
// Checkout payment.
func (o testOrder) events(rng *rand.Rand, typ string) []testEvent {
	var evs []testEvent
	if typ == typeCheckout || typ == typeSessionCompleted {
		evs = append(evs, o.event(rng, typeSessionCompleted, o.session(false)))
	}
	if typ == typeCheckout || typ == typePaymentIntentSucceeded {
		evs = append(evs, o.event(rng, typePaymentIntentSucceeded, o.paymentIntent()))
	}
	rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	return evs
}

func (o testOrder) event(rng *rand.Rand, typ string, object map[string]any) testEvent {
	id := "evt_" + randomID(rng, 24)
	body, err := json.MarshalIndent(map[string]any{
		"id":               id,
		"object":           "event",
		"api_version":      "2023-10-16",
		"created":          o.created.Unix() + 2,
		"data":             map[string]any{"object": object},
		"livemode":         false,
		"pending_webhooks": 1,
		"request":          map[string]any{"id": nil, "idempotency_key": nil},
		"type":             typ,
	}, "", "  ")
	if err != nil {
		panic(err) // only maps of strings and numbers: cannot fail
	}
	return testEvent{id: id, typ: typ, order: o.PaymentIntentID, body: body}
}

func (o testOrder) taxRate() map[string]any {
	c := o.customer
	return map[string]any{"id": "txr_test_" + strings.ToLower(c.country), "object": "tax_rate", "percentage": percent(c.vatBP),
		"inclusive": true, "country": c.country, "jurisdiction": c.country, "display_name": "VAT", "tax_type": "vat", "active": true, "livemode": false}
}

// session is the Checkout Session. full is the object as the simulator
// serves it, with everything expandable filled in (line items with their
// taxes, the tax breakdown, the shipping cost's taxes and rate); without
// full it is what a webhook carries.
func (o testOrder) session(full bool) map[string]any {
	c := o.customer
	shipping := map[string]any{"amount_subtotal": o.ship, "amount_tax": o.shipTax, "amount_total": o.ship, "shipping_rate": "shr_test_" + c.curr}
	totals := map[string]any{"amount_discount": 0, "amount_shipping": o.ship, "amount_tax": o.tax}
	s := map[string]any{
		"id":              o.CheckoutSessionID,
		"object":          "checkout.session",
		"amount_subtotal": o.subtotal,
		"amount_total":    o.total,
		"created":         o.created.Unix(),
		"currency":        c.curr,
		"customer":        nil,
		"customer_details": map[string]any{
			"address": o.address(), "email": c.email, "name": c.name,
			"phone": nullable(c.phone), "tax_exempt": "none", "tax_ids": []any{},
		},
		"livemode":         false,
		"locale":           c.locale,
		"metadata":         map[string]any{"locale": c.locale},
		"mode":             "payment",
		"payment_intent":   o.PaymentIntentID,
		"payment_status":   "paid",
		"shipping_cost":    shipping,
		"shipping_details": map[string]any{"address": o.address(), "name": c.name},
		"status":           "complete",
		"total_details":    totals,
	}
	if !full {
		return s
	}
	shipping["shipping_rate"] = map[string]any{"id": "shr_test_" + c.curr, "object": "shipping_rate", "display_name": "PostNord MyPack",
		"tax_behavior": "inclusive", "type": "fixed_amount", "active": true, "livemode": false}
	shipping["taxes"] = []any{map[string]any{"amount": o.shipTax, "taxable_amount": o.ship - o.shipTax, "taxability_reason": "standard_rated", "rate": o.taxRate()}}
	totals["breakdown"] = map[string]any{"discounts": []any{},
		"taxes": []any{map[string]any{"amount": o.tax, "taxable_amount": o.total - o.tax, "taxability_reason": "standard_rated", "rate": o.taxRate()}}}
	items := make([]any, 0, len(o.lines))
	for _, l := range o.lines {
		items = append(items, map[string]any{
			"id": fmt.Sprintf("li_%s_%d", o.suffix, l.lineIndex), "object": "item",
			"amount_subtotal": l.total, "amount_discount": 0, "amount_tax": l.tax, "amount_total": l.total,
			"currency": c.curr, "description": l.product.name, "quantity": l.qty,
			"price": map[string]any{"id": "price_" + l.product.sku + "_" + c.curr, "object": "price", "currency": c.curr,
				"unit_amount": l.product.price[c.curr], "product": l.product.sku, "tax_behavior": "inclusive", "type": "one_time"},
			"discounts": []any{},
			"taxes":     []any{map[string]any{"amount": l.tax, "taxable_amount": l.total - l.tax, "taxability_reason": "standard_rated", "rate": o.taxRate()}},
		})
	}
	s["line_items"] = map[string]any{"object": "list", "data": items, "has_more": false}
	return s
}

func (o testOrder) paymentIntent() map[string]any {
	c := o.customer
	return map[string]any{
		"id":                   o.PaymentIntentID,
		"object":               "payment_intent",
		"amount":               o.total,
		"amount_received":      o.total,
		"capture_method":       "automatic",
		"created":              o.created.Unix(),
		"currency":             c.curr,
		"customer":             nil,
		"latest_charge":        "ch_" + o.suffix,
		"livemode":             false,
		"metadata":             map[string]any{"locale": c.locale},
		"payment_method":       "pm_" + o.suffix,
		"payment_method_types": []string{"card"},
		"receipt_email":        c.email,
		"shipping": map[string]any{
			"address": o.address(), "name": c.name, "phone": nullable(c.phone),
			"carrier": nil, "tracking_number": nil,
		},
		"status": "succeeded",
	}
}

// seed stores the order's Checkout Session and PaymentIntent in the
// simulator (PUT /_sim/stripe/...), so the details step reads this order.
func (o testOrder) seed(ctx context.Context, client *http.Client, simURL string) error {
	for _, obj := range []struct {
		path string
		v    map[string]any
	}{
		{"/_sim/stripe/payment_intents/" + o.PaymentIntentID, o.paymentIntent()},
		{"/_sim/stripe/checkout/sessions/" + o.CheckoutSessionID, o.session(true)},
	} {
		body, err := json.Marshal(obj.v)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, simURL+obj.path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %d %s", obj.path, resp.StatusCode, strings.TrimSpace(string(msg)))
		}
	}
	return nil
}
