package processor

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
)

// legacyState is an order state as the previous version wrote it (order
// model without "model", one basis-point rate per line): details and crm
// done, the production log next.
const legacyState = `{"v":1,"order_id":"pi_3Legacy0000000001","status":"in_progress",
 "order":{"id":"pi_3Legacy0000000001","payment_intent_id":"pi_3Legacy0000000001","checkout_session_id":"cs_test_3Legacy0000000001",
  "number":"OF-0000000001","currency":"eur","amount_total":10740,"amount_subtotal":8558,"amount_tax":2182,"amount_shipping":780,
  "items":[{"sku":"prod_socks","description":"Villasukat","quantity":4,"unit_amount":2490,"amount_total":9960,"amount_tax":2024,"tax_rate_bp":2550}],
  "customer":{"name":"Aino Mäkelä","email":"aino@example.fi"},
  "shipping":{"name":"Aino Mäkelä","line1":"Hämeenkatu 10","postal_code":"33100","city":"Tampere","country":"FI"},
  "locale":"fi","created_at":"2026-11-27T10:00:00Z"},
 "steps":{"details":{"done":true,"done_at":"2026-11-27T10:00:01Z"},
          "crm":{"done":true,"done_at":"2026-11-27T10:00:02Z","result":{"contact_id":"c1","deal_id":"d1"}}},
 "applied_events":["evt_old"],"next_offset":0,
 "created_at":"2026-11-27T10:00:00Z","updated_at":"2026-11-27T10:00:02Z"}`

// A state in the previous version's format is read, with its details
// step to be done again; steps done stay done; a finished order is left
// as it is.
func TestDecodeLegacyState(t *testing.T) {
	st, err := DecodeState([]byte(legacyState))
	if err != nil {
		t.Fatal(err)
	}
	if st.Order == nil || st.Order.Model != 0 || st.Order.AmountTotal != 10740 || st.Order.Items[0].AmountTax != 2024 {
		t.Fatalf("order = %+v", st.Order)
	}
	if st.Steps[StepDetails].Done || st.Steps[StepDetails].DoneAt != nil || !st.Steps[StepCRM].Done {
		t.Errorf("steps = details %+v crm %+v; want details to be read again, crm kept", st.Steps[StepDetails], st.Steps[StepCRM])
	}
	done := []byte(`{"v":1,"order_id":"pi_x","status":"completed","order":{"id":"pi_x","items":[]},"steps":{"details":{"done":true}}}`)
	if st, err := DecodeState(done); err != nil || !st.Steps[StepDetails].Done {
		t.Errorf("completed legacy order changed: %+v %v", st, err)
	}
	cur := []byte(`{"v":1,"order_id":"pi_y","status":"in_progress","order":{"model":2,"id":"pi_y"},"steps":{"details":{"done":true}}}`)
	if st, err := DecodeState(cur); err != nil || !st.Steps[StepDetails].Done {
		t.Errorf("current order re-read: %+v %v", st, err)
	}
}

// An order left in progress by the previous version resumes: its details
// are read again from the provider (the new model), the CRM step it did is
// not repeated, and the rest of the chain runs on the new order.
func TestLegacyStateResumes(t *testing.T) {
	h := newLogicHarness(t, 1)
	const key = "pi_3Legacy0000000001"
	if err := h.prod.ProduceSync(context.Background(), &kgo.Record{Topic: h.names.State, Partition: 0, Key: []byte(key), Value: []byte(legacyState)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	f := newFakes()
	h.start(h.config(), f.providers())
	h.send(paid(key))
	st := h.waitStates("legacy order completed", 60*time.Second, allStatus([]string{key}, StatusCompleted))[key]
	if st.Order == nil || st.Order.Model != integrations.OrderModel || st.Order.AmountTotal != 12400 {
		t.Errorf("order after resume = %+v, want the one read again", st.Order)
	}
	for step, want := range map[string]int{StepDetails: 1, StepCRM: 0, StepProductionLog: 1, StepShipping: 1, StepInvoice: 1, StepEmail: 1} {
		if got := f.attemptCount(step, key); got != want {
			t.Errorf("%s called %d times, want %d", step, got, want)
		}
	}
	if r, _ := stepResult[integrations.CRMResult](st, StepCRM); r.DealID != "d1" {
		t.Errorf("crm result = %+v, want the earlier one kept", r)
	}
}

// progressLog is a production log that records the progress reports.
type progressLog struct {
	*fakes
	mu      sync.Mutex
	reports []integrations.Progress
}

func (p *progressLog) ReportProgress(pr integrations.Progress) {
	p.mu.Lock()
	p.reports = append(p.reports, pr)
	p.mu.Unlock()
}

func (p *progressLog) of(key string) []integrations.Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []integrations.Progress
	for _, r := range p.reports {
		if r.OrderID == key {
			out = append(out, r)
		}
	}
	return out
}

// After every state write the production log hears where the order
// stands: each completed step, then the completion; for a dead-lettered
// order the step and the reason.
func TestProgressReports(t *testing.T) {
	h := newLogicHarness(t, 1)
	f := newFakes()
	f.setFail(func(step, order string, _ int) error {
		if order == "pi_3ProgressFail01" && step == StepShipping {
			return permanent(step)
		}
		return nil
	})
	pl := &progressLog{fakes: f}
	prov := f.providers()
	prov.ProductionLog = pl
	h.start(h.config(), prov)
	h.send(paid("pi_3ProgressOk0001"), paid("pi_3ProgressFail01"))
	h.waitStates("both orders finished", 60*time.Second, func(st map[string]*State) bool {
		return st["pi_3ProgressOk0001"] != nil && st["pi_3ProgressOk0001"].Status == StatusCompleted &&
			st["pi_3ProgressFail01"] != nil && st["pi_3ProgressFail01"].Status == StatusDeadLettered
	})
	eventually(t, "the dead letter's report", 10*time.Second, func() bool {
		r := pl.of("pi_3ProgressFail01")
		return len(r) > 0 && r[len(r)-1].Status == string(StatusDeadLettered)
	})

	ok := pl.of("pi_3ProgressOk0001")
	var seen [][]string
	for i, r := range ok {
		if i > 0 && len(r.CompletedSteps) < len(ok[i-1].CompletedSteps) {
			t.Errorf("report %d went back: %v after %v", i, r.CompletedSteps, ok[i-1].CompletedSteps)
		}
		if r.Order == nil && slices.Contains(r.CompletedSteps, StepDetails) {
			t.Errorf("report %d has steps but no order", i)
		}
		if len(seen) == 0 || len(seen[len(seen)-1]) != len(r.CompletedSteps) {
			seen = append(seen, r.CompletedSteps)
		}
	}
	last := ok[len(ok)-1]
	if last.Status != string(StatusCompleted) || !slices.Equal(last.CompletedSteps, Chain) {
		t.Errorf("last report = %+v", last)
	}
	// Every step's completion was reported on its own (1 … 6 steps).
	if len(seen) != len(Chain) {
		t.Errorf("distinct progress = %v, want one per step", seen)
	}

	fail := pl.of("pi_3ProgressFail01")
	dl := fail[len(fail)-1]
	if dl.FailedStep != StepShipping || dl.Failure != "fake: shipping: HTTP 422 invalid postcode" ||
		!slices.Equal(dl.CompletedSteps, []string{StepDetails, StepCRM, StepProductionLog}) {
		t.Errorf("dead-letter report = %+v", dl)
	}
}
