package sim

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTelegramSendMessage(t *testing.T) {
	dir := t.TempDir()
	s, ts := newTest(t, Config{DataDir: dir})
	endpoint := ts.URL + "/bot123456:ABC-def_1/sendMessage"
	r := call(t, "POST", endpoint, map[string]string{"Content-Type": "application/json"},
		`{"chat_id":-100123,"text":"<b>shipping</b> failed for OF-1 &amp; 2 more","parse_mode":"HTML"}`)
	wantStatus(t, r, 200)
	m := r.json(t)
	if m["ok"] != true || path(m, "result", "chat", "id") != float64(-100123) || path(m, "result", "message_id") == nil ||
		path(m, "result", "text") != "<b>shipping</b> failed for OF-1 &amp; 2 more" {
		t.Fatalf("sendMessage: %s", r.body)
	}
	// Form body, channel name, method name in another case.
	r = call(t, "POST", ts.URL+"/bot123456:ABC-def_1/sendmessage", map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		url.Values{"chat_id": {"@orderflow_ops"}, "text": {"plain alert"}}.Encode())
	wantStatus(t, r, 200)
	if path(r.json(t), "result", "chat", "username") != "orderflow_ops" {
		t.Fatalf("channel chat: %s", r.body)
	}
	wantStats(t, s, StepAlert, StepStats{Requests: 2, Created: 2})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	txts, _ := filepath.Glob(filepath.Join(dir, "outbox", "alert", "*.txt"))
	if len(txts) != 2 {
		t.Fatalf("%d alert files, want 2", len(txts))
	}
	b, _ := os.ReadFile(filepath.Join(dir, "outbox", "alert.jsonl"))
	if strings.Count(string(b), "\n") != 2 {
		t.Fatalf("alert.jsonl: %s", b)
	}
}

func TestTelegramErrors(t *testing.T) {
	s, ts := newTest(t, Config{})
	ok := "/bot123:abc/sendMessage"
	for _, tc := range []struct {
		name, path, body string
		status           int
		desc             string
	}{
		{"bad token", "/botnope/sendMessage", `{"chat_id":1,"text":"x"}`, 401, "Unauthorized"},
		{"no chat", ok, `{"text":"x"}`, 400, "chat_id is empty"},
		{"no text", ok, `{"chat_id":1,"text":" "}`, 400, "message text is empty"},
		{"too long", ok, `{"chat_id":1,"text":"` + strings.Repeat("ä", 4097) + `"}`, 400, "message is too long"},
		{"unescaped html", ok, `{"chat_id":1,"text":"a < b","parse_mode":"HTML"}`, 400, "can't parse entities"},
		{"unsupported tag", ok, `{"chat_id":1,"text":"<div>x</div>","parse_mode":"HTML"}`, 400, "can't parse entities"},
		{"bare ampersand", ok, `{"chat_id":1,"text":"R&D","parse_mode":"HTML"}`, 400, "can't parse entities"},
		{"bad json", ok, `{"chat_id":`, 400, "can't parse JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, "POST", ts.URL+tc.path, map[string]string{"Content-Type": "application/json"}, tc.body)
			wantStatus(t, r, tc.status)
			m := r.json(t)
			if m["ok"] != false || m["error_code"] != float64(tc.status) || !strings.Contains(m["description"].(string), tc.desc) {
				t.Fatalf("error body: %s", r.body)
			}
		})
	}
	// Exactly 4096 characters is allowed.
	r := call(t, "POST", ts.URL+ok, map[string]string{"Content-Type": "application/json"}, `{"chat_id":1,"text":"`+strings.Repeat("ä", 4096)+`"}`)
	wantStatus(t, r, 200)
	wantStats(t, s, StepAlert, StepStats{Requests: 9, Created: 1})
}
