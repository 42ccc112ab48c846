package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics"
)

// lookup asks a provider whether an interrupted call took effect; found
// with the call's result when it did.
type lookup func(ctx context.Context) (result any, found bool, err error)

// resolveIntent handles an intent without a result (the previous call may
// have reached the provider). When resolved is false the caller goes on: it
// calls the provider again if the intent was cleared, or resolves again if
// the intent is still set.
//
// A step that implements Reconciler is looked up at its provider under the
// policy reconcile (always, for an AlwaysReconciled one); any other follows
// the policy, reconcile meaning retry. Called with mu held.
func (h *handling) resolveIntent(s Step, log *slog.Logger) (stepOutcome, bool) {
	p, st := h.p, h.st
	step := s.Name()
	ss := st.Step(step)
	pol := p.cfg.intentPolicy(step)
	if r, ok := s.(Reconciler); ok {
		always := false
		if a, ok := s.(AlwaysReconciled); ok {
			always = a.AlwaysReconcile()
		}
		if find, what := r.Lookup(h.input()); find != nil && (pol == IntentReconcile || always) {
			return h.reconcile(step, find, what, log)
		}
	}
	switch pol {
	case IntentDeadLetter:
		return h.deadLetterOutcome(step, topics.ClassPermanent,
			fmt.Errorf("%s: an earlier call may have reached the provider (intent at %s without a result); policy dead-letter", step, ss.Intent.Format(time.RFC3339))), true
	default: // retry, or reconcile with a provider that cannot look calls up
		st.AddFlag(FlagPossibleDuplicatePrefix + step)
		log.Warn("calling again after an intent without a result; order flagged as a possible duplicate", "policy", string(pol))
		ss.Intent, ss.Lease = nil, nil
		return stepDone, false
	}
}

// reconcile looks an interrupted call up at the provider, the one path of
// shipping, invoice and email:
//
//  1. Wait until the call's lease has ended plus the clock drift bound:
//     from then on the earlier owner, even a paused one that woke up, can
//     no longer send it.
//  2. Look it up. Found: its result is recorded and the call is not made
//     again. Not found: the provider may not show it yet, so the look-up
//     is repeated (backing off) until LookupDelay has passed since step 1;
//     only a "not found" asked after that clears the intent, and the
//     caller calls again.
//  3. A provider that cannot answer (errors) until HoldAfter has passed
//     since step 1, or answers with a permanent error, holds the order: it
//     is dead-lettered with the reason and an alert, never called again by
//     itself; a replay reconciles again. While the step's circuit is open
//     (the provider fails for every order) a failing look-up brings no
//     hold nearer.
func (h *handling) reconcile(step string, find lookup, what string, log *slog.Logger) (stepOutcome, bool) {
	p, ss := h.p, h.st.Step(step)
	from := p.leaseEnd(ss).Add(p.cfg.MaxClockDrift)
	if d := time.Until(from); d > 0 {
		log.Info("waiting for the lease of an interrupted call to end before looking it up", "what", what, "wait", d.Round(time.Millisecond).String())
		var slept bool
		h.unlocked(func() { slept = sleep(d, h.stopCh) })
		if !slept {
			return stepStopped, true
		}
	}
	definitive, holdAt := from.Add(p.cfg.LookupDelay), from.Add(p.cfg.HoldAfter)
	for n := 1; ; n++ {
		if h.stopping() {
			return stepStopped, true
		}
		asked := time.Now()
		ctx, cancel := context.WithTimeout(h.part.stepCtx, p.cfg.StepTimeout)
		var res any
		var found bool
		var err error
		h.unlocked(func() { res, found, err = find(ctx) })
		cancel()
		err = maskPersonal(err, h.st.Order)
		p.m.reconciles.WithLabelValues(step, reconcileOutcome(found, err)).Inc()
		switch {
		case err != nil && h.part.stepCtx.Err() != nil:
			return stepStopped, true
		case err == nil && found:
			log.Info("found at the provider after an interrupted call; not made again", "what", what, "lookups", n)
			if sh, ok := res.(integrations.Shipment); ok && sh.LabelLocation == "" {
				// The label came with the booking's answer, which was lost:
				// someone must print it, so say so.
				log.Warn("shipment found without its label; print it from the carrier's portal", "tracking_number", sh.TrackingNumber)
				h.p.alert(integrations.Alert{OrderID: h.key, Step: step, Text: "shipment found at the carrier after an interrupted booking, without its label: print the label of item " + sh.TrackingNumber + " from the carrier's portal"})
			}
			result, jerr := json.Marshal(res)
			if jerr != nil {
				return h.deadLetterOutcome(step, topics.ClassPermanent, fmt.Errorf("%s: encode the result found: %w", step, jerr)), true
			}
			now := time.Now().UTC()
			ss.Done, ss.DoneAt, ss.Result, ss.Intent, ss.Lease, ss.LastError = true, &now, result, nil, nil, ""
			h.withResult(step, now)
			if h.persist() != nil {
				return stepStopped, true
			}
			return stepDone, true
		case err == nil && !asked.Before(definitive):
			log.Info("not at the provider after the look-up delay; calling again", "what", what, "lookups", n)
			ss.Intent, ss.Lease = nil, nil
			return stepDone, false
		case err != nil && !integrations.IsPermanent(err) && p.breakers[step] != nil && p.breakers[step].current() != circuitClosed:
			// The provider fails for every order (its circuit is open): a
			// look-up failing meanwhile says nothing of this call, and
			// brings no hold nearer; the order waits for the provider as
			// the others do. (An outage answering 502 would otherwise hold
			// every order it left in doubt.)
			holdAt = time.Now().Add(p.cfg.HoldAfter)
		case err != nil && (integrations.IsPermanent(err) || !asked.Before(holdAt)):
			return h.deadLetterOutcome(step, topics.ClassPermanent, fmt.Errorf(
				"held: whether an interrupted %s call reached the provider is unknown (look-up of %s: %w); not called again: check at the provider, then replay", step, what, err)), true
		}
		wait := max(p.cfg.Retry.backoff(n, err), minLookupWait)
		if err != nil {
			log.Warn("look-up after an interrupted call failed; asking again", "what", what, "lookups", n, "err", err)
			wait = min(wait, max(time.Until(holdAt), 0)+minLookupWait)
		} else {
			wait = min(wait, max(time.Until(definitive), 0)+minLookupWait)
		}
		var slept bool
		h.unlocked(func() { slept = sleep(wait, h.stopCh) })
		if !slept {
			return stepStopped, true
		}
	}
}

// minLookupWait is the shortest pause between two look-ups of one call.
const minLookupWait = 50 * time.Millisecond

func reconcileOutcome(found bool, err error) string {
	switch {
	case err != nil:
		return "error"
	case found:
		return "found"
	}
	return "not_found"
}
