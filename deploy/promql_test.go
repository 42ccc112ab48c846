package deploy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// Paths of the files under test, relative to this package.
const (
	dashboardFile  = "grafana/orderflow.json"
	alertsFile     = "prometheus/alerts.yml"
	promConfigFile = "prometheus/prometheus.yml"
	composeFile    = "compose/compose.yaml"
	kubernetesDir  = "kubernetes"
)

// targetLabels are added by Prometheus at scrape time, so /metrics never
// shows them.
var targetLabels = map[string]bool{"instance": true, "job": true, model.MetricNameLabel: true}

// query is one PromQL expression and where it comes from.
type query struct {
	where string // "dashboard panel \"Consumer lag\"", "alert OrderflowCircuitOpen"
	expr  string
}

// metricUse is one series selector of a query: the metric name as written
// (orderflow_x_bucket for a histogram's buckets), the label names the query
// relies on (matchers and the by-labels of enclosing aggregations) and the
// values of its equality matchers.
type metricUse struct {
	where  string
	metric string
	labels []string
	values map[string]string
}

var promqlParser = parser.NewParser(parser.Options{})

// metricUses parses expr and returns every series selector in it.
func metricUses(q query) ([]metricUse, error) {
	expr, err := promqlParser.ParseExpr(q.expr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q.where, err)
	}
	var uses []metricUse
	parser.Inspect(expr, func(node parser.Node, path []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		u := metricUse{where: q.where, metric: vs.Name, values: map[string]string{}}
		seen := map[string]bool{}
		add := func(l string) {
			if !targetLabels[l] && !seen[l] {
				seen[l] = true
				u.labels = append(u.labels, l)
			}
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel {
				continue
			}
			add(m.Name)
			if m.Type == labels.MatchEqual && m.Value != "" {
				u.values[m.Name] = m.Value
			}
		}
		for _, anc := range path {
			if agg, ok := anc.(*parser.AggregateExpr); ok && !agg.Without {
				for _, l := range agg.Grouping {
					add(l)
				}
			}
		}
		uses = append(uses, u)
		return nil
	})
	if len(uses) == 0 {
		return nil, fmt.Errorf("%s: %q names no metric", q.where, q.expr)
	}
	return uses, nil
}

// grafanaVars are Grafana's interval variables, replaced by a duration so
// the expression parses as PromQL.
var grafanaVars = strings.NewReplacer(
	"${__rate_interval}", "5m", "$__rate_interval", "5m",
	"${__interval}", "1m", "$__interval", "1m",
	"${__range}", "1h", "$__range", "1h",
)

// dashboardQueries returns the PromQL of every panel target of a Grafana
// dashboard, rows' nested panels included; targets of another datasource
// type (the Jaeger trace panel) are not PromQL and are left out.
func dashboardQueries(data []byte) ([]query, error) {
	var dash struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	var out []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				if ds := t.Datasource.or(p.Datasource); ds != nil && ds.Type != "prometheus" {
					continue
				}
				out = append(out, query{
					where: fmt.Sprintf("dashboard panel %q target %s", p.Title, t.RefID),
					expr:  grafanaVars.Replace(t.Expr),
				})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	return out, nil
}

type panel struct {
	ID         int             `json:"id"`
	Title      string          `json:"title"`
	Type       string          `json:"type"`
	Datasource *datasourceRef  `json:"datasource"`
	Targets    []panelTarget   `json:"targets"`
	Links      []dashboardLink `json:"links"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Panels []panel `json:"panels"`
}

type panelTarget struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Query      string         `json:"query"`
	Datasource *datasourceRef `json:"datasource"`
}

// datasourceRef is a panel's or a target's datasource.
type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// or is r, else the panel's datasource d.
func (r *datasourceRef) or(d *datasourceRef) *datasourceRef {
	if r != nil {
		return r
	}
	return d
}

// dashboardLink is a dashboard's or a panel's link.
type dashboardLink struct {
	Title string `json:"title"`
	Type  string `json:"type"`
	URL   string `json:"url"`
}

// parseRules parses an alert rules file with Prometheus's own rule parser,
// which also parses every expression and template.
func parseRules(path string) (*rulefmt.RuleGroups, []error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return rulefmt.ParseFile(path, false, model.UTF8Validation, promqlParser, log)
}

// ruleQueries returns the expression of every rule.
func ruleQueries(groups *rulefmt.RuleGroups) []query {
	var out []query
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := "alert " + r.Alert
			if r.Record != "" {
				name = "recording rule " + r.Record
			}
			out = append(out, query{where: fmt.Sprintf("%s (group %s)", name, g.Name), expr: r.Expr})
		}
	}
	return out
}

// exported is what /metrics showed: for every sample name (a histogram
// family F gives F, F_bucket, F_sum and F_count), its label names and the
// values seen for each.
type exported map[string]map[string]map[string]bool

// parseExposition reads the Prometheus text format into e.
func (e exported) parseExposition(r io.Reader) error {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return err
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			base := map[string]string{}
			for _, lp := range m.GetLabel() {
				base[lp.GetName()] = lp.GetValue()
			}
			names := []string{name}
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				names = append(names, name+"_sum", name+"_count")
				for _, b := range m.GetHistogram().GetBucket() {
					e.add(name+"_bucket", base, "le", fmt.Sprint(b.GetUpperBound()))
				}
				e.add(name+"_bucket", base, "le", "+Inf")
			case dto.MetricType_SUMMARY:
				names = append(names, name+"_sum", name+"_count")
			}
			for _, n := range names {
				e.add(n, base, "", "")
			}
		}
	}
	return nil
}

func (e exported) add(name string, lbls map[string]string, extraName, extraValue string) {
	if e[name] == nil {
		e[name] = map[string]map[string]bool{}
	}
	set := func(k, v string) {
		if e[name][k] == nil {
			e[name][k] = map[string]bool{}
		}
		e[name][k][v] = true
	}
	for k, v := range lbls {
		set(k, v)
	}
	if extraName != "" {
		set(extraName, extraValue)
	}
}

// check returns one problem per metric, label or label value a use relies
// on that /metrics does not show.
func (e exported) check(uses []metricUse) []string {
	var problems []string
	for _, u := range uses {
		series, ok := e[u.metric]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: metric %s is not exported%s", u.where, u.metric, e.nearest(u.metric)))
			continue
		}
		for _, l := range u.labels {
			vals, ok := series[l]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: metric %s has no label %q (labels: %s)", u.where, u.metric, l, strings.Join(keys(series), ", ")))
				continue
			}
			if v, ok := u.values[l]; ok && !vals[v] {
				problems = append(problems, fmt.Sprintf("%s: metric %s never had %s=%q (seen: %s)", u.where, u.metric, l, v, strings.Join(keys(vals), ", ")))
			}
		}
	}
	sort.Strings(problems)
	return slices.Compact(problems)
}

// nearest names exported metrics sharing the use's prefix, to make a
// renamed metric obvious in the failure.
func (e exported) nearest(metric string) string {
	parts := strings.Split(metric, "_")
	if len(parts) < 2 {
		return ""
	}
	prefix := strings.Join(parts[:2], "_")
	var near []string
	for n := range e {
		if strings.HasPrefix(n, prefix) && !strings.HasSuffix(n, "_bucket") && !strings.HasSuffix(n, "_sum") && !strings.HasSuffix(n, "_count") {
			near = append(near, n)
		}
	}
	if len(near) == 0 {
		return ""
	}
	sort.Strings(near)
	return " (exported with that prefix: " + strings.Join(near, ", ") + ")"
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// allQueries loads the dashboard's and the alert rules' expressions.
func allQueries(t *testing.T) []query {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	qs, err := dashboardQueries(data)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := parseRules(alertsFile)
	if len(errs) > 0 {
		t.Fatalf("%s: %v", alertsFile, errs)
	}
	return append(qs, ruleQueries(groups)...)
}

// allUses returns the series selectors of every dashboard and alert query.
func allUses(t *testing.T) []metricUse {
	t.Helper()
	var uses []metricUse
	for _, q := range allQueries(t) {
		u, err := metricUses(q)
		if err != nil {
			t.Error(err)
			continue
		}
		uses = append(uses, u...)
	}
	return uses
}

func TestAlertRulesParse(t *testing.T) {
	groups, errs := parseRules(alertsFile)
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		return
	}
	// The alerts the operators rely on, by what they watch.
	want := map[string]*regexp.Regexp{
		"dead letters growing":   regexp.MustCompile(`orderflow_dlq_writes_total`),
		"consumer lag growing":   regexp.MustCompile(`deriv\(.*orderflow_consumer_lag`),
		"circuit open":           regexp.MustCompile(`orderflow_circuit_state\)? *== *2`),
		"gateway 5xx":            regexp.MustCompile(`outcome=~"unavailable\|overloaded"`),
		"no webhooks for a time": regexp.MustCompile(`orderflow_gateway_requests_total\{outcome="queued"\}\[`),
	}
	found := map[string]bool{}
	names := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if names[r.Alert+"/"+r.For.String()] {
				t.Errorf("alert %s with for %s defined twice", r.Alert, r.For)
			}
			names[r.Alert+"/"+r.For.String()] = true
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("alert %s: severity label %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: summary and description annotations are required", r.Alert)
			}
			for what, re := range want {
				if re.MatchString(r.Expr) {
					found[what] = true
				}
			}
			if strings.Contains(r.Expr, `outcome="queued"`) && r.Labels["threshold"] == "" {
				t.Errorf("alert %s: the no-webhooks threshold must be recorded in a threshold label", r.Alert)
			}
		}
	}
	for what := range want {
		if !found[what] {
			t.Errorf("no alert rule watches %s", what)
		}
	}
}

func TestDashboardParses(t *testing.T) {
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string  `json:"uid"`
		Title      string  `json:"title"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name, Type, Query string
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("dashboard needs a uid and a title (the provisioned dashboard's identity)")
	}
	ids := map[int]bool{}
	titles := map[string]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %q has no grid position", p.Title)
		}
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		titles[p.Title] = true
	}
	qs, err := dashboardQueries(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if _, err := metricUses(q); err != nil {
			t.Error(err)
		}
	}
	// What the dashboard must show, by the metric behind it.
	all := ""
	for _, q := range qs {
		all += q.expr + "\n"
	}
	for _, m := range []string{
		"orderflow_gateway_requests_total", "orderflow_gateway_request_duration_seconds_bucket",
		"orderflow_consumer_lag", "orderflow_step_duration_seconds_bucket", "orderflow_dlq_writes_total",
		"orderflow_circuit_state", "orderflow_orders_inflight", "orderflow_orders_total",
	} {
		if !strings.Contains(all, m) {
			t.Errorf("the dashboard shows nothing of %s", m)
		}
	}
	if !strings.Contains(all, "histogram_quantile(0.5,") || !strings.Contains(all, "histogram_quantile(0.99,") {
		t.Error("the dashboard must show p50 and p99 latencies")
	}
	var dsVar bool
	for _, v := range dash.Templating.List {
		dsVar = dsVar || (v.Type == "datasource" && v.Query == "prometheus")
	}
	if !dsVar {
		t.Error("the dashboard needs a Prometheus datasource variable, so it imports into any Grafana")
	}
}

// TestMetricChecker proves the consistency check fails on the drift it is
// there to catch.
func TestMetricChecker(t *testing.T) {
	const exposition = `# HELP orderflow_orders_total x
# TYPE orderflow_orders_total counter
orderflow_orders_total{status="completed"} 3
# HELP orderflow_step_duration_seconds x
# TYPE orderflow_step_duration_seconds histogram
orderflow_step_duration_seconds_bucket{step="crm",outcome="ok",le="0.5"} 1
orderflow_step_duration_seconds_bucket{step="crm",outcome="ok",le="+Inf"} 1
orderflow_step_duration_seconds_sum{step="crm",outcome="ok"} 0.2
orderflow_step_duration_seconds_count{step="crm",outcome="ok"} 1
`
	e := exported{}
	if err := e.parseExposition(strings.NewReader(exposition)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		expr string
		want string // substring of the only problem; empty: no problem
	}{
		{"counter", `sum by (status) (rate(orderflow_orders_total[5m]))`, ""},
		{"histogram buckets", `histogram_quantile(0.99, sum by (step, le) (rate(orderflow_step_duration_seconds_bucket{outcome="ok"}[5m])))`, ""},
		{"histogram count", `sum(rate(orderflow_step_duration_seconds_count[5m]))`, ""},
		{"target labels are not required", `sum by (instance, job) (orderflow_orders_total)`, ""},
		{"renamed metric", `sum(rate(orderflow_order_total[5m]))`, "metric orderflow_order_total is not exported"},
		{"histogram family without suffix in rate", `rate(orderflow_step_duration_second_bucket[5m])`, "not exported"},
		{"unknown label in matcher", `orderflow_orders_total{state="completed"}`, `has no label "state"`},
		{"unknown label in by", `sum by (provider) (orderflow_step_duration_seconds_count)`, `has no label "provider"`},
		{"unknown label value", `orderflow_orders_total{status="complete"}`, `never had status="complete"`},
		{"buckets have le, counts do not", `sum by (le) (orderflow_step_duration_seconds_count)`, `has no label "le"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uses, err := metricUses(query{where: "test", expr: tt.expr})
			if err != nil {
				t.Fatal(err)
			}
			problems := e.check(uses)
			switch {
			case tt.want == "" && len(problems) > 0:
				t.Errorf("unexpected problems: %v", problems)
			case tt.want != "" && (len(problems) != 1 || !strings.Contains(problems[0], tt.want)):
				t.Errorf("problems %v, want one containing %q", problems, tt.want)
			}
		})
	}
}

func TestRuleParserRejects(t *testing.T) {
	tests := []struct {
		name, rules, want string
	}{
		{"bad PromQL", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: sum(rate(x[5m])\n", "parse error"},
		{"unknown field", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    severity: page\n", "field severity not found"},
		{"bad template", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    annotations:\n      summary: '{{ $value | nosuchfunc }}'\n", "nosuchfunc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rules.yml")
			if err := os.WriteFile(path, []byte(tt.rules), 0o600); err != nil {
				t.Fatal(err)
			}
			_, errs := parseRules(path)
			if len(errs) == 0 || !strings.Contains(fmt.Sprint(errs), tt.want) {
				t.Errorf("errors %v, want one containing %q", errs, tt.want)
			}
		})
	}
}
