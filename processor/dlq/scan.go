package dlq

import (
	"context"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
)

// ErrBadOrderRef: an OF- number that names no order, or several.
var ErrBadOrderRef = fmt.Errorf("dlq: bad order reference")

// IsOrderNumber reports whether ref is an OF- order number rather than an
// order id.
func IsOrderNumber(ref string) bool { return len(ref) > 3 && strings.EqualFold(ref[:3], "OF-") }

// ResolveNumbers returns the order id of each OF- number in numbers. The
// number is derived from the id (integrations.OrderNumber), so it is found
// by reading every key of `orders.state`, not the values: the cost is a
// read of the whole topic. A number without an order, or with several, is
// an error wrapping ErrBadOrderRef.
func (c *Client) ResolveNumbers(ctx context.Context, numbers []string) (map[string]string, error) {
	want := map[string][]string{}
	for _, n := range numbers {
		want[strings.ToUpper(n)] = nil
	}
	spans, err := c.spans(ctx, c.names.State)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	err = c.scan(ctx, c.names.State, spans, func(r *kgo.Record) {
		k := string(r.Key)
		if seen[k] {
			return
		}
		n := integrations.OrderNumber(k)
		if ids, ok := want[n]; ok {
			seen[k] = true
			want[n] = append(ids, k)
		}
	})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range numbers {
		ids := want[strings.ToUpper(n)]
		switch len(ids) {
		case 0:
			return nil, fmt.Errorf("%w: no order on %s has the number %s", ErrBadOrderRef, c.names.State, n)
		case 1:
			out[n] = ids[0]
		default:
			return nil, fmt.Errorf("%w: %s names %d orders (%s): give the order id", ErrBadOrderRef, n, len(ids), strings.Join(ids, ", "))
		}
	}
	return out, nil
}

// EachDigest calls fn for every record of `orders.state` in offset order
// per partition, with the digest of its state (nil for a tombstone): the
// last call for a key is its latest state. The digest is the record's
// header when it checks (processor.RecordDigest), else the state is
// decoded; unreadable states are skipped and counted. It reads the whole
// topic.
func (c *Client) EachDigest(ctx context.Context, fn func(key string, d *processor.Digest)) (skipped int, err error) {
	spans, err := c.spans(ctx, c.names.State)
	if err != nil {
		return 0, err
	}
	err = c.scan(ctx, c.names.State, spans, func(r *kgo.Record) {
		if r.Value == nil {
			fn(string(r.Key), nil)
			return
		}
		if d, ok := processor.RecordDigest(r); ok {
			fn(string(r.Key), &d)
			return
		}
		st, err := processor.DecodeState(r.Value)
		if err != nil {
			skipped++
			return
		}
		d := processor.DigestOf(st)
		fn(string(r.Key), &d)
	})
	return skipped, err
}

// StateAt reads the order's state record at partition/offset of
// `orders.state`, where an index saw it. When that record is gone
// (compacted away after a newer one) or is another key's, it reads the
// order's latest state with OrderState instead.
func (c *Client) StateAt(ctx context.Context, orderID string, partition int32, offset int64) (*processor.State, error) {
	spans, err := c.spans(ctx, c.names.State)
	if err != nil {
		return nil, err
	}
	if s, ok := spans[partition]; ok && offset >= s.start && offset < s.end {
		var found []byte
		err := c.scan(ctx, c.names.State, map[int32]span{partition: {offset, offset + 1}}, func(r *kgo.Record) {
			if r.Offset == offset && string(r.Key) == orderID && r.Value != nil {
				found = r.Value
			}
		})
		if err != nil {
			return nil, err
		}
		if found != nil {
			st, err := processor.DecodeState(found)
			if err != nil {
				return nil, fmt.Errorf("state of order %s at %s %d/%d: %w", orderID, c.names.State, partition, offset, err)
			}
			return st, nil
		}
	}
	return c.OrderState(ctx, orderID)
}
