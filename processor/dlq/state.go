package dlq

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/statestore"
)

// keyPartition is the partition of key among n: the murmur2 hash franz-go's
// default partitioner (and Kafka's Java client) uses for keyed records, which
// is how the gateway places an order on `orders` and so where the processor
// writes its state on the co-partitioned `orders.state`.
func keyPartition(key string, n int) int32 {
	tp := kgo.StickyKeyPartitioner(nil).ForTopic("")
	return int32(tp.Partition(&kgo.Record{Key: []byte(key)}, n))
}

// OrderState returns the latest state of an order, or an error wrapping
// ErrOrderNotFound (also when its latest record is a tombstone). It reads
// the order's partition of `orders.state` from the end backwards
// (statestore.Latest) and, should the order not be there, the other
// partitions the same way.
func (c *Client) OrderState(ctx context.Context, orderID string) (*processor.State, error) {
	st, _, err := c.OrderStateAt(ctx, orderID)
	return st, err
}

// OrderStateAt is OrderState that also returns the partition the state is
// on.
func (c *Client) OrderStateAt(ctx context.Context, orderID string) (*processor.State, int32, error) {
	spans, err := c.spans(ctx, c.names.State)
	if err != nil {
		return nil, 0, err
	}
	home := keyPartition(orderID, len(spans))
	order := []int32{home}
	for p := range spans {
		if p != home {
			order = append(order, p)
		}
	}
	slices.Sort(order[1:])
	for _, p := range order {
		s := spans[p]
		r, err := statestore.Latest(ctx, c.opts, c.names.State, p, []byte(orderID), s.start, s.end)
		if err != nil {
			return nil, 0, err
		}
		if r == nil {
			continue
		}
		if r.Value == nil {
			break // removed: a tombstone is its latest record
		}
		st, err := processor.DecodeState(r.Value)
		if err != nil {
			return nil, 0, fmt.Errorf("state of order %s at %s %d/%d: %w", orderID, c.names.State, r.Partition, r.Offset, err)
		}
		return st, p, nil
	}
	return nil, 0, fmt.Errorf("%w: order %s not found", ErrOrderNotFound, orderID)
}

// OrderStates returns the latest state of each order that has one. where
// maps each order id to the partition of `orders.state` its state is on (the
// partition of its `orders` records); a partition < 0 means the key's
// partition. Each partition is read once.
func (c *Client) OrderStates(ctx context.Context, where map[string]int32) (map[string]*processor.State, error) {
	if len(where) == 0 {
		return map[string]*processor.State{}, nil
	}
	spans, err := c.spans(ctx, c.names.State)
	if err != nil {
		return nil, err
	}
	seen := map[int32]bool{}
	var parts []int32
	keys := make([]string, 0, len(where))
	for id, p := range where {
		keys = append(keys, id)
		if _, ok := spans[p]; !ok {
			p = keyPartition(id, len(spans))
		}
		if !seen[p] {
			seen[p] = true
			parts = append(parts, p)
		}
	}
	return c.statesIn(ctx, spans, parts, keys)
}

// statesIn scans partitions of `orders.state` and keeps the last value of
// each wanted key; a tombstone (nil value) removes it.
func (c *Client) statesIn(ctx context.Context, spans map[int32]span, parts []int32, keys []string) (map[string]*processor.State, error) {
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	sel := map[int32]span{}
	for _, p := range parts {
		if s, ok := spans[p]; ok {
			sel[p] = s
		}
	}
	latest := map[string][]byte{}
	var where = map[string]string{}
	err := c.scan(ctx, c.names.State, sel, func(r *kgo.Record) {
		k := string(r.Key)
		if !want[k] {
			return
		}
		if r.Value == nil {
			delete(latest, k)
			return
		}
		latest[k] = r.Value
		where[k] = fmt.Sprintf("%d/%d", r.Partition, r.Offset)
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]*processor.State, len(latest))
	for k, v := range latest {
		st, err := processor.DecodeState(v)
		if err != nil {
			return nil, fmt.Errorf("state of order %s at %s %s: %w", k, c.names.State, where[k], err)
		}
		out[k] = st
	}
	return out, nil
}
