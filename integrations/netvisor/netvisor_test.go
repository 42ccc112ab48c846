package netvisor

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/text/encoding/charmap"

	"github.com/orderflow/orderflow/integrations"
)

const (
	testCustomerKey = "customer-secret-key"
	testPartnerKey  = "partner-secret-key"
)

type captured struct {
	method, path, rawQuery, url string
	header                      http.Header
	body                        []byte
}

// fakeNetvisor answers with status and body (or a testdata file when body
// starts with "file:") and records requests.
type fakeNetvisor struct {
	status int
	body   string
	header http.Header

	mu       sync.Mutex
	reqs     []captured
	inFlight atomic.Int32
	maxIn    atomic.Int32
	delay    time.Duration
}

func (f *fakeNetvisor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxIn.Load()
		if n <= m || f.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(f.delay)
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, captured{r.Method, r.URL.Path, r.URL.RawQuery, "http://" + r.Host + r.URL.RequestURI(), r.Header.Clone(), b})
	f.mu.Unlock()
	for k, v := range f.header {
		w.Header()[k] = v
	}
	body := f.body
	if name, ok := strings.CutPrefix(body, "file:"); ok {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			panic(err)
		}
		body = string(raw)
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(f.status)
	_, _ = io.WriteString(w, body)
}

var fixedNow = time.Date(2026, 11, 28, 10, 40, 52, 0, time.UTC)

func testConfig(base string) Config {
	return Config{
		BaseURL:            base,
		Sender:             "orderflow",
		CustomerID:         "CUST1",
		CustomerKey:        testCustomerKey,
		PartnerID:          "PART1",
		PartnerKey:         testPartnerKey,
		OrganisationID:     "1967543-8",
		Language:           "EN",
		CustomerIdentifier: "42",
		ProductIdentifier:  "1697",
	}
}

func newTest(t *testing.T, f *fakeNetvisor, mod func(*Config)) *Client {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := testConfig(srv.URL)
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return fixedNow }
	return c
}

// testOrder is an order with prices exclusive of VAT, two rates and taxed
// shipping, with the amounts Stripe would send.
func testOrder() integrations.Order {
	fi := func(amount, taxable int64, pct string) []integrations.Tax {
		return []integrations.Tax{{Amount: amount, TaxableAmount: taxable, Percentage: pct, TaxabilityReason: "standard_rated", Country: "FI"}}
	}
	return integrations.Order{
		Model:          2,
		ID:             "pi_3Abcdefgh00000000RS",
		Number:         "OF-00000000RS",
		Currency:       "eur",
		AmountTotal:    41943,
		AmountSubtotal: 35450,
		AmountTax:      5503,
		AmountShipping: 990,
		Items: []integrations.LineItem{
			{SKU: "price_1", Description: "Kahvimuki <Åsa> & €", Quantity: 2, UnitAmount: 1250, AmountSubtotal: 2500, AmountTax: 638, AmountTotal: 3138,
				TaxBehavior: "exclusive", Taxes: fi(638, 2500, "25.5")},
			{SKU: "price_2", Description: "Kirja Łódź", Quantity: 1, UnitAmount: 32950, AmountSubtotal: 32950, AmountTax: 4613, AmountTotal: 37563,
				TaxBehavior: "exclusive", Taxes: fi(4613, 32950, "14")},
		},
		ShippingCost: &integrations.ShippingCost{AmountSubtotal: 990, AmountTax: 252, AmountTotal: 1242, TaxBehavior: "exclusive", Taxes: fi(252, 990, "25.5")},
		Customer:     integrations.Customer{Name: "Matti Meikäläinen", Email: "matti@example.fi"},
		Shipping:     integrations.Address{Name: "Matti Meikäläinen", Line1: "Pajukuja 1", PostalCode: "53100", City: "Lappeenranta", Country: "fi"},
		CreatedAt:    time.Date(2026, 11, 27, 23, 30, 0, 0, time.UTC), // 28 Nov in Helsinki
	}
}

// Independent MAC vectors, computed outside Go from the documented formula:
//
//	python3: sha256("&".join([url, sender, customerId, timestamp, language,
//	         orgId, txId, customerKey, partnerKey]).encode("latin-1"))
//	         hmac(b"ckey&pkey", "&".join([... txId, unix, ckey, pkey]), sha256)
func TestMACKnownVectors(t *testing.T) {
	for _, tt := range []struct {
		alg, want string
	}{
		{AlgorithmSHA256, "12286a7b1cb02ce9a7d5dbfe0c71183112357bb0638c99c80c695355dd4e5c52"},
		{AlgorithmHMACSHA256, "2c3f40ae6f0e7ee6254d7c9d5158529fe1bddd4f9d1a8f587e26759cae0f4f3b"},
	} {
		cfg := testConfig("")
		cfg.CustomerKey, cfg.PartnerKey, cfg.Algorithm = "ckey", "pkey", tt.alg
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.now = func() time.Time { return fixedNow }
		c.txID = func() string { return "0123456789abcdef0123456789abcdef" }
		h := http.Header{}
		c.sign(h, "https://integration.netvisor.fi/salesinvoice.nv?method=add")
		if got := h.Get("X-Netvisor-Authentication-MAC"); got != tt.want {
			t.Errorf("%s MAC = %s, want %s", tt.alg, got, tt.want)
		}
	}
}

// The keys enter the MAC as ISO-8859-15 bytes, the HMAC key too: "€" is
// 0xA4 there and has no Latin-1 byte, "ä" is 0xE4 in both, and UTF-8 would
// give two or three bytes each. The vectors were computed outside Go:
//
//	python3: ck, pk = "ckey-äÖå€", "pkey-Šž"
//	         sha256("&".join([url, ..., txId, ck, pk]).encode("iso-8859-15"))
//	         hmac((ck+"&"+pk).encode("iso-8859-15"),
//	              "&".join([url, ..., txId, "1795862452", ck, pk]).encode("iso-8859-15"), sha256)
//
// (UTF-8 would give ba569ba0… and 758b696f…: a client and a server that
// disagree on the encoding reject each other.)
func TestMACNonASCIIKeys(t *testing.T) {
	for _, tt := range []struct {
		alg, want string
	}{
		{AlgorithmSHA256, "e89af0f93c20e5e1abb0f535b0accf4f13268bc50c592958164c578bb094dd0b"},
		{AlgorithmHMACSHA256, "1e98f2779a23c11d1f2682f93eb2ba2296b9528591890e1b27c3485874d30962"},
	} {
		cfg := testConfig("")
		cfg.CustomerKey, cfg.PartnerKey, cfg.Algorithm = "ckey-äÖå€", "pkey-Šž", tt.alg
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.now = func() time.Time { return fixedNow }
		c.txID = func() string { return "0123456789abcdef0123456789abcdef" }
		h := http.Header{}
		c.sign(h, "https://integration.netvisor.fi/salesinvoice.nv?method=add")
		if got := h.Get("X-Netvisor-Authentication-MAC"); got != tt.want {
			t.Errorf("%s MAC with non-ASCII keys = %s, want %s", tt.alg, got, tt.want)
		}
		if got := expectedMAC(captured{url: "https://integration.netvisor.fi/salesinvoice.nv?method=add", header: h}, cfg.CustomerKey, cfg.PartnerKey); got != tt.want {
			t.Errorf("%s: the test helper computes %s, want %s", tt.alg, got, tt.want)
		}
	}
}

// A key with a character ISO-8859-15 cannot hold is refused when the
// client is built, without echoing the key.
func TestConfigRejectsKeyOutsideISO885915(t *testing.T) {
	cfg := testConfig("https://integration.netvisor.fi")
	cfg.PartnerKey = "pkey-\u0141" // Ł: Latin Extended-A, not in ISO-8859-15
	_, err := New(cfg)
	if err == nil {
		t.Fatal("New accepted a partner key ISO-8859-15 cannot encode")
	}
	if !strings.Contains(err.Error(), "PartnerKey holds a character ISO-8859-15") || strings.Contains(err.Error(), "pkey") {
		t.Errorf("error %q: want it to name PartnerKey and the encoding, and not to show the key", err)
	}
}

// expectedMAC recomputes the MAC from the headers a request carried, with
// its own ISO-8859-15 encoder (golang.org/x/text), not the client's.
func expectedMAC(r captured, keys ...string) string {
	ck, pk := testCustomerKey, testPartnerKey
	if len(keys) == 2 {
		ck, pk = keys[0], keys[1]
	}
	enc := func(s string) []byte {
		b, err := charmap.ISO8859_15.NewEncoder().Bytes([]byte(s))
		if err != nil {
			panic(err)
		}
		return b
	}
	h := r.header
	fields := []string{r.url,
		h.Get("X-Netvisor-Authentication-Sender"), h.Get("X-Netvisor-Authentication-CustomerId"),
		h.Get("X-Netvisor-Authentication-Timestamp"), h.Get("X-Netvisor-Interface-Language"),
		h.Get("X-Netvisor-Organisation-ID"), h.Get("X-Netvisor-Authentication-TransactionId")}
	if h.Get("X-Netvisor-Authentication-MACHashCalculationAlgorithm") == "HMACSHA256" {
		m := hmac.New(sha256.New, enc(ck+"&"+pk))
		m.Write(enc(strings.Join(append(fields, h.Get("X-Netvisor-Authentication-TimestampUnix"), ck, pk), "&")))
		return hex.EncodeToString(m.Sum(nil))
	}
	s := sha256.Sum256(enc(strings.Join(append(fields, ck, pk), "&")))
	return hex.EncodeToString(s[:])
}

func TestCreateInvoiceRequestHeaders(t *testing.T) {
	for _, alg := range []string{AlgorithmSHA256, AlgorithmHMACSHA256} {
		t.Run(alg, func(t *testing.T) {
			f := &fakeNetvisor{status: 200, body: "file:created.xml"}
			c := newTest(t, f, func(c *Config) { c.Algorithm = alg })
			for range 2 {
				if _, err := c.CreateInvoice(context.Background(), testOrder(), integrations.Shipment{}); err != nil {
					t.Fatal(err)
				}
			}
			r := f.reqs[0]
			if r.method != http.MethodPost || r.path != "/salesinvoice.nv" || r.rawQuery != "method=add" {
				t.Errorf("request = %s %s?%s", r.method, r.path, r.rawQuery)
			}
			want := map[string]string{
				"X-Netvisor-Authentication-Sender":                      "orderflow",
				"X-Netvisor-Authentication-CustomerId":                  "CUST1",
				"X-Netvisor-Authentication-PartnerId":                   "PART1",
				"X-Netvisor-Authentication-Timestamp":                   "2026-11-28 10:40:52.000",
				"X-Netvisor-Interface-Language":                         "EN",
				"X-Netvisor-Organisation-ID":                            "1967543-8",
				"X-Netvisor-Authentication-MACHashCalculationAlgorithm": alg,
				"Content-Type": "text/xml; charset=ISO-8859-15",
			}
			if alg == AlgorithmHMACSHA256 {
				want["X-Netvisor-Authentication-TimestampUnix"] = "1795862452"
				want["X-Netvisor-Authentication-UseHTTPResponseStatusCodes"] = "1"
			}
			for k, v := range want {
				if got := r.header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if alg == AlgorithmSHA256 && r.header.Get("X-Netvisor-Authentication-TimestampUnix") != "" {
				t.Error("SHA256 request carries TimestampUnix")
			}
			tx1, tx2 := r.header.Get("X-Netvisor-Authentication-TransactionId"), f.reqs[1].header.Get("X-Netvisor-Authentication-TransactionId")
			if tx1 == "" || tx1 == tx2 {
				t.Errorf("TransactionIds %q and %q are not unique", tx1, tx2)
			}
			for _, req := range f.reqs {
				if got, want := req.header.Get("X-Netvisor-Authentication-MAC"), expectedMAC(req); got != want {
					t.Errorf("MAC = %s, want %s", got, want)
				}
			}
			for k, vs := range r.header {
				for _, v := range vs {
					if strings.Contains(v, testCustomerKey) || strings.Contains(v, testPartnerKey) {
						t.Errorf("header %s carries a key", k)
					}
				}
			}
		})
	}
}

// latin9ToUTF8 decodes ISO-8859-15, written separately from the package's
// decoder.
func latin9ToUTF8(b []byte) string {
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

type xmlValue struct {
	Value    string `xml:",chardata"`
	Type     string `xml:"type,attr"`
	Currency string `xml:"iso4217currencycode,attr"`
	VATCode  string `xml:"vatcode,attr"`
}

type xmlLine struct {
	Product   xmlValue `xml:"ProductIdentifier"`
	Name      string   `xml:"ProductName"`
	UnitPrice xmlValue `xml:"ProductUnitPrice"`
	VAT       xmlValue `xml:"ProductVatPercentage"`
	Quantity  string   `xml:"SalesInvoiceProductLineQuantity"`
	FreeText  string   `xml:"SalesInvoiceProductLineFreeText"`
	VatSum    string   `xml:"SalesInvoiceProductLineVatSum"`
	Sum       string   `xml:"SalesInvoiceProductLineSum"`
}

type xmlInvoice struct {
	XMLName      xml.Name  `xml:"Root"`
	Number       string    `xml:"SalesInvoice>SalesInvoiceNumber"`
	Date         string    `xml:"SalesInvoice>SalesInvoiceDate"`
	Amount       xmlValue  `xml:"SalesInvoice>SalesInvoiceAmount"`
	Status       xmlValue  `xml:"SalesInvoice>SalesInvoiceStatus"`
	After        string    `xml:"SalesInvoice>SalesInvoiceFreeTextAfterLines"`
	OurRef       string    `xml:"SalesInvoice>SalesInvoiceOurReference"`
	Customer     xmlValue  `xml:"SalesInvoice>InvoicingCustomerIdentifier"`
	Name         string    `xml:"SalesInvoice>InvoicingCustomerName"`
	Line1        string    `xml:"SalesInvoice>InvoicingCustomerAddressLine"`
	Line2        string    `xml:"SalesInvoice>InvoicingCustomerAdditionalAddressLine"`
	PostNumber   string    `xml:"SalesInvoice>InvoicingCustomerPostNumber"`
	Town         string    `xml:"SalesInvoice>InvoicingCustomerTown"`
	Country      string    `xml:"SalesInvoice>InvoicingCustomerCountryCode"`
	DeliveryName string    `xml:"SalesInvoice>DeliveryAddressName"`
	DeliveryLine string    `xml:"SalesInvoice>DeliveryAddressLine"`
	DeliveryPost string    `xml:"SalesInvoice>DeliveryAddressPostNumber"`
	DeliveryTown string    `xml:"SalesInvoice>DeliveryAddressTown"`
	DeliveryCtry string    `xml:"SalesInvoice>DeliveryAddressCountryCode"`
	NetDays      string    `xml:"SalesInvoice>PaymentTermNetDays"`
	Lines        []xmlLine `xml:"SalesInvoice>InvoiceLines>InvoiceLine>SalesInvoiceProductLine"`
}

func parseInvoice(t *testing.T, body []byte) xmlInvoice {
	t.Helper()
	var inv xmlInvoice
	if err := xml.Unmarshal([]byte(latin9ToUTF8(body)), &inv); err != nil {
		t.Fatalf("invoice XML: %v\n%s", err, body)
	}
	return inv
}

func TestCreateInvoiceXML(t *testing.T) {
	f := &fakeNetvisor{status: 200, body: "file:created.xml"}
	c := newTest(t, f, nil)
	inv, err := c.CreateInvoice(context.Background(), testOrder(), integrations.Shipment{TrackingNumber: "00373500454541020957"})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Number != "1000" || inv.ProviderID != "1802" {
		t.Errorf("invoice = %+v, want number 1000 and key 1802", inv)
	}
	body := f.reqs[0].body
	if !strings.HasPrefix(string(body), "<Root><SalesInvoice>") {
		t.Errorf("body does not start with <Root>: %.40s", body)
	}
	// ISO-8859-15 on the wire: Ä is 0xC4, € is 0xA4, Ł (not in the charset)
	// is a character reference.
	for _, want := range [][]byte{{'M', 'e', 'i', 'k', 0xe4}, {' ', 0xa4}, []byte("&#321;")} {
		if !strings.Contains(string(body), string(want)) {
			t.Errorf("body lacks % x", want)
		}
	}
	got := parseInvoice(t, body)
	if got.Number != "1000" || got.Date != "2026-11-28" || got.Status.Value != "unsent" || got.Status.Type != "netvisor" || got.OurRef != "OF-00000000RS" {
		t.Errorf("header = %+v", got)
	}
	// 31,38 + 375,63 + 12,42: what the customer paid.
	if got.Amount.Value != "419,43" || got.Amount.Currency != "EUR" {
		t.Errorf("amount = %+v", got.Amount)
	}
	if got.Customer.Value != "42" || got.Customer.Type != "netvisor" || got.Name != "Matti Meikäläinen" || got.Country != "FI" || got.NetDays != "14" {
		t.Errorf("customer = %+v %q %q %q", got.Customer, got.Name, got.Country, got.NetDays)
	}
	if got.After != "" {
		t.Errorf("free text after lines = %q, want none", got.After)
	}
	want := []xmlLine{
		{Product: xmlValue{Value: "1697", Type: "netvisor"}, Name: "Kahvimuki <Åsa> & €", UnitPrice: xmlValue{Value: "25,00", Type: "net"}, VAT: xmlValue{Value: "25,5", VATCode: "KOMY"},
			Quantity: "1", FreeText: "2 × 12.50 EUR excl. VAT", VatSum: "6,38", Sum: "31,38"},
		{Product: xmlValue{Value: "1697", Type: "netvisor"}, Name: "Kirja Łódź", UnitPrice: xmlValue{Value: "329,50", Type: "net"}, VAT: xmlValue{Value: "14", VATCode: "KOMY"},
			Quantity: "1", FreeText: "1 × 329.50 EUR excl. VAT", VatSum: "46,13", Sum: "375,63"},
		{Product: xmlValue{Value: "1697", Type: "netvisor"}, Name: "Shipping", UnitPrice: xmlValue{Value: "9,90", Type: "net"}, VAT: xmlValue{Value: "25,5", VATCode: "KOMY"},
			Quantity: "1", FreeText: "Tracking 00373500454541020957", VatSum: "2,52", Sum: "12,42"},
	}
	if len(got.Lines) != len(want) {
		t.Fatalf("%d lines, want %d", len(got.Lines), len(want))
	}
	for i := range want {
		if got.Lines[i] != want[i] {
			t.Errorf("line %d = %+v\nwant %+v", i+1, got.Lines[i], want[i])
		}
	}
	// Element order follows the DTD.
	order := []string{"SalesInvoiceNumber", "SalesInvoiceDate", "SalesInvoiceAmount", "SalesInvoiceStatus", "SalesInvoiceOurReference", "InvoicingCustomerIdentifier",
		"InvoicingCustomerName", "DeliveryAddressName", "PaymentTermNetDays", "InvoiceLines", "ProductUnitPrice", "ProductVatPercentage",
		"SalesInvoiceProductLineQuantity", "SalesInvoiceProductLineFreeText", "SalesInvoiceProductLineVatSum", "SalesInvoiceProductLineSum"}
	last := -1
	for _, el := range order {
		i := strings.Index(string(body), "<"+el)
		if i < last {
			t.Errorf("<%s> out of order", el)
		}
		last = i
	}
}

func TestCreateInvoiceUTF8AndSKU(t *testing.T) {
	f := &fakeNetvisor{status: 200, body: "file:created.xml"}
	c := newTest(t, f, func(c *Config) { c.Encoding = EncodingUTF8; c.UseSKUAsProduct = true })
	if _, err := c.CreateInvoice(context.Background(), testOrder(), integrations.Shipment{}); err != nil {
		t.Fatal(err)
	}
	r := f.reqs[0]
	if ct := r.header.Get("Content-Type"); ct != "text/xml; charset=UTF-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	var inv xmlInvoice
	if err := xml.Unmarshal(r.body, &inv); err != nil {
		t.Fatal(err)
	}
	if inv.Lines[1].Name != "Kirja Łódź" || inv.Lines[0].Product != (xmlValue{Value: "price_1", Type: "customer"}) {
		t.Errorf("lines = %+v", inv.Lines)
	}
}

// The amounts of 0-, 2- and 3-decimal currencies: exact in the first two;
// a three-decimal currency in hundredths with the remainder carried from
// line to line (cumulative rounding), so the totals stay Stripe's.
func TestInvoiceMoneyFormatting(t *testing.T) {
	type line struct{ total, tax int64 }
	tests := []struct {
		currency   string
		lines      []line
		wantAmount string
		wantSums   []string // sum/vat per line
	}{
		{"eur", []line{{123456, 24000}}, "1234,56", []string{"1234,56/240,00"}},
		{"jpy", []line{{1500, 136}, {300, 27}}, "1800", []string{"1500/136", "300/27"}},
		// 1.115 + 2.335 = 3.450 KWD; VAT 0.105 + 0.105 = 0.210: each rounded
		// on the running total: 1.12 (1.115), 2.33 (3.450 − 1.12); 0.11, 0.10.
		{"kwd", []line{{1115, 105}, {2335, 105}}, "3,45", []string{"1,12/0,11", "2,33/0,10"}},
		{"bhd", []line{{12500, 1250}}, "12,50", []string{"12,50/1,25"}},
	}
	for _, tt := range tests {
		f := &fakeNetvisor{status: 200, body: "file:created.xml"}
		c := newTest(t, f, nil)
		o := testOrder()
		o.Currency, o.ShippingCost = tt.currency, nil
		o.AmountTotal, o.AmountTax, o.Items = 0, 0, nil
		for _, l := range tt.lines {
			o.Items = append(o.Items, integrations.LineItem{Description: "x", Quantity: 1, UnitAmount: l.total, AmountSubtotal: l.total, AmountTax: l.tax, AmountTotal: l.total,
				TaxBehavior: "inclusive", Taxes: []integrations.Tax{{Amount: l.tax, Percentage: "10"}}})
			o.AmountTotal += l.total
			o.AmountTax += l.tax
		}
		if _, err := c.CreateInvoice(context.Background(), o, integrations.Shipment{}); err != nil {
			t.Fatalf("%s: %v", tt.currency, err)
		}
		inv := parseInvoice(t, f.reqs[0].body)
		if inv.Amount.Value != tt.wantAmount || inv.Amount.Currency != strings.ToUpper(tt.currency) {
			t.Errorf("%s: SalesInvoiceAmount = %+v, want %s", tt.currency, inv.Amount, tt.wantAmount)
		}
		var sums []string
		for _, l := range inv.Lines {
			sums = append(sums, l.Sum+"/"+l.VatSum)
			if l.UnitPrice.Value != l.Sum || l.UnitPrice.Type != "gross" {
				t.Errorf("%s: unit price %+v, want the gross sum %s", tt.currency, l.UnitPrice, l.Sum)
			}
		}
		if strings.Join(sums, " ") != strings.Join(tt.wantSums, " ") {
			t.Errorf("%s: lines = %v, want %v", tt.currency, sums, tt.wantSums)
		}
	}
}

// A three-decimal amount that is not a whole number of hundredths cannot
// be invoiced exactly in Netvisor: a permanent error, not a rounded total.
func TestInvoiceThreeDecimalsNotRepresentable(t *testing.T) {
	f := &fakeNetvisor{status: 200, body: "file:created.xml"}
	c := newTest(t, f, nil)
	o := testOrder()
	o.Currency, o.ShippingCost = "kwd", nil
	o.Items = []integrations.LineItem{{Description: "x", Quantity: 1, AmountSubtotal: 1235, AmountTax: 0, AmountTotal: 1235, TaxBehavior: "unspecified"}}
	o.AmountTotal, o.AmountTax = 1235, 0
	_, err := c.CreateInvoice(context.Background(), o, integrations.Shipment{})
	if !integrations.IsPermanent(err) || !strings.Contains(err.Error(), "1.240 KWD, the amount paid is 1.235 KWD") {
		t.Fatalf("err = %v", err)
	}
	if len(f.reqs) != 0 {
		t.Fatal("an invoice that does not add up was sent")
	}
}

func TestInvoiceNumber(t *testing.T) {
	a := integrations.Order{ID: "pi_3Abcdefgh00000000RS", Number: "OF-00000000RS"}
	b := integrations.Order{ID: "pi_3Abcdefgh00000000RT", Number: "OF-00000000RT"}
	if got := InvoiceNumber(a); got != "1000" {
		t.Errorf("InvoiceNumber(a) = %q, want 1000 (RS in base 36)", got)
	}
	if InvoiceNumber(a) == InvoiceNumber(b) {
		t.Error("different orders share an invoice number")
	}
	// Without Number, it is derived from the id the same way.
	if got := InvoiceNumber(integrations.Order{ID: a.ID}); got != "1000" {
		t.Errorf("from ID only = %q", got)
	}
	real := integrations.Order{ID: "pi_3NxYzAbCdEfGhIjKlMnOpQrS"}
	n := InvoiceNumber(real)
	if !regexp.MustCompile(`^[1-9][0-9]{0,15}$`).MatchString(n) || n != InvoiceNumber(real) {
		t.Errorf("InvoiceNumber(%s) = %q, want a stable decimal number", real.ID, n)
	}
	odd := integrations.Order{ID: "order-ä", Number: "OF-ÄÖ"}
	if n := InvoiceNumber(odd); !regexp.MustCompile(`^[0-9]{1,15}$`).MatchString(n) || n != InvoiceNumber(odd) {
		t.Errorf("fallback = %q", n)
	}
}

func TestCreateInvoiceErrors(t *testing.T) {
	failed := func(code, msg string) string {
		return fmt.Sprintf("<Root><ResponseStatus><Status>FAILED</Status><Status>%s :: %s</Status><TimeStamp>x</TimeStamp></ResponseStatus></Root>", code, msg)
	}
	tests := []struct {
		name       string
		alg        string
		status     int
		body       string
		header     http.Header
		permanent  bool
		code       string
		retryAfter time.Duration
		msg        string
		inDoubt    bool // no status: the outcome is unknown
	}{
		{name: "auth", status: 200, body: failed("AUTHENTICATION_FAILED", "Integration keys are not valid."), permanent: true, code: CodeAuthenticationFailed, msg: "keys are not valid"},
		{name: "invalid data file", status: 200, body: "file:failed_invalid_data.xml", permanent: true, code: CodeInvalidData, msg: "product not found"},
		{name: "data size", status: 200, body: failed("INVALID_DATA_SIZE", "too long"), permanent: true, code: CodeInvalidDataSize},
		{name: "duplicate", status: 200, body: failed("DUPLICATE_DATA", "already exists in Netvisor"), permanent: true, code: CodeDuplicateData},
		{name: "period lock", status: 200, body: failed("PERIOD_LOCK", "period locked"), permanent: true, code: CodePeriodLock},
		{name: "access", status: 200, body: failed("SERVICE_ACCESS_ERROR", "no access"), permanent: true, code: CodeServiceAccessError},
		{name: "not unique", status: 200, body: failed("REQUEST_NOT_UNIQUE", "TransactionId used"), code: CodeRequestNotUnique},
		{name: "maintenance", status: 200, body: failed("SYSTEM_MAINTANANCE", "back soon"), code: CodeSystemMaintenance},
		{name: "technical", status: 200, body: failed("TECHNICAL_ERROR", "oops"), code: CodeTechnicalError},
		{name: "unknown code", status: 200, body: failed("SOMETHING_NEW", "?"), code: "SOMETHING_NEW"},
		{name: "no code", status: 200, body: "<Root><ResponseStatus><Status>FAILED</Status><Status>Unexpected failure</Status></ResponseStatus></Root>", msg: "Unexpected failure"},
		{name: "hmac 401 with body", alg: AlgorithmHMACSHA256, status: 401, body: failed("AUTHENTICATION_FAILED", "bad MAC"), permanent: true, code: CodeAuthenticationFailed, msg: "HTTP 401"},
		{name: "hmac 400 with body", alg: AlgorithmHMACSHA256, status: 400, body: failed("INVALID_DATA", "bad"), permanent: true, code: CodeInvalidData},
		{name: "hmac 503 maintenance", alg: AlgorithmHMACSHA256, status: 503, body: failed("SYSTEM_MAINTANANCE", "later"), header: http.Header{"Retry-After": {"30"}}, code: CodeSystemMaintenance, retryAfter: 30 * time.Second},
		{name: "502 html", status: 502, body: "<html>bad gateway</html>", msg: "HTTP 502"},
		{name: "429", status: 429, body: "", header: http.Header{"Retry-After": {"5"}}, retryAfter: 5 * time.Second, msg: "HTTP 429"},
		{name: "403 plain", status: 403, body: "Forbidden", permanent: true, msg: "HTTP 403"},
		// In doubt: no status, so the processor keeps the intent and looks
		// the invoice up before calling again.
		{name: "200 not xml", status: 200, body: "hello", msg: "HTTP 200 answer is not a success answer, outcome unknown: reply is not Netvisor XML", inDoubt: true},
		{name: "200 html", status: 200, body: "<!DOCTYPE html><html><body>Scheduled maintenance</body></html>", msg: "not Netvisor XML", inDoubt: true},
		{name: "200 empty", status: 200, body: "", msg: "not Netvisor XML", inDoubt: true},
		{name: "200 odd status", status: 200, body: "<Root><ResponseStatus><Status>MAYBE</Status></ResponseStatus></Root>", msg: "MAYBE", inDoubt: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeNetvisor{status: tt.status, body: tt.body, header: tt.header}
			c := newTest(t, f, func(c *Config) {
				if tt.alg != "" {
					c.Algorithm = tt.alg
				}
			})
			_, err := c.CreateInvoice(context.Background(), testOrder(), integrations.Shipment{})
			var e *integrations.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *integrations.Error", err)
			}
			wantStatus := tt.status
			if tt.inDoubt {
				wantStatus = 0
			}
			if e.Provider != "netvisor" || integrations.IsPermanent(err) != tt.permanent || e.RetryAfter != tt.retryAfter || e.Status != wantStatus {
				t.Errorf("err %v: permanent=%v retryAfter=%v status=%d; want %v %v %d", err, integrations.IsPermanent(err), e.RetryAfter, e.Status, tt.permanent, tt.retryAfter, wantStatus)
			}
			var api *APIError
			if tt.code != "" && (!errors.As(err, &api) || api.Code != tt.code) {
				t.Errorf("APIError = %+v, want code %s", api, tt.code)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q lacks %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), testCustomerKey) || strings.Contains(err.Error(), testPartnerKey) {
				t.Errorf("error leaks a key: %q", err)
			}
		})
	}
}

func TestCreateInvoiceRejectsBadOrders(t *testing.T) {
	tests := map[string]func(*integrations.Order){
		"no lines":     func(o *integrations.Order) { o.Items = nil },
		"no currency":  func(o *integrations.Order) { o.Currency = "" },
		"zero qty":     func(o *integrations.Order) { o.Items[0].Quantity = 0 },
		"negative VAT": func(o *integrations.Order) { o.Items[0].AmountTax = -1 },
		"lines do not add up": func(o *integrations.Order) {
			o.AmountTotal++
		},
		"tax without a rate": func(o *integrations.Order) { o.Items[0].Taxes = nil },
		"bad rate":           func(o *integrations.Order) { o.Items[0].Taxes[0].Percentage = "25,5" },
		"previous model":     func(o *integrations.Order) { o.Model = 0 },
	}
	for name, mod := range tests {
		f := &fakeNetvisor{status: 200, body: "file:created.xml"}
		c := newTest(t, f, nil)
		o := testOrder()
		mod(&o)
		if _, err := c.CreateInvoice(context.Background(), o, integrations.Shipment{}); !integrations.IsPermanent(err) {
			t.Errorf("%s: err = %v, want permanent", name, err)
		}
		if len(f.reqs) != 0 {
			t.Errorf("%s: sent a request", name)
		}
	}
}

func TestCreatedWithoutIdentifierIsSuccess(t *testing.T) {
	f := &fakeNetvisor{status: 200, body: "<Root><ResponseStatus><Status>OK</Status></ResponseStatus></Root>"}
	c := newTest(t, f, nil)
	inv, err := c.CreateInvoice(context.Background(), testOrder(), integrations.Shipment{})
	if err != nil || inv.Number != "1000" || inv.ProviderID != "" {
		t.Fatalf("inv = %+v, err = %v", inv, err)
	}
}

func TestFindInvoice(t *testing.T) {
	tests := []struct {
		name, body, number string
		found              bool
		key                string
	}{
		{"exact match among several", "file:invoice_list.xml", "1000", true, "166"},
		{"prefix is not a match", "file:invoice_list.xml", "100", false, ""},
		{"empty list", "file:invoice_list_empty.xml", "1000", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeNetvisor{status: 200, body: tt.body}
			c := newTest(t, f, nil)
			inv, found, err := c.FindInvoice(context.Background(), tt.number)
			if err != nil {
				t.Fatal(err)
			}
			if found != tt.found || inv.ProviderID != tt.key || (found && inv.Number != tt.number) {
				t.Errorf("FindInvoice = %+v, %v", inv, found)
			}
			r := f.reqs[0]
			if r.method != http.MethodGet || r.path != "/salesinvoicelist.nv" || r.rawQuery != "InvoiceNumber="+tt.number {
				t.Errorf("request = %s %s?%s", r.method, r.path, r.rawQuery)
			}
			if got, want := r.header.Get("X-Netvisor-Authentication-MAC"), expectedMAC(r); got != want {
				t.Errorf("MAC = %s, want %s", got, want)
			}
			if len(r.body) != 0 || r.header.Get("Content-Type") != "" {
				t.Error("GET carries a body")
			}
		})
	}
	f := &fakeNetvisor{status: 200, body: "<Root><ResponseStatus><Status>FAILED</Status><Status>AUTHENTICATION_FAILED :: no</Status></ResponseStatus></Root>"}
	c := newTest(t, f, nil)
	if _, _, err := c.FindInvoice(context.Background(), "1000"); !integrations.IsPermanent(err) {
		t.Errorf("FAILED list: err = %v, want permanent", err)
	}
}

func TestResponseInISO885915(t *testing.T) {
	body := "<?xml version=\"1.0\" encoding=\"ISO-8859-15\"?><Root><ResponseStatus><Status>FAILED</Status><Status>INVALID_DATA :: Tuote \xe4 puuttuu \xa4</Status></ResponseStatus></Root>"
	f := &fakeNetvisor{status: 200, body: body}
	c := newTest(t, f, nil)
	_, err := c.CreateInvoice(context.Background(), testOrder(), integrations.Shipment{})
	if err == nil || !strings.Contains(err.Error(), "Tuote ä puuttuu €") {
		t.Fatalf("err = %v", err)
	}
	// Undeclared Latin-9 bytes are read as such too.
	f.body = "<Root><ResponseStatus><Status>FAILED</Status><Status>INVALID_DATA :: \xe4</Status></ResponseStatus></Root>"
	if _, err := c.CreateInvoice(context.Background(), testOrder(), integrations.Shipment{}); err == nil || !strings.Contains(err.Error(), ": ä") {
		t.Fatalf("err = %v", err)
	}
}

// Concurrent calls on one Client never exceed MaxConcurrent in flight; a
// negative bound lets them all through.
func TestConcurrencyBound(t *testing.T) {
	for _, tc := range []struct {
		max, want int
		exact     bool
	}{{1, 1, true}, {3, 3, false}, {-1, 8, false}} {
		f := &fakeNetvisor{status: 200, body: "file:created.xml", delay: 20 * time.Millisecond}
		c := newTest(t, f, func(c *Config) { c.MaxConcurrent = tc.max })
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.CreateInvoice(context.Background(), testOrder(), integrations.Shipment{}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		m := int(f.maxIn.Load())
		if m > tc.want || (tc.max > 0 && m > tc.max) || (tc.exact && m != tc.want) {
			t.Errorf("MaxConcurrent %d: %d requests in flight at once, want at most %d", tc.max, m, tc.want)
		}
		if tc.max < 0 && m < 2 {
			t.Errorf("no bound: only %d request in flight at once", m)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"valid", func(*Config) {}, true},
		{"defaults", func(c *Config) { c.BaseURL, c.Language, c.Algorithm = "", "", "" }, true},
		{"hmac", func(c *Config) { c.Algorithm = AlgorithmHMACSHA256 }, true},
		{"md5", func(c *Config) { c.Algorithm = "MD5" }, false},
		{"no partner key", func(c *Config) { c.PartnerKey = "" }, false},
		{"no customer identifier", func(c *Config) { c.CustomerIdentifier = "" }, false},
		{"no product", func(c *Config) { c.ProductIdentifier = "" }, false},
		{"bad language", func(c *Config) { c.Language = "DE" }, false},
		{"non-ascii sender", func(c *Config) { c.Sender = "Kauppa Öy" }, false},
		{"bad encoding", func(c *Config) { c.Encoding = "UTF-16" }, false},
		{"bad identifier type", func(c *Config) { c.CustomerIdentifierType = "code" }, false},
		{"base with query", func(c *Config) { c.BaseURL = "https://x/?a=1" }, false},
	}
	for _, tt := range tests {
		c := testConfig("https://integration.netvisor.fi")
		tt.mod(&c)
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
	}
}
