package sim

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// slackSim serves Slack's incoming webhooks: POST
// /services/T…/B…/<token> with JSON {"text": …} (or {"blocks": […]}, or the
// form field payload=<JSON>). Success is 200 with the body "ok"; errors are
// Slack's plain strings (invalid_payload, no_text, no_service). A text over
// 40,000 characters is truncated, as Slack does, not refused. Every
// accepted message is an alert created; like Telegram's, alerts are never
// duplicates.
type slackSim struct {
	s *Server
}

// slackMaxText is where Slack truncates a message's text.
const slackMaxText = 40000

var (
	slackTeam    = regexp.MustCompile(`^T[A-Z0-9]+$`)
	slackChannel = regexp.MustCompile(`^B[A-Z0-9]+$`)
	slackToken   = regexp.MustCompile(`^[A-Za-z0-9]+$`)
)

func slackErrors(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if status >= 500 {
		slackText(w, status, "rollup_error")
		return
	}
	slackText(w, status, "invalid_payload")
}

func slackText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	_, _ = fmt.Fprint(w, text)
}

func (sl *slackSim) post(w http.ResponseWriter, r *http.Request) {
	if !slackTeam.MatchString(r.PathValue("team")) || !slackChannel.MatchString(r.PathValue("channel")) || !slackToken.MatchString(r.PathValue("token")) {
		slackText(w, http.StatusNotFound, "no_service")
		return
	}
	raw, err := readBody(w, r)
	if err != nil {
		slackText(w, http.StatusBadRequest, "invalid_payload")
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(raw))
		if err != nil || form.Get("payload") == "" {
			slackText(w, http.StatusBadRequest, "invalid_payload")
			return
		}
		raw = []byte(form.Get("payload"))
	}
	var msg struct {
		Text   *string           `json:"text"`
		Blocks []json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(raw, &msg); err != nil {
		slackText(w, http.StatusBadRequest, "invalid_payload")
		return
	}
	text := ""
	if msg.Text != nil {
		text = *msg.Text
	}
	if strings.TrimSpace(text) == "" && len(msg.Blocks) == 0 {
		slackText(w, http.StatusBadRequest, "no_text")
		return
	}
	if utf8.RuneCountInString(text) > slackMaxText {
		text = string([]rune(text)[:slackMaxText])
	}
	id := fmt.Sprintf("%d", nextID())
	file := sl.s.outbox.write(StepSlack, id+".txt", []byte(text+"\n"))
	sl.s.stats.created(StepSlack, "alert", "")
	sl.s.outbox.record(entry{Time: nowUTC(), Step: StepSlack, Kind: "alert", ID: id, Action: "create", File: file})
	slackText(w, http.StatusOK, "ok")
}
