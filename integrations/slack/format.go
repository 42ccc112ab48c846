package slack

import (
	"github.com/orderflow/orderflow/integrations/alertbatch"
)

// mrkdwn is Slack's message syntax: *bold*, and &, < and > escaped (the
// three characters mrkdwn gives a meaning to), so "<!channel>" or
// "<https://x|y>" in an alert text stays plain text.
var mrkdwn = alertbatch.Markup{
	Bold:    func(s string) string { return "*" + s + "*" },
	Escapes: map[rune]string{'&': "&amp;", '<': "&lt;", '>': "&gt;"},
}

// Render builds the mrkdwn message for a batch, at most MaxMessageLen
// characters: one alert as "*orderflow alert* · step *x*", the order and
// the reason; several as a count, then per step the orders and reasons.
func Render(s *alertbatch.Summary) string { return alertbatch.Render(s, mrkdwn, MaxMessageLen) }

// Escape escapes the three characters Slack's mrkdwn gives a meaning to.
func Escape(s string) string { return mrkdwn.Escape(s) }

// EscapeCut escapes s and cuts the result to at most max characters,
// ending in "…" when cut; an entity such as &amp; is never split.
func EscapeCut(s string, max int) string { return mrkdwn.EscapeCut(s, max) }

// charLen counts UTF-16 units: never fewer than the characters Slack
// counts, whichever way it counts them.
func charLen(s string) int { return alertbatch.UTF16Len(s) }
