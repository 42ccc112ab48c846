package dlq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/orderflow/orderflow/processor"
)

// Where a dead letter stands (LetterStatus).
const (
	// LetterOpen: not replayed, and its order has not completed.
	LetterOpen = "open"
	// LetterReplayed: replayed (the order's state lists it), and the order
	// has not completed since: it is running again or failed again.
	LetterReplayed = "replayed"
	// LetterResolved: the order completed (after the replay, or on its own)
	// or was refunded before shipping (its chain stopped), so a replay
	// skips it; a refund parked behind the failure is resolved only once
	// replayed (the order still has to learn of it).
	LetterResolved = "resolved"
	// LetterErased: the order was erased; a replay skips it (the processor
	// would ignore it) and nothing is left to do.
	LetterErased = "erased"
)

// LetterStatuses lists every status, for validating filters.
var LetterStatuses = []string{LetterOpen, LetterReplayed, LetterResolved, LetterErased}

// LetterStatus says where the dead letter at source stands given its
// order's latest state (nil when the order has none). It agrees with Plan:
// a resolved or replayed letter is skipped by a replay, an open one is sent.
func LetterStatus(source, eventType string, st *processor.State) string {
	switch {
	case st == nil:
		return LetterOpen
	case (st.Status == processor.StatusCompleted || st.Status == processor.StatusRefunded) && !pendingRefund(source, eventType, st):
		return LetterResolved
	case st.Status == processor.StatusErased:
		return LetterErased
	case slices.Contains(st.Replays, source):
		return LetterReplayed
	default:
		return LetterOpen
	}
}

// pendingRefund reports whether a dead letter is a refund its order has
// not had yet: a charge.refunded (or a refund's update, or a dispute)
// parked behind the order's failure and not replayed. The order completing
// (its failed step replayed alone) does not resolve it: the refund still
// has to reach the processor, which flags and alerts a refund after
// shipping, one that did not go through, or a chargeback.
func pendingRefund(source, eventType string, st *processor.State) bool {
	return slices.Contains(processor.FlaggingEvents, eventType) && !slices.Contains(st.Replays, source)
}

// Listed is a dead letter with where it stands.
type Listed struct {
	DeadLetter
	Status string
}

// ListStatus is List with each dead letter's status read from its order's
// state; statuses, when not empty, keeps only those.
func (c *Client) ListStatus(ctx context.Context, f Filter, statuses []string) ([]Listed, error) {
	for _, s := range statuses {
		if !slices.Contains(LetterStatuses, s) {
			return nil, fmt.Errorf("%w: unknown status %q (want one of %s)", ErrBadFilter, s, strings.Join(LetterStatuses, ", "))
		}
	}
	ds, err := c.List(ctx, f)
	if err != nil {
		return nil, err
	}
	states, err := c.OrderStates(ctx, homes(ds))
	if err != nil {
		return nil, fmt.Errorf("read order states: %w", err)
	}
	out := make([]Listed, 0, len(ds))
	for _, d := range ds {
		l := Listed{DeadLetter: d, Status: LetterStatus(d.Source(), d.EventType(), states[d.Key])}
		if len(statuses) == 0 || slices.Contains(statuses, l.Status) {
			out = append(out, l)
		}
	}
	return out, nil
}

// homes maps each dead letter's order to the partition its state is on.
func homes(ds []DeadLetter) map[string]int32 {
	where := map[string]int32{}
	for _, d := range ds {
		if d.Key != "" {
			where[d.Key] = d.OriginalPartition
		}
	}
	return where
}

// ReplayRequest is one replay run: which dead letters, at what rate, and
// whether to send anything. `orderflow dlq replay` and the console both
// run it through Client.Run, so they select, skip and send alike.
type ReplayRequest struct {
	// Filter selects the dead letters (Sources picks them one by one).
	Filter Filter
	// All must be set to replay with an empty filter, so that a missing
	// filter never means "everything" by accident.
	All bool
	// DryRun plans and returns the preview; nothing is sent.
	DryRun bool
	// Rate is the most records per second; <= 0 means DefaultRate.
	Rate float64
	// Confirm, when set, is called with the preview before anything is
	// sent; false cancels the run with ErrCancelled.
	Confirm func(Preview) bool
	// Progress, when set, is called after each acknowledged record.
	Progress func(Progress)
}

// Preview is what a run would do: the plan of the selected dead letters
// and the warnings.
type Preview struct {
	Plan []Decision
	// LeftOut are earlier dead letters of the selected orders that the
	// filter leaves out: replaying a later event of an order without them
	// changes the order in which the processor sees its events.
	LeftOut []Decision
	// Replay is how many of Plan would be sent; the others are skipped.
	Replay, AlreadyReplayed, AlreadyCompleted, Erased, Refunded int
}

// Skipped is how many of the plan a replay skips on purpose.
func (p Preview) Skipped() int {
	return p.AlreadyReplayed + p.AlreadyCompleted + p.Erased + p.Refunded
}

// SkipText says why the skipped are, as Summary.SkipText.
func (p Preview) SkipText() string {
	return skipText(p.AlreadyReplayed, p.AlreadyCompleted, p.Erased, p.Refunded)
}

// Outcome is what a run did with one dead letter.
type Outcome struct {
	Source string `json:"source"`
	Order  string `json:"order_id"`
	// Result is "replayed", "skipped: <reason>", "failed: <error>" or
	// "not sent".
	Result string `json:"result"`
}

// ReplayResult is a run's preview and, unless it was a dry run or
// cancelled, what happened.
type ReplayResult struct {
	Preview
	Summary Summary
	// Outcomes holds one entry per dead letter of the plan, in plan order.
	Outcomes []Outcome
}

// Errors of Run.
var (
	// ErrCancelled: Confirm said no; nothing was sent.
	ErrCancelled = errors.New("dlq: replay cancelled; nothing was sent")
	// ErrNoSelection: an empty filter without All.
	ErrNoSelection = errors.New("dlq: say what to replay (a filter) or replay all")
)

// Run is a whole replay: it lists the dead letters the filter selects,
// plans them against the orders' current state (Plan), finds the earlier
// dead letters the filter leaves out (LeftOut), and unless DryRun asks
// Confirm and sends the plan with Replay. A selection that matches nothing
// returns an empty result and no error.
func (c *Client) Run(ctx context.Context, req ReplayRequest) (ReplayResult, error) {
	var res ReplayResult
	if err := req.Filter.Validate(); err != nil {
		return res, err
	}
	switch {
	case req.Filter.Empty() && !req.All:
		return res, ErrNoSelection
	case !req.Filter.Empty() && req.All:
		return res, fmt.Errorf("%w: all cannot be combined with filters", ErrBadFilter)
	}
	ds, err := c.List(ctx, req.Filter)
	if err != nil {
		return res, err
	}
	if len(ds) == 0 {
		return res, nil
	}
	if res.Plan, err = c.Plan(ctx, ds); err != nil {
		return res, err
	}
	if !req.Filter.Empty() {
		if res.LeftOut, err = c.leftOut(ctx, res.Plan); err != nil {
			return res, err
		}
	}
	for _, d := range res.Plan {
		switch d.Skip {
		case "":
			res.Replay++
		case SkipAlreadyReplayed:
			res.AlreadyReplayed++
		case SkipAlreadyCompleted:
			res.AlreadyCompleted++
		case SkipErased:
			res.Erased++
		case SkipRefunded:
			res.Refunded++
		}
	}
	if req.DryRun {
		return res, nil
	}
	if req.Confirm != nil && !req.Confirm(res.Preview) {
		return res, ErrCancelled
	}
	at := map[string]int{}
	res.Outcomes = make([]Outcome, len(res.Plan))
	for i, d := range res.Plan {
		at[d.Source()] = i
		res.Outcomes[i] = Outcome{Source: d.Source(), Order: d.Key, Result: "not sent"}
	}
	res.Summary, err = c.Replay(ctx, res.Plan, ReplayOptions{Rate: req.Rate, Progress: req.Progress,
		Result: func(d Decision, err error) {
			o := &res.Outcomes[at[d.Source()]]
			switch {
			case d.Skip != "":
				o.Result = "skipped: " + d.Skip
			case errors.Is(err, ErrNotSent):
				o.Result = "not sent"
			case err != nil:
				o.Result = "failed: " + err.Error()
			default:
				o.Result = "replayed"
			}
		}})
	return res, err
}

// leftOut is LeftOut for a plan: it reads every dead letter of the orders
// the plan sends.
func (c *Client) leftOut(ctx context.Context, plan []Decision) ([]Decision, error) {
	var keys []string
	for _, d := range plan {
		if d.Skip == "" && d.Key != "" && !slices.Contains(keys, d.Key) {
			keys = append(keys, d.Key)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	ds, err := c.List(ctx, Filter{Orders: keys})
	if err != nil {
		return nil, err
	}
	all, err := c.Plan(ctx, ds)
	if err != nil {
		return nil, err
	}
	return LeftOut(plan, all), nil
}

// Entry is the machine form with the status.
func (l Listed) Entry() Entry {
	e := l.DeadLetter.Entry()
	e.Status = l.Status
	return e
}

// WriteListed writes dead letters with their status as an aligned table,
// the error cut to errWidth characters.
func WriteListed(w io.Writer, ls []Listed, errWidth int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "P/OFFSET\tORDER\tSTEP\tCLASS\tSTATUS\tATTEMPTS\tLAST ERROR\tFAILED AT\tREPLAYS")
	for _, l := range ls {
		d := l.DeadLetter
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\n",
			d.Source(), orDash(d.Key), orDash(d.Step), orDash(d.Class), l.Status, d.Attempts,
			orDash(Cut(d.Error, errWidth)), formatTime(d.FailedAt()), d.ReplayCount)
	}
	return tw.Flush()
}

// WriteListedCounts writes the summary under a table: the counts by step
// and class, then by status.
func WriteListedCounts(w io.Writer, ls []Listed) {
	ds := make([]DeadLetter, len(ls))
	by := map[string]int{}
	for i, l := range ls {
		ds[i] = l.DeadLetter
		by[l.Status]++
	}
	WriteCounts(w, Count(ds))
	if len(ls) > 0 {
		fmt.Fprintf(w, "by status: %s\n", joinCounts(by, LetterStatuses))
	}
}
