package processor

import (
	"fmt"
	"slices"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// This file runs an order's chain as a dependency graph. The first step
// reads the order; every later step runs as soon as the steps it reads
// (Step.Reads) and every gate before it (Gate: a webhook step marked so) are
// done, concurrently with the others that are ready, each with its own
// retries, circuit and dead letter. A step that no other step reads and
// that is no gate (CRM, production log, unmarked webhooks) therefore never
// delays the shipping → invoice → email path. The order is completed only when every
// step is done; until then the state lists the pending ones (State.Pending).

// chain starts or resumes the order's step chain.
func (h *handling) chain() bool {
	if h.st == nil {
		h.st = h.newState(StatusInProgress)
	}
	st := h.st
	switch st.Status {
	case StatusCompleted, StatusRefunded:
		// One order, one chain: later payment events change nothing. A
		// replayed one is recorded so a second replay of it is ignored.
		if h.replay && h.replaySrc != "" {
			h.markApplied()
			return h.finish()
		}
		return true
	}
	st.Status = StatusInProgress
	h.markApplied()
	for _, name := range h.p.absent {
		// A built-in step left out of the chain is recorded as skipped.
		if ss := st.Step(name); !ss.Done && !ss.Skipped {
			ss.Skipped = true
			h.p.m.stepDuration.WithLabelValues(name, outcomeSkipped).Observe(0)
		}
	}

	h.started, h.preIntent = map[string]bool{}, map[string]bool{}
	h.halt = make(chan struct{})
	stop := make(chan struct{})
	h.stopCh = stop
	go func() {
		select {
		case <-h.part.stopCh:
		case <-h.halt:
		}
		close(stop)
	}()
	defer h.stopHandling()

	stopped := h.runGraph()
	if h.panicked != nil {
		panic(h.panicked)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !stopped && len(h.dead) == 0 && h.held && len(h.pending()) > 0:
		// Every step left is held for its provider's quota or reads one
		// that is: the record is finished, the hold's release resumes it.
		return h.finishHeld()
	case !stopped && len(h.dead) == 0 && h.yielded && len(h.pending()) > 0:
		// Shipping yielded to a refund queued behind: the record is
		// finished, the refund stops the chain.
		h.st.Status = StatusInProgress
		return h.finish()
	case stopped || len(h.dead) == 0 && len(h.pending()) > 0:
		// A step stopped, or the partition stopped before every step
		// started: the record is left unfinished.
		h.dropPreIntent()
		return false
	case len(h.dead) > 0:
		// The dead letters are written: record them, even when the steps
		// not reading the dead ones were stopped (a replay runs them).
		return h.finishDeadLettered()
	}
	st.Status = StatusCompleted
	st.LastError = ""
	if !h.completed && !h.finish() {
		return false
	}
	h.p.m.orders.WithLabelValues(string(StatusCompleted)).Inc()
	h.log().Info("order completed")
	return true
}

// stopHandling stops what still waits in this handling.
func (h *handling) stopHandling() { h.haltOnce.Do(func() { close(h.halt) }) }

// runGraph starts every ready step on a goroutine of its own (a step ready
// alone while none runs on this one) and, as steps end, the steps they
// made ready, until none runs. It reports whether a
// step stopped (the record is then left unfinished).
func (h *handling) runGraph() (stopped bool) {
	ended := make(chan stepOutcome)
	running := 0
	h.mu.Lock()
	for {
		if !stopped {
			ready := h.ready()
			if len(ready) == 1 && running == 0 {
				// The one step to run (the first step always): run it on
				// this goroutine, whose stack has grown already, rather
				// than on a new one that grows its own to a provider
				// call's depth.
				s := ready[0]
				h.started[s.Name()] = true
				if h.runHere(s) == stepStopped {
					stopped = true
					h.stopHandling()
				}
				continue
			}
			for _, s := range ready {
				h.started[s.Name()] = true
				running++
				go func() {
					h.mu.Lock()
					defer func() {
						// A panic (a state no code path expected) ends the
						// run; handle dead-letters the record as corrupt.
						if r := recover(); r != nil {
							h.panicked = r
							h.mu.Unlock()
							ended <- stepStopped
						}
					}()
					o := h.runStep(s)
					h.mu.Unlock()
					ended <- o
				}()
			}
		}
		if running == 0 {
			break
		}
		h.mu.Unlock()
		o := <-ended
		h.mu.Lock()
		running--
		if o == stepStopped && !stopped {
			stopped = true
			h.stopHandling()
		}
	}
	h.mu.Unlock()
	return stopped
}

// runHere runs s on the calling goroutine as runGraph's goroutines do: with
// mu held, a panic ending the run.
func (h *handling) runHere(s Step) (o stepOutcome) {
	defer func() {
		if r := recover(); r != nil {
			h.panicked = r
			o = stepStopped
		}
	}()
	return h.runStep(s)
}

// ready returns the steps not started whose inputs are done: the first
// step while the order is not read, then every step whose reads are done
// or not in the chain. Called with mu held.
func (h *handling) ready() []Step {
	if h.stopping() {
		return nil
	}
	first := h.p.chain[0]
	if !h.stepDone(first.Name()) {
		if h.started[first.Name()] {
			return nil
		}
		return []Step{first}
	}
	var out []Step
	for i, s := range h.p.chain {
		name := s.Name()
		if i == 0 || h.started[name] || h.stepDone(name) {
			continue
		}
		if h.waitsDone(i) {
			out = append(out, s)
		}
	}
	return out
}

// waitsDone reports whether every step chain[i] reads, and every gate
// before it, is done (or out of the chain).
func (h *handling) waitsDone(i int) bool {
	for _, r := range waitsFor(h.p.chain, i) {
		if _, in := h.p.steps[r]; in && !h.stepDone(r) {
			return false
		}
	}
	return true
}

// stepDone reports whether a step of the chain needs no more run: done
// (the first step only with the order recorded) or skipped (never the
// first: every chain needs the order).
func (h *handling) stepDone(name string) bool {
	ss := h.st.Steps[name]
	if ss == nil {
		return false
	}
	if name == h.p.chain[0].Name() {
		return ss.Done && h.st.Order != nil
	}
	return ss.Done || ss.Skipped
}

// pending lists the steps of the chain not done yet, in chain order.
func (h *handling) pending() []string {
	var out []string
	for _, s := range h.p.chain {
		if !h.stepDone(s.Name()) {
			out = append(out, s.Name())
		}
	}
	return out
}

// finishDeadLettered records the run's dead letters in the state once every
// step has ended: the order is dead-lettered at the first of them (each
// step's alert went when its letter was written). Called with mu held.
func (h *handling) finishDeadLettered() bool {
	st, first := h.st, h.dead[0]
	st.Status = StatusDeadLettered
	st.LastError = truncate(first.err, h.p.cfg.MaxErrorLen)
	st.DeadLetter = &DeadLetter{Partition: first.out.Partition, Offset: first.out.Offset, Step: first.step, Class: first.class, At: first.at}
	if !h.finish() {
		return false
	}
	h.p.m.orders.WithLabelValues(string(StatusDeadLettered)).Inc()
	return true
}

// deadLetterOutcome writes the dead letter of a step that failed for good,
// tells a human, and records the step's failure in the state at once: the
// order is marked dead-lettered when the chain's run ends
// (finishDeadLettered), so the steps that do not read this one go on, and
// a slow provider's retries there can take minutes. Called with mu held.
func (h *handling) deadLetterOutcome(step, class string, cause error) stepOutcome {
	ss := h.st.Step(step)
	now := time.Now().UTC()
	info := deadLetterInfo{step: step, class: class, err: cause.Error(), attempts: ss.Attempts, firstFailure: now, lastFailure: now}
	if ss.FirstFailure != nil {
		info.firstFailure = *ss.FirstFailure
	}
	if ss.LastFailure != nil {
		info.lastFailure = *ss.LastFailure
	}
	out, ok := h.writeDeadLetter(info)
	if !ok {
		return stepStopped
	}
	h.dead = append(h.dead, deadStep{step: step, class: class, err: cause.Error(), attempts: ss.Attempts, out: out, at: now})
	h.p.alert(integrations.Alert{OrderID: h.key, Step: step,
		Text: fmt.Sprintf("order dead-lettered at step %s (%s) after %s: %s", step, class, attempts(ss.Attempts), truncate(cause.Error(), 200))})
	if h.othersRunning(step) {
		// Else the state is written as the run ends, right after.
		if err := h.persist(); err != nil {
			return stepStopped
		}
	}
	for i := range h.p.chain {
		if slices.Contains(waitsFor(h.p.chain, i), step) {
			h.log().Warn("steps reading or gated by this one wait for its replay", "step", step)
			break
		}
	}
	return stepDeadLettered
}

// othersRunning reports whether a step of the chain other than step was
// started in this run and has not ended (done or dead-lettered).
func (h *handling) othersRunning(step string) bool {
	for name := range h.started {
		if name != step && !h.stepDone(name) && !slices.ContainsFunc(h.dead, func(d deadStep) bool { return d.step == name }) {
			return true
		}
	}
	return false
}
