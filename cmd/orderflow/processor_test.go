package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/testenv"
)

func TestProcessorFlagsConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(*testing.T, processor.Config)
		wantErr string
	}{
		{"defaults", nil, func(t *testing.T, c processor.Config) {
			if c.Group != "orderflow-processor" || c.Topics.Orders != "orders" || c.Retry.MaxAttempts != 5 || c.Retry.BaseDelay != 2*time.Second {
				t.Errorf("config %+v", c)
			}
		}, ""},
		{"settings", []string{"--topic-prefix", "shop1.", "--group", "g", "--max-inflight", "50", "--max-inflight-per-partition", "5",
			"--retry-base-delay", "1s", "--retry-attempts", "7", "--shipping-intent-policy", "dead-letter", "--revoke-deadline", "3s"},
			func(t *testing.T, c processor.Config) {
				if c.Topics.State != "shop1.orders.state" || c.Group != "g" || c.MaxInflight != 50 || c.MaxInflightPerPartition != 5 ||
					c.Retry.BaseDelay != time.Second || c.Retry.MaxAttempts != 7 || c.RevokeDeadline != 3*time.Second ||
					c.IntentPolicy[processor.StepShipping] != processor.IntentDeadLetter || c.IntentPolicy[processor.StepEmail] != processor.IntentReconcile {
					t.Errorf("config %+v", c)
				}
			}, ""},
		{"bad policy", []string{"--email-intent-policy", "skip"}, nil, "--email-intent-policy"},
		{"bad bound", []string{"--max-inflight", "0"}, nil, "max in-flight"},
		{"quota hold defaults", nil, func(t *testing.T, c processor.Config) {
			if c.QuotaProbeInterval != 15*time.Minute || c.QuotaReleaseRate != 20 {
				t.Errorf("quota probe %v, release %d/s, want 15m and 20", c.QuotaProbeInterval, c.QuotaReleaseRate)
			}
		}, ""},
		{"quota hold settings", []string{"--quota-probe-interval", "5m", "--quota-release-rate", "50"}, func(t *testing.T, c processor.Config) {
			if c.QuotaProbeInterval != 5*time.Minute || c.QuotaReleaseRate != 50 {
				t.Errorf("quota probe %v, release %d/s, want 5m and 50", c.QuotaProbeInterval, c.QuotaReleaseRate)
			}
		}, ""},
		{"bad release rate", []string{"--quota-release-rate", "0"}, nil, "quota release rate"},
		{"bad probe interval", []string{"--quota-probe-interval", "-1s"}, nil, "quota probe interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlagSet("processor", processorUsage, io.Discard)
			var f processorFlags
			f.register(fs)
			if err := parseFlags(fs, tt.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := f.config()
			if tt.wantErr != "" {
				var ue usageError
				if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("config() = %v, want a usage error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
		})
	}
}

// TestProcessorEmptySteps: an empty --steps (an unset template value) is
// the default chain, not details alone.
func TestProcessorEmptySteps(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  string
	}{
		{"flag empty", []string{"--steps", ""}, ""},
		{"flag blank", []string{"--steps", " , "}, ""},
		{"env empty", nil, "ORDERFLOW_STEPS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(tc.env, "")
			}
			fs := newFlagSet("processor", processorUsage, io.Discard)
			var f processorFlags
			f.register(fs)
			if err := f.parse(fs, tc.args); err != nil {
				t.Fatal(err)
			}
			chain, on, err := f.providers.enabledSteps()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range chain {
				got = append(got, e.name)
			}
			if strings.Join(got, ",") != "details,crm,production_log,shipping,invoice,email" || !on["shipping"] || !on["email"] {
				t.Errorf("chain %v, want details,crm,production_log,shipping,invoice,email", got)
			}
		})
	}
	fs := newFlagSet("processor", processorUsage, io.Discard)
	var f processorFlags
	f.register(fs)
	if u := fs.Lookup("steps").Usage; !strings.Contains(u, "empty (or only commas and spaces): the default chain") {
		t.Errorf("--steps help does not say what empty means: %s", u)
	}
}

// TestProcessorSilentBroker: a broker that accepts connections and never
// answers gets the CLI reads' hint after --timeout, and the processor does
// not say it consumes.
func TestProcessorSilentBroker(t *testing.T) {
	addr := testenv.NewSilent(t).Addr
	code, out, errs := orderflow(t, "processor", "--brokers", addr, "--timeout", "1s", "--sim-url", "http://127.0.0.1:1",
		"--metrics-addr", "", "--label-dir", t.TempDir(), "--log-level", "error")
	for _, want := range []string{
		"orderflow: waiting for Kafka at " + addr + " to answer (the processor's start)",
		"orderflow: no answer from Kafka at " + addr + " within --timeout 1s: something accepts connections there but does not answer as a Kafka broker",
	} {
		if code != 1 || !strings.Contains(errs, want) {
			t.Errorf("exit %d, stderr lacks %q:\n%s", code, want, errs)
		}
	}
	if strings.Contains(out, "consuming") {
		t.Errorf("stdout %q: the processor said it consumes before Kafka answered", out)
	}
}

// TestProcessorRefusesUnusableFolders: a --label-dir that exists but cannot
// be written, and a --state-dir that cannot be created, are usage errors
// (exit 2) naming the flag, found before Kafka is contacted.
func TestProcessorRefusesUnusableFolders(t *testing.T) {
	file := filepath.Join(t.TempDir(), "afile")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"processor", "--brokers", refusedBrokers, "--timeout", "1s", "--sim-url", "http://127.0.0.1:1", "--metrics-addr", ""}
	ro := testenv.UnwritableDir(t)
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"label dir not writable", []string{"--label-dir", ro},
			[]string{"orderflow: --label-dir: labelstore: folder " + ro + " cannot be written: open " + ro + "/.probe-", "permission denied"}},
		{"label dir under a file", []string{"--label-dir", file + "/labels"},
			[]string{"orderflow: --label-dir: labelstore: mkdir " + file + ": not a directory"}},
		{"state dir under a file", []string{"--label-dir", t.TempDir(), "--state-dir", file + "/state"},
			[]string{"orderflow: --state-dir: mkdir " + file + ": not a directory"}},
		{"state dir not writable", []string{"--label-dir", t.TempDir(), "--state-dir", ro},
			[]string{"orderflow: --state-dir: folder " + ro + " cannot be written: open " + ro + "/.probe-", "permission denied"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := orderflow(t, append(base, tt.args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2\n%s%s", code, out, errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
			if strings.Contains(out, "consuming") {
				t.Errorf("stdout %q: the processor said it consumes", out)
			}
		})
	}
}

// TestProcessorSaysConsumingOnlyOnceStarted: with its topic missing the
// processor refuses to start without having said it consumes; with the
// topics there it says so once.
func TestProcessorSaysConsumingOnlyOnceStarted(t *testing.T) {
	brokers := testenv.Kafka(t)
	prefix := testenv.Prefix(t)
	group := prefix + "proc"
	args := []string{"processor", "--brokers", brokers, "--topic-prefix", prefix, "--group", group, "--timeout", "10s",
		"--sim-url", "http://127.0.0.1:1", "--metrics-addr", "", "--label-dir", t.TempDir(), "--log-level", "error"}
	code, out, errs := orderflow(t, args...)
	if code != 1 || !strings.Contains(errs, "orderflow: processor: topic "+prefix+"orders is missing") {
		t.Fatalf("without topics: exit %d, stderr %q; want 1 naming the missing topic", code, errs)
	}
	if out != "" {
		t.Fatalf("without topics: stdout %q, want nothing", out)
	}

	if code, out, errs := orderflow(t, "topics", "create", "--brokers", brokers, "--topic-prefix", prefix, "--partitions", "2", "--replication-factor", "1"); code != 0 {
		t.Fatalf("topics create: exit %d\n%s%s", code, out, errs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, &stdout, &stderr) }()
	want := "processor consuming " + prefix + "orders as group " + group + "\n"
	deadline := time.After(30 * time.Second)
	for stdout.String() != want {
		select {
		case code := <-done:
			t.Fatalf("processor exited %d, stdout %q, stderr:\n%s", code, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("stdout %q, want %q", stdout.String(), want)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("stopped processor: exit %d\n%s", code, stderr.String())
	}
	if stdout.String() != want {
		t.Fatalf("stdout %q, want the line once", stdout.String())
	}
}
