package console

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
	"sync"
	"unicode"
	"unicode/utf8"
)

// terms finds the orders by the search terms only ever matched whole:
// the OF- number, the email, the tracking number, the invoice number and
// the event ids of the state. It is kept in memory, not as keys of the
// store: those keys (random, one or more per order) were most of a
// catch-up's CPU (BenchmarkApplyLarge), and the table is filled again
// from the summaries at open.
//
// Each order has a number in the index (Summary.Seq, given at its first
// state, never reused while the index runs); the store's i keys give the
// order's id from it. An entry is 6 bytes: 16 bits of the term's hash
// (its kind with it) and the order's number (32 bits); 12 other bits of
// the hash pick one of 4,096 buckets, a slice searched in full (about
// 1,500 entries, 9 KiB, at 1,000,000 orders of six terms: a few
// microseconds). So few buckets keep the ends being appended to in the
// processor's cache: with 65,536 of them filing the terms was a fifth of
// a catch-up's CPU. A term thus gives the numbers of the
// orders that may hold it, the i keys their ids, and every candidate is
// checked against its summary: a hash shared by chance costs a read,
// never a wrong answer. Entries are never removed: a term an order no
// longer has (an erased order, a changed tracking number) fails that
// check, and is dropped when the table is next filled at open; an entry
// may be there twice (a tracking number changed and changed back).
type terms struct {
	mu   sync.RWMutex
	seed maphash.Seed
	// Each bucket is a list of chunks of entries: a bucket grows by a
	// chunk, never by copying what it holds (that was garbage twice the
	// table's size, and the console's peak RSS with it).
	buckets [][][]byte
	n       int
}

const (
	termBuckets = 1 << 12
	termEntry   = 6 // bytes: 16 bits of the hash, the order's number
	termChunk   = 256 * termEntry
)

func newTerms() *terms {
	return &terms{seed: maphash.MakeSeed(), buckets: make([][][]byte, termBuckets)}
}

// Kinds of the terms in the table.
const (
	termNumber   = 'n'
	termEmail    = '@'
	termTracking = 'k'
	termInvoice  = 'i'
	termEvent    = 'e'
)

// termHash hashes a term of a kind, as searched: an OF- number and an
// email in any case (appendFold), as MatchTerm compares them.
func (t *terms) termHash(kind byte, term string) uint64 {
	var h uint64
	if kind == termNumber || kind == termEmail {
		var buf [128]byte
		h = maphash.Bytes(t.seed, appendFold(buf[:0], term))
	} else {
		h = maphash.String(t.seed, term)
	}
	return h ^ uint64(kind)*0x9e3779b97f4a7c15
}

// appendFold appends s in one form of all those strings.EqualFold calls
// equal to it: each letter as the smallest of its case forms
// (unicode.SimpleFold), so ς, σ and Σ fold alike, as do ſ, s and S, or
// the Kelvin sign and k (strings.ToLower would keep ς and σ apart).
func appendFold(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			for _, r := range s[i:] {
				least := r
				for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
					least = min(least, f)
				}
				b = utf8.AppendRune(b, least)
			}
			return b
		}
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A' // an ASCII letter's smallest case form
		}
		b = append(b, c)
	}
	return b
}

// summaryTerms calls fn with each term of s the table keeps.
func summaryTerms(s *Summary, fn func(kind byte, term string)) {
	for _, kt := range [...]struct {
		kind byte
		term string
	}{{termNumber, s.Number}, {termEmail, s.Email}, {termTracking, s.Tracking}, {termInvoice, s.Invoice}} {
		if kt.term != "" {
			fn(kt.kind, kt.term)
		}
	}
	for _, e := range s.Events {
		if e != "" {
			fn(termEvent, e)
		}
	}
}

// add files the terms of cur that old (the order's summary before, or
// nil) did not have.
func (t *terms) add(old, cur *Summary) {
	if cur == nil {
		return
	}
	type kt struct {
		kind byte
		term string
	}
	var had []kt
	if old != nil {
		summaryTerms(old, func(kind byte, term string) { had = append(had, kt{kind, term}) })
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	summaryTerms(cur, func(kind byte, term string) {
		if slices.Contains(had, kt{kind, term}) {
			return
		}
		th := t.termHash(kind, term)
		b := &t.buckets[th>>(64-12)]
		if len(*b) == 0 || len((*b)[len(*b)-1]) == termChunk {
			*b = append(*b, make([]byte, 0, termChunk))
		}
		c := &(*b)[len(*b)-1]
		*c = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(*c, uint16(th)), cur.Seq)
		t.n++
	})
}

// lookup returns the numbers of the orders that may hold term as a term
// of kind, each once.
func (t *terms) lookup(kind byte, term string) []uint32 {
	th := t.termHash(kind, term)
	fp := uint16(th)
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []uint32
	for _, c := range t.buckets[th>>(64-12)] {
		for j := 0; j+termEntry <= len(c); j += termEntry {
			if binary.BigEndian.Uint16(c[j:]) == fp {
				if seq := binary.BigEndian.Uint32(c[j+2:]); !slices.Contains(out, seq) {
					out = append(out, seq)
				}
			}
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
