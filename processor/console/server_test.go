package console

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
)

// seed fills the index: a completed order, one waiting on shipping, one
// dead-lettered at shipping with its dead letter, one flagged possible
// duplicate, and their events.
func seed(t *testing.T, ix *Index) {
	t.Helper()
	done := order("pi_done0000001", "anna@example.com", processor.StatusCompleted, t0, 6)
	waiting := order("pi_wait0000002", "bo@example.com", processor.StatusInProgress, t0.Add(time.Minute), 3)
	ss := waiting.Step(processor.StepShipping)
	ss.Attempts, ss.LastError = 2, "postnord: 503 unavailable"
	dead := order("pi_dead0000003", "cy@example.com", processor.StatusDeadLettered, t0.Add(2*time.Minute), 3)
	dead.DeadLetter = &processor.DeadLetter{Partition: 1, Offset: 0, Step: processor.StepShipping, Class: topics.ClassPermanent, At: t0.Add(3 * time.Minute)}
	dead.Step(processor.StepShipping).Attempts = 1
	dup := order("pi_dupl0000004", "di@example.com", processor.StatusCompleted, t0.Add(3*time.Minute), 6)
	dup.Flags = []string{processor.FlagPossibleDuplicatePrefix + processor.StepShipping}
	apply(t, ix,
		eventRecord(done.OrderID, "evt_a1", "checkout.session.completed", 0, 0, t0),
		eventRecord(done.OrderID, "evt_a2", "payment_intent.succeeded", 0, 1, t0.Add(time.Second)),
		stateRecord(t, done, 0, 0), stateRecord(t, waiting, 1, 0), stateRecord(t, dead, 1, 1), stateRecord(t, dup, 2, 0),
		letterRecord(dead.OrderID, processor.StepShipping, topics.ClassPermanent, 1, 0, t0.Add(3*time.Minute)),
	)
}

func TestLoginRequired(t *testing.T) {
	ts := newTestServer(t, nil)
	c := newClient(t, ts.URL)
	for _, p := range []string{"/", "/orders", "/orders/pi_done0000001", "/dlq", "/audit"} {
		code, _, h := c.get(p)
		if code != http.StatusSeeOther || h.Get("Location") != "/login" {
			t.Errorf("GET %s without login: %d → %q, want 303 to /login", p, code, h.Get("Location"))
		}
	}
	if code, _, _ := c.get("/api/orders"); code != http.StatusUnauthorized {
		t.Errorf("GET /api/orders without login: %d, want 401", code)
	}
	code, body, h := c.get("/login")
	if code != 200 || !strings.Contains(body, `name="password"`) {
		t.Fatalf("login page: %d\n%s", code, body)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}
}

func TestLogin(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.SecureCookies = true })
	c := newClient(t, ts.URL)
	c.get("/login")
	// Without the CSRF token: refused before the password is looked at.
	if code, _, _ := c.post("/login", url.Values{"name": {"ops"}, "password": {"correct horse"}}); code != http.StatusForbidden {
		t.Fatalf("login without CSRF token: %d, want 403", code)
	}
	code, body, _ := c.post("/login", url.Values{"csrf": {c.csrf}, "name": {"ops"}, "password": {"wrong"}})
	if code != http.StatusUnauthorized || !strings.Contains(body, "Wrong name or password.") {
		t.Fatalf("wrong password: %d\n%s", code, body)
	}
	recs := ts.auditor.records()
	if len(recs) != 1 || recs[0].Action != topics.AuditLoginFailed || recs[0].Actor != "ops" || recs[0].Outcome != topics.AuditDenied || recs[0].Remote != "127.0.0.1" {
		t.Fatalf("audit after a failed login = %+v", recs)
	}
	if strings.Contains(recs[0].Result, "wrong") && strings.Contains(recs[0].Result, "correct horse") {
		t.Fatal("audit record holds the password")
	}
	resp, err := c.hc.PostForm(ts.URL+"/login", url.Values{"csrf": {c.csrf}, "name": {"ops"}, "password": {"correct horse"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == cookieName && ck.Value != "" {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie = %+v, want HttpOnly, Secure, SameSite=Strict", cookie)
	}
	code, body, _ = c.get("/")
	if code != 200 || !strings.Contains(body, "ops (operator)") {
		t.Fatalf("overview after login: %d\n%s", code, body)
	}
	if recs := ts.auditor.records(); recs[len(recs)-1].Action != topics.AuditLogin || recs[len(recs)-1].Outcome != topics.AuditOK {
		t.Errorf("login not audited: %+v", recs)
	}
	// Log out: a POST with the token; the session is gone afterwards.
	if code, _, _ := c.post("/logout", url.Values{}); code != http.StatusForbidden {
		t.Errorf("logout without CSRF token: %d, want 403", code)
	}
	if code, _, h := c.post("/logout", url.Values{"csrf": {c.csrf}}); code != http.StatusSeeOther || h.Get("Location") != "/login" {
		t.Errorf("logout: %d %s", code, h.Get("Location"))
	}
	if code, _, _ := c.get("/orders"); code != http.StatusSeeOther {
		t.Errorf("after logout: %d, want a redirect to the login", code)
	}
}

func TestLoginRateLimit(t *testing.T) {
	ts := newTestServer(t, nil)
	c := newClient(t, ts.URL)
	c.get("/login")
	for i := range 5 {
		if code, _, _ := c.post("/login", url.Values{"csrf": {c.csrf}, "name": {"ops"}, "password": {"guess"}}); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, code)
		}
	}
	// The sixth try is refused even with the right password.
	code, body, h := c.post("/login", url.Values{"csrf": {c.csrf}, "name": {"ops"}, "password": {"correct horse"}})
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !strings.Contains(body, "Too many failed logins") {
		t.Fatalf("after 5 failures: %d Retry-After %q\n%s", code, h.Get("Retry-After"), body)
	}
	recs := ts.auditor.records()
	if last := recs[len(recs)-1]; last.Action != topics.AuditLoginFailed || last.Result != "too many failed logins" {
		t.Errorf("last audit record = %+v", last)
	}
	// After the window it works again.
	*ts.now = ts.now.Add(16 * time.Minute)
	if code, _, _ := c.post("/login", url.Values{"csrf": {c.csrf}, "name": {"ops"}, "password": {"correct horse"}}); code != http.StatusSeeOther {
		t.Fatalf("after the window: %d, want 303", code)
	}
}

func TestPagesAsOperator(t *testing.T) {
	labels := t.TempDir()
	if err := os.WriteFile(filepath.Join(labels, "pi_done0000001_label-1.pdf"), []byte("%PDF-1.4 label"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(labels, "pi_done0000001_customs-1.pdf"), []byte("%PDF-1.4 CN23"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(c *Config) { c.LabelDir = labels })
	seed(t, ts.ix)
	c := newClient(t, ts.URL)
	c.login("ops")

	code, body, _ := c.get("/")
	for _, want := range []string{"orders in flight", `id="inflight">1<`, `id="open-letters"><a href="/dlq?status=open">1<`, "dead letter 1/0 (permanent)", "possible duplicate at shipping",
		`id="count-possible_duplicate">1<`, `id="count-dead_lettered">1<`, `id="count-in_progress">1<`, `id="count-completed">2<`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("overview lacks %q (%d)", want, code)
		}
	}
	// The overview as JSON, in the API's snake_case.
	code, body, _ = c.get("/api/overview")
	var ov struct {
		InFlight    int64            `json:"in_flight"`
		OpenLetters int              `json:"open_dead_letters"`
		Counts      map[string]int64 `json:"counts"`
		Completed5m struct {
			WindowSeconds float64 `json:"window_seconds"`
			Count         int     `json:"count"`
			PerSecond     float64 `json:"per_second"`
		} `json:"completed_5m"`
		Steps []struct {
			Step string `json:"step"`
		} `json:"steps"`
		Alerts []struct {
			Text string `json:"text"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(body), &ov); err != nil || code != 200 {
		t.Fatalf("API overview: %d %v\n%s", code, err, body)
	}
	if ov.InFlight != 1 || ov.OpenLetters != 1 || ov.Counts["completed"] != 2 || ov.Counts["dead_lettered"] != 1 ||
		ov.Completed5m.WindowSeconds != 300 || len(ov.Steps) != 6 || ov.Steps[0].Step != "details" || len(ov.Alerts) == 0 {
		t.Errorf("API overview = %+v", ov)
	}
	// Its counts are what each status filter lists, as on the page, and
	// only those.
	wantCounts := map[string]int64{"completed": 2, "in_progress": 1, "waiting": 1, "dead_lettered": 1, "parked": 0, "refunded": 0,
		"possible_duplicate": 1, "awaiting_payment": 0, "payment_failed": 0, "erased": 0}
	if !maps.Equal(ov.Counts, wantCounts) {
		t.Errorf("API overview counts = %v, want %v", ov.Counts, wantCounts)
	}
	code, body, _ = c.get("/orders")
	if code != 200 {
		t.Fatalf("orders: %d", code)
	}
	// Newest first.
	iDup, iDead, iWait, iDone := strings.Index(body, "pi_dupl0000004"), strings.Index(body, "pi_dead0000003"), strings.Index(body, "pi_wait0000002"), strings.Index(body, "pi_done0000001")
	if iDup < 0 || !(iDup < iDead && iDead < iWait && iWait < iDone) {
		t.Errorf("orders not newest first: %d %d %d %d", iDup, iDead, iWait, iDone)
	}
	if !strings.Contains(body, "anna@example.com") {
		t.Error("an operator sees the customer's email")
	}
	for _, tc := range []struct{ query, want, not string }{
		{"status=waiting", "pi_wait0000002", "pi_done0000001"},
		{"status=in_progress", "pi_wait0000002", "pi_dead0000003"},
		{"status=dead_lettered&step=shipping", "pi_dead0000003", "pi_wait0000002"},
		{"status=possible_duplicate", "pi_dupl0000004", "pi_done0000001"},
		{"status=completed", "pi_done0000001", "pi_wait0000002"},
		{"step=shipping", "pi_wait0000002", "pi_done0000001"},
		{"since=" + url.QueryEscape(t0.Add(90*time.Second).Format(time.RFC3339)), "pi_dead0000003", "pi_wait0000002"},
		{"until=" + url.QueryEscape(t0.Add(30*time.Second).Format(time.RFC3339)), "pi_done0000001", "pi_wait0000002"},
	} {
		code, body, _ := c.get("/orders?" + tc.query)
		if code != 200 || !strings.Contains(body, tc.want) || strings.Contains(body, tc.not) {
			t.Errorf("/orders?%s: %d, want %s and not %s", tc.query, code, tc.want, tc.not)
		}
	}

	code, body, _ = c.get("/orders/pi_done0000001")
	for _, want := range []string{"anna@example.com", "Kauppakatu 1", `href="https://tracking.example/pi_done0000001"`, `href="/orders/pi_done0000001/label"`,
		"INVpi_done0000001", "evt_a1", "payment_intent.succeeded", "Nothing: every step is done."} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("order page lacks %q (%d)", want, code)
		}
	}
	code, body, h := c.get("/orders/pi_done0000001/label")
	if code != 200 || body != "%PDF-1.4 label" || h.Get("Content-Type") != "application/pdf" {
		t.Errorf("label: %d %q %s", code, body, h.Get("Content-Type"))
	}
	// The customs declaration (CN23) of a parcel leaving the EU, beside
	// the label; an order whose declaration is not in the folder has no
	// link and a 404.
	if _, body, _ := c.get("/orders/pi_done0000001"); !strings.Contains(body, `href="/orders/pi_done0000001/customs"`) {
		t.Errorf("order page lacks the customs declaration link")
	}
	code, body, h = c.get("/orders/pi_done0000001/customs")
	if code != 200 || body != "%PDF-1.4 CN23" || h.Get("Content-Type") != "application/pdf" || !strings.Contains(h.Get("Content-Disposition"), "pi_done0000001_customs-1.pdf") {
		t.Errorf("customs declaration: %d %q %s %s", code, body, h.Get("Content-Type"), h.Get("Content-Disposition"))
	}
	if _, body, _ := c.get("/orders/pi_dupl0000004"); strings.Contains(body, `/customs"`) {
		t.Errorf("order without a customs declaration file links one")
	}
	if code, body, _ := c.get("/orders/pi_dupl0000004/customs"); code != http.StatusNotFound || !strings.Contains(body, "no customs declaration in the console&#39;s label folder") {
		t.Errorf("missing customs declaration: %d %s", code, body)
	}
	code, body, _ = c.get("/orders/pi_dead0000003")
	if code != 200 || !strings.Contains(body, "replay dead letter(s) 1/0") || !strings.Contains(body, `class="badge s-open"`) {
		t.Errorf("dead-lettered order page: %d\n%s", code, body)
	}
	code, body, _ = c.get("/orders/pi_wait0000002")
	if code != 200 || !strings.Contains(body, "step shipping failed 2 time(s) (postnord: 503 unavailable)") {
		t.Errorf("waiting order page: %d", code)
	}
	// An OF- number leads to its order.
	if code, _, h := c.get("/orders/OF-ONE0000001"); code != http.StatusSeeOther || h.Get("Location") != "/orders/pi_done0000001" {
		t.Errorf("OF- number: %d → %q", code, h.Get("Location"))
	}
	code, body, _ = c.get("/dlq")
	if code != 200 || !strings.Contains(body, `value="1/0"`) || !strings.Contains(body, "1 dead letter(s) match") || !strings.Contains(body, `id="replay"`) {
		t.Errorf("dlq page: %d\n%s", code, body)
	}
	if code, body, _ := c.get("/dlq?status=resolved"); code != 200 || !strings.Contains(body, "0 dead letter(s) match") {
		t.Errorf("dlq resolved: %d", code)
	}
	if code, body, _ := c.get("/dlq?order=OF-EAD0000003"); code != 200 || !strings.Contains(body, "1 dead letter(s) match") {
		t.Errorf("dlq by OF- number: %d", code)
	}
	if code, body, _ := c.get("/audit"); code != 200 || !strings.Contains(body, "no action recorded yet") {
		t.Errorf("audit page: %d", code)
	}
}

func TestSearch(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts.ix)
	c := newClient(t, ts.URL)
	c.login("ops")
	for _, tc := range []struct{ term, want string }{
		{"cy@example.com", "pi_dead0000003"},
		{"CY@Example.com", "pi_dead0000003"},
		{"pi_wait0000002", "pi_wait0000002"},
		{"OF-ONE0000001", "pi_done0000001"},
		{"of-one0000001", "pi_done0000001"},
		{"TRKpi_done0000001", "pi_done0000001"},
		{"INVpi_dupl0000004", "pi_dupl0000004"},
		{"evt_a2", "pi_done0000001"},
		{"evt_pi_wait0000002", "pi_wait0000002"},
	} {
		code, _, h := c.post("/orders/search", url.Values{"csrf": {c.csrf}, "term": {tc.term}})
		loc := h.Get("Location")
		if code != http.StatusSeeOther || !strings.HasPrefix(loc, "/orders?s=") {
			t.Fatalf("search %q: %d → %q", tc.term, code, loc)
		}
		if strings.Contains(strings.ToLower(loc), "example") || strings.Contains(loc, "@") || strings.Contains(loc, tc.term) {
			t.Fatalf("search %q puts the term in the URL: %s", tc.term, loc)
		}
		code, body, _ := c.get(loc)
		if code != 200 || !strings.Contains(body, tc.want) || strings.Count(body, `<a href="/orders/pi_`) != 1 {
			t.Errorf("search %q: %d, want only %s\n%s", tc.term, code, tc.want, body)
		}
	}
	code, body, _ := c.get("/orders?s=unknownhandle")
	if code != http.StatusBadRequest || !strings.Contains(body, "search again") {
		t.Errorf("unknown search handle: %d", code)
	}
	if code, _, _ := c.post("/orders/search", url.Values{"term": {"cy@example.com"}}); code != http.StatusForbidden {
		t.Errorf("search without CSRF token: %d, want 403", code)
	}
}

func TestBadInput(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts.ix)
	c := newClient(t, ts.URL)
	c.login("ops")
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/orders/pi_nosuchorder", 404, `No order &#34;pi_nosuchorder&#34; in the index`},
		{"/orders/OF-NOSUCH0000", 404, "No order"},
		{"/orders/pi_nosuchorder/label", 404, "No order"},
		{"/orders?status=lost", 400, `unknown status &#34;lost&#34;`},
		{"/orders?step=fax", 400, `unknown step &#34;fax&#34;`},
		{"/orders?since=yesterday", 400, `since: time &#34;yesterday&#34;`},
		{"/orders?since=1h&until=2h", 400, "is not before"},
		{"/orders?cursor=%21%21", 400, "page cursor"},
		{"/dlq?class=sad", 400, `unknown class &#34;sad&#34;`},
		{"/dlq?status=closed", 400, `unknown status &#34;closed&#34;`},
		{"/dlq?order=OF-NOSUCH0000", 400, "no order has the number OF-NOSUCH0000"},
		{"/dlq?until=soon", 400, "until"},
		{"/dlq/jobs/nope", 404, "No replay with this id"},
		{"/nowhere", 404, "There is no page at this address"},
	} {
		code, body, _ := c.get(tc.path)
		if code != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s: %d, want %d with %q\n%s", tc.path, code, tc.status, tc.want, body)
		}
	}
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"action": {"replay"}}, "select at least one dead letter"},
		{url.Values{"action": {"burn"}, "source": {"1/0"}}, `action &#34;burn&#34;`},
		{url.Values{"action": {"replay"}, "source": {"1/x"}}, `bad partition/offset &#34;1/x&#34;`},
		{url.Values{"action": {"replay"}, "source": {"1/0"}, "rate": {"0"}}, "above 0 and at most 1000"},
		{url.Values{"action": {"replay"}, "source": {"1/0"}, "rate": {"NaN"}}, "above 0 and at most 1000"},
		{url.Values{"action": {"replay"}, "all_matching": {"1"}, "f_class": {"sad"}}, `unknown class &#34;sad&#34;`},
	} {
		tc.form.Set("csrf", c.csrf)
		code, body, _ := c.post("/dlq/replay", tc.form)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("POST /dlq/replay %v: %d, want 400 with %q\n%s", tc.form, code, tc.want, body)
		}
	}
	if n := len(ts.replay.requests()); n != 0 {
		t.Errorf("bad replays reached the replayer %d times", n)
	}
}

func TestViewer(t *testing.T) {
	labels := t.TempDir()
	_ = os.WriteFile(filepath.Join(labels, "pi_done0000001_label-1.pdf"), []byte("%PDF"), 0o600)
	ts := newTestServer(t, func(c *Config) { c.LabelDir = labels })
	seed(t, ts.ix)
	c := newClient(t, ts.URL)
	c.login("vic")
	for _, p := range []string{"/orders", "/orders/pi_done0000001", "/dlq", "/"} {
		code, body, _ := c.get(p)
		if code != 200 {
			t.Errorf("viewer GET %s: %d", p, code)
		}
		for _, leak := range []string{"anna@example.com", "Öberg", "Kauppakatu", "90100"} {
			if strings.Contains(body, leak) {
				t.Errorf("viewer sees %q on %s", leak, p)
			}
		}
	}
	if _, body, _ := c.get("/orders/pi_done0000001"); strings.Contains(body, `/label"`) || !strings.Contains(body, "***, FI") {
		t.Errorf("viewer order page offers the label or shows the address")
	}
	if code, _, _ := c.get("/orders/pi_done0000001/customs"); code != http.StatusForbidden {
		t.Errorf("viewer customs declaration download: %d, want 403", code)
	}
	if code, _, _ := c.get("/orders/pi_done0000001/label"); code != http.StatusForbidden {
		t.Errorf("viewer label download: %d, want 403", code)
	}
	code, body, _ := c.post("/dlq/replay", url.Values{"csrf": {c.csrf}, "action": {"replay"}, "source": {"1/0"}})
	if code != http.StatusForbidden || !strings.Contains(body, "Only an operator") {
		t.Errorf("viewer replay: %d\n%s", code, body)
	}
	if code, _, _ := c.post("/dlq/replay", url.Values{"csrf": {c.csrf}, "action": {"preview"}, "source": {"1/0"}}); code != http.StatusForbidden {
		t.Errorf("viewer preview: %d, want 403", code)
	}
	if n := len(ts.replay.requests()); n != 0 {
		t.Errorf("viewer reached the replayer")
	}
	// A viewer may search by email, and sees the result masked.
	_, _, h := c.post("/orders/search", url.Values{"csrf": {c.csrf}, "term": {"anna@example.com"}})
	if _, body, _ := c.get(h.Get("Location")); !strings.Contains(body, "pi_done0000001") || strings.Contains(body, "<td>anna@example.com</td>") || !strings.Contains(body, "<td>***</td>") {
		t.Errorf("viewer search: result missing or unmasked")
	}
}

func TestReplay(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts.ix)
	c := newClient(t, ts.URL)
	c.login("ops")
	if code, _, _ := c.post("/dlq/replay", url.Values{"action": {"replay"}, "source": {"1/0"}}); code != http.StatusForbidden {
		t.Fatalf("replay without CSRF token: %d, want 403", code)
	}
	code, body, _ := c.post("/dlq/replay", url.Values{"csrf": {c.csrf}, "action": {"preview"}, "source": {"1/0"}, "rate": {"5"}})
	if code != 200 || !strings.Contains(body, "Would replay <strong>1</strong>") || !strings.Contains(body, "Nothing was changed") {
		t.Fatalf("preview: %d\n%s", code, body)
	}
	reqs := ts.replay.requests()
	if len(reqs) != 1 || !reqs[0].DryRun || reqs[0].Rate != 5 || len(reqs[0].Filter.Sources) != 1 || reqs[0].Filter.Sources[0] != "1/0" {
		t.Fatalf("preview request = %+v", reqs)
	}
	code, _, h := c.post("/dlq/replay", url.Values{"csrf": {c.csrf}, "action": {"replay"}, "source": {"1/0"}, "rate": {"5"}})
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/dlq/jobs/") {
		t.Fatalf("replay: %d %s", code, h.Get("Location"))
	}
	job := h.Get("Location")
	waitFor(t, func() bool {
		_, body, _ = c.get(job + "?fragment=1")
		return strings.Contains(body, "data-done")
	})
	if !strings.Contains(body, "replayed 1, skipped 0") || !strings.Contains(body, "<td>replayed</td>") {
		t.Fatalf("job page:\n%s", body)
	}
	// Audit: the dry run, then started and ok records of the replay with one id.
	var got []string
	var ids []string
	waitFor(t, func() bool { return len(ts.auditor.records()) >= 4 })
	for _, a := range ts.auditor.records() {
		if a.Action == topics.AuditReplay {
			got = append(got, a.Outcome+":"+map[bool]string{true: "dry", false: "real"}[a.DryRun])
			if !a.DryRun {
				ids = append(ids, a.ID)
			}
			if a.Actor != "ops" || a.Role != "operator" || !strings.Contains(a.Target, "dead letters 1/0") {
				t.Errorf("audit record = %+v", a)
			}
		}
	}
	if strings.Join(got, ",") != "ok:dry,started:real,ok:real" || len(ids) != 2 || ids[0] != ids[1] {
		t.Errorf("replay audit = %v ids %v", got, ids)
	}
}

func TestReplayRefusedWithoutAudit(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts.ix)
	c := newClient(t, ts.URL)
	c.login("ops")
	ts.auditor.mu.Lock()
	ts.auditor.fail = true
	ts.auditor.mu.Unlock()
	code, body, _ := c.post("/dlq/replay", url.Values{"csrf": {c.csrf}, "action": {"replay"}, "source": {"1/0"}})
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "nothing was replayed") {
		t.Fatalf("replay with the audit log down: %d\n%s", code, body)
	}
	if n := len(ts.replay.requests()); n != 0 {
		t.Fatalf("replayed although the audit record failed")
	}
}

func TestBearerToken(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts.ix)
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/orders?status=dead_lettered", nil)
	req.Header.Set("Authorization", "Bearer tok-ops")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page APIPage
	_ = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(page.Orders) != 1 || page.Orders[0].ID != "pi_dead0000003" || page.Orders[0].Email != "cy@example.com" {
		t.Fatalf("API list with a token: %d %+v", resp.StatusCode, page)
	}
	req, _ = http.NewRequest(http.MethodPost, ts.URL+"/api/orders/search", strings.NewReader(`{"term":"bo@example.com"}`))
	req.Header.Set("Authorization", "Bearer tok-ops")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page = APIPage{}
	_ = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(page.Orders) != 1 || page.Orders[0].ID != "pi_wait0000002" {
		t.Fatalf("API search: %d %+v", resp.StatusCode, page)
	}
	req, _ = http.NewRequest(http.MethodGet, ts.URL+"/api/orders", nil)
	req.Header.Set("Authorization", "Bearer tok-wrong")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown token: %d", resp.StatusCode)
	}
	recs := ts.auditor.records()
	if len(recs) != 1 || recs[0].Action != topics.AuditLoginFailed || strings.Contains(recs[0].Result, "tok-wrong") {
		t.Fatalf("unknown token audit = %+v", recs)
	}
	req, _ = http.NewRequest(http.MethodGet, ts.URL+"/api/orders?status=lost", nil)
	req.Header.Set("Authorization", "Bearer tok-ops")
	resp, _ = http.DefaultClient.Do(req)
	var e map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(e["error"], `unknown status "lost"`) {
		t.Fatalf("API bad filter: %d %v", resp.StatusCode, e)
	}
	// A bad limit is refused, not replaced by the default.
	for _, tt := range []struct{ method, path, body, want string }{
		{http.MethodGet, "/api/orders?limit=abc", "", `limit "abc": want a whole number from 1 to 1000`},
		{http.MethodGet, "/api/orders?limit=0", "", `limit "0": want a whole number from 1 to 1000`},
		{http.MethodGet, "/api/orders?limit=1001", "", `limit "1001": want a whole number from 1 to 1000`},
		{http.MethodPost, "/api/orders/search", `{"term":"bo@example.com","limit":5000}`, "limit 5000: want from 1 to 1000"},
		{http.MethodPost, "/api/orders/search", `{"term":"bo@example.com","limit":-1}`, "limit -1: want from 1 to 1000"},
	} {
		req, _ = http.NewRequest(tt.method, ts.URL+tt.path, strings.NewReader(tt.body))
		req.Header.Set("Authorization", "Bearer tok-ops")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		e = nil
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 400 || e["error"] != tt.want {
			t.Errorf("%s %s %s: %d %v, want 400 %q", tt.method, tt.path, tt.body, resp.StatusCode, e, tt.want)
		}
	}
	req, _ = http.NewRequest(http.MethodGet, ts.URL+"/api/orders?limit=1", nil)
	req.Header.Set("Authorization", "Bearer tok-ops")
	resp, _ = http.DefaultClient.Do(req)
	page = APIPage{}
	_ = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(page.Orders) != 1 || page.Next == "" {
		t.Errorf("limit=1: %d %+v", resp.StatusCode, page)
	}
}

func TestDevNoLogin(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.NoLogin = true; c.Accounts = nil })
	seed(t, ts.ix)
	c := newClient(t, ts.URL)
	code, body, _ := c.get("/orders")
	if code != 200 || !strings.Contains(body, "dev (operator)") || !strings.Contains(body, "anna@example.com") {
		t.Fatalf("dev mode orders: %d", code)
	}
	// CSRF protection stays on without login.
	if code, _, _ := c.post("/dlq/replay", url.Values{"action": {"preview"}, "source": {"1/0"}}); code != http.StatusForbidden {
		t.Fatalf("dev mode POST without CSRF token: %d, want 403", code)
	}
	if code, _, _ := c.post("/dlq/replay", url.Values{"csrf": {c.csrf}, "action": {"preview"}, "source": {"1/0"}}); code != 200 {
		t.Fatalf("dev mode preview: %d", code)
	}
	// A POST from another origin is refused even with the token.
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/dlq/replay", strings.NewReader(url.Values{"csrf": {c.csrf}, "action": {"preview"}, "source": {"1/0"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin POST: %d, want 403", resp.StatusCode)
	}
	// Without login only loopback host names are answered: a page whose
	// name resolves to 127.0.0.1 (DNS rebinding) is refused.
	for host, want := range map[string]int{"evil.example": http.StatusMisdirectedRequest, "evil.example:80": http.StatusMisdirectedRequest,
		"127.0.0.1.nip.io": http.StatusMisdirectedRequest, "localhost": 200, "LOCALHOST:8070": 200, "[::1]:8070": 200, "127.0.0.2": 200} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/orders", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("dev mode GET /orders for host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
	// The CLI's search (orders search --console) has no cookie and no
	// token: a JSON POST that no page of another site can make a browser
	// send is answered; one that looks like such a page's is not.
	search := func(ctype string, hdr map[string]string) (int, APIPage) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/orders/search", strings.NewReader(`{"term":"bo@example.com"}`))
		req.Header.Set("Content-Type", ctype)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var page APIPage
		_ = json.NewDecoder(resp.Body).Decode(&page)
		return resp.StatusCode, page
	}
	if code, page := search("application/json", nil); code != 200 || len(page.Orders) != 1 || page.Orders[0].ID != "pi_wait0000002" {
		t.Fatalf("dev mode CLI search: %d %+v", code, page)
	}
	if code, _ := search("application/json; charset=utf-8", map[string]string{"Origin": ts.URL, "Sec-Fetch-Site": "same-origin"}); code != 200 {
		t.Fatalf("dev mode same-origin JSON search: %d, want 200", code)
	}
	for _, c := range []struct {
		ctype string
		hdr   map[string]string
	}{
		{"text/plain", nil},
		{"application/x-www-form-urlencoded", nil},
		{"application/json", map[string]string{"Origin": "http://evil.example"}},
		{"application/json", map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		if code, _ := search(c.ctype, c.hdr); code != http.StatusForbidden {
			t.Fatalf("dev mode search without a token, %s %v: %d, want 403", c.ctype, c.hdr, code)
		}
	}
	// Only the JSON API: a form POST without a cookie is still refused.
	req, _ = http.NewRequest(http.MethodPost, ts.URL+"/dlq/replay", strings.NewReader(`{"action":"preview","source":"1/0"}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dev mode JSON POST to /dlq/replay without a token: %d, want 403", resp.StatusCode)
	}
	if _, err := New(Config{Index: ts.ix}); err == nil {
		t.Fatal("New without accounts and without NoLogin succeeded")
	}
}

func TestPaging(t *testing.T) {
	ts := newTestServer(t, nil)
	for i := range 120 {
		st := order("pi_page"+pad(i), "p@example.com", processor.StatusCompleted, t0.Add(time.Duration(i)*time.Second), 6)
		apply(t, ts.ix, stateRecord(t, st, 0, int64(i)))
	}
	c := newClient(t, ts.URL)
	c.login("ops")
	seen := map[string]bool{}
	path := "/orders?status=completed"
	pages := 0
	for path != "" {
		code, body, _ := c.get(path)
		if code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
		pages++
		for _, part := range strings.Split(body, `<a href="/orders/pi_page`)[1:] {
			id := part[:7]
			if seen[id] {
				t.Fatalf("order %s on two pages", id)
			}
			seen[id] = true
		}
		path = ""
		if i := strings.Index(body, `id="next" href="`); i >= 0 {
			rest := body[i+len(`id="next" href="`):]
			path = strings.ReplaceAll(rest[:strings.IndexByte(rest, '"')], "&amp;", "&")
		}
	}
	if len(seen) != 120 || pages != 3 {
		t.Fatalf("paged through %d orders in %d pages, want 120 in 3", len(seen), pages)
	}
}

func pad(i int) string { return fmt.Sprintf("%07d", i) }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAmbiguousNumberPage(t *testing.T) {
	ts := newTestServer(t, nil)
	// Ids that differ only in case share their OF- number (OF-DUP1).
	apply(t, ts.ix,
		stateRecord(t, order("pi_alpha_dup1", "a@example.com", processor.StatusCompleted, t0, 6), 0, 0),
		stateRecord(t, order("pi_beta_Dup1", "b@example.com", processor.StatusCompleted, t0.Add(time.Minute), 6), 0, 1))
	vic, ops := newClient(t, ts.URL), newClient(t, ts.URL)
	vic.login("vic")
	ops.login("ops")
	for _, tc := range []struct {
		c *client
		p string
	}{{vic, "/orders/OF-DUP1"}, {vic, "/orders/of-dup1"}, {ops, "/orders/OF-DUP1/label"}} {
		p := tc.p
		code, body, h := tc.c.get(p)
		if code != http.StatusMultipleChoices || h.Get("Location") != "" {
			t.Errorf("GET %s: %d → %q, want 300 listing the orders", p, code, h.Get("Location"))
		}
		for _, want := range []string{`id="ambiguous"`, "names several orders", `<a href="/orders/pi_alpha_dup1">`, `<a href="/orders/pi_beta_Dup1">`} {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s lacks %q\n%s", p, want, body)
			}
		}
		if tc.c == vic && strings.Contains(body, "a@example.com") {
			t.Errorf("GET %s: a viewer sees the email", p)
		}
	}
	// One order of a number still leads to it.
	apply(t, ts.ix, stateRecord(t, order("pi_gamma_one1", "c@example.com", processor.StatusCompleted, t0, 6), 0, 2))
	if code, _, h := vic.get("/orders/OF-ONE1"); code != http.StatusSeeOther || h.Get("Location") != "/orders/pi_gamma_one1" {
		t.Errorf("OF-ONE1: %d → %q", code, h.Get("Location"))
	}
}

func TestPreviewOfAbsentDeadLetter(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts.ix)
	ts.replay.absent = []string{"9/99"}
	c := newClient(t, ts.URL)
	c.login("ops")
	before := len(ts.auditor.records())
	for _, srcs := range [][]string{{"9/99"}, {"1/0", "9/99"}} {
		code, body, _ := c.post("/dlq/replay", url.Values{"csrf": {c.csrf}, "action": {"preview"}, "source": srcs})
		if code != http.StatusNotFound || !strings.Contains(body, "no dead letter at 9/99 on t.orders.dlq") || strings.Contains(body, "Would replay") {
			t.Errorf("preview of %v: %d, want 404 no dead letter at 9/99\n%s", srcs, code, body)
		}
	}
	if recs := ts.auditor.records(); len(recs) != before {
		t.Errorf("a refused preview was audited: %+v", recs[before:])
	}
	if code, body, _ := c.post("/dlq/replay", url.Values{"csrf": {c.csrf}, "action": {"preview"}, "source": {"1/0"}}); code != 200 || !strings.Contains(body, "Would replay <strong>1</strong>") {
		t.Errorf("preview of 1/0: %d\n%s", code, body)
	}
}

func TestMalformedQuery(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts.ix)
	c := newClient(t, ts.URL)
	c.login("ops")
	for _, p := range []string{"/orders?since=%zz", "/orders?status=completed&since=%zz", "/dlq?order=%zz", "/audit?cursor=%zz", "/orders/pi_done0000001?x=%zz", "/?fragment=%zz"} {
		code, body, _ := c.get(p)
		if code != http.StatusBadRequest || !strings.Contains(body, `The query string does not parse: invalid URL escape &#34;%zz&#34;`) {
			t.Errorf("GET %s: %d, want 400 naming the bad escape\n%s", p, code, body)
		}
	}
	for _, p := range []string{"/api/orders?since=%zz", "/api/orders/pi_done0000001?%zz", "/api/overview?%zz"} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+p, nil)
		req.Header.Set("Authorization", "Bearer tok-ops")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || e["error"] != `The query string does not parse: invalid URL escape "%zz"` {
			t.Errorf("GET %s: %d %v, want 400", p, resp.StatusCode, e)
		}
	}
}

func TestAuditPaging(t *testing.T) {
	ts := newTestServer(t, nil)
	for i := range 250 {
		v, err := topics.AuditRecord{ID: fmt.Sprint(i), At: t0.Add(time.Duration(i) * time.Second), Actor: fmt.Sprintf("user%03d", i), Action: topics.AuditLogin, Outcome: topics.AuditOK}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		apply(t, ts.ix, &kgo.Record{Topic: names.Audit, Partition: 0, Offset: int64(i), Key: []byte("ops"), Value: v})
	}
	c := newClient(t, ts.URL)
	c.login("ops")
	var actors []string
	var sizes []int
	path := "/audit"
	for path != "" {
		code, body, _ := c.get(path)
		if code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
		n := 0
		for _, part := range strings.Split(body, "<td>user")[1:] {
			actors = append(actors, "user"+part[:3])
			n++
		}
		sizes = append(sizes, n)
		if path != "/audit" && !strings.Contains(body, `id="newest" href="/audit"`) {
			t.Errorf("%s has no link to the newest records", path)
		}
		path = ""
		if i := strings.Index(body, `id="next" href="`); i >= 0 {
			rest := body[i+len(`id="next" href="`):]
			path = strings.ReplaceAll(rest[:strings.IndexByte(rest, '"')], "&amp;", "&")
		}
	}
	// The login of ops itself is audited by memAuditor, not the index.
	if fmt.Sprint(sizes) != "[100 100 50]" || len(actors) != 250 || actors[0] != "user249" || actors[99] != "user150" || actors[100] != "user149" || actors[249] != "user000" {
		t.Fatalf("pages of %v, first %s, last %s; want [100 100 50] from user249 to user000", sizes, actors[0], actors[len(actors)-1])
	}
	for _, cur := range []string{"bogus!", "AAAA"} {
		code, body, _ := c.get("/audit?cursor=" + url.QueryEscape(cur))
		if code != http.StatusBadRequest || !strings.Contains(body, "page cursor &#34;"+cur+"&#34; is not one this console wrote") {
			t.Errorf("cursor %q: %d\n%s", cur, code, body)
		}
	}
}

func TestBearerSchemeAnyCase(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts.ix)
	for _, auth := range []string{"bearer tok-ops", "BEARER tok-ops", "beaRer  tok-ops"} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/orders?status=dead_lettered", nil)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page APIPage
		_ = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(page.Orders) != 1 || page.Orders[0].ID != "pi_dead0000003" {
			t.Errorf("Authorization: %s: %d %+v, want 200 and pi_dead0000003", auth, resp.StatusCode, page)
		}
	}
}
