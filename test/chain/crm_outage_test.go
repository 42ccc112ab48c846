// Package chain tests the step chain end to end: real Kafka, the provider
// clients, the provider simulator.
package chain

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/harness"
	"github.com/orderflow/orderflow/test/testenv"
)

const (
	nvCustomerKey = "customer-key-outage"
	nvPartnerKey  = "partner-key-outage"
)

// chainProviders are the real clients against the simulator, without the
// production log: the test watches the customer path and the CRM.
func chainProviders(t *testing.T, base string) processor.Providers {
	p := harness.Providers(t, base, nvCustomerKey, nvPartnerKey)
	p.ProductionLog = nil
	return p
}

// Zoho down for a minute: labels, invoices and emails keep flowing, every
// order waits only for its deal (pending crm); Zoho back, every deal is
// created once and every order completes.
func TestCRMOutageDoesNotHoldCustomers(t *testing.T) {
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers, 3)
	seeds := strings.Split(brokers, ",")
	s, err := sim.New(sim.Config{NetvisorCustomerKey: nvCustomerKey, NetvisorPartnerKey: nvPartnerKey})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); _ = s.Close() })
	if err := s.SetFault(sim.Fault{Step: sim.StepCRM, Mode: sim.ModeUnavailable, Rate: 1}); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	const outage = time.Minute

	log := slog.New(slog.DiscardHandler)
	if os.Getenv("ORDERFLOW_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := processor.DefaultConfig(names)
	cfg.Group = names.Prefix + "processor"
	cfg.CommitInterval = 100 * time.Millisecond
	cfg.Retry = processor.RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second, MaxAttempts: 5}
	cfg.Breaker = processor.BreakerConfig{FailureThreshold: 3, MinOrders: 2, Window: 30 * time.Second, Cooldown: 2 * time.Second}
	harness.RunProcessor(t, cfg, chainProviders(t, srv.URL), seeds, log, prometheus.NewRegistry())

	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(names.Orders))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	const n = 20
	var keys []string
	send := func(from, to int) {
		for i := from; i < to; i++ {
			k := fmt.Sprintf("pi_outage%04d", i)
			keys = append(keys, k)
			sendPaid(t, prod, k)
		}
	}

	w := watchStates(t, seeds, names.State)
	states := w.states
	wait := func(what string, until time.Time, cond func(*processor.State) bool) {
		t.Helper()
		w.wait(keys, what, until, cond)
	}
	customerDone := func(st *processor.State) bool {
		for _, step := range []string{processor.StepShipping, processor.StepInvoice, processor.StepEmail} {
			if ss := st.Steps[step]; ss == nil || !ss.Done {
				return false
			}
		}
		return true
	}

	// Half the orders at the start of the outage, half in its middle: both
	// get their labels, invoices and emails while Zoho is still down.
	send(0, n/2)
	wait("first orders shipped, invoiced and emailed during the outage", down.Add(outage/2), customerDone)
	send(n/2, n)
	wait("every order shipped, invoiced and emailed during the outage", down.Add(outage-5*time.Second), customerDone)
	for _, k := range keys {
		st := states[k]
		if st.Status != processor.StatusInProgress || len(st.Pending) != 1 || st.Pending[0] != processor.StepCRM {
			t.Errorf("%s during the outage: status %s pending %v, want in_progress waiting for crm", k, st.Status, st.Pending)
		}
	}
	stats := s.Stats().Steps
	if st := stats[sim.StepShipping]; st.Created != n || st.DuplicateCreates != 0 {
		t.Errorf("shipping during the outage: %+v, want %d created", st, n)
	}
	if st := stats[sim.StepEmail]; st.Created != n || st.DuplicateCreates != 0 {
		t.Errorf("email during the outage: %+v, want %d sent", st, n)
	}
	if st := stats[sim.StepCRM]; st.Created != 0 {
		t.Errorf("crm during the outage: %+v, want nothing created", st)
	}

	time.Sleep(time.Until(down.Add(outage))) // the outage lasts its minute
	s.ClearFaults(sim.StepCRM)
	wait("every order completed after Zoho is back", time.Now().Add(time.Minute), func(st *processor.State) bool {
		return st.Status == processor.StatusCompleted
	})
	deals := map[string]bool{}
	for _, k := range keys {
		var r integrations.CRMResult
		if ss := states[k].Steps[processor.StepCRM]; ss == nil || json.Unmarshal(ss.Result, &r) != nil || r.DealID == "" {
			t.Errorf("%s: no deal recorded", k)
		}
		deals[r.DealID] = true
		if len(states[k].Pending) != 0 {
			t.Errorf("%s completed with pending %v", k, states[k].Pending)
		}
	}
	if len(deals) != n {
		t.Errorf("%d distinct deals, want %d", len(deals), n)
	}
	if st := s.Stats().Steps[sim.StepCRM]; st.DuplicateCreates != 0 || st.Created < n {
		t.Errorf("crm after the outage: %+v, want at least %d created (deals, contacts) and no duplicate", st, n)
	}
	if st := s.Stats().Steps[sim.StepShipping]; st.Created != n || st.DuplicateCreates != 0 {
		t.Errorf("shipping after the outage: %+v, want %d, no duplicate", st, n)
	}
}
