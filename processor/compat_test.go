package processor

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/topics"
)

// An order state written by the previous version (sequential chain, intents
// without a lease) resumes correctly under the graph chain.
//
// testdata/state-v1-main-5b8e7a4.json was written by the processor of
// commit 5b8e7a4 (before steps were values and before leases): its
// harness ran the order pi_compat with the fakes of harness_test.go, held
// the shipping call until the processor was killed, and the last record of
// pi_compat on orders.state was saved as it is. details, crm and
// production_log are done; shipping has an intent without a result.
func TestResumeStateOfPreviousVersion(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/state-v1-main-5b8e7a4.json")
	if err != nil {
		t.Fatal(err)
	}
	old, err := DecodeState(b)
	if err != nil {
		t.Fatalf("decode the previous version's state: %v", err)
	}
	if old.Steps[StepShipping].Intent == nil || old.Steps[StepShipping].Lease != nil || !old.Steps[StepCRM].Done {
		t.Fatalf("test data is not an intent without a lease after crm: %+v", old.Steps)
	}
	h := newHarness(t, 1)
	if err := h.prod.ProduceSync(context.Background(), &kgo.Record{Topic: h.names.State, Partition: 0, Key: []byte("pi_compat"), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	f := newFakes()
	h.start(h.config(), f.providers())
	if old.TraceParent != "" || old.TraceID() != "" {
		t.Errorf("the previous version's state has a trace: %q", old.TraceParent)
	}
	ev := paid("pi_compat")
	ev.headers = map[string]string{topics.HeaderTraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	h.send(ev)
	st := h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_compat"}, StatusCompleted))["pi_compat"]
	for _, step := range []string{StepDetails, StepCRM, StepProductionLog} {
		if n := f.attemptCount(step, "pi_compat"); n != 0 {
			t.Errorf("%s called %d times, want 0: done by the previous version", step, n)
		}
	}
	for _, step := range []string{StepShipping, StepInvoice, StepEmail} {
		if n := f.createdCount(step, "pi_compat"); n != 1 {
			t.Errorf("%s created %d times, want 1", step, n)
		}
	}
	// The fakes cannot look a shipment up: the interrupted booking is made
	// again and flagged, as the previous version did.
	if !st.HasFlag(FlagPossibleDuplicatePrefix + StepShipping) {
		t.Errorf("flags %v, want %s", st.Flags, FlagPossibleDuplicatePrefix+StepShipping)
	}
	if r, err := stepResult[struct {
		DealID string `json:"deal_id"`
	}](st, StepCRM); err != nil || r.DealID != "d-pi_compat" {
		t.Errorf("crm result %+v (%v), want the previous version's deal d-pi_compat", r, err)
	}
	if st.TraceID() != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("trace id %q, want the one of the first record handled by this version", st.TraceID())
	}
	if st.Order == nil || st.Order.Number != "OF-COMPAT" || st.Order.AmountTotal != 12400 || len(st.Pending) != 0 || st.NextOffset != 1 {
		t.Errorf("order %+v pending %v next offset %d", st.Order, st.Pending, st.NextOffset)
	}
}
