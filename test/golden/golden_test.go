package golden

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stripe/stripe-go/v76/webhook"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/harness"
	"github.com/orderflow/orderflow/test/testenv"
)

// order is one file of the corpus.
type order struct {
	file   string
	Name   string   `json:"name"`
	Covers []string `json:"covers"`
	// Stripe holds the objects the fake Stripe serves: the Checkout
	// Session with every line item (absent for a payment without
	// Checkout) and the PaymentIntent.
	Stripe struct {
		CheckoutSession json.RawMessage `json:"checkout_session"`
		PaymentIntent   json.RawMessage `json:"payment_intent"`
	} `json:"stripe"`
	// Events are the webhooks Stripe sends, in order. A Checkout event
	// carries the session (without what only expansion gives), a
	// payment_intent one the PaymentIntent; payment_status overrides the
	// session's (a delayed payment completes unpaid first).
	Events []struct {
		Type          string `json:"type"`
		PaymentStatus string `json:"payment_status,omitempty"`
	} `json:"events"`
	Expect expect `json:"expect"`
}

// expect is what the providers must have received, written out by hand.
// Only the fields listed are compared; a field given as null must be
// absent.
type expect struct {
	// Status is the order's final status: completed, dead_lettered, or
	// parked (dead-lettered, and a later event of it parked behind).
	Status     string `json:"status"`
	DeadLetter *struct {
		Step   string `json:"step"`
		Reason string `json:"reason"` // a part of the error text
	} `json:"dead_letter,omitempty"`
	Netvisor map[string]any `json:"netvisor,omitempty"`
	Zoho     *struct {
		Contact map[string]any `json:"contact"`
		Deal    map[string]any `json:"deal"`
		// SameContactAs names another order of the corpus whose deal must
		// link the same contact (a repeat customer).
		SameContactAs string `json:"same_contact_as,omitempty"`
	} `json:"zoho,omitempty"`
	PostNord map[string]any `json:"postnord,omitempty"`
	Mailgun  map[string]any `json:"mailgun,omitempty"`
	Airtable map[string]any `json:"airtable,omitempty"`
	// None lists the providers that must have received nothing for the
	// order (a dead letter stops the chain).
	None []string `json:"none,omitempty"`
}

func decodeJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

func loadCorpus(t *testing.T) []*order {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	var out []*order
	names := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		o := &order{file: filepath.Base(f)}
		if err := decodeJSON(raw, o); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if o.Name == "" || names[o.Name] || len(o.Events) == 0 || o.Expect.Status == "" {
			t.Fatalf("%s: needs a unique name, events and an expected status", f)
		}
		names[o.Name] = true
		out = append(out, o)
	}
	if len(out) < 25 {
		t.Fatalf("the corpus has %d orders; it must have at least 25", len(out))
	}
	return out
}

// key is the order key: the PaymentIntent id.
func (o *order) key(t *testing.T) string {
	var pi struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(o.Stripe.PaymentIntent, &pi); err != nil || pi.ID == "" {
		t.Fatalf("%s: payment_intent has no id", o.file)
	}
	return pi.ID
}

// exchange is one request a provider received, with its answer.
type exchange struct {
	method, path, contentType string
	query                     map[string][]string
	body, resp                []byte
	status                    int
}

// recorder records every provider request passing to the simulator.
type recorder struct {
	h  http.Handler
	mu sync.Mutex
	ex []exchange
}

type capture struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (c *capture) WriteHeader(s int) { c.status = s; c.ResponseWriter.WriteHeader(s) }
func (c *capture) Write(b []byte) (int, error) {
	c.buf.Write(b)
	return c.ResponseWriter.Write(b)
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	cw := &capture{ResponseWriter: w, status: 200}
	rc.h.ServeHTTP(cw, r)
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		return
	}
	rc.mu.Lock()
	rc.ex = append(rc.ex, exchange{method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"),
		query: r.URL.Query(), body: body, resp: cw.buf.Bytes(), status: cw.status})
	rc.mu.Unlock()
}

func (rc *recorder) all(method, path string) []exchange {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []exchange
	for _, e := range rc.ex {
		if e.method == method && e.path == path {
			out = append(out, e)
		}
	}
	return out
}

const (
	nvCustomerKey = "golden-customer-key"
	nvPartnerKey  = "golden-partner-key"
	mgDomain      = harness.MailgunDomain
	webhookSecret = "whsec_golden"
)

// eventBody is a signed-ready webhook for event i of the order.
func (o *order) eventBody(t *testing.T, i int) []byte {
	t.Helper()
	ev := o.Events[i]
	var object map[string]any
	if strings.HasPrefix(ev.Type, "checkout.session.") {
		if err := decodeJSON(o.Stripe.CheckoutSession, &object); err != nil {
			t.Fatalf("%s: checkout_session: %v", o.file, err)
		}
		// A webhook carries neither the line items nor expanded objects.
		delete(object, "line_items")
		if pi, ok := object["payment_intent"].(map[string]any); ok {
			object["payment_intent"] = pi["id"]
		}
		if td, ok := object["total_details"].(map[string]any); ok {
			delete(td, "breakdown")
		}
		if sc, ok := object["shipping_cost"].(map[string]any); ok {
			delete(sc, "taxes")
			if r, ok := sc["shipping_rate"].(map[string]any); ok {
				sc["shipping_rate"] = r["id"]
			}
		}
		if ev.PaymentStatus != "" {
			object["payment_status"] = ev.PaymentStatus
		}
	} else if err := decodeJSON(o.Stripe.PaymentIntent, &object); err != nil {
		t.Fatalf("%s: payment_intent: %v", o.file, err)
	}
	b, err := json.Marshal(map[string]any{
		"id": fmt.Sprintf("evt_golden_%s_%d", strings.ReplaceAll(o.Name, "-", "_"), i), "object": "event", "api_version": "2023-10-16",
		"created": time.Now().Unix(), "livemode": false, "pending_webhooks": 1, "type": ev.Type,
		"data": map[string]any{"object": object},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t *testing.T, url string, body []byte) {
	t.Helper()
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: webhookSecret, Timestamp: time.Now()})
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signed.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("gateway answered %d: %s", resp.StatusCode, b)
	}
}

func put(t *testing.T, url string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("seeding %s: %d %s", url, resp.StatusCode, b)
	}
}

// states follows orders.state.
type states struct {
	cl *kgo.Client
	m  map[string]*processor.State
}

func (s *states) wait(t *testing.T, what string, timeout time.Duration, cond func(map[string]*processor.State) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond(s.m) {
		if time.Now().After(deadline) {
			got := map[string]string{}
			for k, st := range s.m {
				got[k] = string(st.Status) + " " + st.LastError
			}
			t.Fatalf("timed out waiting for %s; states: %v", what, got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fs := s.cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			if st, err := processor.DecodeState(r.Value); err == nil {
				s.m[string(r.Key)] = st
			}
		})
	}
}

func TestGoldenOrders(t *testing.T) {
	corpus := loadCorpus(t)
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers, 3)
	seeds := strings.Split(brokers, ",")

	s, err := sim.New(sim.Config{NetvisorCustomerKey: nvCustomerKey, NetvisorPartnerKey: nvPartnerKey})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{h: s.Handler()}
	srv := httptest.NewServer(rec)
	t.Cleanup(func() { srv.Close(); _ = s.Close() })

	keys := map[string]string{} // name → order key
	for _, o := range corpus {
		k := o.key(t)
		keys[o.Name] = k
		put(t, srv.URL+"/_sim/stripe/payment_intents/"+k, o.Stripe.PaymentIntent)
		if len(o.Stripe.CheckoutSession) > 0 && string(o.Stripe.CheckoutSession) != "null" {
			var cs struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(o.Stripe.CheckoutSession, &cs)
			put(t, srv.URL+"/_sim/stripe/checkout/sessions/"+cs.ID, o.Stripe.CheckoutSession)
		}
	}

	log := slog.New(slog.DiscardHandler)
	if os.Getenv("ORDERFLOW_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := processor.DefaultConfig(names)
	cfg.Group = names.Prefix + "processor"
	cfg.CommitInterval = 100 * time.Millisecond
	cfg.Retry.BaseDelay, cfg.Retry.MaxDelay = 20*time.Millisecond, 200*time.Millisecond
	harness.RunProcessor(t, cfg, harness.Providers(t, srv.URL, nvCustomerKey, nvPartnerKey), seeds, log, prometheus.NewRegistry())

	gcfg := gateway.Config{Topic: names.Orders, Secrets: []string{webhookSecret}}
	prod, err := gateway.NewKafkaProducer(gcfg, kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prod.Close(context.Background()) })
	gw, err := gateway.New(gcfg, prod, gateway.NewMemoryDeduper(0), log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	gwSrv := httptest.NewServer(gw.Handler())
	t.Cleanup(gwSrv.Close)
	hook := gwSrv.URL + gateway.WebhookPath

	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(names.State), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	st := &states{cl: cl, m: map[string]*processor.State{}}

	// Every order's events; an order paid later (a delayed payment method)
	// gets its next event once the processor recorded it awaiting payment.
	var later []*order
	for _, o := range corpus {
		post(t, hook, o.eventBody(t, 0))
		if o.Events[0].PaymentStatus == "unpaid" {
			later = append(later, o)
			continue
		}
		for i := 1; i < len(o.Events); i++ {
			post(t, hook, o.eventBody(t, i))
		}
	}
	for _, o := range later {
		k := keys[o.Name]
		st.wait(t, o.Name+" awaiting payment", 60*time.Second, func(m map[string]*processor.State) bool {
			return m[k] != nil && m[k].Status == processor.StatusAwaitingPayment
		})
		for _, e := range rec.all(http.MethodPost, "/crm/v3/Deals/upsert") {
			if strings.Contains(string(e.body), k) {
				t.Errorf("%s: a deal was booked before the payment succeeded", o.Name)
			}
		}
		for i := 1; i < len(o.Events); i++ {
			post(t, hook, o.eventBody(t, i))
		}
	}
	st.wait(t, "every order finished", 120*time.Second, func(m map[string]*processor.State) bool {
		for _, o := range corpus {
			s := m[keys[o.Name]]
			if s == nil || (s.Status != processor.StatusCompleted && s.Status != processor.StatusDeadLettered && s.Status != processor.StatusParked &&
				s.Status != processor.StatusPaymentFailed) {
				return false
			}
			// A dead-lettered order whose later event is still on its way
			// becomes parked when that event arrives.
			if o.Expect.Status == string(processor.StatusParked) && s.Status == processor.StatusDeadLettered {
				return false
			}
		}
		return true
	})
	// The production log hears the final status within seconds.
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := ""
		for _, o := range corpus {
			if want, ok := o.Expect.Airtable["Status"].(string); ok {
				if got, _ := lastRow(rec, keys[o.Name])["Status"].(string); got != want {
					missing = o.Name + ": " + got
				}
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("production-log rows not final after 30 s (%s)", missing)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	contacts := map[string]string{} // order name → contact id its deal links
	for _, o := range corpus {
		t.Run(o.Name, func(t *testing.T) {
			k := keys[o.Name]
			s := st.m[k]
			if string(s.Status) != o.Expect.Status {
				t.Fatalf("status %s (%s), want %s", s.Status, s.LastError, o.Expect.Status)
			}
			if dl := o.Expect.DeadLetter; dl != nil {
				if s.DeadLetter == nil || s.DeadLetter.Step != dl.Step || !strings.Contains(s.LastError, dl.Reason) {
					t.Errorf("dead letter %+v %q, want step %s with %q", s.DeadLetter, s.LastError, dl.Step, dl.Reason)
				}
			}
			checkNone(t, rec, k, o.Expect.None)
			var order struct{ Number string }
			if s.Order != nil {
				order.Number = s.Order.Number
			}
			var shipped map[string]any
			if o.Expect.PostNord != nil {
				shipped = bookingFor(t, rec, k)
			}
			if want := o.Expect.Netvisor; want != nil {
				if shipped != nil {
					resolve(want, shipped)
				}
				match(t, "netvisor", invoiceFor(t, rec, order.Number), want)
			}
			if z := o.Expect.Zoho; z != nil {
				contact, deal, linked := crmFor(t, rec, k)
				match(t, "zoho contact", contact, z.Contact)
				match(t, "zoho deal", deal, z.Deal)
				contacts[o.Name] = linked
				if z.SameContactAs != "" {
					if other, ok := contacts[z.SameContactAs]; !ok || other != linked || linked == "" {
						t.Errorf("deal links contact %q, %s's links %q: a repeat customer must be one contact", linked, z.SameContactAs, other)
					}
				}
			}
			if want := o.Expect.PostNord; want != nil {
				match(t, "postnord", shipped, want)
			}
			if want := o.Expect.Mailgun; want != nil {
				got := emailFor(t, rec, k)
				if shipped != nil {
					// The link PostNord returned, not one built from a template.
					resolve(want, shipped)
				}
				match(t, "mailgun", got, want)
			}
			if want := o.Expect.Airtable; want != nil {
				match(t, "airtable", lastRow(rec, k), want)
			}
			if s.Status == processor.StatusCompleted {
				crossCheck(t, invoiceFor(t, rec, order.Number), rec, k, shipped)
			}
		})
	}
}

// rat reads "1234,56", "1234.56" or "1234.560 KWD" exactly.
func rat(t *testing.T, v any) *big.Rat {
	t.Helper()
	s := strings.Fields(strings.Replace(fmt.Sprint(v), ",", ".", 1))
	if len(s) == 0 {
		t.Fatalf("no amount in %q", v)
	}
	r, ok := new(big.Rat).SetString(s[0])
	if !ok {
		t.Fatalf("amount %q", v)
	}
	return r
}

// crossCheck asserts the invariants across systems on what they received,
// independent of the expectations: the invoice's lines add up to its
// amount and their VAT with the sums of its foreign-tax lines (vatcode
// NONE) to the tax the email shows (vat_included plus tax_added); the CRM deal (when it books an amount), the email and the
// production log carry the same total; every system has the same buyer,
// and the label and the invoice the same recipient.
func crossCheck(t *testing.T, inv map[string]any, rec *recorder, key string, shipped map[string]any) {
	t.Helper()
	sum, vat := new(big.Rat), new(big.Rat)
	for _, l := range inv["lines"].([]any) {
		line := l.(map[string]any)
		sum.Add(sum, rat(t, line["sum"]))
		vat.Add(vat, rat(t, line["vat_sum"]))
		if line["vatcode"] == "NONE" {
			vat.Add(vat, rat(t, line["sum"]))
		}
	}
	total := rat(t, inv["amount"])
	mail := emailFor(t, rec, key)
	vars := mail["variables"].(map[string]any)
	contact, deal, _ := crmFor(t, rec, key)
	row := lastRow(rec, key)
	if sum.Cmp(total) != 0 || total.Cmp(rat(t, vars["total"])) != 0 || total.Cmp(rat(t, row["Total"])) != 0 {
		t.Errorf("totals differ: invoice lines %s, invoice %s, email %v, production log %v", sum.FloatString(3), total.FloatString(3), vars["total"], row["Total"])
	}
	if a, ok := deal["Amount"]; ok && total.Cmp(rat(t, a)) != 0 {
		t.Errorf("CRM amount %v, invoice %s", a, total.FloatString(3))
	}
	if emailVAT := new(big.Rat).Add(rat(t, vars["vat_included"]), rat(t, vars["tax_added"])); vat.Cmp(emailVAT) != 0 {
		t.Errorf("invoice VAT and foreign tax %s, email's VAT included %v + added %v", vat.FloatString(3), vars["vat_included"], vars["tax_added"])
	}
	buyer := inv["customer"].(map[string]any)["name"]
	// The contact's two names make up the buyer's, in either order: a
	// name in Han, kana or Hangul puts the family name (Last_Name) first.
	name := fmt.Sprint(contact["Last_Name"])
	if first := contact["First_Name"]; first != nil {
		if n := fmt.Sprint(contact["Last_Name"], " ", first); n == buyer {
			name = n
		} else {
			name = fmt.Sprint(first, " ", contact["Last_Name"])
		}
	}
	if name != buyer || mail["to"].(map[string]any)["name"] != buyer || row["Customer"] != buyer {
		t.Errorf("buyer differs: invoice %v, CRM %q, email %v, production log %v", buyer, name, mail["to"], row["Customer"])
	}
	if shipped != nil {
		label := shipped["consignee"].(map[string]any)["nameIdentification"].(map[string]any)["name"]
		if d := inv["delivery"].(map[string]any)["name"]; label != d {
			t.Errorf("recipient differs: label %v, invoice delivery %v", label, d)
		}
	}
}

// match compares what a provider received with what the corpus expects:
// every expected field, recursively; a null expectation means absent.
func match(t *testing.T, where string, got, want any) {
	t.Helper()
	for _, d := range diff(where, got, want) {
		t.Error(d)
	}
}

func diff(path string, got, want any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s = %v, want an object", path, got)}
		}
		var out []string
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			gv, has := g[k]
			if w[k] == nil {
				if has && gv != nil && gv != "" {
					out = append(out, fmt.Sprintf("%s.%s = %v, want it absent", path, k, gv))
				}
				continue
			}
			if !has {
				out = append(out, fmt.Sprintf("%s.%s is missing, want %v", path, k, w[k]))
				continue
			}
			out = append(out, diff(path+"."+k, gv, w[k])...)
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s = %v, want %d elements: %v", path, got, len(w), want)}
		}
		var out []string
		for i := range w {
			out = append(out, diff(fmt.Sprintf("%s[%d]", path, i), g[i], w[i])...)
		}
		return out
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return []string{fmt.Sprintf("%s = %#v, want %#v", path, got, want)}
	}
	return nil
}

// resolve fills the placeholders {item_id} and {tracking_url} of an
// expectation with what PostNord returned for the order.
func resolve(want any, shipped map[string]any) any {
	switch w := want.(type) {
	case map[string]any:
		for k, v := range w {
			w[k] = resolve(v, shipped)
		}
	case []any:
		for i, v := range w {
			w[i] = resolve(v, shipped)
		}
	case string:
		w = strings.ReplaceAll(w, "{item_id}", fmt.Sprint(shipped["item_id"]))
		return strings.ReplaceAll(w, "{tracking_url}", fmt.Sprint(shipped["tracking_url"]))
	}
	return want
}

func generic(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = decodeJSON(b, &out)
	return out
}

// businessCustomer is the customer.nv record the invoice links to by
// customer code, or nil.
func businessCustomer(rec *recorder, link nvValue) any {
	if link.Type != "customer" {
		return nil
	}
	var found []map[string]any
	for _, e := range rec.all(http.MethodPost, "/customer.nv") {
		var doc struct {
			Code    string  `xml:"Customer>CustomerBaseInformation>InternalIdentifier"`
			VAT     string  `xml:"Customer>CustomerBaseInformation>ExternalIdentifier"`
			Name    string  `xml:"Customer>CustomerBaseInformation>Name"`
			Street  string  `xml:"Customer>CustomerBaseInformation>StreetAddress"`
			Line2   string  `xml:"Customer>CustomerBaseInformation>AdditionalAddressLine"`
			City    string  `xml:"Customer>CustomerBaseInformation>City"`
			Post    string  `xml:"Customer>CustomerBaseInformation>PostNumber"`
			Country nvValue `xml:"Customer>CustomerBaseInformation>Country"`
			Email   string  `xml:"Customer>CustomerBaseInformation>Email"`
		}
		if xml.Unmarshal([]byte(latin9(e.body)), &doc) != nil || doc.Code != link.Value || e.status != http.StatusOK {
			continue
		}
		found = append(found, map[string]any{"code": doc.Code, "vat": doc.VAT, "name": doc.Name, "line1": doc.Street, "line2": doc.Line2,
			"town": doc.City, "post": doc.Post, "country": doc.Country.Value, "email": doc.Email, "added": float64(len(found) + 1)})
	}
	if len(found) == 0 {
		return nil
	}
	return found[len(found)-1]
}

// checkNone asserts that the listed providers received nothing for the
// order.
func checkNone(t *testing.T, rec *recorder, key string, providers []string) {
	t.Helper()
	paths := map[string][]string{
		"zoho":     {"/crm/v3/Deals/upsert"},
		"postnord": {"/rest/shipment/v3/edi/labels/pdf"},
		"netvisor": {"/salesinvoice.nv"},
		"mailgun":  {"/v3/" + mgDomain + "/messages"},
	}
	for _, p := range providers {
		for _, path := range paths[p] {
			for _, e := range rec.all(http.MethodPost, path) {
				if bytes.Contains(e.body, []byte(key)) || bytes.Contains(e.body, []byte(strings.ToUpper(key[len(key)-10:]))) {
					t.Errorf("%s received a request for the order: %.200s", p, e.body)
				}
			}
		}
	}
}

func lastRow(rec *recorder, key string) map[string]any {
	var row map[string]any
	for _, e := range rec.all(http.MethodPatch, "/v0/"+harness.AirtableBase+"/"+harness.AirtableTable) {
		var body struct {
			Records []struct {
				Fields map[string]any `json:"fields"`
			} `json:"records"`
		}
		if decodeJSON(e.body, &body) != nil || e.status != 200 {
			continue
		}
		for _, r := range body.Records {
			if r.Fields["Order ID"] == key {
				row = r.Fields
			}
		}
	}
	return row
}

func crmFor(t *testing.T, rec *recorder, key string) (contact, deal map[string]any, contactID string) {
	t.Helper()
	for _, e := range rec.all(http.MethodPost, "/crm/v3/Deals/upsert") {
		var body struct {
			Data []map[string]any `json:"data"`
		}
		if decodeJSON(e.body, &body) == nil && len(body.Data) == 1 && body.Data[0]["Order_ID"] == key {
			deal = body.Data[0]
			if cn, ok := deal["Contact_Name"].(map[string]any); ok {
				contactID = fmt.Sprint(cn["id"])
			}
		}
	}
	if deal == nil {
		t.Fatalf("no deal upserted for %s", key)
	}
	// The contact whose upsert answered with the id the deal links.
	for _, e := range rec.all(http.MethodPost, "/crm/v3/Contacts/upsert") {
		var body struct {
			Data []map[string]any `json:"data"`
		}
		var resp struct {
			Data []struct {
				Details struct {
					ID string `json:"id"`
				} `json:"details"`
			} `json:"data"`
		}
		if decodeJSON(e.body, &body) == nil && json.Unmarshal(e.resp, &resp) == nil && len(resp.Data) == 1 && resp.Data[0].Details.ID == contactID {
			contact = body.Data[0]
		}
	}
	if contact == nil {
		t.Fatalf("no contact upsert answered with id %s", contactID)
	}
	return contact, deal, contactID
}

// bookingFor is the PostNord booking of the order: the locale, the
// consignee and what PostNord answered (item id, tracking URL).
func bookingFor(t *testing.T, rec *recorder, key string) map[string]any {
	t.Helper()
	for _, e := range rec.all(http.MethodPost, "/rest/shipment/v3/edi/labels/pdf") {
		var body struct {
			Shipment []struct {
				References []struct {
					ReferenceNo string `json:"referenceNo"`
				} `json:"references"`
				Parties struct {
					Consignee struct {
						Party map[string]any `json:"party"`
					} `json:"consignee"`
				} `json:"parties"`
			} `json:"shipment"`
		}
		if decodeJSON(e.body, &body) != nil || len(body.Shipment) != 1 || len(body.Shipment[0].References) == 0 || body.Shipment[0].References[0].ReferenceNo != key {
			continue
		}
		var resp struct {
			BookingResponse struct {
				IDInformation []struct {
					IDs []struct {
						IDType string `json:"idType"`
						Value  string `json:"value"`
					} `json:"ids"`
					URLs []struct {
						Type, URL string
					} `json:"urls"`
				} `json:"idInformation"`
			} `json:"bookingResponse"`
		}
		_ = json.Unmarshal(e.resp, &resp)
		out := map[string]any{"consignee": body.Shipment[0].Parties.Consignee.Party}
		if l := e.query["locale"]; len(l) > 0 {
			out["locale"] = l[0]
		}
		for _, info := range resp.BookingResponse.IDInformation {
			for _, id := range info.IDs {
				if id.IDType == "itemId" {
					out["item_id"] = id.Value
				}
			}
			for _, u := range info.URLs {
				if u.Type == "TRACKING" {
					out["tracking_url"] = u.URL
				}
			}
		}
		return out
	}
	t.Fatalf("no PostNord booking for %s", key)
	return nil
}

// emailFor is the confirmation: to, subject and the template variables.
func emailFor(t *testing.T, rec *recorder, key string) map[string]any {
	t.Helper()
	for _, e := range rec.all(http.MethodPost, "/v3/"+mgDomain+"/messages") {
		_, params, err := mime.ParseMediaType(e.contentType)
		if err != nil {
			continue
		}
		form, err := multipart.NewReader(bytes.NewReader(e.body), params["boundary"]).ReadForm(1 << 20)
		if err != nil || len(form.Value["v:order_id"]) == 0 || form.Value["v:order_id"][0] != key {
			continue
		}
		var vars any
		if err := decodeJSON([]byte(form.Value["h:X-Mailgun-Variables"][0]), &vars); err != nil {
			t.Fatal(err)
		}
		to, err := mail.ParseAddress(form.Value["to"][0])
		if err != nil {
			t.Fatalf("to %q: %v", form.Value["to"][0], err)
		}
		subject := ""
		if v := form.Value["subject"]; len(v) > 0 {
			subject = v[0]
		}
		return map[string]any{"to": map[string]any{"name": to.Name, "address": to.Address}, "subject": subject, "variables": vars}
	}
	t.Fatalf("no email for %s", key)
	return nil
}

// latin9 decodes Netvisor's ISO-8859-15 request body.
func latin9(b []byte) string {
	special := map[byte]rune{0xa4: '€', 0xa6: 'Š', 0xa8: 'š', 0xb4: 'Ž', 0xb8: 'ž', 0xbc: 'Œ', 0xbd: 'œ', 0xbe: 'Ÿ'}
	var sb strings.Builder
	for _, c := range b {
		if r, ok := special[c]; ok {
			sb.WriteRune(r)
		} else {
			sb.WriteRune(rune(c))
		}
	}
	return sb.String()
}

type nvValue struct {
	Value    string `xml:",chardata"`
	Type     string `xml:"type,attr"`
	Currency string `xml:"iso4217currencycode,attr"`
	VatCode  string `xml:"vatcode,attr"`
}

// invoiceFor is the order's invoice (found by our reference, the order
// number) in the corpus' terms.
func invoiceFor(t *testing.T, rec *recorder, number string) map[string]any {
	t.Helper()
	for _, e := range rec.all(http.MethodPost, "/salesinvoice.nv") {
		var doc struct {
			Number      string  `xml:"SalesInvoice>SalesInvoiceNumber"`
			Date        string  `xml:"SalesInvoice>SalesInvoiceDate"`
			Amount      nvValue `xml:"SalesInvoice>SalesInvoiceAmount"`
			After       string  `xml:"SalesInvoice>SalesInvoiceFreeTextAfterLines"`
			Ref         string  `xml:"SalesInvoice>SalesInvoiceOurReference"`
			Link        nvValue `xml:"SalesInvoice>InvoicingCustomerIdentifier"`
			Name        string  `xml:"SalesInvoice>InvoicingCustomerName"`
			Line1       string  `xml:"SalesInvoice>InvoicingCustomerAddressLine"`
			Line2       string  `xml:"SalesInvoice>InvoicingCustomerAdditionalAddressLine"`
			Post        string  `xml:"SalesInvoice>InvoicingCustomerPostNumber"`
			Town        string  `xml:"SalesInvoice>InvoicingCustomerTown"`
			Country     string  `xml:"SalesInvoice>InvoicingCustomerCountryCode"`
			DName       string  `xml:"SalesInvoice>DeliveryAddressName"`
			DLine       string  `xml:"SalesInvoice>DeliveryAddressLine"`
			DPost       string  `xml:"SalesInvoice>DeliveryAddressPostNumber"`
			DTown       string  `xml:"SalesInvoice>DeliveryAddressTown"`
			DCountry    string  `xml:"SalesInvoice>DeliveryAddressCountryCode"`
			InvoiceLine []struct {
				Name     string  `xml:"ProductName"`
				Price    nvValue `xml:"ProductUnitPrice"`
				VAT      nvValue `xml:"ProductVatPercentage"`
				Quantity string  `xml:"SalesInvoiceProductLineQuantity"`
				Text     string  `xml:"SalesInvoiceProductLineFreeText"`
				VatSum   string  `xml:"SalesInvoiceProductLineVatSum"`
				Sum      string  `xml:"SalesInvoiceProductLineSum"`
			} `xml:"SalesInvoice>InvoiceLines>InvoiceLine>SalesInvoiceProductLine"`
		}
		if err := xml.Unmarshal([]byte(latin9(e.body)), &doc); err != nil || doc.Ref != number || number == "" {
			continue
		}
		lines := []any{}
		for _, l := range doc.InvoiceLine {
			lines = append(lines, map[string]any{"name": l.Name, "price": l.Price.Value, "price_type": l.Price.Type, "vat": l.VAT.Value,
				"vatcode": l.VAT.VatCode, "quantity": l.Quantity, "text": l.Text, "vat_sum": l.VatSum, "sum": l.Sum})
		}
		return generic(map[string]any{
			"number": doc.Number, "date": doc.Date, "amount": doc.Amount.Value, "currency": doc.Amount.Currency, "free_text_after": doc.After,
			"customer":          map[string]any{"name": doc.Name, "line1": doc.Line1, "line2": doc.Line2, "post": doc.Post, "town": doc.Town, "country": doc.Country},
			"customer_link":     map[string]any{"type": doc.Link.Type, "value": doc.Link.Value},
			"business_customer": businessCustomer(rec, doc.Link),
			"delivery":          map[string]any{"name": doc.DName, "line": doc.DLine, "post": doc.DPost, "town": doc.DTown, "country": doc.DCountry},
			"lines":             lines,
		}).(map[string]any)
	}
	t.Fatalf("no invoice with reference %q", number)
	return nil
}
