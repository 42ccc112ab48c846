package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/alertbatch"
)

const hookPath = "/services/T000SHOP/B000OPS/s3cr3tW3bh00kT0k3n"

// fakeSlack is an incoming webhook: JSON {"text"} in, "ok" out, or the
// scripted plain-string errors first.
type fakeSlack struct {
	mu      sync.Mutex
	reqs    []recorded
	replies []reply
}

type recorded struct {
	method, path, contentType, text string
	at                              time.Time
}

type reply struct {
	status     int
	body       string
	retryAfter string
}

func (f *fakeSlack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &body)
	f.mu.Lock()
	f.reqs = append(f.reqs, recorded{r.Method, r.URL.Path, r.Header.Get("Content-Type"), body.Text, time.Now()})
	rep := reply{status: 200, body: "ok"}
	if len(f.replies) > 0 {
		rep, f.replies = f.replies[0], f.replies[1:]
	}
	f.mu.Unlock()
	if rep.retryAfter != "" {
		w.Header().Set("Retry-After", rep.retryAfter)
	}
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (f *fakeSlack) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func newTestClient(t *testing.T, f *fakeSlack, mod func(*Config)) *Client {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := Config{
		WebhookURL:  srv.URL + hookPath,
		BatchWindow: 20 * time.Millisecond,
		BatchMax:    100,
		MinInterval: time.Millisecond,
		MaxAttempts: 3,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestAlertSendsExactRequest(t *testing.T) {
	f := &fakeSlack{}
	c := newTestClient(t, f, nil)
	err := c.Alert(context.Background(), integrations.Alert{OrderID: "pi_3Abc", Step: "shipping", Text: "postnord: HTTP 400: weight < 0 & <!channel> <https://evil.example|click>"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != hookPath || r.contentType != "application/json" {
		t.Errorf("request %s %s %s", r.method, r.path, r.contentType)
	}
	want := "*orderflow alert* · step *shipping*\norder OF-3ABC\npostnord: HTTP 400: weight &lt; 0 &amp; &lt;!channel&gt; &lt;https://evil.example|click&gt;"
	if r.text != want {
		t.Errorf("text\n%q\nwant\n%q", r.text, want)
	}
}

func TestSendErrors(t *testing.T) {
	tests := []struct {
		name       string
		rep        reply
		permanent  bool
		retryAfter time.Duration
		msg        string
	}{
		{"invalid payload", reply{status: 400, body: "invalid_payload"}, true, 0, "HTTP 400: invalid_payload"},
		{"prohibited", reply{status: 403, body: "action_prohibited"}, true, 0, "action_prohibited"},
		{"bad token", reply{status: 403, body: "invalid_token"}, true, 0, "invalid_token"},
		{"no channel", reply{status: 404, body: "channel_not_found"}, true, 0, "channel_not_found"},
		{"no service", reply{status: 404, body: "no_service"}, true, 0, "no_service"},
		{"archived", reply{status: 410, body: "channel_is_archived"}, true, 0, "HTTP 410: channel_is_archived"},
		{"rate limited", reply{status: 429, body: "rate_limited", retryAfter: "3"}, false, 3 * time.Second, "HTTP 429"},
		{"429 without header", reply{status: 429, body: ""}, false, time.Second, "Too Many Requests"},
		{"rollup", reply{status: 500, body: "rollup_error"}, false, 0, "rollup_error"},
		{"unavailable", reply{status: 503, body: "<html>\n  down\n</html>"}, false, 0, "<html> down </html>"},
		{"answer quoting the URL", reply{status: 404, body: "no_service for POST " + hookPath}, true, 0, "no_service for POST <redacted>"},
		// Slack's success is 200 with the body "ok": any other 2xx is no
		// delivery, and the alert is sent again.
		{"200 maintenance page", reply{status: 200, body: "<!DOCTYPE html><html>Scheduled maintenance</html>"}, false, 0, "not Slack's ok"},
		{"200 empty", reply{status: 200, body: ""}, false, 0, "not Slack's ok"},
		{"204", reply{status: 204}, false, 0, "not Slack's ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSlack{replies: []reply{tt.rep}}
			c := newTestClient(t, f, nil)
			err := c.Send(context.Background(), "x")
			var e *integrations.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *integrations.Error", err)
			}
			if integrations.IsPermanent(err) != tt.permanent || e.Status != tt.rep.status || e.RetryAfter != tt.retryAfter || e.Provider != "slack" {
				t.Errorf("permanent=%v status=%d retryAfter=%v provider=%s; want %v %d %v slack", integrations.IsPermanent(err), e.Status, e.RetryAfter, e.Provider, tt.permanent, tt.rep.status, tt.retryAfter)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q lacks %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error shows the webhook URL: %q", err)
			}
		})
	}
}

func TestNetworkErrorHidesURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	c, err := New(Config{WebhookURL: base + hookPath})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Send(context.Background(), "x")
	if err == nil || integrations.IsPermanent(err) {
		t.Fatalf("err = %v, want transient", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "/services/") {
		t.Fatalf("error shows the webhook URL: %q", err)
	}
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	f := &fakeSlack{replies: []reply{{status: 429, body: "rate_limited", retryAfter: "1"}}}
	c := newTestClient(t, f, nil)
	_ = c.Alert(context.Background(), integrations.Alert{OrderID: "pi_1", Step: "email", Text: "x"})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2 (429, then the retry)", len(reqs))
	}
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 900*time.Millisecond {
		t.Fatalf("retried after %v, before Retry-After (1s)", gap)
	}
}

// A permanent refusal is not retried, and the log says so without the URL.
func TestPermanentFailureIsLoggedNotRetried(t *testing.T) {
	var buf syncBuffer
	f := &fakeSlack{replies: []reply{{status: 404, body: "no_service"}}}
	c := newTestClient(t, f, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&buf, nil)) })
	_ = c.Alert(context.Background(), integrations.Alert{OrderID: "pi_1", Step: "email"})
	_ = c.Close()
	if n := len(f.requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	logs := buf.String()
	if !strings.Contains(logs, "slack refuses the incoming webhook") || !strings.Contains(logs, "no_service") || !strings.Contains(logs, "alert message not sent") {
		t.Fatalf("logs lack the refusal: %s", logs)
	}
	if strings.Contains(logs, "s3cr3t") || strings.Contains(logs, "/services/") {
		t.Fatalf("logs show the webhook URL: %s", logs)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var countRE = regexp.MustCompile(`^\*orderflow: (\d+) alerts\*`)

// A burst of 1,000 alerts is a handful of messages that account for all.
func TestBurstIsBatched(t *testing.T) {
	f := &fakeSlack{}
	c := newTestClient(t, f, nil)
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				step := []string{"shipping", "invoice"}[i%2]
				if err := c.Alert(context.Background(), integrations.Alert{OrderID: fmt.Sprintf("pi_%d_%d", g, i), Step: step, Text: "dead-lettered: " + step + " failed"}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) == 0 || len(reqs) > 10 {
		t.Fatalf("%d messages for 1000 alerts, want 1..10", len(reqs))
	}
	total := 0
	for _, r := range reqs {
		if m := countRE.FindStringSubmatch(r.text); m != nil {
			n, _ := strconv.Atoi(m[1])
			total += n
		} else if strings.HasPrefix(r.text, "*orderflow alert*") {
			total++
		} else {
			t.Errorf("unexpected message %q", r.text)
		}
	}
	if total != 1000 {
		t.Fatalf("messages account for %d alerts, want 1000", total)
	}
	if !strings.Contains(reqs[0].text, " at step shipping*: ") || !strings.Contains(reqs[0].text, "• dead-lettered: shipping failed (×") {
		t.Errorf("summary lacks per-step grouping: %q", reqs[0].text)
	}
}

// Two batches are at least MinInterval apart.
func TestMinInterval(t *testing.T) {
	f := &fakeSlack{}
	c := newTestClient(t, f, func(c *Config) { c.BatchWindow = time.Millisecond; c.MinInterval = 300 * time.Millisecond })
	_ = c.Alert(context.Background(), integrations.Alert{OrderID: "pi_1", Step: "crm"})
	waitRequests(t, f, 1)
	_ = c.Alert(context.Background(), integrations.Alert{OrderID: "pi_2", Step: "crm"})
	waitRequests(t, f, 2)
	reqs := f.requests()
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 290*time.Millisecond {
		t.Fatalf("second message %v after the first, want ≥ 300ms", gap)
	}
}

func waitRequests(t *testing.T, f *fakeSlack, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(f.requests()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests, want %d", len(f.requests()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCloseFlushesPendingAndRejectsLaterAlerts(t *testing.T) {
	f := &fakeSlack{}
	c := newTestClient(t, f, func(c *Config) { c.BatchWindow = time.Hour })
	for i := range 3 {
		_ = c.Alert(context.Background(), integrations.Alert{OrderID: fmt.Sprint("pi_", i), Step: "crm"})
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("%d messages before the window ended", n)
	}
	_ = c.Close()
	reqs := f.requests()
	if len(reqs) != 1 || !strings.HasPrefix(reqs[0].text, "*orderflow: 3 alerts*\n\n*3 at step crm*: OF-0, OF-1, OF-2") {
		t.Fatalf("after Close: %d messages %+v", len(reqs), reqs)
	}
	if err := c.Alert(context.Background(), integrations.Alert{OrderID: "pi_9"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Alert after Close: %v", err)
	}
}

var entityRE = regexp.MustCompile(`^&(amp|lt|gt);`)

func TestLongAlertIsCut(t *testing.T) {
	for _, text := range []string{
		strings.Repeat("&", 50000),
		strings.Repeat("é<", 30000),
		strings.Repeat("😀", 30000),
		strings.Repeat("x", 39990) + ">>>>>>>>>>",
	} {
		s := alertbatch.NewSummary()
		s.Add(integrations.Alert{OrderID: "pi_1", Step: "shipping", Text: "x"})
		s.Groups[0].Reasons[0].Text = text // past the per-reason cap, to test the message cut
		got := Render(s)
		if n := charLen(got); n > MaxMessageLen {
			t.Errorf("message is %d characters", n)
		}
		if !strings.HasSuffix(got, "…") {
			t.Errorf("cut message does not end with an ellipsis")
		}
		for i := 0; i < len(got); i++ {
			if got[i] == '&' && !entityRE.MatchString(got[i:]) {
				t.Fatalf("broken entity near %q", got[max(0, i-10):min(len(got), i+10)])
			}
			if got[i] == '<' || got[i] == '>' {
				t.Fatalf("unescaped %q at %d", got[i], i)
			}
		}
	}
}

func TestEscapeCut(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"a<b", 10, "a&lt;b"},
		{"abcdef", 4, "abc…"},
		{"ab&cd", 5, "ab…"},
		{"ab&cd", 8, "ab&amp;…"},
		{`"quoted"`, 20, `"quoted"`}, // mrkdwn gives quotes no meaning
		{"abc", 0, ""},
	}
	for _, tt := range tests {
		if got := EscapeCut(tt.in, tt.max); got != tt.want {
			t.Errorf("EscapeCut(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"minimal", Config{WebhookURL: "https://hooks.slack.com/services/T/B/x"}, true},
		{"no url", Config{}, false},
		{"not a url", Config{WebhookURL: "hooks.slack.com/services/T/B/s3cr3t"}, false},
		{"negative window", Config{WebhookURL: "https://hooks.slack.com/services/T/B/x", BatchWindow: -1}, false},
		{"negative attempts", Config{WebhookURL: "https://hooks.slack.com/services/T/B/x", MaxAttempts: -1}, false},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: error shows the URL: %v", tt.name, err)
		}
	}
}
