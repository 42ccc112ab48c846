package processor

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics"
)

func TestChainCompletesEveryStepOnce(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	r := h.start(h.config(), f.providers())
	ks := keys("ok", 20)
	for _, k := range ks {
		h.send(paid(k))
	}
	st := h.waitStates("all completed", 30*time.Second, allStatus(ks, StatusCompleted))
	for _, k := range ks {
		for _, step := range Chain {
			if n := f.createdCount(step, k); n != 1 {
				t.Errorf("%s %s: created %d times, want 1", k, step, n)
			}
			if ss := st[k].Steps[step]; ss == nil || !ss.Done || ss.DoneAt == nil {
				t.Errorf("%s %s: state %+v, want done", k, step, ss)
			}
		}
		if st[k].Order == nil || st[k].Order.ID != k {
			t.Errorf("%s: order details not in the state: %+v", k, st[k].Order)
		}
		if !slices.Contains(st[k].AppliedEvents, "evt_pi_"+k) {
			t.Errorf("%s: applied events %v", k, st[k].AppliedEvents)
		}
	}
	if dl := h.readAll(h.names.DLQ); len(dl) != 0 {
		t.Errorf("%d dead letters, want none", len(dl))
	}
	eventually(t, "orders_total{completed} = 20", 5*time.Second, func() bool {
		return metricValue(r.p.m.orders.WithLabelValues(string(StatusCompleted))) == 20
	})
	eventually(t, "lag 0 on every partition", 5*time.Second, func() bool {
		total, seen := 0.0, 0
		for p := range int32(3) {
			g, err := r.p.m.lag.GetMetricWithLabelValues(partitionLabel(p))
			if err == nil {
				total += metricValue(g)
				seen++
			}
		}
		return seen > 0 && total == 0
	})
	if n := histogramCount(r.p.m.restore); n < 1 {
		t.Errorf("restore observed %d times", n)
	}
	if n := metricValue(r.p.m.stepAttempts.WithLabelValues(StepEmail)); n != 20 {
		t.Errorf("email attempts %v, want 20", n)
	}
}

func TestDisabledStepIsSkipped(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	prov := f.providers()
	prov.CRM = nil
	h.start(h.config(), prov)
	h.send(paid("pi_nocrm"))
	st := h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_nocrm"}, StatusCompleted))
	if ss := st["pi_nocrm"].Steps[StepCRM]; ss == nil || !ss.Skipped || ss.Done {
		t.Errorf("crm state %+v, want skipped", ss)
	}
	if n := f.attemptCount(StepCRM, "pi_nocrm"); n != 0 {
		t.Errorf("crm called %d times", n)
	}
	if n := f.createdCount(StepEmail, "pi_nocrm"); n != 1 {
		t.Errorf("email created %d times, want 1", n)
	}
}

// Records of one key run in offset order while many keys run concurrently.
func TestPerKeyOrderUnderConcurrency(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	var seed atomic.Uint32
	f.latency = func(step, order string) time.Duration {
		return time.Duration(seed.Add(7919)%15) * time.Millisecond
	}
	var cur, peak atomic.Int32
	f.afterCreate = nil
	base := f.latency
	f.latency = func(step, order string) time.Duration {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		defer cur.Add(-1)
		d := base(step, order)
		time.Sleep(d) // hold the counter while "calling"
		return 0
	}
	ks := keys("ord", 30)
	const extra = 5
	var evs []event
	for i := 0; i <= extra; i++ {
		for _, k := range ks {
			if i == 0 {
				evs = append(evs, paid(k))
				continue
			}
			evs = append(evs, event{key: k, typ: "customer.updated", id: fmt.Sprintf("evt_%s_%d", k, i), object: fmt.Sprintf("cus_%s_%d", k, i)})
		}
	}
	h.start(h.config(), f.providers())
	h.send(evs...)
	st := h.waitStates("all events applied", 60*time.Second, func(st map[string]*State) bool {
		for _, k := range ks {
			if st[k] == nil || len(st[k].AppliedEvents) != extra+1 {
				return false
			}
		}
		return true
	})
	for _, k := range ks {
		want := []string{"evt_pi_" + k}
		for i := 1; i <= extra; i++ {
			want = append(want, fmt.Sprintf("evt_%s_%d", k, i))
		}
		if got := st[k].AppliedEvents; !slices.Equal(got, want) {
			t.Errorf("%s: events applied in order %v, want %v", k, got, want)
		}
		if st[k].Status != StatusCompleted {
			t.Errorf("%s: status %s", k, st[k].Status)
		}
		// The steps of one order follow the graph: a step starts only after
		// the details and the steps it reads ended.
		calls := f.callsOf(k)
		ended := map[string]time.Time{}
		for _, c := range calls {
			ended[c.step] = c.end
		}
		reads := map[string][]string{StepCRM: {StepDetails}, StepProductionLog: {StepDetails}, StepShipping: {StepDetails},
			StepInvoice: {StepDetails, StepShipping}, StepEmail: {StepDetails, StepShipping, StepInvoice}}
		for _, c := range calls {
			for _, r := range reads[c.step] {
				if e, ok := ended[r]; !ok || c.start.Before(e) {
					t.Errorf("%s: call %s started before %s ended", k, c.step, r)
				}
			}
		}
	}
	if peak.Load() < 2 {
		t.Errorf("peak concurrent provider calls %d: keys did not run concurrently", peak.Load())
	}
}

// A slow step of one order does not delay another order of the same
// partition.
func TestSlowKeyDoesNotDelayOtherKeys(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	f.latency = func(step, order string) time.Duration {
		if order == "pi_slow" && step == StepCRM {
			return 2 * time.Second
		}
		return 0
	}
	h.start(h.config(), f.providers())
	h.sendTo(1, paid("pi_slow"), paid("pi_fast"))
	h.waitStates("both completed", 30*time.Second, allStatus([]string{"pi_slow", "pi_fast"}, StatusCompleted))
	var slowCRMEnd, fastEmailEnd time.Time
	for _, c := range f.callsOf("pi_slow") {
		if c.step == StepCRM {
			slowCRMEnd = c.end
		}
	}
	for _, c := range f.callsOf("pi_fast") {
		if c.step == StepEmail {
			fastEmailEnd = c.end
		}
	}
	if !fastEmailEnd.Before(slowCRMEnd) {
		t.Errorf("fast order finished at %s, after the slow order's crm call ended at %s", fastEmailEnd.Format(time.StampMicro), slowCRMEnd.Format(time.StampMicro))
	}
}

func TestTransientFailuresThenSuccess(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	f.fail = func(step, order string, attempt int) error {
		if step == StepCRM && attempt <= 2 {
			return transient(step)
		}
		if step == StepShipping && attempt == 1 {
			return &integrations.Error{Provider: "fake", Op: "book", Status: 429, Class: integrations.Transient, RetryAfter: 30 * time.Millisecond}
		}
		return nil
	}
	h.start(h.config(), f.providers())
	h.send(paid("pi_flaky"))
	st := h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_flaky"}, StatusCompleted))["pi_flaky"]
	if got := st.Steps[StepCRM].Attempts; got != 2 {
		t.Errorf("crm attempts in state %d, want 2", got)
	}
	if st.Steps[StepCRM].FirstFailure == nil || st.Steps[StepCRM].LastFailure == nil {
		t.Errorf("crm failures not recorded: %+v", st.Steps[StepCRM])
	}
	for _, step := range Chain {
		if n := f.createdCount(step, "pi_flaky"); n != 1 {
			t.Errorf("%s created %d times", step, n)
		}
	}
	if st.HasFlag(FlagPossibleDuplicatePrefix + StepShipping) {
		t.Error("a 429 answer flagged the shipment as a possible duplicate")
	}
	if dl := h.readAll(h.names.DLQ); len(dl) != 0 {
		t.Errorf("%d dead letters, want none", len(dl))
	}
}

func TestFailuresGoToTheDeadLetterTopic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		fail     func(step, order string, attempt int) error
		class    string
		attempts string
	}{
		{"permanent", func(step, _ string, _ int) error {
			if step == StepShipping {
				return permanent(step)
			}
			return nil
		}, topics.ClassPermanent, "1"},
		{"exhausted", func(step, _ string, _ int) error {
			if step == StepShipping {
				return transient(step)
			}
			return nil
		}, topics.ClassExhausted, "3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newLogicHarness(t, 3)
			f := newFakes()
			f.fail = tt.fail
			cfg := h.config()
			cfg.Breaker.MinOrders = 10 // one failing order must not open the circuit
			r := h.start(cfg, f.providers())
			e := paid("pi_dead")
			e.headers = map[string]string{topics.HeaderTraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
			h.send(e)
			st := h.waitStates("dead-lettered", 30*time.Second, allStatus([]string{"pi_dead"}, StatusDeadLettered))["pi_dead"]
			dl := h.readAll(h.names.DLQ)
			if len(dl) != 1 {
				t.Fatalf("%d dead letters, want 1", len(dl))
			}
			d := dl[0]
			orig := h.readAll(h.names.Orders)[0]
			if string(d.Key) != "pi_dead" || string(d.Value) != string(orig.Value) || d.Partition != orig.Partition {
				t.Errorf("dead letter key %q partition %d, value changed: %v", d.Key, d.Partition, string(d.Value) != string(orig.Value))
			}
			want := map[string]string{
				topics.HeaderDLQTopic:       h.names.Orders,
				topics.HeaderDLQPartition:   strconv.Itoa(int(orig.Partition)),
				topics.HeaderDLQOffset:      strconv.FormatInt(orig.Offset, 10),
				topics.HeaderDLQStep:        StepShipping,
				topics.HeaderDLQClass:       tt.class,
				topics.HeaderDLQAttempts:    tt.attempts,
				topics.HeaderDLQReplayCount: "0",
				topics.HeaderEventID:        "evt_pi_pi_dead",
				topics.HeaderTraceParent:    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			}
			for k, v := range want {
				if got, ok := header(d, k); !ok || got != v {
					t.Errorf("header %s = %q (present %v), want %q", k, got, ok, v)
				}
			}
			for _, k := range []string{topics.HeaderDLQError, topics.HeaderDLQFirstFailure, topics.HeaderDLQLastFailure} {
				v, ok := header(d, k)
				if !ok || v == "" {
					t.Errorf("header %s missing", k)
				}
				if k != topics.HeaderDLQError {
					if _, err := time.Parse(time.RFC3339, v); err != nil {
						t.Errorf("header %s = %q: %v", k, v, err)
					}
				}
			}
			if st.DeadLetter == nil || st.DeadLetter.Step != StepShipping || st.DeadLetter.Class != tt.class ||
				st.DeadLetter.Offset != d.Offset || st.DeadLetter.Partition != d.Partition {
				t.Errorf("state dead letter %+v, want step %s class %s at %d/%d", st.DeadLetter, StepShipping, tt.class, d.Partition, d.Offset)
			}
			if f.attemptCount(StepInvoice, "pi_dead") != 0 || f.attemptCount(StepEmail, "pi_dead") != 0 {
				t.Error("steps after the failed one ran")
			}
			eventually(t, "one alert", 5*time.Second, func() bool { return f.alertCount() == 1 })
			if got := metricValue(r.p.m.dlqWrites.WithLabelValues(tt.class)); got != 1 {
				t.Errorf("dlq writes{%s} = %v, want 1", tt.class, got)
			}
		})
	}
}

// A killed processor (no graceful stop, no commit) is replaced by another
// that resumes at the first unfinished step.
func TestCrashMidChainResumes(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	started := make(chan struct{})
	var once sync.Once
	f.latency = func(step, order string) time.Duration {
		if order == "pi_crash" && step == StepShipping && f.attemptCount(StepShipping, order) == 1 {
			once.Do(func() { close(started) })
			return time.Minute // hangs until the crash cancels it
		}
		return 0
	}
	cfg := h.config()
	r1 := h.start(cfg, f.providers())
	h.send(paid("pi_crash"))
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("shipping never started")
	}
	// crm and production_log run beside shipping: the crash comes once
	// their results are recorded.
	h.waitStates("crm and production log recorded", 30*time.Second, func(m map[string]*State) bool {
		st := m["pi_crash"]
		return st != nil && st.Steps[StepCRM] != nil && st.Steps[StepCRM].Done &&
			st.Steps[StepProductionLog] != nil && st.Steps[StepProductionLog].Done
	})
	r1.kill(t)

	h.start(cfg, f.providers())
	st := h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_crash"}, StatusCompleted))["pi_crash"]
	for _, step := range []string{StepDetails, StepCRM, StepProductionLog} {
		if n := f.attemptCount(step, "pi_crash"); n != 1 {
			t.Errorf("%s called %d times, want 1 (finished before the crash)", step, n)
		}
	}
	for _, step := range []string{StepShipping, StepInvoice, StepEmail} {
		if n := f.createdCount(step, "pi_crash"); n != 1 {
			t.Errorf("%s created %d times, want 1", step, n)
		}
	}
	// The shipment call was interrupted after its intent was recorded: the
	// default policy calls again and flags the order for a human.
	if !st.HasFlag(FlagPossibleDuplicatePrefix + StepShipping) {
		t.Errorf("flags %v, want %s", st.Flags, FlagPossibleDuplicatePrefix+StepShipping)
	}
}

// The invoice of an order whose processor crashed right after the provider
// created it is found by number, not created again.
func TestInvoiceIntentIsReconciled(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	cfg := h.config()
	var r1 *running
	var once sync.Once
	f.afterCreate = func(step, order string) {
		if step == StepInvoice {
			once.Do(func() { r1.p.kill() })
		}
	}
	r1 = h.start(cfg, f.providers())
	h.send(paid("pi_inv"))
	eventually(t, "invoice created", 30*time.Second, func() bool { return f.createdCount(StepInvoice, "pi_inv") == 1 })
	r1.stop(t)

	f.mu.Lock()
	f.afterCreate = nil
	f.mu.Unlock()
	h.start(cfg, f.providers())
	st := h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_inv"}, StatusCompleted))["pi_inv"]
	if n := f.attemptCount(StepInvoice, "pi_inv"); n != 1 {
		t.Errorf("invoice creation called %d times, want 1", n)
	}
	inv, _ := stepResult[integrations.Invoice](st, StepInvoice)
	if inv.Number != "INV-"+integrations.OrderNumber("pi_inv") {
		t.Errorf("invoice in state %+v", inv)
	}
	if n := f.createdCount(StepEmail, "pi_inv"); n != 1 {
		t.Errorf("email sent %d times", n)
	}
}

// With policy dead-letter, an intent without a result goes to a human.
func TestShippingIntentPolicyDeadLetter(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	cfg := h.config()
	cfg.IntentPolicy = map[string]IntentPolicy{StepShipping: IntentDeadLetter}
	var r1 *running
	var once sync.Once
	f.afterCreate = func(step, order string) {
		if step == StepShipping {
			once.Do(func() { r1.p.kill() })
		}
	}
	r1 = h.start(cfg, f.providers())
	h.send(paid("pi_ship"))
	eventually(t, "shipment created", 30*time.Second, func() bool { return f.createdCount(StepShipping, "pi_ship") == 1 })
	r1.stop(t)
	f.mu.Lock()
	f.afterCreate = nil
	f.mu.Unlock()

	h.start(cfg, f.providers())
	st := h.waitStates("dead-lettered", 30*time.Second, allStatus([]string{"pi_ship"}, StatusDeadLettered))["pi_ship"]
	if st.DeadLetter.Class != topics.ClassPermanent || st.DeadLetter.Step != StepShipping {
		t.Errorf("dead letter %+v", st.DeadLetter)
	}
	if n := f.attemptCount(StepShipping, "pi_ship"); n != 1 {
		t.Errorf("shipping called %d times, want 1", n)
	}
}

// Two processors share a backlog; partitions move twice in the middle of
// it (a member joins, then the first leaves). Every order completes and no
// step is repeated.
func TestRebalanceMidBacklog(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 4)
	f := newFakes()
	f.latency = func(string, string) time.Duration { return 2 * time.Millisecond }
	ks := keys("rb", 400)
	var evs []event
	for _, k := range ks {
		evs = append(evs, paid(k))
	}
	h.send(evs...)
	cfg := h.config()
	cfg.MaxInflightPerPartition = 20
	r1 := h.start(cfg, f.providers())
	done := func(n int) func() bool {
		return func() bool {
			c := 0
			for _, k := range ks {
				c += f.createdCount(StepEmail, k)
			}
			return c >= n
		}
	}
	eventually(t, "a third done", 60*time.Second, done(len(ks)/3))
	r2 := h.start(cfg, f.providers())
	eventually(t, "two thirds done", 60*time.Second, done(2*len(ks)/3))
	r1.stop(t)
	h.waitStates("all completed", 90*time.Second, allStatus(ks, StatusCompleted))
	// A call still running when its partition is revoked may be cancelled
	// by the drain deadline (on a loaded machine) and made again by the
	// new owner; the fake creates nothing for a cancelled call. What must
	// hold is one successful call per step and order.
	for _, k := range ks {
		for _, step := range Chain {
			if n := f.createdCount(step, k); n != 1 {
				t.Errorf("%s %s created %d times (%d calls), want 1", k, step, n, f.attemptCount(step, k))
			}
		}
	}
	_ = r2
}

func partitionOf(key string, n int) int32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int32(h.Sum32() % uint32(n))
}
