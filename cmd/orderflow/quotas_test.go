package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/testenv"
)

// limitedSim is a simulator enforcing the providers' limits, CRM calls
// taking latency each (so calls overlap).
func limitedSim(t *testing.T, crmLatency time.Duration) (*sim.Server, string) {
	t.Helper()
	s, err := sim.New(sim.Config{EnforceLimits: true, StepLatency: map[string]time.Duration{sim.StepCRM: crmLatency}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); _ = s.Close() })
	return s, srv.URL
}

// fleet builds n processors' providers from the same flags.
func fleet(t *testing.T, n int, args ...string) []processor.Providers {
	t.Helper()
	var out []processor.Providers
	for range n {
		p := parseProviderFlags(t, nil, append([]string{"--label-dir", t.TempDir()}, args...)...)
		prov, cleanup, err := p.build(context.Background(), discardLogger())
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		t.Cleanup(cleanup)
		out = append(out, prov)
	}
	return out
}

// crmBurst runs perProcessor concurrent CRM upserts on each processor.
func crmBurst(t *testing.T, procs []processor.Providers, perProcessor int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for pi, prov := range procs {
		for i := range perProcessor {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o, err := prov.Details.OrderDetails(ctx, fmt.Sprintf("pi_3Qfleet%d%04d", pi, i))
				if err != nil {
					t.Errorf("details: %v", err)
					return
				}
				_, _ = prov.CRM.UpsertContactAndDeal(ctx, o) // a 429 is an error here; the simulator counts it
			}()
		}
	}
	wg.Wait()
}

// Three processors, ten CRM calls at once each, against Zoho's 10 calls in
// flight per organisation: sharing the limit through Redis, the simulator
// refuses none; each keeping 10 by itself, it refuses some.
func TestZohoConcurrencySharedByFleet(t *testing.T) {
	rs := testenv.NewRedis(t)
	s, url := limitedSim(t, 100*time.Millisecond)
	args := []string{"--sim-url", url, "--sim-enforces-limits", "--steps", "details,crm"}

	crmBurst(t, fleet(t, 3, append(args, "--redis-addr", rs.Addr())...), 10)
	st := s.Stats().Steps[sim.StepCRM]
	if st.Requests < 30 || st.RejectedConcurrency != 0 || st.RejectedRateLimited != 0 {
		t.Fatalf("shared: %+v, want ≥ 30 requests and none refused", st)
	}

	s.ResetStats()
	crmBurst(t, fleet(t, 3, args...), 10)
	if st := s.Stats().Steps[sim.StepCRM]; st.RejectedConcurrency == 0 {
		t.Fatalf("per processor: %+v; three processors with 10 each should overrun Zoho's 10", st)
	}
}

// Two processors writing to one Airtable base, 4 requests a second for the
// fleet: no 429 (which would cost 30 s), though each alone would allow 4.
func TestAirtableRateSharedByFleet(t *testing.T) {
	rs := testenv.NewRedis(t)
	s, url := limitedSim(t, 0)
	procs := fleet(t, 2, "--sim-url", url, "--sim-enforces-limits", "--steps", "details,production_log",
		"--redis-addr", rs.Addr(), "--airtable-requests-per-second", "4")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for pi, prov := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 6 {
				o, err := prov.Details.OrderDetails(ctx, fmt.Sprintf("pi_3Qbase%d%04d", pi, i))
				if err != nil {
					t.Errorf("details: %v", err)
					return
				}
				if _, err := prov.ProductionLog.UpsertOrder(ctx, o, []string{"details"}); err != nil {
					t.Errorf("production log: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	st := s.Stats().Steps[sim.StepProductionLog]
	if st.Requests != 12 || st.RejectedRateLimited != 0 {
		t.Fatalf("%+v, want 12 requests and no 429", st)
	}
	// 12 requests evenly spaced at 4 a second for the fleet: the last
	// goes out 11 × 250 ms after the first.
	if d := time.Since(start); d < 2700*time.Millisecond {
		t.Fatalf("12 requests in %v: faster than 4 a second for the fleet", d)
	}
}

// Redis down: the processor still calls the provider, within its share,
// says so in orderflow_quota_fallback and a log line.
func TestQuotaFallbackWhenRedisDown(t *testing.T) {
	rs := testenv.NewRedis(t)
	rs.Stop()
	s, url := limitedSim(t, 0)
	var logs bytes.Buffer
	lw := &lockedWriter{w: &logs}
	logger := slog.New(slog.NewTextHandler(lw, nil))
	p := parseProviderFlags(t, nil, "--label-dir", t.TempDir(), "--sim-url", url, "--sim-enforces-limits",
		"--steps", "details,crm", "--redis-addr", rs.Addr())
	prov, cleanup, err := p.build(context.Background(), logger)
	if err != nil {
		t.Fatalf("build with Redis down: %v", err)
	}
	defer cleanup()
	o, err := prov.Details.OrderDetails(context.Background(), "pi_3Qfallback0001")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prov.CRM.UpsertContactAndDeal(context.Background(), o); err != nil {
		t.Fatalf("crm with Redis down: %v", err)
	}
	if st := s.Stats().Steps[sim.StepCRM]; st.Requests == 0 {
		t.Fatal("no CRM request reached the simulator")
	}
	name := "zoho:" + simZohoClientID
	lw.mu.Lock()
	text := logs.String()
	lw.mu.Unlock()
	if !strings.Contains(text, "quota: Redis unavailable, this processor keeps to its share") || !strings.Contains(text, "limit="+name) ||
		!strings.Contains(text, "concurrency_share=10") {
		t.Errorf("no fallback log line for %s: %s", name, text)
	}
	// The collectors are what the commands register and serve.
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "orderflow_quota_fallback" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "limit" {
					got[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	if got[name] != 1 {
		t.Errorf("orderflow_quota_fallback = %v, want %s at 1", got, name)
	}
}
