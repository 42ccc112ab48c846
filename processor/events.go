package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics"
	"github.com/orderflow/orderflow/topics/tracing"
)

// This file handles one record of `orders`: it decodes the event, skips
// redeliveries and duplicates, and acts on it (starts or resumes the chain,
// records a refund, parks a record behind a dead letter), and it writes the
// order state and dead letters.

// Stripe event types the processor acts on.
const (
	EventCheckoutCompleted    = "checkout.session.completed"
	EventAsyncPaymentSucceded = "checkout.session.async_payment_succeeded"
	EventAsyncPaymentFailed   = "checkout.session.async_payment_failed"
	EventPaymentSucceeded     = "payment_intent.succeeded"
	EventPaymentCanceled      = "payment_intent.canceled"
	EventChargeRefunded       = "charge.refunded"
	EventRefundUpdated        = "charge.refund.updated"
	EventDisputeCreated       = "charge.dispute.created"
)

// FlaggingEvents are the events that flag an order (or, a refund of the
// whole charge before shipping, stop its chain) rather than run it: one
// parked behind a dead letter is handled as itself when replayed, and its
// dead letter stays open until it is.
var FlaggingEvents = []string{EventChargeRefunded, EventRefundUpdated, EventDisputeCreated}

// Flags set on an order's state.
const (
	// FlagPossibleDuplicatePrefix + step: a non-idempotent call was repeated
	// after an intent without a result.
	FlagPossibleDuplicatePrefix = "possible_duplicate:"
	// FlagRefundedAfterShipping: a refund of the whole charge arrived after
	// the goods shipped.
	FlagRefundedAfterShipping = "refunded_after_shipping"
	// FlagPartiallyRefunded: part of the charge was refunded; the order
	// goes on.
	FlagPartiallyRefunded = "partially_refunded"
	// FlagRefundFailed: a refund of the order failed or was canceled at
	// Stripe after it was made; the customer was not paid back.
	FlagRefundFailed = "refund_failed"
	// FlagDisputed: the customer disputed the payment with the card issuer
	// (a chargeback); Stripe took the amount back until the dispute is won.
	FlagDisputed = "disputed"
)

// handling is one record being handled, on its key's goroutine. While the
// chain runs, its steps run on goroutines of their own (graph.go): mu then
// guards the state and the fields below it, held by a step except while it
// waits (a call, a backoff, an open circuit).
type handling struct {
	p         *Processor
	part      *partition
	rec       *kgo.Record
	env       topics.Envelope
	key       string
	replay    bool
	replaySrc string
	// traceParent is the record's traceparent header.
	traceParent string
	// obj is the event's data.object as the handling reads it, decoded
	// once (object).
	obj *eventObject
	// lg is the record's logger, made by log on first use (most records
	// log nothing at the levels enabled); traceID goes into it.
	lg      atomic.Pointer[slog.Logger]
	traceID string
	// tctx carries the record's span and span is it (trace.go); nil when
	// tracing is off.
	tctx context.Context
	span trace.Span

	mu sync.Mutex
	st *State // nil when the order has no state yet
	// stopCh is closed when the partition stops or a step of the chain
	// stopped (the record is left unfinished): no step starts or retries.
	stopCh   chan struct{}
	haltOnce sync.Once
	halt     chan struct{}
	// started are the steps of this handling's chain run started so far.
	started map[string]bool
	// preIntent are the steps whose intent was persisted together with an
	// earlier step's result in this handling (not left by a crash).
	preIntent map[string]bool
	// dead are the steps dead-lettered in this run, in the order they were.
	dead []deadStep
	// panicked is what a step's goroutine panicked with.
	panicked any
	// completed is set when the last step's result was persisted together
	// with the completion.
	completed bool
	// held is set when a step was held for its provider's quota.
	held bool
	// yielded is set when shipping was not started for a refund of the
	// whole charge queued behind the record (yieldsToRefund).
	yielded bool
}

// deadStep is a step dead-lettered during the chain's run; the order's
// state records the dead letter once every running step has ended.
type deadStep struct {
	step, class, err string
	attempts         int
	out              *kgo.Record
	at               time.Time
}

// stopping reports whether the handling must stop starting calls.
func (h *handling) stopping() bool {
	select {
	case <-h.stopCh:
		return true
	default:
		return false
	}
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
	h := &handling{p: p, part: part, rec: rec, env: env, key: env.Key, st: st, stopCh: part.stopCh}
	for _, hd := range rec.Headers {
		switch hd.Key {
		case topics.HeaderReplay:
			h.replay = true
		case topics.HeaderReplaySource:
			h.replaySrc = string(hd.Value)
		case topics.HeaderTraceParent:
			h.traceParent = string(hd.Value)
		}
	}
	traceID := tracing.TraceID(h.traceParent)
	if st != nil && st.TraceParent != "" {
		traceID = st.TraceID()
	}
	h.traceID = traceID
	h.startProcess()
	defer func() { h.endProcess(handled) }()
	// A record that makes the processor panic (a state no code path
	// expected) must not crash it in a loop: it is dead-lettered as
	// corrupt with an alert, and the partition goes on.
	defer func() {
		if r := recover(); r != nil {
			h.log().Error("panic while handling a record; dead-lettered as corrupt", "panic", fmt.Sprint(r))
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
	if h.env.EventType == EventHoldResume {
		// Only an order still in progress has held steps to run; a
		// dead-lettered one runs them on its replay.
		if st == nil || st.Status != StatusInProgress {
			return true
		}
		return h.chain()
	}
	if h.replay && st != nil && h.replaySrc != "" && slices.Contains(st.Replays, h.replaySrc) {
		h.log().Info("dead letter already replayed; ignored", "replay_source", h.replaySrc)
		return true
	}
	if st != nil && (st.Status == StatusDeadLettered || st.Status == StatusParked) {
		if !h.replay {
			if h.stopsTheChain() {
				// A refund of the whole charge before shipping is not
				// parked: replaying the failure first would ship what was
				// paid back. It stops the chain now, and the order's dead
				// letters need no replay (dlq: order refunded).
				return h.refund()
			}
			return h.park()
		}
		if h.replayBehindANewerFailure() && !h.flagsTheOrder() {
			// Its dead letter is older than the order's current one: the
			// order failed again after this record was replayed, most
			// often for the same run's replay of the failure itself. It
			// is parked behind the new failure as it was behind the old
			// (no call, no alert), its letter resolved by the new one.
			h.log().Info("replayed record parked again behind the order's newer dead letter", "replay_source", h.replaySrc)
			st.Replays = appendBounded(st.Replays, h.replaySrc)
			return h.park()
		}
		h.unpark()
		if !h.flagsTheOrder() {
			// Whatever the replayed event, the chain resumes at its first
			// unfinished step.
			return h.chain()
		}
	}

	switch h.env.EventType {
	case EventCheckoutCompleted, EventAsyncPaymentSucceded, EventPaymentSucceeded:
		if why := h.object().notAnOrder(); why != "" {
			// Same account, other products: saving a card, a
			// subscription's payments, a Stripe invoice's.
			h.log().Info("event is not of an order; ignored", "reason", why)
			h.p.m.notOrders.Inc()
			return h.recordOnly()
		}
		if h.env.EventType == EventCheckoutCompleted && h.object().PaymentStatus == "unpaid" {
			return h.awaitPayment()
		}
		return h.chain()
	case EventChargeRefunded:
		if why := h.object().notAnOrder(); why != "" && h.st == nil {
			h.log().Info("event is not of an order; ignored", "reason", why)
			h.p.m.notOrders.Inc()
			return true
		}
		return h.refund()
	case EventRefundUpdated:
		return h.refundUpdated()
	case EventDisputeCreated:
		return h.disputed()
	case EventAsyncPaymentFailed:
		if why := h.object().notAnOrder(); why != "" {
			h.log().Info("event is not of an order; ignored", "reason", why)
			h.p.m.notOrders.Inc()
			return h.recordOnly()
		}
		return h.paymentFailed()
	case EventPaymentCanceled:
		return h.paymentCanceled()
	default:
		if h.debugOn() {
			h.log().Debug("event type not acted on", "event_type", h.env.EventType)
		}
		return h.recordOnly()
	}
}

// newState starts an order's state.
func (h *handling) newState(status Status) *State {
	now := time.Now().UTC()
	return &State{Version: StateVersion, OrderID: h.key, Status: status, Steps: map[string]*StepState{}, TraceParent: h.recordTrace(), CreatedAt: now, UpdatedAt: now}
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

// skipDuplicate ends the handling of an event applied already. A replayed
// one is still recorded as replayed, so that its dead letter resolves and
// the next replay skips it; one replayed behind the order's dead letter
// (un-parked by run) resumes the chain, as any replayed record does.
func (h *handling) skipDuplicate() bool {
	if !h.replay || h.st == nil {
		return true
	}
	h.log().Info("replayed event applied already; recorded as replayed", "replay_source", h.replaySrc)
	if h.st.Status == StatusInProgress {
		return h.chain()
	}
	if h.replaySrc == "" || slices.Contains(h.st.Replays, h.replaySrc) {
		return true
	}
	h.markApplied()
	return h.finish()
}

// objectKey names the change an event reports: its type and object, so a
// second event of one change is a duplicate. Every refund of a charge is a
// charge.refunded of that charge, so a refund's key also holds the amount
// refunded so far (Stripe's amount_refunded is cumulative): a second
// partial refund, or the rest refunded later, is a change of its own. A
// refund that fails gives its amount back to the charge, so a refund made
// again after it brings amount_refunded back where it was: the key also
// counts the refund failures applied before it.
func (h *handling) objectKey() string {
	k := h.env.EventType + "/" + h.env.ObjectID
	if h.env.EventType == EventChargeRefunded {
		if r := h.object().refund(); r.known {
			k += "/" + strconv.FormatInt(r.refunded, 10)
		}
		if n := h.refundFailures(); n > 0 {
			k += "/after-" + strconv.Itoa(n) + "-failed"
		}
	}
	if h.env.EventType == EventRefundUpdated {
		// A refund changes more than once (pending, then failed).
		k += "/" + h.object().Status
	}
	return k
}

// refundFailures counts the refunds of the order that failed or were
// canceled (charge.refund.updated applied with that status).
func (h *handling) refundFailures() int {
	if h.st == nil {
		return 0
	}
	n := 0
	for _, k := range h.st.AppliedObjects {
		if strings.HasPrefix(k, EventRefundUpdated+"/") && (strings.HasSuffix(k, "/failed") || strings.HasSuffix(k, "/canceled")) {
			n++
		}
	}
	return n
}

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

// log is the record's logger: the order, the record and its trace.
func (h *handling) log() *slog.Logger {
	if l := h.lg.Load(); l != nil {
		return l
	}
	l := h.p.log.With("order_id", h.key, "partition", h.rec.Partition, "offset", h.rec.Offset, "event_id", h.env.EventID, "trace_id", h.traceID)
	if !h.lg.CompareAndSwap(nil, l) {
		return h.lg.Load()
	}
	return l
}

// debugOn reports whether debug records are logged, so a caller can skip
// making one.
func (h *handling) debugOn() bool { return h.p.log.Enabled(context.Background(), slog.LevelDebug) }

// persist writes the state to `orders.state` (same partition as the record)
// and waits for the acknowledgement.
func (h *handling) persist() error { return h.persistIn(h.tctx) }

// recordTrace is the traceparent a state takes from this record: the
// record's header when valid (the gateway always writes one), else the
// record's span context.
func (h *handling) recordTrace() string {
	if tracing.ValidTraceParent(h.traceParent) {
		return h.traceParent
	}
	return h.p.cfg.Tracing.Inject(h.tctx)
}

// persistIn is persist with the write's span a child of tctx's span (a
// step attempt's, or the record's).
func (h *handling) persistIn(tctx context.Context) error {
	if !h.fenced() {
		return errFenced
	}
	h.st.UpdatedAt = time.Now().UTC()
	if h.started != nil { // the chain runs
		h.st.Pending = h.pending()
	}
	if h.st.TraceParent == "" && h.st.Status != StatusErased {
		h.st.TraceParent = h.recordTrace() // a state of an earlier version joins this record's trace
	}
	b, err := h.st.Encode()
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	// The digest header: what the console and orders list read of the
	// state without its JSON (digest.go).
	r := &kgo.Record{Topic: h.p.cfg.Topics.State, Partition: h.part.num, Key: []byte(h.key), Value: b, Headers: StateHeaders(h.st, b)}
	span := h.startStateWrite(tctx, h.st.Status)
	out, err := h.p.produce(h.part, r, "order state", h.key)
	endWrite(span, err)
	if err != nil {
		return err
	}
	h.part.setState(h.key, h.st, b, out.Offset)
	if h.st.Status != StatusInProgress {
		// A finished (or waiting) order's state stays in the cache
		// without the JSON of its order: a later write makes it again.
		h.st.dropEncoded()
	}
	h.p.reportProgress(h.st)
	return nil
}

// finish marks the record handled and persists the state.
func (h *handling) finish() bool {
	h.st.NextOffset = h.rec.Offset + 1
	if err := h.persist(); err != nil {
		h.log().Warn("record left unfinished", "err", err)
		return false
	}
	return true
}

// recordOnly applies an event that changes nothing but the applied lists.
func (h *handling) recordOnly() bool {
	if h.st == nil {
		return true
	}
	if h.duplicate() {
		return h.skipDuplicate()
	}
	h.markApplied()
	return h.finish()
}

// awaitPayment records an unpaid completed Checkout Session; the chain
// starts with the payment's success event.
func (h *handling) awaitPayment() bool {
	if h.duplicate() {
		return h.skipDuplicate()
	}
	if h.st == nil {
		h.st = h.newState(StatusAwaitingPayment)
	}
	h.markApplied()
	h.log().Info("checkout completed unpaid; waiting for the payment")
	return h.finish()
}

// paymentFailed records that the delayed payment of a Checkout Session
// failed: the order was never paid, nothing was sent, and it is no longer
// awaited (status payment_failed, from awaiting_payment or from nothing
// when the failure came first). An order the failure does not hold back
// (paid and under way or done) changes nothing. A later payment of the
// order runs the chain, as any payment does.
func (h *handling) paymentFailed() bool {
	if h.duplicate() {
		return h.skipDuplicate()
	}
	if h.st != nil && h.st.Status != StatusAwaitingPayment && h.st.Status != StatusPaymentFailed {
		h.log().Warn("payment failed or canceled for an order not awaiting payment; nothing changed", "event_type", h.env.EventType, "status", h.st.Status)
		return h.recordOnly()
	}
	if h.st == nil {
		h.st = h.newState(StatusPaymentFailed)
	}
	h.st.Status = StatusPaymentFailed
	h.markApplied()
	if !h.finish() {
		return false
	}
	h.log().Info("payment failed or canceled; the order is not fulfilled", "event_type", h.env.EventType)
	h.p.m.orders.WithLabelValues(string(StatusPaymentFailed)).Inc()
	return true
}

// paymentCanceled handles payment_intent.canceled: a payment authorized to
// be captured later whose authorization was canceled or expired uncaptured
// (capture_method manual), or a payment given up. An order awaiting that
// payment will not be paid by it: status payment_failed, as when a delayed
// payment fails, nothing sent. A PaymentIntent with no order is not made
// one (most canceled PaymentIntents never completed a Checkout), and an
// order under way or done was paid: both are left as they are.
func (h *handling) paymentCanceled() bool {
	if h.st == nil {
		h.log().Info("payment canceled with no order; ignored")
		return true
	}
	return h.paymentFailed()
}

// refundUpdated handles charge.refund.updated: a refund that failed (the
// card closed, the account gone) or was canceled did not pay the customer
// back, whatever charge.refunded said before. The order is flagged
// refund_failed and an alert asks a human to pay back another way; its
// status and chain are left as the refund left them. Any other change of
// a refund (its metadata, pending to succeeded) changes nothing.
func (h *handling) refundUpdated() bool {
	o := h.object()
	if o.Status != "failed" && o.Status != "canceled" {
		return h.recordOnly()
	}
	why := o.Status
	if o.FailureReason != "" {
		why += ": " + strings.ReplaceAll(o.FailureReason, "_", " ")
	}
	amount := ""
	if o.Amount != nil && o.Currency != "" {
		amount = " of " + integrations.FormatMoney(*o.Amount, o.Currency)
	}
	return h.flagGoesOn(FlagRefundFailed, "a refund"+amount+" did not go through ("+why+"): the customer was not paid back; pay back another way")
}

// flagGoesOn flags the order for a refund's failure or a dispute and
// raises the alert text, the order going on (refundGoesOn). An event of a
// key with no state is ignored: a refund or dispute of a charge made
// without a PaymentIntent (counted as not an order, as its
// charge.refunded is), or of an order this processor never saw.
func (h *handling) flagGoesOn(flag, text string) bool {
	if h.st == nil {
		if h.object().notAnOrder() != "" {
			h.p.m.notOrders.Inc()
		}
		h.log().Info("event of an order with no state; ignored", "event_type", h.env.EventType)
		return true
	}
	if h.duplicate() {
		return h.skipDuplicate()
	}
	h.st.AddFlag(flag)
	return h.refundGoesOn(text)
}

// flagsTheOrder reports whether the record is a refund, a refund that
// failed or a dispute: replayed behind a dead letter it is handled as
// itself (a flag and an alert, or the refund's stop) and resumes the
// chain from there (refundGoesOn), where any other record only resumes
// the chain.
func (h *handling) flagsTheOrder() bool {
	if !slices.Contains(FlaggingEvents, h.env.EventType) {
		return false
	}
	if h.env.EventType == EventRefundUpdated {
		st := h.object().Status
		return st == "failed" || st == "canceled"
	}
	return true
}

// disputed handles charge.dispute.created: the customer disputed the
// payment with the card issuer (a chargeback) and Stripe took the amount
// back. The order is flagged disputed and an alert says how much, why and
// by when the evidence is due; nothing is undone and the chain goes on (a
// dispute most often comes weeks after shipping). A dispute of an order
// with no state is ignored.
func (h *handling) disputed() bool {
	o := h.object()
	text := "the payment was disputed (a chargeback)"
	if o.Amount != nil && o.Currency != "" {
		text = "a payment of " + integrations.FormatMoney(*o.Amount, o.Currency) + " was disputed (a chargeback)"
	}
	if o.Reason != "" {
		text += ", reason " + strings.ReplaceAll(o.Reason, "_", " ")
	}
	text += ": Stripe took the amount back; answer the dispute in Stripe"
	if d := o.EvidenceDetails; d != nil && d.DueBy > 0 {
		text += " by " + time.Unix(d.DueBy, 0).UTC().Format("2006-01-02 15:04Z")
	}
	return h.flagGoesOn(FlagDisputed, text)
}

// chargeRefund is what a charge.refunded event says of its charge.
type chargeRefund struct {
	// amount is what was charged, refunded what is refunded so far, both
	// in the currency's minor units; known is false when the event has
	// neither.
	amount, refunded int64
	currency         string
	known            bool
	// full: the whole charge is refunded (Stripe's refunded, or
	// amount_refunded reaching amount). An event that does not say how
	// much is taken as a full refund: stopping the chain is the safe side.
	full bool
}

// refund is what a charge's refund event says of it.
func (o *eventObject) refund() chargeRefund {
	if o.Amount == nil || o.AmountRefunded == nil || *o.Amount <= 0 || *o.AmountRefunded < 0 {
		return chargeRefund{full: true}
	}
	r := chargeRefund{amount: *o.Amount, refunded: *o.AmountRefunded, currency: o.Currency, known: true}
	r.full = o.Refunded || r.refunded >= r.amount
	return r
}

// refund handles charge.refunded. A refund of the whole charge before
// shipping stops the chain; after shipping it asks a human. A partial
// refund (an item out of stock, a goodwill credit) stops nothing: the
// order goes on, flagged, and a human credits the invoice.
func (h *handling) refund() bool {
	if h.duplicate() {
		return h.skipDuplicate()
	}
	r := h.object().refund()
	again := h.refundAgain(r)
	if !r.full {
		return h.partialRefund(r, again)
	}
	if h.st == nil {
		h.st = h.newState(StatusRefunded)
	}
	st := h.st
	switch {
	case st.Status == StatusRefunded && st.NextOffset > 0:
		h.markApplied()
		if !h.finish() {
			return false
		}
		if again != "" {
			h.p.alert(integrations.Alert{OrderID: h.key, Text: "order refunded again" + again})
		}
		return true
	case !h.shipped():
		text := "order refunded before shipping: the chain stopped; check any steps already done"
		if dl := st.DeadLetter; dl != nil && (st.Status == StatusDeadLettered || st.Status == StatusParked) {
			text = fmt.Sprintf("order refunded before shipping while dead-lettered (%s at %s): the chain stopped and its dead letters need no replay; check any steps already done",
				dl.Step, topics.Source(dl.Partition, dl.Offset))
			st.DeadLetter, st.LastError = nil, ""
		}
		h.markApplied()
		st.Status = StatusRefunded
		if !h.finish() {
			return false
		}
		h.p.m.orders.WithLabelValues(string(StatusRefunded)).Inc()
		h.p.alert(integrations.Alert{OrderID: h.key, Text: text + again})
		return true
	default:
		st.AddFlag(FlagRefundedAfterShipping)
		return h.refundGoesOn("order refunded after it shipped: stop or recall the shipment and credit the invoice by hand" + again)
	}
}

// yieldsToRefund reports whether step is shipping and a refund of the
// whole charge, not applied yet, is queued behind the record: the label
// is then not booked, and the record ends with the order in progress; the
// refund, handled next, stops the chain before shipping. It is asked
// before every attempt, so a shipping step retrying or waiting for its
// circuit yields to a refund that came meanwhile. A refund not fetched
// yet, or one that comes while the label is being booked, is after
// shipping. Called with mu held.
func (h *handling) yieldsToRefund(step string, log *slog.Logger) bool {
	if step != StepShipping || h.st == nil || h.shipped() {
		return false
	}
	for _, rec := range h.part.sched.behind(h.key) {
		if !queuedRefund(rec) {
			continue
		}
		env, err := topics.DecodeEnvelope(rec.Value)
		if err != nil || env.EventType != EventChargeRefunded || env.Key != h.key {
			continue
		}
		later := &handling{p: h.p, env: env, key: h.key, st: h.st}
		if later.stopsTheChain() {
			if h.preIntent[step] {
				// Written ahead with the last result; no call was made.
				ss := h.st.Step(step)
				ss.Intent, ss.Lease = nil, nil
				delete(h.preIntent, step)
			}
			h.yielded = true
			log.Info("shipping not started: a refund of the whole charge waits behind this record", "refund_offset", rec.Offset)
			return true
		}
	}
	return false
}

// queuedRefund reports whether a record is a charge.refunded as the
// gateway wrote it (a replayed one may be ignored as replayed already).
func queuedRefund(rec *kgo.Record) bool {
	refund := false
	for _, hd := range rec.Headers {
		switch hd.Key {
		case topics.HeaderReplay:
			return false
		case topics.HeaderEventType:
			refund = string(hd.Value) == EventChargeRefunded
		}
	}
	return refund
}

// stopsTheChain reports whether the record is a refund of the whole charge
// of an order not shipped, not applied yet: it stops the order's chain.
func (h *handling) stopsTheChain() bool {
	return h.env.EventType == EventChargeRefunded && h.st != nil && !h.duplicate() &&
		h.object().refund().full && !h.shipped()
}

// refundAgain handles a refund made after one of the order's refunds
// failed (refund_failed): when the charge is refunded again at least as
// far as before the failure, the customer is paid back and the flag goes;
// otherwise it stays. It returns what the alert adds, empty when no refund
// had failed.
func (h *handling) refundAgain(r chargeRefund) string {
	if h.st == nil || !h.st.HasFlag(FlagRefundFailed) {
		return ""
	}
	before := int64(-1) // the most refunded before, as the applied keys say
	prefix := EventChargeRefunded + "/" + h.env.ObjectID + "/"
	for _, k := range h.st.AppliedObjects {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			n, _, _ := strings.Cut(rest, "/")
			if v, err := strconv.ParseInt(n, 10, 64); err == nil && v > before {
				before = v
			}
		}
	}
	switch {
	case r.known && (r.full || before >= 0 && r.refunded >= before):
		// An event without the amounts does not say the customer is paid
		// back: the flag stays (the default case).
		h.st.RemoveFlag(FlagRefundFailed)
		return " (made again after a refund that did not go through: the customer is paid back, refund_failed cleared)"
	case r.known && before >= 0:
		return fmt.Sprintf(" (made again after a refund that did not go through, %s refunded before it: refund_failed stays)", integrations.FormatMoney(before, r.currency))
	default:
		return " (made after a refund that did not go through: refund_failed stays)"
	}
}

// shipped reports whether the order's goods have left: its shipping step
// is done (not skipped), or it completed.
func (h *handling) shipped() bool {
	ship := h.st.Steps[StepShipping]
	return ship != nil && ship.Done && !ship.Skipped || h.st.Status == StatusCompleted
}

// refundGoesOn records a refund, a refund's failure or a dispute that
// leaves the order going on (flagged already) and raises its alert. A
// replayed one of an order in progress was parked behind the order's dead
// letter: its replay resumes the chain, as any replayed event does (chain
// records it applied).
func (h *handling) refundGoesOn(text string) bool {
	a := integrations.Alert{OrderID: h.key, Text: text}
	if h.replay && h.st.Status == StatusInProgress {
		h.p.alert(a)
		return h.chain()
	}
	h.markApplied()
	if !h.finish() {
		return false
	}
	h.p.alert(a)
	return true
}

// partialRefund handles a refund of part of the charge.
func (h *handling) partialRefund(r chargeRefund, again string) bool {
	if h.st == nil {
		// The refund came before the payment's event, which runs the chain.
		h.st = h.newState(StatusAwaitingPayment)
	}
	st := h.st
	if st.Status == StatusRefunded {
		// An earlier refund, delivered after the one of the whole charge.
		h.markApplied()
		if !h.finish() {
			return false
		}
		if again != "" {
			h.p.alert(integrations.Alert{OrderID: h.key, Text: "order partially refunded again" + again})
		}
		return true
	}
	st.AddFlag(FlagPartiallyRefunded)
	when := "before shipping: the order goes on (check what is still to ship)"
	if h.shipped() {
		when = "after it shipped"
	}
	return h.refundGoesOn(fmt.Sprintf("order partially refunded %s: %s of %s refunded so far; credit it on the invoice by hand%s",
		when, integrations.FormatMoney(r.refunded, r.currency), integrations.FormatMoney(r.amount, r.currency), again))
}

// replayBehindANewerFailure reports whether the dead letter this record
// was replayed from is older than the order's current dead letter (both on
// one partition of the dead-letter topic, as an order's letters are).
func (h *handling) replayBehindANewerFailure() bool {
	dl := h.st.DeadLetter
	if dl == nil || h.replaySrc == "" {
		return false
	}
	ps, os, ok := strings.Cut(h.replaySrc, "/")
	if !ok {
		return false
	}
	p, perr := strconv.ParseInt(ps, 10, 32)
	o, oerr := strconv.ParseInt(os, 10, 64)
	return perr == nil && oerr == nil && int32(p) == dl.Partition && o < dl.Offset
}

// unpark makes a dead-lettered order runnable again for a replayed record:
// the failed step gets a fresh attempt budget; an unresolved intent stays.
func (h *handling) unpark() {
	st := h.st
	h.log().Info("replay un-parks the order", "replay_source", h.replaySrc)
	st.Status = StatusInProgress
	st.DeadLetter = nil
	st.LastError = ""
	for _, ss := range st.Steps {
		if !ss.Done {
			ss.Attempts, ss.FirstFailure, ss.LastFailure, ss.LastError = 0, nil, nil, ""
		}
	}
}

// park dead-letters a later record of a dead-lettered order behind it. A
// refund, a refund's failure or a dispute parked raises an alert: it
// says something new a person must know. Any other record (the order's
// other payment event, most often) adds nothing to the failure's alert
// and raises none.
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
	if slices.Contains(FlaggingEvents, h.env.EventType) {
		h.p.alert(integrations.Alert{OrderID: h.key, Step: step, Text: "event " + h.env.EventType + " parked behind the order's dead letter"})
	}
	return true
}

// writeDeadLetter produces the record's dead letter and waits for the ack.
func (h *handling) writeDeadLetter(info deadLetterInfo) (*kgo.Record, bool) {
	out, err := h.produceDeadLetter(info)
	if err != nil {
		h.log().Warn("record left unfinished", "err", err)
		return nil, false
	}
	h.p.m.dlqWrites.WithLabelValues(info.class).Inc()
	h.log().Warn("dead-lettered", "step", info.step, "class", info.class, "attempt", info.attempts,
		"dlq", topics.Source(out.Partition, out.Offset))
	return out, true
}

// produceDeadLetter writes the record's dead letter in a span of its own.
func (h *handling) produceDeadLetter(info deadLetterInfo) (*kgo.Record, error) {
	span := h.startDeadLetterWrite(info.step, info.class)
	out, err := h.p.produce(h.part, h.p.dlqRecord(h.rec, info), "dead letter", h.key)
	endWrite(span, err)
	return out, err
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

// eventObject is what the handling reads of an event's data.object: one
// decode serves the checks of its kind (notAnOrder), Checkout's
// payment_status and a refund's amounts.
type eventObject struct {
	Object         string          `json:"object"`
	Mode           string          `json:"mode"`
	PaymentStatus  string          `json:"payment_status"`
	Invoice        json.RawMessage `json:"invoice"`
	PaymentIntent  json.RawMessage `json:"payment_intent"`
	Amount         *int64          `json:"amount"`
	AmountRefunded *int64          `json:"amount_refunded"`
	Refunded       bool            `json:"refunded"`
	Currency       string          `json:"currency"`
	// Status and FailureReason are a refund's (charge.refund.updated).
	Status        string `json:"status"`
	FailureReason string `json:"failure_reason"`
	// Reason and EvidenceDetails are a dispute's (charge.dispute.created).
	Reason          string `json:"reason"`
	EvidenceDetails *struct {
		DueBy int64 `json:"due_by"`
	} `json:"evidence_details"`
}

// object decodes the event's data.object once; an event that does not
// decode reads as an object with none of the fields.
func (h *handling) object() *eventObject {
	if h.obj == nil {
		h.obj = decodeObject(h.env.Event)
	}
	return h.obj
}

func decodeObject(event json.RawMessage) *eventObject {
	var e struct {
		Data struct {
			Object eventObject `json:"object"`
		} `json:"data"`
	}
	if json.Unmarshal(event, &e) != nil {
		return &eventObject{}
	}
	return &e.Data.Object
}

// notAnOrder says why an event is of no order the chain runs for, "" when
// it is of one: a Checkout Session in setup mode (a card saved, nothing
// paid) or subscription mode (its payments are a subscription's invoices),
// a PaymentIntent of a Stripe invoice (a subscription's renewal, Stripe
// Invoicing), which is invoiced already and would be booked, shipped and
// invoiced again, or a charge made without a PaymentIntent (an older
// integration's), whose refund is of no order.
func (o *eventObject) notAnOrder() string {
	switch {
	case o.Mode != "" && o.Mode != "payment":
		return "a Checkout Session in " + o.Mode + " mode"
	case o.Object == "payment_intent" && len(o.Invoice) > 0 && string(o.Invoice) != "null":
		return "a PaymentIntent of a Stripe invoice"
	case (o.Object == "charge" || o.Object == "refund" || o.Object == "dispute") && string(o.PaymentIntent) == "null":
		return "a charge without a PaymentIntent"
	}
	return ""
}
