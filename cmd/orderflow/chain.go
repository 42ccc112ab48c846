package main

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"unicode"

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
		"and outbound webhooks webhook:<name> (set ORDERFLOW_WEBHOOK_<NAME>_URL and ORDERFLOW_WEBHOOK_<NAME>_SECRET, the name upper-cased " +
		"and '-' as '_', or --webhook <name>=<url> and --webhook-step-secret-file <name>=<file>). A step runs once the steps it reads " +
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
// left out (every other step reads the order). Spaces around a name, its
// '=' and its provider do not count; built-in steps, providers and the
// webhook: prefix are case-insensitive (a webhook's own name is not: it is
// part of its message ids and event type).
func parseChain(spec string) ([]chainEntry, error) {
	var out []chainEntry
	seen := map[string]bool{}
	envOf := map[string]string{} // ORDERFLOW_WEBHOOK_<NAME>_ → webhook name
	providers := stepProviders()
	for _, item := range splitList(spec) {
		name, prov, hasProv := strings.Cut(item, "=")
		name, prov = strings.TrimSpace(name), strings.TrimSpace(prov)
		var e chainEntry
		if wh, ok := cutWebhookPrefix(name); ok {
			if hasProv {
				return nil, usagef("--steps: %q: a webhook step has no provider (its URL is --webhook %s=<url>)", item, wh)
			}
			if err := (webhook.Config{Name: wh, URL: "https://x.invalid", Secrets: []string{"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}).Validate(); err != nil {
				return nil, usagef("--steps: %v", err)
			}
			env := webhookEnv(wh, "")
			if other, ok := envOf[env]; ok && other != wh {
				return nil, usagef("--steps: webhook:%s and webhook:%s would share the variables %sURL and %sSECRET (a name is upper-cased and '-' becomes '_'): rename one", other, wh, env, env)
			}
			envOf[env] = wh
			e = chainEntry{name: integrations.WebhookStepPrefix + wh, webhook: wh}
		} else {
			step := strings.ToLower(name)
			provs, ok := providers[step]
			if !ok {
				return nil, usagef("--steps: unknown step %q (steps: %s, webhook:<name>)", name, strings.Join(processor.Chain, ", "))
			}
			e = chainEntry{name: step, provider: provs[0]}
			if hasProv {
				p := strings.ToLower(prov)
				if !slices.Contains(provs, p) {
					return nil, usagef("--steps: unknown provider %q for %s (providers: %s)", prov, step, strings.Join(provs, ", "))
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

// cutWebhookPrefix returns name without a leading "webhook:" in any case,
// and whether it had one.
func cutWebhookPrefix(name string) (string, bool) {
	n := len(integrations.WebhookStepPrefix)
	if len(name) >= n && strings.EqualFold(name[:n], integrations.WebhookStepPrefix) {
		return strings.TrimSpace(name[n:]), true
	}
	return name, false
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

// namedValues is a repeatable flag of <name>=<value> pairs of webhook
// steps. One value may hold several pairs, comma-separated (the form of its
// environment variable, as ORDERFLOW_WEBHOOK_GATE takes a list); a part that
// is not <name>=<value> (a URL or path holding a comma) is refused, since
// the value cannot be split without guessing (ORDERFLOW_WEBHOOK_<NAME>_URL
// takes such a URL as it is). The name may carry the
// webhook: prefix of --steps. An empty value (an unset template or
// ConfigMap value) sets nothing. Values are never put in an error: a URL
// may hold a token.
type namedValues map[string]string

func (n *namedValues) String() string { return "" }

// credential keeps parseFlags from echoing a bad value of the variable.
func (n *namedValues) credential() {}
func (n *namedValues) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	pairs := map[string]string{}
	var order []string
	for i, part := range parts {
		if strings.TrimSpace(part) == "" && len(parts) > 1 {
			continue // a trailing or doubled comma
		}
		name, v, ok := strings.Cut(part, "=")
		name, _ = cutWebhookPrefix(strings.TrimSpace(name))
		v = strings.TrimSpace(v)
		if !ok || name == "" || v == "" || !webhookNameRE.MatchString(name) {
			if len(parts) > 1 {
				return fmt.Errorf("want <name>=<value> pairs, comma-separated: part %d of %d is not <name>=<value> (a value holding a comma cannot be split: set it as ORDERFLOW_WEBHOOK_<NAME>_URL, or the secrets as ORDERFLOW_WEBHOOK_<NAME>_SECRET)", i+1, len(parts))
			}
			return fmt.Errorf("want <name>=<value>")
		}
		if _, dup := pairs[name]; dup {
			return fmt.Errorf("webhook %s given twice", name)
		}
		pairs[name] = v
		order = append(order, name)
	}
	if *n == nil {
		*n = namedValues{}
	}
	for _, name := range order {
		if _, dup := (*n)[name]; dup {
			return fmt.Errorf("webhook %s given twice", name)
		}
		(*n)[name] = pairs[name]
	}
	return nil
}

// webhookNameRE is a webhook step's name (webhook.Config.Name).
var webhookNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// markGates marks the webhook steps named by --webhook-gate: every step
// after such a step in --steps waits for it. A name that is no webhook step
// of --steps, or one with no step after it, is refused.
func markGates(chain []chainEntry, gates []string) error {
	for _, g := range gates {
		g, _ = cutWebhookPrefix(g)
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

// check refuses a --webhook or --webhook-step-secret-file naming no webhook
// step of chain (a typo would leave the step without its URL or secret).
func (w *webhookFlags) check(chain []chainEntry) error {
	for _, f := range []struct {
		flag string
		vals namedValues
	}{{"webhook", w.urls}, {"webhook-step-secret-file", w.secretFiles}} {
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
	// Empty (an unset template or ConfigMap value) sets nothing.
	*l = append(*l, splitList(s)...)
	return nil
}

// webhookFlags are the settings of the webhook steps.
type webhookFlags struct {
	urls        namedValues
	secretFiles namedValues
	gates       listFlag
}

func (w *webhookFlags) register(fs *flag.FlagSet) {
	fs.Var(&w.urls, "webhook", "URL of a webhook step, <name>=<url> (repeat per webhook, or comma-separated pairs; prefer ORDERFLOW_WEBHOOK_<NAME>_URL: a URL is a credential, and a flag shows in the process list; with --sim-url default <sim-url>/webhooks/<name>)")
	fs.Var(&w.gates, "webhook-gate", "a webhook step of --steps that every step listed after it waits for (a warehouse system that must accept the order before shipping), <name> (repeat per webhook, or comma-separated): later steps start only once its receiver answered 2xx; refused for good, the order is dead-lettered with them pending and a replay runs them")
	fs.Var(&w.secretFiles, "webhook-step-secret-file", "file holding a webhook step's Standard Webhooks secrets, <name>=<file> (repeat per webhook, or comma-separated pairs; or set ORDERFLOW_WEBHOOK_<NAME>_SECRET): whsec_ and the base64 of 24–64 bytes (the prefix may be left out), several separated by newlines or spaces during a rotation, the current one first (every request is signed with each); an empty file is refused")
	fs.Var(flagOnly{&w.secretFiles}, "webhook-secret-file", "the old name of --webhook-step-secret-file, on the command line only (ORDERFLOW_WEBHOOK_SECRET_FILE is the gateway's Stripe secret file, left to it so one environment serves both)")
}

// flagOnly is a flag no ORDERFLOW_<FLAG> variable sets (parseFlags skips
// it): an old name whose variable another command reads with another
// meaning.
type flagOnly struct{ flag.Value }

func (flagOnly) noEnv() {}

// webhookSecrets splits the text of a webhook secret file or variable into
// its secrets: newline-, space- or comma-separated (a rotation lists the
// current secret and the next).
func webhookSecrets(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

// webhookEnv is the environment variable of a webhook's setting: the name
// upper-cased, '-' as '_' (so erp and ERP, a-b and a_b would share one;
// parseChain refuses such pairs).
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
