package telegram

import (
	"strconv"
	"strings"

	"github.com/orderflow/orderflow/integrations/alertbatch"
)

// line is one line of a message: trusted, balanced markup followed by plain
// text that is escaped when rendered.
type line struct {
	markup string
	plain  string
}

// render builds the HTML message for a batch, within MaxMessageLen.
func render(s *alertbatch.Summary) string {
	var lines []line
	if s.Total == 1 && len(s.Groups) == 1 {
		g := s.Groups[0]
		lines = append(lines, line{markup: "<b>orderflow alert</b> · step <b>" + escape(g.Step) + "</b>"})
		if len(g.Orders) > 0 {
			lines = append(lines, line{markup: "order ", plain: g.Orders[0]})
		}
		if len(g.Reasons) > 0 {
			lines = append(lines, line{plain: g.Reasons[0].Text})
		}
		return fit(lines, MaxMessageLen)
	}
	lines = append(lines, line{markup: "<b>orderflow: " + strconv.Itoa(s.Total) + " alerts</b>"})
	for _, g := range s.Groups {
		lines = append(lines, line{})
		orders := strings.Join(g.Orders, ", ")
		if g.MoreOrders > 0 {
			orders += " and " + strconv.Itoa(g.MoreOrders) + " more"
		}
		lines = append(lines, line{markup: "<b>" + strconv.Itoa(g.Count) + " at step " + escape(g.Step) + "</b>: ", plain: orders})
		for _, r := range g.Reasons {
			l := line{markup: "• ", plain: r.Text}
			if r.Count > 1 {
				l.plain += " (×" + strconv.Itoa(r.Count) + ")"
			}
			lines = append(lines, l)
		}
		if g.OtherReasons > 0 {
			lines = append(lines, line{markup: "• ", plain: strconv.Itoa(g.OtherReasons) + " with other reasons"})
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
