package sim

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

const slackHook = "/services/T0SHOP/B0OPS/abcDEF123"

var jsonHdr = map[string]string{"Content-Type": "application/json"}

func TestSlackIncomingWebhook(t *testing.T) {
	dir := t.TempDir()
	s, ts := newTest(t, Config{DataDir: dir})
	r := call(t, "POST", ts.URL+slackHook, jsonHdr, `{"text":"*orderflow alert* · step *shipping*"}`)
	wantStatus(t, r, 200)
	if string(r.body) != "ok" {
		t.Fatalf("body %q, want ok", r.body)
	}
	// The form variant, and blocks without text.
	form := url.Values{"payload": {`{"blocks":[{"type":"section","text":{"type":"mrkdwn","text":"x"}}]}`}}.Encode()
	wantStatus(t, call(t, "POST", ts.URL+slackHook, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, form), 200)
	// Longer than 40,000 characters: truncated, not refused.
	wantStatus(t, call(t, "POST", ts.URL+slackHook, jsonHdr, `{"text":"`+strings.Repeat("é", 40005)+`"}`), 200)

	for _, tc := range []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"bad json", slackHook, `{"text":`, 400, "invalid_payload"},
		{"no text", slackHook, `{"text":"  "}`, 400, "no_text"},
		{"unknown hook", "/services/X/B0OPS/abc", `{"text":"x"}`, 404, "no_service"},
		{"bad token", "/services/T0SHOP/B0OPS/a-b", `{"text":"x"}`, 404, "no_service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, "POST", ts.URL+tc.path, jsonHdr, tc.body)
			wantStatus(t, r, tc.status)
			if string(r.body) != tc.want {
				t.Fatalf("body %q, want %q", r.body, tc.want)
			}
		})
	}
	wantStats(t, s, StepSlack, StepStats{Requests: 7, Created: 3})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "outbox", "slack", "*.txt"))
	if len(files) != 3 {
		t.Fatalf("%d message files, want 3", len(files))
	}
	longest := 0
	for _, f := range files {
		b, _ := os.ReadFile(f)
		longest = max(longest, utf8.RuneCount(b)-1) // without the newline
	}
	if longest != 40000 {
		t.Fatalf("longest stored text %d characters, want 40000", longest)
	}
}

func TestSlackFaults(t *testing.T) {
	s, ts := newTest(t, Config{})
	for _, tc := range []struct {
		mode   Mode
		status int
		body   string
	}{{ModeUnavailable, 503, "rollup_error"}, {ModeReject, 400, "invalid_payload"}} {
		if err := s.SetFault(Fault{Step: StepSlack, Mode: tc.mode}); err != nil {
			t.Fatal(err)
		}
		r := call(t, "POST", ts.URL+slackHook, jsonHdr, `{"text":"x"}`)
		wantStatus(t, r, tc.status)
		if string(r.body) != tc.body {
			t.Fatalf("%s: body %q, want %q", tc.mode, r.body, tc.body)
		}
	}
	s.ClearFaults(StepSlack)
	wantStatus(t, call(t, "POST", ts.URL+slackHook, jsonHdr, `{"text":"x"}`), 200)
}
