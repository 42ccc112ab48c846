package processor

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/topics"
)

func (h *harness) eraseRequest(partition int32, order string) {
	h.t.Helper()
	b, err := EraseRequest(order, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	r := &kgo.Record{Topic: h.names.Orders, Partition: partition, Key: []byte(order), Value: b,
		Headers: []kgo.RecordHeader{{Key: topics.HeaderEventType, Value: []byte(EventEraseRequested)}}}
	if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
}

// An erase requested while the order is in flight runs after the record in
// flight: the order's state is then an erasure marker without customer
// data, and a later event of the order is ignored with an alert.
func TestEraseWhileInFlight(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	f := newFakes()
	started := make(chan struct{})
	var once sync.Once
	f.latency = func(step, order string) time.Duration {
		if step == StepShipping {
			once.Do(func() { close(started) })
			return time.Second
		}
		return 0
	}
	h.start(h.config(), f.providers())
	h.sendTo(0, paid("pi_erase"))
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("shipping never started")
	}
	h.eraseRequest(0, "pi_erase")
	st := h.waitStates("erased", 30*time.Second, allStatus([]string{"pi_erase"}, StatusErased))["pi_erase"]
	if st.Order != nil || len(st.Steps) != 0 || st.ErasedAt == nil || len(st.AppliedEvents) != 0 {
		t.Errorf("erasure marker holds more than the id and the time: %+v", st)
	}
	// The chain in flight finished before the erase; nothing ran twice.
	if n := f.createdCount(StepEmail, "pi_erase"); n != 1 {
		t.Errorf("emails = %d, want 1 (the record in flight finishes first)", n)
	}

	alerts := f.alertCount()
	h.sendTo(0, event{key: "pi_erase", typ: EventChargeRefunded, id: "evt_refund_erased", object: "ch_erased"}, paid("pi_erase"))
	eventually(t, "alert for the erased order", 30*time.Second, func() bool { return f.alertCount() >= alerts+2 })
	f.mu.Lock()
	last := f.alerts[len(f.alerts)-1]
	f.mu.Unlock()
	if last.OrderID != "pi_erase" || !strings.Contains(last.Text, "erased order ignored") {
		t.Errorf("alert = %+v", last)
	}
	if n := f.attemptCount(StepDetails, "pi_erase"); n != 1 {
		t.Errorf("details of the erased order ran %d times, want 1", n)
	}
	if st := h.states()["pi_erase"]; st.Status != StatusErased {
		t.Errorf("status after later events = %s, want erased", st.Status)
	}
}

// With --state-retention, a finished order not updated within the horizon
// is removed with a tombstone; an order in progress is kept.
func TestStateRetention(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	f := newFakes()
	f.setFail(func(step, order string, _ int) error {
		if order == "pi_keep" && step == StepCRM {
			return permanent(step)
		}
		return nil
	})
	cfg := h.config()
	cfg.StateRetention = 2 * time.Second
	r := h.start(cfg, f.providers())
	h.send(paid("pi_expire"), paid("pi_keep"))
	h.waitStates("orders handled", 30*time.Second, func(s map[string]*State) bool {
		return s["pi_expire"] != nil && s["pi_expire"].Status == StatusCompleted && s["pi_keep"] != nil && s["pi_keep"].Status == StatusDeadLettered
	})
	eventually(t, "tombstone", 30*time.Second, func() bool {
		var last *kgo.Record
		for _, rec := range h.readAll(h.names.State) {
			if string(rec.Key) == "pi_expire" {
				last = rec
			}
		}
		return last != nil && last.Value == nil
	})
	if n := metricValue(r.p.m.erased.WithLabelValues("retention")); n != 1 {
		t.Errorf("orders removed by retention = %v, want 1", n)
	}
	if st := h.states()["pi_keep"]; st == nil || st.Status != StatusDeadLettered {
		t.Errorf("dead-lettered order = %+v, want it kept", st)
	}
}
