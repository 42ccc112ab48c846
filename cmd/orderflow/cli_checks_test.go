package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/testenv"
)

// usageCase is one bad invocation and the exact line it must print on
// stderr, with exit 2 and nothing on stdout.
type usageCase struct {
	args []string
	want string
}

func checkUsageCases(t *testing.T, cases []usageCase) {
	t.Helper()
	refuseKafka(t) // a case that regresses past its usage check reaches no broker
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		code := run(ctx, tc.args, &stdout, &stderr)
		cancel()
		if code != 2 || stderr.String() != tc.want || stdout.Len() != 0 {
			t.Errorf("orderflow %q: exit %d, stdout %q, stderr\n%q\nwant exit 2 and\n%q", tc.args, code, stdout.String(), stderr.String(), tc.want)
		}
	}
}

// --timeout is a positive duration on every command that takes it: 0 or a
// negative value is refused, not replaced by the default.
func TestTimeoutMustBePositive(t *testing.T) {
	var cases []usageCase
	for _, cmd := range [][]string{
		{"orders", "show", "pi_1"}, {"orders", "erase", "pi_1", "--yes"}, {"orders", "list"}, {"orders", "search", "x"},
		{"dlq", "list"}, {"dlq", "show", "0/1"}, {"dlq", "replay", "--all", "--yes"},
		{"topics", "check"}, {"topics", "create"}, {"processor"}, {"console"},
		{"send-test-event"}, {"loadgen"},
	} {
		name := strings.Join(cmd[:min(2, len(cmd))], " ")
		if len(cmd) == 1 || cmd[0] == "send-test-event" {
			name = cmd[0]
		}
		for _, v := range []string{"-1s", "0"} {
			cases = append(cases, usageCase{append(cmd, "--timeout", v),
				`orderflow: invalid value "` + v + `" for flag --timeout: must be positive. See orderflow ` + name + " --help\n"})
		}
	}
	cases = append(cases,
		usageCase{[]string{"loadgen", "--redeliver", "-1"}, "orderflow: loadgen: --redeliver must be 0 or more\n"},
		usageCase{[]string{"loadgen", "--redeliver-delay", "-1s"}, `orderflow: invalid value "-1s" for flag --redeliver-delay: must be positive. See orderflow loadgen --help` + "\n"},
		usageCase{[]string{"loadgen", "--rate", "NaN"}, "orderflow: loadgen: --rate must be 0 or a positive number\n"},
		usageCase{[]string{"loadgen", "--duplicates", "NaN"}, "orderflow: loadgen: --duplicates must be between 0 and 1\n"},
		usageCase{[]string{"loadgen", "extra"}, `orderflow: loadgen: unexpected argument "extra"` + "\n"},
		usageCase{[]string{"send-test-event", "--duplicates", "NaN", "--secret", "whsec_x", "--sim-url", "none"}, "orderflow: --duplicates must be between 0 and 1\n"},
	)
	checkUsageCases(t, cases)

	t.Setenv("ORDERFLOW_TIMEOUT", "0")
	checkUsageCases(t, []usageCase{{[]string{"dlq", "list"}, `orderflow: invalid environment: ORDERFLOW_TIMEOUT="0": must be positive` + "\n"}})
}

// --brokers is a list of host:port, checked when it is read, by every
// command that takes it: a bad one is a usage error naming it.
func TestBrokersMustBeHostPort(t *testing.T) {
	var cases []usageCase
	for _, cmd := range [][]string{{"dlq", "list"}, {"orders", "show", "pi_1"}, {"topics", "check"}, {"processor"}, {"gateway"}, {"console"}} {
		name := strings.Join(cmd[:min(2, len(cmd))], " ")
		if cmd[0] == "orders" {
			name = "orders show"
		}
		for _, tc := range []struct{ v, reason string }{
			{"127.0.0.1:99999", `broker "127.0.0.1:99999": port "99999" is not a number from 1 to 65535`},
			{"127.0.0.1:0", `broker "127.0.0.1:0": port "0" is not a number from 1 to 65535`},
			{"not an address", `broker "not an address" is not host:port`},
			{"kafka:9092,kafka2", `broker "kafka2" is not host:port`},
			{"bad host:9092", `broker "bad host:9092": "bad host" is not a host name or IP address`},
			{" , ", "no broker: want host:port, comma-separated"},
		} {
			cases = append(cases, usageCase{append(cmd, "--brokers", tc.v),
				`orderflow: invalid value "` + tc.v + `" for flag --brokers: ` + tc.reason + ". See orderflow " + name + " --help\n"})
		}
	}
	checkUsageCases(t, cases)
	for _, ok := range []string{"127.0.0.1:9092", "[::1]:9092", "kafka-0.kafka:9092,kafka-1.kafka:9093", "my_broker:1"} {
		if err := checkBrokers(ok); err != nil {
			t.Errorf("checkBrokers(%q) = %v, want nil", ok, err)
		}
	}
}

// --redis-addr is host:port like --brokers: one without its port is a
// usage error naming the flag, not a Redis that never answers.
func TestRedisAddrMustBeHostPort(t *testing.T) {
	var cases []usageCase
	for _, cmd := range []string{"gateway", "processor", "dev"} {
		cases = append(cases,
			usageCase{[]string{cmd, "--redis-addr", "127.0.0.1"},
				`orderflow: invalid value "127.0.0.1" for flag --redis-addr: Redis address "127.0.0.1" is not host:port. See orderflow ` + cmd + " --help\n"},
			usageCase{[]string{cmd, "--redis-addr", "redis:0"},
				`orderflow: invalid value "redis:0" for flag --redis-addr: Redis address "redis:0": port "0" is not a number from 1 to 65535. See orderflow ` + cmd + " --help\n"})
	}
	checkUsageCases(t, cases)
	t.Setenv("ORDERFLOW_REDIS_ADDR", "127.0.0.1")
	checkUsageCases(t, []usageCase{{[]string{"gateway"}, `orderflow: invalid environment: ORDERFLOW_REDIS_ADDR="127.0.0.1": Redis address "127.0.0.1" is not host:port` + "\n"}})
	for _, ok := range []string{"", "127.0.0.1:6379", "redis:6379", "[::1]:6379"} {
		if err := checkRedisAddr(ok); err != nil {
			t.Errorf("checkRedisAddr(%q) = %v, want nil", ok, err)
		}
	}
}

// --max-inflight-bytes below --max-body is refused naming both flags.
func TestGatewayInflightBytesBelowMaxBody(t *testing.T) {
	t.Setenv("ORDERFLOW_WEBHOOK_SECRET", "whsec_test")
	checkUsageCases(t, []usageCase{
		{[]string{"gateway", "--max-inflight-bytes", "1000"}, "orderflow: --max-inflight-bytes 1000 is below --max-body 524288: one body of the largest size would never be let in; raise --max-inflight-bytes or lower --max-body\n"},
		{[]string{"gateway", "--max-body", "2048", "--max-inflight-bytes", "2047"}, "orderflow: --max-inflight-bytes 2047 is below --max-body 2048: one body of the largest size would never be let in; raise --max-inflight-bytes or lower --max-body\n"},
	})
}

// --topic-prefix takes what Kafka allows in a topic name, short enough for
// every topic made from it; --replication-factor is -1 or 1 to 32767.
func TestTopicFlagsAreChecked(t *testing.T) {
	long := strings.Repeat("a", 238)
	cases := []usageCase{
		{[]string{"topics", "create", "--replication-factor", "0"}, "orderflow: --replication-factor 0: want from 1 to 32767, or -1 for the broker's default\n"},
		{[]string{"topics", "create", "--replication-factor", "-7"}, "orderflow: --replication-factor -7: want from 1 to 32767, or -1 for the broker's default\n"},
		{[]string{"topics", "create", "--replication-factor", "40000"}, "orderflow: --replication-factor 40000: want from 1 to 32767, or -1 for the broker's default\n"},
		{[]string{"topics", "create", "--partitions", "3000000000"}, "orderflow: --partitions must be from 1 to 2147483647\n"},
		{[]string{"topics", "create", "--topic-prefix", long}, `orderflow: invalid value "` + long + `" for flag --topic-prefix: 238 characters is too long: with the suffix orders.state a topic name would be 250 characters, Kafka allows 249. See orderflow topics create --help` + "\n"},
	}
	for _, cmd := range [][]string{{"topics", "create"}, {"dlq", "list"}, {"orders", "list"}, {"processor"}, {"gateway"}, {"console"}} {
		name := strings.Join(cmd, " ")
		cases = append(cases,
			usageCase{append(cmd, "--topic-prefix", "bad prefix/"), `orderflow: invalid value "bad prefix/" for flag --topic-prefix: ' ' is not allowed in a topic name (letters, digits, '.', '_' and '-'). See orderflow ` + name + " --help\n"},
			usageCase{append(cmd, "--topic-prefix", "shop/"), `orderflow: invalid value "shop/" for flag --topic-prefix: '/' is not allowed in a topic name (letters, digits, '.', '_' and '-'). See orderflow ` + name + " --help\n"},
		)
	}
	checkUsageCases(t, cases)
	for _, ok := range []string{"", "shop1.", "a-b_c.", strings.Repeat("a", 237)} {
		if err := checkTopicPrefix(ok); err != nil {
			t.Errorf("checkTopicPrefix(%q) = %v, want nil", ok, err)
		}
	}
}

// The group timeouts are refused below the Kafka client's 100ms floor and
// above what the protocol carries, as usage errors.
func TestProcessorGroupTimeoutBounds(t *testing.T) {
	checkUsageCases(t, []usageCase{
		{[]string{"processor", "--session-timeout", "1ms"}, "orderflow: --session-timeout 1ms: want from 100ms to 24 days\n"},
		{[]string{"processor", "--session-timeout", "99ms"}, "orderflow: --session-timeout 99ms: want from 100ms to 24 days\n"},
		{[]string{"processor", "--session-timeout", "600h"}, "orderflow: --session-timeout 600h0m0s: want from 100ms to 24 days\n"},
		{[]string{"processor", "--rebalance-timeout", "50ms"}, "orderflow: --rebalance-timeout 50ms: want from 100ms to 24 days\n"},
	})
	fs := newFlagSet("processor", processorUsage, io.Discard)
	var f processorFlags
	f.register(fs)
	if err := parseFlags(fs, []string{"--session-timeout", "100ms", "--rebalance-timeout", "100ms"}); err != nil {
		t.Fatal(err)
	}
	if cfg, err := f.config(); err != nil || cfg.SessionTimeout != 100*time.Millisecond {
		t.Errorf("--session-timeout 100ms: %v, %v", cfg.SessionTimeout, err)
	}
}

// --help prints the usage on stdout and exits 0, for every command and
// subcommand; nothing goes to stderr.
func TestHelpIsOnStdout(t *testing.T) {
	args := [][]string{
		{"dlq", "--help"}, {"dlq", "help"}, {"dlq", "list", "--help"}, {"dlq", "show", "-h"}, {"dlq", "replay", "--help"},
		{"orders", "--help"}, {"orders", "show", "--help"}, {"orders", "erase", "--help"}, {"orders", "list", "--help"}, {"orders", "search", "--help"},
		{"topics", "--help"}, {"topics", "help"}, {"topics", "create", "--help"}, {"topics", "check", "-h"},
		{"help", "dlq"}, {"help", "loadgen"},
	}
	for _, c := range commands {
		args = append(args, []string{c.name, "--help"})
	}
	for _, a := range args {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), a, &stdout, &stderr)
		if code != 0 || !strings.HasPrefix(stdout.String(), "Usage: orderflow ") || stderr.Len() != 0 {
			t.Errorf("orderflow %q: exit %d, stdout %.60q, stderr %.200q; want exit 0 and the usage on stdout only", a, code, stdout.String(), stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	run(context.Background(), []string{"dlq", "list", "--help"}, &stdout, &stderr)
	if !strings.Contains(stdout.String(), "  -brokers host:port\n") || !strings.Contains(stdout.String(), "  -timeout duration\n") {
		t.Errorf("dlq list --help lacks its flags:\n%s", stdout.String())
	}
}

// Plain `orders` names every subcommand.
func TestOrdersWithoutSubcommand(t *testing.T) {
	checkUsageCases(t, []usageCase{{[]string{"orders"},
		"orderflow: orders: want 'show <order-id>', 'erase <order-id>', 'list' or 'search <term>' (run 'orderflow orders --help')\n"}})
}

// --step filters read step names as --steps does: any case for a built-in
// step, webhook:<name> with the webhook name rule, no provider.
func TestStepFilterReadsNamesAsSteps(t *testing.T) {
	got, err := stepFilter("SHIPPING, Crm,webhook:erp,shipping")
	if err != nil || strings.Join(got, ",") != "shipping,crm,webhook:erp" {
		t.Errorf("stepFilter = %q, %v; want shipping,crm,webhook:erp", got, err)
	}
	checkUsageCases(t, []usageCase{
		{[]string{"dlq", "list", "--step", "webhook:a b"}, `orderflow: --step: webhook: name "a b" must be 1–64 letters, digits, '_' or '-'` + "\n"},
		{[]string{"dlq", "replay", "--step", "webhook:a b", "--dry-run"}, `orderflow: --step: webhook: name "a b" must be 1–64 letters, digits, '_' or '-'` + "\n"},
		{[]string{"orders", "list", "--step", "webhook:a/b"}, `orderflow: --step: webhook: name "a/b" must be 1–64 letters, digits, '_' or '-'` + "\n"},
		{[]string{"dlq", "list", "--step", "shipping=postnord"}, `orderflow: --step: "shipping=postnord": name a step, without its provider` + "\n"},
		{[]string{"dlq", "list", "--step", "fax"}, `orderflow: --step: unknown step "fax" (steps: details, crm, production_log, shipping, invoice, email, webhook:<name>)` + "\n"},
	})

	// orders list asks the console for the steps as --steps names them.
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.Query().Encode()
		_ = json.NewEncoder(w).Encode(map[string]any{"orders": []any{}})
	}))
	defer srv.Close()
	code, out, errs := orderflow(t, "orders", "list", "--step", "SHIPPING,Invoice", "--console", srv.URL)
	if code != 0 || !strings.Contains(query, "step=shipping&step=invoice") {
		t.Errorf("orders list --step SHIPPING,Invoice: exit %d, console asked %q\n%s%s", code, query, out, errs)
	}
}

// A step filter in upper case selects the dead letters of that step.
func TestDLQListStepInAnyCase(t *testing.T) {
	e := newDLQEnv(t)
	e.produce(e.deadLetter(dl{key: "pi_ship", partition: 0, step: "shipping", class: "permanent"}),
		e.deadLetter(dl{key: "pi_crm", partition: 1, step: "crm", class: "permanent"}))
	code, out, errs := e.run("dlq", "list", "--step", "SHIPPING", "--json")
	if code != 0 || !strings.Contains(out, "pi_ship") || strings.Contains(out, "pi_crm") {
		t.Errorf("dlq list --step SHIPPING: exit %d\n%s%s", code, out, errs)
	}
}

// A class filter in any case selects the dead letters of that class, as
// --step does.
func TestDLQListClassInAnyCase(t *testing.T) {
	e := newDLQEnv(t)
	e.produce(e.deadLetter(dl{key: "pi_exh", partition: 0, step: "shipping", class: "exhausted"}),
		e.deadLetter(dl{key: "pi_perm", partition: 1, step: "crm", class: "permanent"}))
	code, out, errs := e.run("dlq", "list", "--class", "Exhausted", "--json")
	if code != 0 || !strings.Contains(out, "pi_exh") || strings.Contains(out, "pi_perm") {
		t.Errorf("dlq list --class Exhausted: exit %d\n%s%s", code, out, errs)
	}
}

// /dev/null is a character device but no terminal; a pipe is neither.
func TestIsTerminal(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if isTerminal(null) {
		t.Errorf("isTerminal(%s) = true", os.DevNull)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(r) || isTerminal(commandStderr{w, io.Discard}) {
		t.Error("a pipe is taken for a terminal")
	}
}

// An argument of '-' and a digit is a bad partition/offset, not an
// unknown flag; a flag's negative value is still its value.
func TestDLQShowNegativeSource(t *testing.T) {
	checkUsageCases(t, []usageCase{
		{[]string{"dlq", "show", "-1/0"}, `orderflow: dlq show: bad partition/offset "-1/0": partition must be a number >= 0` + "\n"},
		{[]string{"dlq", "show", "0/-3"}, `orderflow: dlq show: bad partition/offset "0/-3": offset must be a number >= 0` + "\n"},
		{[]string{"dlq", "show", "--reveal", "-5"}, `orderflow: dlq show: bad partition/offset "-5": want <partition>/<offset>` + "\n"},
		{[]string{"dlq", "list", "--width", "-1"}, "orderflow: --width must be 0 or more\n"},
		{[]string{"dlq", "show", "--", "-2/1"}, `orderflow: dlq show: bad partition/offset "-2/1": partition must be a number >= 0` + "\n"},
	})
}

// A replay's --rate has the console's bound: above 0, at most 1000.
func TestDLQReplayRateBound(t *testing.T) {
	checkUsageCases(t, []usageCase{
		{[]string{"dlq", "replay", "--all", "--dry-run", "--rate", "1e9"}, "orderflow: --rate 1e+09: want a number of records per second above 0 and at most 1000\n"},
		{[]string{"dlq", "replay", "--all", "--dry-run", "--rate", "1000.5"}, "orderflow: --rate 1000.5: want a number of records per second above 0 and at most 1000\n"},
		{[]string{"dlq", "replay", "--all", "--dry-run", "--rate", "NaN"}, "orderflow: --rate NaN: want a number of records per second above 0 and at most 1000\n"},
		{[]string{"dlq", "replay", "--all", "--dry-run", "--rate", "-1"}, "orderflow: --rate -1: want a number of records per second above 0 and at most 1000\n"},
	})
}

// With --console, --timeout bounds the console's answer too.
func TestOrdersListConsoleTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	code, _, errs := orderflow(t, "orders", "list", "--console", srv.URL, "--timeout", "300ms")
	host := strings.TrimPrefix(srv.URL, "http://")
	if want := "orderflow: no answer from the console at " + host + " within --timeout 300ms\n"; code != 1 || errs != want {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, errs, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v, want about 300ms", d)
	}
}

// The hint after one order names --brokers when it is not the default.
func TestSendTestEventHintNamesBrokers(t *testing.T) {
	srv, _ := startGateway(t)
	hint := regexp.MustCompile(`(?m)^see the order with: .+ orders show pi_\w+((?: --\S+ \S+)*)$`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"--brokers", "127.0.0.1:9092"}, ""},
		{[]string{"--brokers", "127.0.0.1:19092"}, " --brokers 127.0.0.1:19092"},
		{[]string{"--topic-prefix", "shop1."}, " --topic-prefix shop1."},
		{[]string{"--brokers", "127.0.0.1:19092", "--topic-prefix", "shop1."}, " --brokers 127.0.0.1:19092 --topic-prefix shop1."},
	} {
		args := append([]string{"send-test-event", "--url", srv.URL + gateway.WebhookPath, "--secret", testSecret, "--sim-url", "none"}, tc.args...)
		code, out, errs := orderflow(t, args...)
		m := hint.FindStringSubmatch(out)
		if code != 0 || m == nil || m[1] != tc.want {
			t.Errorf("%q: exit %d, hint %q, want it to end in %q\n%s%s", tc.args, code, m, tc.want, out, errs)
		}
	}
	checkUsageCases(t, []usageCase{{[]string{"send-test-event", "--brokers", "kafka", "--secret", testSecret, "--sim-url", "none"},
		`orderflow: invalid value "kafka" for flag --brokers: broker "kafka" is not host:port. See orderflow send-test-event --help` + "\n"}})
}

// A secret that is not an endpoint signing secret is refused before
// anything is sent, naming where it came from, as the gateway refuses it.
func TestSendTestEventRefusesANonWebhookSecret(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "webhook-secret"), []byte("sk_test_file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"send-test-event", "--url", "http://127.0.0.1:1/webhooks/stripe", "--sim-url", "none"}
	checkUsageCases(t, []usageCase{
		{append(base, "--secret", "sk_test_abc"), "orderflow: --secret: the secret does not start with whsec_: Stripe endpoint signing secrets start with whsec_\n"},
		{append(base, "--data-dir", dir), "orderflow: " + filepath.Join(dir, "webhook-secret") + ": the secret does not start with whsec_: Stripe endpoint signing secrets start with whsec_\n"},
	})
	t.Setenv("ORDERFLOW_WEBHOOK_SECRET", "rk_test_env")
	checkUsageCases(t, []usageCase{{base, "orderflow: ORDERFLOW_WEBHOOK_SECRET: the secret does not start with whsec_: Stripe endpoint signing secrets start with whsec_\n"}})
}

// A missing topic's hint is the topics create to run with the connection
// flags the command was given; run as printed, it creates the topics.
func TestMissingTopicHintCarriesConnectionFlags(t *testing.T) {
	brokers := testenv.Kafka(t)
	prefix := testenv.Prefix(t)
	code, _, errs := orderflow(t, "orders", "show", "pi_hint", "--brokers", brokers, "--topic-prefix", prefix)
	want := "orderflow: topic " + prefix + "orders.state does not exist (run 'orderflow topics create --brokers " + brokers + " --topic-prefix " + prefix + "')\n"
	if code != 1 || errs != want {
		t.Fatalf("orders show before topics create: exit %d, stderr %q; want 1 and %q", code, errs, want)
	}
	cmd := strings.Fields(errs[strings.Index(errs, "'orderflow ")+len("'orderflow ") : strings.LastIndex(errs, "'")])
	if code, out, errs := orderflow(t, append(cmd, "--partitions", "1", "--replication-factor", "1")...); code != 0 {
		t.Fatalf("%v as printed: exit %d\n%s%s", cmd, code, out, errs)
	}
	code, _, errs = orderflow(t, "orders", "show", "pi_hint", "--brokers", brokers, "--topic-prefix", prefix)
	if code != 1 || !strings.Contains(errs, "order pi_hint not found") {
		t.Errorf("orders show after the printed topics create: exit %d, stderr %q", code, errs)
	}
}

// The topics command of a hint names every connection setting given, the
// default brokers and an unset prefix left out; a password never.
func TestTopicsCommandOfAHint(t *testing.T) {
	for _, tc := range []struct {
		k    kafkaFlags
		want string
	}{
		{kafkaFlags{brokers: defaultBrokers}, "orderflow topics create"},
		{kafkaFlags{brokers: "kafka:9092", prefix: "shop1."}, "orderflow topics create --brokers kafka:9092 --topic-prefix shop1."},
		{kafkaFlags{brokers: defaultBrokers, tls: true, tlsCA: "/etc/kafka ca.pem", saslMech: "PLAIN", saslUser: "ops", saslPassFile: "/run/secrets/kafka"},
			`orderflow topics create --kafka-tls --kafka-tls-ca "/etc/kafka ca.pem" --kafka-sasl-mechanism PLAIN --kafka-sasl-user ops --kafka-sasl-password-file /run/secrets/kafka`},
	} {
		if got := tc.k.topicsCommand("create"); got != tc.want {
			t.Errorf("topicsCommand = %q, want %q", got, tc.want)
		}
	}
	k := kafkaFlags{brokers: "kafka:9092", prefix: "shop1."}
	inner := errors.New("processor: shop1.orders.state has 3 partitions, shop1.orders has 4: they must be co-partitioned (run 'orderflow topics check')")
	err := k.withTopicsHint(fmt.Errorf("wrapped: %w", inner))
	if want := "wrapped: processor: shop1.orders.state has 3 partitions, shop1.orders has 4: they must be co-partitioned (run 'orderflow topics check --brokers kafka:9092 --topic-prefix shop1.')"; err.Error() != want || !errors.Is(err, inner) {
		t.Errorf("withTopicsHint = %q (unwraps to the original: %v), want %q", err, errors.Is(err, inner), want)
	}
}

// An erasure names the label files it leaves, from the shipping result
// erased with the state.
func TestLabelFilesOfAnErasedOrder(t *testing.T) {
	res := []byte(`{"shipment_id":"s1","tracking_number":"00370712345","label_location":"file:///srv/labels/pi_1_label-00370712345.pdf","customs_location":"file:///srv/labels/pi_1_customs-s1.pdf"}`)
	st := &processor.State{OrderID: "pi_1", Steps: map[string]*processor.StepState{processor.StepShipping: {Done: true, Result: res}}}
	got := strings.Join(labelFiles(st), " | ")
	if want := "the shipping label file /srv/labels/pi_1_label-00370712345.pdf | the customs declaration file /srv/labels/pi_1_customs-s1.pdf"; got != want {
		t.Errorf("labelFiles = %q\nwant %q", got, want)
	}
	st.Steps[processor.StepShipping].Result = []byte(`{"label_location":"https://portal.example/labels/1"}`)
	if got := strings.Join(labelFiles(st), " | "); got != "the shipping label file https://portal.example/labels/1" {
		t.Errorf("labelFiles of a URL = %q", got)
	}
	st.Steps[processor.StepShipping].Done = false
	if got := labelFiles(st); got != nil {
		t.Errorf("labelFiles before shipping = %q", got)
	}
}

// A SASL mechanism without its user or password is a usage error naming
// what is missing; against a broker without SASL the error says to check
// the SASL settings.
func TestKafkaSASLSettings(t *testing.T) {
	t.Setenv("ORDERFLOW_KAFKA_SASL_PASSWORD", "")
	checkUsageCases(t, []usageCase{
		{[]string{"dlq", "list", "--kafka-sasl-mechanism", "PLAIN"},
			"orderflow: --kafka-sasl-mechanism PLAIN needs --kafka-sasl-user and a password (--kafka-sasl-password-file or ORDERFLOW_KAFKA_SASL_PASSWORD)\n"},
		{[]string{"topics", "check", "--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-user", "ops"},
			"orderflow: --kafka-sasl-mechanism SCRAM-SHA-256 needs a password (--kafka-sasl-password-file or ORDERFLOW_KAFKA_SASL_PASSWORD)\n"},
	})
	brokers := testenv.Kafka(t)
	t.Setenv("ORDERFLOW_KAFKA_SASL_PASSWORD", "p")
	code, _, errs := orderflow(t, "dlq", "list", "--brokers", brokers, "--topic-prefix", testenv.Prefix(t), "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "u", "--timeout", "5s")
	if want := "Kafka at " + brokers + " does not take this SASL login; is SASL misconfigured? Check --kafka-sasl-mechanism against the listener's (a broker without SASL wants none) and --kafka-tls\n"; code != 1 || !strings.HasSuffix(errs, want) {
		t.Errorf("SASL against a broker without it: exit %d, stderr %q; want 1 and a line ending in %q", code, errs, want)
	}
}

// orders show --reveal without --json is refused: the text view shows no
// customer data to reveal.
func TestOrdersShowRevealNeedsJSON(t *testing.T) {
	checkUsageCases(t, []usageCase{{[]string{"orders", "show", "pi_1", "--reveal", "--brokers", "127.0.0.1:1"},
		"orderflow: orders show: --reveal needs --json (the text view shows no customer data)\n"}})
}

// A duration that does not parse says what a valid one looks like, on the
// command line and in the environment.
func TestBadDurationSaysWhatIsValid(t *testing.T) {
	checkUsageCases(t, []usageCase{
		{[]string{"gateway", "--produce-timeout", "abc"}, `orderflow: invalid value "abc" for flag --produce-timeout: want a duration such as 5s, 500ms or 1m30s. See orderflow gateway --help` + "\n"},
		{[]string{"dlq", "list", "--timeout", "x"}, `orderflow: invalid value "x" for flag --timeout: want a duration such as 5s, 500ms or 1m30s. See orderflow dlq list --help` + "\n"},
	})
	t.Setenv("ORDERFLOW_PRODUCE_TIMEOUT", "abc")
	checkUsageCases(t, []usageCase{{[]string{"gateway"}, `orderflow: invalid environment: ORDERFLOW_PRODUCE_TIMEOUT="abc": want a duration such as 5s, 500ms or 1m30s` + "\n"}})
}
