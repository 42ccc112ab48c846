package slack

import (
	"strconv"
	"strings"

	"github.com/orderflow/orderflow/integrations/alertbatch"
)

// line is one line of a message: trusted mrkdwn followed by plain text that
// is escaped when rendered.
type line struct {
	markup string
	plain  string
}

// Render builds the mrkdwn message for a batch, at most MaxMessageLen
// characters: one alert as "*orderflow alert* · step *x*", the order and
// the reason; several as a count, then per step the orders and reasons.
func Render(s *alertbatch.Summary) string {
	var lines []line
	if s.Total == 1 && len(s.Groups) == 1 {
		g := s.Groups[0]
		lines = append(lines, line{markup: "*orderflow alert* · step *" + Escape(g.Step) + "*"})
		if len(g.Orders) > 0 {
			lines = append(lines, line{markup: "order ", plain: g.Orders[0]})
		}
		if len(g.Reasons) > 0 {
			lines = append(lines, line{plain: g.Reasons[0].Text})
		}
		return fit(lines, MaxMessageLen)
	}
	lines = append(lines, line{markup: "*orderflow: " + strconv.Itoa(s.Total) + " alerts*"})
	for _, g := range s.Groups {
		lines = append(lines, line{})
		orders := strings.Join(g.Orders, ", ")
		if g.MoreOrders > 0 {
			orders += " and " + strconv.Itoa(g.MoreOrders) + " more"
		}
		lines = append(lines, line{markup: "*" + strconv.Itoa(g.Count) + " at step " + Escape(g.Step) + "*: ", plain: orders})
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
// inside its plain text and dropping the rest, so no entity is split and
// the result is at most limit characters.
func fit(lines []line, limit int) string {
	var sb strings.Builder
	used := 0
	for i, l := range lines {
		sep := ""
		if i > 0 {
			sep = "\n"
		}
		text := sep + l.markup + Escape(l.plain)
		if n := charLen(text); used+n <= limit {
			sb.WriteString(text)
			used += n
			continue
		}
		if rem := limit - used - charLen(sep+l.markup); rem >= 1 {
			sb.WriteString(sep + l.markup + EscapeCut(l.plain, rem))
		} else if used < limit {
			sb.WriteString("…")
		}
		break
	}
	return sb.String()
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Escape escapes the three characters Slack's mrkdwn gives a meaning to,
// so "<!channel>" or "<https://x|y>" in an alert text stays plain text.
func Escape(s string) string { return escaper.Replace(s) }

// EscapeCut escapes s and cuts the result to at most max characters,
// ending in "…" when cut; an entity such as &amp; is never split.
func EscapeCut(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if e := Escape(s); charLen(e) <= max {
		return e
	}
	var sb strings.Builder
	used := 0
	for _, r := range s {
		piece := Escape(string(r))
		n := charLen(piece)
		if used+n > max-1 { // keep one for the ellipsis
			break
		}
		sb.WriteString(piece)
		used += n
	}
	sb.WriteString("…")
	return sb.String()
}

// charLen counts UTF-16 units: never fewer than the characters Slack
// counts, whichever way it counts them.
func charLen(s string) int {
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
