package processor

import (
	"context"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// gatewayTimeoutShipper books the shipment and then answers as a gateway
// that gave up waiting for the backend would: HTTP 504 (or another
// status) on its first call.
type gatewayTimeoutShipper struct {
	*findingShipper
	status int
	calls  atomic.Int32
}

func (s *gatewayTimeoutShipper) CreateShipment(ctx context.Context, o integrations.Order) (integrations.Shipment, error) {
	sh, err := s.findingShipper.CreateShipment(ctx, o)
	if s.calls.Add(1) == 1 && err == nil {
		return integrations.Shipment{}, &integrations.Error{Provider: "fake", Op: "book shipment", Status: s.status, Class: integrations.Transient, Msg: "gateway gave up"}
	}
	return sh, err
}

// A 500, 502 or 504 (the provider failing midway, a gateway that lost or
// gave up on its answer) may come after the provider acted: the intent
// stays, and the next attempt looks the booking up instead of booking
// again. A 503 says the provider took nothing: booked again without a
// look-up (here the fake did act, so twice).
func TestServerErrorAfterTheBookingIsLookedUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status   int
		lookedUp bool
		created  int
	}{{504, true, 1}, {502, true, 1}, {500, true, 1}, {503, false, 2}} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			t.Parallel()
			h := newLogicHarness(t, 1)
			f := newFakes()
			sh := &gatewayTimeoutShipper{findingShipper: &findingShipper{fakes: f}, status: tc.status}
			prov := f.providers()
			prov.Shipping = sh
			h.start(h.config(), prov)
			k := "pi_gw_" + strconv.Itoa(tc.status)
			h.send(paid(k))
			st := h.waitStates("completed", 30*time.Second, allStatus([]string{k}, StatusCompleted))[k]
			if n := f.createdCount(StepShipping, k); n != tc.created {
				t.Errorf("shipments created %d, want %d", n, tc.created)
			}
			if _, n := sh.firstLookup(); (n > 0) != tc.lookedUp {
				t.Errorf("%d look-ups, want looked up %v", n, tc.lookedUp)
			}
			if tc.lookedUp {
				if s, err := stepResult[integrations.Shipment](st, StepShipping); err != nil || s.ShipmentID != "s-"+k {
					t.Errorf("shipment in state %+v (%v), want the one found", s, err)
				}
				// Found without its label (it came with the lost answer):
				// someone is told to print it.
				want := "shipment found at the carrier after an interrupted booking, without its label: print the label of item T" + integrations.OrderNumber(k) + " from the carrier's portal"
				eventually(t, "the missing label's alert", 10*time.Second, func() bool { return slices.Contains(f.alertTexts(k), want) })
			}
		})
	}
}

// outageShipper is a PostNord behind a gateway that answers 502 while
// down: the first booking of one order is made before its 502; look-ups
// fail too.
type outageShipper struct {
	*findingShipper
	down   atomic.Bool
	booked string // the order booked behind its 502
	once   atomic.Bool
}

func (s *outageShipper) CreateShipment(ctx context.Context, o integrations.Order) (integrations.Shipment, error) {
	if s.down.Load() {
		if o.ID == s.booked && s.once.CompareAndSwap(false, true) {
			_, _ = s.findingShipper.CreateShipment(ctx, o)
		}
		return integrations.Shipment{}, &integrations.Error{Provider: "fake", Op: "book shipment", Status: 502, Class: integrations.Transient, Msg: "bad gateway"}
	}
	return s.findingShipper.CreateShipment(ctx, o)
}

func (s *outageShipper) FindShipment(ctx context.Context, o integrations.Order) (integrations.Shipment, bool, error) {
	if s.down.Load() {
		s.findingShipper.mu.Lock()
		s.findingShipper.lookups = append(s.findingShipper.lookups, time.Now())
		s.findingShipper.mu.Unlock()
		return integrations.Shipment{}, false, &integrations.Error{Provider: "fake", Op: "find shipment", Status: 502, Class: integrations.Transient, Msg: "bad gateway"}
	}
	return s.findingShipper.FindShipment(ctx, o)
}

// An outage answering 502 for longer than --hold-after, with the step's
// circuit open, holds none of the orders it left in doubt: their failing
// look-ups bring no hold nearer while the provider fails for everyone.
// Once it is back, the booking made behind a 502 is found, the others are
// booked once each, and nothing is dead-lettered.
func TestOutageOfBadGatewaysHoldsNoOrder(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 1)
	f := newFakes()
	sh := &outageShipper{findingShipper: &findingShipper{fakes: f}, booked: "pi_502_a"}
	sh.down.Store(true)
	prov := f.providers()
	prov.Shipping = sh
	cfg := h.config()
	r := h.start(cfg, prov)
	ids := []string{"pi_502_a", "pi_502_b", "pi_502_c", "pi_502_d", "pi_502_e"}
	for _, id := range ids {
		h.send(paid(id))
	}
	eventually(t, "the circuit open", 30*time.Second, func() bool { return r.p.breakers[StepShipping].current() != circuitClosed })
	first := time.Now()
	eventually(t, "look-ups failing past the hold", 30*time.Second, func() bool {
		sh.findingShipper.mu.Lock()
		defer sh.findingShipper.mu.Unlock()
		n := len(sh.findingShipper.lookups)
		return n > 0 && sh.findingShipper.lookups[n-1].Sub(first) > cfg.HoldAfter+time.Second
	})
	if dl := h.readAll(h.names.DLQ); len(dl) != 0 {
		t.Fatalf("%d dead letters during the outage, want none", len(dl))
	}
	sh.down.Store(false)
	h.waitStates("completed", 60*time.Second, allStatus(ids, StatusCompleted))
	for _, id := range ids {
		if n := f.createdCount(StepShipping, id); n != 1 {
			t.Errorf("%s: %d shipments, want 1", id, n)
		}
	}
	if dl := h.readAll(h.names.DLQ); len(dl) != 0 {
		t.Errorf("%d dead letters, want none", len(dl))
	}
}
