package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/orderflow/orderflow/test/loadgen"
)

const loadgenUsage = `loadgen [flags]

Posts Stripe-signed webhook events at a gateway, at a target rate or as fast
as the connections allow, and reports accepted/s, latency p50/p99/max and
status counts. Exits 1 when an event never got a 2xx answer.

The secret defaults to ORDERFLOW_WEBHOOK_SECRET, then to the one 'orderflow
dev' keeps in <data-dir>/webhook-secret, as for send-test-event.`

func runLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("loadgen", loadgenUsage, stderr)
	url := fs.String("url", "http://127.0.0.1:8080/webhooks/stripe", "webhook endpoint")
	secret := fs.String("secret", "", "webhook signing secret(s), comma-separated; default ORDERFLOW_WEBHOOK_SECRET or <data-dir>/webhook-secret")
	dataDir := fs.String("data-dir", "var", "data folder of 'orderflow dev', where the default secret is kept")
	orders := fs.Int("orders", 1000, "orders to send")
	conns := fs.Int("connections", 64, "concurrent connections")
	rate := fs.Float64("rate", 0, "deliveries per second (0: as fast as possible)")
	checkout := fs.Bool("checkout", true, "send both checkout.session.completed and payment_intent.succeeded per order")
	dups := fs.Float64("duplicates", 0.1, "share of orders with one event delivered twice")
	redeliver := fs.Int("redeliver", 0, "redeliver an event that got no 2xx up to N times, as Stripe retries")
	var redeliverDelay, timeout time.Duration
	positiveDurationVar(fs, &redeliverDelay, "redeliver-delay", time.Second, "wait before a redelivery (a `duration` above 0)")
	positiveDurationVar(fs, &timeout, "timeout", 10*time.Second, "per-request timeout (a `duration` above 0)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("loadgen: unexpected argument %q", fs.Arg(0))
	}
	switch {
	case *orders < 1:
		return usagef("loadgen: --orders must be at least 1")
	case *conns < 1:
		return usagef("loadgen: --connections must be at least 1")
	case !(*rate >= 0) || math.IsInf(*rate, 1): // NaN too
		return usagef("loadgen: --rate must be 0 or a positive number")
	case !(*dups >= 0 && *dups <= 1):
		return usagef("loadgen: --duplicates must be between 0 and 1")
	case *redeliver < 0:
		return usagef("loadgen: --redeliver must be 0 or more")
	}
	one, err := resolveWebhookSecret(*secret, os.Getenv("ORDERFLOW_WEBHOOK_SECRET"), *dataDir)
	if err != nil {
		return err
	}
	secrets := splitList(one)
	rep, err := loadgen.Run(ctx, loadgen.Config{
		URL: *url, Secrets: secrets, Orders: *orders, Connections: *conns, Rate: *rate,
		Checkout: *checkout, Duplicates: *dups, Redeliver: *redeliver, RedeliverDelay: redeliverDelay,
		Timeout: timeout,
	})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, rep.String())
	}
	if len(rep.Unanswered) > 0 {
		return fmt.Errorf("%d event(s) never got a 2xx answer", len(rep.Unanswered))
	}
	return nil
}
