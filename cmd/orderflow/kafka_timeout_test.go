package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/test/testenv"
)

func TestCommandsSayWhatTheyWaitForAndGiveUp(t *testing.T) {
	addr := testenv.NewSilent(t).Addr // a broker that never answers
	for _, args := range [][]string{
		{"orders", "show", "pi_1", "--brokers", addr, "--timeout", "1s"},
		{"dlq", "list", "--brokers", addr, "--timeout", "1s"},
		{"dlq", "show", "0/1", "--brokers", addr, "--timeout", "1s"},
		{"orders", "list", "--brokers", addr, "--timeout", "1s"},
		{"orders", "search", "a@example.fi", "--brokers", addr, "--timeout", "1s"},
		{"orders", "erase", "pi_1", "--yes", "--brokers", addr, "--timeout", "1s"},
		{"dlq", "replay", "--all", "--yes", "--brokers", addr, "--timeout", "1s"},
		{"dlq", "replay", "--order", "OF-ABCDEFGHIJ", "--dry-run", "--brokers", addr, "--timeout", "1s"},
		{"topics", "check", "--brokers", addr, "--timeout", "1s"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		if code != 1 {
			t.Errorf("%v: exit %d, want 1; stderr %s", args, code, stderr.String())
		}
		for _, want := range []string{
			"orderflow: waiting for Kafka at " + addr + " to answer (",
			"orderflow: no answer from Kafka at " + addr + " within --timeout 1s: something accepts connections there but does not answer as a Kafka broker",
		} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("%v: stderr lacks %q:\n%s", args, want, stderr.String())
			}
		}
	}
}

func TestCommandsNameARefusedBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, args := range [][]string{{"dlq", "list"}, {"orders", "list"}, {"orders", "show", "pi_1"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append(args, "--brokers", addr, "--timeout", "5s"), &stdout, &stderr); code != 1 {
			t.Errorf("%v: exit %d, want 1", args, code)
		}
		if want := "orderflow: Kafka at " + addr + " refused the connection: nothing listens there."; !strings.Contains(stderr.String(), want) {
			t.Errorf("%v: stderr lacks %q:\n%s", args, want, stderr.String())
		}
		if strings.Contains(stderr.String(), "unable to dial") {
			t.Errorf("%v: stderr also has the raw error:\n%s", args, stderr.String())
		}
	}
}

// A broker host that does not resolve (.invalid never does) is explained
// as such, not with the raw dial error.
func TestCommandsNameAnUnknownBrokerHost(t *testing.T) {
	const addr = "kafka.orderflow-test.invalid:9092"
	for _, args := range [][]string{{"dlq", "list"}, {"orders", "show", "pi_1"}, {"topics", "check"},
		{"processor", "--sim-url", "http://127.0.0.1:1", "--metrics-addr", "", "--label-dir", t.TempDir()}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append(args, "--brokers", addr, "--timeout", "5s"), &stdout, &stderr); code != 1 {
			t.Errorf("%v: exit %d, want 1", args, code)
		}
		if want := "orderflow: Kafka at " + addr + ": the host kafka.orderflow-test.invalid is not known (no such host). Check --brokers:"; !strings.Contains(stderr.String(), want) {
			t.Errorf("%v: stderr lacks %q:\n%s", args, want, stderr.String())
		}
		if strings.Contains(stderr.String(), "unable to dial") {
			t.Errorf("%v: stderr also has the raw error:\n%s", args, stderr.String())
		}
	}
}
