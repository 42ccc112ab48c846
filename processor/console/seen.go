package console

import "hash/maphash"

// seen is a Bloom filter of the order ids the index holds: when it says
// no, the order is new and its old summary need not be read. It has no
// false negatives, so a "maybe" only costs a read. Filled from the index at
// open and with every order written since; an order removed stays in it
// (a read that finds nothing).
type seen struct {
	bits []uint64
	seed maphash.Seed
}

// seenBits is the filter's size: 2 MiB, about 1 % false positives at
// 2 million orders, more beyond (each a needless read, never a wrong
// answer).
const seenBits = 1 << 24

func newSeen() *seen { return &seen{bits: make([]uint64, seenBits/64), seed: maphash.MakeSeed()} }

func (s *seen) hashes(id string) (uint64, uint64) {
	h := maphash.String(s.seed, id)
	return h, h>>33 | h<<31 | 1
}

func (s *seen) add(id string) {
	a, b := s.hashes(id)
	for i := range uint64(4) {
		bit := (a + i*b) % seenBits
		s.bits[bit/64] |= 1 << (bit % 64)
	}
}

func (s *seen) maybe(id string) bool {
	a, b := s.hashes(id)
	for i := range uint64(4) {
		bit := (a + i*b) % seenBits
		if s.bits[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}
