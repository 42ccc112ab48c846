package sim

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *simClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLimited(t *testing.T, lim Limits, mod func(*Config)) (*Server, string, *simClock) {
	t.Helper()
	clock := &simClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	lim.Now = clock.now
	cfg := Config{EnforceLimits: true, Limits: lim}
	if mod != nil {
		mod(&cfg)
	}
	s, ts := newTest(t, cfg)
	return s, ts.URL, clock
}

func airtableCall(t *testing.T, base, baseURL string, n int) resp {
	t.Helper()
	return call(t, "PATCH", baseURL+"/v0/"+base+"/tblY", map[string]string{"Authorization": "Bearer pat"},
		fmt.Sprintf(`{"performUpsert":{"fieldsToMergeOn":["Order ID"]},"records":[{"fields":{"Order ID":"pi_%d"}}]}`, n))
}

// Airtable: 5 requests a second per base; the sixth gets 429 and a 30 s
// penalty for that base only.
func TestLimitsAirtable(t *testing.T) {
	s, url, clock := newLimited(t, Limits{}, nil)
	for i := range 5 {
		wantStatus(t, airtableCall(t, "appA", url, i), 200)
	}
	r := airtableCall(t, "appA", url, 5)
	wantStatus(t, r, 429)
	if string(r.body) != `{"errors":[{"error":"RATE_LIMIT_REACHED","message":"Rate limit exceeded. Please try again later"}]}`+"\n" {
		t.Fatalf("429 body %s", r.body)
	}
	wantStatus(t, airtableCall(t, "appB", url, 6), 200) // another base
	clock.advance(2 * time.Second)
	wantStatus(t, airtableCall(t, "appA", url, 7), 429) // in the penalty, though the second is new
	clock.advance(27 * time.Second)
	wantStatus(t, airtableCall(t, "appA", url, 8), 429)
	clock.advance(time.Second + time.Millisecond)
	wantStatus(t, airtableCall(t, "appA", url, 9), 200)
	st := s.Stats().Steps[StepProductionLog]
	if st.Requests != 10 || st.RejectedRateLimited != 3 || st.Created != 7 {
		t.Fatalf("stats %+v, want 10 requests, 3 rejected, 7 created", st)
	}
}

func zohoCall(t *testing.T, baseURL, tok string, records int) resp {
	t.Helper()
	var recs []string
	for range records {
		recs = append(recs, fmt.Sprintf(`{"Deal_Name":"OF-%d"}`, nextID()))
	}
	return call(t, "POST", baseURL+"/crm/v3/Deals/upsert", map[string]string{"Authorization": "Zoho-oauthtoken " + tok},
		`{"data":[`+strings.Join(recs, ",")+`]}`)
}

// Zoho: concurrent calls beyond the limit get 429 TOO_MANY_REQUESTS while
// the others are still in flight.
func TestLimitsZohoConcurrency(t *testing.T) {
	s, url, _ := newLimited(t, Limits{ZohoConcurrency: 2, ZohoDailyCredits: -1},
		func(c *Config) { c.StepLatency = map[string]time.Duration{StepCRM: time.Second} })
	tok := zohoToken(t, url)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := zohoCall(t, url, tok, 1); r.status != 200 {
				t.Errorf("in-flight call: %d %s", r.status, r.body)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.limits.mu.Lock()
		n := s.limits.zohoInFlight
		s.limits.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls in flight, want 2", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := zohoCall(t, url, tok, 1)
	wantStatus(t, r, 429)
	m := r.json(t)
	if m["code"] != "TOO_MANY_REQUESTS" || m["status"] != "error" || m["message"] != "concurrency limit exceeded" || path(m, "details", "allowed_limit") != "2" {
		t.Fatalf("429 body %s", r.body)
	}
	wg.Wait()
	wantStatus(t, zohoCall(t, url, tok, 1), 200) // slots freed
	if st := s.Stats().Steps[StepCRM]; st.RejectedConcurrency != 1 || st.RejectedQuota != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Zoho: credits per rolling 24 hours, one per 10 records of an upsert.
func TestLimitsZohoDailyCredits(t *testing.T) {
	s, url, clock := newLimited(t, Limits{ZohoDailyCredits: 3}, nil)
	tok := zohoToken(t, url)
	for range 3 {
		wantStatus(t, zohoCall(t, url, tok, 1), 200)
	}
	r := zohoCall(t, url, tok, 1)
	wantStatus(t, r, 429)
	m := r.json(t)
	// All three credits were spent in the minute from 12:00, so they leave
	// the window at 12:01 the next day: 86,460 s from now.
	if m["code"] != "TOO_MANY_REQUESTS" || !strings.Contains(m["message"].(string), "credits") ||
		path(m, "details", "retry_after") != float64(86460) || path(m, "details", "limit") != float64(3) {
		t.Fatalf("429 body %s", r.body)
	}
	clock.advance(24*time.Hour + 59*time.Second)
	wantStatus(t, zohoCall(t, url, tok, 1), 429) // 12:00:59 next day: still in the window
	clock.advance(2 * time.Second)
	wantStatus(t, zohoCall(t, url, tok, 25), 200) // 25 records cost 3
	wantStatus(t, zohoCall(t, url, tok, 1), 429)
	if st := s.Stats().Steps[StepCRM]; st.RejectedQuota != 3 || st.RejectedConcurrency != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func telegramCall(t *testing.T, baseURL, bot, chat string) resp {
	t.Helper()
	return call(t, "POST", baseURL+"/bot"+bot+"/sendMessage", map[string]string{"Content-Type": "application/json"},
		`{"chat_id":`+chat+`,"text":"alert"}`)
}

func TestLimitsTelegram(t *testing.T) {
	s, url, clock := newLimited(t, Limits{TelegramPerBot: 3}, nil)
	wantStatus(t, telegramCall(t, url, "1:a", "42"), 200)
	r := telegramCall(t, url, "1:a", "42")
	wantStatus(t, r, 429)
	if m := r.json(t); m["ok"] != false || m["error_code"] != float64(429) || m["description"] != "Too Many Requests: retry after 1" || path(m, "parameters", "retry_after") != float64(1) {
		t.Fatalf("429 body %s", r.body)
	}
	// Per bot: 3 a second across chats (42 above used one).
	wantStatus(t, telegramCall(t, url, "1:a", "43"), 200)
	wantStatus(t, telegramCall(t, url, "1:a", `"@shop"`), 200)
	wantStatus(t, telegramCall(t, url, "1:a", "44"), 429)
	wantStatus(t, telegramCall(t, url, "2:b", "44"), 200) // another bot

	// A group: at most 20 a minute even at one a second.
	clock.advance(time.Second)
	for i := range 20 {
		if r := telegramCall(t, url, "3:c", "-100123"); r.status != 200 {
			t.Fatalf("group message %d: %d %s", i+1, r.status, r.body)
		}
		clock.advance(time.Second)
	}
	r = telegramCall(t, url, "3:c", "-100123")
	wantStatus(t, r, 429)
	// The first of the 20 was sent at 12:00:01, now is 12:00:21.
	if path(r.json(t), "parameters", "retry_after") != float64(40) {
		t.Fatalf("group 429 body %s", r.body)
	}
	if st := s.Stats().Steps[StepAlert]; st.RejectedRateLimited != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLimitsSlack(t *testing.T) {
	s, url, clock := newLimited(t, Limits{}, nil)
	wantStatus(t, call(t, "POST", url+slackHook, jsonHdr, `{"text":"a"}`), 200)
	r := call(t, "POST", url+slackHook, jsonHdr, `{"text":"b"}`)
	wantStatus(t, r, 429)
	if r.header.Get("Retry-After") != "1" || string(r.body) != "rate_limited" {
		t.Fatalf("429: Retry-After %q body %q", r.header.Get("Retry-After"), r.body)
	}
	wantStatus(t, call(t, "POST", url+"/services/T0SHOP/B0OTHER/xyz", jsonHdr, `{"text":"c"}`), 200) // another webhook
	clock.advance(time.Second)
	wantStatus(t, call(t, "POST", url+slackHook, jsonHdr, `{"text":"d"}`), 200)
	if st := s.Stats().Steps[StepSlack]; st.RejectedRateLimited != 1 || st.Created != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// PostNord, Netvisor and Mailgun publish no numbers: nothing is enforced
// unless set, and then their 429s carry Retry-After.
func TestLimitsUnconfirmedProviders(t *testing.T) {
	calls := func(url string) map[string]stepCall { return stepCalls(t, url) }
	_, url, _ := newLimited(t, Limits{}, nil)
	c := calls(url)
	for i := range 5 {
		wantStatus(t, c[StepShipping].do(t, url, 100+i), 200)
	}

	_, url, clock := newLimited(t, Limits{PostNordPerSecond: 1, MailgunPerSecond: 1}, nil)
	c = calls(url)
	wantStatus(t, c[StepShipping].do(t, url, 1), 200)
	r := c[StepShipping].do(t, url, 2)
	wantStatus(t, r, 429)
	if r.header.Get("Retry-After") != "1" || path(r.json(t), "compositeFault", "faults", 0, "faultCode") != "API-429" {
		t.Fatalf("PostNord 429: %v %s", r.header, r.body)
	}
	wantStatus(t, c[StepEmail].do(t, url, 3), 200)
	r = c[StepEmail].do(t, url, 4)
	wantStatus(t, r, 429)
	if r.header.Get("X-RateLimit-Reset") != fmt.Sprint(clock.now().Unix()+1) || r.json(t)["message"] == nil {
		t.Fatalf("Mailgun 429: %v %s", r.header, r.body)
	}
}

// Off unless enabled, and a negative value turns one limit off.
func TestLimitsOff(t *testing.T) {
	_, ts := newTest(t, Config{})
	for i := range 10 {
		wantStatus(t, airtableCall(t, "appA", ts.URL, i), 200)
	}
	_, url, _ := newLimited(t, Limits{AirtablePerBase: -1}, nil)
	for i := range 10 {
		wantStatus(t, airtableCall(t, "appA", url, i), 200)
	}
	if _, err := New(Config{EnforceLimits: true, Limits: Limits{AirtablePenalty: -time.Second}}); err == nil {
		t.Fatal("a negative penalty is accepted")
	}
}

// The refusal carries X-API-CREDITS-REMAINING: 0; answers report what is
// left once half is used; the control endpoints set the allowance and
// start a new day.
func TestZohoCreditsHeaderAndControl(t *testing.T) {
	_, url, _ := newLimited(t, Limits{ZohoDailyCredits: 4, ZohoConcurrency: -1}, nil)
	tok := zohoToken(t, url)
	r := zohoCall(t, url, tok, 1)
	wantStatus(t, r, 200)
	if v := r.header.Get(HeaderZohoCreditsRemaining); v != "" {
		t.Errorf("first call: %s %q, want none below half", HeaderZohoCreditsRemaining, v)
	}
	r = zohoCall(t, url, tok, 1)
	if v := r.header.Get(HeaderZohoCreditsRemaining); v != "2" {
		t.Errorf("second call: %s %q, want 2", HeaderZohoCreditsRemaining, v)
	}
	zohoCall(t, url, tok, 1)
	zohoCall(t, url, tok, 1)
	r = zohoCall(t, url, tok, 1)
	wantStatus(t, r, 429)
	if v := r.header.Get(HeaderZohoCreditsRemaining); v != "0" {
		t.Errorf("refusal: %s %q, want 0", HeaderZohoCreditsRemaining, v)
	}
	got := call(t, "GET", url+"/_sim/zoho/credits", nil, "")
	if string(got.body) != `{"daily":4,"spent":4,"remaining":0}`+"\n" {
		t.Errorf("GET credits = %s", got.body)
	}
	wantStatus(t, call(t, "DELETE", url+"/_sim/zoho/credits", nil, ""), 200)
	wantStatus(t, zohoCall(t, url, tok, 1), 200)
	got = call(t, "PUT", url+"/_sim/zoho/credits", nil, `{"daily":1}`)
	if string(got.body) != `{"daily":1,"spent":1,"remaining":0}`+"\n" {
		t.Errorf("PUT credits = %s", got.body)
	}
	wantStatus(t, zohoCall(t, url, tok, 1), 429)
	wantStatus(t, call(t, "PUT", url+"/_sim/zoho/credits", nil, `{"daily":-1}`), 400)
}

func TestZohoCreditsControlNeedsLimits(t *testing.T) {
	_, ts := newTest(t, Config{})
	wantStatus(t, call(t, "GET", ts.URL+"/_sim/zoho/credits", nil, ""), 409)
}
