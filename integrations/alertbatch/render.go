package alertbatch

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// Markup is a channel's message syntax: how trusted text is made bold and
// how one character of plain text is escaped. Lengths are counted in
// UTF-16 units, never fewer than the characters Slack or Telegram count.
type Markup struct {
	// Bold wraps text that is already markup.
	Bold func(markup string) string
	// Escapes are the characters of plain text that are written as
	// entities; the rest are written as they are.
	Escapes map[rune]string
}

func (m Markup) escapeRune(r rune) string {
	if e, ok := m.Escapes[r]; ok {
		return e
	}
	return string(r)
}

// Escape escapes plain text.
func (m Markup) Escape(s string) string {
	var sb strings.Builder
	for _, r := range s {
		sb.WriteString(m.escapeRune(r))
	}
	return sb.String()
}

// EscapeCut escapes s and cuts the result to at most max UTF-16 units,
// ending in "…" when cut. An escaped character such as &amp; is never
// split.
func (m Markup) EscapeCut(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if e := m.Escape(s); UTF16Len(e) <= max {
		return e
	}
	var sb strings.Builder
	used := 0
	for _, r := range s {
		piece := m.escapeRune(r)
		n := UTF16Len(piece)
		if used+n > max-1 { // keep one unit for the ellipsis
			break
		}
		sb.WriteString(piece)
		used += n
	}
	sb.WriteString("…")
	return sb.String()
}

// line is one line of a message: trusted, balanced markup followed by plain
// text that is escaped when rendered.
type line struct {
	markup string
	plain  string
}

// Render builds the message for a batch in m, at most limit UTF-16 units:
// one alert as "orderflow alert · step x" (bold parts in m's bold; no step
// part for an alert about the order itself), the order and the reason;
// several as a count, then per step the orders and reasons.
func Render(s *Summary, m Markup, limit int) string {
	var lines []line
	if s.Total == 1 && len(s.Groups) == 1 {
		g := s.Groups[0]
		title := m.Bold("orderflow alert")
		if g.Step != "" {
			title += " · step " + m.Bold(m.Escape(g.Step))
		}
		lines = append(lines, line{markup: title})
		if len(g.Orders) > 0 {
			lines = append(lines, line{markup: "order ", plain: g.Orders[0]})
		}
		if len(g.Reasons) > 0 {
			lines = append(lines, line{plain: g.Reasons[0].Text})
		}
		return m.fit(lines, limit)
	}
	lines = append(lines, line{markup: m.Bold("orderflow: " + strconv.Itoa(s.Total) + " alerts")})
	for _, g := range s.Groups {
		lines = append(lines, line{})
		named := make([]string, len(g.Orders))
		for i, n := range g.Orders {
			named[i] = n
			if also := g.Also[n]; len(also) > 0 {
				steps := make([]string, len(also))
				for j, st := range also {
					steps[j] = stepLabel(st)
				}
				named[i] += " (also " + strings.Join(steps, ", ") + ")"
			}
		}
		orders := strings.Join(named, ", ")
		if g.MoreOrders > 0 {
			orders += " and " + strconv.Itoa(g.MoreOrders) + " more"
		}
		if g.Earlier > 0 {
			above := strconv.Itoa(g.Earlier) + " orders named above"
			if g.Earlier == 1 {
				above = "1 order named above"
			}
			if orders != "" {
				orders += "; "
			}
			orders += above
		}
		head := strconv.Itoa(g.Count) + " at step " + m.Escape(g.Step)
		if g.Step == "" {
			head = strconv.Itoa(g.Count) + " about orders"
		}
		lines = append(lines, line{markup: m.Bold(head) + ": ", plain: orders})
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
	return m.fit(lines, limit)
}

// stepLabel names a step in an order's "also" list.
func stepLabel(step string) string {
	if step == "" {
		return "about the order"
	}
	return "at step " + step
}

// fit joins lines with newlines, cutting the first line that does not fit
// inside its plain text and dropping the rest, so no markup or escape is
// ever broken and the result is at most limit UTF-16 units.
func (m Markup) fit(lines []line, limit int) string {
	var sb strings.Builder
	used := 0
	for i, l := range lines {
		sep := ""
		if i > 0 {
			sep = "\n"
		}
		text := sep + l.markup + m.Escape(l.plain)
		if n := UTF16Len(text); used+n <= limit {
			sb.WriteString(text)
			used += n
			continue
		}
		if rem := limit - used - UTF16Len(sep+l.markup); rem >= 1 {
			sb.WriteString(sep + l.markup + m.EscapeCut(l.plain, rem))
		} else if used < limit {
			sb.WriteString("…")
		}
		break
	}
	return sb.String()
}

// UTF16Len counts s in UTF-16 units, the way Telegram counts a message's
// length and never fewer than the characters Slack counts.
func UTF16Len(s string) int {
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

// SendWithRetry calls send until it succeeds, fails permanently or has
// failed maxAttempts times, waiting Retry-After on a 429 and an
// exponential backoff from one second (at most 30 s) otherwise. It returns
// the last error.
func SendWithRetry(ctx context.Context, log *slog.Logger, maxAttempts int, send func(context.Context) error) error {
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		err := send(ctx)
		if err == nil || integrations.IsPermanent(err) || attempt >= maxAttempts {
			return err
		}
		wait := backoff
		if ra, ok := integrations.RetryAfterOf(err); ok {
			wait = ra
		} else if backoff < 30*time.Second {
			backoff *= 2
		}
		log.Warn("alert message failed, retrying", "attempt", attempt, "wait", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}
