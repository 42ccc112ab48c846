package sim

import (
	"fmt"
	"net/http"
	"strings"
)

// stripeSim serves the Stripe reads of the order-details step in API
// 2023-10-16 shapes, as stripe-go v76 decodes them. Every id gets an order
// derived from a hash of its suffix, so pi_X, cs_test_X and cs_X describe the
// same order: its Checkout Session is cs_test_X, the session's PaymentIntent
// is pi_X. No set-up is needed and every run sees the same data.
type stripeSim struct{ s *Server }

type obj = map[string]any

// stripeAuth accepts what stripe-mock accepts: a test-mode secret or
// restricted key as a Bearer token or as the basic-auth user name.
func stripeAuth(r *http.Request) bool {
	key := ""
	if user, _, ok := r.BasicAuth(); ok {
		key = user
	} else if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		key = strings.TrimSpace(v)
	}
	return (strings.HasPrefix(key, "sk_test_") || strings.HasPrefix(key, "rk_test_")) && len(key) > len("sk_test_")
}

// stripeErrors writes Stripe's error body; 5xx are api_error, the rest
// invalid_request_error.
func stripeErrors(w http.ResponseWriter, r *http.Request, status int, msg string) {
	typ := "invalid_request_error"
	if status >= 500 {
		typ = "api_error"
	}
	writeStripeError(w, status, typ, "", "", msg)
}

func writeStripeError(w http.ResponseWriter, status int, typ, code, param, msg string) {
	e := obj{"type": typ, "message": msg}
	if code != "" {
		e["code"] = code
		e["doc_url"] = "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(code, "_", "-")
	}
	if param != "" {
		e["param"] = param
	}
	w.Header().Set("Request-Id", fmt.Sprintf("req_sim%012d", nextID()))
	writeJSON(w, status, obj{"error": e})
}

// authorized answers 401 and returns false for a missing or live-looking key.
func (st *stripeSim) authorized(w http.ResponseWriter, r *http.Request) bool {
	if stripeAuth(r) {
		w.Header().Set("Request-Id", fmt.Sprintf("req_sim%012d", nextID()))
		if k := r.Header.Get("Idempotency-Key"); k != "" {
			w.Header().Set("Idempotency-Key", k)
		}
		return true
	}
	writeStripeError(w, http.StatusUnauthorized, "invalid_request_error", "", "",
		"Please authenticate by specifying an `Authorization` header with any valid looking testmode secret API key. For example, `Authorization: Bearer sk_test_123`.")
	return false
}

func (st *stripeSim) notFound(w http.ResponseWriter, r *http.Request) {
	writeStripeError(w, http.StatusNotFound, "invalid_request_error", "", "",
		fmt.Sprintf("Unrecognized request URL (%s: %s).", r.Method, r.URL.Path))
}

func resourceMissing(w http.ResponseWriter, kind, id, param string) {
	writeStripeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", param,
		fmt.Sprintf("No such %s: '%s'", kind, id))
}

// seedOf returns the part of an id the order is derived from, and whether the
// id has the expected prefix.
func seedOf(id string, prefixes ...string) (string, bool) {
	for _, p := range prefixes {
		if s, ok := strings.CutPrefix(id, p); ok && s != "" {
			return s, true
		}
	}
	return "", false
}

func sessionSeed(id string) (string, bool) { return seedOf(id, "cs_test_", "cs_live_", "cs_") }

// expands lists the expand[] / expand[N] query values.
func expands(r *http.Request) map[string]bool {
	out := map[string]bool{}
	for k, vs := range r.URL.Query() {
		if k == "expand" || strings.HasPrefix(k, "expand[") {
			for _, v := range vs {
				out[v] = true
			}
		}
	}
	return out
}

func (st *stripeSim) paymentIntent(w http.ResponseWriter, r *http.Request) {
	if !st.authorized(w, r) {
		return
	}
	id := r.PathValue("id")
	seed, ok := seedOf(id, "pi_")
	if !ok {
		resourceMissing(w, "payment_intent", id, "intent")
		return
	}
	writeJSON(w, http.StatusOK, newSimOrder(seed).paymentIntent())
}

func (st *stripeSim) listSessions(w http.ResponseWriter, r *http.Request) {
	if !st.authorized(w, r) {
		return
	}
	q := r.URL.Query()
	list := obj{"object": "list", "data": []any{}, "has_more": false, "url": "/v1/checkout/sessions"}
	if pi := q.Get("payment_intent"); pi != "" {
		seed, ok := seedOf(pi, "pi_")
		if !ok {
			resourceMissing(w, "payment_intent", pi, "payment_intent")
			return
		}
		ex := expands(r)
		list["data"] = []any{newSimOrder(seed).session(ex["data.line_items"], ex["data.payment_intent"])}
	}
	writeJSON(w, http.StatusOK, list)
}

func (st *stripeSim) session(w http.ResponseWriter, r *http.Request) {
	if !st.authorized(w, r) {
		return
	}
	id := r.PathValue("id")
	seed, ok := sessionSeed(id)
	if !ok {
		resourceMissing(w, "checkout.session", id, "session")
		return
	}
	ex := expands(r)
	sess := newSimOrder(seed).session(ex["line_items"], ex["payment_intent"])
	sess["id"] = id
	writeJSON(w, http.StatusOK, sess)
}

func (st *stripeSim) lineItems(w http.ResponseWriter, r *http.Request) {
	if !st.authorized(w, r) {
		return
	}
	id := r.PathValue("id")
	seed, ok := sessionSeed(id)
	if !ok {
		resourceMissing(w, "checkout.session", id, "session")
		return
	}
	l := newSimOrder(seed).lineItemList()
	l["url"] = "/v1/checkout/sessions/" + id + "/line_items"
	writeJSON(w, http.StatusOK, l)
}

// person is a customer profile of one country.
type person struct {
	name, email, phone                     string
	line1, line2, postal, city, state, cty string
}

type product struct {
	name  string
	price int64 // minor units, before tax
	rate  int64 // VAT basis points
}

type market struct {
	currency, locale string
	shipping         int64
	people           []person
	products         []product
}

// markets mixes countries, scripts and currency exponents: euro in Finland
// and Germany, kronor in Sweden, yen (no minor unit) in Japan.
var markets = []market{
	{currency: "eur", locale: "fi-FI", shipping: 590, people: []person{
		{name: "Aino Mäkinen", email: "aino.makinen", phone: "+358401234567", line1: "Hämeenkatu 12 A 5", postal: "33100", city: "Tampere", cty: "FI"},
		{name: "Jyrki Hämäläinen", email: "jyrki.hamalainen", phone: "+358501112233", line1: "Mannerheimintie 3", line2: "B 14", postal: "00100", city: "Helsinki", cty: "FI"},
		{name: "Sanna Öhman-Kärkkäinen", email: "sanna.ohman", phone: "+358442223344", line1: "Kauppakatu 21", postal: "40100", city: "Jyväskylä", cty: "FI"},
	}, products: []product{
		{"Kuksa, visakoivu", 3490, 2550}, {"Villasukat (40–42)", 2490, 2550}, {"Ruisleipä-kirja", 2900, 1000}, {"Sauna-aromi, koivu", 1290, 2550},
	}},
	{currency: "eur", locale: "de-DE", shipping: 490, people: []person{
		{name: "Jürgen Weiß", email: "juergen.weiss", phone: "+4930123456", line1: "Straße des 17. Juni 135", postal: "10623", city: "Berlin", cty: "DE"},
		{name: "Käthe Müller-Lüdenscheidt", email: "kaethe.mueller", phone: "+4989765432", line1: "Sendlinger Straße 8", postal: "80331", city: "München", cty: "DE"},
	}, products: []product{
		{"Filzpantoffeln Größe 42", 3990, 1900}, {"Kochbuch „Grüne Küche“", 2400, 700}, {"Bienenwachstücher", 1590, 1900},
	}},
	{currency: "sek", locale: "sv-SE", shipping: 4900, people: []person{
		{name: "Åsa Lindström", email: "asa.lindstrom", phone: "+46701234567", line1: "Drottninggatan 5", postal: "111 51", city: "Stockholm", cty: "SE"},
		{name: "Björn Ängström", email: "bjorn.angstrom", phone: "+46731112233", line1: "Kungsportsavenyen 10", line2: "lgh 1102", postal: "411 36", city: "Göteborg", cty: "SE"},
		{name: "Märta Öberg", email: "marta.oberg", phone: "+46709998877", line1: "Södra Förstadsgatan 2", postal: "211 43", city: "Malmö", cty: "SE"},
	}, products: []product{
		{"Älgskinnshandskar", 59900, 2500}, {"Dalahäst, röd", 34900, 2500}, {"Kanelbullar (6 st)", 8900, 1200}, {"Bok: Svenska sagor", 19900, 600},
	}},
	{currency: "jpy", locale: "ja-JP", shipping: 800, people: []person{
		{name: "山田 太郎", email: "taro.yamada", phone: "+81312345678", line1: "丸の内1-1-1", line2: "パレスビル 5階", postal: "100-0005", city: "千代田区", state: "東京都", cty: "JP"},
		{name: "佐藤 花子", email: "hanako.sato", phone: "+81667778888", line1: "梅田2-4-9", postal: "530-0001", city: "大阪市北区", state: "大阪府", cty: "JP"},
		{name: "鈴木 一郎", email: "ichiro.suzuki", phone: "+81752223333", line1: "烏丸通四条下ル 123", postal: "600-8008", city: "京都市下京区", state: "京都府", cty: "JP"},
	}, products: []product{
		{"有田焼 マグカップ", 3200, 1000}, {"抹茶 (宇治) 40g", 1800, 800}, {"手ぬぐい「富士」", 1200, 1000}, {"南部鉄器 急須", 9800, 1000},
	}},
}

// simItem is one line of a simulated order.
type simItem struct {
	product
	qty      int64
	subtotal int64
	tax      int64
}

// simOrder is the order a Stripe id stands for.
type simOrder struct {
	seed     string
	h        uint64
	m        market
	p        person
	items    []simItem
	created  int64
	subtotal int64
	tax      int64
	total    int64
}

func newSimOrder(seed string) simOrder {
	h := hash64(seed)
	// Currency first (eur, sek, jpy evenly), then the market within it.
	var m market
	switch h % 3 {
	case 0:
		m = markets[(h>>8)%2] // Finland or Germany
	case 1:
		m = markets[2]
	default:
		m = markets[3]
	}
	o := simOrder{seed: seed, h: h, m: m, p: m.people[(h>>16)%uint64(len(m.people))]}
	o.created = 1700000000 + int64((h>>20)%30000000)
	n := 1 + int((h>>24)%3)
	start := int((h >> 28) % uint64(len(m.products)))
	for i := 0; i < n; i++ {
		pr := m.products[(start+i)%len(m.products)]
		qty := 1 + int64((h>>(32+4*uint(i)))%3)
		it := simItem{product: pr, qty: qty, subtotal: pr.price * qty}
		it.tax = (it.subtotal*pr.rate + 5000) / 10000 // half up, integer only
		o.items = append(o.items, it)
		o.subtotal += it.subtotal
		o.tax += it.tax
	}
	o.total = o.subtotal + o.tax + m.shipping
	return o
}

func (o simOrder) piID() string      { return "pi_" + o.seed }
func (o simOrder) sessionID() string { return "cs_test_" + o.seed }

func (o simOrder) email() string {
	return fmt.Sprintf("%s+%06x@example.%s", o.p.email, o.h&0xffffff, strings.ToLower(o.p.cty))
}

func (o simOrder) address() obj {
	return obj{"line1": o.p.line1, "line2": o.p.line2, "postal_code": o.p.postal, "city": o.p.city, "state": o.p.state, "country": o.p.cty}
}

func (o simOrder) metadata() obj {
	return obj{"locale": o.m.locale, "order_source": "sim"}
}

func (o simOrder) paymentIntent() obj {
	return obj{
		"id": o.piID(), "object": "payment_intent",
		"amount": o.total, "amount_received": o.total, "amount_capturable": 0,
		"currency": o.m.currency, "status": "succeeded",
		"capture_method": "automatic", "confirmation_method": "automatic",
		"created": o.created, "customer": nil, "description": "Order " + o.seed,
		"latest_charge": "ch_" + o.seed, "livemode": false,
		"metadata": o.metadata(), "payment_method_types": []string{"card"},
		"receipt_email": o.email(),
		"shipping":      obj{"name": o.p.name, "phone": o.p.phone, "address": o.address(), "carrier": nil, "tracking_number": nil},
	}
}

func (o simOrder) session(withItems, withPI bool) obj {
	s := obj{
		"id": o.sessionID(), "object": "checkout.session",
		"amount_subtotal": o.subtotal, "amount_total": o.total, "currency": o.m.currency,
		"client_reference_id": nil, "created": o.created, "customer": nil,
		"customer_email": o.email(),
		"customer_details": obj{
			"email": o.email(), "name": o.p.name, "phone": o.p.phone, "address": o.address(),
			"tax_exempt": "none", "tax_ids": []any{},
		},
		"shipping_details": obj{"name": o.p.name, "address": o.address()},
		"shipping_cost": obj{
			"amount_subtotal": o.m.shipping, "amount_tax": 0, "amount_total": o.m.shipping,
			"shipping_rate": "shr_sim_" + o.m.currency,
		},
		"total_details":  obj{"amount_discount": 0, "amount_shipping": o.m.shipping, "amount_tax": o.tax},
		"livemode":       false,
		"locale":         strings.SplitN(o.m.locale, "-", 2)[0],
		"metadata":       o.metadata(),
		"mode":           "payment",
		"payment_intent": o.piID(),
		"payment_status": "paid",
		"status":         "complete",
		"url":            nil,
	}
	if withItems {
		s["line_items"] = o.lineItemList()
	}
	if withPI {
		s["payment_intent"] = o.paymentIntent()
	}
	return s
}

func (o simOrder) lineItemList() obj {
	data := make([]any, 0, len(o.items))
	for i, it := range o.items {
		pct := float64(it.rate) / 100
		data = append(data, obj{
			"id": fmt.Sprintf("li_%s_%d", o.seed, i+1), "object": "item",
			"amount_discount": 0, "amount_subtotal": it.subtotal, "amount_tax": it.tax,
			"amount_total": it.subtotal + it.tax, "currency": o.m.currency,
			"description": it.name, "quantity": it.qty,
			"price": obj{
				"id": fmt.Sprintf("price_sim_%s_%d", o.m.locale, it.price), "object": "price",
				"active": true, "currency": o.m.currency, "unit_amount": it.price,
				"product": fmt.Sprintf("prod_sim_%x", hash64(it.name)&0xffffffff), "type": "one_time",
				"tax_behavior": "exclusive", "livemode": false,
			},
			"taxes": []any{obj{
				"amount": it.tax, "taxable_amount": it.subtotal, "taxability_reason": "standard_rated",
				"rate": obj{
					"id": fmt.Sprintf("txr_sim_%s_%d", o.p.cty, it.rate), "object": "tax_rate",
					"percentage": pct, "effective_percentage": pct, "inclusive": false,
					"country": o.p.cty, "display_name": "VAT", "active": true, "livemode": false,
				},
			}},
		})
	}
	return obj{"object": "list", "data": data, "has_more": false, "url": "/v1/checkout/sessions/" + o.sessionID() + "/line_items"}
}
