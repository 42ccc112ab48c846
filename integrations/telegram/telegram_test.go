package telegram

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

const testToken = "123456:AAH-secret-token_xyz"

// fakeBot records sendMessage calls and answers with the scripted replies,
// then {"ok":true}.
type fakeBot struct {
	mu      sync.Mutex
	reqs    []recorded
	replies []reply
}

type recorded struct {
	method, path, contentType string
	body                      map[string]any
	at                        time.Time
}

type reply struct {
	status int
	body   string
}

func (f *fakeBot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	f.mu.Lock()
	f.reqs = append(f.reqs, recorded{r.Method, r.URL.Path, r.Header.Get("Content-Type"), body, time.Now()})
	rep := reply{200, `{"ok":true,"result":{"message_id":1}}`}
	if len(f.replies) > 0 {
		rep, f.replies = f.replies[0], f.replies[1:]
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (f *fakeBot) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func newTestClient(t *testing.T, f *fakeBot, mod func(*Config)) *Client {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := Config{
		BaseURL:     srv.URL,
		Token:       testToken,
		ChatID:      "-1001234567890",
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
	f := &fakeBot{}
	c := newTestClient(t, f, nil)
	err := c.Alert(context.Background(), integrations.Alert{OrderID: "pi_3Abc", Step: "shipping", Text: `postnord: HTTP 400: weight < 0 & "bad"`})
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
	if r.method != http.MethodPost || r.path != "/bot"+testToken+"/sendMessage" {
		t.Errorf("request = %s %s", r.method, r.path)
	}
	if r.contentType != "application/json" {
		t.Errorf("Content-Type = %q", r.contentType)
	}
	if id, ok := r.body["chat_id"].(float64); !ok || int64(id) != -1001234567890 {
		t.Errorf("chat_id = %#v, want the number -1001234567890", r.body["chat_id"])
	}
	if r.body["parse_mode"] != "HTML" {
		t.Errorf("parse_mode = %v", r.body["parse_mode"])
	}
	text, _ := r.body["text"].(string)
	for _, want := range []string{"<b>orderflow alert</b>", "<b>shipping</b>", "\norder OF-3ABC\n", "weight &lt; 0 &amp; &quot;bad&quot;"} {
		if !strings.Contains(text, want) {
			t.Errorf("text %q lacks %q", text, want)
		}
	}
}

func TestChatIDUsername(t *testing.T) {
	f := &fakeBot{}
	c := newTestClient(t, f, func(c *Config) { c.ChatID = "@shop_alerts" })
	if err := c.SendMessage(context.Background(), "hi"); err != nil {
		t.Fatal(err)
	}
	if got := f.requests()[0].body["chat_id"]; got != "@shop_alerts" {
		t.Errorf("chat_id = %#v", got)
	}
}

func TestSendMessageErrors(t *testing.T) {
	tests := []struct {
		name       string
		rep        reply
		permanent  bool
		status     int
		retryAfter time.Duration
		msg        string
	}{
		{"bad request", reply{400, `{"ok":false,"error_code":400,"description":"Bad Request: can't parse entities"}`}, true, 400, 0, "can't parse entities"},
		{"bad token", reply{401, `{"ok":false,"error_code":401,"description":"Unauthorized"}`}, true, 401, 0, "Unauthorized"},
		{"blocked", reply{403, `{"ok":false,"error_code":403,"description":"[Error]: Forbidden: can't write to private chat with deleted user"}`}, true, 403, 0, "Forbidden"},
		{"chat migrated", reply{400, `{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1009876}}`}, true, 400, 0, "-1009876"},
		{"flood", reply{429, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}`}, false, 429, 7 * time.Second, "Too Many Requests"},
		{"server error html", reply{502, `<html>Bad Gateway</html>`}, false, 502, 0, "not Bot API JSON"},
		{"ok false in 200", reply{200, `{"ok":false,"error_code":400,"description":"Bad Request: message text is empty"}`}, true, 400, 0, "text is empty"},
		{"token echoed", reply{404, `{"ok":false,"error_code":404,"description":"Not Found: bot` + testToken + `"}`}, true, 404, 0, "<redacted>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeBot{replies: []reply{tt.rep}}
			c := newTestClient(t, f, nil)
			err := c.SendMessage(context.Background(), "x")
			var e *integrations.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *integrations.Error", err)
			}
			if integrations.IsPermanent(err) != tt.permanent || e.Status != tt.status || e.RetryAfter != tt.retryAfter {
				t.Errorf("got permanent=%v status=%d retryAfter=%v; want %v %d %v", integrations.IsPermanent(err), e.Status, e.RetryAfter, tt.permanent, tt.status, tt.retryAfter)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q lacks %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error leaks the token: %q", err)
			}
		})
	}
}

func TestNetworkErrorRedactsToken(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens any more
	c, err := New(Config{BaseURL: base, Token: testToken, ChatID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.SendMessage(context.Background(), "x")
	if err == nil || integrations.IsPermanent(err) {
		t.Fatalf("err = %v, want transient", err)
	}
	if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), "AAH-secret") {
		t.Fatalf("error leaks the token: %q", err)
	}
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	f := &fakeBot{replies: []reply{{429, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}`}}}
	c := newTestClient(t, f, nil)
	if err := c.Alert(context.Background(), integrations.Alert{OrderID: "pi_1", Step: "email", Text: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2 (429, then the retry)", len(reqs))
	}
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 900*time.Millisecond {
		t.Fatalf("retried after %v, before retry_after (1s)", gap)
	}
}

func TestPermanentFailureIsNotRetried(t *testing.T) {
	f := &fakeBot{replies: []reply{{400, `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`}}}
	c := newTestClient(t, f, nil)
	_ = c.Alert(context.Background(), integrations.Alert{OrderID: "pi_1", Step: "email"})
	_ = c.Close()
	if n := len(f.requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

var countRE = regexp.MustCompile(`^<b>orderflow: (\d+) alerts</b>`)

// A burst of 1,000 alerts becomes a handful of messages that account for
// every alert.
func TestBurstIsBatched(t *testing.T) {
	f := &fakeBot{}
	c := newTestClient(t, f, nil)
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				step := []string{"shipping", "invoice"}[i%2]
				a := integrations.Alert{OrderID: fmt.Sprintf("pi_%d_%d", g, i), Step: step, Text: "dead-lettered: " + step + " failed"}
				if err := c.Alert(context.Background(), a); err != nil {
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
	t.Logf("1000 alerts sent as %d messages", len(reqs))
	if len(reqs) == 0 || len(reqs) > 10 {
		t.Fatalf("%d messages for 1000 alerts, want 1..10", len(reqs))
	}
	total := 0
	for _, r := range reqs {
		text := r.body["text"].(string)
		if utf16Len(text) > MaxMessageLen {
			t.Errorf("message of %d characters", utf16Len(text))
		}
		if m := countRE.FindStringSubmatch(text); m != nil {
			n, _ := strconv.Atoi(m[1])
			total += n
		} else if strings.HasPrefix(text, "<b>orderflow alert</b>") {
			total++
		} else {
			t.Errorf("unexpected message %q", text)
		}
	}
	if total != 1000 {
		t.Fatalf("messages account for %d alerts, want 1000", total)
	}
	if text := reqs[0].body["text"].(string); !strings.Contains(text, "at step shipping</b>") || !strings.Contains(text, "dead-lettered: shipping failed (×") {
		t.Errorf("summary lacks per-step grouping: %q", text)
	}
}

func TestCloseFlushesPendingAndRejectsLaterAlerts(t *testing.T) {
	f := &fakeBot{}
	c := newTestClient(t, f, func(c *Config) { c.BatchWindow = time.Hour })
	for i := range 3 {
		_ = c.Alert(context.Background(), integrations.Alert{OrderID: fmt.Sprint("pi_", i), Step: "crm"})
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("%d messages before the window ended", n)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 1 || !strings.HasPrefix(reqs[0].body["text"].(string), "<b>orderflow: 3 alerts</b>") {
		t.Fatalf("after Close: %d messages %v", len(reqs), reqs)
	}
	if err := c.Alert(context.Background(), integrations.Alert{OrderID: "pi_9"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Alert after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

var entityRE = regexp.MustCompile(`&(amp|lt|gt|quot);`)

// brokenEntity reports an '&' that does not start a whole entity.
func brokenEntity(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '&' && entityRE.FindStringIndex(s[i:]) == nil || s[i] == '&' && entityRE.FindStringIndex(s[i:])[0] != 0 {
			return true
		}
	}
	return false
}

func TestEscapeCut(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"fits", "a<b", 10, "a&lt;b"},
		{"cut plain", "abcdef", 4, "abc…"},
		{"entity not split", "ab&cd", 5, "ab…"},
		{"entity kept whole", "ab&cd", 8, "ab&amp;…"},
		{"emoji counts two", "😀😀😀", 4, "😀…"},
		{"zero", "abc", 0, ""},
	}
	for _, tt := range tests {
		if got := EscapeCut(tt.in, tt.max); got != tt.want {
			t.Errorf("%s: EscapeCut(%q, %d) = %q, want %q", tt.name, tt.in, tt.max, got, tt.want)
		}
	}
}

func TestLongAlertIsCutTo4096(t *testing.T) {
	for _, text := range []string{
		strings.Repeat("&", 5000),
		strings.Repeat("é<", 3000),
		strings.Repeat("😀", 3000),
		strings.Repeat("x", 4090) + "&&&&&&&&",
	} {
		b := alertbatch.NewSummary()
		b.Add(integrations.Alert{OrderID: "pi_1", Step: "shipping", Text: text})
		b.Groups[0].Reasons[0].Text = text // bypass the per-reason cap to test the message cut
		got := render(b)
		if n := utf16Len(got); n > MaxMessageLen {
			t.Errorf("message is %d units", n)
		}
		if !strings.HasSuffix(got, "…") {
			t.Errorf("cut message does not end with an ellipsis")
		}
		if brokenEntity(got) {
			t.Errorf("message has a broken entity near the end: %q", got[max(0, len(got)-20):])
		}
		if strings.Count(got, "<b>") != strings.Count(got, "</b>") {
			t.Errorf("unbalanced tags")
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Token: "1:x", ChatID: "42"}
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"minimal", func(*Config) {}, true},
		{"channel", func(c *Config) { c.ChatID = "@shop" }, true},
		{"no token", func(c *Config) { c.Token = "" }, false},
		{"token with slash", func(c *Config) { c.Token = "1:x/y" }, false},
		{"no chat", func(c *Config) { c.ChatID = "" }, false},
		{"bad chat", func(c *Config) { c.ChatID = "shop" }, false},
		{"bad base", func(c *Config) { c.BaseURL = "ftp://x" }, false},
		{"negative window", func(c *Config) { c.BatchWindow = -1 }, false},
	}
	for _, tt := range tests {
		c := ok
		tt.mod(&c)
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
	}
}
