package sim

import (
	"bytes"
	"encoding/base64"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func pnBooking(ref string) string {
	return `{"messageDate":"2026-11-28T10:40:52Z","messageFunction":"Instruction","messageId":"` + ref + `-1",
 "application":{"applicationId":1438,"name":"orderflow","version":"1"},"updateIndicator":"Original","testIndicator":false,
 "shipment":[{"shipmentIdentification":{"shipmentId":"0"},"service":{"basicServiceCode":"19"},
   "references":[{"referenceNo":"` + ref + `","referenceType":"CU"}],
   "parties":{"consignor":{"issuerCode":"Z12","partyIdentification":{"partyId":"1234567890","partyIdType":"160"},
       "party":{"nameIdentification":{"name":"Verkstad AB"},"address":{"streets":["Fabriksgatan 1"],"postalCode":"41250","city":"Göteborg","countryCode":"SE"}}},
     "consignee":{"party":{"nameIdentification":{"name":"Åsa Lindström (Ö)"},"address":{"streets":["Drottninggatan 5"],"postalCode":"11151","city":"Stockholm","countryCode":"SE"},
       "contact":{"emailAddress":"asa@example.se","smsNo":"+46701234567"}}}},
   "goodsItem":[{"packageTypeCode":"PC","items":[{"itemIdentification":{"itemId":"0","itemIdType":"SSCC"},"grossWeight":{"value":1.2,"unit":"KGM"}}]}]}]}`
}

func TestPostNordBooksEveryCall(t *testing.T) {
	dir := t.TempDir()
	s, ts := newTest(t, Config{DataDir: dir})
	url := ts.URL + "/rest/shipment/v3/edi/labels/pdf?apikey=0123456789abcdef0123456789abcdef&paperSize=A5"
	hdr := map[string]string{"Content-Type": "application/json"}
	var itemIDs []string
	for range 2 {
		r := call(t, "POST", url, hdr, pnBooking("OF-ABC123"))
		wantStatus(t, r, 200)
		m := r.json(t)
		info := path(m, "bookingResponse", "idInformation", 0)
		if path(info, "status") != "OK" || path(m, "bookingResponse", "bookingId") == "" {
			t.Fatalf("booking: %s", r.body)
		}
		if path(info, "ids", 0, "idType") != "itemId" || path(info, "ids", 1, "idType") != "shipmentId" {
			t.Fatalf("ids: %s", r.body)
		}
		item, _ := path(info, "ids", 0, "value").(string)
		if item == "" || item == "0" {
			t.Fatalf("no item id assigned: %s", r.body)
		}
		if u, _ := path(info, "urls", 0, "url").(string); path(info, "urls", 0, "type") != "TRACKING" || !strings.HasSuffix(u, "?id="+item) {
			t.Fatalf("tracking url: %s", r.body)
		}
		pr := path(m, "labelPrintout", 0, "printout")
		if path(pr, "labelFormat") != "PDF" || path(pr, "encoding") != "base64" {
			t.Fatalf("printout: %s", r.body)
		}
		pdf, err := base64.StdEncoding.DecodeString(path(pr, "data").(string))
		if err != nil {
			t.Fatal(err)
		}
		checkPDF(t, pdf)
		itemIDs = append(itemIDs, item)
	}
	if itemIDs[0] == itemIDs[1] {
		t.Fatalf("second booking reused item id %s", itemIDs[0])
	}
	// A second booking for the same CU reference is a duplicate shipment.
	wantStats(t, s, StepShipping, StepStats{Requests: 2, Created: 2, DuplicateCreates: 1})
	r := call(t, "POST", url, hdr, pnBooking("OF-OTHER"))
	wantStatus(t, r, 200)
	wantStats(t, s, StepShipping, StepStats{Requests: 3, Created: 3, DuplicateCreates: 1})
}

// checkPDF checks the header, trailer and that startxref and every xref
// entry point at what they claim to.
func checkPDF(t *testing.T, pdf []byte) {
	t.Helper()
	if !bytes.HasPrefix(pdf, []byte("%PDF-1.")) || !bytes.HasSuffix(pdf, []byte("%%EOF\n")) {
		t.Fatalf("not a PDF: %q", pdf[:min(len(pdf), 20)])
	}
	m := regexp.MustCompile(`startxref\n(\d+)\n`).FindSubmatch(pdf)
	if m == nil {
		t.Fatal("no startxref")
	}
	off, _ := strconv.Atoi(string(m[1]))
	if !bytes.HasPrefix(pdf[off:], []byte("xref\n")) {
		t.Fatalf("startxref %d does not point at the xref table", off)
	}
	entries := regexp.MustCompile(`(\d{10}) 00000 n `).FindAllSubmatch(pdf[off:], -1)
	if len(entries) == 0 {
		t.Fatal("empty xref")
	}
	for i, e := range entries {
		o, _ := strconv.Atoi(string(e[1]))
		if want := strconv.Itoa(i+1) + " 0 obj"; !bytes.HasPrefix(pdf[o:], []byte(want)) {
			t.Fatalf("xref entry %d points at %q", i+1, pdf[o:o+10])
		}
	}
}

func TestPostNordErrors(t *testing.T) {
	s, ts := newTest(t, Config{})
	base := ts.URL + "/rest/shipment/v3/edi/labels/pdf"
	for _, tc := range []struct {
		name, query, body string
		status            int
		fault             string // a faultCode or a param that must be named
	}{
		{"no apikey", "", pnBooking("OF-1"), 401, "API-001"},
		{"bad json", "?apikey=k", `{"shipment":`, 400, "API-004"},
		{"no shipment", "?apikey=k", `{"messageDate":"2026-11-28T10:40:52Z","updateIndicator":"Original","shipment":[]}`, 400, "shipment"},
		{"text applicationId", "?apikey=k", strings.Replace(pnBooking("OF-1"), `"applicationId":1438`, `"applicationId":"x"`, 1), 400, "application.applicationId"},
		{"no service", "?apikey=k", strings.Replace(pnBooking("OF-1"), `"basicServiceCode":"19"`, `"basicServiceCode":""`, 1), 400, "shipment[0].service.basicServiceCode"},
		{"no consignee city", "?apikey=k", strings.Replace(pnBooking("OF-1"), `"city":"Stockholm"`, `"city":""`, 1), 400, "shipment[0].parties.consignee.party.address.city"},
		{"no item id", "?apikey=k", strings.Replace(pnBooking("OF-1"), `"itemId":"0"`, `"itemId":""`, 1), 400, "itemIdentification.itemId"},
		{"long reference", "?apikey=k", strings.Replace(pnBooking("OF-1"), `"referenceNo":"OF-1"`, `"referenceNo":"`+strings.Repeat("x", 36)+`"`, 1), 400, "references[0].referenceNo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, "POST", base+tc.query, map[string]string{"Content-Type": "application/json"}, tc.body)
			wantStatus(t, r, tc.status)
			m := r.json(t)
			if m["message"] == nil || path(m, "compositeFault", "faults") == nil {
				t.Fatalf("not PostNord's errorResponse: %s", r.body)
			}
			if !strings.Contains(string(r.body), tc.fault) {
				t.Fatalf("error does not name %q: %s", tc.fault, r.body)
			}
		})
	}
	if got := s.Stats().Steps[StepShipping].Created; got != 0 {
		t.Fatalf("failed bookings created %d shipments", got)
	}
}

// The tracking URL of a booking is on the sender's PostNord site, never
// one named after the receiver's country.
func TestPostNordTrackingSiteIsTheSenders(t *testing.T) {
	_, ts := newTest(t, Config{DataDir: t.TempDir()})
	url := ts.URL + "/rest/shipment/v3/edi/labels/pdf?apikey=0123456789abcdef0123456789abcdef&paperSize=A5"
	for _, c := range []struct{ from, to, site string }{
		{"SE", "SE", "https://tracking.postnord.com/se/?id="},
		{"FI", "JP", "https://tracking.postnord.com/fi/?id="},
		{"DK", "DE", "https://tracking.postnord.com/dk/?id="},
		{"DE", "NO", "https://tracking.postnord.com/se/?id="},
	} {
		body := strings.Replace(pnBooking("OF-SITE"+c.from+c.to), `"city":"Göteborg","countryCode":"SE"`, `"city":"Göteborg","countryCode":"`+c.from+`"`, 1)
		body = strings.Replace(body, `"city":"Stockholm","countryCode":"SE"`, `"city":"Stockholm","countryCode":"`+c.to+`"`, 1)
		r := call(t, "POST", url, map[string]string{"Content-Type": "application/json"}, body)
		wantStatus(t, r, 200)
		info := path(r.json(t), "bookingResponse", "idInformation", 0)
		item, _ := path(info, "ids", 0, "value").(string)
		if u, _ := path(info, "urls", 0, "url").(string); u != c.site+item {
			t.Errorf("%s → %s: tracking url %q, want %q", c.from, c.to, u, c.site+item)
		}
	}
}
