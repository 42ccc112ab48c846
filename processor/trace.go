package processor

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/topics/tracing"
)

// This file makes the processor's spans (DESIGN.md, "Tracing"). With
// Config.Tracing nil every function here returns at its first line: no
// span, no attribute, no allocation.

// Step attempt results, the orderflow.result attribute of a step span.
const (
	resultOK        = "ok"
	resultTransient = "transient"
	resultPermanent = "permanent"
	resultExhausted = "exhausted"
	resultStopped   = "stopped"
	resultHeld      = "held" // refused for the provider's quota (hold.go)
)

// startProcess starts the record's span in the order's trace. Its parent is
// the order's trace (State.TraceParent) when the record belongs to another
// one (a second Stripe event of the order, a dead letter replayed by a
// traced replay), with a link to the span that produced the record; otherwise the
// record's context (kotel's receive span, a child of the gateway's publish
// span).
func (h *handling) startProcess() {
	t := h.p.cfg.Tracing
	if t == nil {
		return
	}
	recCtx := h.rec.Context
	if recCtx == nil {
		recCtx = context.Background()
	}
	if !trace.SpanContextFromContext(recCtx).IsValid() {
		recCtx = t.Extract(recCtx, h.traceParent)
	}
	recSC := trace.SpanContextFromContext(recCtx)
	parent := recCtx
	var links []trace.Link
	if h.st != nil && h.st.TraceParent != "" {
		orderCtx := t.Extract(context.Background(), h.st.TraceParent)
		if osc := trace.SpanContextFromContext(orderCtx); osc.IsValid() && osc.TraceID() != recSC.TraceID() {
			parent = orderCtx
			// The link goes to the span that produced the record (the
			// replay's, or the gateway's publish span of another event),
			// as its traceparent header names it.
			from := trace.SpanContextFromContext(t.Extract(context.Background(), h.traceParent))
			if !from.IsValid() {
				from = recSC
			}
			if from.IsValid() {
				kind := "event"
				if h.replay {
					kind = "replay"
				}
				links = append(links, trace.Link{SpanContext: from, Attributes: []attribute.KeyValue{tracing.AttrLink.String(kind)}})
			}
		}
	}
	attrs := []attribute.KeyValue{
		tracing.AttrOrderID.String(h.key),
		tracing.AttrEventID.String(h.env.EventID),
		tracing.AttrEventType.String(h.env.EventType),
		tracing.AttrDestination.String(h.rec.Topic),
		tracing.AttrPartition.Int(int(h.rec.Partition)),
		tracing.AttrOffset.Int64(h.rec.Offset),
	}
	if h.replaySrc != "" {
		attrs = append(attrs, tracing.AttrReplay.String(h.replaySrc))
	}
	h.tctx, h.span = t.Tracer().Start(parent, tracing.SpanProcess,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...), trace.WithLinks(links...))
}

// endProcess ends the record's span with the order's status.
func (h *handling) endProcess(handled bool) {
	if h.span == nil {
		return
	}
	if h.st != nil {
		h.span.SetAttributes(tracing.AttrStatus.String(string(h.st.Status)))
	}
	if !handled {
		h.span.SetAttributes(tracing.AttrResult.String(resultStopped))
	}
	h.span.End()
}

// startAttempt starts the span of one attempt of a step, a child of the
// record's span; the provider's HTTP calls (otelhttp) and the attempt's
// state writes are its children.
func (h *handling) startAttempt(step string, attempt int) (context.Context, trace.Span) {
	if h.span == nil {
		return h.tctx, nil
	}
	return h.p.cfg.Tracing.Tracer().Start(h.tctx, tracing.SpanStepPrefix+step,
		trace.WithAttributes(tracing.AttrStep.String(step), tracing.AttrAttempt.Int(attempt), tracing.AttrOrderID.String(h.key)))
}

// endAttempt ends an attempt's span with its result.
func endAttempt(span trace.Span, result string, err error) {
	if span == nil {
		return
	}
	span.SetAttributes(tracing.AttrResult.String(result))
	if err != nil && result != resultOK {
		span.SetStatus(codes.Error, truncate(err.Error(), 256))
	}
	span.End()
}

// callContext is ctx (the call's deadline) carrying the attempt's span.
func callContext(ctx context.Context, span trace.Span) context.Context {
	if span == nil {
		return ctx
	}
	return trace.ContextWithSpan(ctx, span)
}

// startStateWrite starts the span of a state write under parent (nil: the
// record's span). The attributes are built only when tracing is on.
func (h *handling) startStateWrite(parent context.Context, status Status) trace.Span {
	if h.span == nil {
		return nil
	}
	return h.startWrite(parent, tracing.SpanStateWrite, tracing.AttrStatus.String(string(status)))
}

// startDeadLetterWrite starts the span of a dead-letter write under the
// record's span.
func (h *handling) startDeadLetterWrite(step, class string) trace.Span {
	if h.span == nil {
		return nil
	}
	return h.startWrite(nil, tracing.SpanDeadLetter, tracing.AttrStep.String(step), tracing.AttrDLQClass.String(class))
}

func (h *handling) startWrite(parent context.Context, name string, attrs ...attribute.KeyValue) trace.Span {
	if parent == nil {
		parent = h.tctx
	}
	_, span := h.p.cfg.Tracing.Tracer().Start(parent, name, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	return span
}

func endWrite(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, truncate(err.Error(), 256))
	}
	span.End()
}
