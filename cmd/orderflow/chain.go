package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/webhook"
	"github.com/orderflow/orderflow/processor"
)

// The chain is configured with --steps: the steps in order, each a
// built-in step (optionally "=provider") or "webhook:<name>". See
// chainHelp.
const chainHelp = "the step chain in order, comma-separated: built-in steps " +
	"(details, crm, production_log, shipping, invoice, email), each optionally =provider " +
	"(details=stripe, crm=zoho, production_log=airtable, shipping=postnord, invoice=netvisor, email=mailgun), " +
	"and outbound webhooks webhook:<name> (set --webhook <name>=<url> and --webhook-secret-file <name>=<file>, " +
	"or ORDERFLOW_WEBHOOK_<NAME>_URL and ORDERFLOW_WEBHOOK_<NAME>_SECRET). A step runs once the steps it reads " +
	"are done (invoice reads shipping; email reads shipping and invoice; a webhook reads every step before it), " +
	"concurrently with the others; nothing waits for crm, production_log or a webhook. A built-in step left out " +
	"is recorded as skipped; details is always first. An unknown step, a duplicate or a step before one it reads is refused"

// stepProviders returns the registered providers of each built-in step
// (providers_<name>.go), the first of each the default.
func stepProviders() map[string][]string {
	out := map[string][]string{}
	for _, pr := range newProviders() {
		if st := pr.step(); st != "" {
			out[st] = append(out[st], pr.name())
		}
	}
	return out
}

// chainEntry is one step of --steps.
type chainEntry struct {
	name     string // step name: a built-in one or "webhook:<name>"
	provider string // a built-in step's provider; "" for a webhook
	webhook  string // a webhook step's name
}

// parseChain parses --steps. The details step comes first, added when
// left out (every other step reads the order).
func parseChain(spec string) ([]chainEntry, error) {
	var out []chainEntry
	seen := map[string]bool{}
	providers := stepProviders()
	for _, item := range splitList(spec) {
		name, prov, hasProv := strings.Cut(strings.TrimSpace(item), "=")
		var e chainEntry
		if wh, ok := strings.CutPrefix(name, integrations.WebhookStepPrefix); ok {
			if hasProv {
				return nil, usagef("--steps: %q: a webhook step has no provider (its URL is --webhook %s=<url>)", item, wh)
			}
			if err := (webhook.Config{Name: wh, URL: "https://x.invalid", Secrets: []string{"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}).Validate(); err != nil {
				return nil, usagef("--steps: %v", err)
			}
			e = chainEntry{name: name, webhook: wh}
		} else {
			name = strings.ToLower(name)
			provs, ok := providers[name]
			if !ok {
				return nil, usagef("--steps: unknown step %q (steps: %s, webhook:<name>)", name, strings.Join(processor.Chain, ", "))
			}
			e = chainEntry{name: name, provider: provs[0]}
			if hasProv {
				p := strings.ToLower(strings.TrimSpace(prov))
				if !slices.Contains(provs, p) {
					return nil, usagef("--steps: unknown provider %q for %s (providers: %s)", prov, name, strings.Join(provs, ", "))
				}
				e.provider = p
			}
		}
		if seen[e.name] {
			return nil, usagef("--steps: step %q listed twice", e.name)
		}
		seen[e.name] = true
		out = append(out, e)
	}
	switch i := slices.IndexFunc(out, func(e chainEntry) bool { return e.name == processor.StepDetails }); {
	case i < 0:
		out = append([]chainEntry{{name: processor.StepDetails, provider: providers[processor.StepDetails][0]}}, out...)
	case i > 0:
		return nil, usagef("--steps: details must come first (every other step reads the order)")
	}
	return out, nil
}

// chainSteps builds the chain from its entries and the built providers,
// and checks it (a step before one it reads is refused).
func chainSteps(entries []chainEntry, prov processor.Providers, hooks map[string]*webhook.Client) ([]processor.Step, error) {
	var chain []processor.Step
	var before []string
	for _, e := range entries {
		var s processor.Step
		if e.webhook != "" {
			s = processor.WebhookStep(hooks[e.webhook], before)
		} else {
			s = processor.BuiltinStep(e.name, prov)
		}
		if s == nil {
			return nil, fmt.Errorf("step %s has no client", e.name)
		}
		chain = append(chain, s)
		before = append(before, e.name)
	}
	if err := processor.ValidateChain(chain); err != nil {
		return nil, usagef("--steps: %s", strings.TrimPrefix(err.Error(), "processor: invalid chain: "))
	}
	return chain, nil
}

// namedValues is a repeatable flag of name=value pairs.
type namedValues map[string]string

func (n *namedValues) String() string { return "" }
func (n *namedValues) Set(s string) error {
	name, v, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(name) == "" || strings.TrimSpace(v) == "" {
		return fmt.Errorf("want <name>=<value>")
	}
	if *n == nil {
		*n = namedValues{}
	}
	(*n)[strings.TrimSpace(name)] = strings.TrimSpace(v)
	return nil
}

// webhookFlags are the settings of the webhook steps.
type webhookFlags struct {
	urls        namedValues
	secretFiles namedValues
}

func (w *webhookFlags) register(fs *flag.FlagSet) {
	fs.Var(&w.urls, "webhook", "URL of a webhook step, <name>=<url> (repeat per webhook; or set ORDERFLOW_WEBHOOK_<NAME>_URL; with --sim-url default <sim-url>/webhooks/<name>)")
	fs.Var(&w.secretFiles, "webhook-secret-file", "file holding a webhook step's Standard Webhooks secret (whsec_…), <name>=<file> (repeat per webhook; or set ORDERFLOW_WEBHOOK_<NAME>_SECRET)")
}

// webhookEnv is the environment variable of a webhook's setting.
func webhookEnv(name, what string) string {
	return "ORDERFLOW_WEBHOOK_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_" + what
}

// simWebhookSecret signs webhooks sent to the simulator, which accepts any
// signature unless started with secrets of its own.
const simWebhookSecret = "whsec_b3JkZXJmbG93LXNpbXVsYXRvci13ZWJob29rLXNlY3JldA=="

// env reads an environment variable (p.getenv in tests).
func (p *providerFlags) env(name string) string {
	if p.getenv != nil {
		return p.getenv(name)
	}
	return os.Getenv(name)
}
