package processor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/test/testenv"
	"github.com/orderflow/orderflow/topics"
)

// A provider down for everyone opens its circuit: orders wait, nothing is
// dead-lettered, and all complete once it recovers.
func TestCircuitOpensWhenProviderIsDown(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	var down atomic.Bool
	down.Store(true)
	f.fail = func(step, _ string, _ int) error {
		if step == StepCRM && down.Load() {
			return transient(step)
		}
		return nil
	}
	r := h.start(h.config(), f.providers())
	ks := keys("down", 12)
	for _, k := range ks {
		h.send(paid(k))
	}
	crm := r.p.m.circuit.WithLabelValues(StepCRM)
	eventually(t, "circuit open", 30*time.Second, func() bool { return metricValue(crm) != circuitClosed })
	// Stay down through several cool-downs: probes fail, nobody is
	// dead-lettered, nobody exhausts attempts. Five failed probes after the
	// circuit opened (each waits a cool-down) are the evidence, counted in
	// the calls the fake recorded.
	crmCalls := func() int {
		n := 0
		for _, k := range ks {
			n += f.attemptCount(StepCRM, k)
		}
		return n
	}
	atOpen := crmCalls()
	eventually(t, "five failed probes", 30*time.Second, func() bool { return crmCalls() >= atOpen+5 })
	if dl := h.readAll(h.names.DLQ); len(dl) != 0 {
		t.Fatalf("%d dead letters while the circuit was open", len(dl))
	}
	total := 0
	for _, k := range ks {
		total += f.attemptCount(StepCRM, k)
	}
	if total > 40 {
		t.Errorf("%d crm calls for %d orders while down: orders are spinning", total, len(ks))
	}
	down.Store(false)
	h.waitStates("all completed", 30*time.Second, allStatus(ks, StatusCompleted))
	eventually(t, "circuit closed", 5*time.Second, func() bool { return metricValue(crm) == circuitClosed })
	if dl := h.readAll(h.names.DLQ); len(dl) != 0 {
		t.Errorf("%d dead letters", len(dl))
	}
	for _, k := range ks {
		if n := f.createdCount(StepCRM, k); n != 1 {
			t.Errorf("%s crm created %d times", k, n)
		}
	}
	// One alert when it opened, one when it closed.
	eventually(t, "two alerts", 5*time.Second, func() bool { return f.alertCount() == 2 })
}

// A dead-lettered order parks its later events behind the dead letter; a
// replay of the dead letters, in DLQ order, un-parks it and applies them in
// their original order; replaying one twice does nothing.
func TestParkedKeyKeepsOrderThroughReplay(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	broken := f.breakStep(StepShipping)
	h.start(h.config(), f.providers())
	k := "pi_park"
	h.send(paid(k),
		event{key: k, typ: EventCheckoutCompleted, id: "evt_cs", object: "cs_park", paymentStatus: "paid"},
		event{key: k, typ: EventChargeRefunded, id: "evt_refund", object: "ch_park", charge: &charge{amount: 12400, refunded: 2500}})
	h.waitStates("parked", 30*time.Second, allStatus([]string{k}, StatusParked))
	dl := h.readAll(h.names.DLQ)
	if len(dl) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dl))
	}
	wantClasses := []string{topics.ClassPermanent, topics.ClassParked, topics.ClassParked}
	for i, d := range dl {
		if c, _ := header(d, topics.HeaderDLQClass); c != wantClasses[i] {
			t.Errorf("dead letter %d class %q, want %q", i, c, wantClasses[i])
		}
		if i > 0 && d.Offset <= dl[i-1].Offset {
			t.Errorf("dead letters out of order")
		}
	}

	broken.Store(false)
	replay := h.replayLetter
	for _, d := range dl {
		replay(d)
	}
	sources := []string{topics.Source(dl[0].Partition, dl[0].Offset), topics.Source(dl[1].Partition, dl[1].Offset), topics.Source(dl[2].Partition, dl[2].Offset)}
	st := h.waitStates("all replays applied", 30*time.Second, func(m map[string]*State) bool {
		return m[k] != nil && len(m[k].Replays) == 3
	})[k]
	if !slices.Equal(st.Replays, sources) {
		t.Errorf("replays applied in order %v, want %v", st.Replays, sources)
	}
	if st.Status != StatusCompleted || !st.HasFlag(FlagPartiallyRefunded) {
		t.Errorf("status %s flags %v: want completed and partially refunded", st.Status, st.Flags)
	}
	// One alert for the failure and one for the parked refund (the parked
	// payment event adds nothing to say); the refund ran after the chain,
	// after shipping.
	if got, want := f.alertTexts(k)[1:], []string{
		"event charge.refunded parked behind the order's dead letter",
		"order partially refunded after it shipped: 25.00 EUR of 124.00 EUR refunded so far; credit it on the invoice by hand",
	}; !slices.Equal(got, want) {
		t.Errorf("alerts after the dead letter's %q, want %q", got, want)
	}
	// Replay the first dead letter again: nothing happens.
	replay(dl[0])
	h.send(event{key: k, typ: "customer.updated", id: "evt_marker", object: "cus_marker"})
	st = h.waitStates("marker applied", 30*time.Second, func(m map[string]*State) bool {
		return m[k] != nil && slices.Contains(m[k].AppliedEvents, "evt_marker")
	})[k]
	if len(st.Replays) != 3 {
		t.Errorf("replays %v after a second replay", st.Replays)
	}
	for _, step := range Chain {
		if n := f.createdCount(step, k); n != 1 {
			t.Errorf("%s created %d times", step, n)
		}
	}
	if n := len(h.readAll(h.names.DLQ)); n != 3 {
		t.Errorf("%d dead letters after the replay, want 3", n)
	}
}

func TestRefundBeforeShippingStopsTheChain(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	cfg := h.config()
	r := h.start(cfg, f.providers())
	// Refund before the payment event; refund while awaiting a delayed payment.
	h.send(event{key: "pi_r1", typ: EventChargeRefunded, id: "evt_r1", object: "ch_r1"}, paid("pi_r1"))
	h.send(event{key: "pi_r2", typ: EventCheckoutCompleted, id: "evt_cs2", object: "cs_r2", paymentStatus: "unpaid"},
		event{key: "pi_r2", typ: EventChargeRefunded, id: "evt_r2", object: "ch_r2"},
		event{key: "pi_r2", typ: EventAsyncPaymentSucceded, id: "evt_async2", object: "cs_r2"})
	h.send(event{key: "pi_marker", typ: EventPaymentSucceeded, id: "evt_m", object: "pi_marker"})
	h.waitStates("refunded", 30*time.Second, func(m map[string]*State) bool {
		return allStatus([]string{"pi_r1", "pi_r2"}, StatusRefunded)(m) &&
			m["pi_r1"].NextOffset > 0 && len(m["pi_r1"].AppliedEvents) == 1 &&
			m["pi_r2"] != nil && m["pi_r2"].NextOffset > 0 && len(m["pi_r2"].AppliedEvents) == 2
	})
	// Every record, the trailing payment events included, is handled and
	// committed, and the stopped processor sends nothing more.
	h.waitStates("marker completed", 30*time.Second, allStatus([]string{"pi_marker"}, StatusCompleted))
	h.waitHandled(cfg.Group, 30*time.Second)
	r.stop(t)
	for _, k := range []string{"pi_r1", "pi_r2"} {
		for _, step := range Chain {
			if n := f.attemptCount(step, k); n != 0 {
				t.Errorf("%s: %s called %d times after a refund", k, step, n)
			}
		}
	}
	if n := f.alertCount(); n != 2 {
		t.Errorf("%d alerts, want 2 (one per refund)", n)
	}
}

func TestDuplicatesProduceOneChain(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	cfg := h.config()
	r := h.start(cfg, f.providers())
	k := "pi_dup"
	h.send(
		event{key: k, typ: EventCheckoutCompleted, id: "evt_a", object: "cs_dup", paymentStatus: "paid"},
		event{key: k, typ: EventCheckoutCompleted, id: "evt_a", object: "cs_dup", paymentStatus: "paid"}, // same event again
		event{key: k, typ: EventCheckoutCompleted, id: "evt_b", object: "cs_dup", paymentStatus: "paid"}, // a second event for one change
		event{key: k, typ: EventPaymentSucceeded, id: "evt_c", object: k},
		event{key: k, typ: EventAsyncPaymentSucceded, id: "evt_d", object: "cs_dup"},
	)
	// The refunds come after shipping (a refund queued behind the chain
	// would stop it before shipping).
	h.waitStates("completed", 30*time.Second, allStatus([]string{k}, StatusCompleted))
	h.send(
		event{key: k, typ: EventChargeRefunded, id: "evt_r", object: "ch_dup"},
		event{key: k, typ: EventChargeRefunded, id: "evt_r", object: "ch_dup"},
		event{key: k, typ: EventChargeRefunded, id: "evt_r2", object: "ch_dup"},
		event{key: k, typ: "customer.updated", id: "evt_end", object: "cus_end"},
	)
	st := h.waitStates("all handled", 30*time.Second, func(m map[string]*State) bool {
		return m[k] != nil && slices.Contains(m[k].AppliedEvents, "evt_end")
	})[k]
	for _, step := range Chain {
		if n := f.attemptCount(step, k); n != 1 {
			t.Errorf("%s called %d times, want 1", step, n)
		}
	}
	if st.Status != StatusCompleted || !st.HasFlag(FlagRefundedAfterShipping) {
		t.Errorf("status %s flags %v", st.Status, st.Flags)
	}
	h.waitHandled(cfg.Group, 30*time.Second)
	r.stop(t) // waits for pending alerts
	if n := f.alertCount(); n != 1 {
		t.Errorf("%d alerts, want 1 (one refund)", n)
	}
}

// An unreadable record is dead-lettered (class corrupt) and the partition
// goes on.
func TestCorruptRecordIsDeadLettered(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	r := h.start(h.config(), f.providers())
	bad := []*kgo.Record{
		{Topic: h.names.Orders, Partition: 0, Key: []byte("pi_bad"), Value: []byte("{not json")},
		{Topic: h.names.Orders, Partition: 0, Key: []byte("pi_other"), Value: h.record(paid("pi_mismatch")).Value},
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), bad...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	h.sendTo(0, paid("pi_after"))
	h.waitStates("later order completed", 30*time.Second, allStatus([]string{"pi_after"}, StatusCompleted))
	dl := h.readAll(h.names.DLQ)
	if len(dl) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dl))
	}
	values := map[string]bool{string(bad[0].Value): true, string(bad[1].Value): true}
	for _, d := range dl {
		if c, _ := header(d, topics.HeaderDLQClass); c != topics.ClassCorrupt {
			t.Errorf("class %q", c)
		}
		if !values[string(d.Value)] {
			t.Errorf("dead letter value %q is not an original record value", d.Value)
		}
		delete(values, string(d.Value))
	}
	if got := metricValue(r.p.m.dlqWrites.WithLabelValues(topics.ClassCorrupt)); got != 2 {
		t.Errorf("dlq writes{corrupt} = %v", got)
	}
}

// An unreadable state record is skipped during restore, counted and
// alerted; the other states restore.
func TestCorruptStateIsSkippedOnRestore(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	done := &State{Version: StateVersion, OrderID: "pi_done", Status: StatusCompleted, NextOffset: 1 << 40}
	b, _ := done.Encode()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p := int32(1)
	if err := cl.ProduceSync(context.Background(),
		&kgo.Record{Topic: h.names.State, Partition: p, Key: []byte("pi_garbage"), Value: []byte("\x00\x01garbage")},
		&kgo.Record{Topic: h.names.State, Partition: p, Key: []byte("pi_done"), Value: b},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r := h.start(h.config(), f.providers())
	h.sendTo(p, paid("pi_done"), paid("pi_garbage"))
	h.waitStates("garbage order completed", 30*time.Second, allStatus([]string{"pi_garbage"}, StatusCompleted))
	if n := f.attemptCount(StepDetails, "pi_done"); n != 0 {
		t.Errorf("restored completed order ran %d times", n)
	}
	if got := metricValue(r.p.m.corruptStates); got != 1 {
		t.Errorf("corrupt states = %v, want 1", got)
	}
	if f.alertCount() < 1 {
		t.Error("no alert for the corrupt state")
	}
}

// A graceful stop commits every finished record: a new processor in the
// group reads nothing again.
func TestShutdownCommitsFinishedWork(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	cfg := h.config()
	cfg.CommitInterval = time.Hour // only the shutdown commits
	r := h.start(cfg, f.providers())
	ks := keys("sd", 30)
	for _, k := range ks {
		h.send(paid(k))
	}
	h.waitStates("all completed", 30*time.Second, allStatus(ks, StatusCompleted))
	r.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(h.prod)
	committed, err := adm.FetchOffsets(ctx, cfg.Group)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, h.names.Orders)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(h.names.Orders, o.Partition)
		if o.Offset > 0 && (!ok || c.At != o.Offset) {
			t.Errorf("partition %d: committed %d, end %d", o.Partition, c.At, o.Offset)
		}
	})
}

// However long the backlog, no more than MaxInflight records are held, and
// taking records resumes as they finish: with the per-partition bound
// pausing partitions too, and with the global bound alone (the poll loop
// waits for room).
func TestInflightIsBounded(t *testing.T) {
	t.Parallel()
	for _, perPartition := range []int{2, 1000} {
		t.Run(fmt.Sprintf("per-partition=%d", perPartition), func(t *testing.T) {
			t.Parallel()
			testInflightIsBounded(t, perPartition)
		})
	}
}

func testInflightIsBounded(t *testing.T, perPartition int) {
	h := newHarness(t, 3)
	f := newFakes()
	f.latency = func(step, _ string) time.Duration {
		if step == StepDetails {
			return 20 * time.Millisecond
		}
		return 0
	}
	ks := keys(fmt.Sprintf("bound%d", perPartition), 60)
	var evs []event
	for _, k := range ks {
		evs = append(evs, paid(k))
	}
	h.send(evs...)
	cfg := h.config()
	cfg.MaxInflight = 5
	cfg.MaxInflightPerPartition = perPartition
	r := h.start(cfg, f.providers())
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if n := r.p.inflight.Load(); n > peak.Load() {
				peak.Store(n)
			}
		}
	}()
	h.waitStates("all completed", 60*time.Second, allStatus(ks, StatusCompleted))
	close(stop)
	<-sampled
	if p := peak.Load(); p > int64(cfg.MaxInflight) || p < 2 {
		t.Errorf("peak in-flight records %d, want between 2 and %d", p, cfg.MaxInflight)
	}
}

// An unpaid completed Checkout Session waits; the chain runs when the
// payment succeeds, once, whichever success events arrive.
func TestDelayedPaymentStartsChainOnSuccess(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	cfg := h.config()
	r := h.start(cfg, f.providers())
	k := "pi_delayed"
	h.send(event{key: k, typ: EventCheckoutCompleted, id: "evt_cs", object: "cs_d", paymentStatus: "unpaid"})
	h.waitStates("awaiting payment", 30*time.Second, allStatus([]string{k}, StatusAwaitingPayment))
	if n := f.attemptCount(StepDetails, k); n != 0 {
		t.Fatalf("details called %d times before the payment", n)
	}
	h.send(event{key: k, typ: EventAsyncPaymentSucceded, id: "evt_async", object: "cs_d"}, paid(k))
	h.waitStates("completed", 30*time.Second, func(m map[string]*State) bool {
		return m[k] != nil && m[k].Status == StatusCompleted && m[k].NextOffset == 2
	})
	// Both success events are handled and committed; nothing more runs.
	h.waitHandled(cfg.Group, 30*time.Second)
	r.stop(t)
	for _, step := range Chain {
		if n := f.attemptCount(step, k); n != 1 {
			t.Errorf("%s called %d times, want 1", step, n)
		}
	}
}

// A delayed payment that fails ends the wait: payment_failed, no provider
// called, also when the failure comes before the unpaid completion; a
// later payment of the order still runs the chain once, and a failure
// event of an order already under way changes nothing.
func TestDelayedPaymentFailed(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	cfg := h.config()
	r := h.start(cfg, f.providers())
	failed, early, paidLater := "pi_sepa_failed", "pi_sepa_early", "pi_sepa_retried"
	h.send(event{key: failed, typ: EventCheckoutCompleted, id: "evt_f1", object: "cs_f", paymentStatus: "unpaid"},
		event{key: failed, typ: EventAsyncPaymentFailed, id: "evt_f2", object: "cs_f"},
		// Stripe may deliver the failure before the completion.
		event{key: early, typ: EventAsyncPaymentFailed, id: "evt_e1", object: "cs_e"},
		event{key: early, typ: EventCheckoutCompleted, id: "evt_e2", object: "cs_e", paymentStatus: "unpaid"},
		event{key: paidLater, typ: EventCheckoutCompleted, id: "evt_p1", object: "cs_p", paymentStatus: "unpaid"},
		event{key: paidLater, typ: EventAsyncPaymentFailed, id: "evt_p2", object: "cs_p"})
	h.waitStates("payment failed", 30*time.Second, func(m map[string]*State) bool {
		for k, last := range map[string]string{failed: "evt_f2", early: "evt_e2", paidLater: "evt_p2"} {
			if m[k] == nil || m[k].Status != StatusPaymentFailed || !slices.Contains(m[k].AppliedEvents, last) {
				return false
			}
		}
		return true
	})
	h.waitHandled(cfg.Group, 30*time.Second)
	for _, k := range []string{failed, early, paidLater} {
		for _, step := range Chain {
			if n := f.attemptCount(step, k); n != 0 {
				t.Errorf("%s: %s called %d times after a failed payment", k, step, n)
			}
		}
	}
	// The customer paid after all (the PaymentIntent retried): the chain
	// runs once. A failure event of an order paid and done changes nothing.
	done := "pi_sepa_done"
	h.send(paid(paidLater), paid(done), event{key: done, typ: EventAsyncPaymentFailed, id: "evt_d1", object: "cs_d"})
	h.waitStates("paid later and done completed", 30*time.Second, func(m map[string]*State) bool {
		return m[paidLater] != nil && m[paidLater].Status == StatusCompleted &&
			m[done] != nil && m[done].Status == StatusCompleted && slices.Contains(m[done].AppliedEvents, "evt_d1")
	})
	h.waitHandled(cfg.Group, 30*time.Second)
	r.stop(t)
	for _, k := range []string{paidLater, done} {
		for _, step := range Chain {
			if n := f.attemptCount(step, k); n != 1 {
				t.Errorf("%s: %s called %d times, want 1", k, step, n)
			}
		}
	}
}

// A card payment authorized to be captured later whose authorization is
// canceled or expires (payment_intent.canceled) ends the wait of its
// order: payment_failed, nothing sent. A canceled PaymentIntent with no
// order makes none, and one of an order paid and done changes nothing.
func TestPaymentCanceled(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	cfg := h.config()
	r := h.start(cfg, f.providers())
	held, stray, done := "pi_hold_canceled", "pi_never_an_order", "pi_hold_captured"
	h.send(event{key: held, typ: EventCheckoutCompleted, id: "evt_h1", object: "cs_h", paymentStatus: "unpaid"},
		event{key: held, typ: EventPaymentCanceled, id: "evt_h2", object: held},
		event{key: stray, typ: EventPaymentCanceled, id: "evt_s1", object: stray},
		event{key: done, typ: EventCheckoutCompleted, id: "evt_d1", object: "cs_d", paymentStatus: "unpaid"},
		paid(done),
		event{key: done, typ: EventPaymentCanceled, id: "evt_d3", object: done})
	h.waitStates("canceled and captured", 30*time.Second, func(m map[string]*State) bool {
		return m[held] != nil && m[held].Status == StatusPaymentFailed && slices.Contains(m[held].AppliedEvents, "evt_h2") &&
			m[done] != nil && m[done].Status == StatusCompleted && slices.Contains(m[done].AppliedEvents, "evt_d3")
	})
	h.waitHandled(cfg.Group, 30*time.Second)
	r.stop(t)
	for _, rec := range h.readAll(h.names.State) {
		if string(rec.Key) == stray {
			t.Errorf("a state was written for a canceled PaymentIntent with no order")
		}
	}
	for _, step := range Chain {
		if n := f.attemptCount(step, held); n != 0 {
			t.Errorf("%s called %d times for an order whose payment was canceled", step, n)
		}
		if n := f.attemptCount(step, done); n != 1 {
			t.Errorf("%s called %d times for the captured order, want 1", step, n)
		}
	}
}

// Run refuses topics that are not co-partitioned.
func TestRunRefusesTopicsNotCoPartitioned(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t)
	names := topics.New(testenv.Prefix(t))
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	specs := names.Specs(3)
	specs[1].Partitions = 2 // orders.state
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := topics.Create(ctx, kadm.NewClient(cl), specs, 1); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig(names)
	cfg.Group = names.Prefix + "g"
	p, err := New(cfg, newFakes().providers(), []kgo.Opt{kgo.SeedBrokers(brokers)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "co-partitioned") {
		t.Fatalf("Run = %v, want a co-partitioning error", err)
	}
}

// On shutdown a step still running after the revoke deadline is cut off;
// finished steps are kept, and the next processor redoes only the rest.
func TestShutdownCutsSlowStepAtDeadline(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	started := make(chan struct{})
	var once sync.Once
	f.latency = func(step, order string) time.Duration {
		if step == StepCRM && f.attemptCount(step, order) == 1 {
			once.Do(func() { close(started) })
			return time.Minute
		}
		return 0
	}
	cfg := h.config()
	cfg.RevokeDeadline = 300 * time.Millisecond
	r := h.start(cfg, f.providers())
	h.send(paid("pi_slowstop"))
	<-started
	begin := time.Now()
	r.stop(t)
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("shutdown took %s with a %s deadline", d, cfg.RevokeDeadline)
	}
	st := h.states()["pi_slowstop"]
	if st == nil || !st.Steps[StepDetails].Done || st.Steps[StepCRM] != nil && st.Steps[StepCRM].Done {
		t.Fatalf("state after shutdown %+v: want details done, crm not", st)
	}
	if st.Steps[StepCRM] != nil && st.Steps[StepCRM].Attempts != 0 {
		t.Errorf("an interrupted call counted as a failed attempt: %+v", st.Steps[StepCRM])
	}
	h.start(cfg, f.providers())
	h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_slowstop"}, StatusCompleted))
	if n := f.attemptCount(StepDetails, "pi_slowstop"); n != 1 {
		t.Errorf("details called %d times, want 1", n)
	}
	if n := f.attemptCount(StepCRM, "pi_slowstop"); n != 2 {
		t.Errorf("crm called %d times, want 2 (cut off, then redone)", n)
	}
}

// A state write the broker received and never answers cannot be failed by
// the client (an idempotent record in flight); the write still gives up at
// the produce timeout, so a stop (the same path as OnPartitionsRevoked)
// ends within --revoke-deadline plus the final writes instead of waiting
// for the broker. Runs on kfake, which can hold a request unanswered.
func TestStopIsNotHeldByAnUnansweredStateWrite(t *testing.T) {
	t.Parallel()
	c, h := heldProduceHarness(t)
	var hold atomic.Bool
	hold.Store(true)
	held := holdProduce(t, c, h, h.names.State, &hold)

	f := newFakes()
	cfg := h.config()
	cfg.RevokeDeadline = time.Second
	cfg.ProduceTimeout = time.Second
	r := h.start(cfg, f.providers())
	h.send(paid("pi_held"))
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("no state write reached the broker within 30 s")
	}
	start := time.Now()
	r.cancel()
	// Bound: the revoke deadline, one write attempt and the commit, the
	// producer's close (a produce timeout each), and slack for the test
	// machine. Without the bound the stop waits for the broker, which
	// answers only when the test releases it.
	limit := cfg.RevokeDeadline + 3*cfg.ProduceTimeout + 5*time.Second
	select {
	case err := <-r.done:
		close(r.done)
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		t.Logf("stopped %v after the stop with the state write unanswered", time.Since(start).Round(10*time.Millisecond))
	case <-time.After(limit):
		t.Fatalf("the processor did not stop within %v while a state write went unanswered", limit)
	}
	if n := f.createdCount(StepCRM, "pi_held"); n != 0 {
		t.Errorf("crm called %d times although the details result was never acknowledged", n)
	}
}

// heldProduceHarness is a harness on its own kfake cluster, which can hold
// requests unanswered.
func heldProduceHarness(t *testing.T) (*kfake.Cluster, *harness) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, newHarnessOn(t, strings.Join(c.ListenAddrs(), ","), 1)
}

// holdProduce holds every produce request to topic unanswered while hold is
// set, until the test ends; held is signalled when one arrives.
func holdProduce(t *testing.T, c *kfake.Cluster, h *harness, topic string, hold *atomic.Bool) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	details, err := kadm.NewClient(h.prod).ListTopics(ctx, topic)
	if err != nil || details[topic].Err != nil {
		t.Fatalf("topic id of %s: %v", topic, err)
	}
	id := [16]byte(details[topic].ID)
	released := make(chan struct{})
	t.Cleanup(func() { close(released) }) // runs before the cluster closes
	held := make(chan struct{}, 1)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !hold.Load() {
			return nil, nil, false
		}
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			if tp.Topic == topic || tp.TopicID == id {
				select {
				case <-released:
				default:
					select {
					case held <- struct{}{}:
					default:
					}
					c.SleepControl(func() { <-released })
				}
			}
		}
		return nil, nil, false
	})
	return held
}

// The retention pass's removal requests are written from the commit loop;
// when the broker never answers them, the pass gives up at the produce
// timeout, and the stop does not wait for the broker.
func TestStopIsNotHeldByUnansweredRetentionRequests(t *testing.T) {
	t.Parallel()
	c, h := heldProduceHarness(t)
	var hold atomic.Bool
	held := holdProduce(t, c, h, h.names.Orders, &hold)
	f := newFakes()
	cfg := h.config()
	cfg.RevokeDeadline = time.Second
	cfg.ProduceTimeout = time.Second
	cfg.StateRetention = time.Second
	h.send(paid("pi_old"))
	hold.Store(true) // every later write to orders, the removal request, is held
	r := h.start(cfg, f.providers())
	h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_old"}, StatusCompleted))
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("no removal request reached the broker within 30 s")
	}
	start := time.Now()
	r.cancel()
	limit := cfg.RevokeDeadline + 3*cfg.ProduceTimeout + 5*time.Second
	select {
	case err := <-r.done:
		close(r.done)
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		t.Logf("stopped %v after the stop with a removal request unanswered", time.Since(start).Round(10*time.Millisecond))
	case <-time.After(limit):
		t.Fatalf("the processor did not stop within %v while a removal request went unanswered", limit)
	}
}

// Every order held by an open circuit says so in its state, and in the
// digest its record carries: the order whose uncounted failure opened the
// circuit, the orders that failed before it, and those that came to the
// step while it was open. Once the provider is back the orders complete
// and the mark is gone.
func TestOrdersWaitingOnOpenCircuitAreMarked(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	var down atomic.Bool
	down.Store(true)
	f.setFail(func(step, _ string, _ int) error {
		if step == StepShipping && down.Load() {
			return transient(step)
		}
		return nil
	})
	cfg := h.config()
	cfg.Retry.MaxAttempts = 20
	cfg.Breaker.Cooldown = 5 * time.Second
	r := h.start(cfg, f.providers())
	first := keys("pi_cwait_a", 4)
	h.send(paid(first[0]), paid(first[1]), paid(first[2]), paid(first[3]))
	circuit := r.p.m.circuit.WithLabelValues(StepShipping)
	eventually(t, "shipping circuit open", 30*time.Second, func() bool { return metricValue(circuit) == circuitOpen })
	later := keys("pi_cwait_b", 3)
	h.send(paid(later[0]), paid(later[1]), paid(later[2]))
	all := append(slices.Clone(first), later...)

	marked := func(m map[string]*State) bool {
		for _, k := range all {
			st := m[k]
			if st == nil || st.Status != StatusInProgress {
				return false
			}
			if ss := st.Steps[StepShipping]; ss == nil || ss.CircuitOpen == nil {
				return false
			}
		}
		return true
	}
	h.waitStates("every order waiting on the open circuit marked", 4*time.Second, marked)
	// The digests of the latest state records say it too.
	latest := map[string]*kgo.Record{}
	for _, rec := range h.readAll(h.names.State) {
		latest[string(rec.Key)] = rec
	}
	for _, k := range all {
		d, ok := RecordDigest(latest[k])
		if !ok {
			t.Fatalf("%s: the state record has no digest", k)
		}
		if s := d.Step(StepShipping); s == nil || !s.CircuitOpen || s.Done {
			t.Errorf("%s: digest of shipping %+v, want waiting on the open circuit", k, s)
		}
	}
	for _, k := range later {
		if n := f.attemptCount(StepShipping, k); n != 0 {
			t.Errorf("%s came while the circuit was open and was called %d times", k, n)
		}
	}

	down.Store(false)
	done := h.waitStates("every order completed", 30*time.Second, allStatus(all, StatusCompleted))
	for _, k := range all {
		if ss := done[k].Steps[StepShipping]; ss.CircuitOpen != nil {
			t.Errorf("%s completed with shipping still marked waiting on the circuit: %+v", k, ss)
		}
		if n := f.createdCount(StepShipping, k); n != 1 {
			t.Errorf("%s: %d shipments, want 1", k, n)
		}
	}
}

// TestPermanentFailureIsRecordedWhileOtherStepsRun: a step that fails for
// good while other steps of the order are still running (a slow CRM and
// production log) is
// recorded in the state and alerted at once, not when the slow step ends;
// the order is dead-lettered when it does, with one alert.
func TestPermanentFailureIsRecordedWhileOtherStepsRun(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 1)
	f := newFakes()
	release := make(chan struct{})
	f.setFail(func(step, _ string, _ int) error {
		switch step {
		case StepCRM, StepProductionLog:
			select {
			case <-release:
			case <-time.After(time.Minute):
			}
		case StepInvoice:
			// Refused with an answer: nothing was made.
			return &integrations.Error{Provider: "fake", Op: "create invoice", Status: 422, Class: integrations.Permanent, Msg: "HTTP 422 invalid postcode"}
		}
		return nil
	})
	h.start(h.config(), f.providers())
	key := "pi_n9slowcrm01"
	h.send(paid(key))
	st := h.waitStates("the invoice's failure recorded while the CRM call runs", 20*time.Second, func(m map[string]*State) bool {
		s := m[key]
		return s != nil && s.Steps[StepInvoice] != nil && s.Steps[StepInvoice].LastError != ""
	})[key]
	if f.createdCount(StepCRM, key) != 0 {
		t.Fatal("the CRM call ended before the check")
	}
	inv := st.Steps[StepInvoice]
	if st.Status != StatusInProgress || inv.Done || inv.Attempts != 1 || inv.Intent != nil || inv.Lease != nil || !strings.Contains(inv.LastError, "HTTP 422 invalid postcode") {
		t.Errorf("state while the CRM runs: status %s, invoice %+v", st.Status, inv)
	}
	eventually(t, "the alert, while the CRM call runs", 10*time.Second, func() bool { return f.alertCount() == 1 })
	if f.createdCount(StepCRM, key) != 0 {
		t.Fatal("the CRM call ended before the alert")
	}
	close(release)
	done := h.waitStates("dead-lettered once the CRM call ended", 20*time.Second, allStatus([]string{key}, StatusDeadLettered))[key]
	if done.DeadLetter == nil || done.DeadLetter.Step != StepInvoice || !done.Steps[StepCRM].Done {
		t.Errorf("final state: dead letter %+v, crm %+v", done.DeadLetter, done.Steps[StepCRM])
	}
	if n := f.alertCount(); n != 1 {
		t.Errorf("%d alerts, want 1", n)
	}
}
