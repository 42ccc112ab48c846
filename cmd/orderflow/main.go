// Command orderflow runs every part of the order pipeline: the Stripe webhook
// gateway, the step processor, the topic tools and the dead-letter tools.
// Run `orderflow help` for the list of subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // invoice dates in the accounting system's zone, even in a minimal image
)

// command is one subcommand. run gets the arguments after the command name
// and returns an error; a usageError exits 2, anything else exits 1.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists every subcommand, in help order.
var commands = []command{
	{"gateway", "receive Stripe webhooks and queue them on Kafka", runGateway},
	{"processor", "run the order step chain as a Kafka consumer group", runProcessor},
	{"dev", "run everything in one process: embedded Kafka, gateway, processor, simulator", runDev},
	{"topics", "create or check the Kafka topics", runTopics},
	{"dlq", "list, show and replay dead letters", runDLQ},
	{"orders", "list, search and show orders", runOrders},
	{"console", "serve the operator console: orders, dead letters, replays, audit", runConsole},
	{"sim", "run the provider simulator (every provider API on one port)", runSim},
	{"send-test-event", "post realistic signed Stripe test events to a gateway", runSendTestEvent},
	{"loadgen", "post signed test load at a gateway and report rates and latency", runLoadgen},
}

// usageError is a bad invocation: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			return run(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		printUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" || args[0] == "version" {
		printVersion(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			return exitCode(c.run(ctx, args[1:], stdout, commandStderr{stderr, stdout}), stderr)
		}
	}
	fmt.Fprintf(stderr, "orderflow: unknown command %q (run 'orderflow help')\n", args[0])
	return 2
}

func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "orderflow: %s\n", ue.msg)
		return 2
	default:
		fmt.Fprintf(stderr, "orderflow: %s\n", err)
		return 1
	}
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, "orderflow turns paid Stripe orders into CRM deals, production-log rows,\nshipping labels, invoices and confirmation emails, through Kafka.\n\nUsage: orderflow <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nEvery flag can also be set by an environment variable ORDERFLOW_<FLAG>,\nupper case with '-' as '_' (--brokers: ORDERFLOW_BROKERS). A flag on the\ncommand line wins over the environment.\nRun 'orderflow <command> --help' for a command's flags, 'orderflow --version'\nfor the build.\n")
}

// commandStderr is the stderr run gives a command: it writes to stderr and
// also carries the command's stdout, where --help goes (asked-for output,
// exit 0), so every flag set made with newFlagSet prints its usage there.
type commandStderr struct {
	io.Writer
	stdout io.Writer
}

// helpOutput is where a command prints what --help asks for: the stdout
// run gave it, or w itself when w did not come from run (a test calling a
// command directly).
func helpOutput(w io.Writer) io.Writer {
	switch c := w.(type) {
	case commandStderr:
		return c.stdout
	case *lockedWriter:
		return helpOutput(c.w)
	}
	return w
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// prints its usage, on --help, to the command's stdout (helpOutput).
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("orderflow "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	help := helpOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(help, "Usage: orderflow %s\n\nFlags (each also ORDERFLOW_<FLAG>):\n", usage)
		out := fs.Output()
		fs.SetOutput(help)
		fs.PrintDefaults()
		fs.SetOutput(out)
	}
	return fs
}

// parseFlags applies ORDERFLOW_<FLAG> environment variables to flags not set
// on the command line, then parses args. Bad values, from either source, are
// usage errors naming the flag.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := parseQuiet(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		if _, flagOnly := f.Value.(interface{ noEnv() }); set[f.Name] || flagOnly {
			return
		}
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				if _, ok := f.Value.(interface{ credential() }); ok {
					// The value may hold a token (a webhook URL): not shown.
					errs = append(errs, fmt.Sprintf("%s: %s", env, valueErrorText(f, err.Error())))
				} else {
					errs = append(errs, fmt.Sprintf("%s=%q: %s", env, v, valueErrorText(f, err.Error())))
				}
			}
		}
	})
	if len(errs) > 0 {
		sort.Strings(errs)
		return usageError{"invalid environment: " + strings.Join(errs, "; ")}
	}
	return nil
}

// envName is the environment variable of a flag: "max-body" → ORDERFLOW_MAX_BODY.
func envName(flagName string) string {
	return "ORDERFLOW_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// splitList splits a comma-separated flag value, dropping empty parts.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseQuiet parses args; --help prints the usage, and a bad flag is one
// line (a usage error, exit 2) instead of the error and the whole usage.
func parseQuiet(fs *flag.FlagSet, args []string) error {
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	if err == nil {
		return nil
	}
	if errors.Is(err, flag.ErrHelp) {
		if fs.Usage != nil {
			fs.Usage()
		} else {
			fs.PrintDefaults()
		}
		return err
	}
	return usageError{flagErrorLine(fs, err)}
}

// flagErrorLine turns the flag package's error into one line naming the
// flag as the user would type it, the closest known flag for an unknown
// one, and where to read more.
func flagErrorLine(fs *flag.FlagSet, err error) string {
	see := fmt.Sprintf("See %s --help", fs.Name())
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		name = strings.TrimLeft(name, "-")
		line := "unknown flag --" + name
		if near := closestFlag(fs, name); near != "" {
			return line + "; did you mean --" + near + "? " + see
		}
		return line + ". " + see
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return fmt.Sprintf("flag --%s needs a value. %s", strings.TrimLeft(name, "-"), see)
	}
	// invalid value "x" for flag -n: parse error
	if i := strings.Index(msg, " for flag -"); i >= 0 {
		name := msg[i+len(" for flag -"):]
		if j := strings.Index(name, ": "); j >= 0 {
			if f := fs.Lookup(name[:j]); f != nil {
				name = name[:j+2] + valueErrorText(f, name[j+2:])
			}
		}
		msg = msg[:i] + " for flag --" + name
	}
	return msg + ". " + see
}

// valueErrorText is the reason a value of f was refused, saying what a
// valid one looks like where the flag package says only "parse error".
func valueErrorText(f *flag.Flag, reason string) string {
	if reason != "parse error" {
		return reason
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if _, ok := g.Get().(time.Duration); ok {
			return "want a duration such as 5s, 500ms or 1m30s"
		}
	}
	if _, ok := f.Value.(positiveDuration); ok {
		return "want a duration such as 5s, 500ms or 1m30s"
	}
	return reason
}

// closestFlag is the defined flag nearest to name (at most a third of its
// letters off, or name a prefix of it), or "".
func closestFlag(fs *flag.FlagSet, name string) string {
	best, bestD := "", len(name)/3+1
	fs.VisitAll(func(f *flag.Flag) {
		d := editDistance(name, f.Name)
		if strings.HasPrefix(f.Name, name) && d > 0 {
			d = 1
		}
		if d < bestD || (d == bestD && best != "" && f.Name < best) {
			best, bestD = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
