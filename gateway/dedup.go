package gateway

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Deduper remembers event ids already queued. Seen is asked before the
// produce; Mark is called only after Kafka acknowledged the record. Both may
// fail: the gateway then accepts the event and lets the processor's durable
// dedup catch a duplicate.
type Deduper interface {
	Seen(ctx context.Context, eventID string) (bool, error)
	Mark(ctx context.Context, eventID string, ttl time.Duration) error
}

// A LaterMarker is a Deduper that can be left to write a mark: the gateway
// answers the webhook without waiting for the store (RedisDeduper). The
// mark is still written only after the acknowledgement, and a Seen called
// after MarkLater returned must be answered after the mark was written;
// failed gets the store's error. Flush waits for the marks left to it.
type LaterMarker interface {
	Deduper
	MarkLater(eventID string, ttl time.Duration, failed func(error))
	Flush(ctx context.Context) error
}

// MemoryDeduper is an in-process Deduper for running without Redis (dev
// mode, a single gateway). It holds at most a fixed number of ids and
// forgets the oldest marks first. Safe for concurrent use.
type MemoryDeduper struct {
	max int
	now func() time.Time

	mu    sync.Mutex
	ids   map[string]*list.Element
	order *list.List // of *memEntry, oldest mark first
}

type memEntry struct {
	id      string
	expires time.Time
}

// NewMemoryDeduper returns a MemoryDeduper holding at most max ids
// (max <= 0 means 100,000).
func NewMemoryDeduper(max int) *MemoryDeduper {
	if max <= 0 {
		max = 100_000
	}
	return &MemoryDeduper{max: max, now: time.Now, ids: make(map[string]*list.Element), order: list.New()}
}

// Seen reports whether eventID was marked and has not expired.
func (m *MemoryDeduper) Seen(_ context.Context, eventID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.ids[eventID]
	if !ok {
		return false, nil
	}
	if !m.now().Before(el.Value.(*memEntry).expires) {
		m.order.Remove(el)
		delete(m.ids, eventID)
		return false, nil
	}
	return true, nil
}

// Mark remembers eventID for ttl. Like SET NX, an id already marked keeps
// its first expiry.
func (m *MemoryDeduper) Mark(_ context.Context, eventID string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if el, ok := m.ids[eventID]; ok {
		if now.Before(el.Value.(*memEntry).expires) {
			return nil
		}
		m.order.Remove(el)
		delete(m.ids, eventID)
	}
	for m.order.Len() >= m.max {
		oldest := m.order.Front()
		m.order.Remove(oldest)
		delete(m.ids, oldest.Value.(*memEntry).id)
	}
	m.ids[eventID] = m.order.PushBack(&memEntry{id: eventID, expires: now.Add(ttl)})
	return nil
}

// Len returns how many ids are held, expired ones included until touched.
func (m *MemoryDeduper) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ids)
}
