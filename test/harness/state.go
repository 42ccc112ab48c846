package harness

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor"
)

// States follows `orders.state` from the beginning and keeps the latest
// state of every order.
type States struct {
	cl     *kgo.Client
	topic  string
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	next    map[int32]int64 // by partition, the offset after the last record read
	latest  map[string]*processor.State
	firstAt map[string]time.Time // first time an order was seen completed
	corrupt int
	changed chan struct{}
	// completedOnly: decode only the records of completed orders.
	completedOnly bool
}

// completedMarker is how an encoded state of a completed order shows it.
var completedMarker = []byte(`"status":"` + string(processor.StatusCompleted) + `"`)

// FollowStates starts following the state topic.
func FollowStates(brokers []string, stateTopic string, opts ...kgo.Opt) (*States, error) {
	return followStates(brokers, stateTopic, false, opts...)
}

// FollowCompletions follows the state topic like FollowStates but decodes
// only the records that complete an order (one in six during a drain), so a
// benchmark's observer takes little of the CPU it measures. Get, Counts and
// IDs see completed orders only.
func FollowCompletions(brokers []string, stateTopic string, opts ...kgo.Opt) (*States, error) {
	return followStates(brokers, stateTopic, true, opts...)
}

func followStates(brokers []string, stateTopic string, completedOnly bool, opts ...kgo.Opt) (*States, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(stateTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &States{cl: cl, topic: stateTopic, cancel: cancel, done: make(chan struct{}), next: map[int32]int64{}, latest: map[string]*processor.State{},
		firstAt: map[string]time.Time{}, changed: make(chan struct{}), completedOnly: completedOnly}
	go s.loop(ctx)
	return s, nil
}

func (s *States) loop(ctx context.Context) {
	defer close(s.done)
	for {
		fs := s.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			s.next[r.Partition] = max(s.next[r.Partition], r.Offset+1)
			if r.Value == nil {
				delete(s.latest, string(r.Key))
				return
			}
			if s.completedOnly && !bytes.Contains(r.Value, completedMarker) {
				return
			}
			st, err := processor.DecodeState(r.Value)
			if err != nil {
				s.corrupt++
				return
			}
			s.latest[string(r.Key)] = st
			if st.Status == processor.StatusCompleted {
				if _, ok := s.firstAt[st.OrderID]; !ok {
					s.firstAt[st.OrderID] = r.Timestamp
				}
			}
		})
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
}

// Close stops following.
func (s *States) Close() {
	s.cancel()
	<-s.done
	s.cl.Close()
}

// Get returns the latest state of an order, or nil.
func (s *States) Get(id string) *processor.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest[id]
}

// CompletedAt is the timestamp of the state record that first showed the
// order completed (the broker's append time of the final step's result).
func (s *States) CompletedAt(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.firstAt[id]
	return t, ok
}

// Counts returns how many orders are in each status.
func (s *States) Counts() map[processor.Status]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[processor.Status]int{}
	for _, st := range s.latest {
		m[st.Status]++
	}
	return m
}

// Final reports whether a status is an end state.
func Final(st processor.Status) bool {
	return st == processor.StatusCompleted || st == processor.StatusDeadLettered ||
		st == processor.StatusParked || st == processor.StatusRefunded
}

// WaitAll waits until every id has a state for which ok returns true.
// It returns the ids still waiting when ctx ends.
func (s *States) WaitAll(ctx context.Context, ids []string, ok func(*processor.State) bool) ([]string, error) {
	for {
		s.mu.Lock()
		var missing []string
		for _, id := range ids {
			if st := s.latest[id]; st == nil || !ok(st) {
				missing = append(missing, id)
			}
		}
		ch := s.changed
		s.mu.Unlock()
		if len(missing) == 0 {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return missing, fmt.Errorf("%d of %d orders not finished: %w", len(missing), len(ids), ctx.Err())
		case <-ch:
		case <-time.After(time.Second):
		}
	}
}

// WaitCaughtUp waits until the view has read every record the state topic
// held when it was called. A processor commits a record's offset only after
// the states it wrote are acknowledged, so once its offsets are committed
// this makes the view show every state those records left.
func (s *States) WaitCaughtUp(ctx context.Context) error {
	ends, err := kadm.NewClient(s.cl).ListEndOffsets(ctx, s.topic)
	if err != nil {
		return err
	}
	for {
		behind := 0
		s.mu.Lock()
		ends.Each(func(o kadm.ListedOffset) {
			if s.next[o.Partition] < o.Offset {
				behind++
			}
		})
		ch := s.changed
		s.mu.Unlock()
		if behind == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("state view %d partition(s) behind the end of %s: %w", behind, s.topic, ctx.Err())
		case <-ch:
		case <-time.After(time.Second):
		}
	}
}

// IDs returns the ids of every order seen, sorted.
func (s *States) IDs() []string {
	s.mu.Lock()
	ids := make([]string, 0, len(s.latest))
	for id := range s.latest {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	sort.Strings(ids)
	return ids
}
