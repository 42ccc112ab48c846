package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/harness"
)

// The fleet part: several processors drain one backlog against the
// simulator with the providers' limits enforced (orderflow sim
// --enforce-limits), once with the limits shared through Redis
// (--redis-addr) and once with each processor keeping the whole limit by
// itself, interleaved.

// The limits the simulator enforces in this part, and the Airtable batch
// size, as the providers document them (integrations/sim/limits.go).
const (
	fleetAirtablePerBase = 5  // requests per second per base
	fleetAirtableBatch   = 10 // records per request
	fleetZohoConcurrency = 10 // CRM calls in flight per organisation
	// fleetCRMCalls is what one order costs Zoho: the contact's upsert and
	// the deal's (integrations/zoho; the currency read is once an hour).
	fleetCRMCalls = 2
)

// fleetModes are the runs: the limits shared through Redis at their
// defaults, and kept per processor (each keeping the whole limit, as
// before the shared limits).
var fleetModes = []struct {
	name, tag    string
	shared       bool
	airtableRate string // --airtable-requests-per-second; "": the default
}{
	{"shared through Redis", "shared", true, ""},
	{"per processor", "local", false, ""},
}

// FleetRow is one fleet drain.
type FleetRow struct {
	Mode         string  `json:"mode"`
	Processors   int     `json:"processors"`
	Orders       int     `json:"orders"`
	LatencyMs    float64 `json:"provider_latency_ms"`
	Completed    int     `json:"completed"`
	DeadLettered int     `json:"dead_lettered"`
	// Capped is set when the run was stopped at --fleet-timeout before
	// every order was final.
	Capped       bool    `json:"capped,omitempty"`
	Seconds      float64 `json:"seconds_first_to_last"`
	OrdersPerSec float64 `json:"orders_per_sec"`
	// Rejected are the simulator's 429s by step (rate, concurrency and
	// quota refusals together).
	Rejected map[string]int64 `json:"rejected_429"`
	// Pauses are the processors' orderflow_quota_pauses_total, summed.
	Pauses           float64 `json:"quota_pauses"`
	AirtablePerOrder float64 `json:"airtable_requests_per_order"`
	// AirtableFill is the records per answered Airtable request: the
	// orders' rows and the progress reports in the room they left.
	AirtableFill float64 `json:"airtable_records_per_request"`
	// PerOrder is every step's requests per completed order.
	PerOrder         map[string]float64 `json:"requests_per_order"`
	CRMCallsPerOrder float64            `json:"crm_calls_per_order"`
	AirtableBound    float64            `json:"airtable_bound"`
	ZohoBound        float64            `json:"zoho_bound"`
	Bound            float64            `json:"bound"`
	OfBound          float64            `json:"of_bound"`
	DuplicateCreates int64              `json:"duplicate_creates"`
}

func (r FleetRow) rejected() int64 {
	var n int64
	for _, v := range r.Rejected {
		n += v
	}
	return n
}

func (b *bench) fleet(ctx context.Context) error {
	type run struct {
		bin, name, tag string
		shared         bool
		airtableRate   string
	}
	var runs []run
	for _, m := range fleetModes {
		if m.shared && b.o.baselineBin != "" {
			// The other build first, with the same limits, for a
			// before/after in one run.
			runs = append(runs, run{b.o.baselineBin, m.name + " (baseline build)", m.tag + "-baseline", m.shared, m.airtableRate})
		}
		runs = append(runs, run{b.bin, m.name, m.tag, m.shared, m.airtableRate})
	}
	for _, m := range runs {
		extra := []string{"--sim-enforces-limits"}
		if m.shared {
			extra = append(extra, "--redis-addr", b.redis)
		}
		if m.airtableRate != "" {
			extra = append(extra, "--airtable-requests-per-second", m.airtableRate)
		}
		row, err := b.fleetOnce(ctx, m.bin, m.name, m.tag, b.o.fleetProcessors, b.o.fleetOrders, b.o.fleetLatency, extra...)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: fleet %s: %d of %d completed, %.1f orders/s (%.2f of bound), %d 429s\n",
			row.Mode, row.Completed, row.Orders, row.OrdersPerSec, row.OfBound, row.rejected())
		b.res.Fleet = append(b.res.Fleet, row)
	}
	return nil
}

// fleetOnce drains n orders with procs processors of the binary bin (their
// flags extra) against a simulator enforcing the limits, at a per-call
// latency.
func (b *bench) fleetOnce(ctx context.Context, bin, mode, tag string, procs, n int, latency time.Duration, extra ...string) (FleetRow, error) {
	row := FleetRow{Mode: mode, Processors: procs, Orders: n, LatencyMs: float64(latency.Milliseconds())}
	names, err := b.createTopics(ctx, "fleet-"+tag, 12)
	if err != nil {
		return row, err
	}
	ids, err := b.backlog(ctx, names, n)
	if err != nil {
		return row, err
	}
	sim, simURL, err := b.startSim(ctx, latency, "--enforce-limits", "--zoho-concurrency", strconv.Itoa(fleetZohoConcurrency))
	if err != nil {
		return row, err
	}
	defer b.stop(sim)
	var ps []*harness.Proc
	var metrics []string
	for i := range procs {
		p, m, err := b.startProcessorBin(ctx, bin, fmt.Sprintf("processor-fleet-%s-%d", tag, i), names, simURL, extra...)
		if err != nil {
			return row, err
		}
		defer b.stop(p)
		ps, metrics = append(ps, p), append(metrics, m)
	}
	// Poll the processors' counters of final orders; the first and the
	// last completion seen bound the measured span (a run stopped at the
	// time limit: the first completion and the stop).
	wctx, cancel := context.WithTimeout(ctx, b.o.fleetTimeout)
	defer cancel()
	var firstAt, lastAt time.Time
	completed, dead := 0, 0
	for {
		c, d := sumMetric(ctx, metrics, completedMetric), sumMetric(ctx, metrics, `orderflow_orders_total{status="dead_lettered"}`)
		now := time.Now()
		if c > 0 && firstAt.IsZero() {
			firstAt = now
		}
		if int(c) > completed {
			lastAt = now
		}
		completed, dead = int(c), int(d)
		if completed+dead >= n {
			break
		}
		for _, p := range ps {
			if !p.Running() {
				return row, fmt.Errorf("processor exited:\n%s", p.LogTail(20))
			}
		}
		if wctx.Err() != nil {
			if ctx.Err() != nil {
				return row, ctx.Err()
			}
			row.Capped, lastAt = true, now
			break
		}
		select {
		case <-wctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	row.Completed, row.DeadLettered = completed, dead
	row.Pauses = sumMetric(ctx, metrics, `orderflow_quota_pauses_total{limit="airtable:appOrderflowSim"}`) +
		sumMetric(ctx, metrics, `orderflow_quota_pauses_total{limit="zoho:1000.ORDERFLOWSIMULATOR"}`)
	if !lastAt.IsZero() {
		row.Seconds = lastAt.Sub(firstAt).Seconds()
	}
	switch {
	case row.Capped && row.Seconds > 0:
		row.OrdersPerSec = float64(completed) / row.Seconds
	case row.Seconds > 0:
		row.OrdersPerSec = float64(completed-1) / row.Seconds
	}
	stats, err := harness.Sim{URL: simURL}.Stats(ctx)
	if err != nil {
		return row, err
	}
	row.Rejected = map[string]int64{}
	for step, s := range stats {
		if r := s.RejectedRateLimited + s.RejectedConcurrency + s.RejectedQuota; r > 0 {
			row.Rejected[step] = r
		}
	}
	row.DuplicateCreates = dupCreates(stats)
	done := max(completed, 1)
	row.AirtablePerOrder = float64(stats["production_log"].Requests) / float64(done)
	row.CRMCallsPerOrder = float64(stats["crm"].Requests) / float64(done)
	if pl := stats["production_log"]; pl.Requests > row.Rejected["production_log"] {
		row.AirtableFill = float64(pl.Records) / float64(pl.Requests-row.Rejected["production_log"])
	}
	row.PerOrder = map[string]float64{}
	for step, s := range stats {
		if s.Requests > 0 {
			row.PerOrder[step] = float64(s.Requests) / float64(done)
		}
	}
	row.AirtableBound, row.ZohoBound, row.Bound = fleetBound(fleetCRMCalls, latency)
	if row.Bound > 0 {
		row.OfBound = row.OrdersPerSec / row.Bound
	}
	if !row.Capped && dead == 0 {
		// Every order must be completed on orders.state, not only counted.
		states, err := harness.FollowCompletions(b.brokers, names.State)
		if err != nil {
			return row, err
		}
		defer states.Close()
		sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
		defer scancel()
		if missing, err := states.WaitAll(sctx, ids, func(s *processor.State) bool { return s.Status == processor.StatusCompleted }); err != nil {
			return row, fmt.Errorf("%w (e.g. %v)", err, first(missing, 3))
		}
	}
	return row, nil
}

// fleetBound is the most orders a second the enforced limits allow, for the
// whole fleet:
//   - Airtable: fleetAirtablePerBase requests a second, each creating at
//     most fleetAirtableBatch orders' rows, and every order needs its row:
//     5 × 10 = 50 orders/s;
//   - Zoho CRM: fleetZohoConcurrency calls in flight, each taking at least
//     the simulator's latency, crmCalls of them per order:
//     10 ÷ (2 × 50 ms) = 100 orders/s (Little's law; no bound at 0 ms).
//
// The bound is the smaller.
func fleetBound(crmCalls float64, latency time.Duration) (airtable, zoho, bound float64) {
	airtable = fleetAirtablePerBase * fleetAirtableBatch
	bound = airtable
	if latency > 0 && crmCalls > 0 {
		zoho = fleetZohoConcurrency / (crmCalls * latency.Seconds())
		bound = min(bound, zoho)
	}
	return airtable, zoho, bound
}

// sumMetric is a sample summed over the processors' metrics listeners (a
// listener without it counts 0).
func sumMetric(ctx context.Context, urls []string, sample string) float64 {
	var sum float64
	for _, u := range urls {
		if v, err := metricValue(ctx, u, sample); err == nil {
			sum += v
		}
	}
	return sum
}

// fleetMarkdown is the fleet's section of the results.
func (r *Results) fleetMarkdown(s *strings.Builder) {
	if len(r.Fleet) == 0 {
		return
	}
	f := r.Fleet[0]
	fmt.Fprintf(s, "## Fleet: %d processors, limits enforced by the simulator (%d orders, %.0f ms per provider call)\n\n", f.Processors, f.Orders, f.LatencyMs)
	s.WriteString("| limits | completed | dead-lettered | orders/s | bound | of bound (target ≥ 0.9) | 429s (by step) | quota pauses | Airtable requests/order | Airtable records/request | CRM calls/order | duplicate creates |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, f := range r.Fleet {
		done := strconv.Itoa(f.Completed)
		if f.Capped {
			done += " (stopped at the time limit)"
		}
		var by []string
		for _, step := range slices.Sorted(maps.Keys(f.Rejected)) {
			if v := f.Rejected[step]; v > 0 {
				by = append(by, fmt.Sprintf("%s %d", step, v))
			}
		}
		rej := strconv.FormatInt(f.rejected(), 10)
		if len(by) > 0 {
			rej += " (" + strings.Join(by, ", ") + ")"
		}
		fmt.Fprintf(s, "| %s | %s | %d | %.1f | %.0f | %.2f | %s | %.0f | %.3f | %.2f | %.2f | %d |\n", f.Mode, done, f.DeadLettered, f.OrdersPerSec, f.Bound,
			f.OfBound, rej, f.Pauses, f.AirtablePerOrder, f.AirtableFill, f.CRMCallsPerOrder, f.DuplicateCreates)
	}
	fmt.Fprintf(s, "\nBound: the tightest of the enforced limits for the whole fleet. Airtable: %d requests/s per base × %d records per request = %.0f orders/s (each order needs its row). Zoho CRM: %d calls in flight ÷ (%d calls per order, the contact's and the deal's upserts, × %.0f ms per call) = %.0f orders/s. Orders/s: completions counted on the processors' metrics, first to last (a run stopped at the time limit: first completion to the stop). Every processor runs with `--sim-enforces-limits` (the clients keep the providers' limits); \"shared through Redis\" adds `--redis-addr`, so the limits hold for the fleet and a 429 pauses all; \"per processor\" is without Redis: each processor keeps the whole limit by itself.\n\n",
		fleetAirtablePerBase, fleetAirtableBatch, f.AirtableBound, fleetZohoConcurrency, fleetCRMCalls, f.LatencyMs, f.ZohoBound)
}
