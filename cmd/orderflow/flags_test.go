package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// A mistyped flag is one line on stderr, with the nearest flag, and exit 2.
func TestBadFlagIsOneLine(t *testing.T) {
	refuseKafka(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "list", "--broker", "x"}, "orderflow: unknown flag --broker; did you mean --brokers? See orderflow dlq list --help\n"},
		{[]string{"orders", "show", "--brokres", "x", "pi_1"}, "orderflow: unknown flag --brokres; did you mean --brokers? See orderflow orders show --help\n"},
		{[]string{"dev", "--data-dri", "x"}, "orderflow: unknown flag --data-dri; did you mean --data-dir? See orderflow dev --help\n"},
		{[]string{"gateway", "--zzzzzz"}, "orderflow: unknown flag --zzzzzz. See orderflow gateway --help\n"},
		{[]string{"send-test-event", "--count", "abc"}, "orderflow: invalid value \"abc\" for flag --count: parse error. See orderflow send-test-event --help\n"},
		{[]string{"dlq", "list", "--brokers"}, "orderflow: flag --brokers needs a value. See orderflow dlq list --help\n"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", tt.args, code)
		}
		if stderr.String() != tt.want {
			t.Errorf("%v: stderr\n%q\nwant\n%q", tt.args, stderr.String(), tt.want)
		}
	}
	// --help still prints the flags, on stdout, and exits 0.
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"dlq", "list", "--help"}, &stdout, &stderr); code != 0 {
		t.Errorf("--help: exit %d", code)
	}
	if !strings.Contains(stdout.String(), "-brokers") || !strings.HasPrefix(stdout.String(), "Usage: orderflow dlq list") || stderr.Len() != 0 {
		t.Errorf("--help output: stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}
