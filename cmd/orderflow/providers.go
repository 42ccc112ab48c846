package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/webhook"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
)

// The provider wiring: one file per provider (providers_<name>.go) registers
// that provider's flags and environment variables, validates them and
// builds its client. This file holds what they share: the registry, the
// flags every provider reads (--sim-url, --steps, --label-dir), the reading
// of secrets and the one usage error that names every missing setting.
//
// Adding a provider for a step is one package under integrations/ plus one
// file here that calls registerProvider from its init function.

// provider is one provider's part of the wiring.
type provider interface {
	// name is the provider's flag prefix: its flags are --<name>-*.
	name() string
	// step is the processor step whose client it builds (processor.Step…),
	// or "" for an alert channel.
	step() string
	// register adds its flags to fs, with their defaults.
	register(fs *flag.FlagSet)
	// configure reads the flags and secrets and returns the client's
	// configuration, or an untyped nil when the provider is off. Missing settings and
	// bad values are recorded in s, not returned.
	configure(s *setup) any
	// build constructs the client of cfg (configure's result, not nil) and
	// hands it to b. An error is the client's own validation error.
	build(cfg any, b *builder) error
}

// providerRegistry holds a constructor per provider, added by each
// provider's file.
var providerRegistry []func() provider

func registerProvider(newProvider func() provider) {
	providerRegistry = append(providerRegistry, newProvider)
}

// newProviders returns one fresh provider of each registered kind, in chain
// order (processor.Chain), alert channels last, by name within a step.
func newProviders() []provider {
	ps := make([]provider, len(providerRegistry))
	for i, f := range providerRegistry {
		ps[i] = f()
	}
	pos := func(p provider) int {
		if i := slices.Index(processor.Chain, p.step()); i >= 0 {
			return i
		}
		return len(processor.Chain)
	}
	slices.SortStableFunc(ps, func(a, b provider) int {
		if d := pos(a) - pos(b); d != 0 {
			return d
		}
		return strings.Compare(a.name(), b.name())
	})
	return ps
}

// Test credentials used with --sim-url where none are given are declared
// in each provider's file. The simulator checks the form of credentials (a
// test-mode Stripe key, a bot token in the Telegram path, ...), not their
// value.

// providerFlags are the provider settings of every command that runs the
// step chain (`orderflow processor`, `orderflow dev`).
type providerFlags struct {
	simURL   string
	steps    string
	labelDir string
	// timeZone is --time-zone, the shop's zone of the dates the providers
	// get; loc is it loaded (by configs).
	timeZone string
	loc      *time.Location

	// simLimits says the simulator enforces the providers' limits
	// (orderflow sim --enforce-limits), so the clients keep theirs.
	simLimits bool
	// fleet are the settings of the limits shared through Redis.
	fleet   quotaFlags
	metrics *quotaMetrics

	webhooks webhookFlags
	// stepTimeout is the processor's --step-timeout (0: its default).
	stepTimeout time.Duration

	// getenv reads secrets from the environment; nil means os.Getenv.
	// Tests replace it.
	getenv func(string) string

	list []provider // created on first use
}

// providers returns the providers, creating them on first use.
func (p *providerFlags) providers() []provider {
	if p.list == nil {
		p.list = newProviders()
	}
	return p.list
}

// providerOf returns the provider of type T, for the commands that set a
// provider's settings themselves (dev mode). It panics if none is
// registered: that is a programming error.
func providerOf[T provider](p *providerFlags) T {
	for _, pr := range p.providers() {
		if t, ok := pr.(T); ok {
			return t
		}
	}
	panic("no provider of this type is registered")
}

// defaultSteps is every step of the chain.
var defaultSteps = strings.Join(processor.Chain, ",")

func (p *providerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.simURL, "sim-url", "", "point every provider client at the provider simulator at this URL (orderflow sim); missing credentials get test values")
	fs.StringVar(&p.steps, "steps", defaultSteps, chainHelp())
	p.webhooks.register(fs)
	fs.StringVar(&p.labelDir, "label-dir", "labels", "folder the shipping-label PDFs (and DHL customs declarations) are written to")
	fs.StringVar(&p.timeZone, "time-zone", defaultTimeZone, "the shop's time zone (IANA name): an order's day in it is the invoice date, the CRM deal's closing date and the production log's order date")
	fs.BoolVar(&p.simLimits, "sim-enforces-limits", false, "the simulator at --sim-url enforces the providers' limits (orderflow sim --enforce-limits): keep the clients' limits at their defaults for the real providers")
	p.fleet.register(fs)
	for _, pr := range p.providers() {
		pr.register(fs)
	}
}

// enabledSteps parses --steps: the chain and which built-in steps are on.
// The details step is always on: every other step needs the order it reads.
func (p *providerFlags) enabledSteps() ([]chainEntry, map[string]bool, error) {
	chain, err := parseChain(p.steps)
	if err != nil {
		return nil, nil, err
	}
	if err := markGates(chain, p.webhooks.gates); err != nil {
		return nil, nil, err
	}
	if err := p.webhooks.check(chain); err != nil {
		return nil, nil, err
	}
	on := map[string]bool{}
	for _, e := range chain {
		on[e.name] = true
	}
	return chain, on, nil
}

// providerConfigs are the client configurations built from the flags, by
// provider name. A nil configuration is a provider that is off.
type providerConfigs struct {
	// Chain is --steps; nil: the built-in steps of the clients built.
	Chain     []chainEntry
	Webhooks  []webhook.Config
	LabelDir  string
	providers []provider
	byName    map[string]any
	quotas    *quotaSet // nil: no limits enforced by the wiring
}

// missing collects the flags of absent required settings, for one usage
// error naming them all.
type missing []string

func (m *missing) need(value, flagName string) string {
	if value == "" {
		*m = append(*m, flagName)
	}
	return value
}

// setup is what a provider's configure reads the shared settings through
// and records its problems in.
type setup struct {
	p      *providerFlags
	on     map[string]bool
	chosen map[string]string // step → its provider in --steps
	log    *slog.Logger
	miss   missing
	errs   []error
}

// enabled says whether step is in --steps.
func (s *setup) enabled(step string) bool { return s.on[step] }

// providerOf says which provider runs step ("" when it is off).
func (s *setup) providerOf(step string) string { return s.chosen[step] }

// logger is the logger the clients get.
func (s *setup) logger() *slog.Logger { return s.log }

// labelDir is --label-dir.
func (s *setup) labelDir() string { return s.p.labelDir }

// location is --time-zone, loaded.
func (s *setup) location() *time.Location { return s.p.loc }

// defaultTimeZone is the shop's zone unless --time-zone says: the
// invoicing system's (Netvisor is Finnish).
const defaultTimeZone = "Europe/Helsinki"

// unlimited says whether the clients talk to a simulator that enforces no
// limits (--sim-url without --sim-enforces-limits): limit flags left unset
// then default to none.
func (s *setup) unlimited() bool { return s.p.simURL != "" && !s.p.simLimits }

// need records flagName as missing when value is empty.
func (s *setup) need(value, flagName string) string { return s.miss.need(value, flagName) }

// orSim returns v, or with --sim-url set and v empty, the simulator's value.
func (s *setup) orSim(v, simValue string) string { return s.p.orSim(v, simValue) }

// base returns a base URL flag's value, or --sim-url when it is empty.
func (s *setup) base(v string) string { return s.p.orSim(v, s.p.simURL) }

// fail records a bad value.
func (s *setup) fail(err error) { s.errs = append(s.errs, err) }

// read returns a required secret from its --*-file flag or its environment
// variable (or, with --sim-url, simValue), recording it as missing when
// absent.
func (s *setup) read(file, env, simValue, flagName string) string {
	v, ok := s.optional(file, env, flagName)
	if !ok {
		return ""
	}
	return s.miss.need(s.orSim(v, simValue), flagName+" (or "+env+")")
}

// optional returns a secret that may be absent; ok is false when its file
// could not be read (recorded as a usage error).
func (s *setup) optional(file, env, flagName string) (string, bool) {
	v, err := s.p.secret(file, env)
	if err != nil {
		s.errs = append(s.errs, usagef("--%s: %v", flagName, err))
		return "", false
	}
	return v, true
}

// secret reads a secret from its --*-file flag or its environment variable.
func (p *providerFlags) secret(file, env string) (string, error) {
	if file == "" {
		getenv := p.getenv
		if getenv == nil {
			return secretFromFileOrEnv("", env)
		}
		return getenv(env), nil
	}
	return secretFromFileOrEnv(file, env)
}

// orSim returns v, or with --sim-url set and v empty, the simulator's value.
func (p *providerFlags) orSim(v, simValue string) string {
	if v == "" && p.simURL != "" {
		return simValue
	}
	return v
}

// configs turns the flags into client configurations. Explicit settings win
// over --sim-url, so one provider can be real while the others are
// simulated. A required setting missing for an enabled step is a usage
// error naming its flag.
func (p *providerFlags) configs(logger *slog.Logger) (providerConfigs, error) {
	if p.simURL != "" {
		u, err := url.Parse(p.simURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return providerConfigs{}, usagef("--sim-url %q: want an http(s) URL such as http://127.0.0.1:8090", p.simURL)
		}
		p.simURL = strings.TrimRight(p.simURL, "/")
	}
	chain, on, err := p.enabledSteps()
	if err != nil {
		return providerConfigs{}, err
	}
	if p.timeZone == "" {
		p.timeZone = defaultTimeZone
	}
	if p.loc, err = time.LoadLocation(p.timeZone); err != nil || p.timeZone == "Local" {
		return providerConfigs{}, usagef("--time-zone %q: want an IANA zone name such as Europe/Helsinki or UTC", p.timeZone)
	}
	chosen := map[string]string{} // step → its provider in --steps
	for _, e := range chain {
		chosen[e.name] = e.provider
	}
	s := &setup{p: p, on: on, chosen: chosen, log: logger}
	c := providerConfigs{LabelDir: p.labelDir, providers: p.providers(), byName: map[string]any{}, Chain: chain}
	for _, pr := range c.providers {
		if pr.step() != "" && chosen[pr.step()] != pr.name() {
			continue // its step is off, or it runs with another provider
		}
		if cfg := pr.configure(s); cfg != nil {
			c.byName[pr.name()] = cfg
		}
	}
	for _, e := range chain {
		if e.webhook == "" {
			continue
		}
		u := p.webhooks.urls[e.webhook]
		if u == "" {
			u = p.env(webhookEnv(e.webhook, "URL"))
		}
		if u == "" && p.simURL != "" {
			u = p.simURL + "/webhooks/" + e.webhook
		}
		secrets := p.stepSecrets(s, e.webhook)
		if len(secrets) == 0 {
			secrets = []string{s.need(p.orSim("", simWebhookSecret), "webhook-step-secret-file "+e.webhook+"=<file> (or "+webhookEnv(e.webhook, "SECRET")+")")}
		}
		c.Webhooks = append(c.Webhooks, webhook.Config{
			Name:    e.webhook,
			URL:     s.need(u, "webhook "+e.webhook+"=<url> (or "+webhookEnv(e.webhook, "URL")+")"),
			Secrets: secrets,
			Timeout: p.callTimeout(),
		})
	}
	if len(s.errs) > 0 {
		return providerConfigs{}, joinUsage(s.errs)
	}
	if len(s.miss) > 0 {
		return providerConfigs{}, usagef("missing provider settings for the enabled steps (--steps %s): --%s; or run against the simulator with --sim-url",
			p.steps, strings.Join(s.miss, ", --"))
	}
	return c, nil
}

// stepSecrets returns the secrets of the webhook step name from its
// --webhook-step-secret-file, else ORDERFLOW_WEBHOOK_<NAME>_SECRET; none
// when neither is given (or the variable is empty). A file given but
// holding no secret is a usage error: falling back to --sim-url's test
// secret would sign a real receiver's deliveries with a public one.
func (p *providerFlags) stepSecrets(s *setup, name string) []string {
	file := p.webhooks.secretFiles[name]
	v, err := p.secret(file, webhookEnv(name, "SECRET"))
	if err != nil {
		s.fail(usagef("--webhook-step-secret-file %s: %v", name, err))
		return []string{""} // reported; not missing as well
	}
	secrets := webhookSecrets(v)
	if len(secrets) == 0 && file != "" {
		s.fail(usagef("--webhook-step-secret-file %s: %s is empty: want whsec_… (one per line during a rotation)", name, file))
		return []string{""}
	}
	return secrets
}

// callTimeout bounds one provider call made by the wiring's own clients
// (the webhook steps): --step-timeout, as the processor bounds every call.
func (p *providerFlags) callTimeout() time.Duration {
	if p.stepTimeout > 0 {
		return p.stepTimeout
	}
	return processor.DefaultConfig(topics.Names{}).StepTimeout
}

// build constructs the provider clients for the processor. cleanup flushes
// and stops what runs in the background (the alert batchers, the Airtable
// batch sender); call it after the processor has stopped.
func (p *providerFlags) build(ctx context.Context, logger *slog.Logger) (processor.Providers, func(), error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c, err := p.configs(logger)
	if err != nil {
		return processor.Providers{}, nil, err
	}
	set, err := p.fleet.start(ctx, p.quotaMetrics(), logger)
	if err != nil {
		return processor.Providers{}, nil, err
	}
	c.quotas = set
	prov, cleanup, err := c.build(logger)
	if err != nil {
		set.stop()
		return prov, nil, err
	}
	return prov, func() { cleanup(); set.stop() }, nil
}

// quotaMetrics returns the limits' metrics, created on first use.
func (p *providerFlags) quotaMetrics() *quotaMetrics {
	if p.metrics == nil {
		p.metrics = newQuotaMetrics()
	}
	return p.metrics
}

// collectors are the wiring's metrics, for the command's registry.
func (p *providerFlags) collectors() []prometheus.Collector {
	m := p.quotaMetrics()
	return []prometheus.Collector{m.fallback, m.pauses}
}

// builder collects what the providers' build functions make.
type builder struct {
	quotas   *quotaSet
	prov     processor.Providers
	log      *slog.Logger
	labelDir string
	alerters []namedAlerter
	closers  []func()
	errs     []error
}

// namedAlerter is an alert channel and its name, for log lines.
type namedAlerter struct {
	name string
	processor.Alerter
}

// onClose adds f to what cleanup runs, in the order added.
func (b *builder) onClose(f func()) { b.closers = append(b.closers, f) }

// alerter adds an alert channel; every alert goes to each.
func (b *builder) alerter(name string, a processor.Alerter) {
	b.alerters = append(b.alerters, namedAlerter{name, a})
}

// build constructs the clients of c.
func (c providerConfigs) build(logger *slog.Logger) (processor.Providers, func(), error) {
	b := &builder{log: logger, labelDir: c.LabelDir, quotas: c.quotas}
	for _, pr := range c.providers {
		cfg, ok := c.byName[pr.name()]
		if !ok {
			continue
		}
		if err := pr.build(cfg, b); err != nil {
			var ue usageError
			if errors.As(err, &ue) {
				b.errs = append(b.errs, err)
				continue
			}
			// A client's own validation names its fields; say which flags
			// those come from.
			b.errs = append(b.errs, usagef("%v (flags --%s-*)", err, pr.name()))
		}
	}
	hooks := map[string]*webhook.Client{}
	for _, wc := range c.Webhooks {
		if cl, err := webhook.New(wc); err != nil {
			b.errs = append(b.errs, usagef("%v (flags --webhook, --webhook-step-secret-file)", err))
		} else {
			hooks[wc.Name] = cl
		}
	}
	if c.Chain != nil && len(b.errs) == 0 {
		chain, err := chainSteps(c.Chain, b.prov, hooks)
		if err != nil {
			b.errs = append(b.errs, err)
		}
		b.prov.Chain = chain
	}
	closeAll := func() {
		for _, f := range b.closers {
			f()
		}
	}
	if len(b.errs) > 0 {
		closeAll()
		return processor.Providers{}, nil, joinUsage(b.errs)
	}
	switch len(b.alerters) {
	case 0:
		// No Alerter: the processor logs each alert, once.
		logger.Info("no alert channel configured (Telegram, Slack): alerts are logged only")
	case 1:
		b.prov.Alerter = b.alerters[0].Alerter
	default:
		b.prov.Alerter = fanoutAlerter(b.alerters)
	}
	return b.prov, closeAll, nil
}

// rateFlag is a requests-per-second flag that remembers whether it was
// given (on the command line or in the environment).
type rateFlag struct {
	v   float64
	set bool
}

func (r *rateFlag) String() string {
	if r == nil {
		return ""
	}
	return strconv.FormatFloat(r.v, 'g', -1, 64)
}

func (r *rateFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return errors.New("want a number of requests per second, 0 or more")
	}
	r.v, r.set = v, true
	return nil
}

// countFlag is a non-negative integer flag that remembers whether it was set.
type countFlag struct {
	v   int
	set bool
}

func (c *countFlag) String() string {
	if c == nil {
		return ""
	}
	return strconv.Itoa(c.v)
}

func (c *countFlag) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return errors.New("want a whole number, 0 or more")
	}
	c.v, c.set = v, true
	return nil
}

// joinUsage makes one usage error of several, so that every problem is
// printed, not only the first.
func joinUsage(errs []error) error {
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return usageError{strings.Join(msgs, "; ")}
}

// fanoutAlerter sends every alert to each channel (Telegram and Slack).
// The channels batch in the background, so Alert returns at once; the
// error joins those of the channels that refused it (only after Close).
type fanoutAlerter []namedAlerter

func (f fanoutAlerter) Alert(ctx context.Context, al integrations.Alert) error {
	var errs []error
	for _, a := range f {
		if err := a.Alert(ctx, al); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
