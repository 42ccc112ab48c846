package sim

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// restartSim stops s and starts a simulator on the same data folder as a
// new process would: the process-wide id counter starts from zero again.
func restartSim(t *testing.T, s *Server, ts *httptest.Server, dir string) (*Server, *httptest.Server) {
	t.Helper()
	ts.Close()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	seq.Store(0)
	return newTest(t, Config{DataDir: dir})
}

func outboxFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(filepath.Join(dir, "outbox"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".jsonl") {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// One order's calls to every provider that creates something; returns the
// Zoho deal id, the tracking number and the Netvisor key.
func onePass(t *testing.T, base, order string) (deal, tracking, nvKey string) {
	t.Helper()
	tok := zohoToken(t, base)
	r := call(t, "POST", base+"/crm/v3/Deals/upsert", map[string]string{"Authorization": "Zoho-oauthtoken " + tok},
		fmt.Sprintf(`{"data":[{"Deal_Name":"%s"}]}`, order))
	wantStatus(t, r, 200)
	deal, _ = path(r.json(t), "data", 0, "details", "id").(string)
	r = call(t, "PATCH", base+"/v0/appX/tblY", map[string]string{"Authorization": "Bearer pat"},
		fmt.Sprintf(`{"performUpsert":{"fieldsToMergeOn":["Order ID"]},"records":[{"fields":{"Order ID":"%s"}}]}`, order))
	wantStatus(t, r, 200)
	r = call(t, "POST", base+"/rest/shipment/v3/edi/labels/pdf?apikey=0123456789abcdef0123456789abcdef", map[string]string{"Content-Type": "application/json"}, pnBooking(order))
	wantStatus(t, r, 200)
	tracking, _ = path(r.json(t), "bookingResponse", "idInformation", 0, "ids", 0, "value").(string)
	addURL := base + "/salesinvoice.nv?method=add"
	r = call(t, "POST", addURL, nvHdr(addURL, "SHA256", "ck", "pk"), fmt.Sprintf(nvInvoiceXML, order, "Aino"))
	wantStatus(t, r, 200)
	b := string(r.body)
	i, j := strings.Index(b, "<InsertedDataIdentifier>"), strings.Index(b, "</InsertedDataIdentifier>")
	if i < 0 || j < i {
		t.Fatalf("netvisor: %s", b)
	}
	nvKey = b[i+24 : j]
	r = call(t, "POST", base+"/v3/mg.example.com/messages", map[string]string{"Authorization": "Basic YXBpOmtleQ==", "Content-Type": "application/x-www-form-urlencoded"},
		url.Values{"from": {"s@example.com"}, "to": {"a@example.com"}, "subject": {"Your order " + order}, "text": {"x"}, "h:Message-Id": {order + "@x"}}.Encode())
	wantStatus(t, r, 200)
	return deal, tracking, nvKey
}

func TestRestartKeepsIDsRecordsAndOutbox(t *testing.T) {
	dir := t.TempDir()
	s, ts := newTest(t, Config{DataDir: dir})
	deal1, track1, key1 := onePass(t, ts.URL, "OF-FIRST00001")
	if deal1 == "" || track1 == "" || key1 == "" {
		t.Fatalf("first pass: deal %q tracking %q key %q", deal1, track1, key1)
	}
	before := outboxFiles(t, dir)

	s, ts = restartSim(t, s, ts, dir)

	// The same deal is updated, not created again with a new id.
	tok := zohoToken(t, ts.URL)
	r := call(t, "POST", ts.URL+"/crm/v3/Deals/upsert", map[string]string{"Authorization": "Zoho-oauthtoken " + tok}, `{"data":[{"Deal_Name":"OF-FIRST00001"}]}`)
	wantStatus(t, r, 200)
	if got := path(r.json(t), "data", 0, "details", "id"); got != deal1 {
		t.Errorf("deal after restart: id %v, want %s (the one created before)", got, deal1)
	}
	if got := path(r.json(t), "data", 0, "action"); got != "update" {
		t.Errorf("deal after restart: action %v, want update", got)
	}
	// The same Airtable row is updated.
	r = call(t, "PATCH", ts.URL+"/v0/appX/tblY", map[string]string{"Authorization": "Bearer pat"},
		`{"performUpsert":{"fieldsToMergeOn":["Order ID"]},"records":[{"fields":{"Order ID":"OF-FIRST00001"}}]}`)
	wantStatus(t, r, 200)
	if got := path(r.json(t), "createdRecords"); fmt.Sprint(got) != "[]" {
		t.Errorf("airtable after restart created %v, want nothing created", got)
	}
	// Reconciliation look-ups find what was created before the restart.
	listURL := ts.URL + "/salesinvoicelist.nv?InvoiceNumber=OF-FIRST00001"
	r = call(t, "GET", listURL, nvHdr(listURL, "SHA256", "ck", "pk"), nil)
	if !strings.Contains(string(r.body), "<NetvisorKey>"+key1+"</NetvisorKey>") {
		t.Errorf("netvisor look-up after restart does not find key %s: %s", key1, r.body)
	}
	r = call(t, "GET", ts.URL+"/v3/mg.example.com/events?message-id=OF-FIRST00001@x&event=accepted", map[string]string{"Authorization": "Basic YXBpOmtleQ=="}, nil)
	if !strings.Contains(string(r.body), `"message-id":"OF-FIRST00001@x"`) {
		t.Errorf("mailgun look-up after restart finds nothing: %s", r.body)
	}

	// A new order gets ids never handed out before the restart.
	deal2, track2, key2 := onePass(t, ts.URL, "OF-SECOND0002")
	if deal2 == deal1 || track2 == track1 || key2 == key1 {
		t.Fatalf("ids reused after restart: deal %s/%s tracking %s/%s netvisor %s/%s", deal1, deal2, track1, track2, key1, key2)
	}
	// Every outbox file of the first order is still there, unchanged
	// (the deal's own file is updated in place by design: same record).
	after := outboxFiles(t, dir)
	var changed []string
	for p, b := range before {
		if strings.Contains(p, "deal-") || strings.Contains(p, "production_log") {
			continue
		}
		if string(after[p]) != string(b) {
			changed = append(changed, p)
		}
	}
	sort.Strings(changed)
	if len(changed) > 0 {
		t.Errorf("outbox files of the first order overwritten after restart: %v", changed)
	}
	if len(after) <= len(before) {
		t.Errorf("outbox has %d files after the second order, %d before", len(after), len(before))
	}
}

func TestRestartAfterCrashSkipsTornRecord(t *testing.T) {
	dir := t.TempDir()
	s, ts := newTest(t, Config{DataDir: dir})
	deal1, _, _ := onePass(t, ts.URL, "OF-TORN000001")
	ts.Close()
	s.Close()
	// A crash mid-write leaves half a line at the end.
	f, err := os.OpenFile(filepath.Join(dir, "records.jsonl"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"k":"zoho.index","a":"De`)
	f.Close()
	seq.Store(0)
	_, ts = newTest(t, Config{DataDir: dir})
	tok := zohoToken(t, ts.URL)
	r := call(t, "POST", ts.URL+"/crm/v3/Deals/upsert", map[string]string{"Authorization": "Zoho-oauthtoken " + tok}, `{"data":[{"Deal_Name":"OF-TORN000001"}]}`)
	if got := path(r.json(t), "data", 0, "details", "id"); got != deal1 {
		t.Errorf("deal after a torn record: id %v, want %s", got, deal1)
	}
}
