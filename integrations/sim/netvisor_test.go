package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/charmap"
)

const nvInvoiceXML = `<Root><SalesInvoice>
<SalesInvoiceNumber>%s</SalesInvoiceNumber>
<SalesInvoiceDate>2026-11-28</SalesInvoiceDate>
<SalesInvoiceReferenceNumber>1232</SalesInvoiceReferenceNumber>
<SalesInvoiceAmount iso4217currencycode="EUR">89,12</SalesInvoiceAmount>
<SalesInvoiceStatus type="netvisor">unsent</SalesInvoiceStatus>
<InvoicingCustomerIdentifier type="netvisor">1</InvoicingCustomerIdentifier>
<InvoicingCustomerName>%s</InvoicingCustomerName>
<PaymentTermNetDays>14</PaymentTermNetDays>
<InvoiceLines><InvoiceLine><SalesInvoiceProductLine>
<ProductIdentifier type="netvisor">1697</ProductIdentifier>
<ProductName>Kuksa, visakoivu</ProductName>
<ProductUnitPrice type="net">34,90</ProductUnitPrice>
<ProductVatPercentage vatcode="KOMY">25,5</ProductVatPercentage>
<SalesInvoiceProductLineQuantity>2</SalesInvoiceProductLineQuantity>
</SalesInvoiceProductLine></InvoiceLine></InvoiceLines>
</SalesInvoice></Root>`

var nvTx int

// nvHdr returns complete Netvisor headers with a fresh TransactionId and a
// MAC computed as the docs describe for the given keys and URL.
func nvHdr(url, alg, customerKey, partnerKey string) map[string]string {
	nvTx++
	h := map[string]string{
		"Content-Type":                                          "text/xml",
		"X-Netvisor-Authentication-Sender":                      "orderflow",
		"X-Netvisor-Authentication-CustomerId":                  "CUST1",
		"X-Netvisor-Authentication-PartnerId":                   "PART1",
		"X-Netvisor-Authentication-Timestamp":                   time.Now().UTC().Format("2006-01-02 15:04:05.000"),
		"X-Netvisor-Authentication-TransactionId":               fmt.Sprintf("tx%014d", nvTx),
		"X-Netvisor-Interface-Language":                         "FI",
		"X-Netvisor-Organisation-ID":                            "1967543-8",
		"X-Netvisor-Authentication-MACHashCalculationAlgorithm": alg,
	}
	fields := []string{url, h["X-Netvisor-Authentication-Sender"], h["X-Netvisor-Authentication-CustomerId"],
		h["X-Netvisor-Authentication-Timestamp"], h["X-Netvisor-Interface-Language"], h["X-Netvisor-Organisation-ID"],
		h["X-Netvisor-Authentication-TransactionId"]}
	if alg == "HMACSHA256" {
		h["X-Netvisor-Authentication-TimestampUnix"] = fmt.Sprint(time.Now().Unix())
		h["X-Netvisor-Authentication-UseHTTPResponseStatusCodes"] = "1"
		fields = append(fields, h["X-Netvisor-Authentication-TimestampUnix"], customerKey, partnerKey)
		m := hmac.New(sha256.New, encodeLatin9(customerKey+"&"+partnerKey))
		m.Write(encodeLatin9(strings.Join(fields, "&")))
		h["X-Netvisor-Authentication-MAC"] = hex.EncodeToString(m.Sum(nil))
	} else {
		fields = append(fields, customerKey, partnerKey)
		sum := sha256.Sum256(encodeLatin9(strings.Join(fields, "&")))
		h["X-Netvisor-Authentication-MAC"] = hex.EncodeToString(sum[:])
	}
	return h
}

// encodeLatin9 encodes s as ISO-8859-15 with golang.org/x/text,
// independent of the simulator's own encoder.
func encodeLatin9(s string) []byte {
	b, err := charmap.ISO8859_15.NewEncoder().Bytes([]byte(s))
	if err != nil {
		panic(fmt.Sprintf("%q has no ISO-8859-15 form: %v", s, err))
	}
	return b
}

// The simulator checks the MAC over ISO-8859-15 bytes, the HMAC key too, as
// the client computes it: a request signed with non-ASCII keys and the MAC
// written out here (computed with Python's iso-8859-15 codec, the same
// vectors as the client's TestMACNonASCIIKeys) is accepted, and the MAC
// over the UTF-8 bytes is refused.
func TestNetvisorMACNonASCIIKeys(t *testing.T) {
	for i, tc := range []struct {
		alg, mac, code string
	}{
		{"SHA256", "e89af0f93c20e5e1abb0f535b0accf4f13268bc50c592958164c578bb094dd0b", "OK"},
		{"HMACSHA256", "1e98f2779a23c11d1f2682f93eb2ba2296b9528591890e1b27c3485874d30962", "OK"},
		{"SHA256", "ba569ba096af260e58aa66e475be997e52a243af4492e186d0af8bbd84b461af", "AUTHENTICATION_FAILED"},     // UTF-8
		{"HMACSHA256", "758b696f76f1637aae1966098a50abda155b29c1ab203cf7f1662f543ecbeeec", "AUTHENTICATION_FAILED"}, // UTF-8
	} {
		// A fresh simulator each time: the TransactionId is the vectors'.
		_, ts := newTest(t, Config{NetvisorCustomerKey: "ckey-äÖå€", NetvisorPartnerKey: "pkey-Šž"})
		req, err := http.NewRequest("POST", ts.URL+"/salesinvoice.nv?method=add", strings.NewReader(fmt.Sprintf(nvInvoiceXML, fmt.Sprintf("OF-MAC%d", i), "Åsa Öberg")))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "integration.netvisor.fi" // the URL the vectors sign: https://integration.netvisor.fi/salesinvoice.nv?method=add
		for k, v := range map[string]string{
			"Content-Type":                                          "text/xml",
			"X-Netvisor-Authentication-Sender":                      "orderflow",
			"X-Netvisor-Authentication-CustomerId":                  "CUST1",
			"X-Netvisor-Authentication-PartnerId":                   "PART1",
			"X-Netvisor-Authentication-Timestamp":                   "2026-11-28 10:40:52.000",
			"X-Netvisor-Authentication-TimestampUnix":               "1795862452",
			"X-Netvisor-Authentication-TransactionId":               "0123456789abcdef0123456789abcdef",
			"X-Netvisor-Interface-Language":                         "EN",
			"X-Netvisor-Organisation-ID":                            "1967543-8",
			"X-Netvisor-Authentication-MACHashCalculationAlgorithm": tc.alg,
			"X-Netvisor-Authentication-MAC":                         tc.mac,
		} {
			req.Header.Set(k, v)
		}
		if tc.alg == "HMACSHA256" {
			req.Header.Set("X-Netvisor-Authentication-UseHTTPResponseStatusCodes", "1")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		st := nvStatus(t, resp{status: res.StatusCode, body: body})
		ok := len(st) == 1 && st[0] == "OK"
		if tc.code != "OK" {
			ok = len(st) == 2 && st[0] == "FAILED" && strings.HasPrefix(st[1], tc.code)
		}
		if !ok {
			t.Errorf("%s with MAC %s…: %s, want %s", tc.alg, tc.mac[:8], body, tc.code)
		}
	}
}

func nvStatus(t *testing.T, r resp) []string {
	t.Helper()
	var out []string
	body := string(r.body)
	for {
		i := strings.Index(body, "<Status>")
		if i < 0 {
			return out
		}
		j := strings.Index(body[i:], "</Status>")
		out = append(out, body[i+8:i+j])
		body = body[i+j:]
	}
}

func TestNetvisorAddAndLookUp(t *testing.T) {
	dir := t.TempDir()
	s, ts := newTest(t, Config{DataDir: dir})
	addURL := ts.URL + "/salesinvoice.nv?method=add"
	var keys []string
	for range 2 {
		r := call(t, "POST", addURL, nvHdr(addURL, "SHA256", "ck", "pk"), fmt.Sprintf(nvInvoiceXML, "OF-ABC123", "Jyrki Hämäläinen"))
		wantStatus(t, r, 200)
		if st := nvStatus(t, r); len(st) != 1 || st[0] != "OK" {
			t.Fatalf("add: %s", r.body)
		}
		i := strings.Index(string(r.body), "<InsertedDataIdentifier>")
		j := strings.Index(string(r.body), "</InsertedDataIdentifier>")
		if i < 0 || j < i {
			t.Fatalf("no InsertedDataIdentifier: %s", r.body)
		}
		keys = append(keys, string(r.body[i+24:j]))
	}
	if keys[0] == keys[1] {
		t.Fatalf("two adds returned the same key %s", keys[0])
	}
	// Netvisor creates again: the same invoice number twice is a duplicate.
	wantStats(t, s, StepInvoice, StepStats{Requests: 2, Created: 2, DuplicateCreates: 1})

	listURL := ts.URL + "/salesinvoicelist.nv?InvoiceNumber=OF-ABC123"
	r := call(t, "GET", listURL, nvHdr(listURL, "SHA256", "ck", "pk"), nil)
	wantStatus(t, r, 200)
	for _, k := range keys {
		if !strings.Contains(string(r.body), "<NetvisorKey>"+k+"</NetvisorKey>") {
			t.Fatalf("list misses key %s: %s", k, r.body)
		}
	}
	if !strings.Contains(string(r.body), "<InvoiceNumber>OF-ABC123</InvoiceNumber>") {
		t.Fatalf("list: %s", r.body)
	}
	noneURL := ts.URL + "/salesinvoicelist.nv?InvoiceNumber=OF-NONE"
	r = call(t, "GET", noneURL, nvHdr(noneURL, "SHA256", "ck", "pk"), nil)
	if strings.Contains(string(r.body), "<SalesInvoice>") || nvStatus(t, r)[0] != "OK" {
		t.Fatalf("unknown number should list nothing: %s", r.body)
	}

	// ISO-8859-15, as Netvisor asks for Scandinavian characters, is decoded.
	latin := latin9(fmt.Sprintf(nvInvoiceXML, "OF-LATIN", "Sanna Öhman-Kärkkäinen"))
	h := nvHdr(addURL, "SHA256", "ck", "pk")
	h["Content-Type"] = "text/xml; charset=ISO-8859-15"
	r = call(t, "POST", addURL, h, latin)
	wantStatus(t, r, 200)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "outbox", "invoice", "*-OF-LATIN.xml"))
	if len(files) != 1 {
		t.Fatalf("invoice file for OF-LATIN: %v", files)
	}
	b, _ := os.ReadFile(files[0])
	if !strings.Contains(string(b), "Sanna Öhman-Kärkkäinen") {
		t.Fatalf("invoice not decoded to UTF-8: %q", b)
	}
	lines, _ := os.ReadFile(filepath.Join(dir, "outbox", "invoice.jsonl"))
	if n := strings.Count(string(lines), "\n"); n != 3 || !strings.Contains(string(lines), `"duplicate":true`) {
		t.Fatalf("invoice.jsonl has %d lines: %s", n, lines)
	}
}

func TestNetvisorRejects(t *testing.T) {
	s, ts := newTest(t, Config{NetvisorCustomerKey: "ck", NetvisorPartnerKey: "pk"})
	addURL := ts.URL + "/salesinvoice.nv?method=add"
	good := fmt.Sprintf(nvInvoiceXML, "OF-1", "Aino")

	// Both MAC variants pass with the right keys.
	for _, alg := range []string{"SHA256", "HMACSHA256"} {
		r := call(t, "POST", addURL, nvHdr(addURL, alg, "ck", "pk"), good)
		if st := nvStatus(t, r); r.status != 200 || st[0] != "OK" {
			t.Fatalf("%s MAC refused: %d %s", alg, r.status, r.body)
		}
	}

	reused := nvHdr(addURL, "SHA256", "ck", "pk")
	call(t, "POST", addURL, reused, good)
	before := s.Stats().Steps[StepInvoice].Created

	without := func(name string) map[string]string {
		h := nvHdr(addURL, "SHA256", "ck", "pk")
		delete(h, name)
		return h
	}
	with := func(name, v string) map[string]string {
		h := nvHdr(addURL, "SHA256", "ck", "pk")
		h[name] = v
		return h
	}
	httpCodes := nvHdr(addURL, "SHA256", "ck", "pk")
	httpCodes["X-Netvisor-Authentication-UseHTTPResponseStatusCodes"] = "1"
	for _, tc := range []struct {
		name   string
		url    string
		hdr    map[string]string
		body   string
		status int
		code   string
	}{
		{"reused transaction id", addURL, reused, good, 200, "REQUEST_NOT_UNIQUE"},
		{"no MAC", addURL, without("X-Netvisor-Authentication-MAC"), good, 200, "AUTHENTICATION_FAILED"},
		{"no organisation", addURL, without("X-Netvisor-Organisation-ID"), good, 200, "AUTHENTICATION_FAILED"},
		{"wrong keys", addURL, nvHdr(addURL, "SHA256", "ck", "other"), good, 200, "AUTHENTICATION_FAILED"},
		{"MD5 algorithm", addURL, with("X-Netvisor-Authentication-MACHashCalculationAlgorithm", "MD5"), good, 200, "AUTHENTICATION_FAILED"},
		{"bad timestamp", addURL, with("X-Netvisor-Authentication-Timestamp", "28.11.2026 12:00"), good, 200, "AUTHENTICATION_FAILED"},
		{"edit unsupported", ts.URL + "/salesinvoice.nv?method=edit&id=1", nvHdr(ts.URL+"/salesinvoice.nv?method=edit&id=1", "SHA256", "ck", "pk"), good, 200, "INVALID_DATA"},
		{"not xml", addURL, nvHdr(addURL, "SHA256", "ck", "pk"), "<Root><SalesInvoice>", 200, "INVALID_DATA"},
		{"no lines", addURL, nvHdr(addURL, "SHA256", "ck", "pk"), strings.Replace(good, "<InvoiceLine>", "<Other>", 1), 200, "INVALID_DATA"},
		{"no vat code", addURL, nvHdr(addURL, "SHA256", "ck", "pk"), strings.Replace(good, ` vatcode="KOMY"`, "", 1), 200, "INVALID_DATA"},
		{"bad amount", addURL, nvHdr(addURL, "SHA256", "ck", "pk"), strings.Replace(good, "89,12", "89 €", 1), 200, "INVALID_DATA"},
		{"no customer", addURL, nvHdr(addURL, "SHA256", "ck", "pk"), strings.Replace(good, `<InvoicingCustomerIdentifier type="netvisor">1</InvoicingCustomerIdentifier>`, "", 1), 200, "INVALID_DATA"},
		{"unknown customer code", addURL, nvHdr(addURL, "SHA256", "ck", "pk"), strings.Replace(good, `<InvoicingCustomerIdentifier type="netvisor">1</InvoicingCustomerIdentifier>`, `<InvoicingCustomerIdentifier type="customer">DE999</InvoicingCustomerIdentifier>`, 1), 200, "INVALID_DATA"},
		{"http status codes on", addURL, httpCodes, strings.Replace(good, "<SalesInvoiceDate>2026-11-28", "<SalesInvoiceDate>28.11.2026", 1), http.StatusBadRequest, "INVALID_DATA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, "POST", tc.url, tc.hdr, tc.body)
			wantStatus(t, r, tc.status)
			st := nvStatus(t, r)
			if len(st) != 2 || st[0] != "FAILED" || !strings.HasPrefix(st[1], tc.code+" :: ") {
				t.Fatalf("want FAILED %s: %s", tc.code, r.body)
			}
		})
	}
	if got := s.Stats().Steps[StepInvoice].Created; got != before {
		t.Fatalf("rejected adds created %d invoices", got-before)
	}
}

func TestNetvisorTransactionIDMemoryIsBounded(t *testing.T) {
	old := maxTxIDs
	maxTxIDs = 2
	t.Cleanup(func() { maxTxIDs = old })
	_, ts := newTest(t, Config{})
	listURL := ts.URL + "/salesinvoicelist.nv?InvoiceNumber=OF-1"
	send := func(tx string) []string {
		h := nvHdr(listURL, "SHA256", "ck", "pk")
		h["X-Netvisor-Authentication-TransactionId"] = tx
		return nvStatus(t, call(t, "GET", listURL, h, nil))
	}
	for _, tx := range []string{"a", "b", "c"} {
		if st := send(tx); st[0] != "OK" {
			t.Fatalf("%s: %v", tx, st)
		}
	}
	// "a" moved to the older generation and is still refused ...
	if st := send("a"); len(st) != 2 || !strings.HasPrefix(st[1], "REQUEST_NOT_UNIQUE") {
		t.Fatalf("reused a: %v", st)
	}
	// ... until two more generations have passed.
	for _, tx := range []string{"d", "e", "f"} {
		send(tx)
	}
	if st := send("b"); st[0] != "OK" {
		t.Fatalf("b after rotation: %v", st)
	}
}
