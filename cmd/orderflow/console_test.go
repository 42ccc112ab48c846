package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/testenv"
)

func TestConsoleUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "users")
	_ = os.WriteFile(bad, []byte("ops:admin:$2a$10$x\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"console"}, "give --users-file or --tokens-file"},
		{[]string{"console", "--dev-no-login", "--http-addr", "0.0.0.0:8070"}, "--dev-no-login needs a loopback --http-addr"},
		{[]string{"console", "--users-file", dir + "/none", "--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"console", "--cache-size", "0", "--dev-no-login"}, "--cache-size must be at least 1 MiB"},
		{[]string{"console", "extra", "--dev-no-login"}, `unexpected argument "extra"`},
		{[]string{"console", "--dev-no-login", "--pprof-addr", "0.0.0.0:6070"}, `--pprof-addr needs a loopback address (127.0.0.1:port), not "0.0.0.0:6070"`},
		{[]string{"console", "--dev-no-login", "--pprof-addr", "6070"}, `--pprof-addr needs a loopback address`},
		{[]string{"console", "token", "ci"}, "want <name> <role>"},
		{[]string{"console", "token", "ci", "root"}, `role "root": want viewer or operator`},
		{[]string{"console", "hash-password", "--name", "a", "--role", "root"}, `--role "root"`},
		{[]string{"console", "--dev-no-login", "--processor-metrics", "notaurl"}, `--processor-metrics: "notaurl" is not an http(s) URL with a host`},
		{[]string{"console", "--dev-no-login", "--processor-metrics", "http://proc-1:9091,ftp://proc-2:9091"}, `--processor-metrics: "ftp://proc-2:9091" is not an http(s) URL`},
		{[]string{"console", "--dev-no-login", "--processor-metrics", "http://"}, `--processor-metrics: "http://" is not an http(s) URL with a host`},
		{[]string{"console", "--dev-no-login", "--users-file", "users"}, "--dev-no-login serves without login: it cannot be combined with --users-file or --tokens-file"},
		{[]string{"console", "--dev-no-login", "--tokens-file", "tokens"}, "--dev-no-login serves without login: it cannot be combined with --users-file or --tokens-file"},
	} {
		args := tc.args
		if len(args) == 1 || (args[1] != "token" && args[1] != "hash-password") {
			args = append(args, "--brokers", "127.0.0.1:1")
		}
		code, out, errs := orderflow(t, args...)
		if code != 2 || !strings.Contains(errs, tc.want) || out != "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
	// A users file with a bad role is refused before Kafka is reached.
	code, _, errs := orderflow(t, "console", "--users-file", bad, "--brokers", "127.0.0.1:1")
	if code != 2 || !strings.Contains(errs, `line 1: role "admin": want viewer or operator`) {
		t.Errorf("bad users file: exit %d %q", code, errs)
	}
}

func TestConsoleTokenAndHash(t *testing.T) {
	code, out, _ := orderflow(t, "console", "token", "ci", "operator")
	if code != 0 || !strings.Contains(out, "tokens-file line: ci:operator:") || !strings.Contains(out, "ofc_") {
		t.Fatalf("token: %d %q", code, out)
	}
	stdin = strings.NewReader("long enough password\n")
	defer func() { stdin = nil }()
	code, out, errs := orderflow(t, "console", "hash-password", "--name", "ana", "--role", "viewer")
	if code != 0 || !strings.HasPrefix(out, "ana:viewer:$2a$") {
		t.Fatalf("hash-password: %d %q %q", code, out, errs)
	}
	stdin = strings.NewReader("short\n")
	if code, _, errs := orderflow(t, "console", "hash-password", "--name", "ana"); code != 2 || !strings.Contains(errs, "at least 8 characters") {
		t.Fatalf("short password: %d %q", code, errs)
	}
}

func TestConsoleSubcommandHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"console", "token", "--help"}, "Usage: orderflow console token <name> <role>\n"},
		{[]string{"console", "token", "-h"}, "Usage: orderflow console token <name> <role>\n"},
		{[]string{"console", "hash-password", "--help"}, "Usage: orderflow console hash-password [flags]\n"},
	} {
		code, out, errs := orderflow(t, tc.args...)
		if code != 0 || !strings.HasPrefix(out, tc.want) || errs != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 0 and the usage on stdout", tc.args, code, out, errs)
		}
	}
	if _, out, _ := orderflow(t, "console", "hash-password", "--help"); !strings.Contains(out, "Flags (each also ORDERFLOW_<FLAG>):\n  -name string") {
		t.Errorf("hash-password --help lacks its flags:\n%s", out)
	}
}

// TestConsoleSilentBroker: a broker that accepts connections and never
// answers gets the CLI reads' hint after --timeout.
func TestConsoleSilentBroker(t *testing.T) {
	addr := testenv.NewSilent(t).Addr
	code, out, errs := orderflow(t, "console", "--dev-no-login", "--http-addr", "127.0.0.1:0", "--index-dir", t.TempDir(), "--brokers", addr, "--timeout", "1s")
	for _, want := range []string{
		"orderflow: waiting for Kafka at " + addr + " to answer (the console's start",
		"orderflow: no answer from Kafka at " + addr + " within --timeout 1s: something accepts connections there but does not answer as a Kafka broker",
	} {
		if code != 1 || !strings.Contains(errs, want) {
			t.Errorf("exit %d, stderr lacks %q:\n%s", code, want, errs)
		}
	}
	if out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}
}

// TestOrdersListAndSearch: the same filters with and without a console,
// and the OF- number in orders show.
func TestOrdersListAndSearch(t *testing.T) {
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	mk := func(id, email string, status processor.Status, created time.Time) *kgo.Record {
		st := &processor.State{OrderID: id, Status: status, CreatedAt: created, UpdatedAt: created,
			Order: &integrations.Order{Model: integrations.OrderModel, ID: id, Number: integrations.OrderNumber(id), Currency: "sek", AmountTotal: 12345,
				Customer: integrations.Customer{Name: "Ola", Email: email}}}
		if status == processor.StatusInProgress {
			st.Step(processor.StepDetails).Done = true
			st.Step(processor.StepCRM).Attempts = 3
		}
		v, _ := st.Encode()
		// Two records as the processor writes them (with the digest
		// header), one as an earlier build did: both are read alike.
		var hs []kgo.RecordHeader
		if status != processor.StatusInProgress {
			hs = processor.StateHeaders(st, v)
		}
		return &kgo.Record{Topic: names.State, Key: []byte(id), Value: v, Headers: hs}
	}
	if err := cl.ProduceSync(ctx,
		mk("pi_list000000001", "ola@example.se", processor.StatusCompleted, at),
		mk("pi_list000000002", "kim@example.se", processor.StatusInProgress, at.Add(time.Minute)),
		mk("pi_list000000003", "ola@example.se", processor.StatusDeadLettered, at.Add(2*time.Minute)),
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	k := []string{"--brokers", brokers, "--topic-prefix", names.Prefix}

	tokenFile := filepath.Join(t.TempDir(), "token")
	_ = os.WriteFile(tokenFile, []byte("tok-ops\n"), 0o600)
	tokens := filepath.Join(t.TempDir(), "tokens")
	// sha256("tok-ops")
	_ = os.WriteFile(tokens, []byte("ci:operator:041086374f20673b2d3681b40573ae817db655c399362cd08205cf77c8217ed0\n"), 0o600)
	cs, err := startConsole(ctx, consoleConfig{Addr: "127.0.0.1:0", IndexDir: t.TempDir(), CacheMiB: 8, Group: "g", TokensFile: tokens,
		Names: names, Kafka: []kgo.Opt{kgo.SeedBrokers(brokers)}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()
	if err := cs.follower.WaitCaughtUp(ctx, kadm.NewClient(cl)); err != nil {
		t.Fatal(err)
	}
	withConsole := []string{"--console", cs.URL(), "--console-token-file", tokenFile}

	for _, via := range []struct {
		name  string
		extra []string
		note  bool
	}{{"kafka", nil, true}, {"console", withConsole, false}} {
		for _, tc := range []struct {
			args []string
			want []string // order ids, in order
		}{
			{[]string{"orders", "list"}, []string{"pi_list000000003", "pi_list000000002", "pi_list000000001"}},
			{[]string{"orders", "list", "--status", "waiting"}, []string{"pi_list000000002"}},
			{[]string{"orders", "list", "--status", "in_progress", "--step", "crm"}, []string{"pi_list000000002"}},
			{[]string{"orders", "list", "--status", "completed,dead_lettered"}, []string{"pi_list000000003", "pi_list000000001"}},
			{[]string{"orders", "list", "--until", at.Add(30 * time.Second).Format(time.RFC3339)}, []string{"pi_list000000001"}},
			{[]string{"orders", "list", "--limit", "1"}, []string{"pi_list000000003"}},
			{[]string{"orders", "search", "OLA@example.se"}, []string{"pi_list000000003", "pi_list000000001"}},
			{[]string{"orders", "search", "OF-T000000002"}, []string{"pi_list000000002"}},
			{[]string{"orders", "search", "ola@example.se", "--status", "completed"}, []string{"pi_list000000001"}},
			{[]string{"orders", "search", "nobody@example.se"}, nil},
		} {
			args := append(append(append([]string{}, tc.args...), k...), via.extra...)
			code, out, errs := orderflow(t, append(args, "--json")...)
			if code != 0 {
				t.Errorf("%s %v: exit %d %s", via.name, tc.args, code, errs)
				continue
			}
			var got []struct{ ID, Email string }
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Errorf("%s %v: %v\n%s", via.name, tc.args, err, out)
				continue
			}
			var ids []string
			for _, g := range got {
				ids = append(ids, g.ID)
				if g.Email != "***" {
					t.Errorf("%s %v: email %q not masked", via.name, tc.args, g.Email)
				}
			}
			if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
				t.Errorf("%s %v = %v, want %v", via.name, tc.args, ids, tc.want)
			}
			if via.note != strings.Contains(errs, "no --console: read 3 record(s)") {
				t.Errorf("%s %v: stderr %q", via.name, tc.args, errs)
			}
		}
		// The table holds no customer data.
		code, out, _ := orderflow(t, append(append([]string{"orders", "search", "kim@example.se"}, k...), via.extra...)...)
		if code != 0 || !strings.Contains(out, "pi_list000000002  OF-T000000002  waiting  crm") || strings.Contains(out, "kim@") || !strings.Contains(out, "123.45 SEK") {
			t.Errorf("%s table:\n%s", via.name, out)
		}
	}
	// A list cut by --limit says how many match and how to see the older.
	code, _, errs := orderflow(t, append([]string{"orders", "list", "--limit", "2"}, k...)...)
	if want := "the newest 2 shown (--limit, at most 1000); 3 match: for older ones add --until " + at.Add(time.Minute).Format(time.RFC3339Nano); code != 0 || !strings.Contains(errs, want) {
		t.Errorf("cut list: %d %q, want %q", code, errs, want)
	}
	if code, _, errs := orderflow(t, append([]string{"orders", "list", "--limit", "3"}, k...)...); code != 0 || strings.Contains(errs, "the newest") {
		t.Errorf("whole list: %d %q, want no note", code, errs)
	}
	// A console without the token refuses.
	code, _, errs = orderflow(t, append([]string{"orders", "list", "--console", cs.URL()}, k...)...)
	if code != 1 || !strings.Contains(errs, "give its bearer token") {
		t.Errorf("without token: %d %q", code, errs)
	}
	// orders show takes the OF- number.
	code, out, errs := orderflow(t, append([]string{"orders", "show", "OF-T000000003"}, k...)...)
	if code != 0 || !strings.Contains(out, "order pi_list000000003") {
		t.Errorf("orders show OF-: %d\n%s%s", code, out, errs)
	}
	code, _, errs = orderflow(t, append([]string{"orders", "show", "OF-NOPE000000"}, k...)...)
	if code != 1 || !strings.Contains(errs, "no order on "+names.State+" has the number OF-NOPE000000") {
		t.Errorf("orders show unknown OF-: %d %q", code, errs)
	}
	// The console's JSON order answers the OF- number too, masked for nobody
	// but operators.
	req, _ := http.NewRequest(http.MethodGet, cs.URL()+"/api/orders/OF-T000000001", nil)
	req.Header.Set("Authorization", "Bearer tok-ops")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"ola@example.se"`)) {
		t.Errorf("API order by OF-: %d %s", resp.StatusCode, body)
	}
}

func TestDevModeConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	cfg := devTestConfig(t.TempDir())
	cfg.ConsoleAddr = "127.0.0.1:0"
	d, banner := startDevT(t, cfg)
	if d.console == nil || !strings.Contains(banner, "  console    "+d.console.URL()+" (no login: loopback dev mode)") ||
		!strings.Contains(banner, "orders list --console "+d.console.URL()) {
		t.Fatalf("banner lacks the console:\n%s", banner)
	}
	resp, err := http.Get(d.console.URL() + "/orders")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "dev (operator)") {
		t.Fatalf("dev console: %d\n%s", resp.StatusCode, body)
	}
	// The CLI asks dev mode's console without a token: search (a JSON
	// POST without a cookie) and list, once the order is indexed.
	sum, err := sendTestEvents(context.Background(), testEventOptions{URL: "http://" + d.httpAddr + gateway.WebhookPath,
		Secret: d.secret, Type: typeCheckout, Count: 1, Seed: 7, SimURL: "http://" + d.simAddr, Quiet: true}, io.Discard)
	if err != nil || sum.Failed > 0 || len(sum.Orders) != 1 {
		t.Fatalf("send: %v %+v", err, sum)
	}
	id := sum.Orders[0]
	number := strings.ToLower(integrations.OrderNumber(id))
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, out, errs := orderflow(t, "orders", "search", number, "--console", d.console.URL())
		if code == 0 && strings.Contains(out, id) && strings.Contains(out, "1 order(s)") {
			break
		}
		if code != 0 || time.Now().After(deadline) {
			t.Fatalf("orders search %s --console (dev mode): exit %d\n%s%s", number, code, out, errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, out, errs := orderflow(t, "orders", "list", "--console", d.console.URL()); code != 0 || !strings.Contains(out, id) {
		t.Fatalf("orders list --console (dev mode): exit %d\n%s%s", code, out, errs)
	}
	cfg = devTestConfig(t.TempDir())
	cfg.ConsoleAddr = "0.0.0.0:0"
	if _, err := startDev(context.Background(), cfg, io.Discard, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("dev console on 0.0.0.0: %v, want a loopback error", err)
	}
}
