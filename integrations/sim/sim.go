// Package sim is the provider simulator: one HTTP handler that serves the
// subset of every provider API orderflow's clients use (Stripe reads, Zoho
// CRM, Airtable, PostNord, DHL, Netvisor, Mailgun, Telegram, Slack,
// outbound webhooks), on one port, with
// the providers' own wire formats, auth checks and error shapes.
//
// It behaves like the providers where that matters to an order pipeline:
// upserts update instead of creating, a PostNord booking creates a new
// shipment on every call, Netvisor rejects a reused TransactionId, and Stripe
// reads return deterministic data for any id, so load tests need no set-up.
// Latency and faults (unavailable, reject, slow) are set per step at start-up
// or at run time through /_sim/faults; /_sim/stats counts requests, created
// objects and duplicate creations per step; an outbox folder keeps what a
// person would want to open (labels, invoices, emails, alerts) and one JSON
// line per side-effecting request.
//
// The same handler runs in `orderflow sim`, in `orderflow dev` and in tests
// (httptest.NewServer(s.Handler())).
package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// Step names, as used by the processor, fault control and stats. StepAlert
// is the Telegram alert channel, StepSlack the Slack one, StepWebhook every
// outbound webhook step, and StepStripe the order-details reads.
const (
	StepCRM           = integrations.StepCRM
	StepProductionLog = integrations.StepProductionLog
	StepShipping      = integrations.StepShipping
	StepInvoice       = integrations.StepInvoice
	StepEmail         = integrations.StepEmail
	StepAlert         = "alert"
	StepStripe        = "stripe"
	StepWebhook       = "webhook"
	StepSlack         = "slack"
)

// Steps lists every step the simulator serves, in chain order.
var Steps = []string{StepCRM, StepProductionLog, StepShipping, StepInvoice, StepEmail, StepWebhook, StepAlert, StepSlack, StepStripe}

// peerSteps are the steps of the benchmark peer's generic endpoints.
var peerSteps = []string{StepCRM, StepProductionLog, StepShipping, StepInvoice, StepEmail}

// StepDetails is the processor's name of the order-details step, served by
// the simulator's Stripe: faults and latency take either name.
const StepDetails = "details"

// canonicalStep maps the processor's step names to the simulator's.
func canonicalStep(s string) string {
	if s == StepDetails {
		return StepStripe
	}
	return s
}

func validStep(s string) bool {
	for _, x := range Steps {
		if x == s {
			return true
		}
	}
	return false
}

// DefaultMaxOutboxFiles bounds the per-object files (labels, invoices,
// emails, alerts) written per step, so a long load test cannot fill a disk;
// the JSON lines are always written.
const DefaultMaxOutboxFiles = 10000

// Config configures a Server.
type Config struct {
	// DataDir is the outbox root: files go under DataDir/outbox. Empty keeps
	// nothing on disk (stats and faults still work).
	DataDir string
	// Latency is added to every provider call.
	Latency time.Duration
	// StepLatency overrides Latency for the named steps.
	StepLatency map[string]time.Duration
	// Peer also serves the benchmark peer's generic endpoints, POST /<step>
	// with {"order_id": ...}, counted in the same stats.
	Peer bool
	// MaxOutboxFiles bounds the per-object files per step; 0 means
	// DefaultMaxOutboxFiles, a negative value writes none.
	MaxOutboxFiles int
	// NetvisorCustomerKey and NetvisorPartnerKey, when both set, make the
	// simulator verify Netvisor MACs; otherwise only their form is checked.
	NetvisorCustomerKey string
	NetvisorPartnerKey  string
	// Logger receives start-up, fault-change and error logs; nil discards.
	Logger *slog.Logger
	// WebhookSecrets, when set, make the webhook receiver verify Standard
	// Webhooks signatures ("whsec_…") and timestamps; otherwise only the
	// headers' form is checked.
	WebhookSecrets []string
	// WebhookSecretsByName are the secrets of one receiver, /webhooks/<name>
	// (orderflow sim --webhook-step-secret-file): its deliveries are
	// verified with these only; a name not listed here falls back to
	// WebhookSecrets.
	WebhookSecretsByName map[string][]string
	// EnforceLimits makes the simulator refuse what the providers would
	// (rates, concurrency, daily credits; see Limits) with their 429s.
	EnforceLimits bool
	// Limits overrides the enforced limits' defaults.
	Limits Limits
	// PostNordVisibility is how long after a booking PostNord's Track &
	// Trace look-up by reference starts to show it: 0 means
	// DefaultPostNordVisibility, a negative value shows it at once. It can
	// be changed at run time (PUT /_sim/postnord).
	PostNordVisibility time.Duration
}

// Validate reports a configuration the simulator cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.Latency < 0 {
		errs = append(errs, fmt.Errorf("latency %s is negative", c.Latency))
	}
	for step, d := range c.StepLatency {
		if !validStep(step) {
			errs = append(errs, fmt.Errorf("latency for unknown step %q (steps: %s)", step, strings.Join(Steps, ", ")))
		}
		if d < 0 {
			errs = append(errs, fmt.Errorf("latency for %s %s is negative", step, d))
		}
	}
	errs = append(errs, c.validateAdditions()...)
	return errors.Join(errs...)
}

// Server is the simulator. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	mux    *http.ServeMux
	stats  *stats
	faults *faults
	outbox *outbox
	stripe *stripeSim
	zoho   *zohoSim
	airt   *airtableSim
	pn     *postnordSim
	nv     *netvisorSim
	mg     *mailgunSim
	tg     *telegramSim
	wh     *webhookSim
	sl     *slackSim
	limits *limiter // nil unless Config.EnforceLimits
	// peerRows is the upsert state of the peer's crm and production_log.
	peerRows peerState
	// peerHandlers and telegramSend are the wrapped handlers that routes
	// dispatch to after matching a wildcard path.
	peerHandlers map[string]http.Handler
	telegramSend http.Handler
	closeOnce    sync.Once
	// records keeps the providers' records across restarts, idsPath the
	// id ceiling (persist.go).
	records *records
	idsPath string
}

// New builds a Server. It creates the outbox folders when DataDir is set.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	limit := cfg.MaxOutboxFiles
	if limit == 0 {
		limit = DefaultMaxOutboxFiles
	}
	ob, err := newOutbox(cfg.DataDir, limit, log)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	s := &Server{
		cfg:    cfg,
		log:    log,
		mux:    http.NewServeMux(),
		stats:  newStats(),
		faults: newFaults(),
		outbox: ob,
	}
	if s.stripe, err = newStripeSim(s); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	s.zoho = newZohoSim(s)
	s.airt = newAirtableSim(s)
	s.pn = newPostnordSim(s)
	s.nv = newNetvisorSim(s)
	s.mg = newMailgunSim(s)
	s.tg = newTelegramSim(s)
	s.wh, s.sl = newWebhookSim(s, cfg.WebhookSecrets, cfg.WebhookSecretsByName), &slackSim{s: s}
	if cfg.EnforceLimits {
		s.limits = newLimiter(cfg.Limits, s.stats)
	}
	if err := s.openPersistence(); err != nil {
		s.closePersistence()
		ob.close()
		return nil, fmt.Errorf("sim: %w", err)
	}
	s.routes()
	return s, nil
}

// Handler serves every provider API, the control endpoints under /_sim/ and,
// with Config.Peer, the peer's generic endpoints.
func (s *Server) Handler() http.Handler { return s.mux }

// Close flushes and closes the outbox. The handler must not be used after.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() { err = errors.Join(s.outbox.close(), s.closePersistence()) })
	return err
}

// providerRoutes add the endpoints of the providers that register
// themselves from their own file (registerRoutes in an init function, as
// dhl.go does), so a simulated provider is one file.
var providerRoutes []func(s *Server, m *http.ServeMux)

// registerRoutes adds a provider's endpoints to every Server. The handlers
// go through s.step with the provider's step name, so latency, faults,
// limits and stats work for them as for the others.
func registerRoutes(f func(s *Server, m *http.ServeMux)) { providerRoutes = append(providerRoutes, f) }

func (s *Server) routes() {
	m := s.mux
	for _, f := range providerRoutes {
		f(s, m)
	}
	// Stripe (API 2023-10-16 shapes).
	m.Handle("GET /v1/payment_intents/{id}", s.step(StepStripe, stripeErrors, s.stripe.paymentIntent))
	m.Handle("GET /v1/checkout/sessions", s.step(StepStripe, stripeErrors, s.stripe.listSessions))
	m.Handle("GET /v1/checkout/sessions/{id}", s.step(StepStripe, stripeErrors, s.stripe.session))
	m.Handle("GET /v1/checkout/sessions/{id}/line_items", s.step(StepStripe, stripeErrors, s.stripe.lineItems))
	m.HandleFunc("GET /v1/", s.stripe.notFound)

	// Zoho: the accounts server's token endpoint is not a CRM call, so it
	// gets neither the crm step's latency nor its faults.
	m.HandleFunc("POST /oauth/v2/token", s.zoho.token)
	m.Handle("POST /crm/v3/{module}/upsert", s.step(StepCRM, zohoErrors, s.zoho.upsert))
	m.Handle("GET /crm/v3/org/currencies", s.step(StepCRM, zohoErrors, s.zoho.currencies))
	m.Handle("GET /crm/v3/org", s.step(StepCRM, zohoErrors, s.zoho.org))

	// Airtable.
	m.Handle("PATCH /v0/{base}/{table}", s.step(StepProductionLog, airtableErrors, s.airt.upsert))
	m.Handle("PUT /v0/{base}/{table}", s.step(StepProductionLog, airtableErrors, s.airt.upsert))

	// PostNord.
	m.Handle("POST /rest/shipment/v3/edi/labels/pdf", s.step(StepShipping, postnordErrors, s.pn.book))
	m.Handle("GET /rest/shipment/v7/trackandtrace/customernumber/{customer}/reference/{reference}/public", s.step(StepShipping, postnordErrors, s.pn.findByReference))

	// Netvisor.
	// Netvisor paths are case-insensitive; both spellings seen in clients.
	for _, p := range []string{"salesinvoice.nv", "SalesInvoice.nv"} {
		m.Handle("POST /"+p, s.step(StepInvoice, netvisorErrors, s.nv.add))
	}
	for _, p := range []string{"salesinvoicelist.nv", "SalesInvoiceList.nv"} {
		m.Handle("GET /"+p, s.step(StepInvoice, netvisorErrors, s.nv.list))
	}
	for _, p := range []string{"customer.nv", "Customer.nv"} {
		m.Handle("POST /"+p, s.step(StepInvoice, netvisorErrors, s.nv.addCustomer))
	}
	for _, p := range []string{"customerlist.nv", "CustomerList.nv"} {
		m.Handle("GET /"+p, s.step(StepInvoice, netvisorErrors, s.nv.listCustomers))
	}

	// Mailgun.
	m.Handle("POST /v3/{domain}/messages", s.step(StepEmail, mailgunErrors, s.mg.send))
	m.Handle("GET /v3/{domain}/events", s.step(StepEmail, mailgunErrors, s.mg.events))

	// Telegram: /bot<token>/<method>, methods case-insensitive.
	s.telegramSend = s.step(StepAlert, telegramErrors, s.tg.sendMessage)
	m.HandleFunc("POST /{bot}/{method}", s.telegramRoute)

	// Outbound webhooks and Slack incoming webhooks.
	m.Handle("POST /webhooks/{name}", s.step(StepWebhook, webhookErrors, s.wh.receive))
	m.Handle("POST /services/{team}/{channel}/{token}", s.step(StepSlack, slackErrors, s.sl.post))

	// Control.
	m.HandleFunc("GET /_sim/webhooks", s.getWebhookDeliveries)
	m.HandleFunc("GET /_sim/postnord", s.pn.getSettings)
	m.HandleFunc("PUT /_sim/postnord", s.pn.putSettings)
	m.HandleFunc("GET /_sim/faults", s.getFaults)
	m.HandleFunc("PUT /_sim/faults", s.putFaults)
	m.HandleFunc("DELETE /_sim/faults", s.deleteFaults)
	m.HandleFunc("GET /_sim/stats", s.getStats)
	m.HandleFunc("DELETE /_sim/stats", s.deleteStats)
	m.HandleFunc("PUT /_sim/stripe/checkout/sessions/{id}", s.putSeed("checkout.session"))
	m.HandleFunc("PUT /_sim/stripe/payment_intents/{id}", s.putSeed("payment_intent"))
	m.HandleFunc("GET /_sim/stripe", s.getSeeds)
	m.HandleFunc("PUT /_sim/zoho/currencies", s.putCurrencies)
	m.HandleFunc("GET /_sim/zoho/credits", s.zohoCreditsControl)
	m.HandleFunc("PUT /_sim/zoho/credits", s.zohoCreditsControl)
	m.HandleFunc("DELETE /_sim/zoho/credits", s.zohoCreditsControl)
	m.HandleFunc("DELETE /_sim/stripe", s.deleteSeeds)
	m.HandleFunc("GET /_sim/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})

	// Peer.
	s.peerHandlers = map[string]http.Handler{}
	for _, step := range peerSteps {
		s.peerHandlers[step] = s.step(step, peerErrors, s.peerCall(step))
	}
	m.HandleFunc("POST /{step}", s.peer)
}

func (s *Server) telegramRoute(w http.ResponseWriter, r *http.Request) {
	bot := r.PathValue("bot")
	if !strings.HasPrefix(bot, "bot") || !strings.EqualFold(r.PathValue("method"), "sendMessage") {
		http.NotFound(w, r)
		return
	}
	s.telegramSend.ServeHTTP(w, r)
}

// latency is the configured delay of one call to step.
func (s *Server) latency(step string) time.Duration {
	if d, ok := s.cfg.StepLatency[step]; ok {
		return d
	}
	return s.cfg.Latency
}

// step wraps a provider handler: count the request, wait the configured
// latency, then apply an active fault in that provider's error shape.
func (s *Server) step(step string, ew errorWriter, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.stats.request(step)
		release, ok := s.limits.admit(step, w, r) // limits.go; a refusal is answered there
		if !ok {
			return
		}
		defer release()
		delay := s.latency(step)
		mode, extra := s.faults.roll(step)
		if mode == ModeSlow {
			delay += extra
		}
		if delay > 0 && !sleep(r, delay) {
			return
		}
		switch mode {
		case ModeLateAnswer:
			lateAnswer(s.stats, step, w, r, h, extra)
			return
		case ModeUnavailable:
			ew(w, r, http.StatusServiceUnavailable, "service temporarily unavailable (simulated)")
			return
		case ModeReject:
			ew(w, r, http.StatusBadRequest, "request rejected (simulated)")
			return
		}
		h(w, r)
	})
}

// sleep waits d or until the client goes away; false means it went away.
func sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// ParseLatency reads a --latency value: a default duration and optional
// per-step overrides, comma-separated: "50ms", "50ms,shipping=200ms",
// "shipping=2s". Empty means no latency.
func ParseLatency(v string) (time.Duration, map[string]time.Duration, error) {
	var def time.Duration
	per := map[string]time.Duration{}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, hasStep := strings.Cut(part, "=")
		if !hasStep {
			val = name
		}
		d, err := time.ParseDuration(strings.TrimSpace(val))
		if err != nil {
			return 0, nil, fmt.Errorf("latency %q: %w", part, err)
		}
		if d < 0 {
			return 0, nil, fmt.Errorf("latency %q is negative", part)
		}
		if !hasStep {
			def = d
			continue
		}
		name = canonicalStep(strings.TrimSpace(name))
		if !validStep(name) {
			return 0, nil, fmt.Errorf("latency %q: unknown step %q (steps: %s)", part, name, strings.Join(Steps, ", "))
		}
		per[name] = d
	}
	return def, per, nil
}

// sortedSteps returns the keys of m in Steps order (unknown ones last).
func sortedSteps[V any](m map[string]V) []string {
	idx := map[string]int{}
	for i, s := range Steps {
		idx[s] = i
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, aok := idx[keys[i]]
		b, bok := idx[keys[j]]
		if aok != bok {
			return aok
		}
		if a != b {
			return a < b
		}
		return keys[i] < keys[j]
	})
	return keys
}
