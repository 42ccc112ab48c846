package dlq

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
)

// DefaultErrorWidth is how many characters of the error a table shows.
const DefaultErrorWidth = 60

// Cut shortens s to at most width runes, ending in "…" when cut, and puts
// it on one line.
func Cut(s string, width int) string {
	s = strings.Join(strings.Fields(s), " ")
	if width <= 0 || utf8.RuneCountInString(s) <= width {
		return s
	}
	if width == 1 {
		return "…"
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteTable writes dead letters as an aligned table, the error cut to
// errWidth characters.
func WriteTable(w io.Writer, ds []DeadLetter, errWidth int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "P/OFFSET\tORDER\tSTEP\tCLASS\tATTEMPTS\tLAST ERROR\tFAILED AT\tREPLAYS")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\n",
			d.Source(), orDash(d.Key), orDash(d.Step), orDash(d.Class), d.Attempts,
			orDash(Cut(d.Error, errWidth)), formatTime(d.FailedAt()), d.ReplayCount)
	}
	return tw.Flush()
}

// Counts is how many dead letters there are by step and by class.
type Counts struct {
	Total   int            `json:"total"`
	ByStep  map[string]int `json:"by_step"`
	ByClass map[string]int `json:"by_class"`
}

// Count counts dead letters by step and class ("-" when the header is
// missing).
func Count(ds []DeadLetter) Counts {
	c := Counts{Total: len(ds), ByStep: map[string]int{}, ByClass: map[string]int{}}
	for _, d := range ds {
		c.ByStep[orDash(d.Step)]++
		c.ByClass[orDash(d.Class)]++
	}
	return c
}

// WriteCounts writes the one-paragraph summary under a table, steps in chain
// order and classes in topics.Classes order, others after them by name.
func WriteCounts(w io.Writer, c Counts) {
	fmt.Fprintf(w, "%d dead letter(s)\n", c.Total)
	if c.Total == 0 {
		return
	}
	fmt.Fprintf(w, "by step:  %s\n", joinCounts(c.ByStep, processor.Chain))
	fmt.Fprintf(w, "by class: %s\n", joinCounts(c.ByClass, topics.Classes))
}

func joinCounts(m map[string]int, order []string) string {
	var parts []string
	for _, k := range order {
		if n := m[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(order, k) {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}

// Entry is the machine form of a dead letter in `dlq list --json`. It holds
// no customer data: the event itself is left out.
type Entry struct {
	Source            string     `json:"source"`
	Partition         int32      `json:"partition"`
	Offset            int64      `json:"offset"`
	OrderID           string     `json:"order_id"`
	EventID           string     `json:"event_id,omitempty"`
	EventType         string     `json:"event_type,omitempty"`
	Step              string     `json:"step"`
	Class             string     `json:"class"`
	Error             string     `json:"error"`
	Attempts          int        `json:"attempts"`
	FirstFailure      *time.Time `json:"first_failure,omitempty"`
	LastFailure       *time.Time `json:"last_failure,omitempty"`
	ReplayCount       int        `json:"replay_count"`
	OriginalTopic     string     `json:"original_topic,omitempty"`
	OriginalPartition int32      `json:"original_partition"`
	OriginalOffset    int64      `json:"original_offset"`
	WrittenAt         time.Time  `json:"written_at"`
	// Status is open, replayed, resolved or erased (LetterStatus) when
	// known.
	Status string `json:"status,omitempty"`
}

// Entry returns d's machine form.
func (d DeadLetter) Entry() Entry {
	j := Entry{
		Source: d.Source(), Partition: d.Partition, Offset: d.Offset, OrderID: d.Key,
		Step: d.Step, Class: d.Class, Error: d.Error, Attempts: d.Attempts, ReplayCount: d.ReplayCount,
		OriginalTopic: d.OriginalTopic, OriginalPartition: d.OriginalPartition, OriginalOffset: d.OriginalOffset,
		WrittenAt: d.Timestamp.UTC(),
	}
	j.EventID, _ = d.Header(topics.HeaderEventID)
	j.EventType = d.EventType()
	if !d.FirstFailure.IsZero() {
		t := d.FirstFailure.UTC()
		j.FirstFailure = &t
	}
	if !d.LastFailure.IsZero() {
		t := d.LastFailure.UTC()
		j.LastFailure = &t
	}
	return j
}

// WriteShow writes one dead letter for a person: the fields read from its
// headers, every header, and the event decoded, customer data masked unless
// reveal.
func WriteShow(w io.Writer, dlqTopic string, d DeadLetter, reveal bool) {
	fmt.Fprintf(w, "dead letter %s on %s, written %s\n", d.Source(), dlqTopic, formatTime(d.Timestamp))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	row("order", orDash(d.Key))
	row("step", orDash(d.Step))
	row("class", orDash(d.Class))
	row("attempts", fmt.Sprint(d.Attempts))
	row("error", orDash(d.Error))
	row("first failure", formatTime(d.FirstFailure))
	row("last failure", formatTime(d.LastFailure))
	row("replay count", fmt.Sprint(d.ReplayCount))
	if d.OriginalTopic != "" || d.OriginalOffset >= 0 {
		row("original", fmt.Sprintf("%s %s", orDash(d.OriginalTopic), topics.Source(d.OriginalPartition, d.OriginalOffset)))
	}
	_ = tw.Flush()

	fmt.Fprintln(w, "headers:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, h := range d.Headers {
		fmt.Fprintf(tw, "  %s\t%s\n", h.Key, Cut(string(h.Value), 0))
	}
	_ = tw.Flush()

	env, err := topics.DecodeEnvelope(d.Value)
	if err != nil {
		fmt.Fprintf(w, "event: cannot be decoded: %v\n", err)
		body := d.Value
		if !reveal {
			body = MaskJSON(body)
		}
		fmt.Fprintf(w, "value (%d bytes):\n%s\n", len(d.Value), Indent(body))
		return
	}
	fmt.Fprintln(w, "envelope:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row("event id", env.EventID)
	row("event type", env.EventType)
	row("api version", orDash(env.APIVersion))
	if env.Created > 0 {
		row("created", formatTime(time.Unix(env.Created, 0)))
	}
	row("received at", formatTime(env.ReceivedAt))
	row("key", env.Key)
	row("object id", orDash(env.ObjectID))
	_ = tw.Flush()
	event := []byte(env.Event)
	if reveal {
		fmt.Fprintln(w, "event:")
	} else {
		event = MaskJSON(event)
		fmt.Fprintln(w, "event (customer data masked; --reveal shows it):")
	}
	fmt.Fprintf(w, "%s\n", Indent(event))
}

// resultFields are the step-result keys `orders show` prints, in order.
// None is customer data.
var resultFields = []struct{ key, label string }{
	{"number", "number"}, {"deal_id", "deal"}, {"contact_id", "contact"}, {"record_id", "record"},
	{"shipment_id", "shipment"}, {"tracking_number", "tracking"}, {"tracking_url", "tracking url"},
	{"label_location", "label"}, {"provider_id", "provider id"}, {"message_id", "message id"},
}

// StepResult formats a step's recorded result for people: its known
// identifiers (deal id, tracking number, label location, invoice number,
// message id, ...), never customer data.
func StepResult(step string, raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	if step == processor.StepDetails {
		var o integrations.Order
		if json.Unmarshal(raw, &o) == nil && o.ID != "" {
			return orderSummary(&o)
		}
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	var parts []string
	for _, f := range resultFields {
		if v, ok := m[f.key]; ok && v != nil && fmt.Sprint(v) != "" {
			parts = append(parts, f.label+" "+fmt.Sprint(v))
		}
	}
	return strings.Join(parts, ", ")
}

// orderSummary describes an order without customer data.
func orderSummary(o *integrations.Order) string {
	return fmt.Sprintf("order %s, %s, %d item(s)", orDash(o.Number), integrations.FormatMoney(o.AmountTotal, o.Currency), len(o.Items))
}

// WriteOrder writes an order's state for a person: status, each step with
// its result or its failures, flags, replays and the dead letter.
func WriteOrder(w io.Writer, st *processor.State) {
	title := "order " + st.OrderID
	if st.Order != nil && st.Order.Number != "" {
		title += " (" + st.Order.Number + ")"
	}
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	row("status", string(st.Status))
	if st.Order != nil && st.Order.Currency != "" {
		row("amount", integrations.FormatMoney(st.Order.AmountTotal, st.Order.Currency))
	}
	if st.Status == processor.StatusErased && st.ErasedAt != nil {
		row("erased", formatTime(*st.ErasedAt)+" (the order's data and step results are no longer kept)")
	}
	row("created", formatTime(st.CreatedAt))
	row("updated", formatTime(st.UpdatedAt))
	if id := st.TraceID(); id != "" {
		row("trace", id)
	}
	if st.LastError != "" {
		row("last error", Cut(st.LastError, 0))
	}
	if len(st.Flags) > 0 {
		row("flags", strings.Join(st.Flags, ", "))
	}
	if st.DeadLetter != nil {
		dl := st.DeadLetter
		row("dead letter", fmt.Sprintf("%s (step %s, class %s, at %s)", topics.Source(dl.Partition, dl.Offset), dl.Step, dl.Class, formatTime(dl.At)))
	}
	if len(st.Replays) > 0 {
		row("replayed from", strings.Join(st.Replays, ", "))
	}
	_ = tw.Flush()
	if st.Status == processor.StatusErased {
		// The marker keeps no steps: listing them as pending would say
		// they were never run.
		return
	}

	fmt.Fprintln(w, "steps:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, name := range st.StepNames() {
		ss := st.Steps[name]
		var status, detail string
		switch {
		case ss == nil:
			status = "pending"
		case ss.Skipped:
			status = "skipped (turned off)"
		case ss.Done:
			status = "done " + formatTime(derefTime(ss.DoneAt))
			detail = StepResult(name, ss.Result)
			if name == processor.StepDetails && detail == "" && st.Order != nil {
				detail = orderSummary(st.Order)
			}
		case ss.HeldUntil != nil:
			status = "held until " + formatTime(*ss.HeldUntil) + " (provider quota used up; no attempt spent)"
			detail = orDash(Cut(ss.HeldReason, 0))
		case ss.Intent != nil:
			status = "in doubt (call started " + formatTime(*ss.Intent) + ", no result recorded)"
		case ss.CircuitOpen != nil:
			status = "waiting on the open circuit since " + formatTime(*ss.CircuitOpen) + " (its provider fails for every order)"
			if ss.LastError != "" {
				detail = "last error: " + Cut(ss.LastError, 0)
			}
		case ss.Attempts > 0:
			status = "failing"
		default:
			status = "pending"
		}
		if ss != nil && !ss.Done && ss.HeldUntil == nil && ss.Attempts > 0 {
			detail = fmt.Sprintf("%d attempt(s), last %s: %s", ss.Attempts, formatTime(derefTime(ss.LastFailure)), orDash(Cut(ss.LastError, 0)))
		} else if ss != nil && ss.Done && ss.Attempts > 0 {
			detail = strings.TrimPrefix(detail+fmt.Sprintf("; after %d failed attempt(s)", ss.Attempts), "; ")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, status, detail)
	}
	_ = tw.Flush()
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// MaskState returns the state's JSON with customer data masked (the order's
// buyer with its billing address and tax ids, and the shipping address;
// countries stay), or as is when reveal.
// It masks by field, not by key name: step names such as "email" and
// "shipping" are keys of the state too.
func MaskState(st *processor.State, reveal bool) ([]byte, error) {
	if !reveal && st.Order != nil {
		c := *st
		o := *st.Order
		m := func(s *string) {
			if *s != "" {
				*s = Masked
			}
		}
		m(&o.Customer.Name)
		m(&o.Customer.Email)
		m(&o.Customer.Phone)
		m(&o.Shipping.Name)
		m(&o.Shipping.Line1)
		m(&o.Shipping.Line2)
		m(&o.Shipping.PostalCode)
		m(&o.Shipping.City)
		m(&o.Shipping.State)
		m(&o.Shipping.Phone)
		b := &o.Customer.Address
		for _, f := range []*string{&b.Name, &b.Line1, &b.Line2, &b.PostalCode, &b.City, &b.State, &b.Phone} {
			m(f)
		}
		if len(o.Customer.TaxIDs) > 0 {
			ids := make([]integrations.TaxID, len(o.Customer.TaxIDs))
			for i, t := range o.Customer.TaxIDs {
				ids[i] = integrations.TaxID{Type: t.Type, Value: Masked}
			}
			o.Customer.TaxIDs = ids
		}
		c.Order = &o
		st = &c
	}
	return marshal(st)
}

// WritePlan writes a replay plan as a table: what happens to each dead
// letter.
func WritePlan(w io.Writer, plan []Decision) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "P/OFFSET\tORDER\tSTEP\tCLASS\tREPLAYS\tACTION")
	for _, d := range plan {
		action := "replay"
		if d.Skip != "" {
			action = "skip: " + d.Skip
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", d.Source(), orDash(d.Key), orDash(d.Step), orDash(d.Class), d.ReplayCount, action)
	}
	_ = tw.Flush()
}
