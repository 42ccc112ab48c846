package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics"
)

// Stripe event types the processor acts on.
const (
	EventCheckoutCompleted    = "checkout.session.completed"
	EventAsyncPaymentSucceded = "checkout.session.async_payment_succeeded"
	EventPaymentSucceeded     = "payment_intent.succeeded"
	EventChargeRefunded       = "charge.refunded"
)

// Flags set on an order's state.
const (
	// FlagPossibleDuplicatePrefix + step: a non-idempotent call was repeated
	// after an intent without a result.
	FlagPossibleDuplicatePrefix = "possible_duplicate:"
	// FlagRefundedAfterShipping: a refund arrived after the goods shipped.
	FlagRefundedAfterShipping = "refunded_after_shipping"
)

// stepIdempotent says whether a step's provider call can be repeated safely.
func stepIdempotent(step string) bool {
	return step != StepShipping && step != StepInvoice && step != StepEmail
}

// handling is one record being handled, on its key's goroutine.
type handling struct {
	p         *Processor
	part      *partition
	rec       *kgo.Record
	env       topics.Envelope
	key       string
	st        *State // nil when the order has no state yet
	replay    bool
	replaySrc string
	log       *slog.Logger
	// preIntent is the step whose intent was persisted together with the
	// previous step's result in this handling (not left by a crash).
	preIntent string
	// completed is set when the last step's result was persisted together
	// with the completion.
	completed bool
}

// handle runs one record; it returns false when the record was left
// unfinished because the partition is stopping.
func (p *Processor) handle(part *partition, t *task) (handled bool) {
	select {
	case <-part.ready:
	case <-part.stopCh:
		return false
	}
	if part.stopping() {
		return false
	}
	rec := t.rec
	env, err := topics.DecodeEnvelope(rec.Value)
	if err == nil && (len(rec.Key) == 0 || env.Key != string(rec.Key)) {
		err = fmt.Errorf("%w: record key %q differs from envelope key %q", topics.ErrEnvelopeInvalid, rec.Key, env.Key)
	}
	if err != nil {
		return p.corrupt(part, rec, err)
	}
	st, err := part.state(env.Key)
	if err != nil {
		return p.corrupt(part, rec, fmt.Errorf("the order's state cannot be read: %w", err))
	}
	h := &handling{p: p, part: part, rec: rec, env: env, key: env.Key, st: st,
		log: p.log.With("order_id", env.Key, "partition", rec.Partition, "offset", rec.Offset, "event_id", env.EventID)}
	for _, hd := range rec.Headers {
		switch hd.Key {
		case topics.HeaderReplay:
			h.replay = true
		case topics.HeaderReplaySource:
			h.replaySrc = string(hd.Value)
		}
	}
	// A record that makes the processor panic (a state no code path
	// expected) must not crash it in a loop: it is dead-lettered as
	// corrupt with an alert, and the partition goes on.
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("panic while handling a record; dead-lettered as corrupt", "panic", fmt.Sprint(r))
			handled = p.corrupt(part, rec, fmt.Errorf("internal error while handling the record: %v", r))
		}
	}()
	return h.run()
}

func (h *handling) run() bool {
	if handled, ok := h.erasure(); ok {
		return handled
	}
	st := h.st
	if st != nil && h.rec.Offset < st.NextOffset {
		return true // redelivered after a crash or rebalance: already handled
	}
	if h.replay && st != nil && h.replaySrc != "" && slices.Contains(st.Replays, h.replaySrc) {
		h.log.Info("dead letter already replayed; ignored", "replay_source", h.replaySrc)
		return true
	}
	if st != nil && (st.Status == StatusDeadLettered || st.Status == StatusParked) {
		if !h.replay {
			return h.park()
		}
		h.unpark()
		if h.env.EventType != EventChargeRefunded {
			// Whatever the replayed event, the chain resumes at its first
			// unfinished step.
			return h.chain()
		}
	}

	switch h.env.EventType {
	case EventCheckoutCompleted, EventAsyncPaymentSucceded, EventPaymentSucceeded:
		if h.env.EventType == EventCheckoutCompleted && paymentStatus(h.env.Event) == "unpaid" {
			return h.awaitPayment()
		}
		return h.chain()
	case EventChargeRefunded:
		return h.refund()
	default:
		h.log.Debug("event type not acted on", "event_type", h.env.EventType)
		return h.recordOnly()
	}
}

// newState starts an order's state.
func (h *handling) newState(status Status) *State {
	now := time.Now().UTC()
	return &State{Version: StateVersion, OrderID: h.key, Status: status, Steps: map[string]*StepState{}, CreatedAt: now, UpdatedAt: now}
}

// duplicate reports whether this event, or another event of the same type
// for the same object, was applied already.
func (h *handling) duplicate() bool {
	if h.st == nil {
		return false
	}
	return slices.Contains(h.st.AppliedEvents, h.env.EventID) ||
		(h.env.ObjectID != "" && slices.Contains(h.st.AppliedObjects, h.objectKey()))
}

func (h *handling) objectKey() string { return h.env.EventType + "/" + h.env.ObjectID }

// markApplied records the event (and the replay it came from) in the state.
func (h *handling) markApplied() {
	st := h.st
	if !slices.Contains(st.AppliedEvents, h.env.EventID) {
		st.AppliedEvents = appendBounded(st.AppliedEvents, h.env.EventID)
	}
	if h.env.ObjectID != "" && !slices.Contains(st.AppliedObjects, h.objectKey()) {
		st.AppliedObjects = appendBounded(st.AppliedObjects, h.objectKey())
	}
	if h.replay && h.replaySrc != "" && !slices.Contains(st.Replays, h.replaySrc) {
		st.Replays = appendBounded(st.Replays, h.replaySrc)
	}
}

func appendBounded(s []string, v string) []string {
	s = append(s, v)
	if len(s) > MaxAppliedEvents {
		s = slices.Delete(s, 0, len(s)-MaxAppliedEvents)
	}
	return s
}

// persist writes the state to `orders.state` (same partition as the record)
// and waits for the acknowledgement.
func (h *handling) persist() error {
	if !h.fenced() {
		return errFenced
	}
	h.st.UpdatedAt = time.Now().UTC()
	b, err := h.st.Encode()
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	r := &kgo.Record{Topic: h.p.cfg.Topics.State, Partition: h.part.num, Key: []byte(h.key), Value: b}
	out, err := h.p.produce(h.part, r, "order state", h.key)
	if err != nil {
		return err
	}
	h.part.setState(h.key, h.st, b, out.Offset)
	h.p.reportProgress(h.st)
	return nil
}

// finish marks the record handled and persists the state.
func (h *handling) finish() bool {
	h.st.NextOffset = h.rec.Offset + 1
	if err := h.persist(); err != nil {
		h.log.Warn("record left unfinished", "err", err)
		return false
	}
	return true
}

// recordOnly applies an event that changes nothing but the applied lists.
func (h *handling) recordOnly() bool {
	if h.st == nil || h.duplicate() {
		return true
	}
	h.markApplied()
	return h.finish()
}

// awaitPayment records an unpaid completed Checkout Session; the chain
// starts with the payment's success event.
func (h *handling) awaitPayment() bool {
	if h.duplicate() {
		return true
	}
	if h.st == nil {
		h.st = h.newState(StatusAwaitingPayment)
	}
	h.markApplied()
	h.log.Info("checkout completed unpaid; waiting for the payment")
	return h.finish()
}

// refund handles charge.refunded: before shipping it stops the chain; after
// shipping it asks a human.
func (h *handling) refund() bool {
	if h.duplicate() {
		return true
	}
	if h.st == nil {
		h.st = h.newState(StatusRefunded)
	}
	st := h.st
	h.markApplied()
	ship := st.Steps[StepShipping]
	shipped := ship != nil && ship.Done && !ship.Skipped || st.Status == StatusCompleted
	switch {
	case st.Status == StatusRefunded && st.NextOffset > 0:
		return h.finish()
	case !shipped:
		st.Status = StatusRefunded
		if !h.finish() {
			return false
		}
		h.p.m.orders.WithLabelValues(string(StatusRefunded)).Inc()
		h.p.alert(integrations.Alert{OrderID: h.key, Text: "order refunded before shipping: the chain stopped; check any steps already done"})
		return true
	default:
		if !st.HasFlag(FlagRefundedAfterShipping) {
			st.Flags = append(st.Flags, FlagRefundedAfterShipping)
		}
		if !h.finish() {
			return false
		}
		h.p.alert(integrations.Alert{OrderID: h.key, Text: "order refunded after it shipped: stop or recall the shipment and credit the invoice by hand"})
		return true
	}
}

// unpark makes a dead-lettered order runnable again for a replayed record:
// the failed step gets a fresh attempt budget; an unresolved intent stays.
func (h *handling) unpark() {
	st := h.st
	h.log.Info("replay un-parks the order", "replay_source", h.replaySrc)
	st.Status = StatusInProgress
	st.DeadLetter = nil
	st.LastError = ""
	for _, ss := range st.Steps {
		if !ss.Done {
			ss.Attempts, ss.FirstFailure, ss.LastFailure, ss.LastError = 0, nil, nil, ""
		}
	}
}

// park dead-letters a later record of a dead-lettered order behind it.
func (h *handling) park() bool {
	st := h.st
	now := time.Now().UTC()
	step := ""
	if st.DeadLetter != nil {
		step = st.DeadLetter.Step
	}
	info := deadLetterInfo{step: step, class: topics.ClassParked, firstFailure: now, lastFailure: now,
		err: "order is dead-lettered; record parked behind its dead letter"}
	if st.DeadLetter != nil {
		info.err = fmt.Sprintf("order is dead-lettered (%s at %s); record parked behind it", st.DeadLetter.Class, topics.Source(st.DeadLetter.Partition, st.DeadLetter.Offset))
	}
	if _, ok := h.writeDeadLetter(info); !ok {
		return false
	}
	st.Status = StatusParked
	if !h.finish() {
		return false
	}
	h.p.m.orders.WithLabelValues(string(StatusParked)).Inc()
	h.p.alert(integrations.Alert{OrderID: h.key, Step: step, Text: "event " + h.env.EventType + " parked behind the order's dead letter"})
	return true
}

// writeDeadLetter produces the record's dead letter and waits for the ack.
func (h *handling) writeDeadLetter(info deadLetterInfo) (*kgo.Record, bool) {
	out, err := h.p.produce(h.part, h.p.dlqRecord(h.rec, info), "dead letter", h.key)
	if err != nil {
		h.log.Warn("record left unfinished", "err", err)
		return nil, false
	}
	h.p.m.dlqWrites.WithLabelValues(info.class).Inc()
	h.log.Warn("dead-lettered", "step", info.step, "class", info.class, "attempt", info.attempts,
		"dlq", topics.Source(out.Partition, out.Offset))
	return out, true
}

// deadLetter dead-letters the record at a step: DLQ write acknowledged
// first, then the state dead_lettered, then the offset is committable.
func (h *handling) deadLetter(step, class string, cause error) bool {
	st := h.st
	ss := st.Step(step)
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
		return false
	}
	st.Status = StatusDeadLettered
	st.LastError = truncate(cause.Error(), h.p.cfg.MaxErrorLen)
	st.DeadLetter = &DeadLetter{Partition: out.Partition, Offset: out.Offset, Step: step, Class: class, At: now}
	if !h.finish() {
		return false
	}
	h.p.m.orders.WithLabelValues(string(StatusDeadLettered)).Inc()
	h.p.alert(integrations.Alert{OrderID: h.key, Step: step,
		Text: fmt.Sprintf("order dead-lettered at step %s (%s) after %s: %s", step, class, attempts(ss.Attempts), truncate(cause.Error(), 200))})
	return true
}

// corrupt dead-letters a record that cannot be read.
func (p *Processor) corrupt(part *partition, rec *kgo.Record, cause error) bool {
	now := time.Now().UTC()
	info := deadLetterInfo{class: topics.ClassCorrupt, err: cause.Error(), firstFailure: now, lastFailure: now}
	out, err := p.produce(part, p.dlqRecord(rec, info), "dead letter", string(rec.Key))
	if err != nil {
		return false
	}
	p.m.dlqWrites.WithLabelValues(topics.ClassCorrupt).Inc()
	p.log.Error("corrupt record dead-lettered", "partition", rec.Partition, "offset", rec.Offset,
		"dlq", topics.Source(out.Partition, out.Offset), "err", cause)
	p.alert(integrations.Alert{OrderID: string(rec.Key), Text: fmt.Sprintf("unreadable record %s %d/%d dead-lettered: %s",
		rec.Topic, rec.Partition, rec.Offset, truncate(cause.Error(), 200))})
	return true
}

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
	for _, step := range Chain {
		if h.part.stopping() {
			h.dropPreIntent()
			return false
		}
		ss := st.Step(step)
		if ss.Done && (step != StepDetails || st.Order != nil) {
			continue
		}
		if ss.Skipped && step != StepDetails { // the order details are never optional
			continue
		}
		if !h.p.enabled(step) {
			ss.Skipped = true
			h.p.m.stepDuration.WithLabelValues(step, outcomeSkipped).Observe(0)
			continue
		}
		switch h.runStep(step) {
		case stepStopped:
			return false
		case stepDeadLettered:
			return true
		}
	}
	st.Status = StatusCompleted
	st.LastError = ""
	if !h.completed && !h.finish() {
		return false
	}
	h.p.m.orders.WithLabelValues(string(StatusCompleted)).Inc()
	h.log.Info("order completed")
	return true
}

type stepOutcome int

const (
	stepDone stepOutcome = iota
	stepStopped
	stepDeadLettered
)

// runStep runs one step to success, dead letter or stop, with retries,
// intents and the provider's circuit breaker.
func (h *handling) runStep(step string) stepOutcome {
	p, st := h.p, h.st
	ss := st.Step(step)
	br := p.breakers[step]
	log := h.log.With("step", step)
	for {
		if h.part.stopping() {
			return stepStopped
		}
		if !stepIdempotent(step) && ss.Intent != nil && h.preIntent != step {
			if v, ok := p.unpersisted.Load(h.key + "/" + step); ok {
				// This process made the call; only its state write was lost.
				r := v.(unpersistedResult)
				ss.Done, ss.DoneAt, ss.Result, ss.Intent, ss.Lease, ss.LastError = true, &r.at, r.result, nil, nil, ""
				h.withResult(step, r.at)
				if err := h.persist(); err != nil {
					return stepStopped
				}
				p.unpersisted.Delete(h.key + "/" + step)
				log.Info("result of an earlier call recorded; not called again")
				return stepDone
			}
			if o, resolved := h.resolveIntent(step, log); resolved {
				return o
			}
			if ss.Intent != nil {
				continue // reconciling failed transiently and backed off: try again
			}
		}
		probe, err := br.acquire(h.part.stopCh)
		if err != nil {
			return stepStopped
		}
		switch {
		case h.preIntent == step && time.Until(p.leaseEnd(ss)) >= p.cfg.StepTimeout/2:
			h.preIntent = "" // persisted with the previous step's result
		case !stepIdempotent(step):
			// A new intent, or a fresh lease for one written ahead that
			// has waited (for the circuit) half its lease: no call was
			// made under it.
			h.preIntent = ""
			now := time.Now().UTC()
			lease := now.Add(p.cfg.StepTimeout)
			ss.Intent, ss.Lease = &now, &lease
			if err := h.persist(); err != nil {
				br.release(probe)
				return stepStopped
			}
		}
		attempt := ss.Attempts + 1
		log.Debug("step call", "attempt", attempt)
		var ctx context.Context
		var cancel context.CancelFunc
		if stepIdempotent(step) {
			ctx, cancel = context.WithTimeout(h.part.stepCtx, p.cfg.StepTimeout)
		} else {
			// The call ends with its lease, which the next owner waits out
			// before it looks the call up; a deadline already past (this
			// process was paused since the intent) fails the call before
			// anything is sent. The membership is confirmed again after the
			// intent's write, right before the call.
			if !h.fenced() {
				br.release(probe)
				return stepStopped
			}
			ctx, cancel = context.WithDeadline(h.part.stepCtx, p.leaseEnd(ss))
		}
		start := time.Now()
		result, err := h.call(ctx, step)
		cancel()
		elapsed := time.Since(start).Seconds()
		p.m.stepAttempts.WithLabelValues(step).Inc()

		if err == nil {
			br.success(probe)
			p.m.stepDuration.WithLabelValues(step, outcomeOK).Observe(elapsed)
			now := time.Now().UTC()
			ss.Done, ss.DoneAt, ss.Result, ss.Intent, ss.Lease, ss.LastError = true, &now, result, nil, nil, ""
			st.LastError = ""
			h.withResult(step, now)
			if err := h.persist(); err != nil {
				if !stepIdempotent(step) {
					p.unpersisted.Store(h.key+"/"+step, unpersistedResult{result: result, at: now})
					log.Warn("step result not persisted; kept to record when the order returns to this process", "attempt", attempt, "err", err)
				} else {
					log.Warn("step result not persisted; the step will run again", "attempt", attempt, "err", err)
				}
				return stepStopped
			}
			log.Debug("step done", "attempt", attempt)
			return stepDone
		}
		if h.part.stepCtx.Err() != nil {
			// Interrupted by the revocation deadline: not the provider's fault.
			br.release(probe)
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
		if integrations.IsPermanent(err) {
			br.success(probe) // the provider is up and answering
			p.m.stepDuration.WithLabelValues(step, outcomePermanent).Observe(elapsed)
			ss.Attempts++
			log.Warn("step failed permanently", "attempt", attempt, "err", err)
			return h.deadLetterOutcome(step, topics.ClassPermanent, err)
		}
		p.m.stepDuration.WithLabelValues(step, outcomeTransient).Observe(elapsed)
		consumed := br.failure(probe, h.key)
		if consumed {
			ss.Attempts++
		}
		log.Warn("step failed", "attempt", attempt, "attempts_used", ss.Attempts, "counted", consumed, "err", err)
		if ss.Attempts >= p.cfg.Retry.MaxAttempts {
			return h.deadLetterOutcome(step, topics.ClassExhausted, err)
		}
		if err := h.persist(); err != nil {
			return stepStopped
		}
		if consumed && !sleep(p.cfg.Retry.backoff(ss.Attempts, err), h.part.stopCh) {
			return stepStopped
		}
	}
}

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

// dropPreIntent clears an intent written ahead with the previous result
// when the chain stops before making that call, so the next owner does not
// take it for an interrupted call (best effort: if the write fails, the
// next owner follows the intent policy).
func (h *handling) dropPreIntent() {
	if h.preIntent == "" {
		return
	}
	h.st.Step(h.preIntent).Intent, h.st.Step(h.preIntent).Lease = nil, nil
	h.preIntent = ""
	if err := h.persist(); err != nil {
		h.log.Warn("could not clear the intent of a call not made", "err", err)
	}
}

// withResult folds what would be the next write into the write of step's
// result, so an order takes six state writes instead of ten: after the last
// step, the completion; before a step that is not idempotent, its intent
// (only while its circuit is closed, so the intent is not left standing
// while the order waits). Either way every result is persisted before the
// next call, and every intent before its call.
func (h *handling) withResult(step string, now time.Time) {
	st := h.st
	switch next := h.upcoming(step); {
	case next == "":
		st.Status, st.LastError, st.NextOffset = StatusCompleted, "", h.rec.Offset+1
		h.completed = true
	case !stepIdempotent(next) && st.Step(next).Intent == nil && h.p.breakers[next].current() == circuitClosed:
		at, lease := now, now.Add(h.p.cfg.StepTimeout)
		st.Step(next).Intent, st.Step(next).Lease = &at, &lease
		h.preIntent = next
	}
}

// upcoming returns the step the chain runs after step ("" when none),
// marking the steps turned off on the way as skipped, as the chain does.
func (h *handling) upcoming(step string) string {
	for _, next := range Chain[slices.Index(Chain, step)+1:] {
		ss := h.st.Step(next)
		if ss.Done && (next != StepDetails || h.st.Order != nil) {
			continue
		}
		if ss.Skipped && next != StepDetails {
			continue
		}
		if !h.p.enabled(next) {
			ss.Skipped = true
			h.p.m.stepDuration.WithLabelValues(next, outcomeSkipped).Observe(0)
			continue
		}
		return next
	}
	return ""
}

func (h *handling) deadLetterOutcome(step, class string, err error) stepOutcome {
	if h.deadLetter(step, class, err) {
		return stepDeadLettered
	}
	return stepStopped
}

// answered reports whether a provider answered the call with an error
// status, so the call certainly created nothing.
func answered(err error) bool {
	var e *integrations.Error
	return errors.As(err, &e) && e.Status != 0
}

// enabled reports whether a step's provider is configured.
func (p *Processor) enabled(step string) bool {
	switch step {
	case StepDetails:
		return p.prov.Details != nil
	case StepCRM:
		return p.prov.CRM != nil
	case StepProductionLog:
		return p.prov.ProductionLog != nil
	case StepShipping:
		return p.prov.Shipping != nil
	case StepInvoice:
		return p.prov.Invoicing != nil
	case StepEmail:
		return p.prov.Mailer != nil
	}
	return false
}

// call makes the step's provider call and returns its result as JSON.
func (h *handling) call(ctx context.Context, step string) (json.RawMessage, error) {
	p, st := h.p, h.st
	if step == StepDetails {
		o, err := p.prov.Details.OrderDetails(ctx, h.key)
		if err != nil {
			return nil, err
		}
		if o.ID == "" {
			o.ID = h.key
		}
		if o.Number == "" {
			o.Number = integrations.OrderNumber(o.ID)
		}
		st.Order = &o
		return nil, nil
	}
	if st.Order == nil {
		return nil, integrations.Permanentf("processor", step, "no order details in the state")
	}
	o := *st.Order
	var res any
	var err error
	switch step {
	case StepCRM:
		res, err = p.prov.CRM.UpsertContactAndDeal(ctx, o)
	case StepProductionLog:
		res, err = p.prov.ProductionLog.UpsertOrder(ctx, o, completedSteps(st))
	case StepShipping:
		res, err = p.prov.Shipping.CreateShipment(ctx, o)
	case StepInvoice:
		ship, derr := stepResult[integrations.Shipment](st, StepShipping)
		if derr != nil {
			return nil, integrations.Permanentf("processor", step, "%v", derr)
		}
		res, err = p.prov.Invoicing.CreateInvoice(ctx, o, ship)
	case StepEmail:
		ship, derr := stepResult[integrations.Shipment](st, StepShipping)
		inv, ierr := stepResult[integrations.Invoice](st, StepInvoice)
		if derr = errors.Join(derr, ierr); derr != nil {
			return nil, integrations.Permanentf("processor", step, "%v", derr)
		}
		res, err = p.prov.Mailer.SendConfirmation(ctx, o, ship, inv)
	default:
		return nil, integrations.Permanentf("processor", step, "unknown step")
	}
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, integrations.Permanentf("processor", step, "encode result: %v", err)
	}
	return b, nil
}

// completedSteps lists the steps done so far, in chain order.
func completedSteps(st *State) []string {
	var out []string
	for _, s := range Chain {
		if ss := st.Steps[s]; ss != nil && ss.Done {
			out = append(out, s)
		}
	}
	return out
}

// stepResult decodes a done step's result; the zero value when absent (the
// step is skipped or has no result). A result that does not decode is an
// error: the next step must not run on an empty value.
func stepResult[T any](st *State, step string) (T, error) {
	var v T
	if ss := st.Steps[step]; ss != nil && ss.Done && len(ss.Result) > 0 {
		if err := json.Unmarshal(ss.Result, &v); err != nil {
			return v, fmt.Errorf("the recorded %s result does not decode: %v", step, err)
		}
	}
	return v, nil
}

// paymentStatus reads data.object.payment_status of a raw Stripe event.
func paymentStatus(event json.RawMessage) string {
	var e struct {
		Data struct {
			Object struct {
				PaymentStatus string `json:"payment_status"`
			} `json:"object"`
		} `json:"data"`
	}
	if json.Unmarshal(event, &e) != nil {
		return ""
	}
	return e.Data.Object.PaymentStatus
}
