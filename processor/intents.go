package processor

import (
	"encoding/json"
	"sync"
	"time"
)

// This file keeps the writes around calls that are not idempotent: intents
// written ahead with an earlier result, intents of calls not made, and the
// results whose state write was lost. What happens to an intent found
// without a result is reconcile.go's.

// unpersistedResult is a provider's answer whose state write failed.
type unpersistedResult struct {
	result json.RawMessage
	at     time.Time
}

// unpersistedTTL is how long a result whose state write failed is kept for
// its order's return. An order that went to another processor is resolved
// there (look-up by invoice number or Message-Id, or the possible-duplicate
// flag) within minutes; the entry is then only a leak.
const unpersistedTTL = 24 * time.Hour

// pruneUnpersisted drops the results kept since before cutoff and returns
// how many it dropped.
func pruneUnpersisted(m *sync.Map, cutoff time.Time) int {
	n := 0
	m.Range(func(k, v any) bool {
		if r, ok := v.(unpersistedResult); ok && r.at.Before(cutoff) {
			m.Delete(k)
			n++
		}
		return true
	})
	return n
}

// dropPreIntent clears the intents written ahead with an earlier result
// when the chain stops before making those calls, so the next owner does
// not take them for interrupted calls (best effort: if the write fails, the
// next owner follows the intent policy). Called with mu held.
func (h *handling) dropPreIntent() {
	if len(h.preIntent) == 0 {
		return
	}
	for step := range h.preIntent {
		h.st.Step(step).Intent, h.st.Step(step).Lease = nil, nil
		delete(h.preIntent, step)
	}
	if err := h.persist(); err != nil {
		h.log().Warn("could not clear the intent of a call not made", "err", err)
	}
}

// withResult folds what would be the next writes into the write of step's
// result, so an order takes six state writes instead of ten: after the last
// step, the completion; before each step this result makes ready that is
// not idempotent, its intent (only while its circuit is closed, so the
// intent is not left standing while the order waits). Either way every
// result is persisted before a call that reads it, and every intent before
// its call. Called with mu held, step already marked done.
func (h *handling) withResult(step string, now time.Time) {
	st := h.st
	if len(h.pending()) == 0 && len(h.dead) == 0 {
		st.Status, st.LastError, st.NextOffset = StatusCompleted, "", h.rec.Offset+1
		h.completed = true
		return
	}
	for _, next := range h.ready() {
		name := next.Name()
		if next.Idempotent() || st.Step(name).Intent != nil || h.p.breakers[name].current() != circuitClosed {
			continue
		}
		at, lease := now, now.Add(h.p.cfg.StepTimeout)
		st.Step(name).Intent, st.Step(name).Lease = &at, &lease
		h.preIntent[name] = true
	}
}
