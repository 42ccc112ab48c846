package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/orderflow/orderflow/processor/dlq"
	"github.com/orderflow/orderflow/topics"
)

const dlqUsage = `dlq list|show|replay [flags]

  list                     dead letters as a table (or --json) with a count by
                           step, class and status: open, replayed (the order
                           runs again or failed again), resolved (the order
                           completed) or erased (the order was erased);
                           --status open shows what needs a hand
  show <p>/<offset>        one dead letter: every header and the event decoded,
  show <order-id>          or every dead letter of an order; customer data is
                           masked unless --reveal
  replay                   re-produce the selected dead letters to orders (or
                           --all); --dry-run shows what would happen

Filters (list, replay): --order (order ids or OF- numbers), --step, --class
(comma-separated lists),
--since, --until (a duration before now such as 2h or 7d, or an RFC 3339
time). replay skips dead letters already replayed and orders already
completed, so running it twice replays once.`

// stdinIsTerminal reports whether the confirmation prompt can be answered;
// a variable so tests can pin it.
var stdinIsTerminal = func() bool { return isTerminal(os.Stdin) }

// stdin is where the confirmation answer is read.
var stdin io.Reader = os.Stdin

// isTerminal reports whether w is a terminal (isTTY: not merely a
// character device, which /dev/null is too). The writers run and wait wrap
// a command's stderr in are looked through.
func isTerminal(w any) bool {
	switch c := w.(type) {
	case *os.File:
		return isTTY(c)
	case commandStderr:
		return isTerminal(c.Writer)
	case *lockedWriter:
		return isTerminal(c.w)
	}
	return false
}

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("dlq: want 'list', 'show' or 'replay' (run 'orderflow dlq --help')")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintf(stdout, "Usage: orderflow %s\n", dlqUsage)
		return nil
	case "list":
		return runDLQList(ctx, args[1:], stdout, stderr)
	case "show":
		return runDLQShow(ctx, args[1:], stdout, stderr)
	case "replay":
		return runDLQReplay(ctx, args[1:], stdout, stderr)
	}
	return usagef("dlq: unknown subcommand %q: want 'list', 'show' or 'replay'", args[0])
}

// filterFlags are the dead-letter selection flags of list and replay.
type filterFlags struct {
	orders, steps, classes, since, until string
}

func (f *filterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.orders, "order", "", "only these order ids (comma-separated)")
	fs.StringVar(&f.steps, "step", "", "only these failed steps (comma-separated: details, crm, production_log, shipping, invoice, email, webhook:<name>)")
	fs.StringVar(&f.classes, "class", "", "only these classes (comma-separated, any case: permanent, exhausted, parked, corrupt)")
	fs.StringVar(&f.since, "since", "", "only dead letters that failed at or after this time (2h, 7d or RFC 3339)")
	fs.StringVar(&f.until, "until", "", "only dead letters that failed before this time (2h, 7d or RFC 3339)")
}

func (f *filterFlags) filter(now time.Time) (dlq.Filter, error) {
	var out dlq.Filter
	var err error
	out.Orders = splitList(f.orders)
	if out.Steps, err = stepFilter(f.steps); err != nil {
		return out, err
	}
	if out.Classes, err = classFilter(f.classes); err != nil {
		return out, err
	}
	if out.Since, err = dlq.ParseTime(f.since, now); err != nil {
		return out, usagef("--since: %s", strings.TrimPrefix(err.Error(), dlq.ErrBadFilter.Error()+": "))
	}
	if out.Until, err = dlq.ParseTime(f.until, now); err != nil {
		return out, usagef("--until: %s", strings.TrimPrefix(err.Error(), dlq.ErrBadFilter.Error()+": "))
	}
	if err := out.Validate(); err != nil {
		return out, usagef("%s", strings.TrimPrefix(err.Error(), dlq.ErrBadFilter.Error()+": "))
	}
	return out, nil
}

// classFilter reads a --class filter: each class in any case
// (EXHAUSTED is exhausted), as --step takes step names.
func classFilter(list string) ([]string, error) {
	var out []string
	for _, item := range splitList(list) {
		c := strings.ToLower(item)
		if !topics.ValidClass(c) {
			return nil, usagef("--class: unknown class %q (want one of %s)", item, strings.Join(topics.Classes, ", "))
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// stepFilter reads a --step filter (dlq list|replay, orders list|search):
// each step name as --steps reads it (parseChain: a built-in step in any
// case, webhook:<name> with the webhook name rule), without a provider.
func stepFilter(list string) ([]string, error) {
	var out []string
	for _, item := range splitList(list) {
		if strings.Contains(item, "=") {
			return nil, usagef("--step: %q: name a step, without its provider", item)
		}
		entries, err := parseChain(item)
		if err != nil {
			return nil, usagef("--step: %s", strings.TrimPrefix(err.Error(), "--steps: "))
		}
		// parseChain puts details first when the list does not name it.
		if name := entries[len(entries)-1].name; !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// parseInterspersed parses flags that may come before or after positional
// arguments ("show 0/5 --reveal") and returns the positionals. An argument
// of '-' and a digit ("-1/0", "-5") is a positional, not a flag (no flag
// name starts with a digit), unless it is the value of the flag before it
// (--width -1); after "--" every argument is a positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' || isDigit(a[1]) {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil && !isBoolFlag(f) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if err := parseFlags(fs, flags); err != nil {
		return nil, err
	}
	return append(fs.Args(), pos...), nil
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// isBoolFlag reports whether f takes no value (--reveal, not --reveal x).
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// dlqClient connects to Kafka with the connection flags.
func dlqClient(kf *kafkaFlags) (*dlq.Client, error) {
	opts, err := kf.opts()
	if err != nil {
		return nil, err
	}
	return dlq.New(kf.names(), opts)
}

func runDLQList(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	var kf kafkaFlags
	defer func() { err = kf.explain(err) }()
	fs := newFlagSet("dlq list", "dlq list [--order ids] [--step steps] [--class classes] [--since t] [--until t] [--status s] [--json]", stderr)
	kf.register(fs)
	kf.registerTimeout(fs)
	var ff filterFlags
	ff.register(fs)
	status := fs.String("status", "", "only dead letters that stand so (comma-separated: open, replayed, resolved, erased)")
	asJSON := fs.Bool("json", false, "print the dead letters as a JSON array (no summary)")
	width := fs.Int("width", dlq.DefaultErrorWidth, "characters of the last error shown in the table (0: all)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("dlq list: unexpected argument %q", pos[0])
	}
	if *width < 0 {
		return usagef("--width must be 0 or more")
	}
	f, err := ff.filter(time.Now())
	if err != nil {
		return err
	}
	statuses := splitList(*status)
	for _, st := range statuses {
		if !slices.Contains(dlq.LetterStatuses, st) {
			return usagef("--status: unknown status %q (want one of %s)", st, strings.Join(dlq.LetterStatuses, ", "))
		}
	}
	ctx, stop := kf.wait(ctx, &stderr, "reading the dead letters")
	defer stop()
	c, err := dlqClient(&kf)
	if err != nil {
		return err
	}
	defer c.Close()
	if f.Orders, err = resolveOrderRefs(ctx, c, f.Orders); err != nil {
		return err
	}
	ls, err := c.ListStatus(ctx, f, statuses)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]dlq.Entry, 0, len(ls))
		for _, l := range ls {
			out = append(out, l.Entry())
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(ls) > 0 {
		if err := dlq.WriteListed(stdout, ls, *width); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
	}
	dlq.WriteListedCounts(stdout, ls)
	return nil
}

func runDLQShow(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	var kf kafkaFlags
	defer func() { err = kf.explain(err) }()
	fs := newFlagSet("dlq show", "dlq show <partition>/<offset> | <order-id> [--reveal]", stderr)
	kf.register(fs)
	kf.registerTimeout(fs)
	reveal := fs.Bool("reveal", false, "show customer data (names, emails, phones, addresses) instead of masking it")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("dlq show: want one <partition>/<offset> or <order-id>")
	}
	what := pos[0]
	var part int32
	var off int64
	// "-1/0" or "-5" is a partition/offset gone wrong, never an order id.
	bySource := dlq.LooksLikeSource(what) || (len(what) > 1 && what[0] == '-' && isDigit(what[1]))
	if bySource {
		if part, off, err = dlq.ParseSource(what); err != nil {
			return usagef("dlq show: %s", strings.TrimPrefix(err.Error(), "dlq: "))
		}
	}
	ctx, stop := kf.wait(ctx, &stderr, "reading the dead letter")
	defer stop()
	c, err := dlqClient(&kf)
	if err != nil {
		return err
	}
	defer c.Close()
	if bySource {
		d, err := c.Get(ctx, part, off)
		if err != nil {
			if errors.Is(err, dlq.ErrNotFound) {
				return fmt.Errorf("no dead letter at %s on %s", what, c.Names().DLQ)
			}
			return err
		}
		dlq.WriteShow(stdout, c.Names().DLQ, d, *reveal)
		return nil
	}
	if ids, err := resolveOrderRefs(ctx, c, []string{what}); err != nil {
		return err
	} else {
		what = ids[0]
	}
	ds, err := c.List(ctx, dlq.Filter{Orders: []string{what}})
	if err != nil {
		return err
	}
	if len(ds) == 0 {
		return fmt.Errorf("order %s has no dead letters on %s", what, c.Names().DLQ)
	}
	for i, d := range ds {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		dlq.WriteShow(stdout, c.Names().DLQ, d, *reveal)
	}
	return nil
}

// maxReplayRate is the highest --rate of a replay: the console's replay
// form refuses a rate above 1000 (processor/console, replayRequest), and
// the command keeps the same bound.
const maxReplayRate = 1000

func runDLQReplay(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("dlq replay", "dlq replay (--order ids | --step steps | --class classes | --since t | --until t | --all) [--dry-run] [--rate n] [--yes]", stderr)
	var kf kafkaFlags
	defer func() { err = kf.explain(err) }()
	kf.register(fs)
	kf.registerTimeout(fs)
	var ff filterFlags
	ff.register(fs)
	all := fs.Bool("all", false, "replay every dead letter (instead of filters)")
	dryRun := fs.Bool("dry-run", false, "list what would be replayed or skipped and change nothing")
	rate := fs.Float64("rate", dlq.DefaultRate, "most records replayed per second (above 0, at most 1000)")
	yes := fs.Bool("yes", false, "replay without asking for confirmation")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("dlq replay: unexpected argument %q (select with --order, --step, --class, --since, --until or --all)", pos[0])
	}
	if !(*rate > 0 && *rate <= maxReplayRate) { // NaN too
		return usagef("--rate %g: want a number of records per second above 0 and at most %d", *rate, maxReplayRate)
	}
	f, err := ff.filter(time.Now())
	if err != nil {
		return err
	}
	switch {
	case f.Empty() && !*all:
		return usagef("dlq replay: say what to replay with --order, --step, --class, --since or --until, or pass --all")
	case !f.Empty() && *all:
		return usagef("dlq replay: --all cannot be combined with filters")
	}
	interactive := stdinIsTerminal()
	if !*dryRun && !*yes && !interactive {
		return usagef("dlq replay: not on a terminal, cannot ask for confirmation: pass --yes (or look first with --dry-run)")
	}

	c, err := dlqClient(&kf)
	if err != nil {
		return err
	}
	defer c.Close()
	if !*dryRun {
		// With tracing on, each dead letter sent again is a span linked to
		// its order's trace (DESIGN.md, "Tracing").
		tr, stopTracing, err := startTracing(ctx, "orderflow-dlq", slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			return err
		}
		defer stopTracing()
		c.SetTracing(tr)
	}
	// Reading the dead letters and planning is bounded by --timeout;
	// sending, at --rate, is not.
	ctx, stop := kf.wait(ctx, &stderr, "reading the dead letters")
	defer stop()
	if f.Orders, err = resolveOrderRefs(ctx, c, f.Orders); err != nil {
		return err
	}
	req := dlq.ReplayRequest{Filter: f, All: *all, DryRun: *dryRun, Rate: *rate}
	req.Confirm = func(p dlq.Preview) bool {
		kf.release()
		warnLeftOut(p.LeftOut, stderr)
		if p.Replay == 0 || *yes {
			return true
		}
		fmt.Fprintf(stderr, "Replay %d dead letter(s) to %s at up to %g/s (skipping %d)? [y/N] ", p.Replay, c.Names().Orders, *rate, p.Skipped())
		answer, _ := bufio.NewReader(stdin).ReadString('\n')
		a := strings.ToLower(strings.TrimSpace(answer))
		return a == "y" || a == "yes"
	}
	progress := isTerminal(stderr)
	if progress {
		start := time.Now()
		req.Progress = func(p dlq.Progress) {
			fmt.Fprintf(stderr, "\rreplayed %d/%d (%.0fs)", p.Done, p.Total, time.Since(start).Seconds())
		}
	}
	res, err := c.Run(ctx, req)
	if errors.Is(err, dlq.ErrCancelled) {
		return errors.New("replay cancelled; nothing was sent")
	}
	if err == nil && len(res.Plan) == 0 {
		fmt.Fprintln(stdout, "no dead letters match; nothing to replay")
		return nil
	}
	if *dryRun && err == nil {
		warnLeftOut(res.LeftOut, stderr)
		dlq.WritePlan(stdout, res.Plan)
		fmt.Fprintf(stdout, "\ndry run: would replay %d to %s, skip %d (%s); nothing was changed\n",
			res.Replay, c.Names().Orders, res.Skipped(), res.SkipText())
		return nil
	}
	if res.Outcomes == nil {
		return err // failed before sending anything
	}
	sum := res.Summary
	if progress && sum.Replayed > 0 {
		fmt.Fprintln(stderr)
	}
	fmt.Fprintf(stdout, "replayed %d, skipped %d (%s), failed %d\n",
		sum.Replayed, sum.Skipped(), sum.SkipText(), sum.Failed)
	if err != nil {
		return fmt.Errorf("%w (run the same replay again to send the rest)", err)
	}
	return nil
}

// warnLeftOut warns about earlier dead letters of the selected orders that
// the filters leave out: replaying a later event of an order without them
// changes the order the processor sees its events in.
func warnLeftOut(left []dlq.Decision, stderr io.Writer) {
	for _, d := range left {
		fmt.Fprintf(stderr, "warning: order %s has an earlier dead letter %s (step %s, class %s) the filters leave out; replaying without it changes the order of the order's events (select it too, e.g. --order %s)\n",
			d.Key, d.Source(), d.Step, d.Class, d.Key)
	}
}
