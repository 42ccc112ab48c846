package dhl

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/labelstore"
)

const (
	testKey      = "k3y-0f-the-dhl-app-4711"
	testUser     = "shop-user"
	testPassword = "pa55-w0rd-never-logged"
)

// testPDF is a label as DHL would send it (only the magic matters here).
var testPDF = []byte("%PDF-1.4\n% test label\n%%EOF\n")

type captured struct {
	method, path string
	query        url.Values
	header       http.Header
	body         []byte
}

// fakeDHL answers every call with status, header and body.
type fakeDHL struct {
	status int
	header map[string]string
	body   string

	mu   sync.Mutex
	reqs []captured
}

func (f *fakeDHL) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, captured{r.Method, r.URL.Path, r.URL.Query(), r.Header.Clone(), body})
	f.mu.Unlock()
	for k, v := range f.header {
		w.Header().Set(k, v)
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(f.status)
	_, _ = io.WriteString(w, f.body)
}

func okBody(shipmentNo string, label []byte) string {
	return `{"status":{"title":"OK","statusCode":200,"detail":"1 of 1 shipment successfully created."},
	"items":[{"shipmentNo":"` + shipmentNo + `","sstatus":{"title":"OK","statusCode":200},
	"label":{"b64":"` + base64.StdEncoding.EncodeToString(label) + `","fileFormat":"PDF","printFormat":"910-300-700"}}]}`
}

func newTestClient(t *testing.T, base string, mod func(*Config)) (*Client, string) {
	t.Helper()
	dir := t.TempDir()
	store, err := labelstore.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		BaseURL: base, APIKey: testKey, Username: testUser, Password: testPassword, Labels: store,
		BillingNumber: "22222222220104", InternationalBillingNumber: "22222222225301",
		Shipper: Shipper{Name: "Werkstatt GmbH", Street: "Hafenstraße 7", PostalCode: "20457", City: "Hamburg", Country: "de", Email: "versand@werkstatt.example"},
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, dir
}

func germanOrder() integrations.Order {
	return integrations.Order{
		ID: "pi_3DhlTest0000000000001", Number: "OF-0000000001", Locale: "de-DE",
		Customer: integrations.Customer{Name: "Jörg Müller", Email: "joerg@example.de", Phone: "+49 40 1234567"},
		Shipping: integrations.Address{Name: "Jörg Müller", Line1: "Kurt-Schumacher-Str. 20", Line2: "Hinterhaus", PostalCode: "53113", City: "Bonn", Country: "DE", Phone: "+49 40 1234567"},
	}
}

// A domestic order is one DHL Paket shipment in the documented request:
// API key header, Basic credentials, PDF label included, countries in
// alpha-3, no phone within Germany; the answer's shipment number is the
// tracking number and the label is stored as a PDF.
func TestCreateShipmentDomestic(t *testing.T) {
	f := &fakeDHL{status: 200, body: okBody("00340434161094042557", testPDF)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, dir := newTestClient(t, srv.URL, nil)
	sh, err := c.CreateShipment(context.Background(), germanOrder())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(f.reqs))
	}
	r := f.reqs[0]
	if r.method != http.MethodPost || r.path != "/parcel/de/shipping/v2/orders" {
		t.Errorf("request %s %s", r.method, r.path)
	}
	if r.query.Get("includeDocs") != "include" || r.query.Get("docFormat") != "PDF" || r.query.Has("printFormat") {
		t.Errorf("query %v, want includeDocs=include docFormat=PDF", r.query)
	}
	if r.header.Get("dhl-api-key") != testKey {
		t.Errorf("dhl-api-key %q", r.header.Get("dhl-api-key"))
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPassword)); r.header.Get("Authorization") != want {
		t.Errorf("Authorization %q, want %q", r.header.Get("Authorization"), want)
	}
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"profile": "STANDARD_GRUPPENPROFIL",
		"shipments": []any{map[string]any{
			"product": "V01PAK", "billingNumber": "22222222220104", "refNo": "pi_3DhlTest0000000000001",
			"shipper": map[string]any{"name1": "Werkstatt GmbH", "addressStreet": "Hafenstraße 7", "postalCode": "20457", "city": "Hamburg", "country": "DEU", "email": "versand@werkstatt.example"},
			"consignee": map[string]any{"name1": "Jörg Müller", "addressStreet": "Kurt-Schumacher-Str. 20", "additionalAddressInformation1": "Hinterhaus",
				"postalCode": "53113", "city": "Bonn", "country": "DEU", "email": "joerg@example.de"},
			"details": map[string]any{"weight": map[string]any{"uom": "g", "value": float64(1000)}},
		}},
	}
	if g, w := mustJSON(body), mustJSON(want); g != w {
		t.Errorf("body\n%s\nwant\n%s", g, w)
	}
	if sh.TrackingNumber != "00340434161094042557" || sh.ShipmentID != "00340434161094042557" {
		t.Errorf("shipment %+v", sh)
	}
	if want := "https://www.dhl.de/de/privatkunden/pakete-empfangen/verfolgen.html?piececode=00340434161094042557"; sh.TrackingURL != want {
		t.Errorf("tracking URL %q, want %q", sh.TrackingURL, want)
	}
	got, err := os.ReadFile(filepath.Join(dir, "pi_3DhlTest0000000000001_label-00340434161094042557.pdf"))
	if err != nil || string(got) != string(testPDF) {
		t.Errorf("stored label %q, %v", got, err)
	}
	if !strings.HasSuffix(sh.LabelLocation, "pi_3DhlTest0000000000001_label-00340434161094042557.pdf") {
		t.Errorf("label location %q", sh.LabelLocation)
	}
}

// An order abroad is DHL Paket International on its own billing number,
// with the phone; without that billing number it is refused before any
// call.
func TestCreateShipmentInternational(t *testing.T) {
	f := &fakeDHL{status: 200, body: okBody("00340434161094042558", testPDF)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	o := germanOrder()
	o.Locale = "sv"
	o.Shipping = integrations.Address{Name: "Åsa Öberg", Line1: "Storgatan 1", PostalCode: "411 38", City: "Göteborg", Country: "SE", Phone: "+46 31 123456"}
	c, _ := newTestClient(t, srv.URL, func(c *Config) { c.PrintFormat = "A4" })
	sh, err := c.CreateShipment(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Shipments []struct {
			Product, BillingNumber string
			Consignee              map[string]string
		}
	}
	if err := json.Unmarshal(f.reqs[0].body, &body); err != nil {
		t.Fatal(err)
	}
	s := body.Shipments[0]
	if s.Product != "V53WPAK" || s.BillingNumber != "22222222225301" || s.Consignee["country"] != "SWE" || s.Consignee["phone"] != "+46 31 123456" {
		t.Errorf("shipment sent %+v", s)
	}
	if f.reqs[0].query.Get("printFormat") != "A4" {
		t.Errorf("printFormat %q", f.reqs[0].query.Get("printFormat"))
	}
	if want := "https://www.dhl.de/en/privatkunden/pakete-empfangen/verfolgen.html?piececode=00340434161094042558"; sh.TrackingURL != want {
		t.Errorf("tracking URL %q, want %q", sh.TrackingURL, want)
	}

	c2, _ := newTestClient(t, srv.URL, func(c *Config) { c.InternationalBillingNumber = "" })
	_, err = c2.CreateShipment(context.Background(), o)
	if !integrations.IsPermanent(err) || !strings.Contains(err.Error(), "ships to SE: no billing number for DHL Paket International") {
		t.Errorf("abroad without its billing number: %v", err)
	}
	if len(f.reqs) != 1 {
		t.Errorf("%d requests, want none for the refused order", len(f.reqs)-1)
	}
}

// A name longer than DHL's 50-character name1 goes on name2 and name3,
// broken between words; an email or phone longer than DHL takes is left
// out rather than refusing the parcel.
func TestCreateShipmentLongValues(t *testing.T) {
	f := &fakeDHL{status: 200, body: okBody("00340434161094042559", testPDF)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, _ := newTestClient(t, srv.URL, nil)
	o := germanOrder()
	o.Shipping.Name = "Keramik Müller GmbH & Co. KG, Abteilung Einkauf und Logistik, z. Hd. Frau Dr. Annegret Schulze-Hohenfels"
	o.Customer.Email = strings.Repeat("einkauf.", 10) + "x@example.de" // 92 characters
	if _, err := c.CreateShipment(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	o.Shipping = integrations.Address{Name: "Åsa " + strings.Repeat("Ö", 60), Line1: "Storgatan 1", PostalCode: "41138", City: "Göteborg", Country: "SE",
		Phone: "+46 31 123 45 67 ankn. 2201"} // 27 characters
	o.Customer.Email = "asa@example.se"
	if _, err := c.CreateShipment(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	var got []map[string]string
	for _, r := range f.reqs {
		var body struct {
			Shipments []struct{ Consignee map[string]string }
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		got = append(got, body.Shipments[0].Consignee)
	}
	want := []map[string]string{{
		"name1": "Keramik Müller GmbH & Co. KG, Abteilung Einkauf", // 48
		"name2": "und Logistik, z. Hd. Frau Dr. Annegret",          // 38: "Schulze-Hohenfels" does not fit too
		"name3": "Schulze-Hohenfels",
		"email": "",
	}, {
		"name1": "Åsa",
		"name2": strings.Repeat("Ö", 50), // a word longer than a line is broken inside it
		"name3": strings.Repeat("Ö", 10),
		"email": "asa@example.se",
		"phone": "",
	}}
	for i, w := range want {
		for k, v := range w {
			if got[i][k] != v {
				t.Errorf("parcel %d: %s = %q, want %q", i+1, k, got[i][k], v)
			}
		}
	}
}

// Every answer DHL may give that is not a created shipment with a PDF is
// an integrations.Error of the right class, with a reason a person can
// act on, no secret in it and no label stored.
func TestCreateShipmentHostileAnswers(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		transient  bool
		want       string
		retryAfter time.Duration
	}{
		{name: "validation error", status: 400, body: `{"status":{"title":"Bad Request","statusCode":400,"detail":"0 of 1 shipment successfully created."},
			"items":[{"sstatus":{"title":"Bad Request","statusCode":400},"validationMessages":[
			{"property":"shipper","validationMessage":"The house number is missing.","validationState":"Warning"},
			{"property":"consignee","validationMessage":"The city entered does not match the postcode.","validationState":"Error"}]}]}`,
			want: "HTTP 400: Bad Request: 0 of 1 shipment successfully created.; 400 Bad Request; consignee: The city entered does not match the postcode.; shipper: The house number is missing."},
		{name: "schema error", status: 400, body: `{"status":{"title":"Bad Request","statusCode":400,"detail":"Your request contained technical errors as listed below."},
			"items":[{"propertyPath":"shipments[0].consignee.country","message":"Parameter country must be a valid country code."}]}`,
			want: "shipments[0].consignee.country: Parameter country must be a valid country code."},
		{name: "item refused inside a 200", status: 200, body: `{"status":{"title":"OK","statusCode":200},"items":[{"sstatus":{"title":"Bad Request","statusCode":400},
			"validationMessages":[{"property":"consignee.postalCode","validationMessage":"Please enter a postal code.","validationState":"Error"}]}]}`,
			want: "shipment not created: 400 Bad Request; consignee.postalCode: Please enter a postal code."},
		{name: "no items", status: 200, body: `{"status":{"title":"OK","statusCode":200},"items":[]}`, want: "DHL answered 0 items for one shipment"},
		{name: "two items", status: 207, body: `{"items":[{"shipmentNo":"1","sstatus":{"title":"OK","statusCode":200}},{"shipmentNo":"2","sstatus":{"title":"OK","statusCode":200}}]}`,
			want: "DHL answered 2 items for one shipment"},
		{name: "ok without shipment number", status: 200, body: `{"items":[{"sstatus":{"title":"OK","status":200}}]}`, want: "shipment not created: no shipment number"},
		{name: "no label", status: 200, body: `{"items":[{"shipmentNo":"00340434000000000001","sstatus":{"title":"OK","statusCode":200}}]}`,
			want: "created shipment 00340434000000000001 but the answer has no label"},
		{name: "label not base64", status: 200, body: `{"items":[{"shipmentNo":"00340434000000000002","sstatus":{"title":"OK","statusCode":200},"label":{"b64":"%%%not base64"}}]}`,
			want: "created shipment 00340434000000000002 but its label is not a base64 PDF"},
		{name: "label not a PDF", status: 200, body: okBody("00340434000000000003", []byte("<html>label</html>")),
			want: "created shipment 00340434000000000003 but its label is not a base64 PDF"},
		{name: "200 not JSON", status: 200, header: map[string]string{"Content-Type": "text/html"}, body: "<html>maintenance</html>",
			want: "DHL answered 200 with a body that is not a label response"},
		{name: "unauthorized", status: 401, header: map[string]string{"Content-Type": "application/problem+json"},
			body: `{"title":"Unauthorized","status":401,"detail":"Unauthorized for given resource."}`, want: "HTTP 401: Unauthorized: Unauthorized for given resource."},
		{name: "secret echoed", status: 403, body: `{"title":"Forbidden","statusCode":403,"detail":"key ` + testKey + ` user ` + testPassword + `"}`,
			want: "HTTP 403: Forbidden: key <redacted> user <redacted>"},
		{name: "rate limited", status: 429, header: map[string]string{"Retry-After": "7"}, body: `{"title":"Too Many Requests","status":429}`,
			transient: true, want: "HTTP 429: Too Many Requests", retryAfter: 7 * time.Second},
		{name: "server error", status: 500, body: `{"title":"Internal Server Error","statusCode":500,"detail":"General Shipment Backend Error"}`,
			transient: true, want: "HTTP 500: Internal Server Error: General Shipment Backend Error"},
		{name: "gateway HTML", status: 502, header: map[string]string{"Content-Type": "text/html"}, body: "<html>Bad Gateway</html>",
			transient: true, want: "dhl: create shipment: HTTP 502"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeDHL{status: tt.status, header: tt.header, body: tt.body}
			srv := httptest.NewServer(f)
			defer srv.Close()
			c, dir := newTestClient(t, srv.URL, nil)
			_, err := c.CreateShipment(context.Background(), germanOrder())
			var e *integrations.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T), want an integrations.Error", err, err)
			}
			if (e.Class == integrations.Transient) != tt.transient {
				t.Errorf("class %s, want transient=%v", e.Class, tt.transient)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if e.RetryAfter != tt.retryAfter {
				t.Errorf("retry after %s, want %s", e.RetryAfter, tt.retryAfter)
			}
			if strings.Contains(err.Error(), testKey) || strings.Contains(err.Error(), testPassword) {
				t.Errorf("error %q holds a secret", err)
			}
			if files, _ := os.ReadDir(dir); len(files) != 0 {
				t.Errorf("%d files in the label folder, want none", len(files))
			}
		})
	}
}

// An answer cut off mid-body may hide a created shipment: transient (the
// intent policy decides), never a success.
func TestCreateShipmentAnswerCutOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 64<<10)
			_, _ = conn.Read(buf)
			_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"items\":[{\"shipmentNo\":\"0034")
			_ = conn.Close()
		}
	}()
	c, _ := newTestClient(t, "http://"+ln.Addr().String(), nil)
	_, err = c.CreateShipment(context.Background(), germanOrder())
	var e *integrations.Error
	if !errors.As(err, &e) || e.Class != integrations.Transient {
		t.Fatalf("error %v, want a transient integrations.Error", err)
	}
}

// An address DHL cannot take is refused before the call, naming what is
// missing.
func TestCreateShipmentIncompleteAddress(t *testing.T) {
	f := &fakeDHL{status: 200, body: okBody("1", testPDF)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, _ := newTestClient(t, srv.URL, nil)
	o := germanOrder()
	o.Shipping = integrations.Address{Name: "X", PostalCode: "53113", Country: "Germany"}
	_, err := c.CreateShipment(context.Background(), o)
	if !integrations.IsPermanent(err) || !integrations.IsNotSent(err) || !strings.Contains(err.Error(), "shipping address lacks street, city, country") {
		t.Errorf("error %v", err)
	}
	// A name of blanks is no name: DHL's name1 would be empty.
	o.Shipping = integrations.Address{Name: "  ", Line1: "Weg 1", PostalCode: "53113", City: "Bonn", Country: "DE"}
	o.Customer.Name = ""
	_, err = c.CreateShipment(context.Background(), o)
	if !integrations.IsNotSent(err) || !strings.Contains(err.Error(), "shipping address lacks name") {
		t.Errorf("blank name: %v", err)
	}
	if len(f.reqs) != 0 {
		t.Errorf("%d requests, want 0", len(f.reqs))
	}
}

func TestConfigValidate(t *testing.T) {
	store, _ := labelstore.NewDir(t.TempDir())
	good := Config{APIKey: "k", Username: "u", Password: "p", Labels: store, BillingNumber: "33333333330102",
		Shipper: Shipper{Name: "S", Street: "St 1", PostalCode: "53113", City: "Bonn", Country: "DE"}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"billing number of another product", func(c *Config) { c.BillingNumber = "33333333335301" }, "BillingNumber must be the 14-character billing number of DHL Paket (digits 11 and 12: 01)"},
		{"short billing number", func(c *Config) { c.BillingNumber = "3333" }, "BillingNumber must be"},
		{"international of the domestic product", func(c *Config) { c.InternationalBillingNumber = "33333333330102" }, "InternationalBillingNumber must be"},
		{"country name", func(c *Config) { c.Shipper.Country = "Germany" }, "Shipper.Country must be an ISO 3166-1 alpha-2 country code"},
		{"no password", func(c *Config) { c.Password = "" }, "Username and Password are required"},
		{"too heavy", func(c *Config) { c.WeightGrams = 40000 }, "WeightGrams must be between 1 and 31500"},
		{"bad URL", func(c *Config) { c.BaseURL = "ftp://dhl" }, "BaseURL must be an http(s) URL"},
	}
	for _, tt := range tests {
		c := good
		tt.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestReference(t *testing.T) {
	tests := []struct {
		o    integrations.Order
		want string
	}{
		{integrations.Order{ID: "pi_3DhlTest0000000000001"}, "pi_3DhlTest0000000000001"},
		{integrations.Order{ID: "cs_test_" + strings.Repeat("a", 40), Number: "OF-AAAAAAAAAA"}, "OF-AAAAAAAAAA"},
		{integrations.Order{ID: "pi_1", Number: "OF-1"}, "OF-1----"},
	}
	for _, tt := range tests {
		if got := Reference(tt.o); got != tt.want {
			t.Errorf("Reference(%s) = %q, want %q", tt.o.ID, got, tt.want)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", " ")
	return string(b)
}
