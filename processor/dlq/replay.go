package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
	"github.com/orderflow/orderflow/topics/tracing"
)

// Reasons a selected dead letter is not replayed.
const (
	// SkipAlreadyReplayed: the order's state lists the dead letter in
	// State.Replays; the processor already applied its replay.
	SkipAlreadyReplayed = "already replayed"
	// SkipAlreadyCompleted: the order's state is completed.
	SkipAlreadyCompleted = "already completed"
	// SkipErased: the order was erased (orders erase); the processor
	// would ignore the replay.
	SkipErased = "order erased"
	// SkipRefunded: the whole charge was refunded before shipping, which
	// stopped the order's chain (status refunded): its failure needs no
	// replay, and the processor would change nothing.
	SkipRefunded = "order refunded"
)

// DefaultRate is the default replay rate in records per second: slow enough
// that a replay of a whole outage's backlog does not hit the providers with
// a burst, fast enough to replay thousands in minutes.
const DefaultRate = 50

// Decision is what a replay does with one dead letter.
type Decision struct {
	DeadLetter
	// Skip is the reason the dead letter is not replayed; empty to replay.
	Skip string
}

// Plan decides, from the orders' current state, which of dls to replay:
// those already replayed or of an order already completed, refunded or
// erased are skipped, but for a refund (or a dispute) of a completed or
// refunded order not replayed yet. The decisions are in partition then offset order, the order
// Replay sends them.
func (c *Client) Plan(ctx context.Context, dls []DeadLetter) ([]Decision, error) {
	dls = slices.Clone(dls)
	sortDeadLetters(dls)
	// The processor keeps an order's state on the `orders.state` partition
	// with the number of its `orders` partition, which the dead letter names.
	states, err := c.OrderStates(ctx, homes(dls))
	if err != nil {
		return nil, fmt.Errorf("read order states: %w", err)
	}
	return decide(dls, states), nil
}

func decide(dls []DeadLetter, states map[string]*processor.State) []Decision {
	out := make([]Decision, 0, len(dls))
	for _, d := range dls {
		dec := Decision{DeadLetter: d}
		if st := states[d.Key]; st != nil {
			switch {
			case slices.Contains(st.Replays, d.Source()):
				dec.Skip = SkipAlreadyReplayed
			case st.Status == processor.StatusCompleted && !pendingRefund(d.Source(), d.EventType(), st):
				dec.Skip = SkipAlreadyCompleted
			case st.Status == processor.StatusRefunded && !pendingRefund(d.Source(), d.EventType(), st):
				dec.Skip = SkipRefunded
			case st.Status == processor.StatusErased:
				dec.Skip = SkipErased
			}
		}
		out = append(out, dec)
	}
	return out
}

// ReplayOptions tune Replay.
type ReplayOptions struct {
	// Rate is the most records per second to send; <= 0 means DefaultRate.
	Rate float64
	// Progress, when set, is called after each acknowledged record.
	Progress func(Progress)
	// Result, when set, is called once for every decision of the plan:
	// with err nil when it was skipped (d.Skip set) or acknowledged, with
	// the write error when it failed, and with ErrNotSent when the replay
	// stopped before sending it. Calls may come from the producer's
	// goroutines, one at a time.
	Result func(d Decision, err error)
}

// ErrNotSent is what ReplayOptions.Result gets for a dead letter the
// replay stopped before sending (an earlier write failed or ctx ended).
var ErrNotSent = errors.New("dlq: not sent: the replay stopped before it")

// Progress is how far a replay got.
type Progress struct {
	Done, Total int
}

// Summary is the outcome of a replay.
type Summary struct {
	// Replayed counts records the broker acknowledged.
	Replayed         int `json:"replayed"`
	AlreadyReplayed  int `json:"already_replayed"`
	AlreadyCompleted int `json:"already_completed"`
	Erased           int `json:"erased"` // of an erased order
	// Refunded counts those of an order refunded before shipping.
	Refunded int `json:"refunded,omitempty"`
	// Failed counts records not acknowledged (a write error or the replay
	// stopped); running the same replay again sends them.
	Failed int `json:"failed"`
}

// Skipped is the number of dead letters not replayed on purpose.
func (s Summary) Skipped() int { return s.AlreadyReplayed + s.AlreadyCompleted + s.Erased + s.Refunded }

// SkipText says why the skipped were: "already replayed 1, already
// completed 2", with ", order erased 3" and ", order refunded 4" when
// there were such.
func (s Summary) SkipText() string {
	return skipText(s.AlreadyReplayed, s.AlreadyCompleted, s.Erased, s.Refunded)
}

func skipText(replayed, completed, erased, refunded int) string {
	t := fmt.Sprintf("already replayed %d, already completed %d", replayed, completed)
	if erased > 0 {
		t += fmt.Sprintf(", order erased %d", erased)
	}
	if refunded > 0 {
		t += fmt.Sprintf(", order refunded %d", refunded)
	}
	return t
}

// ReplayRecord is the `orders` record that replays d on the given
// partition: d's key and value, its headers without the DLQ ones (and
// without those of an earlier replay), then topics.HeaderReplay = d's replay
// count + 1 and topics.HeaderReplaySource = d's partition/offset.
func ReplayRecord(d DeadLetter, ordersTopic string, partition int32) *kgo.Record {
	headers := make([]kgo.RecordHeader, 0, len(d.Headers)+2)
	for _, h := range d.Headers {
		if isReplayDropped(h.Key) {
			continue
		}
		headers = append(headers, h)
	}
	headers = append(headers,
		kgo.RecordHeader{Key: topics.HeaderReplay, Value: []byte(strconv.Itoa(d.ReplayCount + 1))},
		kgo.RecordHeader{Key: topics.HeaderReplaySource, Value: []byte(d.Source())},
	)
	var key []byte
	if d.Key != "" {
		key = []byte(d.Key)
	}
	return &kgo.Record{Topic: ordersTopic, Partition: partition, Key: key, Value: d.Value, Headers: headers}
}

var droppedHeaders = []string{
	topics.HeaderDLQTopic, topics.HeaderDLQPartition, topics.HeaderDLQOffset,
	topics.HeaderDLQStep, topics.HeaderDLQClass, topics.HeaderDLQError,
	topics.HeaderDLQAttempts, topics.HeaderDLQFirstFailure, topics.HeaderDLQLastFailure,
	topics.HeaderDLQReplayCount, topics.HeaderReplay, topics.HeaderReplaySource,
}

func isReplayDropped(k string) bool { return slices.Contains(droppedHeaders, k) }

// replayPartition is the `orders` partition a replay goes to: the original
// partition named in the headers (where the order's other events and its
// state live), else the key's partition.
func replayPartition(d DeadLetter, n int) int32 {
	switch {
	case d.OriginalPartition >= 0 && int(d.OriginalPartition) < n:
		return d.OriginalPartition
	case d.Key != "":
		return keyPartition(d.Key, n)
	default:
		return d.Partition % int32(n)
	}
}

// Replay sends the dead letters of plan not marked Skip to `orders`, in plan
// order, at most opts.Rate per second, and waits for every acknowledgement.
// It stops sending at the first write error or when ctx ends and returns
// the summary with that error; what was acknowledged stays replayed, and a
// second run replays the rest (the processor ignores a replay it applied).
func (c *Client) Replay(ctx context.Context, plan []Decision, opts ReplayOptions) (Summary, error) {
	var sum Summary
	var todo []Decision
	for _, d := range plan {
		switch d.Skip {
		case "", SkipAlreadyReplayed, SkipAlreadyCompleted, SkipErased, SkipRefunded:
		default:
			return sum, fmt.Errorf("dlq: unknown skip reason %q", d.Skip)
		}
	}
	var resultMu sync.Mutex
	result := func(d Decision, err error) {
		if opts.Result != nil {
			resultMu.Lock()
			defer resultMu.Unlock()
			opts.Result(d, err)
		}
	}
	for _, d := range plan {
		switch d.Skip {
		case "":
			todo = append(todo, d)
		case SkipAlreadyReplayed:
			sum.AlreadyReplayed++
			result(d, nil)
		case SkipAlreadyCompleted:
			sum.AlreadyCompleted++
			result(d, nil)
		case SkipErased:
			sum.Erased++
			result(d, nil)
		case SkipRefunded:
			sum.Refunded++
			result(d, nil)
		}
	}
	if len(todo) == 0 {
		return sum, nil
	}
	spans, err := c.spans(ctx, c.names.Orders)
	if err != nil {
		for _, d := range todo {
			result(d, ErrNotSent)
		}
		return sum, err
	}
	n := len(spans)
	rate := opts.Rate
	if rate <= 0 {
		rate = DefaultRate
	}
	interval := time.Duration(float64(time.Second) / rate)

	var (
		mu       sync.Mutex
		acked    int
		firstErr error
		wg       sync.WaitGroup
	)
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	}
	next := time.Now()
	sent := 0
	var stopErr error
	defer func() {
		for _, d := range todo[sent:] {
			result(d, ErrNotSent)
		}
	}()
	for _, d := range todo {
		if err := failed(); err != nil {
			break
		}
		if wait := time.Until(next); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				stopErr = fmt.Errorf("replay stopped: %w", ctx.Err())
			case <-t.C:
			}
			if stopErr != nil {
				break
			}
		}
		if err := ctx.Err(); err != nil {
			stopErr = fmt.Errorf("replay stopped: %w", err)
			break
		}
		next = time.Now().Add(interval)
		rec := ReplayRecord(d.DeadLetter, c.names.Orders, replayPartition(d.DeadLetter, n))
		src := d.Source()
		span := c.traceReplay(ctx, d.DeadLetter, rec)
		wg.Add(1)
		sent++
		c.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if span != nil {
				if err != nil {
					span.SetStatus(codes.Error, err.Error())
				}
				span.SetAttributes(tracing.AttrPartition.Int(int(rec.Partition)), tracing.AttrOffset.Int64(rec.Offset))
				span.End()
			}
			mu.Lock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("replay dead letter %s: %w", src, err)
				}
				mu.Unlock()
				result(d, err)
				return
			}
			acked++
			done := acked
			mu.Unlock()
			result(d, nil)
			if opts.Progress != nil {
				opts.Progress(Progress{Done: done, Total: len(todo)})
			}
		})
	}
	// Every record handed to the producer is awaited: the producer retries
	// until the broker acknowledges or the record fails.
	wg.Wait()
	sum.Replayed = acked
	sum.Failed = len(todo) - acked
	err = errors.Join(stopErr, failed())
	return sum, err
}

// traceReplay starts the span of one dead letter sent again, when tracing
// is on: a new trace (the replay is an operator's action of its own, maybe
// days later) linked to the order's trace through the dead letter's
// traceparent, and sets the record's traceparent to the span's context.
// The processor then handles the record in the order's trace, linked back
// to this span. Nil when off: the record keeps the dead letter's
// traceparent and continues the order's trace.
func (c *Client) traceReplay(ctx context.Context, d DeadLetter, rec *kgo.Record) trace.Span {
	if c.tr == nil {
		return nil
	}
	opts := []trace.SpanStartOption{
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(tracing.AttrOrderID.String(d.Key), tracing.AttrReplay.String(d.Source()),
			tracing.AttrStep.String(d.Step), tracing.AttrDLQClass.String(d.Class)),
	}
	for _, h := range d.Headers {
		if h.Key == topics.HeaderTraceParent {
			if sc := trace.SpanContextFromContext(c.tr.Extract(context.Background(), string(h.Value))); sc.IsValid() {
				opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{tracing.AttrLink.String("dead_letter")}}))
			}
		}
	}
	sctx, span := c.tr.Tracer().Start(ctx, tracing.SpanReplay, opts...)
	tp := c.tr.Inject(sctx)
	replaced := false
	for i, h := range rec.Headers {
		if h.Key == topics.HeaderTraceParent {
			rec.Headers[i].Value, replaced = []byte(tp), true
		}
	}
	if !replaced {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: topics.HeaderTraceParent, Value: []byte(tp)})
	}
	return span
}

// LeftOut returns the dead letters of all that a replay of plan leaves out
// although they come before a replayed dead letter of the same order on
// the same partition and are not skipped themselves: replaying without them
// changes the order in which the processor sees that order's events. all is
// the plan of every dead letter of the orders in plan.
func LeftOut(plan, all []Decision) []Decision {
	type pos struct {
		partition int32
		offset    int64
	}
	selected := map[string]bool{}
	first := map[string]pos{}
	for _, d := range plan {
		if d.Skip != "" {
			continue
		}
		selected[d.Source()] = true
		if f, ok := first[d.Key]; !ok || d.Partition < f.partition || (d.Partition == f.partition && d.Offset < f.offset) {
			first[d.Key] = pos{d.Partition, d.Offset}
		}
	}
	var out []Decision
	for _, d := range all {
		f, ok := first[d.Key]
		if d.Skip != "" || selected[d.Source()] || !ok || d.Partition != f.partition || d.Offset > f.offset {
			continue
		}
		out = append(out, d)
	}
	sortDecisions(out)
	return out
}

func sortDecisions(ds []Decision) {
	slices.SortFunc(ds, func(a, b Decision) int { return bySource(a.Partition, a.Offset, b.Partition, b.Offset) })
}
