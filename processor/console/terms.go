package console

import (
	"hash/crc32"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
)

// terms finds the orders by the search terms only ever matched whole: the
// tracking number, the invoice number and the event ids of the state
// (and, through the h keys alone, the OF- number). It is kept in memory,
// not as keys of the store: those keys were half of a catch-up's CPU
// (BenchmarkApplyLarge), and the table is filled again from the summaries
// at open.
//
// An order's hash (orderHash) is 16 bits of the CRC-32C of its OF- number
// in upper case (of its id when it has none); the store's h keys list the
// orders of each hash, so an OF- number needs no entry here. Each entry
// is 32 bits: 16 bits of the term's hash (its kind with it) and the
// order's hash. The term's other bits pick one of 65,536 buckets, a slice
// of entries searched in full (about 61 entries per bucket at 1,000,000
// orders of four terms each). A term thus gives the hashes of the orders
// that may hold it, the h keys give those orders' ids, and every
// candidate is checked against its summary: a hash shared by chance costs
// a read, never a wrong answer. Entries are never removed: a term an order
// no longer has (an erased order, a changed tracking number) fails that
// check, and is dropped when the table is next filled at open; an entry
// may be there twice (a tracking number changed and changed back).
type terms struct {
	mu      sync.RWMutex
	seed    maphash.Seed
	buckets [][]uint32
	n       int
}

const termBuckets = 1 << 16

func newTerms() *terms {
	return &terms{seed: maphash.MakeSeed(), buckets: make([][]uint32, termBuckets)}
}

// Kinds of the terms in the table, as in the key layout's search keys.
const (
	termNumber   = 'n'
	termTracking = 'k'
	termInvoice  = 'i'
	termEvent    = 'e'
)

// termHash hashes a term of a kind.
func (t *terms) termHash(kind byte, term string) uint64 {
	return maphash.String(t.seed, term) ^ uint64(kind)*0x9e3779b97f4a7c15
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// numberHash is the hash of an OF- number as searched (in any case).
func numberHash(number string) uint16 {
	return uint16(crc32.Checksum([]byte(strings.ToUpper(number)), castagnoli))
}

// orderHash is the hash the h keys file an order by: its OF- number's,
// or its id's when it has none.
func orderHash(s *Summary) uint16 {
	if s.Number != "" {
		return numberHash(s.Number)
	}
	return uint16(crc32.Checksum([]byte(s.ID), castagnoli))
}

// summaryTerms calls fn with each term of s the table keeps.
func summaryTerms(s *Summary, fn func(kind byte, term string)) {
	if s.Tracking != "" {
		fn(termTracking, s.Tracking)
	}
	if s.Invoice != "" {
		fn(termInvoice, s.Invoice)
	}
	for _, e := range s.Events {
		if e != "" {
			fn(termEvent, e)
		}
	}
}

// hasTerm reports whether s holds term (not empty) as a term of kind.
func hasTerm(s *Summary, kind byte, term string) bool {
	switch kind {
	case termNumber:
		return strings.EqualFold(s.Number, term)
	case termTracking:
		return s.Tracking == term
	case termInvoice:
		return s.Invoice == term
	case termEvent:
		return slices.Contains(s.Events, term)
	}
	return false
}

// add files the terms of cur that old (the order's summary before, or
// nil) did not have under the same order hash.
func (t *terms) add(old, cur *Summary) {
	if cur == nil {
		return
	}
	h := uint32(orderHash(cur))
	if old != nil && uint32(orderHash(old)) != h {
		old = nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	summaryTerms(cur, func(kind byte, term string) {
		if old != nil && hasTerm(old, kind, term) {
			return
		}
		th := t.termHash(kind, term)
		b := &t.buckets[th>>48]
		*b = append(*b, uint32(th)<<16|h)
		t.n++
	})
}

// lookup returns the hashes of the orders that may hold term as a term of
// kind, each once.
func (t *terms) lookup(kind byte, term string) []uint16 {
	th := t.termHash(kind, term)
	fp := uint32(th) << 16
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []uint16
	for _, x := range t.buckets[th>>48] {
		if x&0xffff0000 == fp && !slices.Contains(out, uint16(x)) {
			out = append(out, uint16(x))
		}
	}
	return out
}

// size is the number of entries.
func (t *terms) size() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.n
}
