package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/harness"
	"github.com/orderflow/orderflow/test/loadgen"
)

func (b *bench) flash(ctx context.Context) error {
	n := b.o.flashOrders
	names, err := b.createTopics(ctx, "flash", 12)
	if err != nil {
		return err
	}
	sim, simURL, err := b.startSim(ctx, 0)
	if err != nil {
		return err
	}
	defer b.stop(sim)
	gw, url, err := b.startGateway(ctx, names)
	if err != nil {
		return err
	}
	defer b.stop(gw)
	proc, metrics, err := b.startProcessor(ctx, "processor-flash", names, simURL)
	if err != nil {
		return err
	}
	defer b.stop(proc)

	rep, err := loadgen.Run(ctx, loadgen.Config{URL: url, Secrets: []string{benchSecret}, Orders: n, Connections: 256,
		Checkout: true, Duplicates: 0.05, Redeliver: 5, RedeliverDelay: 2 * time.Second})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: flash sale ingest: %s\n", rep)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	// Completion times come from the state records' timestamps, so the
	// state topic is read only once every order is done.
	if err := waitCompleted(wctx, metrics, n, proc); err != nil {
		return err
	}
	states, err := harness.FollowCompletions(b.brokers, names.State)
	if err != nil {
		return err
	}
	defer states.Close()
	if missing, err := states.WaitAll(wctx, rep.OrderIDs, func(s *processor.State) bool { return s.Status == processor.StatusCompleted }); err != nil {
		return fmt.Errorf("%w (e.g. %v)\n%s", err, first(missing, 3), proc.LogTail(20))
	}
	var e2e []float64
	var firstAccept, lastDone time.Time
	for _, id := range rep.OrderIDs {
		acc := rep.AcceptedAt[id]
		done, _ := states.CompletedAt(id)
		e2e = append(e2e, float64(done.Sub(acc))/float64(time.Millisecond))
		if firstAccept.IsZero() || acc.Before(firstAccept) {
			firstAccept = acc
		}
		if done.After(lastDone) {
			lastDone = done
		}
	}
	slices.Sort(e2e)
	stats, err := harness.Sim{URL: simURL}.Stats(ctx)
	if err != nil {
		return err
	}
	b.res.Flash = &FlashResult{
		Orders: n, Deliveries: rep.Deliveries, AcceptedPerSec: rep.OKPerSec,
		IngestP99Ms: float64(rep.P99) / float64(time.Millisecond),
		E2EP50Ms:    e2e[len(e2e)/2], E2EP99Ms: e2e[min(len(e2e)-1, len(e2e)*99/100)],
		DrainSeconds: lastDone.Sub(firstAccept).Seconds(),
		Created:      map[string]int64{}, DuplicateCreates: map[string]int64{},
		Status: rep.Status,
	}
	for step, s := range stats {
		b.res.Flash.Created[step] = s.Created
		b.res.Flash.DuplicateCreates[step] = s.DuplicateCreates
	}
	b.res.PeakRSS = append(b.res.PeakRSS,
		RSS{Process: "gateway (flash sale)", Bytes: gw.PeakRSS()},
		RSS{Process: "processor (flash sale)", Bytes: proc.PeakRSS()})
	for _, step := range []string{integrations.StepShipping, integrations.StepInvoice, integrations.StepEmail} {
		if stats[step].Created != int64(n) {
			return fmt.Errorf("simulator created %d %s objects for %d orders", stats[step].Created, step, n)
		}
	}
	if d := dupCreates(stats); d != 0 {
		return fmt.Errorf("%d duplicate creations", d)
	}
	return nil
}

// scrapeHistogram reads a histogram's _sum and _count (summed over labels).
func scrapeHistogram(url, name string) (float64, float64) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum, count float64
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		metric := f[0]
		if i := strings.IndexByte(metric, '{'); i >= 0 {
			metric = metric[:i]
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch metric {
		case name + "_sum":
			sum += v
		case name + "_count":
			count += v
		}
	}
	return sum, count
}

// micro runs the Go micro-benchmarks.
func (b *bench) micro(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1",
		"./gateway/", "./topics/", "./processor/")
	cmd.Dir = b.root
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "Benchmark") {
			b.res.Micro = append(b.res.Micro, strings.Join(strings.Fields(line), " "))
		}
	}
	if err != nil {
		return fmt.Errorf("go test -bench: %v\n%s", err, tailOf(out))
	}
	return nil
}
