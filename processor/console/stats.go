package console

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/orderflow/orderflow/processor"
)

// statsWindow is how far back the rates look.
const statsWindow = 15 * time.Minute

// Stats counts, per second over the last statsWindow, the orders that
// completed and each step's successes and failures, as the state records
// show them: a step newly done is a success, a rise in its attempts a
// failure. Records are counted by their timestamp, so catching up on old
// records does not inflate the rates; after a restart the rates fill again
// from the records read since.
type Stats struct {
	mu        sync.Mutex
	now       func() time.Time
	completed *series
	ok, fail  map[string]*series
}

func newStats() *Stats {
	s := &Stats{now: time.Now, completed: newSeries(), ok: map[string]*series{}, fail: map[string]*series{}}
	for _, step := range processor.Chain {
		s.ok[step], s.fail[step] = newSeries(), newSeries()
	}
	return s
}

func (s *Stats) observe(old, cur *Summary, at time.Time) {
	if cur == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if cur.StateStatus == processor.StatusCompleted && (old == nil || old.StateStatus != processor.StatusCompleted) {
		s.completed.add(now, at, 1)
	}
	for i, step := range processor.Chain {
		wasDone := old != nil && old.DoneMask&(1<<i) != 0
		if cur.DoneMask&(1<<i) != 0 && !wasDone {
			s.ok[step].add(now, at, 1)
		}
		before := 0
		if old != nil {
			before = old.Attempts[step]
		}
		if d := cur.Attempts[step] - before; d > 0 {
			s.fail[step].add(now, at, d)
		}
	}
}

// Rate is a count over a window.
type Rate struct {
	Window time.Duration `json:"-"`
	Count  int           `json:"count"`
}

// rateJSON is a Rate in the JSON API: the window in seconds and the rate.
type rateJSON struct {
	WindowSeconds float64 `json:"window_seconds"`
	Count         int     `json:"count"`
	PerSecond     float64 `json:"per_second"`
}

// MarshalJSON writes the window in seconds and the rate per second.
func (r Rate) MarshalJSON() ([]byte, error) {
	return json.Marshal(rateJSON{WindowSeconds: r.Window.Seconds(), Count: r.Count, PerSecond: r.PerSecond()})
}

// PerSecond is the rate.
func (r Rate) PerSecond() float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(r.Count) / r.Window.Seconds()
}

// Completed is how many orders completed in the last window.
func (s *Stats) Completed(window time.Duration) Rate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Rate{Window: window, Count: s.completed.sum(s.now(), window)}
}

// StepCounts is how many calls of a step succeeded and failed in a window.
type StepCounts struct {
	Step      string
	OK, Fail  int
	ErrorRate float64 // Fail / (OK + Fail), 0 without calls
}

// Steps returns each step's counts over the last window, in chain order.
func (s *Stats) Steps(window time.Duration) []StepCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]StepCounts, 0, len(processor.Chain))
	for _, step := range processor.Chain {
		c := StepCounts{Step: step, OK: s.ok[step].sum(now, window), Fail: s.fail[step].sum(now, window)}
		if n := c.OK + c.Fail; n > 0 {
			c.ErrorRate = float64(c.Fail) / float64(n)
		}
		out = append(out, c)
	}
	return out
}

// series is a ring of per-second counts.
type series struct {
	secs   []int64 // the second each slot counts
	counts []int
}

func newSeries() *series {
	n := int(statsWindow / time.Second)
	return &series{secs: make([]int64, n), counts: make([]int, n)}
}

func (s *series) add(now, at time.Time, n int) {
	if at.Before(now.Add(-statsWindow)) || at.After(now.Add(time.Minute)) {
		return
	}
	sec := at.Unix()
	i := int(sec % int64(len(s.secs)))
	if s.secs[i] != sec {
		s.secs[i], s.counts[i] = sec, 0
	}
	s.counts[i] += n
}

func (s *series) sum(now time.Time, window time.Duration) int {
	from := now.Add(-window).Unix()
	total := 0
	for i, sec := range s.secs {
		if sec > from && sec <= now.Unix()+60 {
			total += s.counts[i]
		}
	}
	return total
}
