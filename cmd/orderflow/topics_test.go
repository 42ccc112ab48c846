package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/test/testenv"
)

// orderflow runs the CLI in-process and returns its exit code and output.
func orderflow(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestTopicsCreateCheck(t *testing.T) {
	brokers := testenv.Kafka(t)
	prefix := testenv.Prefix(t)
	code, out, errs := orderflow(t, "topics", "create", "--brokers", brokers, "--topic-prefix", prefix, "--partitions", "3", "--replication-factor", "1")
	if code != 0 || !strings.Contains(out, "created "+prefix+"orders.state") || !strings.Contains(out, "topics ok") {
		t.Fatalf("create: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = orderflow(t, "topics", "create", "--brokers", brokers, "--topic-prefix", prefix, "--partitions", "3")
	if code != 0 || !strings.Contains(out, "all topics exist") {
		t.Fatalf("second create: exit %d\n%s%s", code, out, errs)
	}
	t.Setenv("ORDERFLOW_BROKERS", brokers)
	code, out, errs = orderflow(t, "topics", "check", "--topic-prefix", prefix, "--partitions", "3")
	if code != 0 || !strings.Contains(out, "topics ok") {
		t.Fatalf("check (brokers from env): exit %d\n%s%s", code, out, errs)
	}
}

func TestTopicsCheckWrongPartitions(t *testing.T) {
	brokers := testenv.Kafka(t)
	prefix := testenv.Prefix(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// orders created by hand with 2 partitions; create adds the rest with 3.
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, prefix+"orders"); err != nil {
		t.Fatal(err)
	}
	code, _, errs := orderflow(t, "topics", "create", "--brokers", brokers, "--topic-prefix", prefix, "--partitions", "3")
	if code != 1 || !strings.Contains(errs, prefix+"orders: has 2 partitions, want 3") {
		t.Fatalf("create over a wrong topic: exit %d, stderr:\n%s", code, errs)
	}
	code, _, errs = orderflow(t, "topics", "check", "--brokers", brokers, "--topic-prefix", prefix, "--partitions", "3")
	if code != 1 {
		t.Fatalf("check: exit %d, want 1\n%s", code, errs)
	}
	for _, want := range []string{
		prefix + "orders: has 2 partitions, want 3",
		prefix + "orders.state: not co-partitioned with " + prefix + "orders",
		"topic difference(s)",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr does not name %q:\n%s", want, errs)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	refuseKafka(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage: orderflow <command>"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"topics"}, 2, "want 'create' or 'check'"},
		{[]string{"topics", "check", "--partitions", "0"}, 2, "--partitions must be from 1 to 2147483647"},
		{[]string{"topics", "check", "--bogus"}, 2, "unknown flag --bogus. See orderflow topics check --help"},
		{[]string{"topics", "check", "--kafka-sasl-mechanism", "MD5"}, 2, "want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
		{[]string{"topics", "check", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"help"}, 0, "Commands:"},
	} {
		code, out, errs := orderflow(t, tc.args...)
		if code != tc.code || !strings.Contains(out+errs, tc.want) {
			t.Errorf("orderflow %v: exit %d, output:\n%s%s\nwant exit %d and %q", tc.args, code, out, errs, tc.code, tc.want)
		}
	}
}

func TestBadEnvironmentIsAUsageError(t *testing.T) {
	refuseKafka(t)
	t.Setenv("ORDERFLOW_PARTITIONS", "many")
	code, _, errs := orderflow(t, "topics", "check")
	if code != 2 || !strings.Contains(errs, `ORDERFLOW_PARTITIONS="many"`) {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
}
