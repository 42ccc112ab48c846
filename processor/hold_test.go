package processor

import (
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics"
)

// quotaAlerts counts the alerts about a used-up quota.
func (f *fakes) quotaAlerts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, a := range f.alerts {
		if strings.Contains(a.Text, "refused for its quota") {
			n++
		}
	}
	return n
}

func (f *fakes) callCount(step string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c.step == step {
			n++
		}
	}
	return n
}

// A CRM whose daily quota is used up: the step is held for every order
// (no attempts, no dead letter, one alert, the records finish and the rest
// of the chain goes on); the hold is in the state, so a new processor
// finds it and makes no call; when the reset comes one order probes and
// then every deal is created exactly once.
func TestQuotaHoldSurvivesRestartAndResumes(t *testing.T) {
	h := newLogicHarness(t, 2)
	f := newFakes()
	var exhausted atomic.Bool
	exhausted.Store(true)
	reset := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	f.setFail(func(step, _ string, _ int) error {
		if step == StepCRM && exhausted.Load() {
			return integrations.QuotaExhausted("zoho", "upsert contact", 429, reset, "TOO_MANY_REQUESTS: API credits used up")
		}
		return nil
	})
	cfg := h.config()
	r1 := h.start(cfg, f.providers())
	orders := keys("pi_quota_", 4)
	for _, k := range orders {
		h.send(paid(k))
	}
	h.waitStates("shipping, invoice and email done, crm held", 20*time.Second, func(m map[string]*State) bool {
		for _, k := range orders {
			st := m[k]
			if st == nil || st.NextOffset == 0 || st.Status != StatusInProgress {
				return false
			}
			for _, s := range []string{StepShipping, StepInvoice, StepEmail, StepProductionLog} {
				if ss := st.Steps[s]; ss == nil || !ss.Done {
					return false
				}
			}
			if crm := st.Steps[StepCRM]; crm == nil || crm.HeldUntil == nil {
				return false
			}
		}
		return true
	})
	h.waitHandled(cfg.Group, 20*time.Second)
	st := h.states()
	for _, k := range orders {
		crm := st[k].Steps[StepCRM]
		if crm.Attempts != 0 || crm.Done || !crm.HeldUntil.Equal(reset) || !strings.Contains(crm.HeldReason, "API credits used up") {
			t.Errorf("%s crm = %+v, want held until %v with no attempt", k, crm, reset)
		}
		if len(st[k].Pending) != 1 || st[k].Pending[0] != StepCRM {
			t.Errorf("%s pending = %v, want [crm]", k, st[k].Pending)
		}
	}
	if n := len(h.readAll(h.names.DLQ)); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
	if n := f.quotaAlerts(); n != 1 {
		t.Errorf("%d quota alerts, want exactly 1", n)
	}
	if v := metricValue(r1.p.m.held.WithLabelValues(StepCRM)); v != 4 {
		t.Errorf("orderflow_steps_held{crm} = %v, want 4", v)
	}
	if v := metricValue(r1.p.m.heldUntil.WithLabelValues(StepCRM)); v != float64(reset.Unix()) {
		t.Errorf("orderflow_step_held_until_seconds{crm} = %v, want %d", v, reset.Unix())
	}
	calls := f.callCount(StepCRM)
	if calls < 1 || calls > 4 {
		t.Errorf("%d CRM calls while exhausted, want 1 to 4 (one per order at most, before the hold)", calls)
	}
	r1.stop(t)

	// A new processor restores the states and finds the held orders.
	r2 := h.start(cfg, f.providers())
	eventually(t, "the new processor finds the 4 held orders", 20*time.Second, func() bool {
		return metricValue(r2.p.m.held.WithLabelValues(StepCRM)) == 4
	})
	if n := f.callCount(StepCRM); n != calls {
		t.Errorf("%d CRM calls after the restart, want still %d", n, calls)
	}

	// The reset comes: the quota is back and the clock passes the reset.
	exhausted.Store(false)
	released := time.Now()
	r2.p.holds.setClock(func() time.Time { return time.Now().Add(2 * time.Hour) })
	h.waitStates("every order completed", 20*time.Second, allStatus(orders, StatusCompleted))
	for _, k := range orders {
		if n := f.createdCount(StepCRM, k); n != 1 {
			t.Errorf("%s: %d deals created, want exactly 1", k, n)
		}
		for _, s := range []string{StepShipping, StepInvoice, StepEmail} {
			if n := f.createdCount(s, k); n != 1 {
				t.Errorf("%s: %s created %d times, want 1", k, s, n)
			}
		}
	}
	if st := h.states()[orders[0]].Steps[StepCRM]; st.HeldUntil != nil || st.HeldReason != "" || st.Attempts != 0 {
		t.Errorf("crm after the release = %+v, want done without hold or attempts", st)
	}
	if n := f.quotaAlerts(); n != 1 {
		t.Errorf("%d quota alerts, want exactly 1", n)
	}
	if n := len(h.readAll(h.names.DLQ)); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
	// One probe first: the other held orders' calls start only after its
	// call returned.
	var after []call
	f.mu.Lock()
	for _, c := range f.calls {
		if c.step == StepCRM && c.start.After(released) {
			after = append(after, c)
		}
	}
	f.mu.Unlock()
	if len(after) != 4 {
		t.Fatalf("%d CRM calls after the reset, want 4 (one per held order)", len(after))
	}
	slices.SortFunc(after, func(a, b call) int { return a.start.Compare(b.start) })
	for _, c := range after[1:] {
		if c.start.Before(after[0].end) {
			t.Errorf("CRM call of %s started at %v, before the probe (%s) returned at %v", c.order, c.start, after[0].order, after[0].end)
		}
	}
	eventually(t, "no held order left in the gauge", 5*time.Second, func() bool {
		return metricValue(r2.p.m.held.WithLabelValues(StepCRM)) == 0 && metricValue(r2.p.m.heldUntil.WithLabelValues(StepCRM)) == 0
	})
}

// The cost the hold adds to every step call: gate before, answered after.
// Before any hold it is an atomic load; after one (released) a lock.
func BenchmarkHoldGate(b *testing.B) {
	newP := func() *Processor {
		m, err := newMetrics(prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		p := &Processor{cfg: DefaultConfig(topics.New("")), m: m, log: slog.New(slog.DiscardHandler)}
		p.holds = newHolds(p)
		return p
	}
	ss := &StepState{}
	b.Run("never-held", func(b *testing.B) {
		p := newP()
		for b.Loop() {
			p.holds.gate(StepCRM, 0, "pi_1", ss)
			p.holds.answered(StepCRM, 0, "pi_1")
		}
	})
	b.Run("after-a-hold", func(b *testing.B) {
		p := newP()
		p.holds.exhausted(StepCRM, 0, "pi_0", time.Now(), "quota")
		p.holds.answered(StepCRM, 0, "pi_0")
		p.holds.mu.Lock()
		p.holds.steps[StepCRM].until, p.holds.steps[StepCRM].releasing = time.Time{}, false
		p.holds.mu.Unlock()
		for b.Loop() {
			p.holds.gate(StepCRM, 0, "pi_1", ss)
			p.holds.answered(StepCRM, 0, "pi_1")
		}
	})
}

// The hold is the processor's, for any step: shipping (not idempotent,
// with steps reading it) held for its quota leaves no intent behind, the
// invoice and email wait for it, the record finishes, and the release
// books each shipment once.
func TestQuotaHoldOfAStepOthersRead(t *testing.T) {
	h := newLogicHarness(t, 1)
	f := newFakes()
	var exhausted atomic.Bool
	exhausted.Store(true)
	reset := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	f.setFail(func(step, _ string, _ int) error {
		if step == StepShipping && exhausted.Load() {
			return integrations.QuotaExhausted("postnord", "book shipment", 429, reset, "daily bookings used up")
		}
		return nil
	})
	cfg := h.config()
	r := h.start(cfg, f.providers())
	orders := keys("pi_shipquota_", 3)
	for _, k := range orders {
		h.send(paid(k))
	}
	h.waitStates("crm done, shipping held, the record finished", 20*time.Second, func(m map[string]*State) bool {
		for _, k := range orders {
			st := m[k]
			if st == nil || st.NextOffset == 0 || st.Steps[StepCRM] == nil || !st.Steps[StepCRM].Done ||
				st.Steps[StepShipping] == nil || st.Steps[StepShipping].HeldUntil == nil {
				return false
			}
		}
		return true
	})
	for k, st := range h.states() {
		ship := st.Steps[StepShipping]
		if ship.Intent != nil || ship.Lease != nil || ship.Attempts != 0 {
			t.Errorf("%s shipping held = %+v, want no intent, no lease, no attempt", k, ship)
		}
		if !slices.Equal(st.Pending, []string{StepShipping, StepInvoice, StepEmail}) || st.Status != StatusInProgress {
			t.Errorf("%s: status %s pending %v, want in progress with shipping, invoice, email pending", k, st.Status, st.Pending)
		}
	}
	if n := f.callCount(StepInvoice) + f.callCount(StepEmail); n != 0 {
		t.Errorf("%d invoice or email calls while shipping is held, want 0", n)
	}
	if n := f.quotaAlerts(); n != 1 {
		t.Errorf("%d quota alerts, want 1", n)
	}
	exhausted.Store(false)
	r.p.holds.setClock(func() time.Time { return time.Now().Add(2 * time.Hour) })
	h.waitStates("every order completed", 20*time.Second, allStatus(orders, StatusCompleted))
	for _, k := range orders {
		for _, s := range []string{StepShipping, StepInvoice, StepEmail} {
			if n := f.createdCount(s, k); n != 1 {
				t.Errorf("%s: %s created %d times, want 1", k, s, n)
			}
		}
	}
	if n := len(h.readAll(h.names.DLQ)); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}

// The held gauge counts the probe: it is off the list while its call is
// out but still held until answered, so a probe does not dip the gauge.
func TestHeldCountsTheProbe(t *testing.T) {
	sh := &stepHold{keys: map[int32]map[string]struct{}{}}
	sh.add(0, "pi_a")
	sh.add(1, "pi_b")
	sh.add(1, "pi_c")
	if n := sh.held(); n != 3 {
		t.Fatalf("three listed, no probe: held %d", n)
	}
	r, ok := sh.pick(StepCRM)
	if !ok {
		t.Fatal("nothing to pick")
	}
	sh.probe = r.key
	if n := sh.held(); n != 3 {
		t.Errorf("two listed and the probe out: held %d, want 3", n)
	}
	// Refused again, the probe is listed again (exhausted clears probe;
	// listed and named at once it still counts once).
	sh.add(r.part, r.key)
	if n := sh.held(); n != 3 {
		t.Errorf("probe listed again: held %d, want 3", n)
	}
	sh.probe = ""
	sh.remove(r.part, r.key)
	if n := sh.held(); n != 2 {
		t.Errorf("the probe answered: held %d, want 2", n)
	}
}

// Once an answered probe released a hold, the HeldUntil that hold left in
// a resumed order's state (it stays there until the order's own call is
// answered) never holds the step again, however late that order comes to
// the step or is found in a restored store: new orders are called at once.
// Only a new quota answer holds the step again.
func TestReleasedHoldIsNotReArmedByStaleStates(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p := &Processor{cfg: DefaultConfig(topics.New("t.")), m: m, log: slog.New(slog.DiscardHandler)}
	hs := newHolds(p)
	now := time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC)
	hs.now = func() time.Time { return now }
	reset := time.Date(2026, 12, 8, 13, 0, 0, 0, time.UTC) // tomorrow
	stale := func() *StepState {
		u := reset
		return &StepState{HeldUntil: &u, HeldReason: "zoho: HTTP 429: credits used up"}
	}

	if !hs.exhausted(StepCRM, 0, "pi_a", reset, "zoho: HTTP 429: credits used up") {
		t.Fatal("the first quota answer starts no hold")
	}
	if _, _, held := hs.gate(StepCRM, 0, "pi_b", &StepState{}); !held {
		t.Fatal("pi_b not held while the hold lasts")
	}
	// The probe interval passes (15 minutes by default): one order probes,
	// its call is answered, the other is resumed.
	now = now.Add(16 * time.Minute)
	hs.pass(1, time.Millisecond)
	probe := hs.steps[StepCRM].probe
	if probe == "" {
		t.Fatal("no probe after the probe interval")
	}
	if _, _, held := hs.gate(StepCRM, 0, probe, stale()); held {
		t.Fatal("the probe is held")
	}
	hs.answered(StepCRM, 0, probe)
	for i := 0; i < 3 && (hs.steps[StepCRM].releasing || hs.steps[StepCRM].count() > 0); i++ {
		hs.pass(1, time.Millisecond)
	}
	if sh := hs.steps[StepCRM]; sh.releasing || sh.count() != 0 || !sh.until.IsZero() {
		t.Fatalf("after the release: releasing %v, %d listed, until %v; want every order resumed", sh.releasing, sh.count(), sh.until)
	}

	// The resumed order reaches the step with its stale HeldUntil: called.
	resumed := "pi_a"
	if probe == "pi_a" {
		resumed = "pi_b"
	}
	if until, _, held := hs.gate(StepCRM, 0, resumed, stale()); held {
		t.Errorf("resumed order %s held again until %v by its own stale state", resumed, until)
	}
	if _, _, held := hs.gate(StepCRM, 1, "pi_new", &StepState{}); held {
		t.Error("a new order is held after the release")
	}
	// A restored partition's store still shows an order held by that
	// hold: it is resumed, the step stays free.
	hs.adopt(StepCRM, 1, "pi_restored", reset, "zoho: HTTP 429: credits used up")
	if _, _, held := hs.gate(StepCRM, 1, "pi_new2", &StepState{}); held {
		t.Error("a new order is held after a stale held order was found in a restored store")
	}
	hs.pass(1, time.Millisecond)
	if sh := hs.steps[StepCRM]; sh.count() != 0 || !sh.until.IsZero() {
		t.Errorf("the restored order was not resumed: %d listed, until %v", sh.count(), sh.until)
	}
	if v := metricValue(m.heldUntil.WithLabelValues(StepCRM)); v != 0 {
		t.Errorf("orderflow_step_held_until_seconds{crm} = %v after the release, want 0", v)
	}

	// A new quota answer holds the step again, for its own reset.
	reset2 := reset.Add(time.Hour)
	if !hs.exhausted(StepCRM, 0, "pi_c", reset2, "zoho: HTTP 429: credits used up") {
		t.Error("a new quota answer after the release starts no hold")
	}
	if until, _, held := hs.gate(StepCRM, 0, "pi_d", &StepState{}); !held || !until.Equal(reset2) {
		t.Errorf("after a new quota answer: pi_d held %v until %v, want held until %v", held, until, reset2)
	}
}
