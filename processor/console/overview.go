package console

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
)

// PartitionLag is the processors' consumer lag on one `orders` partition.
type PartitionLag struct {
	Partition int32 `json:"partition"`
	Committed int64 `json:"committed"` // -1 when the group has committed nothing there
	End       int64 `json:"end"`
	Lag       int64 `json:"lag"`
}

// StepView is one step on the overview.
type StepView struct {
	Step string `json:"step"`
	// From the state records, last 5 minutes.
	OK        int     `json:"done_5m"`
	Fail      int     `json:"failed_attempts_5m"`
	ErrorRate float64 `json:"error_rate_5m"`
	// Circuit is closed, half-open or open from the processors' metrics
	// (the worst of them), or "" without --processor-metrics.
	Circuit string `json:"circuit"`
	// MetricsErrorRate is the failed share of calls between the last two
	// scrapes of the processors' metrics; -1 without them or without calls.
	MetricsErrorRate float64 `json:"metrics_error_rate"`
}

// Overview is the overview page's data.
type Overview struct {
	At          time.Time `json:"at"`
	Completed1m Rate      `json:"completed_1m"`
	Completed5m Rate      `json:"completed_5m"`
	InFlight    int64     `json:"in_flight"`
	// Counts are the index's counts (by status, and of the flagged);
	// Listed what each status filter lists, from them (StatusCount).
	Counts          map[string]int64 `json:"-"`
	Listed          map[string]int64 `json:"counts"`
	Lag             []PartitionLag   `json:"lag"`
	TotalLag        int64            `json:"total_lag"`
	LagError        string           `json:"lag_error,omitempty"`
	Steps           []StepView       `json:"steps"`
	Metrics         string           `json:"metrics"` // where the circuit state comes from
	MetricsInFlight float64          `json:"metrics_in_flight"`
	OpenLetters     int              `json:"open_dead_letters"`
	Alerts          []Alert          `json:"alerts"`
	Index           Progress         `json:"index"`
}

// Observer gathers the overview from the index, the processors' consumer
// group (lag) and, when configured, the processors' /metrics.
type Observer struct {
	ix      *Index
	adm     *kadm.Client
	names   topics.Names
	group   string
	metrics []string
	hc      *http.Client
	follow  *Follower

	mu       sync.Mutex
	prev     map[string][2]float64 // step → (failed, total) calls at the last scrape
	circuits map[string]string
}

// NewObserver returns an observer; metricsURLs may be empty.
func NewObserver(ix *Index, f *Follower, adm *kadm.Client, names topics.Names, group string, metricsURLs []string) *Observer {
	return &Observer{ix: ix, follow: f, adm: adm, names: names, group: group, metrics: metricsURLs,
		hc: &http.Client{Timeout: 2 * time.Second}, prev: map[string][2]float64{}, circuits: map[string]string{}}
}

// Overview gathers the figures now.
func (o *Observer) Overview(ctx context.Context) Overview {
	ov := Overview{At: time.Now(), Counts: o.ix.Counts()}
	ov.Listed = FilterCounts(ov.Counts)
	st := o.ix.Stats()
	ov.Completed1m, ov.Completed5m = st.Completed(time.Minute), st.Completed(5*time.Minute)
	ov.InFlight = ov.Counts[string(processor.StatusInProgress)] + ov.Counts[StatusWaiting]
	for _, c := range st.Steps(5 * time.Minute) {
		ov.Steps = append(ov.Steps, StepView{Step: c.Step, OK: c.OK, Fail: c.Fail, ErrorRate: c.ErrorRate, MetricsErrorRate: -1})
	}
	if o.follow != nil {
		ov.Index = o.follow.Progress()
	}
	ov.OpenLetters, _ = o.ix.OpenLetters()
	ov.Alerts, _ = o.ix.Alerts(15)
	if o.adm != nil {
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		ov.Lag, ov.LagError = o.lag(lctx)
		cancel()
		for _, l := range ov.Lag {
			ov.TotalLag += l.Lag
		}
	}
	if len(o.metrics) == 0 {
		ov.Metrics = "circuit state needs --processor-metrics; error rates are from the state records"
	} else {
		o.scrape(ctx, &ov)
	}
	return ov
}

func (o *Observer) lag(ctx context.Context) ([]PartitionLag, string) {
	ends, err := o.adm.ListEndOffsets(ctx, o.names.Orders)
	if err != nil {
		return nil, "list end offsets: " + err.Error()
	}
	committed, err := o.adm.FetchOffsets(ctx, o.group)
	if err != nil {
		return nil, fmt.Sprintf("offsets of group %s: %v", o.group, err)
	}
	var out []PartitionLag
	ends.Each(func(e kadm.ListedOffset) {
		if e.Err != nil {
			return
		}
		l := PartitionLag{Partition: e.Partition, End: e.Offset, Committed: -1}
		if c, ok := committed.Lookup(o.names.Orders, e.Partition); ok && c.Err == nil && c.At >= 0 {
			l.Committed = c.At
		}
		if l.Committed >= 0 {
			l.Lag = max(0, l.End-l.Committed)
		} else {
			l.Lag = l.End
		}
		out = append(out, l)
	})
	slices.SortFunc(out, func(a, b PartitionLag) int { return int(a.Partition - b.Partition) })
	return out, ""
}

// scrape reads orderflow_circuit_state, orderflow_step_duration_seconds_count
// and orderflow_orders_inflight from every processor.
func (o *Observer) scrape(ctx context.Context, ov *Overview) {
	circuit := map[string]float64{}
	calls := map[string][2]float64{}
	ok := 0
	var errs []string
	for _, u := range o.metrics {
		samples, err := o.fetch(ctx, u)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		ok++
		for _, s := range samples {
			switch s.name {
			case "orderflow_circuit_state":
				circuit[s.labels["step"]] = max(circuit[s.labels["step"]], s.value)
			case "orderflow_step_duration_seconds_count":
				c := calls[s.labels["step"]]
				if out := s.labels["outcome"]; out == "transient" || out == "permanent" {
					c[0] += s.value
				}
				if s.labels["outcome"] != "skipped" {
					c[1] += s.value
				}
				calls[s.labels["step"]] = c
			case "orderflow_orders_inflight":
				ov.MetricsInFlight += s.value
			}
		}
	}
	ov.Metrics = fmt.Sprintf("circuit state and call error rates from %d of %d processors' /metrics", ok, len(o.metrics))
	if len(errs) > 0 {
		ov.Metrics += " (" + strings.Join(errs, "; ") + ")"
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range ov.Steps {
		sv := &ov.Steps[i]
		if ok == 0 {
			continue
		}
		switch v := circuit[sv.Step]; {
		case v >= 2:
			sv.Circuit = "open"
		case v >= 1:
			sv.Circuit = "half-open"
		default:
			sv.Circuit = "closed"
		}
		if before, seen := o.circuits[sv.Step]; seen && before != sv.Circuit && (sv.Circuit == "open" || before == "open") {
			text := "circuit of " + sv.Step + " " + sv.Circuit + ": orders wait for the provider"
			if sv.Circuit != "open" {
				text = "circuit of " + sv.Step + " " + sv.Circuit + ": orders resume"
			}
			_ = o.ix.AddAlert(Alert{At: ov.At, Step: sv.Step, Text: text})
		}
		o.circuits[sv.Step] = sv.Circuit
		c, p := calls[sv.Step], o.prev[sv.Step]
		if d := c[1] - p[1]; d > 0 {
			sv.MetricsErrorRate = (c[0] - p[0]) / d
		}
		o.prev[sv.Step] = c
	}
}

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func (o *Observer) fetch(ctx context.Context, raw string) ([]sample, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", raw, err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/metrics"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := o.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s unreachable", u.Host)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %d", u.Host, resp.StatusCode)
	}
	var out []sample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if s, ok := parseSample(sc.Text()); ok && strings.HasPrefix(s.name, "orderflow_") {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}

// parseSample reads one line of the Prometheus text format
// (`name{a="b",c="d"} value`); comments and other lines give false.
func parseSample(line string) (sample, bool) {
	if line == "" || line[0] == '#' {
		return sample{}, false
	}
	s := sample{labels: map[string]string{}}
	rest := line
	if i := strings.IndexByte(line, '{'); i >= 0 {
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return sample{}, false
		}
		s.name = line[:i]
		for _, kv := range strings.Split(line[i+1:j], ",") {
			k, v, ok := strings.Cut(kv, "=")
			if ok {
				s.labels[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
			}
		}
		rest = strings.TrimSpace(line[j+1:])
	} else {
		f := strings.Fields(line)
		if len(f) < 2 {
			return sample{}, false
		}
		s.name, rest = f[0], f[1]
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return sample{}, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return sample{}, false
	}
	s.value = v
	return s, true
}
