package postnord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
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

const testKey = "0123456789abcdef0123456789abcdef"

type captured struct {
	method, path string
	query        url.Values
	header       http.Header
	body         []byte
}

// fakePostNord answers every booking with status and the fixture file.
type fakePostNord struct {
	status  int
	fixture string
	header  http.Header

	mu   sync.Mutex
	reqs []captured
}

func (f *fakePostNord) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, captured{r.Method, r.URL.Path, r.URL.Query(), r.Header.Clone(), body})
	f.mu.Unlock()
	for k, v := range f.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	if f.fixture != "" {
		b, err := os.ReadFile(filepath.Join("testdata", f.fixture))
		if err != nil {
			panic(err)
		}
		_, _ = w.Write(b)
	}
}

type failingStore struct{}

func (failingStore) Put(context.Context, string, string, []byte) (string, error) {
	return "", errors.New("disk full")
}

func testConfig(t *testing.T, base string) Config {
	t.Helper()
	store, err := labelstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		BaseURL:        base,
		APIKey:         testKey,
		Labels:         store,
		ApplicationID:  1438,
		IssuerCode:     "Z12",
		CustomerNumber: "1234567890",
		Consignor: Party{
			Name: "Verkstad AB", Streets: []string{"Industrigatan 4"}, PostalCode: "11122",
			City: "Stockholm", CountryCode: "se", Email: "ship@verkstad.example",
		},
		BasicServiceCode: "19",
		PaperSize:        "LABEL",
		LabelType:        "small",
		Locale:           "en",
		GrossWeightGrams: 1250,
	}
}

func testOrder() integrations.Order {
	return integrations.Order{
		ID:       "pi_3OrderflowTest0001",
		Number:   "OF-WTEST0001",
		Currency: "sek",
		Customer: integrations.Customer{Name: "Åsa Öberg", Email: "asa@example.se", Phone: "+46701234567"},
		Shipping: integrations.Address{Name: "Åsa Öberg", Line1: "Storgatan 1", Line2: "lgh 1102", PostalCode: "41301", City: "Göteborg", Country: "se"},
	}
}

func newTest(t *testing.T, f *fakePostNord, mod func(*Config)) *Client {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := testConfig(t, srv.URL)
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return time.Date(2026, 11, 28, 10, 40, 52, 0, time.FixedZone("CET", 3600)) }
	return c
}

func TestCreateShipmentRequest(t *testing.T) {
	f := &fakePostNord{status: 200, fixture: "booking_ok.json"}
	c := newTest(t, f, nil)
	if _, err := c.CreateShipment(context.Background(), testOrder()); err != nil {
		t.Fatal(err)
	}
	if len(f.reqs) != 1 {
		t.Fatalf("%d requests", len(f.reqs))
	}
	r := f.reqs[0]
	if r.method != http.MethodPost || r.path != "/rest/shipment/v3/edi/labels/pdf" {
		t.Errorf("request = %s %s", r.method, r.path)
	}
	wantQuery := url.Values{"apikey": {testKey}, "paperSize": {"LABEL"}, "labelType": {"small"}, "locale": {"en"}}
	if r.query.Encode() != wantQuery.Encode() {
		t.Errorf("query = %s, want %s", r.query.Encode(), wantQuery.Encode())
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, h := range []string{"X-Api-Key", "Authorization", "X-Ibm-Client-Id"} {
		if r.header.Get(h) != "" {
			t.Errorf("undocumented header %s sent", h)
		}
	}

	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	get := func(path string) any {
		var cur any = body
		for _, p := range strings.Split(path, ".") {
			switch v := cur.(type) {
			case map[string]any:
				cur = v[p]
			case []any:
				if len(v) == 0 {
					return nil
				}
				cur = v[0] // "shipment.0" style paths: first element
				if p != "0" {
					cur = cur.(map[string]any)[p]
				}
			default:
				return nil
			}
		}
		return cur
	}
	if id := r.header.Get("X-External-Request-ID"); id == "" || id != get("messageId") {
		t.Errorf("X-External-Request-ID %q does not match messageId %v", id, get("messageId"))
	}
	want := map[string]any{
		"messageDate":                                                  "2026-11-28T09:40:52Z",
		"messageFunction":                                              "Instruction",
		"updateIndicator":                                              "Original",
		"testIndicator":                                                false,
		"application.applicationId":                                    float64(1438),
		"application.name":                                             "orderflow",
		"shipment.0.service.basicServiceCode":                          "19",
		"shipment.0.references.0.referenceNo":                          "pi_3OrderflowTest0001",
		"shipment.0.references.0.referenceType":                        "CU",
		"shipment.0.numberOfPackages.value":                            float64(1),
		"shipment.0.totalGrossWeight.value":                            1.25,
		"shipment.0.totalGrossWeight.unit":                             "KGM",
		"shipment.0.parties.consignor.issuerCode":                      "Z12",
		"shipment.0.parties.consignor.partyIdentification.partyId":     "1234567890",
		"shipment.0.parties.consignor.partyIdentification.partyIdType": "160",
		"shipment.0.parties.consignor.party.nameIdentification.name":   "Verkstad AB",
		"shipment.0.parties.consignor.party.address.countryCode":       "SE",
		"shipment.0.parties.consignor.party.address.postalCode":        "11122",
		"shipment.0.parties.consignee.party.nameIdentification.name":   "Åsa Öberg",
		"shipment.0.parties.consignee.party.address.postalCode":        "41301",
		"shipment.0.parties.consignee.party.address.city":              "Göteborg",
		"shipment.0.parties.consignee.party.address.countryCode":       "SE",
		"shipment.0.parties.consignee.party.contact.emailAddress":      "asa@example.se",
		"shipment.0.parties.consignee.party.contact.smsNo":             "+46701234567",
		"shipment.0.goodsItem.0.packageTypeCode":                       "PC",
		"shipment.0.goodsItem.0.items.0.itemIdentification.itemId":     "0",
		"shipment.0.goodsItem.0.items.0.grossWeight.unit":              "KGM",
	}
	for path, w := range want {
		if got := get(path); got != w {
			t.Errorf("%s = %#v, want %#v", path, got, w)
		}
	}
	streets, _ := get("shipment.0.parties.consignee.party.address.streets").([]any)
	if len(streets) != 2 || streets[0] != "Storgatan 1" || streets[1] != "lgh 1102" {
		t.Errorf("consignee streets = %v", streets)
	}
	if id, _ := get("messageId").(string); len(id) < 1 || len(id) > 36 {
		t.Errorf("messageId %q not 1..36 characters", id)
	}
}

func TestCreateShipmentResult(t *testing.T) {
	f := &fakePostNord{status: 200, fixture: "booking_ok.json"}
	c := newTest(t, f, func(c *Config) { c.TrackingURLTemplate = "https://track.example/{id}?lang=en" })
	s, err := c.CreateShipment(context.Background(), testOrder())
	if err != nil {
		t.Fatal(err)
	}
	if s.TrackingNumber != "00373500454541020957" || s.ShipmentID != "00373500454541020958" {
		t.Errorf("shipment = %+v", s)
	}
	// The TRACKING url PostNord returned wins over the template.
	if s.TrackingURL != "https://tracking.postnord.com/se/?id=00373500454541020957" {
		t.Errorf("TrackingURL = %q", s.TrackingURL)
	}
	u, err := url.Parse(s.LabelLocation)
	if err != nil || u.Scheme != "file" || !strings.HasSuffix(u.Path, "/pi_3OrderflowTest0001_label-00373500454541020957.pdf") {
		t.Fatalf("LabelLocation = %q", s.LabelLocation)
	}
	pdf, err := os.ReadFile(filepath.FromSlash(u.Path))
	if err != nil || !bytes.HasPrefix(pdf, []byte("%PDF-1.4")) {
		t.Fatalf("stored label = %q, %v", pdf, err)
	}
}

func TestDefaultTrackingURL(t *testing.T) {
	f := &fakePostNord{status: 200, fixture: "booking_ok.json"}
	c := newTest(t, f, nil)
	s, err := c.CreateShipment(context.Background(), testOrder())
	if err != nil {
		t.Fatal(err)
	}
	if s.TrackingURL != "https://tracking.postnord.com/se/?id=00373500454541020957" {
		t.Errorf("TrackingURL = %q", s.TrackingURL)
	}
}

func TestCreateShipmentErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		fixture    string
		header     http.Header
		store      labelstore.Store
		permanent  bool
		retryAfter time.Duration
		msg        string
		inDoubt    bool // no status: the processor keeps the intent and looks the booking up
	}{
		{name: "item failed inside 200", status: 200, fixture: "booking_item_failed.json", permanent: true, msg: "API-005"},
		{name: "no item id", status: 200, fixture: "booking_no_item.json", permanent: true, msg: "no item id"},
		{name: "empty idInformation", status: 200, fixture: "booking_empty.json", permanent: true, msg: "no idInformation"},
		{name: "no label", status: 200, fixture: "booking_no_label.json", permanent: true, msg: "00370000000000000001"},
		{name: "label store fails", status: 200, fixture: "booking_ok.json", store: failingStore{}, permanent: true, msg: "disk full"},
		{name: "200 not json", status: 200, msg: "HTTP 200 answer is not a success answer, outcome unknown: not a label response", inDoubt: true},
		{name: "400 fault", status: 400, fixture: "error_400.json", permanent: true, msg: "applicationId must be an integer"},
		{name: "401", status: 401, fixture: "error_400.json", permanent: true, msg: "HTTP 401"},
		{name: "403 gateway envelope", status: 403, fixture: "error_403_gateway.json", permanent: true, msg: "Invalid API Key"},
		{name: "404", status: 404, permanent: true, msg: "HTTP 404"},
		{name: "429", status: 429, header: http.Header{"Retry-After": {"12"}}, retryAfter: 12 * time.Second, msg: "HTTP 429"},
		{name: "499", status: 499, msg: "HTTP 499"},
		{name: "503", status: 503, msg: "HTTP 503"},
		{name: "504", status: 504, msg: "HTTP 504"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakePostNord{status: tt.status, fixture: tt.fixture, header: tt.header}
			c := newTest(t, f, func(c *Config) {
				if tt.store != nil {
					c.Labels = tt.store
				}
			})
			_, err := c.CreateShipment(context.Background(), testOrder())
			var e *integrations.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *integrations.Error", err)
			}
			if e.Provider != "postnord" || integrations.IsPermanent(err) != tt.permanent || e.RetryAfter != tt.retryAfter {
				t.Errorf("err %v: permanent=%v retryAfter=%v; want %v %v", err, integrations.IsPermanent(err), e.RetryAfter, tt.permanent, tt.retryAfter)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q lacks %q", err, tt.msg)
			}
			if tt.inDoubt && (e.Status != 0 || e.NotSent) {
				t.Errorf("err %v: status %d, not sent %v; want an answer in doubt (no status)", err, e.Status, e.NotSent)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error leaks the API key: %q", err)
			}
		})
	}
}

func TestMissingAddressIsPermanentWithoutCall(t *testing.T) {
	f := &fakePostNord{status: 200, fixture: "booking_ok.json"}
	c := newTest(t, f, nil)
	o := testOrder()
	o.Shipping.PostalCode = ""
	o.Shipping.Country = ""
	_, err := c.CreateShipment(context.Background(), o)
	if !integrations.IsPermanent(err) || !integrations.IsNotSent(err) || !strings.Contains(err.Error(), "postal code, country") {
		t.Fatalf("err = %v", err)
	}
	if len(f.reqs) != 0 {
		t.Fatal("booked despite an incomplete address")
	}
}

func TestNetworkErrorRedactsKey(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	cfg := testConfig(t, base)
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateShipment(context.Background(), testOrder())
	if err == nil || integrations.IsPermanent(err) {
		t.Fatalf("err = %v, want transient", err)
	}
	if strings.Contains(err.Error(), testKey) {
		t.Fatalf("error leaks the API key: %q", err)
	}
	if !strings.Contains(err.Error(), "apikey=REDACTED") {
		t.Errorf("error %q: expected the redacted URL", err)
	}
}

func TestCustomerReference(t *testing.T) {
	long := "cs_test_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V2w3X4y5Z6"
	tests := []struct {
		o    integrations.Order
		want string
	}{
		{integrations.Order{ID: "pi_3NxYzAbCdEfGhIjKlMnOpQr", Number: "OF-X"}, "pi_3NxYzAbCdEfGhIjKlMnOpQr"},
		{integrations.Order{ID: long, Number: "OF-Z6"}, "OF-Z6"},
		{integrations.Order{ID: long}, integrations.OrderNumber(long)},
	}
	for _, tt := range tests {
		if got := CustomerReference(tt.o); got != tt.want || len(got) > 35 {
			t.Errorf("CustomerReference(%q) = %q, want %q", tt.o.ID, got, tt.want)
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
		{"defaults", func(c *Config) { c.BaseURL, c.PaperSize, c.LabelType, c.IssuerCode = "", "", "", "" }, true},
		{"no key", func(c *Config) { c.APIKey = "" }, false},
		{"no store", func(c *Config) { c.Labels = nil }, false},
		{"bad issuer", func(c *Config) { c.IssuerCode = "SE" }, false},
		{"long customer number", func(c *Config) { c.CustomerNumber = strings.Repeat("1", 18) }, false},
		{"no consignor city", func(c *Config) { c.Consignor.City = "" }, false},
		{"bad paper", func(c *Config) { c.PaperSize = "A3" }, false},
		{"template without id", func(c *Config) { c.TrackingURLTemplate = "https://x/" }, false},
		{"bad base", func(c *Config) { c.BaseURL = "api2.postnord.com" }, false},
	}
	for _, tt := range tests {
		c := testConfig(t, "https://api2.postnord.com")
		tt.mod(&c)
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
	}
}

// Without a TRACKING url in the response, the template builds it.
func TestTrackingURLFallback(t *testing.T) {
	f := &fakePostNord{status: 200, fixture: "booking_ok.json"}
	c := newTest(t, f, func(c *Config) { c.TrackingURLTemplate = "https://track.example/{id}?lang=en" })
	raw, err := os.ReadFile(filepath.Join("testdata", "booking_ok.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lr labelResponse
	if err := json.Unmarshal(raw, &lr); err != nil {
		t.Fatal(err)
	}
	infos := lr.BookingResponse.IDInformation
	if got := trackingURL(infos, "00373500454541020957", c.cfg.TrackingURLTemplate); got != "https://tracking.postnord.com/se/?id=00373500454541020957" {
		t.Errorf("with urls: %q", got)
	}
	for i := range infos {
		infos[i].URLs = nil
	}
	if got := trackingURL(infos, "00373500454541020957", c.cfg.TrackingURLTemplate); got != "https://track.example/00373500454541020957?lang=en" {
		t.Errorf("without urls: %q", got)
	}
}

// Each booking carries the customer's language; PostNord knows sv, da,
// no, fi and en, everything else is en; no language: the configured one.
func TestNotificationLocale(t *testing.T) {
	for tag, want := range map[string]string{
		"sv": "sv", "sv-SE": "sv", "sv_FI": "sv", "da-DK": "da", "nb-NO": "no", "nn": "no", "no": "no", "fi-FI": "fi", "FI": "fi",
		"en-GB": "en", "de-DE": "en", "ja": "en", "el": "en", "auto": "xx", "": "xx",
	} {
		if got := NotificationLocale(tag, "xx"); got != want {
			t.Errorf("NotificationLocale(%q) = %q, want %q", tag, got, want)
		}
	}
	f := &fakePostNord{status: 200, fixture: "booking_ok.json"}
	c := newTest(t, f, func(c *Config) { c.Locale = "fi" })
	o := testOrder()
	o.Locale = "da-DK"
	if _, err := c.CreateShipment(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	o.Locale = ""
	if _, err := c.CreateShipment(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	reqs := f.reqs
	f.mu.Unlock()
	if len(reqs) != 2 || reqs[0].query.Get("locale") != "da" || reqs[1].query.Get("locale") != "fi" {
		t.Errorf("locales = %v", reqs)
	}
}

// The booking's address has no state field: a state, province or
// prefecture is printed after the city, but for a Nordic address.
func TestBookingCityCarriesTheState(t *testing.T) {
	c := newTest(t, &fakePostNord{status: 200, fixture: "booking_ok.json"}, nil)
	for _, tc := range []struct{ country, city, state, want string }{
		{"US", "Austin", "TX", "Austin TX"},
		{"CA", "Vancouver", "BC", "Vancouver BC"},
		{"IT", "Milano", "MI", "Milano MI"},
		{"JP", "千代田区", "東京都", "東京都千代田区"},
		{"JP", "Chiyoda-ku", "Tokyo", "Chiyoda-ku Tokyo"},
		{"US", "Washington DC", "DC", "Washington DC"}, // given already
		{"JP", "東京都千代田区", "東京都", "東京都千代田区"},
		{"US", "MAIDSTONE", "MA", "MAIDSTONE MA"},
		{"SE", "Göteborg", "Västra Götaland", "Göteborg"},
		{"fi", "Turku", "Varsinais-Suomi", "Turku"},
		{"DE", "Berlin", "", "Berlin"},
	} {
		o := testOrder()
		o.Shipping.Country, o.Shipping.City, o.Shipping.State = tc.country, tc.city, tc.state
		in, err := c.bookingRequest(o)
		if err != nil {
			t.Fatal(err)
		}
		if got := in.Shipment[0].Parties.Consignee.Party.Address.City; got != tc.want {
			t.Errorf("%s %q %q: city %q, want %q", tc.country, tc.city, tc.state, got, tc.want)
		}
	}
}
