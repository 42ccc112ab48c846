package chain

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/harness"
	"github.com/orderflow/orderflow/test/testenv"
)

// alerts records the processor's alerts.
type alerts struct {
	mu  sync.Mutex
	all []integrations.Alert
}

func (a *alerts) Alert(_ context.Context, al integrations.Alert) error {
	a.mu.Lock()
	a.all = append(a.all, al)
	a.mu.Unlock()
	return nil
}

func (a *alerts) count(substr string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, al := range a.all {
		if strings.Contains(al.Text, substr) {
			n++
		}
	}
	return n
}

// gauge reads one labelled value of a registry's metric; -1 when absent.
func gauge(t *testing.T, reg *prometheus.Registry, name, step string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "step" && l.GetValue() == step {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// Zoho CRM's daily API credits run out mid-run (the simulator counting
// them as Zoho does): labels, invoices and emails go on for every order,
// the CRM step is held (no attempt counted, no dead letter, exactly one
// alert, the records finished), and once the simulator starts a new day
// every deal is created exactly once.
func TestZohoCreditsExhaustedHoldOnlyTheCRM(t *testing.T) {
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers, 3)
	seeds := strings.Split(brokers, ",")
	// 13 credits: the currencies read and six orders' contact and deal.
	s, err := sim.New(sim.Config{NetvisorCustomerKey: nvCustomerKey, NetvisorPartnerKey: nvPartnerKey,
		EnforceLimits: true, Limits: sim.Limits{ZohoDailyCredits: 13, ZohoConcurrency: -1}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); _ = s.Close() })

	log := slog.New(slog.DiscardHandler)
	if os.Getenv("ORDERFLOW_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := processor.DefaultConfig(names)
	cfg.Group = names.Prefix + "processor"
	cfg.CommitInterval = 100 * time.Millisecond
	cfg.Retry = processor.RetryPolicy{BaseDelay: 50 * time.Millisecond, MaxDelay: 500 * time.Millisecond, MaxAttempts: 3}
	cfg.Breaker = processor.BreakerConfig{FailureThreshold: 3, MinOrders: 2, Window: 30 * time.Second, Cooldown: time.Second}
	// Probes while the credits are out are refused and must raise no
	// further alert; the one after the new day releases the others.
	cfg.QuotaProbeInterval = 300 * time.Millisecond
	prov := chainProviders(t, srv.URL)
	al := &alerts{}
	prov.Alerter = al
	reg := prometheus.NewRegistry()
	harness.RunProcessor(t, cfg, prov, seeds, log, reg)

	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(names.Orders))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	const n = 20
	var keys []string
	for i := range n {
		k := fmt.Sprintf("pi_credits%04d", i)
		keys = append(keys, k)
		sendPaid(t, prod, k)
	}

	w := watchStates(t, seeds, names.State)
	states := w.states
	wait := func(what string, until time.Time, cond func(*processor.State) bool) {
		t.Helper()
		w.wait(keys, what, until, cond)
	}
	dlqRecords := func() int64 {
		adm := kadm.NewClient(prod)
		ends, err := adm.ListEndOffsets(context.Background(), names.DLQ)
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
		return total
	}

	wait("every order shipped, invoiced and emailed, its record finished, crm done or held", time.Now().Add(time.Minute), func(st *processor.State) bool {
		for _, step := range []string{processor.StepShipping, processor.StepInvoice, processor.StepEmail} {
			if ss := st.Steps[step]; ss == nil || !ss.Done {
				return false
			}
		}
		crm := st.Steps[processor.StepCRM]
		return st.NextOffset > 0 && crm != nil && (crm.Done || crm.HeldUntil != nil)
	})
	held := 0
	for _, k := range keys {
		st := states[k]
		crm := st.Steps[processor.StepCRM]
		if crm.Done {
			continue
		}
		held++
		if crm.Attempts != 0 || st.Status != processor.StatusInProgress || len(st.Pending) != 1 || st.Pending[0] != processor.StepCRM {
			t.Errorf("%s held: status %s pending %v crm %+v, want in progress, only crm pending, no attempt", k, st.Status, st.Pending, crm)
		}
		if !strings.Contains(crm.HeldReason, "TOO_MANY_REQUESTS") || time.Until(*crm.HeldUntil) < 23*time.Hour {
			t.Errorf("%s held until %v for %q, want about a day for TOO_MANY_REQUESTS", k, crm.HeldUntil, crm.HeldReason)
		}
	}
	if held < n-6 {
		t.Errorf("%d orders held, want at least %d (13 credits serve at most six orders)", held, n-6)
	}
	if st := s.Stats().Steps[sim.StepCRM]; st.RejectedQuota == 0 {
		t.Errorf("crm stats %+v: no call refused for the credits", st)
	}
	if v := gauge(t, reg, "orderflow_steps_held", processor.StepCRM); v != float64(held) {
		t.Errorf("orderflow_steps_held{crm} = %v, want %d", v, held)
	}
	if v := gauge(t, reg, "orderflow_step_held_until_seconds", processor.StepCRM); v < float64(time.Now().Add(23*time.Hour).Unix()) {
		t.Errorf("orderflow_step_held_until_seconds{crm} = %v, want about a day ahead", v)
	}
	if d := dlqRecords(); d != 0 {
		t.Errorf("%d dead letters while the credits are out, want 0", d)
	}
	// Probes come every 300 ms and are refused: wait for two of them to be
	// refused before counting the alerts.
	refused := s.Stats().Steps[sim.StepCRM].RejectedQuota
	deadline := time.Now().Add(30 * time.Second)
	for s.Stats().Steps[sim.StepCRM].RejectedQuota < refused+2 {
		if time.Now().After(deadline) {
			t.Fatal("no probe refused within 30 s")
		}
		w.poll(100 * time.Millisecond)
	}
	if a := al.count("refused for its quota"); a != 1 {
		t.Errorf("%d quota alerts, want exactly 1 (all: %v)", a, al.all)
	}

	// A new day: the next probe succeeds and every held order resumes.
	if err := s.ResetZohoCredits(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetZohoDailyCredits(100000); err != nil {
		t.Fatal(err)
	}
	wait("every order completed after the new day", time.Now().Add(time.Minute), func(st *processor.State) bool {
		return st.Status == processor.StatusCompleted
	})
	deals := map[string]bool{}
	for _, k := range keys {
		ss := states[k].Steps[processor.StepCRM]
		var r integrations.CRMResult
		if ss == nil || json.Unmarshal(ss.Result, &r) != nil || r.DealID == "" {
			t.Errorf("%s: no deal recorded", k)
			continue
		}
		deals[r.DealID] = true
		if ss.Attempts != 0 || ss.HeldUntil != nil {
			t.Errorf("%s crm after the release: %+v, want no attempt and no hold", k, ss)
		}
	}
	if len(deals) != n {
		t.Errorf("%d distinct deals, want %d", len(deals), n)
	}
	stats := s.Stats().Steps
	if st := stats[sim.StepCRM]; st.DuplicateCreates != 0 {
		t.Errorf("crm: %+v, want no duplicate", st)
	}
	for _, step := range []string{sim.StepShipping, sim.StepInvoice, sim.StepEmail} {
		if st := stats[step]; st.Created != n || st.DuplicateCreates != 0 {
			t.Errorf("%s: %+v, want %d created once each", step, st, n)
		}
	}
	if d := dlqRecords(); d != 0 {
		t.Errorf("%d dead letters, want 0", d)
	}
	if a := al.count("refused for its quota"); a != 1 {
		t.Errorf("%d quota alerts, want exactly 1", a)
	}
	if v := gauge(t, reg, "orderflow_steps_held", processor.StepCRM); v != 0 {
		t.Errorf("orderflow_steps_held{crm} = %v after the release, want 0", v)
	}
}
