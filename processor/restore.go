package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
)

// A partition's restore ends when its listed end offset is reached. The
// record just below the end always exists on `orders.state` (compaction
// never cleans the active segment and no transactions write to it), so
// restoreIdle is a last resort against an unexpected gap at the tail: after
// some records arrived, that long without more ends the restore. Without
// any record the restore fails and is retried: ending it would run orders
// without their states.
const restoreIdle = 10 * time.Second

// restore reads partitions p of `orders.state` (co-partitioned with
// `orders`) from the start to the end offset listed now, then releases the
// partitions' records. It retries until it succeeds or every partition
// stops.
func (p *Processor) restore(parts []*partition) {
	start := time.Now()
	stop := make(chan struct{})
	go func() {
		for _, part := range parts {
			<-part.stopCh
		}
		close(stop)
	}()
	ctx, cancel := context.WithCancel(p.ioCtx)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()

	for attempt := 1; ; attempt++ {
		err := p.restoreOnce(ctx, parts)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		p.log.Error("state restore failed; retrying", "attempt", attempt, "err", err)
		if !sleep(min(time.Duration(attempt)*time.Second, 10*time.Second), stop) {
			return
		}
	}
	elapsed := time.Since(start)
	p.m.restore.Observe(elapsed.Seconds())
	nums := make([]int32, len(parts))
	n := 0
	for i, part := range parts {
		nums[i] = part.num
		part.smu.Lock()
		n += len(part.states)
		part.smu.Unlock()
		close(part.ready)
	}
	p.log.Info("order states restored", "partitions", nums, "orders", n, "duration", elapsed)
}

func (p *Processor) restoreOnce(ctx context.Context, parts []*partition) error {
	adm := kadm.NewClient(p.cl)
	ends, err := adm.ListEndOffsets(ctx, p.cfg.Topics.State)
	if err != nil {
		return fmt.Errorf("list end offsets of %s: %w", p.cfg.Topics.State, err)
	}
	starts, err := adm.ListStartOffsets(ctx, p.cfg.Topics.State)
	if err != nil {
		return fmt.Errorf("list start offsets of %s: %w", p.cfg.Topics.State, err)
	}
	want := map[int32]int64{}
	consume := map[int32]kgo.Offset{}
	byNum := map[int32]*partition{}
	for _, part := range parts {
		byNum[part.num] = part
		part.smu.Lock()
		clear(part.states)
		part.smu.Unlock()
		lo, ok := ends.Lookup(p.cfg.Topics.State, part.num)
		if !ok {
			return fmt.Errorf("%s has no partition %d: it must be co-partitioned with %s", p.cfg.Topics.State, part.num, p.cfg.Topics.Orders)
		}
		if lo.Err != nil {
			return fmt.Errorf("end offset of %s/%d: %w", p.cfg.Topics.State, part.num, lo.Err)
		}
		if so, ok := starts.Lookup(p.cfg.Topics.State, part.num); ok && so.Err == nil && so.Offset >= lo.Offset {
			continue // empty: nothing written, or everything deleted
		}
		if lo.Offset > 0 {
			want[part.num] = lo.Offset
			consume[part.num] = kgo.NewOffset().AtStart()
		}
	}
	if len(want) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), p.kgoOpts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{p.cfg.Topics.State: consume}),
		kgo.FetchMaxWait(500*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("restore client: %w", err)
	}
	defer cl.Close()

	lastProgress, progressed := time.Now(), false
	for len(want) > 0 {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("read %s: %w", p.cfg.Topics.State, ferr)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			part := byNum[r.Partition]
			end, ok := want[r.Partition]
			if part == nil || !ok {
				return
			}
			lastProgress = time.Now()
			progressed = true
			p.restoreRecord(part, r)
			if r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
		if len(want) > 0 && time.Since(lastProgress) > restoreIdle {
			if !progressed {
				return fmt.Errorf("read %s: no record within %s", p.cfg.Topics.State, restoreIdle)
			}
			p.log.Warn("state restore ended before the listed end offset: nothing more to read", "partitions", len(want))
			return nil
		}
	}
	return nil
}

func (p *Processor) restoreRecord(part *partition, r *kgo.Record) {
	key := string(r.Key)
	if r.Value == nil { // tombstone
		part.smu.Lock()
		delete(part.states, key)
		part.smu.Unlock()
		return
	}
	st, err := DecodeState(r.Value)
	if err != nil || st.OrderID != key {
		if err == nil {
			err = fmt.Errorf("%w: order id %q under key %q", ErrStateInvalid, st.OrderID, key)
		}
		p.m.corruptStates.Inc()
		p.log.Error("skipping unreadable order state", "partition", r.Partition, "offset", r.Offset, "order_id", key, "err", err)
		p.alert(integrations.Alert{OrderID: key, Text: fmt.Sprintf("unreadable order state at %s %d/%d skipped: %v", p.cfg.Topics.State, r.Partition, r.Offset, err)})
		return
	}
	part.smu.Lock()
	part.states[key] = st
	part.smu.Unlock()
}
