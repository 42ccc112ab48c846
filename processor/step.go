package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics"
)

// Step is one step of the chain, a value the processor runs without knowing
// what it does: retries, the circuit breaker, intents and their leases, the
// order state and dead letters work the same for every step. The built-in
// steps are built from Providers (BuiltinChain); a webhook step from a
// webhook client (WebhookStep); any other type implementing Step can join a
// chain too.
type Step interface {
	// Name names the step in the order state, metrics, dead letters and
	// alerts. It must be unique in the chain.
	Name() string
	// Idempotent reports whether the call can be repeated safely. A step
	// that is not idempotent writes an intent (with a lease) before every
	// call and, after a crash, is reconciled by its Lookup if it has one
	// (Reconciler) or follows its intent policy.
	Idempotent() bool
	// Reads names the earlier steps whose results Run reads (the order
	// details are read by every step but the first and are not listed).
	// The step runs once they are done (or skipped); steps that read
	// nothing of each other run concurrently.
	Reads() []string
	// Run makes the call. Its result is recorded as JSON in the order
	// state; the first step's result must be the integrations.Order.
	Run(ctx context.Context, in Input) (any, error)
}

// Reconciler is implemented by a step that is not idempotent and can look
// up whether an interrupted call took effect at the provider (the shipment
// by the order's reference, the invoice by its number, the email by its
// Message-Id), so a call cut off by a crash is not made twice.
type Reconciler interface {
	// Lookup returns how to look up the order's call and what it looks
	// for (for logs); a nil find means this provider has no look-up.
	Lookup(in Input) (find func(ctx context.Context) (result any, found bool, err error), what string)
}

// Gate is implemented by a step that every step listed after it in the
// chain waits for, besides the steps it reads: a warehouse system that must
// accept the order before it ships. A step whose Gate returns false is an
// ordinary step. A gate that fails for good leaves the steps after it
// pending (the order is dead-lettered with them); a replay runs it again,
// then them.
type Gate interface {
	Gate() bool
}

// AlwaysReconciled is implemented by a Reconciler whose look-up is used
// whatever its intent policy (invoices: the number makes the look-up exact).
type AlwaysReconciled interface {
	AlwaysReconcile() bool
}

// Input is what a step's call sees: the order and the results of the steps
// done so far (a snapshot taken before the call).
type Input struct {
	// OrderID is the order's key.
	OrderID string
	// Order is the order as the first step read it (zero for the first
	// step itself).
	Order integrations.Order
	// done are the steps done, in chain order, each with its recorded
	// result (none for a step without one).
	done []doneStep
}

type doneStep struct {
	name   string
	result json.RawMessage
}

// Result decodes the result of a done step into v, left as it is when the
// step is not done (skipped, not in the chain) or recorded no result. A
// result that does not decode is an error: a step must not run on an empty
// value (a step returns it as a permanent failure).
func (in Input) Result(step string, v any) error {
	var b json.RawMessage
	for _, d := range in.done {
		if d.name == step {
			b = d.result
			break
		}
	}
	if len(b) == 0 {
		return nil
	}
	if err := topics.Unmarshal(b, v); err != nil {
		return fmt.Errorf("the recorded %s result does not decode: %v", step, err)
	}
	return nil
}

// Results returns the results of the done steps by name, as the order
// state records them.
func (in Input) Results() map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(in.done))
	for _, d := range in.done {
		if len(d.result) > 0 {
			out[d.name] = slices.Clone(d.result)
		}
	}
	return out
}

// Completed lists the steps done so far, in chain order.
func (in Input) Completed() []string {
	if len(in.done) == 0 {
		return nil
	}
	out := make([]string, 0, len(in.done))
	for _, d := range in.done {
		out = append(out, d.name)
	}
	return out
}

// ChainError is an invalid chain, refused when the processor is built.
type ChainError struct{ Reason string }

func (e *ChainError) Error() string { return "processor: invalid chain: " + e.Reason }

// ValidateChain checks a chain: at least the first step, which reads the
// order; unique names; no step reads a step listed after it.
func ValidateChain(chain []Step) error {
	if len(chain) == 0 {
		return &ChainError{"no steps (the first step must read the order details)"}
	}
	seen := map[string]bool{}
	for i, s := range chain {
		if s == nil {
			return &ChainError{fmt.Sprintf("step %d is nil", i+1)}
		}
		name := s.Name()
		if strings.TrimSpace(name) == "" {
			return &ChainError{fmt.Sprintf("step %d has no name", i+1)}
		}
		if seen[name] {
			return &ChainError{fmt.Sprintf("duplicate step %q", name)}
		}
		for _, r := range s.Reads() {
			// A step read but absent from the chain is turned off: the
			// reader sees no result of it, as with a skipped step.
			if !seen[r] && slices.ContainsFunc(chain[i+1:], func(t Step) bool { return t.Name() == r }) {
				return &ChainError{fmt.Sprintf("step %q reads %q, which comes after it", name, r)}
			}
		}
		seen[name] = true
	}
	return nil
}

// waitsFor lists the steps chain[i] waits for: those it reads, then every
// gate listed before it (Gate) it does not read already.
func waitsFor(chain []Step, i int) []string {
	out := slices.Clone(chain[i].Reads())
	for _, g := range chain[:i] {
		if isGate(g) && !slices.Contains(out, g.Name()) {
			out = append(out, g.Name())
		}
	}
	return out
}

// isGate reports whether every later step waits for s.
func isGate(s Step) bool {
	g, ok := s.(Gate)
	return ok && g.Gate()
}

// stepNames lists the chain's names in order.
func stepNames(chain []Step) []string {
	out := make([]string, len(chain))
	for i, s := range chain {
		out[i] = s.Name()
	}
	return out
}

// KnownStep reports whether name can be a step of some chain: a built-in
// step or a webhook step ("webhook:<name>").
func KnownStep(name string) bool {
	if wh, ok := strings.CutPrefix(name, integrations.WebhookStepPrefix); ok {
		return wh != ""
	}
	return slices.Contains(Chain, name)
}
