package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// Results is everything one run measured, with its conditions.
type Results struct {
	Date          string           `json:"date"`
	Cores         int              `json:"cores"`
	CPU           string           `json:"cpu"`
	GoVersion     string           `json:"go_version"`
	KafkaVersion  string           `json:"kafka_version"`
	RedisVersion  string           `json:"redis_version"`
	NodeVersion   string           `json:"node_version,omitempty"`
	Concurrency   int              `json:"concurrency"`
	Ingest        []IngestRow      `json:"ingest"`
	IngestDurable IngestDurability `json:"ingest_durable"`
	Drain         []DrainRow       `json:"drain"`
	// LabelFileCPUMicros is the CPU of one label written into the
	// processors' --label-dir by the label store, measured before the
	// drain runs (labelFileCost).
	LabelFileCPUMicros float64         `json:"label_file_cpu_us,omitempty"`
	Fleet              []FleetRow      `json:"fleet,omitempty"`
	Flash              *FlashResult    `json:"flash,omitempty"`
	Restores           []RestoreRow    `json:"restores,omitempty"`
	Console            *ConsoleResult  `json:"console,omitempty"`
	Broker             []BrokerProfile `json:"broker_profiles,omitempty"`
	PeakRSS            []RSS           `json:"peak_rss"`
	Micro              []string        `json:"micro"`
	Notes              []string        `json:"notes,omitempty"`
	Errors             []string        `json:"errors,omitempty"`
}

// IngestRow is the median of the interleaved rounds of one target.
type IngestRow struct {
	Target      string    `json:"target"`
	Connections int       `json:"connections"`
	ReqPerSec   float64   `json:"req_per_sec"`
	P99Ms       float64   `json:"p99_ms"`
	Rounds      []float64 `json:"rounds_req_per_sec"`
	// RoundsP99Ms and RoundSeconds are each counted round's p99 and length.
	RoundsP99Ms  []float64 `json:"rounds_p99_ms"`
	RoundSeconds []float64 `json:"round_seconds"`
	Non2xx       int64     `json:"non_2xx"`
	// CPUMicrosPerReq is the CPU time per request of each process taking
	// part (server, kafka, redis, load generator), median of the rounds.
	CPUMicrosPerReq map[string]float64 `json:"cpu_us_per_request,omitempty"`
}

// IngestDurability compares what the gateway acknowledged with the topic.
type IngestDurability struct {
	Acknowledged int64 `json:"acknowledged"`
	InKafka      int64 `json:"in_kafka"`
}

// DrainRow is one backlog drain.
type DrainRow struct {
	System string `json:"system"`
	// Round is the row's round when the drain ran more than one.
	Round            int     `json:"round,omitempty"`
	Orders           int     `json:"orders"`
	LatencyMs        float64 `json:"provider_latency_ms"`
	Concurrency      int     `json:"concurrency"`
	Seconds          float64 `json:"seconds_first_to_last"`
	FromStartSeconds float64 `json:"seconds_from_start"`
	OrdersPerSec     float64 `json:"orders_per_sec"`
	CallsPerOrder    float64 `json:"provider_calls_per_order"`
	// WaitsPerOrder is the provider round trips one order waits for, in
	// sequence: the calls, except that a batched Airtable request counts
	// once for every order in it. The Little's-law bound uses it.
	WaitsPerOrder    float64 `json:"provider_round_trips_per_order"`
	LittleBound      float64 `json:"littles_law_bound,omitempty"`
	OfBound          float64 `json:"of_bound,omitempty"`
	DuplicateCreates int64   `json:"duplicate_creates"`
	// CPUMsPerOrder is the CPU time per order of each process taking part
	// (processor or worker, simulator, kafka, redis, the bench's observer).
	CPUMsPerOrder map[string]float64 `json:"cpu_ms_per_order,omitempty"`
	// StepMs is the processor's mean successful call time per step (ms).
	StepMs map[string]float64 `json:"step_call_ms,omitempty"`
}

// FlashResult is the end-to-end flash sale.
type FlashResult struct {
	Orders           int              `json:"orders"`
	Deliveries       int64            `json:"deliveries"`
	AcceptedPerSec   float64          `json:"accepted_per_sec"`
	IngestP99Ms      float64          `json:"ingest_p99_ms"`
	E2EP50Ms         float64          `json:"e2e_p50_ms"`
	E2EP99Ms         float64          `json:"e2e_p99_ms"`
	DrainSeconds     float64          `json:"drain_seconds"`
	Created          map[string]int64 `json:"created"`
	DuplicateCreates map[string]int64 `json:"duplicate_creates"`
	Status           map[int]int64    `json:"status"`
}

// RestoreRow is the restore of one partition of order states: cold (no
// local store) against a plain consumer of the same partition, and the warm
// restart with a current local store.
type RestoreRow struct {
	States      int     `json:"states"`
	System      string  `json:"system,omitempty"`
	ColdSeconds float64 `json:"cold_seconds"`
	ColdPerSec  float64 `json:"cold_states_per_sec"`
	PlainPerSec float64 `json:"plain_consumer_records_per_sec"`
	ColdOfPlain float64 `json:"cold_of_plain"`
	// PeakRSS is the cold-restoring processor's peak RSS.
	PeakRSS                int64   `json:"processor_peak_rss"`
	WarmRestoreSeconds     float64 `json:"warm_restore_seconds"`
	WarmFirstRecordSeconds float64 `json:"warm_first_record_seconds"`
	WarmPeakRSS            int64   `json:"warm_processor_peak_rss"`
}

// RSS is a process's peak resident set size.
type RSS struct {
	Process string `json:"process"`
	Bytes   int64  `json:"bytes"`
}

func (b *bench) write() error {
	if err := os.MkdirAll(b.o.out, 0o755); err != nil {
		return err
	}
	base := filepath.Join(b.o.out, time.Now().UTC().Format("2006-01-02T150405Z"))
	if err := writeJSON(base+".json", b.res); err != nil {
		return err
	}
	if err := os.WriteFile(base+".md", []byte(b.res.markdown()), 0o644); err != nil {
		return err
	}
	fmt.Printf("bench: results in %s.md and %s.json\n", base, base)
	fmt.Print(b.res.markdown())
	return nil
}

func (r *Results) ingestRow(target string, conns int) *IngestRow {
	for i := range r.Ingest {
		if r.Ingest[i].Target == target && r.Ingest[i].Connections == conns {
			return &r.Ingest[i]
		}
	}
	return nil
}

type cpuRow struct {
	label string
	cpu   map[string]float64
}

// cpuTable renders CPU times per process with a total column; rows without
// figures are left out.
func cpuTable(rows []cpuRow, procs []string, format string) string {
	var s strings.Builder
	s.WriteString("| run | " + strings.Join(procs, " | ") + " | total |\n|---|" + strings.Repeat("---|", len(procs)+1) + "\n")
	any := false
	for _, r := range rows {
		if len(r.cpu) == 0 {
			continue
		}
		any = true
		total := 0.0
		s.WriteString("| " + r.label + " |")
		for _, p := range procs {
			v, ok := r.cpu[p]
			if !ok {
				s.WriteString("  |")
				continue
			}
			total += v
			s.WriteString(" " + fmt.Sprintf(format, v) + " |")
		}
		s.WriteString(" " + fmt.Sprintf(format, total) + " |\n")
	}
	if !any {
		return ""
	}
	return s.String() + "\n"
}

func (r *Results) markdown() string {
	var s strings.Builder
	fmt.Fprintf(&s, "# orderflow benchmark, %s\n\n", r.Date)
	fmt.Fprintf(&s, "Conditions: %d cores (%s), %s, Kafka %s (single node, acks=all), Redis %s", r.Cores, r.CPU, r.GoVersion, r.KafkaVersion, r.RedisVersion)
	if r.NodeVersion != "" {
		fmt.Fprintf(&s, ", Node.js %s", r.NodeVersion)
	}
	s.WriteString("; load generator, servers and broker share the machine. Every comparison is measured in one run, interleaved; medians of the rounds.\n\n")
	if len(r.Ingest) > 0 {
		s.WriteString("## Ingest (signed payment_intent.succeeded events)\n\n| connections | target | req/s (median) | rounds req/s (min–max) | p99 ms (median) | rounds p99 ms (min–max) | round s | non-2xx | orderflow gateway ÷ target |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, row := range r.Ingest {
			gw := r.ingestRow("orderflow gateway", row.Connections)
			ratio := ""
			if gw != nil && row.ReqPerSec > 0 {
				ratio = fmt.Sprintf("%.2f", gw.ReqPerSec/row.ReqPerSec)
			}
			fmt.Fprintf(&s, "| %d | %s | %.0f | %s | %.1f | %s | %s | %d | %s |\n", row.Connections, row.Target, row.ReqPerSec,
				spread(row.Rounds, "%.0f"), row.P99Ms, spread(row.RoundsP99Ms, "%.1f"), spread(row.RoundSeconds, "%.1f"), row.Non2xx, ratio)
		}
		s.WriteString("\nEvery target first runs one warm-up round at each connection count, not counted; the counted rounds are interleaved across targets and each lasts at least the round time.\n")
		fmt.Fprintf(&s, "\nDurability: the gateway answered 2xx to %d events; `orders` holds %d records.\n\n", r.IngestDurable.Acknowledged, r.IngestDurable.InKafka)
		s.WriteString("CPU time per request (µs, median of the rounds; from /proc/<pid>/stat):\n\n")
		rows := make([]cpuRow, 0, len(r.Ingest))
		for _, row := range r.Ingest {
			rows = append(rows, cpuRow{fmt.Sprintf("%s, %d conns", row.Target, row.Connections), row.CPUMicrosPerReq})
		}
		s.WriteString(cpuTable(rows, []string{"server", "kafka", "redis", "load generator"}, "%.0f"))
	}
	if len(r.Drain) > 0 {
		s.WriteString("## Drain (backlog already queued)\n\n| system | orders | provider latency | concurrency | orders/s | calls/order | round trips/order | Little's-law bound | of bound | duplicate creates |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, d := range r.Drain {
			bound, of := "", ""
			if d.LittleBound > 0 {
				bound, of = fmt.Sprintf("%.0f", d.LittleBound), fmt.Sprintf("%.2f", d.OfBound)
			}
			fmt.Fprintf(&s, "| %s | %d | %.0f ms | %d | %.0f | %.1f | %.1f | %s | %s | %d |\n", d.label(), d.Orders, d.LatencyMs, d.Concurrency, d.OrdersPerSec, d.CallsPerOrder, d.WaitsPerOrder, bound, of, d.DuplicateCreates)
		}
		s.WriteString("\nLittle's-law bound: concurrency ÷ (round trips per order × provider latency), the orders/s if every in-flight order were always waiting on a provider and nothing else. Round trips count what one order waits for in sequence: the calls, except that an Airtable request shared by up to 10 orders counts once for each.\n")
		drainMedians(&s, r.Drain)
		of0 := medianRate(r.Drain, "orderflow processor", 0)
		peer := medianRate(r.Drain, "peer worker.js", 0)
		if of0 > 0 && peer > 0 {
			fmt.Fprintf(&s, "\nAt 0 ms and equal concurrency orderflow drains %.2f × the peer's orders/s.\n", of0/peer)
		}
		s.WriteString("\nCPU time per order (ms; \"processor\" is worker.js for the peer, \"observer\" is this bench following completions):\n\n")
		rows := make([]cpuRow, 0, len(r.Drain))
		for _, d := range r.Drain {
			rows = append(rows, cpuRow{fmt.Sprintf("%s, %.0f ms", d.label(), d.LatencyMs), d.CPUMsPerOrder})
		}
		s.WriteString(cpuTable(rows, []string{"processor", "simulator", "kafka", "redis", "observer"}, "%.2f"))
		if r.LabelFileCPUMicros > 0 {
			fmt.Fprintf(&s, "A shipping label costs the processor a file of its own: in this run's `--label-dir`, one 30 KB label written by the label store (created, written, synced, renamed, the folder synced; %d in a row before the drain runs) took %.0f µs of CPU. The peer stores no label.\n\n", labelProbeFiles, r.LabelFileCPUMicros)
		}
		s.WriteString("Where an order's time goes (ms): the mean provider call per step, their sum, and the rest of the order's time in the processor (concurrency ÷ orders/s − calls: state writes and waiting for CPU):\n\n")
		s.WriteString("| run | details | crm | production_log | shipping | invoice | email | calls | rest |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, d := range r.Drain {
			if len(d.StepMs) == 0 || d.OrdersPerSec == 0 {
				continue
			}
			fmt.Fprintf(&s, "| %s, %.0f ms |", d.label(), d.LatencyMs)
			sum := 0.0
			for _, st := range integrations.BuiltinSteps() {
				sum += d.StepMs[st]
				fmt.Fprintf(&s, " %.1f |", d.StepMs[st])
			}
			fmt.Fprintf(&s, " %.1f | %.1f |\n", sum, float64(d.Concurrency)/d.OrdersPerSec*1000-sum)
		}
		s.WriteString("\n")
	}
	r.fleetMarkdown(&s)
	if f := r.Flash; f != nil {
		s.WriteString("## Flash sale, end to end (both Checkout events per order, 5 % duplicates, 256 connections)\n\n")
		fmt.Fprintf(&s, "- %d orders, %d deliveries, accepted %.0f/s, ingest p99 %.1f ms\n", f.Orders, f.Deliveries, f.AcceptedPerSec, f.IngestP99Ms)
		fmt.Fprintf(&s, "- event accepted → order completed: p50 %.0f ms, p99 %.0f ms; drain %.1f s\n", f.E2EP50Ms, f.E2EP99Ms, f.DrainSeconds)
		steps := make([]string, 0, len(f.Created))
		for k := range f.Created {
			steps = append(steps, k)
		}
		sort.Strings(steps)
		s.WriteString("- simulator: ")
		for i, k := range steps {
			if i > 0 {
				s.WriteString(", ")
			}
			fmt.Fprintf(&s, "%s created %d (duplicates %d)", k, f.Created[k], f.DuplicateCreates[k])
		}
		s.WriteString("\n\n")
	}
	if len(r.Restores) > 0 {
		s.WriteString("## State restore (one partition, local store)\n\n")
		s.WriteString("| build | states | cold restore s | cold states/s | plain consumer records/s | cold ÷ plain | processor peak RSS MiB | warm restore s | warm start → first record s | warm peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, x := range r.Restores {
			fmt.Fprintf(&s, "| %s | %d | %.2f | %.0f | %.0f | %.2f | %.0f | %.2f | %.2f | %.0f |\n", x.System, x.States, x.ColdSeconds, x.ColdPerSec, x.PlainPerSec,
				x.ColdOfPlain, float64(x.PeakRSS)/(1<<20), x.WarmRestoreSeconds, x.WarmFirstRecordSeconds, float64(x.WarmPeakRSS)/(1<<20))
		}
		s.WriteString("\n")
		for _, sys := range restoreSystems(r.Restores) {
			var small, large *RestoreRow
			for i := range r.Restores {
				if x := &r.Restores[i]; x.System == sys {
					if small == nil {
						small = x
					}
					large = x
				}
			}
			if small != large && small.PeakRSS > 0 {
				fmt.Fprintf(&s, "Peak RSS of %s with %d states ÷ with %d: %.2f.\n", sys, large.States, small.States,
					float64(large.PeakRSS)/float64(small.PeakRSS))
			}
		}
		s.WriteString("\nCold: a processor without a local store rebuilds it from orders.state; the plain consumer reads the same partition with franz-go's defaults and decodes nothing (mean of a read before and one after). Warm: the same processor restarted on its store, with one new order waiting; from the process start to the state write of that order.\n\n")
	}
	r.brokerMarkdown(&s)
	if len(r.PeakRSS) > 0 {
		s.WriteString("## Peak RSS\n\n| process | MiB |\n|---|---|\n")
		for _, p := range r.PeakRSS {
			fmt.Fprintf(&s, "| %s | %.0f |\n", p.Process, float64(p.Bytes)/(1<<20))
		}
		s.WriteString("\n")
	}
	if len(r.Micro) > 0 {
		s.WriteString("## Go micro-benchmarks\n\n```\n" + strings.Join(r.Micro, "\n") + "\n```\n\n")
	}
	r.consoleMarkdown(&s)
	for _, n := range r.Notes {
		s.WriteString("Note: " + n + "\n\n")
	}
	for _, e := range r.Errors {
		s.WriteString("ERROR: " + e + "\n\n")
	}
	return s.String()
}

// spread is "min–max" of xs in the format, or "" when there are none.
func spread(xs []float64, format string) string {
	if len(xs) == 0 {
		return ""
	}
	lo, hi := slices.Min(xs), slices.Max(xs)
	return fmt.Sprintf(format+"–"+format, lo, hi)
}

// restoreSystems lists the builds of the restore rows in order.
func restoreSystems(rows []RestoreRow) []string {
	var out []string
	for _, x := range rows {
		if !slices.Contains(out, x.System) {
			out = append(out, x.System)
		}
	}
	return out
}

// label is the row's system, with its round when there were several.
func (d DrainRow) label() string {
	if d.Round > 0 {
		return fmt.Sprintf("%s (round %d)", d.System, d.Round)
	}
	return d.System
}

// medianRate is the median orders/s of system's drains at latency (ms);
// 0 when it has none.
func medianRate(rows []DrainRow, system string, latencyMs float64) float64 {
	var v []float64
	for _, d := range rows {
		if d.System == system && d.LatencyMs == latencyMs {
			v = append(v, d.OrdersPerSec)
		}
	}
	return median(v)
}

// drainMedians writes, for drains run in rounds, each system's median
// orders/s and processor CPU per order at each latency, and each round's
// ratio of this build to the baseline build.
func drainMedians(s *strings.Builder, rows []DrainRow) {
	type key struct {
		system string
		lat    float64
	}
	var keys []key
	rates := map[key][]float64{}
	cpus := map[key][]float64{}
	byRound := map[key]map[int]float64{}
	for _, d := range rows {
		if d.Round == 0 {
			return
		}
		k := key{d.System, d.LatencyMs}
		if _, ok := rates[k]; !ok {
			keys = append(keys, k)
			byRound[k] = map[int]float64{}
		}
		rates[k] = append(rates[k], d.OrdersPerSec)
		cpus[k] = append(cpus[k], d.CPUMsPerOrder["processor"])
		byRound[k][d.Round] = d.OrdersPerSec
	}
	if len(keys) == 0 {
		return
	}
	s.WriteString("\nMedians of the rounds (orders/s; processor CPU ms per order), and this build ÷ the baseline build in each round:\n\n| system | provider latency | rounds | orders/s | processor CPU ms/order | ÷ baseline, by round |\n|---|---|---|---|---|---|\n")
	for _, k := range keys {
		ratios := ""
		if base, ok := byRound[key{"orderflow processor (baseline)", k.lat}]; ok && k.system == "orderflow processor" {
			var parts []string
			var rs []float64
			for round := 1; round <= len(byRound[k]); round++ {
				if b := base[round]; b > 0 {
					rs = append(rs, byRound[k][round]/b)
					parts = append(parts, fmt.Sprintf("%.2f", byRound[k][round]/b))
				}
			}
			ratios = fmt.Sprintf("%s (median %.2f)", strings.Join(parts, ", "), median(rs))
		}
		fmt.Fprintf(s, "| %s | %.0f ms | %d | %.0f | %.2f | %s |\n", k.system, k.lat, len(rates[k]), median(rates[k]), median(cpus[k]), ratios)
	}
}
