package processor

import (
	"container/list"
	"sync"
)

// stateCache holds the most recently used order states of a partition,
// bounded by a number of entries or by the size of their records. An entry
// may say that the order has no state (st nil). Every state in it is also
// in the partition's store, so an evicted state is read back from there.
type stateCache struct {
	maxEntries int
	maxBytes   int64

	mu    sync.Mutex
	lru   *list.List // front: most recently used
	items map[string]*list.Element
	bytes int64
}

type cacheEntry struct {
	key  string
	st   *State
	size int64
}

// entryOverhead approximates what a decoded state costs beyond its record
// bytes (maps, slices, times, the list element).
const entryOverhead = 512

func newStateCache(entries int, bytes int64) *stateCache {
	return &stateCache{maxEntries: entries, maxBytes: bytes, lru: list.New(), items: map[string]*list.Element{}}
}

// get returns the cached state; ok is false when the key is not cached.
func (c *stateCache) get(key string) (st *State, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.items[key]
	if e == nil {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cacheEntry).st, true
}

// put caches st (nil: the order has no state); recordLen is the size of its
// record.
func (c *stateCache) put(key string, st *State, recordLen int) {
	size := int64(len(key) + recordLen + entryOverhead)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.items[key]; e != nil {
		ce := e.Value.(*cacheEntry)
		c.bytes += size - ce.size
		ce.st, ce.size = st, size
		c.lru.MoveToFront(e)
	} else {
		c.items[key] = c.lru.PushFront(&cacheEntry{key: key, st: st, size: size})
		c.bytes += size
	}
	for c.lru.Len() > 1 && ((c.maxEntries > 0 && c.lru.Len() > c.maxEntries) || (c.maxBytes > 0 && c.bytes > c.maxBytes)) {
		e := c.lru.Back()
		ce := e.Value.(*cacheEntry)
		c.lru.Remove(e)
		delete(c.items, ce.key)
		c.bytes -= ce.size
	}
}

func (c *stateCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.items[key]; e != nil {
		c.bytes -= e.Value.(*cacheEntry).size
		c.lru.Remove(e)
		delete(c.items, key)
	}
}

func (c *stateCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
