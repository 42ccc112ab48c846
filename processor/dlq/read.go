package dlq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/topics"
	"github.com/orderflow/orderflow/topics/tracing"
)

// Client reads the dead-letter and state topics and replays dead letters.
// Build it with New and Close it when done.
type Client struct {
	names topics.Names
	opts  []kgo.Opt
	cl    *kgo.Client // admin requests and replay produces
	adm   *kadm.Client
	tr    *tracing.Tracing
}

// SetTracing traces replays (nil, the default, is off): each dead letter
// sent again gets a span of its own, a new trace linked to the order's, and
// the replayed record carries that span's context. Call it before use.
func (c *Client) SetTracing(t *tracing.Tracing) { c.tr = t }

// New returns a Client for the topics in names. opts are the connection
// options (seed brokers, TLS, SASL); the client adds what it needs to read
// and to produce safely (acks=all, idempotent, explicit partitions).
func New(names topics.Names, opts []kgo.Opt) (*Client, error) {
	if names.Orders == "" || names.State == "" || names.DLQ == "" {
		return nil, errors.New("dlq: topic names are required (use topics.New)")
	}
	popts := append(slices.Clone(opts),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.MetadataMinAge(250*time.Millisecond),
		// A replay waits for every acknowledgement; a broker that stays away
		// fails the records instead of hanging the command.
		kgo.RecordDeliveryTimeout(30*time.Second),
	)
	cl, err := kgo.NewClient(popts...)
	if err != nil {
		return nil, fmt.Errorf("dlq: kafka client: %w", err)
	}
	return &Client{names: names, opts: slices.Clone(opts), cl: cl, adm: kadm.NewClient(cl)}, nil
}

// Close releases the client's connections.
func (c *Client) Close() { c.cl.Close() }

// Names returns the topic names the client works on.
func (c *Client) Names() topics.Names { return c.names }

// span is the part of one partition a read covers: [start, end).
type span struct{ start, end int64 }

// spans lists each partition's start and end offsets of topic now.
func (c *Client) spans(ctx context.Context, topic string) (map[int32]span, error) {
	ends, err := c.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("topic %s does not exist (run 'orderflow topics create')", topic)
		}
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	starts, err := c.adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	out := map[int32]span{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Partition < 0 {
			return
		}
		s := span{end: o.Offset}
		if so, ok := starts.Lookup(topic, o.Partition); ok {
			s.start = so.Offset
		}
		out[o.Partition] = s
	})
	if len(out) == 0 {
		return nil, fmt.Errorf("topic %s does not exist (run 'orderflow topics create')", topic)
	}
	return out, nil
}

// scan reads the given spans of topic in offset order per partition and
// calls fn for every record, then returns; it never waits for records
// written after the spans were listed.
func (c *Client) scan(ctx context.Context, topic string, spans map[int32]span, fn func(*kgo.Record)) error {
	want := map[int32]kgo.Offset{}
	for p, s := range spans {
		if s.start < s.end {
			want[p] = kgo.NewOffset().At(s.start)
		}
	}
	if len(want) == 0 {
		return nil
	}
	opts := append(slices.Clone(c.opts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: want}),
		kgo.FetchMaxWait(200*time.Millisecond),
		// A short-lived reader: when a partition moves or is not ready
		// yet, look again soon rather than after the default 5 s.
		kgo.MetadataMinAge(250*time.Millisecond),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	pending := len(want)
	done := map[int32]bool{}
	for pending > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %s: %w", topic, err)
		}
		for _, fe := range fs.Errors() {
			if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
				continue
			}
			return fmt.Errorf("read %s partition %d: %w", fe.Topic, fe.Partition, fe.Err)
		}
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			s := spans[ftp.Partition]
			if done[ftp.Partition] {
				return
			}
			for _, r := range ftp.Records {
				if r.Offset >= s.end {
					break
				}
				fn(r)
			}
			// Done when the last listed offset was seen, or when the
			// broker says nothing is left below the listed end (the last
			// offsets were transaction markers or were compacted away).
			last := int64(-1)
			if n := len(ftp.Records); n > 0 {
				last = ftp.Records[n-1].Offset
			}
			if last >= s.end-1 || (ftp.HighWatermark >= s.end && ftp.LastStableOffset >= s.end && len(ftp.Records) == 0) {
				done[ftp.Partition] = true
				pending--
				cl.PauseFetchPartitions(map[string][]int32{topic: {ftp.Partition}})
			}
		})
	}
	return nil
}

// List returns the dead letters that f selects, in partition then offset
// order.
func (c *Client) List(ctx context.Context, f Filter) ([]DeadLetter, error) {
	spans, err := c.spans(ctx, c.names.DLQ)
	if err != nil {
		return nil, err
	}
	if len(f.Sources) > 0 {
		spans = narrow(spans, f.Sources)
	}
	var out []DeadLetter
	err = c.scan(ctx, c.names.DLQ, spans, func(r *kgo.Record) {
		if d := FromRecord(r); f.Match(d) {
			out = append(out, d)
		}
	})
	if err != nil {
		return nil, err
	}
	sortDeadLetters(out)
	return out, nil
}

// narrow limits spans to the partitions and offset range of sources (dead
// letters picked one by one), so picking a few reads only around them.
func narrow(spans map[int32]span, sources []string) map[int32]span {
	out := map[int32]span{}
	for _, src := range sources {
		p, o, err := ParseSource(src)
		if err != nil {
			continue
		}
		s, ok := spans[p]
		if !ok || o < s.start || o >= s.end {
			continue
		}
		if n, ok := out[p]; ok {
			out[p] = span{start: min(n.start, o), end: max(n.end, o+1)}
		} else {
			out[p] = span{start: o, end: o + 1}
		}
	}
	return out
}

// Get returns the dead letter at partition/offset, or ErrNotFound.
func (c *Client) Get(ctx context.Context, partition int32, offset int64) (DeadLetter, error) {
	spans, err := c.spans(ctx, c.names.DLQ)
	if err != nil {
		return DeadLetter{}, err
	}
	s, ok := spans[partition]
	if !ok || offset < s.start || offset >= s.end {
		return DeadLetter{}, fmt.Errorf("%w at %s", ErrNotFound, topics.Source(partition, offset))
	}
	var found *DeadLetter
	err = c.scan(ctx, c.names.DLQ, map[int32]span{partition: {offset, offset + 1}}, func(r *kgo.Record) {
		if r.Offset == offset {
			d := FromRecord(r)
			found = &d
		}
	})
	if err != nil {
		return DeadLetter{}, err
	}
	if found == nil {
		return DeadLetter{}, fmt.Errorf("%w at %s", ErrNotFound, topics.Source(partition, offset))
	}
	return *found, nil
}

func sortDeadLetters(ds []DeadLetter) {
	slices.SortFunc(ds, func(a, b DeadLetter) int { return bySource(a.Partition, a.Offset, b.Partition, b.Offset) })
}

// bySource orders records by partition, then offset.
func bySource(pa int32, oa int64, pb int32, ob int64) int {
	return cmp.Or(cmp.Compare(pa, pb), cmp.Compare(oa, ob))
}
