package sim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Mode is what a fault does to a call.
type Mode string

const (
	// ModeUnavailable answers 503 in the provider's error shape (transient).
	ModeUnavailable Mode = "unavailable"
	// ModeReject answers the provider's permanent 4xx / validation error.
	ModeReject Mode = "reject"
	// ModeSlow adds Fault.Latency before the call is served normally.
	ModeSlow Mode = "slow"
	// ModeLateAnswer serves the call half-way through its delay and holds
	// the answer back for the other half, as a provider that creates the
	// object and then is slow to answer: a client that goes away in the
	// first half created nothing, one that goes away in the second half
	// created the object without learning it (counted as answers_lost).
	ModeLateAnswer Mode = "late-answer"
)

// Fault makes a share of one step's calls fail or slow down.
type Fault struct {
	Step string
	Mode Mode
	// Rate is the probability that a call is affected, in (0, 1]; 0 means 1
	// (every call).
	Rate float64
	// Latency is the delay ModeSlow and ModeLateAnswer add; with
	// MaxLatency above it, each call's delay is drawn uniformly from
	// [Latency, MaxLatency].
	Latency    time.Duration
	MaxLatency time.Duration
}

// Validate reports a fault the simulator cannot apply.
func (f Fault) Validate() error {
	if !validStep(f.Step) {
		return fmt.Errorf("unknown step %q (steps: %s; details is the same as stripe)", f.Step, strings.Join(Steps, ", "))
	}
	switch f.Mode {
	case ModeUnavailable, ModeReject:
	case ModeSlow, ModeLateAnswer:
		if f.Latency <= 0 {
			return fmt.Errorf("mode %s needs a positive latency", f.Mode)
		}
	default:
		return fmt.Errorf("unknown mode %q (modes: unavailable, reject, slow, late-answer)", f.Mode)
	}
	if f.MaxLatency != 0 && f.MaxLatency < f.Latency {
		return fmt.Errorf("max latency %s is below the latency %s", f.MaxLatency, f.Latency)
	}
	if !(f.Rate > 0 && f.Rate <= 1) {
		return fmt.Errorf("rate %v is not in (0, 1]", f.Rate)
	}
	if f.Latency < 0 {
		return fmt.Errorf("latency %s is negative", f.Latency)
	}
	return nil
}

// faultJSON is the wire form of a Fault: latency as a Go duration string.
type faultJSON struct {
	Step       string   `json:"step"`
	Mode       Mode     `json:"mode"`
	Rate       *float64 `json:"rate,omitempty"`
	Latency    string   `json:"latency,omitempty"`
	MaxLatency string   `json:"max_latency,omitempty"`
}

// MarshalJSON writes {"step","mode","rate","latency":"5s"}.
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Step: f.Step, Mode: f.Mode, Rate: &f.Rate}
	if f.Latency > 0 {
		j.Latency = f.Latency.String()
	}
	if f.MaxLatency > 0 {
		j.MaxLatency = f.MaxLatency.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the wire form; a missing or zero rate means 1
// (every call).
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*f = Fault{Step: canonicalStep(j.Step), Mode: j.Mode, Rate: 1}
	if j.Rate != nil && *j.Rate != 0 {
		f.Rate = *j.Rate
	}
	if j.Latency != "" {
		d, err := time.ParseDuration(j.Latency)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		f.Latency = d
	}
	if j.MaxLatency != "" {
		d, err := time.ParseDuration(j.MaxLatency)
		if err != nil {
			return fmt.Errorf("max_latency: %w", err)
		}
		f.MaxLatency = d
	}
	return nil
}

// faults holds at most one fault per step.
type faults struct {
	mu     sync.RWMutex
	byStep map[string]Fault
}

func newFaults() *faults { return &faults{byStep: map[string]Fault{}} }

// roll decides whether this call to step is affected, and how.
func (fs *faults) roll(step string) (Mode, time.Duration) {
	fs.mu.RLock()
	f, ok := fs.byStep[step]
	fs.mu.RUnlock()
	if !ok || (f.Rate < 1 && rand.Float64() >= f.Rate) {
		return "", 0
	}
	if f.MaxLatency > f.Latency {
		return f.Mode, f.Latency + rand.N(f.MaxLatency-f.Latency+1)
	}
	return f.Mode, f.Latency
}

// SetFault installs f for its step, replacing any fault the step had.
func (s *Server) SetFault(f Fault) error {
	if f.Rate == 0 {
		f.Rate = 1
	}
	f.Step = canonicalStep(f.Step)
	if err := f.Validate(); err != nil {
		return fmt.Errorf("sim: fault: %w", err)
	}
	s.faults.mu.Lock()
	s.faults.byStep[f.Step] = f
	s.faults.mu.Unlock()
	s.log.Info("sim fault set", "step", f.Step, "mode", string(f.Mode), "rate", f.Rate, "latency", f.Latency)
	return nil
}

// ClearFaults removes the fault of step, or every fault when step is "".
func (s *Server) ClearFaults(step string) {
	step = canonicalStep(step)
	s.faults.mu.Lock()
	if step == "" {
		clear(s.faults.byStep)
	} else {
		delete(s.faults.byStep, step)
	}
	s.faults.mu.Unlock()
	s.log.Info("sim faults cleared", "step", step)
}

// Faults lists the active faults in step order.
func (s *Server) Faults() []Fault {
	s.faults.mu.RLock()
	defer s.faults.mu.RUnlock()
	out := make([]Fault, 0, len(s.faults.byStep))
	for _, k := range sortedSteps(s.faults.byStep) {
		out = append(out, s.faults.byStep[k])
	}
	return out
}

func (s *Server) getFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string][]Fault{"faults": s.Faults()})
}

// putFaults takes one fault object or an array of them.
func (s *Server) putFaults(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	var list []Fault
	trimmed := strings.TrimSpace(string(body))
	if strings.HasPrefix(trimmed, "[") {
		err = json.Unmarshal(body, &list)
	} else {
		var f Fault
		err = json.Unmarshal(body, &f)
		list = []Fault{f}
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON: " + err.Error()})
		return
	}
	for _, f := range list {
		if err := f.Validate(); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
	}
	for _, f := range list {
		_ = s.SetFault(f) // validated above
	}
	writeJSON(w, http.StatusOK, map[string][]Fault{"faults": s.Faults()})
}

func (s *Server) deleteFaults(w http.ResponseWriter, r *http.Request) {
	step := canonicalStep(r.URL.Query().Get("step"))
	if step != "" && !validStep(step) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("unknown step %q (steps: %s)", step, strings.Join(Steps, ", "))})
		return
	}
	s.ClearFaults(step)
	writeJSON(w, http.StatusOK, map[string][]Fault{"faults": s.Faults()})
}
