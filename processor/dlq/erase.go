package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
)

// ErrEraseUnconfirmed is returned by Erase when no processor wrote the
// erasure marker within the wait.
var ErrEraseUnconfirmed = errors.New("dlq: erase not confirmed")

// Erasure is what Erase did.
type Erasure struct {
	Partition int32
	// Already is set when the order was erased before (At is when).
	Already bool
	// Request is where the erase request was written on `orders`.
	Request string
	// Marker is where the processor's erasure marker is on `orders.state`
	// ("" when not waited for).
	Marker string
	At     time.Time
}

// Erase asks the processor that owns the order's partition to erase the
// order's state: it writes an erase request (no customer data) to that
// partition of `orders`, where it runs in order with the order's other
// records, and waits up to wait (0: does not wait) for the erasure marker
// on `orders.state`. It returns an error wrapping ErrOrderNotFound for an
// order without a state, and ErrEraseUnconfirmed when the wait passed.
func (c *Client) Erase(ctx context.Context, orderID string, st *processor.State, partition int32, wait time.Duration) (Erasure, error) {
	e := Erasure{Partition: partition}
	if st.Status == processor.StatusErased {
		e.Already = true
		if st.ErasedAt != nil {
			e.At = *st.ErasedAt
		}
		return e, nil
	}
	spans, err := c.spans(ctx, c.names.State)
	if err != nil {
		return e, err
	}
	from := spans[partition].end
	now := time.Now().UTC()
	val, err := processor.EraseRequest(orderID, now)
	if err != nil {
		return e, err
	}
	out, err := c.cl.ProduceSync(ctx, &kgo.Record{Topic: c.names.Orders, Partition: partition, Key: []byte(orderID), Value: val,
		Headers: []kgo.RecordHeader{{Key: topics.HeaderEventType, Value: []byte(processor.EventEraseRequested)}}}).First()
	if err != nil {
		return e, fmt.Errorf("write the erase request to %s/%d: %w", c.names.Orders, partition, err)
	}
	e.Request = topics.Source(out.Partition, out.Offset)
	if wait <= 0 {
		return e, nil
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	cl, err := kgo.NewClient(append(slices.Clone(c.opts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.names.State: {partition: kgo.NewOffset().At(from)}}),
		kgo.FetchMaxWait(250*time.Millisecond))...)
	if err != nil {
		return e, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(wctx)
		if wctx.Err() != nil {
			if ctx.Err() != nil {
				return e, ctx.Err()
			}
			return e, fmt.Errorf("%w within %s: the request %s of %s is kept and runs when a processor owns partition %d",
				ErrEraseUnconfirmed, wait, e.Request, c.names.Orders, partition)
		}
		var found bool
		fs.EachRecord(func(r *kgo.Record) {
			if found || string(r.Key) != orderID || r.Value == nil {
				return
			}
			if s, err := processor.DecodeState(r.Value); err == nil && s.Status == processor.StatusErased {
				found = true
				e.Marker = topics.Source(r.Partition, r.Offset)
				if s.ErasedAt != nil {
					e.At = *s.ErasedAt
				}
			}
		})
		if found {
			return e, nil
		}
	}
}

// LabelFiles names the shipping label and customs declaration of an order
// as its shipping result stored them (a file:// location as its path): an
// erasure leaves them, and the result that named them is erased.
func LabelFiles(st *processor.State) []string {
	ship := st.Steps[processor.StepShipping]
	if ship == nil || !ship.Done || len(ship.Result) == 0 {
		return nil
	}
	var sh integrations.Shipment
	if json.Unmarshal(ship.Result, &sh) != nil {
		return nil
	}
	var out []string
	for _, f := range []struct{ what, loc string }{{"the shipping label file", sh.LabelLocation}, {"the customs declaration file", sh.CustomsLocation}} {
		if f.loc == "" {
			continue
		}
		if u, err := url.Parse(f.loc); err == nil && u.Scheme == "file" && u.Path != "" {
			f.loc = filepath.FromSlash(u.Path)
		}
		out = append(out, f.what+" "+f.loc)
	}
	return out
}

// NotErased says what an erasure of the order whose state was st leaves:
// the label and customs files by their paths (or the carrier's, when the
// label was not stored as a file), and the order's records on the orders
// topic (7 days) and the dead-letter topic (30 days).
func NotErased(st *processor.State, names topics.Names) string {
	records := fmt.Sprintf("the order's records on %s (7 days) and %s (30 days)", names.Orders, names.DLQ)
	if files := LabelFiles(st); len(files) > 0 {
		return strings.Join(files, " and ") + ", and " + records
	}
	if ship := st.Steps[processor.StepShipping]; ship != nil && ship.Done && len(ship.Result) > 0 {
		return "the shipping label and any customs declaration the carrier holds, and " + records
	}
	return records
}
