package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// StepStats are the simulator's counters for one step.
type StepStats struct {
	Requests         int64 `json:"requests"`
	Created          int64 `json:"created"`
	DuplicateCreates int64 `json:"duplicate_creates"`
	// Records are the records of the answered requests of a step that
	// takes several a request (Airtable's upsert).
	Records int64 `json:"records,omitempty"`
	// AnswersLost counts calls served under a late-answer fault whose
	// client went away before the answer (the object exists).
	AnswersLost int64 `json:"answers_lost"`
	// 429s of a simulator enforcing the providers' limits.
	RejectedRateLimited int64 `json:"rejected_rate_limited,omitempty"`
	RejectedConcurrency int64 `json:"rejected_concurrency,omitempty"`
	RejectedQuota       int64 `json:"rejected_quota,omitempty"`
}

// Sim talks to a provider simulator's control endpoints.
type Sim struct{ URL string }

var simClient = &http.Client{Timeout: 10 * time.Second}

// Stats returns the counters by step.
func (s Sim) Stats(ctx context.Context) (map[string]StepStats, error) {
	var out struct {
		Steps map[string]StepStats `json:"steps"`
	}
	return out.Steps, s.do(ctx, http.MethodGet, "/_sim/stats", nil, &out)
}

// ResetStats zeroes the counters.
func (s Sim) ResetStats(ctx context.Context) error {
	return s.do(ctx, http.MethodDelete, "/_sim/stats", nil, nil)
}

// Fault is a fault to inject.
type Fault struct {
	Step    string  `json:"step"`
	Mode    string  `json:"mode"` // unavailable, reject, slow, late-answer
	Rate    float64 `json:"rate"`
	Latency string  `json:"latency,omitempty"`
	// MaxLatency, above Latency, draws each call's delay from the range.
	MaxLatency string `json:"max_latency,omitempty"`
}

// SetFault injects a fault.
func (s Sim) SetFault(ctx context.Context, f Fault) error {
	return s.do(ctx, http.MethodPut, "/_sim/faults", f, nil)
}

// SetPostNordVisibility sets how long after a booking the simulator's
// Track & Trace look-up by reference shows it.
func (s Sim) SetPostNordVisibility(ctx context.Context, d time.Duration) error {
	return s.do(ctx, http.MethodPut, "/_sim/postnord", map[string]string{"visibility": d.String()}, nil)
}

// ClearFaults removes every fault.
func (s Sim) ClearFaults(ctx context.Context) error {
	return s.do(ctx, http.MethodDelete, "/_sim/faults", nil, nil)
}

func (s Sim) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := simClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
