package sim

import (
	"bytes"
	"mime/multipart"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func multipartBody(t *testing.T, fields [][2]string) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range fields {
		if err := w.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return w.FormDataContentType(), b.Bytes()
}

func TestMailgunSend(t *testing.T) {
	dir := t.TempDir()
	s, ts := newTest(t, Config{DataDir: dir})
	endpoint := ts.URL + "/v3/mg.example.com/messages"
	ct, body := multipartBody(t, [][2]string{
		{"from", "Shop <shop@example.com>"}, {"to", "Aino Mäkinen <aino@example.fi>"},
		{"subject", "Tilausvahvistus OF-ABC"}, {"template", "order-confirmation"},
		{"t:variables", `{"locale":"fi-FI","tracking_number":"00373500000000000001"}`},
		{"h:Message-Id", "<OF-ABC.confirmation@mg.example.com>"},
		{"h:X-Mailgun-Variables", `{"note":"` + strings.Repeat("Äiti ", 400) + `"}`},
	})
	hdr := map[string]string{"Content-Type": ct, "Authorization": "Basic YXBpOmtleS0xMjM="} // api:key-123
	r := call(t, "POST", endpoint, hdr, body)
	wantStatus(t, r, 200)
	m := r.json(t)
	if m["message"] != "Queued. Thank you." || m["id"] != "<OF-ABC.confirmation@mg.example.com>" {
		t.Fatalf("send: %s", r.body)
	}
	// Same Message-Id again: Mailgun sends it again, a duplicate.
	r = call(t, "POST", endpoint, hdr, body)
	wantStatus(t, r, 200)
	wantStats(t, s, StepEmail, StepStats{Requests: 2, Created: 2, DuplicateCreates: 1})

	// URL-encoded text mail without a Message-Id gets a generated id.
	form := url.Values{"from": {"shop@example.com"}, "to": {"a@example.se"}, "subject": {"Hej"}, "text": {"Tack för din beställning"}}
	r = call(t, "POST", endpoint, map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": hdr["Authorization"]}, form.Encode())
	wantStatus(t, r, 200)
	if id, _ := r.json(t)["id"].(string); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@mg.example.com>") {
		t.Fatalf("generated id: %s", r.body)
	}
	wantStats(t, s, StepEmail, StepStats{Requests: 3, Created: 3, DuplicateCreates: 1})

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	emls, _ := filepath.Glob(filepath.Join(dir, "outbox", "email", "*.eml"))
	if len(emls) != 3 {
		t.Fatalf("%d .eml files, want 3", len(emls))
	}
	var all string
	for _, f := range emls {
		b, _ := os.ReadFile(f)
		all += string(b)
		for _, line := range strings.Split(string(b), "\r\n") {
			if len(line) > 998 {
				t.Fatalf("%s has a line of %d bytes", filepath.Base(f), len(line))
			}
		}
	}
	for _, want := range []string{"Message-Id: <OF-ABC.confirmation@mg.example.com>", `"tracking_number": "00373500000000000001"`, "Tack för din beställning", "order-confirmation"} {
		if !strings.Contains(all, want) {
			t.Errorf("emails miss %q", want)
		}
	}
}

func TestMailgunErrors(t *testing.T) {
	s, ts := newTest(t, Config{})
	endpoint := ts.URL + "/v3/mg.example.com/messages"
	auth := "Basic YXBpOmtleS0xMjM="
	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	for _, tc := range []struct {
		name, auth, ct, body string
		status               int
		msg                  string
	}{
		{"no auth", "", "application/x-www-form-urlencoded", form("to", "a@b.c", "from", "s@b.c", "text", "x"), 401, "Invalid private key"},
		{"wrong user", "Basic dXNlcjprZXk=", "application/x-www-form-urlencoded", form("to", "a@b.c", "from", "s@b.c", "text", "x"), 401, "Invalid private key"},
		{"json body", auth, "application/json", `{"to":"a@b.c"}`, 400, "expected multipart"},
		{"no to", auth, "application/x-www-form-urlencoded", form("from", "s@b.c", "text", "x"), 400, "'to' parameter is missing"},
		{"bad to", auth, "application/x-www-form-urlencoded", form("to", "not an address", "from", "s@b.c", "text", "x"), 400, "not a valid address"},
		{"no body", auth, "application/x-www-form-urlencoded", form("to", "a@b.c", "from", "s@b.c"), 400, "Need at least one of"},
		{"no from", auth, "application/x-www-form-urlencoded", form("to", "a@b.c", "text", "x"), 400, "'from' parameter is missing"},
		{"bad variables", auth, "application/x-www-form-urlencoded", form("to", "a@b.c", "template", "t", "t:variables", "{"), 400, "not a valid JSON"},
		{"options over 16 KB", auth, "application/x-www-form-urlencoded", form("to", "a@b.c", "template", "t", "v:big", strings.Repeat("x", 17<<10)), 400, "16 KB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"Content-Type": tc.ct}
			if tc.auth != "" {
				h["Authorization"] = tc.auth
			}
			r := call(t, "POST", endpoint, h, tc.body)
			wantStatus(t, r, tc.status)
			if msg, _ := r.json(t)["message"].(string); !strings.Contains(msg, tc.msg) {
				t.Fatalf("message %q, want %q", msg, tc.msg)
			}
		})
	}
	if got := s.Stats().Steps[StepEmail].Created; got != 0 {
		t.Fatalf("refused sends created %d messages", got)
	}
}
