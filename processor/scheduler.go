package processor

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// task is one fetched record of a partition.
type task struct {
	rec  *kgo.Record
	done bool
}

// scheduler runs one partition's records: a FIFO queue per key, one
// goroutine per key with work, so records of one key run strictly in offset
// order and records of different keys run concurrently. It tracks which
// offsets finished and keeps the watermark: the highest offset below which
// every record it was given has finished. Only the watermark is ever
// committed; the per-record bookkeeping stays in memory.
type scheduler struct {
	// run handles a record; it returns false when the record was not
	// finished because the scheduler is stopping (the record stays
	// unfinished and is redone by the partition's next owner).
	run func(*task) bool
	// onFinish is called, outside the lock, after a record finished.
	onFinish func()

	mu      sync.Mutex
	keys    map[string]*keyQueue
	order   []*task // unpopped records in offset order; order[head] is the oldest
	head    int
	next    int64 // one past the highest offset added, -1 before the first
	mark    int64 // watermark, -1 before the first record
	epoch   int32 // leader epoch of the record just below mark
	stopped bool
	wg      sync.WaitGroup
}

type keyQueue struct {
	tasks   []*task
	running bool
}

func newScheduler(run func(*task) bool, onFinish func()) *scheduler {
	return &scheduler{run: run, onFinish: onFinish, keys: map[string]*keyQueue{}, next: -1, mark: -1, epoch: -1}
}

// add queues a record. Records must be added in offset order; a record below
// one already added (a redelivery) is refused, as is any record after stop.
func (s *scheduler) add(rec *kgo.Record) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || (s.next >= 0 && rec.Offset < s.next) {
		return false
	}
	if s.mark < 0 {
		s.mark = rec.Offset
	}
	s.next = rec.Offset + 1
	t := &task{rec: rec}
	s.order = append(s.order, t)
	key := string(rec.Key)
	kq := s.keys[key]
	if kq == nil {
		kq = &keyQueue{}
		s.keys[key] = kq
	}
	kq.tasks = append(kq.tasks, t)
	if !kq.running {
		kq.running = true
		s.wg.Add(1)
		go s.loop(key, kq)
	}
	return true
}

func (s *scheduler) loop(key string, kq *keyQueue) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		if s.stopped || len(kq.tasks) == 0 {
			kq.running = false
			if len(kq.tasks) == 0 {
				delete(s.keys, key)
			}
			s.mu.Unlock()
			return
		}
		t := kq.tasks[0]
		s.mu.Unlock()

		if !s.run(t) {
			s.mu.Lock()
			kq.running = false
			s.mu.Unlock()
			return
		}

		s.mu.Lock()
		kq.tasks[0] = nil
		kq.tasks = kq.tasks[1:]
		s.finishLocked(t)
		s.mu.Unlock()
		if s.onFinish != nil {
			s.onFinish()
		}
	}
}

// behind returns the records of key queued behind the one running.
func (s *scheduler) behind(key string) []*kgo.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	kq := s.keys[key]
	if kq == nil || len(kq.tasks) < 2 {
		return nil
	}
	out := make([]*kgo.Record, 0, len(kq.tasks)-1)
	for _, t := range kq.tasks[1:] {
		out = append(out, t.rec)
	}
	return out
}

// finishLocked marks t finished and advances the watermark over the finished
// prefix.
func (s *scheduler) finishLocked(t *task) {
	t.done = true
	for s.head < len(s.order) && s.order[s.head].done {
		r := s.order[s.head].rec
		s.mark = r.Offset + 1
		s.epoch = r.LeaderEpoch
		s.order[s.head] = nil
		s.head++
	}
	if s.head == len(s.order) {
		s.order = s.order[:0]
		s.head = 0
	} else if s.head > 1024 && s.head > len(s.order)/2 {
		n := copy(s.order, s.order[s.head:])
		clear(s.order[n:])
		s.order = s.order[:n]
		s.head = 0
	}
}

// watermark returns the committable offset (-1 when nothing was added) and
// the leader epoch of the record below it.
func (s *scheduler) watermark() (int64, int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mark, s.epoch
}

// pending returns how many added records have not finished.
func (s *scheduler) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order) - s.head
}

// stop refuses new records and stops key goroutines from starting another
// record; it returns how many records were left unfinished. Records being
// handled are not interrupted: wait for them with wait.
func (s *scheduler) stop() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	return len(s.order) - s.head
}

// wait blocks until every key goroutine returned.
func (s *scheduler) wait() { s.wg.Wait() }
