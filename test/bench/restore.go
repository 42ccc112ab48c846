package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/harness"
	"github.com/orderflow/orderflow/topics"
)

// restoreSmall is the partition the large restore is compared with.
const restoreSmall = 100000

// restore measures, for a partition of 100,000 order states and one of
// --restore-states: the cold restore of a processor without a local store
// (states per second, against a plain franz-go consumer that reads the
// same partition and decodes nothing), the processor's peak RSS, and the
// warm restart of a processor whose local store is current (start to the
// first record processed); with --baseline-bin, the baseline's beside.
func (b *bench) restore(ctx context.Context) error {
	sizes := []int{restoreSmall}
	if b.o.restoreStates != restoreSmall {
		sizes = append(sizes, b.o.restoreStates)
	}
	sim, simURL, err := b.startSim(ctx, 0)
	if err != nil {
		return err
	}
	defer b.stop(sim)
	for _, n := range sizes {
		rows, err := b.restoreOnce(ctx, n, simURL)
		if err != nil {
			return err
		}
		for _, row := range rows {
			b.res.Restores = append(b.res.Restores, row)
			fmt.Fprintf(os.Stderr, "bench: restore of %d states, %s: cold %.2fs (%.0f/s, plain consumer %.0f/s, %.2f), peak RSS %.0f MiB, warm first record %.2fs\n",
				n, row.System, row.ColdSeconds, row.ColdPerSec, row.PlainPerSec, row.ColdOfPlain, float64(row.PeakRSS)/(1<<20), row.WarmFirstRecordSeconds)
		}
	}
	return nil
}

// restoreOnce measures the restore of a partition of n states by this
// build and, with --baseline-bin, by the baseline first, each with its own
// local store.
func (b *bench) restoreOnce(ctx context.Context, n int, simURL string) ([]RestoreRow, error) {
	type build struct{ bin, system string }
	builds := []build{{b.bin, "orderflow processor"}}
	if b.o.baselineBin != "" {
		builds = []build{{b.o.baselineBin, "orderflow processor (baseline)"}, builds[0]}
	}
	names, err := b.createTopics(ctx, fmt.Sprintf("restore%d", n), 1)
	if err != nil {
		return nil, err
	}
	if err := b.produceStates(ctx, names, n); err != nil {
		return nil, err
	}
	// The plain consumer, before and after the processors' restores: the
	// mean of the two.
	plain1, err := b.plainRead(ctx, names.State, n)
	if err != nil {
		return nil, err
	}
	rows := make([]RestoreRow, len(builds))
	for i, bd := range builds {
		rows[i] = RestoreRow{States: n, System: bd.system}
		stateDir := filepath.Join(b.tmp, fmt.Sprintf("state-%d-%d", n, i))
		if err := b.coldRestore(ctx, &rows[i], bd.bin, names, simURL, stateDir); err != nil {
			return nil, err
		}
	}
	plain2, err := b.plainRead(ctx, names.State, n)
	if err != nil {
		return nil, err
	}
	for i, bd := range builds {
		rows[i].PlainPerSec = (plain1 + plain2) / 2
		rows[i].ColdOfPlain = rows[i].ColdPerSec / rows[i].PlainPerSec
		stateDir := filepath.Join(b.tmp, fmt.Sprintf("state-%d-%d", n, i))
		if err := b.warmRestart(ctx, &rows[i], bd.bin, names, simURL, stateDir); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// coldRestore runs a processor without a local store until its restore is
// done.
func (b *bench) coldRestore(ctx context.Context, row *RestoreRow, bin string, names topics.Names, simURL, stateDir string) error {
	proc, metrics, err := b.startProcessorBin(ctx, bin, "processor-restore", names, simURL, "--state-dir", stateDir)
	if err != nil {
		return err
	}
	defer b.stop(proc)
	tag := fmt.Sprintf("processor-restore-%d", row.States)
	if bin != b.bin {
		tag += "-baseline"
	}
	b.cpuProfile(metrics, tag)
	secs, err := waitRestore(ctx, metrics, proc)
	if err != nil {
		return err
	}
	b.heapProfile(metrics, tag+"-heap")
	row.ColdSeconds = secs
	row.ColdPerSec = float64(row.States) / secs
	time.Sleep(2 * time.Second) // the count of the stored states after the restore
	row.PeakRSS = proc.PeakRSS()
	return nil
}

// warmRestart restarts a processor on its current local store with one
// new order waiting on `orders`.
func (b *bench) warmRestart(ctx context.Context, row *RestoreRow, bin string, names topics.Names, simURL, stateDir string) error {
	ids, err := b.backlog(ctx, names, 1)
	if err != nil {
		return err
	}
	start := time.Now()
	proc, metrics, err := b.startProcessorBin(ctx, bin, "processor-warm", names, simURL, "--state-dir", stateDir)
	if err != nil {
		return err
	}
	defer b.stop(proc)
	first, err := firstStateWrite(ctx, b.brokers, names.State, ids[0], row.States)
	if err != nil {
		return fmt.Errorf("warm restart: %w\n%s", err, proc.LogTail(20))
	}
	row.WarmFirstRecordSeconds = first.Sub(start).Seconds()
	if secs, err := waitRestore(ctx, metrics, proc); err == nil {
		row.WarmRestoreSeconds = secs
	}
	time.Sleep(time.Second) // RSS is sampled every 200 ms
	row.WarmPeakRSS = proc.PeakRSS()
	return nil
}

// produceStates writes n completed order states to partition 0 of the
// state topic, as the processor writes them.
func (b *bench) produceStates(ctx context.Context, names topics.Names, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return err
	}
	defer cl.Close()
	now := time.Now().UTC()
	st := &processor.State{Version: processor.StateVersion, Status: processor.StatusCompleted,
		AppliedEvents: []string{""}, CreatedAt: now, UpdatedAt: now}
	for _, step := range processor.Chain {
		st.Step(step).Done = true
		st.Step(step).DoneAt = &now
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%07d", i)
		st.OrderID, st.AppliedEvents[0] = "pi_restore"+id, "evt_restore"+id
		val, err := st.Encode()
		if err != nil {
			return err
		}
		// As the processor writes it: the digest header with the value.
		cl.Produce(ctx, &kgo.Record{Topic: names.State, Partition: 0, Key: []byte(st.OrderID), Value: val,
			Headers: processor.StateHeaders(st, val)}, nil)
	}
	return cl.Flush(ctx)
}

// plainRead reads partition 0 of topic from the start to n records with a
// franz-go consumer that decodes nothing, and returns records per second.
func (b *bench) plainRead(ctx context.Context, topic string, n int) (float64, error) {
	start := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		got += fs.NumRecords()
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// waitRestore waits for the processor's restore and returns its duration.
func waitRestore(ctx context.Context, metrics string, proc *harness.Proc) (float64, error) {
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if sum, count := scrapeHistogram(metrics+"/metrics", "orderflow_state_restore_seconds"); count >= 1 {
			return sum, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("no restore observed in 10 minutes\n%s", proc.LogTail(20))
}

// firstStateWrite waits for the first state record of order id after
// offset from and returns its timestamp (set by the processor's producer).
func firstStateWrite(ctx context.Context, brokers []string, topic, id string, from int) (time.Time, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchMaxWait(50*time.Millisecond),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(int64(from))}}))
	if err != nil {
		return time.Time{}, err
	}
	defer cl.Close()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		fs := cl.PollFetches(wctx)
		if wctx.Err() != nil {
			return time.Time{}, fmt.Errorf("no state of %s within 2 minutes", id)
		}
		var at time.Time
		fs.EachRecord(func(r *kgo.Record) {
			if at.IsZero() && string(r.Key) == id {
				at = r.Timestamp
			}
		})
		if !at.IsZero() {
			return at, nil
		}
	}
}
