package sim

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stepCall is one valid call of each step's provider API, and how to tell
// that the answer is in that provider's error shape.
type stepCall struct {
	method, path string
	hdr          map[string]string
	body         func(n int) string
	errShape     func(m map[string]any) bool
	xml          bool // Netvisor answers XML
}

func stepCalls(t *testing.T, baseURL string) map[string]stepCall {
	tok := zohoToken(t, baseURL)
	return map[string]stepCall{
		StepStripe: {"GET", "/v1/payment_intents/pi_fault", stripeAuthHdr, nil,
			func(m map[string]any) bool { return path(m, "error", "message") != nil }, false},
		StepCRM: {"POST", "/crm/v3/Deals/upsert", map[string]string{"Authorization": "Zoho-oauthtoken " + tok},
			func(n int) string { return fmt.Sprintf(`{"data":[{"Deal_Name":"OF-%d"}]}`, n) },
			func(m map[string]any) bool { return m["status"] == "error" || path(m, "data", 0, "status") == "error" }, false},
		StepProductionLog: {"PATCH", "/v0/appX/tblY", map[string]string{"Authorization": "Bearer pat"},
			func(n int) string {
				return fmt.Sprintf(`{"performUpsert":{"fieldsToMergeOn":["Order ID"]},"records":[{"fields":{"Order ID":"pi_%d"}}]}`, n)
			},
			func(m map[string]any) bool { return path(m, "error", "type") != nil }, false},
		StepShipping: {"POST", "/rest/shipment/v3/edi/labels/pdf?apikey=k", nil,
			func(n int) string { return pnBooking(fmt.Sprintf("OF-%d", n)) },
			func(m map[string]any) bool { return m["message"] != nil && m["compositeFault"] != nil }, false},
		StepInvoice: {"POST", "/salesinvoice.nv?method=add", nil,
			func(n int) string { return fmt.Sprintf(nvInvoiceXML, fmt.Sprintf("OF-%d", n), "Aino") }, nil, true},
		StepEmail: {"POST", "/v3/mg.example.com/messages", map[string]string{"Authorization": "Basic YXBpOmtleQ==", "Content-Type": "application/x-www-form-urlencoded"},
			func(n int) string {
				return url.Values{"from": {"s@example.com"}, "to": {"a@example.com"}, "text": {"x"}, "h:Message-Id": {fmt.Sprintf("OF-%d@x", n)}}.Encode()
			},
			func(m map[string]any) bool { _, ok := m["message"].(string); return ok && m["id"] == nil }, false},
		StepAlert: {"POST", "/bot1:a/sendMessage", map[string]string{"Content-Type": "application/json"},
			func(n int) string { return fmt.Sprintf(`{"chat_id":1,"text":"alert %d"}`, n) },
			func(m map[string]any) bool { return m["ok"] == false && m["description"] != nil }, false},
	}
}

func (c stepCall) do(t *testing.T, baseURL string, n int) resp {
	t.Helper()
	hdr := c.hdr
	if c.xml {
		hdr = nvHdr(baseURL+c.path, "SHA256", "ck", "pk")
	}
	var body any
	if c.body != nil {
		body = c.body(n)
	}
	return call(t, c.method, baseURL+c.path, hdr, body)
}

func TestFaultModes(t *testing.T) {
	s, ts := newTest(t, Config{})
	calls := stepCalls(t, ts.URL)
	n := 0
	for _, step := range Steps {
		c, ok := calls[step]
		if !ok { // webhook and slack answer plain text: their faults are tested in webhook_test.go and slack_test.go
			continue
		}
		t.Run(step, func(t *testing.T) {
			n++
			if r := c.do(t, ts.URL, n); r.status != 200 {
				t.Fatalf("healthy call: %d %s", r.status, r.body)
			}
			for _, tc := range []struct {
				mode      Mode
				wantClass string // "5xx" or "4xx"
			}{{ModeUnavailable, "5xx"}, {ModeReject, "4xx"}} {
				if err := s.SetFault(Fault{Step: step, Mode: tc.mode, Rate: 1}); err != nil {
					t.Fatal(err)
				}
				before := s.Stats().Steps[step]
				n++
				r := c.do(t, ts.URL, n)
				switch {
				case tc.wantClass == "5xx" && r.status != 503:
					t.Fatalf("%s: status %d, want 503: %s", tc.mode, r.status, r.body)
				case tc.wantClass == "4xx" && !c.xml && (r.status < 400 || r.status > 499):
					t.Fatalf("%s: status %d, want 4xx: %s", tc.mode, r.status, r.body)
				}
				if c.xml {
					st := nvStatus(t, r)
					if len(st) != 2 || st[0] != "FAILED" {
						t.Fatalf("%s: not Netvisor's FAILED: %s", tc.mode, r.body)
					}
				} else if !c.errShape(r.json(t)) {
					t.Fatalf("%s: not %s's error shape: %s", tc.mode, step, r.body)
				}
				after := s.Stats().Steps[step]
				if after.Requests != before.Requests+1 || after.Created != before.Created {
					t.Fatalf("%s: stats %+v → %+v", tc.mode, before, after)
				}
			}
			s.ClearFaults(step)
			n++
			if r := c.do(t, ts.URL, n); r.status != 200 {
				t.Fatalf("after clearing: %d %s", r.status, r.body)
			}
		})
	}
}

func TestFaultSlowAndLatency(t *testing.T) {
	s, ts := newTest(t, Config{StepLatency: map[string]time.Duration{StepAlert: 30 * time.Millisecond}})
	calls := stepCalls(t, ts.URL)
	alert := calls[StepAlert]
	start := time.Now()
	wantStatus(t, alert.do(t, ts.URL, 1), 200)
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("step latency not applied: %s", d)
	}
	if err := s.SetFault(Fault{Step: StepAlert, Mode: ModeSlow, Rate: 1, Latency: 80 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	wantStatus(t, alert.do(t, ts.URL, 2), 200) // slow still succeeds
	if d := time.Since(start); d < 110*time.Millisecond {
		t.Fatalf("slow fault not added to latency: %s", d)
	}
	wantStats(t, s, StepAlert, StepStats{Requests: 2, Created: 2})
}

func TestFaultRate(t *testing.T) {
	s, ts := newTest(t, Config{})
	calls := stepCalls(t, ts.URL)
	if err := s.SetFault(Fault{Step: StepAlert, Mode: ModeUnavailable, Rate: 0.5}); err != nil {
		t.Fatal(err)
	}
	failed := 0
	const n = 200
	for i := range n {
		if r := calls[StepAlert].do(t, ts.URL, i); r.status == 503 {
			failed++
		}
	}
	// Binomial(200, 0.5): outside [40, 160] has probability below 1e-17.
	if failed < 40 || failed > 160 {
		t.Fatalf("%d of %d calls failed at rate 0.5", failed, n)
	}
	if got := s.Stats().Steps[StepAlert]; got.Created != int64(n-failed) {
		t.Fatalf("created %d, want %d", got.Created, n-failed)
	}
}

func TestFaultHTTPControl(t *testing.T) {
	s, ts := newTest(t, Config{})
	r := call(t, "PUT", ts.URL+"/_sim/faults", nil, `{"step":"shipping","mode":"slow","rate":0.25,"latency":"5s"}`)
	wantStatus(t, r, 200)
	// A missing or zero rate means every call.
	r = call(t, "PUT", ts.URL+"/_sim/faults", nil, `[{"step":"email","mode":"reject"},{"step":"crm","mode":"unavailable","rate":0}]`)
	wantStatus(t, r, 200)
	got := s.Faults()
	want := []Fault{{Step: StepCRM, Mode: ModeUnavailable, Rate: 1}, {Step: StepShipping, Mode: ModeSlow, Rate: 0.25, Latency: 5 * time.Second}, {Step: StepEmail, Mode: ModeReject, Rate: 1}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("faults %v, want %v", got, want)
	}
	r = call(t, "GET", ts.URL+"/_sim/faults", nil, nil)
	var listed struct{ Faults []map[string]any }
	if err := json.Unmarshal(r.body, &listed); err != nil || len(listed.Faults) != 3 || listed.Faults[1]["latency"] != "5s" {
		t.Fatalf("GET faults: %s", r.body)
	}

	for _, bad := range []string{
		`{"step":"billing","mode":"reject"}`,
		`{"step":"crm","mode":"explode"}`,
		`{"step":"crm","mode":"reject","rate":-0.5}`,
		`{"step":"crm","mode":"reject","rate":1.5}`,
		`{"step":"crm","mode":"slow"}`,
		`{"step":"crm","mode":"slow","latency":"soon"}`,
		`[{"step":"crm","mode":"reject"},{"step":"nope","mode":"reject"}]`,
		`not json`,
	} {
		r := call(t, "PUT", ts.URL+"/_sim/faults", nil, bad)
		wantStatus(t, r, 400)
		if r.json(t)["error"] == nil {
			t.Fatalf("%s: no error message: %s", bad, r.body)
		}
	}
	if len(s.Faults()) != 3 {
		t.Fatalf("a refused PUT changed the faults: %v", s.Faults())
	}

	wantStatus(t, call(t, "DELETE", ts.URL+"/_sim/faults?step=nope", nil, nil), 400)
	wantStatus(t, call(t, "DELETE", ts.URL+"/_sim/faults?step=crm", nil, nil), 200)
	if len(s.Faults()) != 2 {
		t.Fatalf("DELETE ?step=crm: %v", s.Faults())
	}
	wantStatus(t, call(t, "DELETE", ts.URL+"/_sim/faults", nil, nil), 200)
	if len(s.Faults()) != 0 {
		t.Fatalf("DELETE: %v", s.Faults())
	}

	// "details", the processor's name of the order-details step, is the
	// simulator's stripe step, and its calls fail.
	wantStatus(t, call(t, "PUT", ts.URL+"/_sim/faults", nil, `{"step":"details","mode":"unavailable"}`), 200)
	if got := fmt.Sprint(s.Faults()); got != fmt.Sprint([]Fault{{Step: StepStripe, Mode: ModeUnavailable, Rate: 1}}) {
		t.Fatalf("details fault: %v", got)
	}
	wantStatus(t, call(t, "GET", ts.URL+"/v1/payment_intents/pi_x", stripeAuthHdr, nil), 503)
	wantStatus(t, call(t, "DELETE", ts.URL+"/_sim/faults?step=details", nil, nil), 200)
	if len(s.Faults()) != 0 {
		t.Fatalf("DELETE ?step=details: %v", s.Faults())
	}
}

func TestStatsHTTP(t *testing.T) {
	_, ts := newTest(t, Config{Peer: true})
	call(t, "POST", ts.URL+"/shipping", nil, `{"order_id":"pi_1"}`)
	call(t, "POST", ts.URL+"/shipping", nil, `{"order_id":"pi_1"}`)
	r := call(t, "GET", ts.URL+"/_sim/stats", nil, nil)
	var st Stats
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Steps) != len(Steps) || st.Steps[StepShipping] != (StepStats{Requests: 2, Created: 2, DuplicateCreates: 1}) {
		t.Fatalf("stats: %s", r.body)
	}
	wantStatus(t, call(t, "DELETE", ts.URL+"/_sim/stats", nil, nil), 204)
	r = call(t, "GET", ts.URL+"/_sim/stats", nil, nil)
	_ = json.Unmarshal(r.body, &st)
	if st.Steps[StepShipping] != (StepStats{}) {
		t.Fatalf("after reset: %s", r.body)
	}
	// The reset also forgets which orders had a shipment.
	call(t, "POST", ts.URL+"/shipping", nil, `{"order_id":"pi_1"}`)
	r = call(t, "GET", ts.URL+"/_sim/stats", nil, nil)
	_ = json.Unmarshal(r.body, &st)
	if st.Steps[StepShipping] != (StepStats{Requests: 1, Created: 1}) {
		t.Fatalf("after reset and one call: %s", r.body)
	}
}

func TestPeer(t *testing.T) {
	_, off := newTest(t, Config{})
	wantStatus(t, call(t, "POST", off.URL+"/crm", nil, `{"order_id":"pi_1"}`), 404)

	s, ts := newTest(t, Config{Peer: true})
	for _, step := range peerSteps {
		for range 2 {
			r := call(t, "POST", ts.URL+"/"+step, map[string]string{"Content-Type": "application/json"}, `{"order_id":"pi_1"}`)
			wantStatus(t, r, 200)
			if r.json(t)["ok"] != true {
				t.Fatalf("%s: %s", step, r.body)
			}
		}
	}
	call(t, "POST", ts.URL+"/email", nil, `{"order_id":"pi_2"}`)
	// crm and production_log are upserts; the others create every time.
	wantStats(t, s, StepCRM, StepStats{Requests: 2, Created: 1})
	wantStats(t, s, StepProductionLog, StepStats{Requests: 2, Created: 1})
	wantStats(t, s, StepShipping, StepStats{Requests: 2, Created: 2, DuplicateCreates: 1})
	wantStats(t, s, StepInvoice, StepStats{Requests: 2, Created: 2, DuplicateCreates: 1})
	wantStats(t, s, StepEmail, StepStats{Requests: 3, Created: 3, DuplicateCreates: 1})

	for _, bad := range []string{`{}`, `{"order_id":""}`, `nope`} {
		wantStatus(t, call(t, "POST", ts.URL+"/invoice", nil, bad), 400)
	}
	wantStatus(t, call(t, "POST", ts.URL+"/alert", nil, `{"order_id":"pi_1"}`), 404)

	if err := s.SetFault(Fault{Step: StepShipping, Mode: ModeUnavailable, Rate: 1}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, call(t, "POST", ts.URL+"/shipping", nil, `{"order_id":"pi_3"}`), 503)
}

func TestOutboxFilesAndLimit(t *testing.T) {
	dir := t.TempDir()
	s, ts := newTest(t, Config{DataDir: dir, MaxOutboxFiles: 2, Peer: true})
	calls := stepCalls(t, ts.URL)
	for i := range 3 {
		wantStatus(t, calls[StepShipping].do(t, ts.URL, i), 200)
		wantStatus(t, calls[StepCRM].do(t, ts.URL, i), 200)
		wantStatus(t, calls[StepProductionLog].do(t, ts.URL, i), 200)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // twice is fine
		t.Fatal(err)
	}
	for _, step := range []string{StepShipping, StepCRM, StepProductionLog} {
		files, _ := os.ReadDir(filepath.Join(dir, "outbox", step))
		if len(files) != 2 {
			t.Errorf("%s: %d files, want the limit 2", step, len(files))
		}
		b, err := os.ReadFile(filepath.Join(dir, "outbox", step+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 3 {
			t.Fatalf("%s.jsonl: %d lines, want 3", step, len(lines))
		}
		var e entry
		if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.Step != step || e.Order == "" || e.ID == "" || e.Action != "create" || e.Time.IsZero() {
			t.Fatalf("%s.jsonl line: %s (%v)", step, lines[0], err)
		}
	}
	pdfs, _ := filepath.Glob(filepath.Join(dir, "outbox", "shipping", "*.pdf"))
	for _, p := range pdfs {
		b, _ := os.ReadFile(p)
		checkPDF(t, b)
	}
}

func TestOutboxOffWritesNothing(t *testing.T) {
	dir := t.TempDir()
	s, ts := newTest(t, Config{DataDir: dir, MaxOutboxFiles: -1})
	calls := stepCalls(t, ts.URL)
	wantStatus(t, calls[StepShipping].do(t, ts.URL, 1), 200)
	_ = s.Close()
	files, _ := os.ReadDir(filepath.Join(dir, "outbox", "shipping"))
	if len(files) != 0 {
		t.Fatalf("MaxOutboxFiles -1 wrote %d files", len(files))
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "outbox", "shipping.jsonl")); len(b) == 0 {
		t.Fatal("the JSON lines are written even without files")
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"../../etc/passwd":                "_.._etc_passwd",
		"<OF-1@mg.example.com>":           "_OF-1_mg.example.com_",
		"00373500000000000001.pdf":        "00373500000000000001.pdf",
		"":                                "_",
		"Ärrä":                            "_rr_",
		strings.Repeat("a", 200) + ".eml": strings.Repeat("a", 116) + ".eml",
	} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseLatency(t *testing.T) {
	for _, tc := range []struct {
		in      string
		def     time.Duration
		per     map[string]time.Duration
		wantErr bool
	}{
		{"", 0, map[string]time.Duration{}, false},
		{"50ms", 50 * time.Millisecond, map[string]time.Duration{}, false},
		{"50ms,shipping=200ms", 50 * time.Millisecond, map[string]time.Duration{"shipping": 200 * time.Millisecond}, false},
		{" shipping=2s , invoice=1s", 0, map[string]time.Duration{"shipping": 2 * time.Second, "invoice": time.Second}, false},
		{"50", 0, nil, true},
		{"-5ms", 0, nil, true},
		{"billing=5ms", 0, nil, true},
		{"shipping=", 0, nil, true},
	} {
		def, per, err := ParseLatency(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if !tc.wantErr && (def != tc.def || fmt.Sprint(per) != fmt.Sprint(tc.per)) {
			t.Errorf("%q: %s %v, want %s %v", tc.in, def, per, tc.def, tc.per)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"latencies", Config{Latency: time.Millisecond, StepLatency: map[string]time.Duration{StepShipping: time.Second}}, true},
		{"negative", Config{Latency: -1}, false},
		{"negative step", Config{StepLatency: map[string]time.Duration{StepCRM: -1}}, false},
		{"unknown step", Config{StepLatency: map[string]time.Duration{"billing": 1}}, false},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v", tc.name, err)
		}
		if _, err := New(tc.cfg); (err == nil) != tc.ok {
			t.Errorf("%s: New() = %v", tc.name, err)
		}
	}
}
