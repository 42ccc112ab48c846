package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/orderflow/orderflow/processor/dlq"
)

const dlqUsage = `dlq list|show|replay [flags]

  list                     dead letters as a table (or --json) with a count by
                           step and class
  show <p>/<offset>        one dead letter: every header and the event decoded,
  show <order-id>          or every dead letter of an order; customer data is
                           masked unless --reveal
  replay                   re-produce the selected dead letters to orders (or
                           --all); --dry-run shows what would happen

Filters (list, replay): --order, --step, --class (comma-separated lists),
--since, --until (a duration before now such as 2h or 7d, or an RFC 3339
time). replay skips dead letters already replayed and orders already
completed, so running it twice replays once.`

// stdinIsTerminal reports whether the confirmation prompt can be answered;
// a variable so tests can pin it.
var stdinIsTerminal = func() bool { return isTerminal(os.Stdin) }

// stdin is where the confirmation answer is read.
var stdin io.Reader = os.Stdin

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("dlq: want 'list', 'show' or 'replay' (run 'orderflow dlq --help')")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintf(stderr, "Usage: orderflow %s\n", dlqUsage)
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
	fs.StringVar(&f.steps, "step", "", "only these failed steps (comma-separated: details, crm, production_log, shipping, invoice, email)")
	fs.StringVar(&f.classes, "class", "", "only these classes (comma-separated: permanent, exhausted, parked, corrupt)")
	fs.StringVar(&f.since, "since", "", "only dead letters that failed at or after this time (2h, 7d or RFC 3339)")
	fs.StringVar(&f.until, "until", "", "only dead letters that failed before this time (2h, 7d or RFC 3339)")
}

func (f *filterFlags) filter(now time.Time) (dlq.Filter, error) {
	var out dlq.Filter
	var err error
	out.Orders = splitList(f.orders)
	out.Steps = splitList(f.steps)
	out.Classes = splitList(f.classes)
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

// parseInterspersed parses flags that may come before or after positional
// arguments ("show 0/5 --reveal") and returns the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// dlqClient connects to Kafka with the connection flags.
func dlqClient(kf *kafkaFlags) (*dlq.Client, error) {
	opts, err := kf.opts()
	if err != nil {
		return nil, err
	}
	return dlq.New(kf.names(), opts)
}

func runDLQList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dlq list", "dlq list [--order ids] [--step steps] [--class classes] [--since t] [--until t] [--json]", stderr)
	var kf kafkaFlags
	kf.register(fs)
	var ff filterFlags
	ff.register(fs)
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
	c, err := dlqClient(&kf)
	if err != nil {
		return err
	}
	defer c.Close()
	ds, err := c.List(ctx, f)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]dlq.Entry, 0, len(ds))
		for _, d := range ds {
			out = append(out, d.Entry())
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(ds) > 0 {
		if err := dlq.WriteTable(stdout, ds, *width); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
	}
	dlq.WriteCounts(stdout, dlq.Count(ds))
	return nil
}

func runDLQShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dlq show", "dlq show <partition>/<offset> | <order-id> [--reveal]", stderr)
	var kf kafkaFlags
	kf.register(fs)
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
	bySource := dlq.LooksLikeSource(what)
	if bySource {
		if part, off, err = dlq.ParseSource(what); err != nil {
			return usagef("dlq show: %s", strings.TrimPrefix(err.Error(), "dlq: "))
		}
	}
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

func runDLQReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dlq replay", "dlq replay (--order ids | --step steps | --class classes | --since t | --until t | --all) [--dry-run] [--rate n] [--yes]", stderr)
	var kf kafkaFlags
	kf.register(fs)
	var ff filterFlags
	ff.register(fs)
	all := fs.Bool("all", false, "replay every dead letter (instead of filters)")
	dryRun := fs.Bool("dry-run", false, "list what would be replayed or skipped and change nothing")
	rate := fs.Float64("rate", dlq.DefaultRate, "most records replayed per second")
	yes := fs.Bool("yes", false, "replay without asking for confirmation")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("dlq replay: unexpected argument %q (select with --order, --step, --class, --since, --until or --all)", pos[0])
	}
	if *rate <= 0 {
		return usagef("--rate must be more than 0 records per second")
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
	ds, err := c.List(ctx, f)
	if err != nil {
		return err
	}
	if len(ds) == 0 {
		fmt.Fprintln(stdout, "no dead letters match; nothing to replay")
		return nil
	}
	plan, err := c.Plan(ctx, ds)
	if err != nil {
		return err
	}
	if !f.Empty() {
		if err := warnLeftOut(ctx, c, plan, stderr); err != nil {
			return err
		}
	}
	var replay, skipReplayed, skipCompleted int
	for _, d := range plan {
		switch d.Skip {
		case "":
			replay++
		case dlq.SkipAlreadyReplayed:
			skipReplayed++
		case dlq.SkipAlreadyCompleted:
			skipCompleted++
		}
	}
	if *dryRun {
		dlq.WritePlan(stdout, plan)
		fmt.Fprintf(stdout, "\ndry run: would replay %d to %s, skip %d (already replayed %d, already completed %d); nothing was changed\n",
			replay, c.Names().Orders, skipReplayed+skipCompleted, skipReplayed, skipCompleted)
		return nil
	}
	if replay > 0 && !*yes {
		fmt.Fprintf(stderr, "Replay %d dead letter(s) to %s at up to %g/s (skipping %d)? [y/N] ", replay, c.Names().Orders, *rate, skipReplayed+skipCompleted)
		answer, _ := bufio.NewReader(stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return errors.New("replay cancelled; nothing was sent")
		}
	}
	opts := dlq.ReplayOptions{Rate: *rate}
	progress := isTerminal(stderr)
	if progress {
		start := time.Now()
		opts.Progress = func(p dlq.Progress) {
			fmt.Fprintf(stderr, "\rreplayed %d/%d (%.0fs)", p.Done, p.Total, time.Since(start).Seconds())
		}
	}
	sum, err := c.Replay(ctx, plan, opts)
	if progress && sum.Replayed > 0 {
		fmt.Fprintln(stderr)
	}
	fmt.Fprintf(stdout, "replayed %d, skipped %d (already replayed %d, already completed %d), failed %d\n",
		sum.Replayed, sum.Skipped(), sum.AlreadyReplayed, sum.AlreadyCompleted, sum.Failed)
	if err != nil {
		return fmt.Errorf("%w (run the same replay again to send the rest)", err)
	}
	return nil
}

// warnLeftOut warns about earlier dead letters of the selected orders that
// the filters leave out: replaying a later event of an order without them
// changes the order the processor sees its events in.
func warnLeftOut(ctx context.Context, c *dlq.Client, plan []dlq.Decision, stderr io.Writer) error {
	var keys []string
	for _, d := range plan {
		if d.Skip == "" && d.Key != "" && !slices.Contains(keys, d.Key) {
			keys = append(keys, d.Key)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	ds, err := c.List(ctx, dlq.Filter{Orders: keys})
	if err != nil {
		return err
	}
	all, err := c.Plan(ctx, ds)
	if err != nil {
		return err
	}
	for _, d := range dlq.LeftOut(plan, all) {
		fmt.Fprintf(stderr, "warning: order %s has an earlier dead letter %s (step %s, class %s) the filters leave out; replaying without it changes the order of the order's events (select it too, e.g. --order %s)\n",
			d.Key, d.Source(), d.Step, d.Class, d.Key)
	}
	return nil
}
