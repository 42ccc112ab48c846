package sim

import (
	"net/http"
	"sync"
)

// StepStats counts one step's traffic. Created counts objects created (an
// upsert that updates creates nothing); DuplicateCreates counts creations
// for an order that already had an object of that kind, which is what a
// pipeline that retries a non-idempotent call without reconciling produces.
type StepStats struct {
	Requests         int64 `json:"requests"`
	Created          int64 `json:"created"`
	DuplicateCreates int64 `json:"duplicate_creates"`
	// Records counts the records of the requests answered for a step that
	// takes several in one request (Airtable's upsert of up to 10), so
	// Records ÷ Requests is how full its requests were.
	Records int64 `json:"records,omitempty"`
	// Requests refused by Config.EnforceLimits (limits.go): over a rate or
	// in a penalty, over a concurrency limit, over a daily quota.
	RejectedRateLimited int64 `json:"rejected_rate_limited,omitempty"`
	RejectedConcurrency int64 `json:"rejected_concurrency,omitempty"`
	RejectedQuota       int64 `json:"rejected_quota,omitempty"`
	// AnswersLost counts calls served under a late-answer fault whose
	// client went away before the answer: the object exists, the client
	// does not know it.
	AnswersLost int64 `json:"answers_lost,omitempty"`
}

// Stats is the body of GET /_sim/stats.
type Stats struct {
	Steps map[string]StepStats `json:"steps"`
}

type stats struct {
	mu    sync.Mutex
	steps map[string]*StepStats
	// seen holds, per step, the "kind/order key" of every created object, so
	// a second creation of the same kind for the same order is a duplicate.
	seen map[string]map[string]struct{}
}

func newStats() *stats {
	st := &stats{}
	st.reset()
	return st
}

func (st *stats) reset() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.steps = make(map[string]*StepStats, len(Steps))
	st.seen = make(map[string]map[string]struct{}, len(Steps))
	for _, s := range Steps {
		st.steps[s] = &StepStats{}
		st.seen[s] = map[string]struct{}{}
	}
}

func (st *stats) request(step string) {
	st.mu.Lock()
	st.steps[step].Requests++
	st.mu.Unlock()
}

// records counts n records of an answered request of step.
func (st *stats) records(step string, n int) {
	st.mu.Lock()
	st.steps[step].Records += int64(n)
	st.mu.Unlock()
}

// created records one object of kind created for the order key and reports
// whether the order already had one. An empty key cannot be matched and is
// never a duplicate.
func (st *stats) created(step, kind, key string) (duplicate bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	ss := st.steps[step]
	ss.Created++
	if key == "" {
		return false
	}
	k := kind + "/" + key
	if _, ok := st.seen[step][k]; ok {
		ss.DuplicateCreates++
		return true
	}
	st.seen[step][k] = struct{}{}
	return false
}

func (st *stats) snapshot() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := Stats{Steps: make(map[string]StepStats, len(st.steps))}
	for k, v := range st.steps {
		out.Steps[k] = *v
	}
	return out
}

// Stats returns the counters since start or the last ResetStats.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

// ResetStats zeroes the counters and forgets which orders had objects.
func (s *Server) ResetStats() { s.stats.reset() }

func (s *Server) getStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Server) deleteStats(w http.ResponseWriter, r *http.Request) {
	s.ResetStats()
	w.WriteHeader(http.StatusNoContent)
}

func (st *stats) answerLost(step string) {
	st.mu.Lock()
	st.steps[step].AnswersLost++
	st.mu.Unlock()
}
