package telegram

import (
	"github.com/orderflow/orderflow/integrations/alertbatch"
)

// html is Telegram's HTML parse mode: <b>bold</b>, and <, >, & and "
// escaped.
var html = alertbatch.Markup{
	Bold:    func(s string) string { return "<b>" + s + "</b>" },
	Escapes: map[rune]string{'&': "&amp;", '<': "&lt;", '>': "&gt;", '"': "&quot;"},
}

// render builds the HTML message for a batch, within MaxMessageLen.
func render(s *alertbatch.Summary) string { return alertbatch.Render(s, html, MaxMessageLen) }

// EscapeCut HTML-escapes s for Telegram's HTML parse mode (<, >, &, ")
// and cuts the result to at most max UTF-16 units, ending in "…" when cut.
// An entity such as &amp; is never split.
func EscapeCut(s string, max int) string { return html.EscapeCut(s, max) }

// utf16Len counts s the way Telegram counts message length.
func utf16Len(s string) int { return alertbatch.UTF16Len(s) }
