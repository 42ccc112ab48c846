package processor

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// fakeClock is a settable clock for the membership.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// A confirmation is trusted for half the session timeout from when its
// Heartbeat was sent (the writes' deadline) and renewed once a quarter
// session timeout old.
func TestMembershipTrustsAConfirmationForHalfASession(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clk := &fakeClock{t: t0}
	var asked atomic.Int32
	m := newMembership(func(context.Context) (bool, error) { asked.Add(1); return true, nil }, 6*time.Second)
	m.now = clk.now
	stop := make(chan struct{})
	if !m.deadline().IsZero() {
		t.Fatal("a deadline before any confirmation")
	}
	if !m.await(stop, time.Millisecond) || asked.Load() != 1 {
		t.Fatalf("await: %d heartbeats, want 1", asked.Load())
	}
	if want := t0.Add(3 * time.Second); !m.deadline().Equal(want) {
		t.Fatalf("deadline %s, want %s (sent + half the session timeout)", m.deadline(), want)
	}
	clk.add(1500*time.Millisecond - time.Nanosecond)
	if !m.await(stop, time.Millisecond) || asked.Load() != 1 {
		t.Fatalf("within 1.5s: %d heartbeats, want 1 (the confirmation reused)", asked.Load())
	}
	clk.add(time.Nanosecond)
	if !m.await(stop, time.Millisecond) || asked.Load() != 2 {
		t.Fatalf("after 1.5s: %d heartbeats, want 2", asked.Load())
	}
	if want := t0.Add(4500 * time.Millisecond); !m.deadline().Equal(want) {
		t.Fatalf("renewed deadline %s, want %s", m.deadline(), want)
	}
	m.lose()
	if !m.deadline().IsZero() {
		t.Fatal("a deadline after the partitions were lost")
	}
}

// A member the coordinator no longer knows is never confirmed: await keeps
// asking until its stop channel closes, then refuses.
func TestMembershipRefusedUntilStopped(t *testing.T) {
	var asked atomic.Int32
	m := newMembership(func(context.Context) (bool, error) { asked.Add(1); return false, nil }, 6*time.Second)
	stop := make(chan struct{})
	res := make(chan bool, 1)
	go func() { res <- m.await(stop, time.Millisecond) }()
	eventually(t, "three refused heartbeats", 5*time.Second, func() bool { return asked.Load() >= 3 })
	select {
	case ok := <-res:
		t.Fatalf("await returned %v while the membership was refused", ok)
	default:
	}
	close(stop)
	select {
	case ok := <-res:
		if ok {
			t.Fatal("await confirmed a refused membership")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("await did not return after stop")
	}
}

// Concurrent writers wait for one Heartbeat, not one each.
func TestMembershipOneHeartbeatAtATime(t *testing.T) {
	var asked atomic.Int32
	release := make(chan struct{})
	m := newMembership(func(context.Context) (bool, error) { asked.Add(1); <-release; return true, nil }, 6*time.Second)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var confirmed atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if m.await(stop, time.Millisecond) {
				confirmed.Add(1)
			}
		}()
	}
	eventually(t, "the heartbeat sent", 5*time.Second, func() bool { return asked.Load() == 1 })
	close(release)
	wg.Wait()
	if asked.Load() != 1 || confirmed.Load() != 8 {
		t.Fatalf("%d heartbeats, %d confirmed; want 1 and 8", asked.Load(), confirmed.Load())
	}
}

// findingShipper is a Shipping fake that can look its bookings up. A
// booking shows only after `hidden` look-ups (a provider's visibility
// delay); err, when set, fails every look-up.
type findingShipper struct {
	*fakes
	hidden int
	err    error

	mu        sync.Mutex
	lookups   []time.Time
	deadlines []time.Time // context deadlines of the booking calls
}

func (s *findingShipper) CreateShipment(ctx context.Context, o integrations.Order) (integrations.Shipment, error) {
	if d, ok := ctx.Deadline(); ok {
		s.mu.Lock()
		s.deadlines = append(s.deadlines, d)
		s.mu.Unlock()
	}
	return s.fakes.CreateShipment(ctx, o)
}

func (s *findingShipper) FindShipment(_ context.Context, o integrations.Order) (integrations.Shipment, bool, error) {
	s.mu.Lock()
	s.lookups = append(s.lookups, time.Now())
	n := len(s.lookups)
	s.mu.Unlock()
	if s.err != nil {
		return integrations.Shipment{}, false, s.err
	}
	if s.createdCount(StepShipping, o.ID) == 0 || n <= s.hidden {
		return integrations.Shipment{}, false, nil
	}
	return integrations.Shipment{ShipmentID: "s-" + o.ID, TrackingNumber: "T" + o.Number}, true, nil
}

func (s *findingShipper) firstLookup() (time.Time, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lookups) == 0 {
		return time.Time{}, 0
	}
	return s.lookups[0], len(s.lookups)
}

// shippingLease returns the lease of the order's shipping intent as the
// killed processor left it.
func shippingLease(t *testing.T, h *harness, order string) time.Time {
	t.Helper()
	st := h.states()[order]
	if st == nil || st.Step(StepShipping).Intent == nil || st.Step(StepShipping).Lease == nil {
		t.Fatalf("state of %s after the kill has no shipping intent with a lease: %+v", order, st)
	}
	return *st.Step(StepShipping).Lease
}

// A booking interrupted after PostNord made it is found by reference (after
// the look-up showed it not yet), not booked again, and looked up only
// after its lease ended plus the drift bound.
func TestShippingIntentIsReconciledByLookup(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	f := newFakes()
	sf := &findingShipper{fakes: f, hidden: 2}
	prov := f.providers()
	prov.Shipping = sf
	cfg := h.config()
	var r1 *running
	var once sync.Once
	f.afterCreate = func(step, order string) {
		if step == StepShipping {
			once.Do(func() { r1.p.kill() })
		}
	}
	r1 = h.start(cfg, prov)
	h.send(paid("pi_ship"))
	eventually(t, "shipment booked", 30*time.Second, func() bool { return f.createdCount(StepShipping, "pi_ship") == 1 })
	r1.stop(t)
	lease := shippingLease(t, h, "pi_ship")
	f.mu.Lock()
	f.afterCreate = nil
	f.mu.Unlock()

	h.start(cfg, prov)
	st := h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_ship"}, StatusCompleted))["pi_ship"]
	if n := f.attemptCount(StepShipping, "pi_ship"); n != 1 {
		t.Errorf("shipping booked %d times, want 1", n)
	}
	first, n := sf.firstLookup()
	if n != 3 {
		t.Errorf("%d look-ups, want 3 (two not yet visible, then found)", n)
	}
	if earliest := lease.Add(cfg.MaxClockDrift); first.Before(earliest) {
		t.Errorf("first look-up at %s, before the lease end plus drift %s", first.Format(time.RFC3339Nano), earliest.Format(time.RFC3339Nano))
	}
	if s, err := stepResult[integrations.Shipment](st, StepShipping); err != nil || s.ShipmentID != "s-pi_ship" {
		t.Errorf("shipment in state %+v (%v), want the one found", s, err)
	}
	if len(st.Flags) != 0 {
		t.Errorf("flags %v, want none", st.Flags)
	}
	if n := f.createdCount(StepEmail, "pi_ship"); n != 1 {
		t.Errorf("email sent %d times, want 1", n)
	}
}

// A booking interrupted before it reached PostNord is booked again, once,
// only after a look-up made LookupDelay after the lease still finds none.
func TestShippingNotFoundIsBookedAfterTheLookupDelay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	f := newFakes()
	sf := &findingShipper{fakes: f}
	prov := f.providers()
	prov.Shipping = sf
	cfg := h.config()
	started := make(chan struct{})
	var once sync.Once
	f.latency = func(step, order string) time.Duration {
		if step == StepShipping && f.attemptCount(StepShipping, order) == 1 {
			once.Do(func() { close(started) })
			return time.Minute // cancelled by the kill: nothing booked
		}
		return 0
	}
	r1 := h.start(cfg, prov)
	h.send(paid("pi_lost"))
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("shipping never started")
	}
	r1.kill(t)
	lease := shippingLease(t, h, "pi_lost")

	h.start(cfg, prov)
	st := h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_lost"}, StatusCompleted))["pi_lost"]
	if n := f.createdCount(StepShipping, "pi_lost"); n != 1 {
		t.Errorf("%d shipments booked, want 1", n)
	}
	var second time.Time
	for _, c := range f.callsOf("pi_lost") {
		if c.step == StepShipping && c.err == nil {
			second = c.start
		}
	}
	if earliest := lease.Add(cfg.MaxClockDrift + cfg.LookupDelay); second.Before(earliest) {
		t.Errorf("booked again at %s, before lease + drift + look-up delay %s", second.Format(time.RFC3339Nano), earliest.Format(time.RFC3339Nano))
	}
	if len(st.Flags) != 0 {
		t.Errorf("flags %v, want none: the look-up made it safe", st.Flags)
	}
}

// When the look-up keeps failing, the order is held: dead-lettered with
// the reason and an alert after HoldAfter, never booked again.
func TestShippingHeldWhenTheLookupCannotAnswer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	f := newFakes()
	sf := &findingShipper{fakes: f, err: transient(StepShipping)}
	prov := f.providers()
	prov.Shipping = sf
	cfg := h.config()
	var r1 *running
	var once sync.Once
	f.afterCreate = func(step, order string) {
		if step == StepShipping {
			once.Do(func() { r1.p.kill() })
		}
	}
	r1 = h.start(cfg, prov)
	h.send(paid("pi_held"))
	eventually(t, "shipment booked", 30*time.Second, func() bool { return f.createdCount(StepShipping, "pi_held") == 1 })
	r1.stop(t)
	lease := shippingLease(t, h, "pi_held")
	f.mu.Lock()
	f.afterCreate = nil
	f.mu.Unlock()
	alertsBefore := f.alertCount()

	h.start(cfg, prov)
	st := h.waitStates("dead-lettered", 30*time.Second, allStatus([]string{"pi_held"}, StatusDeadLettered))["pi_held"]
	if n := f.attemptCount(StepShipping, "pi_held"); n != 1 {
		t.Errorf("shipping booked %d times, want 1", n)
	}
	if st.DeadLetter == nil || st.DeadLetter.Step != StepShipping || !strings.HasPrefix(st.LastError, "held:") {
		t.Errorf("dead letter %+v, last error %q; want shipping, held", st.DeadLetter, st.LastError)
	}
	if at := st.DeadLetter.At; at.Before(lease.Add(cfg.MaxClockDrift + cfg.HoldAfter)) {
		t.Errorf("held at %s, before lease + drift + hold-after", at)
	}
	if _, n := sf.firstLookup(); n < 2 {
		t.Errorf("%d look-ups, want several before holding", n)
	}
	eventually(t, "an alert", 5*time.Second, func() bool { return f.alertCount() > alertsBefore })
}

// A non-idempotent call's context deadline is the lease its intent
// recorded before the call.
func TestCallDeadlineIsTheLease(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	f := newFakes()
	sf := &findingShipper{fakes: f}
	prov := f.providers()
	prov.Shipping = sf
	cfg := h.config()
	h.start(cfg, prov)
	h.send(paid("pi_lease"))
	h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_lease"}, StatusCompleted))
	var leases []time.Time
	for _, r := range h.readAll(h.names.State) {
		st, err := DecodeState(r.Value)
		if err != nil || st.OrderID != "pi_lease" {
			continue
		}
		// Writes of the steps that run beside shipping carry its intent
		// too: one lease, however many records show it.
		if ss := st.Steps[StepShipping]; ss != nil && ss.Intent != nil && ss.Lease != nil &&
			!slices.ContainsFunc(leases, ss.Lease.Equal) {
			leases = append(leases, *ss.Lease)
		}
	}
	sf.mu.Lock()
	deadlines := sf.deadlines
	sf.mu.Unlock()
	if len(leases) != 1 || len(deadlines) != 1 {
		t.Fatalf("%d distinct leases, %d booking calls; want 1 and 1", len(leases), len(deadlines))
	}
	if !deadlines[0].Equal(leases[0]) {
		t.Errorf("booking deadline %s, lease %s: want equal", deadlines[0].Format(time.RFC3339Nano), leases[0].Format(time.RFC3339Nano))
	}
	if d := leases[0].Sub(time.Now()); d > cfg.StepTimeout {
		t.Errorf("lease %s ahead, more than the step timeout", d)
	}
}
