package telegram

import (
	"strconv"
	"strings"

	"github.com/orderflow/orderflow/integrations"
)

// Bounds of one batch's summary; beyond them alerts are only counted.
const (
	maxSteps     = 10  // distinct steps listed; the rest are grouped as "other"
	maxOrders    = 10  // order ids listed per step
	maxReasons   = 3   // distinct reasons listed per step
	maxReasonLen = 300 // characters kept of one reason
)

// batch summarises the alerts collected for one message.
type batch struct {
	total      int
	firstOrder string
	groups     []*group // in order of first appearance
	byStep     map[string]*group
}

type group struct {
	step         string
	count        int
	orders       []string
	moreOrders   int
	reasons      []reason
	otherReasons int
}

type reason struct {
	text  string
	count int
}

func newBatch() *batch { return &batch{byStep: map[string]*group{}} }

func (b *batch) add(a integrations.Alert) {
	b.total++
	if b.firstOrder == "" {
		b.firstOrder = a.OrderID
	}
	step := a.Step
	if step == "" {
		step = "unknown"
	}
	g := b.byStep[step]
	if g == nil {
		if len(b.groups) >= maxSteps {
			step = "other"
			g = b.byStep[step]
		}
		if g == nil {
			g = &group{step: step}
			b.byStep[step] = g
			b.groups = append(b.groups, g)
		}
	}
	g.count++
	switch {
	case a.OrderID == "":
	case len(g.orders) < maxOrders:
		g.orders = append(g.orders, a.OrderID)
	default:
		g.moreOrders++
	}
	text := truncate(strings.TrimSpace(a.Text), maxReasonLen)
	if text == "" {
		return
	}
	for i := range g.reasons {
		if g.reasons[i].text == text {
			g.reasons[i].count++
			return
		}
	}
	if len(g.reasons) < maxReasons {
		g.reasons = append(g.reasons, reason{text: text, count: 1})
	} else {
		g.otherReasons++
	}
}

// line is one line of a message: trusted, balanced markup followed by plain
// text that is escaped when rendered.
type line struct {
	markup string
	plain  string
}

// render builds the HTML message for the batch, within MaxMessageLen.
func (b *batch) render() string {
	var lines []line
	if b.total == 1 {
		g := b.groups[0]
		lines = append(lines, line{markup: "<b>orderflow alert</b> · step <b>" + escape(g.step) + "</b>"})
		if len(g.orders) > 0 {
			lines = append(lines, line{markup: "order ", plain: g.orders[0]})
		}
		if len(g.reasons) > 0 {
			lines = append(lines, line{plain: g.reasons[0].text})
		}
		return fit(lines, MaxMessageLen)
	}
	lines = append(lines, line{markup: "<b>orderflow: " + strconv.Itoa(b.total) + " alerts</b>"})
	for _, g := range b.groups {
		lines = append(lines, line{})
		orders := strings.Join(g.orders, ", ")
		if g.moreOrders > 0 {
			orders += " and " + strconv.Itoa(g.moreOrders) + " more"
		}
		lines = append(lines, line{markup: "<b>" + strconv.Itoa(g.count) + " at step " + escape(g.step) + "</b>: ", plain: orders})
		for _, r := range g.reasons {
			l := line{markup: "• ", plain: r.text}
			if r.count > 1 {
				l.plain += " (×" + strconv.Itoa(r.count) + ")"
			}
			lines = append(lines, l)
		}
		if g.otherReasons > 0 {
			lines = append(lines, line{markup: "• ", plain: strconv.Itoa(g.otherReasons) + " with other reasons"})
		}
	}
	return fit(lines, MaxMessageLen)
}

// fit joins lines with newlines, cutting the first line that does not fit
// inside its plain text and dropping the rest, so no tag or entity is ever
// broken and the result is at most limit UTF-16 units.
func fit(lines []line, limit int) string {
	var sb strings.Builder
	used := 0
	for i, l := range lines {
		sep := ""
		if i > 0 {
			sep = "\n"
		}
		html := sep + l.markup + escape(l.plain)
		if n := utf16Len(html); used+n <= limit {
			sb.WriteString(html)
			used += n
			continue
		}
		rem := limit - used - utf16Len(sep+l.markup)
		if rem >= 1 {
			sb.WriteString(sep + l.markup + EscapeCut(l.plain, rem))
		} else if used < limit {
			sb.WriteString("…")
		}
		break
	}
	return sb.String()
}

// EscapeCut HTML-escapes s for Telegram's HTML parse mode (<, >, &, ")
// and cuts the result to at most max UTF-16 units, ending in "…" when cut.
// An entity such as &amp; is never split.
func EscapeCut(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if e := escape(s); utf16Len(e) <= max {
		return e
	}
	var sb strings.Builder
	used := 0
	for _, r := range s {
		piece := escapeRune(r)
		n := utf16Len(piece)
		if used+n > max-1 { // keep one unit for the ellipsis
			break
		}
		sb.WriteString(piece)
		used += n
	}
	sb.WriteString("…")
	return sb.String()
}

func escape(s string) string {
	return htmlEscaper.Replace(s)
}

var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")

func escapeRune(r rune) string {
	switch r {
	case '&':
		return "&amp;"
	case '<':
		return "&lt;"
	case '>':
		return "&gt;"
	case '"':
		return "&quot;"
	}
	return string(r)
}

// utf16Len counts s the way Telegram counts message length.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}
