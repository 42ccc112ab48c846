package chain

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
)

// sendPaid produces a payment_intent.succeeded envelope for the order key k.
func sendPaid(t *testing.T, prod *kgo.Client, k string) {
	t.Helper()
	id := "evt_" + k
	raw, _ := json.Marshal(map[string]any{"id": id, "type": processor.EventPaymentSucceeded, "data": map[string]any{"object": map[string]any{"id": k}}})
	b, err := topics.Envelope{EventID: id, EventType: processor.EventPaymentSucceeded, Key: k, ObjectID: k,
		Created: time.Now().Unix(), ReceivedAt: time.Now().UTC(), Event: raw}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(context.Background(), &kgo.Record{Key: []byte(k), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// stateWatcher follows the state topic from its start and keeps the
// latest state of every order.
type stateWatcher struct {
	t      *testing.T
	cl     *kgo.Client
	states map[string]*processor.State
}

func watchStates(t *testing.T, seeds []string, stateTopic string) *stateWatcher {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(stateTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &stateWatcher{t: t, cl: cl, states: map[string]*processor.State{}}
}

// wait reads states until every one of keys has a state meeting cond, and
// fails the test when that has not happened by until.
func (w *stateWatcher) wait(keys []string, what string, until time.Time, cond func(*processor.State) bool) {
	w.t.Helper()
	for {
		ok := len(w.states) == len(keys)
		for _, k := range keys {
			if st := w.states[k]; st == nil || !cond(st) {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(until) {
			w.t.Fatalf("%s: not reached by %s", what, until.Format(time.TimeOnly))
		}
		w.poll(200 * time.Millisecond)
	}
}

// poll reads the states that arrive within d.
func (w *stateWatcher) poll(d time.Duration) {
	pctx, pcancel := context.WithTimeout(context.Background(), d)
	fs := w.cl.PollFetches(pctx)
	pcancel()
	fs.EachRecord(func(r *kgo.Record) {
		if st, err := processor.DecodeState(r.Value); err == nil {
			w.states[string(r.Key)] = st
		}
	})
}
