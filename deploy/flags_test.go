package deploy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// cli is what the built binary says about its commands: every flag with its
// default, and the ORDERFLOW_* variables read without a flag (secrets).
type cli struct {
	flags   map[string]map[string]string // command ("topics create") → flag → default
	bools   map[string]map[string]bool   // command → its boolean flags
	envOnly map[string]bool
}

var cliOnce struct {
	sync.Once
	c   *cli
	err error
}

// commandsUsed are the commands the deployment files run.
var commandsUsed = []string{"gateway", "processor", "sim", "topics create"}

var (
	flagLine    = regexp.MustCompile(`^  -([a-zA-Z0-9][a-zA-Z0-9-]*)(?: \S+)?$`)
	flagDefault = regexp.MustCompile(`\(default ("[^"]*"|\S+)\)$`)
	envLiteral  = regexp.MustCompile(`"(ORDERFLOW_[A-Z0-9_]+)"`)
)

// binaryCLI asks the binary for each command's flags (`--help`) and reads
// the secret variables from the command sources.
func binaryCLI(t *testing.T) *cli {
	t.Helper()
	bin := orderflowBinary(t)
	cliOnce.Do(func() {
		c := &cli{flags: map[string]map[string]string{}, bools: map[string]map[string]bool{}, envOnly: map[string]bool{}}
		for _, command := range commandsUsed {
			args := append(strings.Fields(command), "--help")
			out, err := exec.Command(bin, args...).CombinedOutput()
			if err != nil {
				cliOnce.err = fmt.Errorf("orderflow %s: %v\n%s", strings.Join(args, " "), err, out)
				return
			}
			c.flags[command], c.bools[command] = parseHelp(string(out))
			if len(c.flags[command]) == 0 {
				cliOnce.err = fmt.Errorf("orderflow %s printed no flags:\n%s", strings.Join(args, " "), out)
				return
			}
		}
		srcs, err := filepath.Glob("../cmd/orderflow/*.go")
		if err != nil {
			cliOnce.err = err
			return
		}
		for _, src := range srcs {
			if strings.HasSuffix(src, "_test.go") {
				continue
			}
			b, err := os.ReadFile(src)
			if err != nil {
				cliOnce.err = err
				return
			}
			for _, m := range envLiteral.FindAllStringSubmatch(string(b), -1) {
				c.envOnly[m[1]] = true
			}
		}
		cliOnce.c = c
	})
	if cliOnce.err != nil {
		t.Fatal(cliOnce.err)
	}
	return cliOnce.c
}

// parseHelp reads flag.PrintDefaults output: "  -name type" lines (no
// type for a boolean), each followed by its usage, which ends in
// "(default x)" when x is not the zero value.
func parseHelp(out string) (defaults map[string]string, bools map[string]bool) {
	flags := map[string]string{}
	bools = map[string]bool{}
	name := ""
	for _, line := range strings.Split(out, "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			name = m[1]
			flags[name] = ""
			if !strings.Contains(strings.TrimSpace(line), " ") {
				bools[name] = true
			}
			continue
		}
		if name != "" && strings.HasPrefix(line, "    \t") {
			if m := flagDefault.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				flags[name] = strings.Trim(m[1], `"`)
			}
		}
	}
	return flags, bools
}

// envName is the variable of a flag: "max-body" → ORDERFLOW_MAX_BODY.
func envName(flag string) string {
	return "ORDERFLOW_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// checkEnv returns a problem when name is not a variable any of commands
// reads.
func (c *cli) checkEnv(where, name string, commands ...string) []string {
	if !strings.HasPrefix(name, "ORDERFLOW_") || c.envOnly[name] {
		return nil
	}
	for _, cmd := range commands {
		for f := range c.flags[cmd] {
			if envName(f) == name {
				return nil
			}
		}
	}
	return []string{fmt.Sprintf("%s: %s is not read by orderflow %s (no such flag or variable)", where, name, strings.Join(commands, ", "))}
}

// command splits container arguments into the orderflow command ("topics
// create") and its flags.
func (c *cli) command(args []string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, fmt.Errorf("no command")
	}
	if len(args) > 1 && c.flags[args[0]+" "+args[1]] != nil {
		return args[0] + " " + args[1], args[2:], nil
	}
	if c.flags[args[0]] == nil {
		return "", nil, fmt.Errorf("unknown command %q (known: %s)", args[0], strings.Join(commandsUsed, ", "))
	}
	return args[0], args[1:], nil
}

// effectiveFlags returns every flag of the command with the value args give
// it, else its default. Unknown flags are problems.
func (c *cli) effectiveFlags(where, command string, args []string) (map[string]string, []string) {
	vals := map[string]string{}
	for f, d := range c.flags[command] {
		vals[f] = d
	}
	var problems []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			problems = append(problems, fmt.Sprintf("%s: unexpected argument %q", where, a))
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if _, ok := c.flags[command][name]; !ok {
			problems = append(problems, fmt.Sprintf("%s: orderflow %s has no flag --%s", where, command, name))
			continue
		}
		if !hasValue && !c.bools[command][name] && i+1 < len(args) {
			i++
			value = args[i]
		}
		vals[name] = value
	}
	return vals, problems
}

// duration parses a flag value; problems name the flag.
func duration(where, flag, v string) (time.Duration, []string) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, []string{fmt.Sprintf("%s: --%s=%q: %v", where, flag, v, err)}
	}
	return d, nil
}

// isAddrFlag reports whether a flag is a listen address (--addr,
// --http-addr, --metrics-addr).
func isAddrFlag(f string) bool { return f == "addr" || strings.HasSuffix(f, "-addr") }

// addrPort returns the port of a listen address such as ":9090".
func addrPort(addr string) int {
	_, p, err := netSplit(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

func netSplit(addr string) (string, string, error) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", "", fmt.Errorf("no port in %q", addr)
	}
	return addr[:i], addr[i+1:], nil
}

func TestParseHelp(t *testing.T) {
	out := `Usage: orderflow x

Flags (each also ORDERFLOW_<FLAG>):
  -airtable-base-url string
    	Airtable API URL (default https://api.airtable.com, or --sim-url)
  -brokers string
    	Kafka bootstrap brokers, comma-separated (default "127.0.0.1:9092")
  -kafka-tls
    	connect to Kafka over TLS
  -revoke-deadline duration
    	how long in-flight steps may finish (default 10s)
`
	got, bools := parseHelp(out)
	want := map[string]string{"airtable-base-url": "", "brokers": "127.0.0.1:9092", "kafka-tls": "", "revoke-deadline": "10s"}
	if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(bools) != "map[kafka-tls:true]" {
		t.Errorf("parseHelp = %v, %v; want %v and kafka-tls boolean", got, bools, want)
	}
	c := &cli{flags: map[string]map[string]string{"gateway": got}, bools: map[string]map[string]bool{"gateway": bools},
		envOnly: map[string]bool{"ORDERFLOW_STRIPE_SECRET_KEY": true}}
	for _, tt := range []struct {
		env string
		ok  bool
	}{
		{"ORDERFLOW_BROKERS", true}, {"ORDERFLOW_REVOKE_DEADLINE", true}, {"ORDERFLOW_STRIPE_SECRET_KEY", true},
		{"ORDERFLOW_BROKER", false}, {"ORDERFLOW_KAFKA_TLS_CA", false}, {"OTHER_VAR", true},
	} {
		if p := c.checkEnv("test", tt.env, "gateway"); (len(p) == 0) != tt.ok {
			t.Errorf("checkEnv(%s) = %v, want ok=%v", tt.env, p, tt.ok)
		}
	}
	vals, problems := c.effectiveFlags("test", "gateway", []string{"--brokers=k:9092", "--kafka-tls", "--revoke-deadline", "3s", "--nope"})
	if vals["brokers"] != "k:9092" || vals["revoke-deadline"] != "3s" || len(problems) != 1 || !strings.Contains(problems[0], "--nope") {
		t.Errorf("effectiveFlags = %v, %v", vals, problems)
	}
}
