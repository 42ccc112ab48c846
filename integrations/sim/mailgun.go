package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/mail"
	"sort"
	"strings"
	"sync"
)

// mailgunSim serves Mailgun's POST /v3/{domain}/messages, multipart or
// urlencoded, with basic auth "api:<key>". Mailgun has no idempotency, so
// every accepted message counts as created; a second one with the same
// h:Message-Id is a duplicate. The rendered message is written as .eml.
type mailgunSim struct {
	s    *Server
	sent sync.Map // Message-Id without brackets → Mailgun's id, for the events look-up
}

func newMailgunSim(s *Server) *mailgunSim { return &mailgunSim{s: s} }

func mailgunErrors(w http.ResponseWriter, r *http.Request, status int, msg string) {
	writeJSON(w, status, obj{"message": msg})
}

func (mg *mailgunSim) send(w http.ResponseWriter, r *http.Request) {
	user, key, ok := r.BasicAuth()
	if !ok || user != "api" || key == "" {
		writeJSON(w, http.StatusUnauthorized, obj{"message": "Invalid private key"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var err error
	switch ct {
	case "multipart/form-data":
		err = r.ParseMultipartForm(maxBody)
	case "application/x-www-form-urlencoded":
		err = r.ParseForm()
	default:
		writeJSON(w, http.StatusBadRequest, obj{"message": "expected multipart/form-data or application/x-www-form-urlencoded"})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, obj{"message": "the request body could not be parsed"})
		return
	}
	f := r.PostForm
	if msg := mailgunValidate(f); msg != "" {
		writeJSON(w, http.StatusBadRequest, obj{"message": msg})
		return
	}
	domain := r.PathValue("domain")
	var opts int
	for k, vs := range f {
		if len(k) > 2 && k[1] == ':' && strings.ContainsRune("ohvt", rune(k[0])) {
			for _, v := range vs {
				opts += len(k) + len(v)
			}
		}
	}
	if opts > 16<<10 {
		writeJSON(w, http.StatusBadRequest, obj{"message": "o:, h:, v: and t: options exceed 16 KB"})
		return
	}

	msgID := strings.Trim(f.Get("h:Message-Id"), "<> ")
	order := msgID
	if msgID == "" {
		msgID = fmt.Sprintf("%s.%d@%s", nowUTC().Format("20060102150405"), nextID(), domain)
	}
	id := "<" + msgID + ">"
	eml := renderEML(f, id)
	file := mg.s.outbox.write(StepEmail, fmt.Sprintf("%d-%s.eml", nextID(), msgID), eml)
	dup := mg.s.stats.created(StepEmail, "message", order)
	mg.sent.Store(msgID, id)
	mg.s.records.add(jrec{K: recMailgunMsg, A: msgID, B: id})
	mg.s.outbox.record(entry{Time: nowUTC(), Step: StepEmail, Order: order, Kind: "message", ID: id, Action: "create", Duplicate: dup, File: file})
	writeJSON(w, http.StatusOK, obj{"id": id, "message": "Queued. Thank you."})
}

// events serves the events look-up by Message-Id
// (GET /v3/{domain}/events?message-id=…&event=accepted): one "accepted" item
// per message sent with that id, none otherwise.
func (mg *mailgunSim) events(w http.ResponseWriter, r *http.Request) {
	if user, key, ok := r.BasicAuth(); !ok || user != "api" || key == "" {
		writeJSON(w, http.StatusUnauthorized, obj{"message": "Invalid private key"})
		return
	}
	items := []any{}
	want := strings.Trim(r.URL.Query().Get("message-id"), "<> ")
	if id, ok := mg.sent.Load(want); ok && want != "" {
		items = append(items, obj{"event": "accepted", "id": fmt.Sprintf("ev%d", nextID()),
			"timestamp": float64(nowUTC().Unix()),
			"message":   obj{"headers": obj{"message-id": strings.Trim(id.(string), "<>")}}})
	}
	writeJSON(w, http.StatusOK, obj{"items": items, "paging": obj{}})
}

// mailgunValidate returns Mailgun's 400 message for a form it would refuse.
func mailgunValidate(f map[string][]string) string {
	get := func(k string) string {
		if v := f[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	if len(f["to"]) == 0 || get("to") == "" {
		return "'to' parameter is missing"
	}
	for _, to := range f["to"] {
		if _, err := mail.ParseAddressList(to); err != nil {
			return "'to' parameter is not a valid address. please check documentation"
		}
	}
	template := get("template")
	if get("text") == "" && get("html") == "" && get("amp-html") == "" && template == "" {
		return "Need at least one of 'text', 'html' or 'template' parameters specified"
	}
	if template == "" && get("from") == "" {
		return "'from' parameter is missing"
	}
	if from := get("from"); from != "" {
		if _, err := mail.ParseAddress(from); err != nil {
			return "'from' parameter is not a valid address. please check documentation"
		}
	}
	if v := get("t:variables"); v != "" && !json.Valid([]byte(v)) {
		return "'t:variables' parameter is not a valid JSON"
	}
	if v := get("h:X-Mailgun-Variables"); v != "" && !json.Valid([]byte(v)) {
		return "'h:X-Mailgun-Variables' parameter is not a valid JSON"
	}
	return ""
}

// renderEML writes the message a person would open: headers, and the text
// or HTML body; a template send shows the template name and its variables,
// since the template itself lives at Mailgun.
func renderEML(f map[string][]string, id string) []byte {
	get := func(k string) string {
		if v := f[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	var b bytes.Buffer
	hdr := func(k, v string) {
		if v != "" {
			// Fold between encoded words so no line passes RFC 5322's limit.
			enc := strings.ReplaceAll(mime.QEncoding.Encode("utf-8", v), "?= =?", "?=\r\n =?")
			fmt.Fprintf(&b, "%s: %s\r\n", k, enc)
		}
	}
	hdr("From", get("from"))
	hdr("To", strings.Join(f["to"], ", "))
	hdr("Cc", strings.Join(f["cc"], ", "))
	subject := get("subject")
	if subject == "" && get("template") != "" {
		// The subject lives in the template at Mailgun; the simulator shows
		// what a typical confirmation template says.
		subject = "Order confirmation"
		var v struct {
			OrderNumber string `json:"order_number"`
		}
		vars := get("t:variables")
		if vars == "" {
			vars = get("h:X-Mailgun-Variables")
		}
		if json.Unmarshal([]byte(vars), &v) == nil && v.OrderNumber != "" {
			subject = "Your order " + v.OrderNumber
		}
	}
	hdr("Subject", subject)
	fmt.Fprintf(&b, "Message-Id: %s\r\nDate: %s\r\n", id, nowUTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	var extra []string
	for k := range f {
		if strings.HasPrefix(k, "h:") && k != "h:Message-Id" {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		hdr(strings.TrimPrefix(k, "h:"), get(k))
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	switch {
	case get("html") != "":
		b.WriteString("Content-Type: text/html; charset=utf-8\r\n\r\n" + get("html"))
	case get("text") != "":
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n" + get("text"))
	default:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
		fmt.Fprintf(&b, "[Mailgun template %q", get("template"))
		if v := get("t:version"); v != "" {
			fmt.Fprintf(&b, ", version %q", v)
		}
		b.WriteString("]\r\n")
		vars := get("t:variables")
		if vars == "" {
			vars = get("h:X-Mailgun-Variables")
		}
		var pretty bytes.Buffer
		if vars != "" && json.Indent(&pretty, []byte(vars), "", "  ") == nil {
			b.WriteString("\r\nVariables:\r\n")
			b.Write(pretty.Bytes())
			b.WriteString("\r\n")
		}
	}
	return b.Bytes()
}
