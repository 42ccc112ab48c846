package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/topics"
)

// Layout is what the console found in the cluster: its identity and the
// partitions of each followed topic.
type Layout struct {
	Identity   Identity
	Partitions map[string]int32
	// Missing lists followed topics that do not exist (only orders.audit
	// may be missing; the console then has no audit log).
	Missing []string
}

// Discover reads the cluster id and the followed topics' ids and
// partition counts. orders, orders.state and orders.dlq must exist.
func Discover(ctx context.Context, adm *kadm.Client, names topics.Names) (Layout, error) {
	all := []string{names.Orders, names.State, names.DLQ, names.Audit}
	md, err := adm.Metadata(ctx, all...)
	if err != nil {
		return Layout{}, fmt.Errorf("console: read topic metadata: %w", err)
	}
	l := Layout{Identity: Identity{ClusterID: md.Cluster, Topics: map[string]string{}}, Partitions: map[string]int32{}}
	for _, t := range all {
		d, ok := md.Topics[t]
		if !ok || d.Err != nil || len(d.Partitions) == 0 {
			if t == names.Audit && (!ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) || d.Err == nil) {
				l.Missing = append(l.Missing, t)
				continue
			}
			if !ok || d.Err == nil || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
				return Layout{}, fmt.Errorf("console: topic %s does not exist (run 'orderflow topics create')", t)
			}
			return Layout{}, fmt.Errorf("console: topic %s: %w", t, d.Err)
		}
		l.Identity.Topics[t] = d.ID.String()
		l.Partitions[t] = int32(len(d.Partitions))
	}
	return l, nil
}

// Follower reads the followed topics into the index, from the index's
// checkpoints (the start of each partition for a new index), and keeps
// following. It uses no consumer group: its position is the checkpoint in
// the index, so it never disturbs the processors' group, and any number of
// processors can write what it reads.
type Follower struct {
	names  topics.Names
	opts   []kgo.Opt
	ix     *Index
	layout Layout
	log    *slog.Logger

	mu      sync.Mutex
	high    map[string]map[int32]int64
	caught  bool
	lastErr string
}

// NewFollower returns a follower of the topics in layout into ix. opts are
// the connection options.
func NewFollower(names topics.Names, opts []kgo.Opt, ix *Index, layout Layout, log *slog.Logger) *Follower {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Follower{names: names, opts: opts, ix: ix, layout: layout, log: log, high: map[string]map[int32]int64{}}
}

// Run follows until ctx ends.
func (f *Follower) Run(ctx context.Context) error {
	offsets := f.ix.Offsets()
	want := map[string]map[int32]kgo.Offset{}
	for t, n := range f.layout.Partitions {
		want[t] = map[int32]kgo.Offset{}
		for p := range n {
			if o, ok := offsets[t][p]; ok {
				want[t][p] = kgo.NewOffset().At(o)
			} else {
				want[t][p] = kgo.NewOffset().AtStart()
			}
		}
	}
	cl, err := kgo.NewClient(append(slices.Clone(f.opts),
		kgo.ConsumePartitions(want),
		// An offset below the log start (retention passed while the
		// console was stopped) resumes at the start.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Fetches bounded so the records in memory stay small against
		// the index's cache (the console's RSS is measured by make bench):
		// the bounds are of compressed bytes, a fetch held decompressed
		// is several times larger, and a record read keeps its whole
		// batch in memory. 2 MiB rather than 4 took the console's peak RSS
		// from 239–254 to 219–222 MiB at 1,000,000 orders, its catch-up
		// unchanged (make bench, four runs of each, interleaved).
		kgo.FetchMaxBytes(2<<20),
		kgo.FetchMaxPartitionBytes(1<<20),
		kgo.FetchMaxWait(500*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("console: kafka client: %w", err)
	}
	defer cl.Close()
	go f.watchHigh(ctx, kadm.NewClient(cl))
	// Polls are decoded on one goroutine while the index writes the one
	// before on this one: a catch-up keeps both busy, with at most two
	// polls in memory besides the client's buffered fetch.
	polls := make(chan *Decoded)
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		defer close(polls)
		for {
			fs := cl.PollRecords(pctx, 2000)
			if pctx.Err() != nil {
				return
			}
			for _, fe := range fs.Errors() {
				if errors.Is(fe.Err, context.Canceled) {
					continue
				}
				f.setErr(fmt.Sprintf("read %s/%d: %v", fe.Topic, fe.Partition, fe.Err))
				f.log.Warn("console: read failed; retrying", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
			}
			fs.EachPartition(func(p kgo.FetchTopicPartition) {
				f.mu.Lock()
				if f.high[p.Topic] == nil {
					f.high[p.Topic] = map[int32]int64{}
				}
				if p.HighWatermark > f.high[p.Topic][p.Partition] {
					f.high[p.Topic][p.Partition] = p.HighWatermark
				}
				f.mu.Unlock()
			})
			d := Decode(f.names, fs.Records())
			select {
			case polls <- d:
			case <-pctx.Done():
				return
			}
		}
	}()
	for d := range polls {
		n, err := f.ix.ApplyDecoded(d)
		if err != nil {
			return err
		}
		if n > 0 {
			f.setErr("")
		}
	}
	return nil
}

// watchHigh lists the end offsets now and then, so Behind is right while
// no record arrives.
func (f *Follower) watchHigh(ctx context.Context, adm *kadm.Client) {
	var ts []string
	for t := range f.layout.Partitions {
		ts = append(ts, t)
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ends, err := adm.ListEndOffsets(lctx, ts...)
		cancel()
		if err == nil {
			f.mu.Lock()
			ends.Each(func(o kadm.ListedOffset) {
				if o.Err != nil {
					return
				}
				if f.high[o.Topic] == nil {
					f.high[o.Topic] = map[int32]int64{}
				}
				if o.Offset > f.high[o.Topic][o.Partition] {
					f.high[o.Topic][o.Partition] = o.Offset
				}
			})
			f.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (f *Follower) setErr(s string) {
	f.mu.Lock()
	f.lastErr = s
	f.mu.Unlock()
}

// Progress is how far the index is behind the topics.
type Progress struct {
	// Behind is the number of records not yet read; an index that has never
	// caught up reports Known false until the end offsets are listed.
	Behind int64  `json:"behind"`
	Known  bool   `json:"known"`
	Error  string `json:"error,omitempty"`
}

// Progress reports how far behind the index is.
func (f *Follower) Progress() Progress {
	offsets := f.ix.Offsets()
	f.mu.Lock()
	defer f.mu.Unlock()
	p := Progress{Error: f.lastErr, Known: len(f.high) > 0}
	for t, ps := range f.high {
		for part, hw := range ps {
			if d := hw - offsets[t][part]; d > 0 {
				p.Behind += d
			}
		}
	}
	return p
}

// CaughtUp reports whether the index has read up to the end offsets last
// listed.
func (f *Follower) CaughtUp() bool {
	p := f.Progress()
	return p.Known && p.Behind == 0
}

// WaitCaughtUp waits until the index has read every record written before
// the call, or ctx ends.
func (f *Follower) WaitCaughtUp(ctx context.Context, adm *kadm.Client) error {
	var ts []string
	for t := range f.layout.Partitions {
		ts = append(ts, t)
	}
	ends, err := adm.ListEndOffsets(ctx, ts...)
	if err != nil {
		return err
	}
	for {
		offsets := f.ix.Offsets()
		done := true
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err == nil && o.Offset > offsets[o.Topic][o.Partition] {
				done = false
			}
		})
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
