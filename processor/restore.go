package processor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor/statestore"
)

// A partition's restore ends when its listed end offset is reached. The
// record just below the end always exists on `orders.state` (compaction
// never cleans the active segment and no transactions write to it), so
// restoreIdle is a last resort against an unexpected gap at the tail: after
// some records arrived, that long without more ends the restore. Without
// any record the restore fails and is retried: ending it would run orders
// without their states.
const restoreIdle = 10 * time.Second

// restoreFetchBytes caps one fetch of the changelog during a restore.
var restoreFetchBytes int32 = 1 << 20

// defaultDeleteRetention is Kafka's delete.retention.ms default, used when
// the topic's configuration cannot be read.
const defaultDeleteRetention = 24 * time.Hour

// restore brings the local store of a newly assigned partition up to date
// with partition p of `orders.state` (co-partitioned with `orders`), then
// releases the partition's records: it opens the store, rebuilds it when it
// is missing, foreign, corrupt or stale, and reads the changelog from the
// store's checkpoint to the end offset listed now. It retries until it
// succeeds or the partition stops.
func (p *Processor) restore(part *partition) {
	defer close(part.restored)
	start := time.Now()
	ctx, cancel := context.WithCancel(p.ioCtx)
	defer cancel()
	go func() {
		select {
		case <-part.stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	var res restoreResult
	for attempt := 1; ; attempt++ {
		var err error
		res, err = p.restoreOnce(ctx, part)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		p.log.Error("state restore failed; retrying", "partition", part.num, "attempt", attempt, "err", err)
		if !sleep(min(time.Duration(attempt)*time.Second, 10*time.Second), part.stopCh) {
			return
		}
	}
	elapsed := time.Since(start)
	p.m.restore.Observe(elapsed.Seconds())
	p.m.restoredStates.Add(float64(res.read))
	part.store.CountInBackground()
	close(part.ready)
	p.log.Info("order states restored", "partition", part.num, "from_offset", res.from, "to_offset", res.end,
		"records_read", res.read, "rebuilt", res.rebuilt, "duration", elapsed)
}

type restoreResult struct {
	from, end int64
	read      int64
	rebuilt   string // why the store was rebuilt; "" when its copy was current
}

// storeDir is the folder of a partition's store under the state folder.
func (p *Processor) storeDir(num int32) string {
	return filepath.Join(p.stateRoot, p.cfg.Topics.State, strconv.Itoa(int(num)))
}

func (p *Processor) restoreOnce(ctx context.Context, part *partition) (restoreResult, error) {
	var res restoreResult
	topic := p.cfg.Topics.State
	adm := kadm.NewClient(p.cl)
	meta, err := adm.Metadata(ctx, topic)
	if err != nil {
		return res, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	td, ok := meta.Topics[topic]
	if !ok || td.Err != nil {
		return res, fmt.Errorf("metadata of %s: topic missing (%v)", topic, td.Err)
	}
	if _, ok := td.Partitions[part.num]; !ok {
		return res, fmt.Errorf("%s has no partition %d: it must be co-partitioned with %s", topic, part.num, p.cfg.Topics.Orders)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return res, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return res, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	lo, ok := ends.Lookup(topic, part.num)
	if !ok || lo.Err != nil {
		return res, fmt.Errorf("end offset of %s/%d: %v", topic, part.num, lo.Err)
	}
	so, ok := starts.Lookup(topic, part.num)
	if !ok || so.Err != nil {
		return res, fmt.Errorf("start offset of %s/%d: %v", topic, part.num, so.Err)
	}
	end, logStart := lo.Offset, min(so.Offset, lo.Offset)

	if part.store == nil {
		id := statestore.Identity{ClusterID: meta.Cluster, Topic: topic, TopicID: td.ID.String(), Partition: part.num}
		num := part.num
		st, rebuilt, err := statestore.Open(p.storeDir(part.num), id, statestore.Options{Logger: p.log, Cache: p.blockCache,
			OnCorrupt: func(err error) {
				// Pebble retries the compaction that found it for ever, a
				// core's worth of CPU; the store is marked for a rebuild,
				// which the next start does.
				p.m.storeFailures.Inc()
				p.alert(integrations.Alert{Text: fmt.Sprintf("local state store of partition %d is corrupt (%v): the processor stops; its next start rebuilds the store from %s", num, err, p.cfg.Topics.State)})
				p.stopFor(fmt.Errorf("processor: local state store of partition %d is corrupt; restart to rebuild it from %s: %w", num, p.cfg.Topics.State, err))
			}})
		if err != nil {
			return res, err
		}
		part.store = st
		res.rebuilt = rebuilt
	}
	ck, at := part.store.Checkpoint()
	stale := ""
	switch {
	case ck > end:
		stale = fmt.Sprintf("checkpoint %d is beyond the log end %d (topic recreated or truncated)", ck, end)
	case res.rebuilt == "" && ck < logStart:
		stale = fmt.Sprintf("checkpoint %d is below the log start %d (records deleted)", ck, logStart)
	case res.rebuilt == "" && ck < end && time.Since(at) > p.deleteRetention(ctx, adm):
		stale = fmt.Sprintf("checkpoint written %s ago, longer than the topic keeps tombstones", time.Since(at).Round(time.Second))
	}
	if stale != "" || ck < logStart {
		if stale != "" {
			p.log.Warn("local state store is stale; rebuilding it from the changelog", "partition", part.num, "reason", stale)
			res.rebuilt = "stale: " + stale
		}
		if err := part.store.Reset(logStart); err != nil {
			return res, err
		}
		ck = logStart
	}
	res.from, res.end = ck, end
	if res.rebuilt != "" {
		p.m.storeRebuilds.Inc()
	}
	load := part.store.Load()
	finished := false
	finish := func() error { finished = true; return load.Finish(end) }
	defer func() {
		if !finished {
			load.Abort()
		}
	}()
	if ck >= end {
		return res, finish()
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), p.kgoOpts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part.num: kgo.NewOffset().At(ck)}}),
		kgo.FetchMaxWait(500*time.Millisecond),
		// Fetches are compressed: 1 MiB of JSON states is 5 to 10 MiB
		// once decompressed, and franz-go holds up to three of them (one
		// read, one buffered, one arriving): what the restore's memory
		// depends on. Larger fetches do not read faster.
		kgo.FetchMaxBytes(restoreFetchBytes),
		kgo.FetchMaxPartitionBytes(restoreFetchBytes),
	)...)
	if err != nil {
		return res, fmt.Errorf("restore client: %w", err)
	}
	defer cl.Close()

	lastProgress, progressed := time.Now(), false
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return res, fmt.Errorf("read %s: %w", topic, ferr)
		}
		done := false
		var aerr error
		fetches.EachRecord(func(r *kgo.Record) {
			if done || aerr != nil || r.Partition != part.num || r.Offset < ck {
				return
			}
			if r.Offset >= end {
				done = true
				return
			}
			lastProgress, progressed = time.Now(), true
			res.read++
			if p.validRecord(r) {
				aerr = load.Add(r.Key, r.Value, r.Offset)
			}
			if r.Offset+1 >= end {
				done = true
			}
		})
		if aerr != nil {
			return res, aerr
		}
		if done {
			return res, finish()
		}
		if time.Since(lastProgress) > restoreIdle {
			if !progressed {
				return res, fmt.Errorf("read %s: no record within %s", topic, restoreIdle)
			}
			p.log.Warn("state restore ended before the listed end offset: nothing more to read", "partition", part.num)
			return res, finish()
		}
	}
}

// deleteRetention is how long `orders.state` keeps tombstones: a store
// whose checkpoint is older may have missed one that compaction removed.
func (p *Processor) deleteRetention(ctx context.Context, adm *kadm.Client) time.Duration {
	rcs, err := adm.DescribeTopicConfigs(ctx, p.cfg.Topics.State)
	if err != nil {
		return defaultDeleteRetention
	}
	rc, err := rcs.On(p.cfg.Topics.State, nil)
	if err != nil {
		return defaultDeleteRetention
	}
	for _, c := range rc.Configs {
		if c.Key == "delete.retention.ms" && c.Value != nil {
			if ms, err := strconv.ParseInt(*c.Value, 10, 64); err == nil && ms > 0 {
				return time.Duration(ms) * time.Millisecond
			}
		}
	}
	return defaultDeleteRetention
}

// validRecord reports whether a changelog record can go into the store: a
// tombstone, or a state record of a version this build reads, under its
// own order id. Records the processor writes (encoding/json, "v" and
// "order_id" first) pass on a look at their first bytes; any other is
// decoded in full. An unreadable record is skipped with an alert and a
// metric: the key keeps its previous state. A record that passes and still
// fails to decode when the order is read is dead-lettered with the event
// that read it.
func (p *Processor) validRecord(r *kgo.Record) bool {
	if r.Value == nil {
		return true
	}
	key := string(r.Key)
	if quickValid(r.Key, r.Value) {
		return true
	}
	st, err := DecodeState(r.Value)
	if err == nil && st.OrderID != key {
		err = fmt.Errorf("%w: order id %q under key %q", ErrStateInvalid, st.OrderID, key)
	}
	if err == nil {
		return true
	}
	p.m.corruptStates.Inc()
	p.log.Error("skipping unreadable order state", "partition", r.Partition, "offset", r.Offset, "order_id", key, "err", err)
	p.alert(integrations.Alert{OrderID: key, Text: fmt.Sprintf("unreadable order state at %s %d/%d skipped: %v", p.cfg.Topics.State, r.Partition, r.Offset, err)})
	return false
}

// quickValid checks that val starts `{"v":<1..StateVersion>,"order_id":"<key>"`,
// ends with '}' and holds no null.
func quickValid(key, val []byte) bool {
	rest, ok := bytes.CutPrefix(val, []byte(`{"v":`))
	if !ok || len(rest) < 2 || rest[0] < '1' || rest[0] > '0'+StateVersion || rest[1] != ',' {
		return false
	}
	rest, ok = bytes.CutPrefix(rest[2:], []byte(`"order_id":"`))
	if !ok || !bytes.HasPrefix(rest, key) || len(rest) <= len(key) || rest[len(key)] != '"' || val[len(val)-1] != '}' {
		return false
	}
	for _, c := range key {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return false // escaped in JSON: decode in full
		}
	}
	// The processor never writes a null; a null step is unreadable.
	return !hasNullValue(val)
}

// hasNullValue reports whether val holds `:null`. It looks for the 'u',
// rare in a state record, where bytes.Contains stops at every ':'
// (a fifth of a restore's time).
func hasNullValue(val []byte) bool {
	for i := 0; ; i++ {
		j := bytes.IndexByte(val[i:], 'u')
		if j < 0 {
			return false
		}
		i += j
		if i >= 2 && i+2 < len(val) && val[i-2] == ':' && val[i-1] == 'n' && val[i+1] == 'l' && val[i+2] == 'l' {
			return true
		}
	}
}
