package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/orderflow/orderflow/integrations/sim"
)

const simUsage = `sim [flags]

Serves every provider API orderflow has a client for (the endpoints each
client calls, listed in integrations/sim/README.md) and the outbound
webhook receiver on one address, for dev mode, tests and benchmarks: point
the clients at it with --sim-url.

Control endpoints:
  PUT    /_sim/faults  {"step":"shipping","mode":"unavailable"|"reject"|"slow"|"late-answer","rate":1.0,"latency":"5s","max_latency":"…"}
  DELETE /_sim/faults  clear every fault (?step=<step> clears one)
  GET    /_sim/faults  list the active faults
  GET    /_sim/stats   {"steps":{"<step>":{"requests":N,"created":N,"duplicate_creates":N,"answers_lost":N}}}
  DELETE /_sim/stats   reset the counters
  GET    /_sim/webhooks  the outbound webhook deliveries received (name, id, type, order, attempts, verified)
  GET    /_sim/postnord  the PostNord settings
  PUT    /_sim/postnord  {"visibility":"1s"} how long a booking takes to show in the look-up by reference
  GET    /_sim/zoho/credits  with --enforce-limits: {"daily":N,"spent":N,"remaining":N}
  PUT    /_sim/zoho/credits  {"daily":N} a new allowance (0: not enforced)
  DELETE /_sim/zoho/credits  a new day: the credits spent are forgotten
Steps: crm, production_log, shipping, invoice, email, webhook, alert, slack, stripe
(also details, the processor's name for stripe).

Outbound webhooks (POST /webhooks/<name>) are verified (signature and a
timestamp within 5 minutes, else 401) for the names given to
--webhook-step-secret-file; any other name is accepted with any v1
signature and recorded as verified: false.`

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sim", simUsage, stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	dataDir := fs.String("data-dir", "", "outbox root: labels, invoices, emails, alerts and <step>.jsonl under <data-dir>/outbox (empty: keep nothing on disk)")
	latency := fs.String("latency", "", "added to every provider call, optionally per step: 50ms or 50ms,shipping=200ms")
	peer := fs.Bool("peer", false, "also serve the benchmark peer's generic endpoints POST /<step> with {\"order_id\":...}")
	maxFiles := fs.Int("max-outbox-files", sim.DefaultMaxOutboxFiles, "per-object outbox files kept per step (the JSON lines are always written; 0: none)")
	nvCustomerKey := fs.String("netvisor-customer-key", "", "with --netvisor-partner-key, verify Netvisor MACs with these keys (otherwise only their form is checked)")
	nvPartnerKey := fs.String("netvisor-partner-key", "", "see --netvisor-customer-key")
	pprofOn := fs.Bool("pprof", false, "also serve Go's profiler at /debug/pprof/ (the simulator has one listener)")
	zohoConc := fs.Int("zoho-concurrency", 0, "with --enforce-limits: Zoho CRM calls in flight per organisation (default 10, Standard; 5 Free, 15 Professional, 20 Enterprise, 25 Ultimate)")
	zohoCredits := fs.Int("zoho-daily-credits", 0, "with --enforce-limits: Zoho CRM API credits per rolling 24 hours (default 100,000, the Standard cap; an upsert costs 1 per 10 records); over it every CRM call gets 429 TOO_MANY_REQUESTS until credits leave the window or DELETE /_sim/zoho/credits starts a new day")
	pnRate := fs.Int("postnord-per-second", 0, "with --enforce-limits: PostNord requests a second (PostNord publishes no number: 0, none)")
	nvRate := fs.Int("netvisor-per-second", 0, "with --enforce-limits: Netvisor requests a second (Netvisor publishes no number: 0, none)")
	mgRate := fs.Int("mailgun-per-second", 0, "with --enforce-limits: Mailgun requests a second (Mailgun publishes no number: 0, none)")
	var hookSecrets namedValues
	fs.Var(&hookSecrets, "webhook-step-secret-file", "verify the outbound webhooks of a name with the secrets in a file, <name>=<file> (repeat per webhook, or comma-separated pairs): the processor's own --webhook-step-secret-file values, so one ORDERFLOW_WEBHOOK_STEP_SECRET_FILE serves both; without it a name's deliveries are not verified")
	enforce := fs.Bool("enforce-limits", false, "refuse what the providers would, with their 429s: Airtable 5 requests/s per base then a 30 s penalty, Zoho 10 CRM calls in flight and 100,000 credits a day, Telegram 1 message/s per chat, 20/min per group, 30/s per bot, Slack 1 message/s per webhook (PostNord, Netvisor and Mailgun publish no numbers: not limited)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("sim: unexpected argument %q", fs.Arg(0))
	}
	def, perStep, err := sim.ParseLatency(*latency)
	if err != nil {
		return usagef("--latency: %v", err)
	}
	if *maxFiles <= 0 {
		*maxFiles = -1 // 0 on the command line means none, not the default
	}
	if *zohoConc < 0 || *zohoCredits < 0 || *pnRate < 0 || *nvRate < 0 || *mgRate < 0 {
		return usagef("--zoho-concurrency, --zoho-daily-credits, --postnord-per-second, --netvisor-per-second and --mailgun-per-second must not be negative")
	}
	if (*nvCustomerKey == "") != (*nvPartnerKey == "") {
		return usagef("--netvisor-customer-key and --netvisor-partner-key go together")
	}
	byName := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(hookSecrets)) {
		file := hookSecrets[name]
		v, err := secretFromFileOrEnv(file, "")
		if err != nil {
			return usagef("--webhook-step-secret-file %s: %v", name, err)
		}
		if byName[name] = webhookSecrets(v); len(byName[name]) == 0 {
			return usagef("--webhook-step-secret-file %s: %s is empty: want whsec_… (one per line during a rotation)", name, file)
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	s, err := sim.New(sim.Config{
		WebhookSecretsByName: byName,
		DataDir:              *dataDir,
		Latency:              def,
		StepLatency:          perStep,
		Peer:                 *peer,
		MaxOutboxFiles:       *maxFiles,
		Logger:               log,

		NetvisorCustomerKey: *nvCustomerKey,
		NetvisorPartnerKey:  *nvPartnerKey,
		EnforceLimits:       *enforce,
		Limits: sim.Limits{
			ZohoConcurrency:   *zohoConc,
			ZohoDailyCredits:  *zohoCredits,
			PostNordPerSecond: *pnRate,
			NetvisorPerSecond: *nvRate,
			MailgunPerSecond:  *mgRate,
		},
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := s.Close(); err != nil {
			log.Error("sim: closing the outbox", "err", err)
		}
	}()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	var handler http.Handler = s.Handler()
	if *pprofOn {
		mux := http.NewServeMux()
		servePprof(mux)
		mux.Handle("/", handler)
		handler = mux
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "provider simulator listening on http://%s\n", ln.Addr())
	log.Info("sim started", "addr", ln.Addr().String(), "data_dir", *dataDir, "latency", *latency, "peer", *peer, "enforce_limits", *enforce)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("sim: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Calls held by latency or a slow fault: cut them off.
		_ = srv.Close()
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("sim: shutdown: %w", err)
		}
	}
	log.Info("sim stopped")
	return nil
}
