package processor

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics"
)

// Request records on `orders` that come from orderflow itself, not from
// Stripe. They carry no customer data and run in order with the order's
// other records.
const (
	// EventEraseRequested asks the processor to erase an order's data
	// (`orderflow orders erase`): its state is replaced by an erasure
	// marker.
	EventEraseRequested = "orderflow.erase_requested"
	// EventRetentionExpired asks the processor to remove a finished
	// order's state that passed the --state-retention horizon (a
	// tombstone).
	EventRetentionExpired = "orderflow.retention_expired"
)

// EraseRequest returns the value of an erase request record for an order
// (key = the order id, on the partition of `orders` its state is on).
func EraseRequest(orderID string, at time.Time) ([]byte, error) {
	return internalRequest(EventEraseRequested, orderID, at)
}

func internalRequest(typ, orderID string, at time.Time) ([]byte, error) {
	ev, _ := json.Marshal(map[string]string{"type": typ, "order_id": orderID})
	return topics.Envelope{EventID: fmt.Sprintf("%s:%s:%d", typ, orderID, at.UnixNano()), EventType: typ,
		Key: orderID, ObjectID: orderID, Created: at.Unix(), ReceivedAt: at.UTC(), Event: ev}.Encode()
}

// erasure handles the records that concern erased orders and the
// erase and retention requests; ok is false when the record is none of
// those and the chain goes on as usual.
func (h *handling) erasure() (handled, ok bool) {
	st := h.st
	switch h.env.EventType {
	case EventEraseRequested:
		if st == nil {
			h.log().Info("erase requested for an order without a state; nothing to erase")
			return true, true
		}
		if st.Status == StatusErased {
			return true, true
		}
		now := time.Now().UTC()
		h.st = &State{Version: StateVersion, OrderID: h.key, Status: StatusErased, ErasedAt: &now,
			NextOffset: h.rec.Offset + 1, CreatedAt: st.CreatedAt}
		if err := h.persist(); err != nil {
			h.st = st
			h.log().Warn("record left unfinished", "err", err)
			return false, true
		}
		for _, step := range h.p.names {
			h.p.unpersisted.Delete(h.key + "/" + step)
		}
		h.p.m.erased.WithLabelValues("request").Inc()
		h.log().Info("order erased: its state is replaced by an erasure marker")
		return true, true
	case EventRetentionExpired:
		defer h.part.expiring.Delete(h.key)
		if st == nil || !finished(st.Status) || !st.UpdatedAt.Before(time.Now().Add(-h.p.cfg.StateRetention)) || h.p.cfg.StateRetention <= 0 {
			return true, true // changed meanwhile, or retention turned off: kept
		}
		r := &kgo.Record{Topic: h.p.cfg.Topics.State, Partition: h.part.num, Key: []byte(h.key)}
		out, err := h.p.produce(h.part, r, "order state tombstone", h.key)
		if err != nil {
			h.log().Warn("record left unfinished", "err", err)
			return false, true
		}
		h.part.setState(h.key, nil, nil, out.Offset)
		h.p.m.erased.WithLabelValues("retention").Inc()
		h.log().Info("finished order past the retention horizon removed", "updated_at", st.UpdatedAt)
		return true, true
	}
	if st != nil && st.Status == StatusErased {
		if h.rec.Offset >= st.NextOffset {
			h.p.alert(integrations.Alert{OrderID: h.key, Text: fmt.Sprintf("event %s (%s) for an erased order ignored", h.env.EventID, h.env.EventType)})
		}
		return true, true
	}
	return false, false
}
