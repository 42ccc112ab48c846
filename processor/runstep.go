package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics"
)

// This file runs one step of the chain to success, dead letter or stop:
// the call with its timeout or lease, retries with backoff, the step's
// circuit breaker, and the intent written before a call that is not
// idempotent (intents.go, reconcile.go).

type stepOutcome int

const (
	stepDone stepOutcome = iota
	stepStopped
	stepDeadLettered
	stepHeld // held for the provider's quota (hold.go)
	// stepYielded: shipping not started, a refund of the whole charge
	// queued behind the record stops the chain (yieldsToRefund).
	stepYielded
)

// unlocked runs f with mu released: for what waits (a call, a backoff, the
// circuit) so the order's other steps can go on meanwhile.
func (h *handling) unlocked(f func()) {
	h.mu.Unlock()
	defer h.mu.Lock()
	f()
}

// input is a snapshot of what a step's call sees. Called with mu held.
func (h *handling) input() Input {
	st := h.st
	in := Input{OrderID: h.key, done: make([]doneStep, 0, len(h.p.names))}
	if st.Order != nil {
		in.Order = *st.Order
	}
	for _, name := range h.p.names {
		if ss := st.Steps[name]; ss != nil && ss.Done {
			// The result is shared, not copied: a recorded result is
			// replaced, never changed in place, and Input only reads it.
			in.done = append(in.done, doneStep{name: name, result: ss.Result})
		}
	}
	return in
}

// stepLog is a step's logger, made on first use: most steps log nothing
// at the levels enabled.
type stepLog struct {
	h    *handling
	step string
	l    *slog.Logger
}

func (s *stepLog) get() *slog.Logger {
	if s.l == nil {
		s.l = s.h.log().With("step", s.step)
	}
	return s.l
}

// runStep runs one step to success, dead letter or stop, with retries,
// intents and the step's circuit breaker. Called with mu held; it releases
// mu while it waits.
func (h *handling) runStep(s Step) stepOutcome {
	p, st := h.p, h.st
	step := s.Name()
	first := step == p.chain[0].Name()
	ss := st.Step(step)
	br := p.breakers[step]
	log := &stepLog{h: h, step: step}
	if !first && st.Order == nil {
		return h.deadLetterOutcome(step, topics.ClassPermanent, integrations.Permanentf("processor", step, "no order details in the state"))
	}
	for {
		if h.stopping() {
			return stepStopped
		}
		if !s.Idempotent() && ss.Intent != nil && !h.preIntent[step] {
			if v, ok := p.unpersisted.Load(h.key + "/" + step); ok {
				// This process made the call; only its state write was lost.
				r := v.(unpersistedResult)
				ss.Done, ss.DoneAt, ss.Result, ss.Intent, ss.Lease, ss.LastError = true, &r.at, r.result, nil, nil, ""
				h.withResult(step, r.at)
				if err := h.persist(); err != nil {
					return stepStopped
				}
				p.unpersisted.Delete(h.key + "/" + step)
				log.get().Info("result of an earlier call recorded; not called again")
				return stepDone
			}
			if o, resolved := h.resolveIntent(s, log.get()); resolved {
				return o
			}
			if ss.Intent != nil {
				continue // reconciling failed transiently and backed off: try again
			}
		}
		if h.yieldsToRefund(step, log.get()) {
			return stepYielded
		}
		if until, reason, held := p.holds.gate(step, h.part.num, h.key, ss); held {
			h.holdStep(step, ss, until, reason)
			return stepHeld
		}
		if ss.CircuitOpen == nil && br.waits() {
			// The order starts waiting on the open circuit: its state says
			// so (one write; none while the circuit is closed).
			now := time.Now().UTC()
			ss.CircuitOpen = &now
			if err := h.persist(); err != nil {
				return stepStopped
			}
		}
		var probe bool
		var err error
		h.unlocked(func() { probe, err = br.acquire(h.stopCh) })
		if err != nil {
			return stepStopped
		}
		ss.CircuitOpen = nil // a call is made: the next write clears it
		if h.yieldsToRefund(step, log.get()) {
			// It waited for the circuit, and a refund came meanwhile.
			br.release(probe)
			return stepYielded
		}
		attempt := ss.Attempts + 1
		actx, aspan := h.startAttempt(step, attempt)
		switch {
		case h.preIntent[step] && time.Until(p.leaseEnd(ss)) >= p.cfg.StepTimeout/2:
			delete(h.preIntent, step) // persisted with an earlier step's result
		case !s.Idempotent():
			// A new intent, or a fresh lease for one written ahead that
			// has waited (for the circuit) half its lease: no call was
			// made under it.
			delete(h.preIntent, step)
			now := time.Now().UTC()
			lease := now.Add(p.cfg.StepTimeout)
			ss.Intent, ss.Lease = &now, &lease
			if err := h.persistIn(actx); err != nil {
				br.release(probe)
				endAttempt(aspan, resultStopped, err)
				return stepStopped
			}
		}
		if h.debugOn() {
			log.get().Debug("step call", "attempt", attempt)
		}
		var ctx context.Context
		var cancel context.CancelFunc
		if s.Idempotent() {
			ctx, cancel = context.WithTimeout(h.part.stepCtx, p.cfg.StepTimeout)
		} else {
			// The call ends with its lease, which the next owner waits out
			// before it looks the call up; a deadline already past (this
			// process was paused since the intent) fails the call before
			// anything is sent. The membership is confirmed again after the
			// intent's write, right before the call.
			if !h.fenced() {
				br.release(probe)
				endAttempt(aspan, resultStopped, errFenced)
				return stepStopped
			}
			ctx, cancel = context.WithDeadline(h.part.stepCtx, p.leaseEnd(ss))
		}
		ctx = callContext(ctx, aspan)
		in := h.input()
		start := time.Now()
		var res any
		h.unlocked(func() { res, err = s.Run(ctx, in) })
		cancel()
		// What the provider answered may quote the order's customer data:
		// the error goes to the log, the state, the dead letter and the
		// alert without it.
		err = maskPersonal(err, h.st.Order)
		elapsed := time.Since(start).Seconds()
		p.m.stepAttempts.WithLabelValues(step).Inc()
		var result json.RawMessage
		if err == nil {
			result, err = h.record(s, first, res)
		}

		if err == nil {
			br.success(probe)
			p.m.stepDuration.WithLabelValues(step, outcomeOK).Observe(elapsed)
			now := time.Now().UTC()
			ss.Done, ss.DoneAt, ss.Result, ss.Intent, ss.Lease, ss.LastError = true, &now, result, nil, nil, ""
			ss.HeldUntil, ss.HeldReason = nil, ""
			p.holds.answered(step, h.part.num, h.key)
			st.LastError = ""
			h.withResult(step, now)
			if err := h.persistIn(actx); err != nil {
				endAttempt(aspan, resultOK, nil)
				if !s.Idempotent() {
					p.unpersisted.Store(h.key+"/"+step, unpersistedResult{result: result, at: now})
					log.get().Warn("step result not persisted; kept to record when the order returns to this process", "attempt", attempt, "err", err)
				} else {
					log.get().Warn("step result not persisted; the step will run again", "attempt", attempt, "err", err)
				}
				return stepStopped
			}
			if h.debugOn() {
				log.get().Debug("step done", "attempt", attempt)
			}
			endAttempt(aspan, resultOK, nil)
			return stepDone
		}
		if h.part.stepCtx.Err() != nil {
			// Interrupted by the revocation deadline: not the provider's fault.
			br.release(probe)
			endAttempt(aspan, resultStopped, err)
			return stepStopped
		}
		now := time.Now().UTC()
		if ss.FirstFailure == nil {
			ss.FirstFailure = &now
		}
		ss.LastFailure = &now
		ss.LastError = truncate(err.Error(), p.cfg.MaxErrorLen)
		st.LastError = ss.LastError
		switch {
		case answered(err):
			ss.Intent, ss.Lease = nil, nil // the provider answered with an error: nothing was created
		case ss.Intent != nil:
			// The call is over: nothing more of it can be sent from here.
			ss.Lease = &now
		}
		if reset, quota := integrations.QuotaResetOf(err); quota {
			endAttempt(aspan, resultHeld, err)
			return h.quotaHeld(step, ss, br, probe, reset, err, elapsed)
		}
		ss.HeldUntil, ss.HeldReason = nil, ""
		p.holds.answered(step, h.part.num, h.key)
		if integrations.IsPermanent(err) {
			br.success(probe) // the provider is up and answering
			p.m.stepDuration.WithLabelValues(step, outcomePermanent).Observe(elapsed)
			ss.Attempts++
			log.get().Warn("step failed permanently", "attempt", attempt, "err", err)
			endAttempt(aspan, resultPermanent, err)
			return h.deadLetterOutcome(step, topics.ClassPermanent, err)
		}
		p.m.stepDuration.WithLabelValues(step, outcomeTransient).Observe(elapsed)
		var consumed, heldBack bool
		switch {
		case errors.Is(err, integrations.ErrThrottled):
			// Held back here by the provider's limit, nothing sent (a
			// wait for a turn or a pause that would outlast the call's
			// deadline): no attempt is spent, the circuit does not count
			// it, and the call is made again once the wait is over.
			br.release(probe)
			heldBack = true
		case integrations.IsThrottled(err):
			// The provider's 429: it is answering, so the circuit does
			// not count it. The attempt counts, and its backoff honours
			// Retry-After.
			br.release(probe)
			consumed = true
		default:
			consumed = br.failure(probe, h.key)
		}
		if consumed {
			ss.Attempts++
		} else if !heldBack && ss.CircuitOpen == nil {
			// Not counted: the circuit is open, and the order waits on it
			// (recorded with the failure by the write below).
			ss.CircuitOpen = &now
		}
		log.get().Warn("step failed", "attempt", attempt, "attempts_used", ss.Attempts, "counted", consumed, "err", err)
		if ss.Attempts >= p.cfg.Retry.MaxAttempts {
			endAttempt(aspan, resultExhausted, err)
			return h.deadLetterOutcome(step, topics.ClassExhausted, err)
		}
		perr := h.persistIn(actx)
		endAttempt(aspan, resultTransient, err)
		if perr != nil {
			return stepStopped
		}
		if consumed || heldBack {
			var slept bool
			wait := p.cfg.Retry.backoff(ss.Attempts, err)
			if ra, ok := integrations.RetryAfterOf(err); ok && heldBack {
				wait = min(max(ra, minHeldBackWait), maxHeldBackWait) // the whole wait, not capped at --retry-max-delay
			} else if heldBack {
				wait = max(wait, minHeldBackWait)
			}
			h.unlocked(func() { slept = sleep(wait, h.stopCh) })
			if !slept {
				return stepStopped
			}
		}
	}
}

// A call held back by the provider's limit waits at least minHeldBackWait
// (never spinning) and at most maxHeldBackWait (a Retry-After of a day is
// a quota, which holds the step instead) before it is made again.
const (
	minHeldBackWait = 10 * time.Millisecond
	maxHeldBackWait = time.Hour
)

// record turns a step's result into what the state records: the first
// step's order becomes State.Order (no result of its own), any other
// result its JSON.
func (h *handling) record(s Step, first bool, res any) (json.RawMessage, error) {
	if first {
		o, ok := res.(integrations.Order)
		if !ok {
			return nil, integrations.Permanentf("processor", s.Name(), "the first step returned %T, not the order", res)
		}
		h.st.Order = &o
		return nil, nil
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, integrations.Permanentf("processor", s.Name(), "encode result: %v", err)
	}
	return b, nil
}

// answered reports whether the call certainly created nothing: the
// provider answered it with an error status other than 500, 502 and 504,
// or the client refused the order before sending anything (NotSent).
func answered(err error) bool {
	var e *integrations.Error
	if !errors.As(err, &e) {
		return false
	}
	if e.NotSent {
		return true
	}
	switch e.Status {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
		// The provider's application failing midway, or a gateway in front
		// of it that lost or gave up on its answer: the call may have been
		// carried out.
		return false
	}
	return e.Status != 0
}

// completedSteps lists the steps done so far, in chain order.
func (p *Processor) completedSteps(st *State) []string {
	var out []string
	for _, s := range p.names {
		if ss := st.Steps[s]; ss != nil && ss.Done {
			out = append(out, s)
		}
	}
	return out
}

// stepResult decodes a done step's result; the zero value when absent (the
// step is skipped or has no result). A result that does not decode is an
// error.
func stepResult[T any](st *State, step string) (T, error) {
	var v T
	if ss := st.Steps[step]; ss != nil && ss.Done && len(ss.Result) > 0 {
		if err := topics.Unmarshal(ss.Result, &v); err != nil {
			return v, fmt.Errorf("the recorded %s result does not decode: %v", step, err)
		}
	}
	return v, nil
}

// maskPersonal returns err with the order's customer data replaced in its
// text (integrations.MaskPersonal); it unwraps to err, so it is classified
// as err is. err itself when its text names none.
func maskPersonal(err error, o *integrations.Order) error {
	if err == nil || o == nil {
		return err
	}
	text := err.Error()
	if masked := integrations.MaskPersonal(text, o); masked != text {
		return &maskedError{err: err, text: masked}
	}
	return err
}

type maskedError struct {
	err  error
	text string
}

func (e *maskedError) Error() string { return e.text }
func (e *maskedError) Unwrap() error { return e.err }
