package processor

import (
	"context"
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

// A 502 or 504 (a gateway that lost or gave up on the provider's answer)
// may come after the provider acted: the intent stays, and the next
// attempt looks the booking up instead of booking again. A 500 or 503 is
// the provider's own answer that it did not: booked again without a
// look-up (here the fake did act, so twice).
func TestServerErrorAfterTheBookingIsLookedUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status   int
		lookedUp bool
		created  int
	}{{504, true, 1}, {502, true, 1}, {500, false, 2}, {503, false, 2}} {
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
			}
		})
	}
}
