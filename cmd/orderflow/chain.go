package main

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/webhook"
	"github.com/orderflow/orderflow/processor"
)

// The chain is configured with --steps: the steps in order, each a
// built-in step (optionally "=provider") or "webhook:<name>"; --webhook-gate
// marks webhook steps every later step waits for. See chainHelp.

// defaultProviders is the provider of each built-in step when --steps names
// none. A step not listed here (a new one) gets its first registered
// provider by name; a provider added for a listed step is an alternative,
// picked only with --steps <step>=<name>.
var defaultProviders = map[string]string{
	processor.StepDetails:       "stripe",
	processor.StepCRM:           "zoho",
	processor.StepProductionLog: "airtable",
	processor.StepShipping:      "postnord",
	processor.StepInvoice:       "netvisor",
	processor.StepEmail:         "mailgun",
}

// chainHelp is the usage of --steps, with the registered providers.
func chainHelp() string {
	provs := stepProviders()
	var parts []string
	for _, step := range processor.Chain {
		parts = append(parts, step+"="+strings.Join(provs[step], "|"))
	}
	return "the step chain in order, comma-separated: built-in steps " +
		"(" + strings.Join(processor.Chain, ", ") + "), each optionally =provider " +
		"(" + strings.Join(parts, ", ") + "; the first is the default), " +
		"and outbound webhooks webhook:<name> (set --webhook <name>=<url> and --webhook-secret-file <name>=<file>, " +
		"or ORDERFLOW_WEBHOOK_<NAME>_URL and ORDERFLOW_WEBHOOK_<NAME>_SECRET). A step runs once the steps it reads " +
		"are done (invoice reads shipping; email reads shipping and invoice; a webhook reads every step before it), " +
		"concurrently with the others; nothing waits for crm, production_log or a webhook unless it is a gate (--webhook-gate). " +
		"A built-in step left out is recorded as skipped; details is always first. An unknown step, a duplicate or a step " +
		"before one it reads is refused"
}

// stepProviders returns the registered providers of each built-in step
// (providers_<name>.go), the default first (defaultProviders), the others
// by name.
func stepProviders() map[string][]string {
	out := map[string][]string{}
	for _, pr := range newProviders() {
		if st := pr.step(); st != "" {
			out[st] = append(out[st], pr.name())
		}
	}
	for st, names := range out {
		if i := slices.Index(names, defaultProviders[st]); i > 0 {
			out[st] = append([]string{names[i]}, slices.Delete(slices.Clone(names), i, i+1)...)
		}
	}
	return out
}

// chainEntry is one step of --steps.
type chainEntry struct {
	name     string // step name: a built-in one or "webhook:<name>"
	provider string // a built-in step's provider; "" for a webhook
	webhook  string // a webhook step's name
	gate     bool   // a webhook step every later step waits for
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
		switch {
		case e.gate:
			s = processor.WebhookGateStep(hooks[e.webhook], before)
		case e.webhook != "":
			s = processor.WebhookStep(hooks[e.webhook], before)
		default:
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

// markGates marks the webhook steps named by --webhook-gate: every step
// after such a step in --steps waits for it. A name that is no webhook step
// of --steps, or one with no step after it, is refused.
func markGates(chain []chainEntry, gates []string) error {
	for _, g := range gates {
		g = strings.TrimPrefix(g, integrations.WebhookStepPrefix)
		i := slices.IndexFunc(chain, func(e chainEntry) bool { return e.webhook == g })
		switch {
		case i < 0:
			return usagef("--webhook-gate %s: --steps has no step webhook:%s", g, g)
		case i == len(chain)-1:
			return usagef("--webhook-gate %s: no step comes after webhook:%s in --steps, so none would wait for it", g, g)
		}
		chain[i].gate = true
	}
	return nil
}

// check refuses a --webhook or --webhook-secret-file naming no webhook step
// of chain (a typo would leave the step without its URL or secret).
func (w *webhookFlags) check(chain []chainEntry) error {
	for _, f := range []struct {
		flag string
		vals namedValues
	}{{"webhook", w.urls}, {"webhook-secret-file", w.secretFiles}} {
		for _, name := range slices.Sorted(maps.Keys(f.vals)) {
			if !slices.ContainsFunc(chain, func(e chainEntry) bool { return e.webhook == name }) {
				return usagef("--%s %s: --steps has no step webhook:%s", f.flag, name, name)
			}
		}
	}
	return nil
}

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	v := splitList(s)
	if len(v) == 0 {
		return fmt.Errorf("want a webhook step name")
	}
	*l = append(*l, v...)
	return nil
}

// webhookFlags are the settings of the webhook steps.
type webhookFlags struct {
	urls        namedValues
	secretFiles namedValues
	gates       listFlag
}

func (w *webhookFlags) register(fs *flag.FlagSet) {
	fs.Var(&w.urls, "webhook", "URL of a webhook step, <name>=<url> (repeat per webhook; or set ORDERFLOW_WEBHOOK_<NAME>_URL; with --sim-url default <sim-url>/webhooks/<name>)")
	fs.Var(&w.gates, "webhook-gate", "a webhook step of --steps that every step listed after it waits for (a warehouse system that must accept the order before shipping), <name> (repeat per webhook): later steps start only once its receiver answered 2xx; refused for good, the order is dead-lettered with them pending and a replay runs them")
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
