package statestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Latest returns the latest record of key in [start, end) of one partition
// of a changelog, reading from the end backwards in spans that grow four
// times each (512, 2048, ... records): the first span that holds the key
// holds its latest record. It costs what was written after the key's last
// change, not the partition's size, though an order untouched since the
// partition's start still means reading all of it. A nil record means the
// key has none; a tombstone is returned as a record with a nil value.
func Latest(ctx context.Context, opts []kgo.Opt, topic string, partition int32, key []byte, start, end int64) (*kgo.Record, error) {
	span := int64(512)
	for hi := end; hi > start; {
		lo := max(start, hi-span)
		r, err := lastIn(ctx, opts, topic, partition, key, lo, hi)
		if err != nil || r != nil {
			return r, err
		}
		hi = lo
		span *= 4
	}
	return nil, nil
}

// lastIn reads [lo, hi) of the partition and returns key's last record.
func lastIn(ctx context.Context, opts []kgo.Opt, topic string, partition int32, key []byte, lo, hi int64) (*kgo.Record, error) {
	cl, err := kgo.NewClient(append(slices.Clone(opts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(lo)}}),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.MetadataMinAge(250*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	var found *kgo.Record
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s/%d: %w", topic, partition, err)
		}
		for _, fe := range fs.Errors() {
			if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
				continue
			}
			return nil, fmt.Errorf("read %s/%d: %w", topic, partition, fe.Err)
		}
		done := false
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				if r.Offset >= hi {
					done = true
					break
				}
				if r.Offset >= lo && bytes.Equal(r.Key, key) {
					found = r
				}
				if r.Offset >= hi-1 {
					done = true
				}
			}
			// Nothing left below hi: the last offsets were compacted away.
			if len(p.Records) == 0 && p.HighWatermark >= hi {
				done = true
			}
		})
		if done {
			return found, nil
		}
	}
}
