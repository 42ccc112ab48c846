package sim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// stripeSim serves the Stripe reads of the order-details step in API
// 2023-10-16 shapes, as stripe-go v76 decodes them, honouring expand[] as
// Stripe does (line items, their taxes and discounts, the tax breakdown,
// the shipping cost's taxes and rate, the PaymentIntent and its latest
// charge are only there when expanded).
//
// Objects seeded through the control API (PUT /_sim/stripe/...) are served
// as given. Any other id gets an order derived from a hash of its suffix,
// so pi_X, cs_test_X and cs_X describe the same order: its Checkout Session
// is cs_test_X, the session's PaymentIntent is pi_X. No set-up is needed
// and every run sees the same data.
type stripeSim struct {
	s *Server

	mu       sync.Mutex
	sessions map[string]obj    // seeded Checkout Sessions by id
	byPI     map[string]string // PaymentIntent id → seeded session id
	pis      map[string]obj    // seeded PaymentIntents by id
	dir      string            // where seeded objects are kept; "" none
	// epoch is when the simulator started: derived orders are dated in
	// the hour before it, so an order tried today is dated today.
	epoch int64
}

type obj = map[string]any

// stripeAuth accepts what stripe-mock accepts: a test-mode secret or
// restricted key as a Bearer token or as the basic-auth user name, with no
// further "_" after sk_test_ / rk_test_ (stripe-mock refuses one).
func stripeAuth(r *http.Request) bool {
	key := ""
	if user, _, ok := r.BasicAuth(); ok {
		key = user
	} else if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		key = strings.TrimSpace(v)
	}
	rest, ok := strings.CutPrefix(key, "sk_test_")
	if !ok {
		rest, ok = strings.CutPrefix(key, "rk_test_")
	}
	return ok && rest != "" && !strings.Contains(rest, "_")
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

// under returns the expansions below prefix ("data." for the objects of a
// list), with the prefix cut off.
func under(ex map[string]bool, prefix string) map[string]bool {
	out := map[string]bool{}
	for k := range ex {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			out[rest] = true
		}
	}
	return out
}

// expandedLineItems is how many line items an expanded session carries
// ("the first handful", in Stripe's words); the rest are read from
// /line_items with has_more and starting_after.
const expandedLineItems = 10

func (st *stripeSim) paymentIntent(w http.ResponseWriter, r *http.Request) {
	if !st.authorized(w, r) {
		return
	}
	id := r.PathValue("id")
	pi := st.seededPaymentIntent(id)
	if pi == nil {
		seed, ok := seedOf(id, "pi_")
		if !ok {
			resourceMissing(w, "payment_intent", id, "intent")
			return
		}
		pi = st.newSimOrder(seed).paymentIntent()
	}
	writeJSON(w, http.StatusOK, renderPaymentIntent(pi, expands(r)))
}

func (st *stripeSim) listSessions(w http.ResponseWriter, r *http.Request) {
	if !st.authorized(w, r) {
		return
	}
	q := r.URL.Query()
	list := obj{"object": "list", "data": []any{}, "has_more": false, "url": "/v1/checkout/sessions"}
	if pi := q.Get("payment_intent"); pi != "" {
		ex := under(expands(r), "data.")
		sess, seeded := st.seededSessionFor(pi)
		switch {
		case sess != nil:
			list["data"] = []any{st.renderSession(sess, ex)}
		case seeded:
			// A PaymentIntent seeded without a session was made without
			// Checkout: no session lists it.
		default:
			seed, ok := seedOf(pi, "pi_")
			if !ok {
				resourceMissing(w, "payment_intent", pi, "payment_intent")
				return
			}
			list["data"] = []any{st.renderSession(st.newSimOrder(seed).session(), ex)}
		}
	}
	writeJSON(w, http.StatusOK, list)
}

func (st *stripeSim) session(w http.ResponseWriter, r *http.Request) {
	if !st.authorized(w, r) {
		return
	}
	id := r.PathValue("id")
	sess := st.seededSession(id)
	if sess == nil {
		seed, ok := sessionSeed(id)
		if !ok {
			resourceMissing(w, "checkout.session", id, "session")
			return
		}
		sess = st.newSimOrder(seed).session()
		sess["id"] = id
	}
	writeJSON(w, http.StatusOK, st.renderSession(sess, expands(r)))
}

func (st *stripeSim) lineItems(w http.ResponseWriter, r *http.Request) {
	if !st.authorized(w, r) {
		return
	}
	id := r.PathValue("id")
	sess := st.seededSession(id)
	if sess == nil {
		seed, ok := sessionSeed(id)
		if !ok {
			resourceMissing(w, "checkout.session", id, "session")
			return
		}
		sess = st.newSimOrder(seed).session()
	}
	q := r.URL.Query()
	limit := 10
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeStripeError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid_integer", "limit",
				"Invalid integer: "+v+" (limit must be between 1 and 100)")
			return
		}
		limit = n
	}
	items := allItems(sess)
	start := 0
	if after := q.Get("starting_after"); after != "" {
		start = -1
		for i, it := range items {
			if m, _ := it.(obj); m != nil && m["id"] == after {
				start = i + 1
			}
		}
		if start < 0 {
			resourceMissing(w, "line_item", after, "starting_after")
			return
		}
	}
	l := itemPage(items, start, limit, under(expands(r), "data."))
	l["url"] = "/v1/checkout/sessions/" + id + "/line_items"
	writeJSON(w, http.StatusOK, l)
}

// allItems returns a session's full list of line items.
func allItems(sess obj) []any {
	switch li := sess["line_items"].(type) {
	case obj:
		d, _ := li["data"].([]any)
		return d
	case []any:
		return li
	}
	return nil
}

// itemPage is one page of line items as Stripe lists them: each item's
// taxes and discounts only when expanded (taxes, discounts), its price's
// product an id unless expanded (price.product).
func itemPage(items []any, start, limit int, ex map[string]bool) obj {
	if start > len(items) {
		start = len(items)
	}
	end := min(start+limit, len(items))
	data := make([]any, 0, end-start)
	for _, it := range items[start:end] {
		m, ok := it.(obj)
		if !ok {
			continue
		}
		c := shallow(m)
		if !ex["taxes"] {
			delete(c, "taxes")
		}
		if !ex["discounts"] {
			delete(c, "discounts")
		}
		if price, ok := c["price"].(obj); ok {
			if _, expanded := price["product"].(obj); expanded && !ex["price.product"] {
				price = shallow(price)
				price["product"] = idOf(price["product"])
				c["price"] = price
			}
		}
		data = append(data, c)
	}
	return obj{"object": "list", "data": data, "has_more": end < len(items)}
}

// renderSession returns a session as Stripe sends it for the expansions
// asked for: line_items (the first expandedLineItems), their taxes and
// discounts, total_details.breakdown, shipping_cost.taxes (treated as
// expandable: the stricter reading) and shipping_cost.shipping_rate, and
// payment_intent are left out or reduced to ids unless expanded.
func (st *stripeSim) renderSession(sess obj, ex map[string]bool) obj {
	out := shallow(sess)
	delete(out, "line_items")
	if ex["line_items"] {
		l := itemPage(allItems(sess), 0, expandedLineItems, under(ex, "line_items.data."))
		l["url"] = fmt.Sprintf("/v1/checkout/sessions/%v/line_items", sess["id"])
		out["line_items"] = l
	}
	if td, ok := sess["total_details"].(obj); ok {
		c := shallow(td)
		if !ex["total_details.breakdown"] {
			delete(c, "breakdown")
		}
		out["total_details"] = c
	}
	if sc, ok := sess["shipping_cost"].(obj); ok {
		c := shallow(sc)
		if !ex["shipping_cost.taxes"] {
			delete(c, "taxes")
		}
		if rate, ok := c["shipping_rate"].(obj); ok && !ex["shipping_cost.shipping_rate"] {
			c["shipping_rate"] = rate["id"]
		}
		out["shipping_cost"] = c
	}
	piID := idOf(sess["payment_intent"])
	switch {
	case piID == "":
	case ex["payment_intent"]:
		pi := st.seededPaymentIntent(piID)
		if pi == nil {
			if m, ok := sess["payment_intent"].(obj); ok {
				pi = m
			} else {
				pi = paymentIntentFor(sess)
			}
		}
		out["payment_intent"] = renderPaymentIntent(pi, nil)
	default:
		out["payment_intent"] = piID
	}
	return out
}

// renderPaymentIntent reduces latest_charge to its id unless expanded.
func renderPaymentIntent(pi obj, ex map[string]bool) obj {
	out := shallow(pi)
	if ch, ok := out["latest_charge"].(obj); ok && !ex["latest_charge"] {
		out["latest_charge"] = ch["id"]
	}
	return out
}

// paymentIntentFor is the PaymentIntent of a seeded session whose
// PaymentIntent was not seeded: succeeded, for the session's amount.
func paymentIntentFor(sess obj) obj {
	id := idOf(sess["payment_intent"])
	return obj{
		"id": id, "object": "payment_intent", "amount": sess["amount_total"], "amount_received": sess["amount_total"],
		"currency": sess["currency"], "status": "succeeded", "created": sess["created"], "livemode": false,
		"metadata": obj{}, "latest_charge": nil, "customer": nil, "description": nil,
	}
}

// idOf is an expandable field's id: the string, or the object's "id".
func idOf(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case obj:
		s, _ := x["id"].(string)
		return s
	}
	return ""
}

func shallow(m obj) obj {
	c := make(obj, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
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

func (st *stripeSim) newSimOrder(seed string) simOrder { return newSimOrder(seed, st.epoch) }

// newSimOrder derives the order of seed, dated in the hour before epoch
// (Unix seconds).
func newSimOrder(seed string, epoch int64) simOrder {
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
	o.created = epoch - int64((h>>20)%3600)
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

// session is the order's Checkout Session with everything expandable
// filled in (renderSession leaves out what a request did not expand): all
// line items with their taxes and discounts, the tax breakdown, the
// shipping rate.
func (o simOrder) session() obj {
	byRate := map[int64]int64{}
	taxable := map[int64]int64{}
	var rates []int64
	for _, it := range o.items {
		if _, ok := byRate[it.rate]; !ok {
			rates = append(rates, it.rate)
		}
		byRate[it.rate] += it.tax
		taxable[it.rate] += it.subtotal
	}
	breakdown := make([]any, 0, len(rates))
	for _, rt := range rates {
		breakdown = append(breakdown, obj{"amount": byRate[rt], "taxable_amount": taxable[rt], "taxability_reason": "standard_rated", "rate": o.taxRate(rt)})
	}
	return obj{
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
			"shipping_rate": obj{"id": "shr_sim_" + o.m.currency, "object": "shipping_rate", "display_name": "PostNord MyPack",
				"tax_behavior": "exclusive", "type": "fixed_amount", "active": true, "livemode": false},
			"taxes": []any{},
		},
		"total_details": obj{"amount_discount": 0, "amount_shipping": o.m.shipping, "amount_tax": o.tax,
			"breakdown": obj{"discounts": []any{}, "taxes": breakdown}},
		"line_items":     o.lineItemList(),
		"livemode":       false,
		"locale":         strings.SplitN(o.m.locale, "-", 2)[0],
		"metadata":       o.metadata(),
		"mode":           "payment",
		"payment_intent": o.paymentIntent(),
		"payment_status": "paid",
		"status":         "complete",
		"url":            nil,
	}
}

func (o simOrder) taxRate(rate int64) obj {
	pct := float64(rate) / 100
	return obj{
		"id": fmt.Sprintf("txr_sim_%s_%d", o.p.cty, rate), "object": "tax_rate",
		"percentage": pct, "effective_percentage": pct, "inclusive": false,
		"country": o.p.cty, "display_name": "VAT", "tax_type": "vat", "active": true, "livemode": false,
	}
}

func (o simOrder) lineItemList() obj {
	data := make([]any, 0, len(o.items))
	for i, it := range o.items {
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
			"discounts": []any{},
			"taxes": []any{obj{
				"amount": it.tax, "taxable_amount": it.subtotal, "taxability_reason": "standard_rated",
				"rate": o.taxRate(it.rate),
			}},
		})
	}
	return obj{"object": "list", "data": data, "has_more": false, "url": "/v1/checkout/sessions/" + o.sessionID() + "/line_items"}
}
