package deploy_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The tracing wiring of the compose stack: the gateway and the processors
// export spans over OTLP to the OpenTelemetry Collector, the collector
// exports them to Jaeger, and Grafana reads Jaeger through a datasource the
// dashboard's trace panel and link use.

const (
	collectorConfigFile = "otel/collector.yaml"
	datasourcesDir      = "grafana/provisioning/datasources"
	// jaegerOTLPGRPCPort and jaegerOTLPHTTPPort are where Jaeger v2's
	// built-in (all-in-one) configuration receives OTLP; jaegerQueryPort
	// serves its UI and the query API Grafana's datasource reads.
	jaegerOTLPGRPCPort = 4317
	jaegerOTLPHTTPPort = 4318
	jaegerQueryPort    = 16686
)

// collectorConfig is the part of an OpenTelemetry Collector configuration
// the checks read.
type collectorConfig struct {
	Receivers map[string]struct {
		Protocols map[string]struct {
			Endpoint string `yaml:"endpoint"`
		} `yaml:"protocols"`
	} `yaml:"receivers"`
	Processors map[string]any `yaml:"processors"`
	Exporters  map[string]struct {
		Endpoint string `yaml:"endpoint"`
	} `yaml:"exporters"`
	Service struct {
		Pipelines map[string]struct {
			Receivers  []string `yaml:"receivers"`
			Processors []string `yaml:"processors"`
			Exporters  []string `yaml:"exporters"`
		} `yaml:"pipelines"`
	} `yaml:"service"`
}

// componentType is the type of a collector component id ("otlp_grpc/jaeger"
// is of type otlp_grpc).
func componentType(id string) string {
	t, _, _ := strings.Cut(id, "/")
	return t
}

// serviceByImage returns the names of the services whose image starts
// with one of the prefixes.
func serviceByImage(p *composeProject, prefixes ...string) []string {
	var out []string
	for _, name := range keys(p.Services) {
		for _, pre := range prefixes {
			if strings.HasPrefix(p.Services[name].Image, pre) {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// hostPort splits "host:port", "http://host:port" or "host:port/path".
func hostPort(endpoint string) (string, int, error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "tcp://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return "", 0, fmt.Errorf("%q has no port", endpoint)
	}
	return u.Hostname(), port, nil
}

// flagValue is the value of --name=v or --name v in args ("" if absent).
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// mountedAt returns the host path (relative to the compose file) mounted
// at target in the service, or "".
func mountedAt(s composeService, target string) string {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == target {
			return parts[0]
		}
	}
	return ""
}

// checkTracing returns every problem of the tracing wiring: the collector
// service and its configuration file, its OTLP receiver and the exporter to
// Jaeger, and the OTEL_* variables of every gateway and processor.
func checkTracing(composePath string, p *composeProject, collectorPath string, cfg *collectorConfig) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	collectors := serviceByImage(p, "otel/opentelemetry-collector")
	jaegers := serviceByImage(p, "jaegertracing/jaeger:", "jaegertracing/all-in-one:")
	if len(collectors) != 1 || len(jaegers) != 1 {
		return []string{fmt.Sprintf("%s: want one OpenTelemetry Collector and one Jaeger service, have %v and %v", composePath, collectors, jaegers)}
	}
	collector, jaeger := collectors[0], jaegers[0]

	// The collector reads the configuration file checked here.
	cs := p.Services[collector]
	if cfgPath := flagValue(cs.Command, "config"); cfgPath == "" {
		bad("%s: service %s: command %v has no --config", composePath, collector, cs.Command)
	} else if src := mountedAt(cs, cfgPath); src == "" {
		bad("%s: service %s: nothing is mounted at its --config %s", composePath, collector, cfgPath)
	} else if filepath.Clean(filepath.Join(filepath.Dir(composePath), src)) != filepath.Clean(collectorPath) {
		bad("%s: service %s: mounts %s at %s, not %s", composePath, collector, src, cfgPath, collectorPath)
	}
	// Jaeger listens where other containers reach it.
	if h := p.Services[jaeger].Environment["JAEGER_LISTEN_HOST"]; h == "localhost" || h == "127.0.0.1" {
		bad("%s: service %s: JAEGER_LISTEN_HOST=%s: the collector cannot reach it", composePath, jaeger, h)
	}

	pl, ok := cfg.Service.Pipelines["traces"]
	if !ok {
		return append(problems, collectorPath+": no traces pipeline")
	}
	httpPort := 0
	for _, r := range pl.Receivers {
		rc, ok := cfg.Receivers[r]
		if !ok {
			bad("%s: traces pipeline: receiver %q is not defined", collectorPath, r)
			continue
		}
		if componentType(r) != "otlp" {
			continue
		}
		h, ok := rc.Protocols["http"]
		if !ok {
			continue
		}
		host, port, err := hostPort(h.Endpoint)
		switch {
		case err != nil:
			bad("%s: receiver %s: http endpoint: %v", collectorPath, r, err)
		case host == "localhost" || strings.HasPrefix(host, "127."):
			bad("%s: receiver %s: http endpoint %s listens only on localhost: the other containers cannot send to it", collectorPath, r, h.Endpoint)
		default:
			httpPort = port
		}
	}
	if httpPort == 0 {
		bad("%s: the traces pipeline has no OTLP receiver over HTTP", collectorPath)
	}
	for _, pr := range pl.Processors {
		if _, ok := cfg.Processors[pr]; !ok {
			bad("%s: traces pipeline: processor %q is not defined", collectorPath, pr)
		}
	}
	toJaeger := false
	for _, e := range pl.Exporters {
		ec, ok := cfg.Exporters[e]
		if !ok {
			bad("%s: traces pipeline: exporter %q is not defined", collectorPath, e)
			continue
		}
		want := map[string]int{"otlp_grpc": jaegerOTLPGRPCPort, "otlp": jaegerOTLPGRPCPort, "otlp_http": jaegerOTLPHTTPPort, "otlphttp": jaegerOTLPHTTPPort}[componentType(e)]
		if want == 0 {
			continue // not an OTLP exporter (debug, ...)
		}
		host, port, err := hostPort(ec.Endpoint)
		switch {
		case err != nil:
			bad("%s: exporter %s: endpoint: %v", collectorPath, e, err)
		case p.Services[host].Image == "" && p.Services[host].Build == nil:
			bad("%s: exporter %s: endpoint %s: %q is not a compose service", collectorPath, e, ec.Endpoint, host)
		case host != jaeger:
			bad("%s: exporter %s: endpoint %s is not the Jaeger service %s", collectorPath, e, ec.Endpoint, jaeger)
		case port != want:
			bad("%s: exporter %s: endpoint %s: Jaeger receives %s on port %d", collectorPath, e, ec.Endpoint, componentType(e), want)
		default:
			toJaeger = true
		}
	}
	if !toJaeger {
		bad("%s: no exporter of the traces pipeline sends to Jaeger", collectorPath)
	}

	// Every gateway and processor exports to the collector's receiver.
	for _, name := range keys(p.Services) {
		s := p.Services[name]
		if !s.orderflow() || len(s.Command) == 0 || (s.Command[0] != "gateway" && s.Command[0] != "processor") {
			continue
		}
		env := s.Environment
		where := fmt.Sprintf("%s: service %s", composePath, name)
		for k, want := range map[string]string{
			"OTEL_TRACES_EXPORTER":        "otlp",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
			"OTEL_SERVICE_NAME":           "orderflow-" + s.Command[0],
		} {
			if env[k] != want {
				bad("%s: %s=%q, want %q", where, k, env[k], want)
			}
		}
		ep := env["OTEL_EXPORTER_OTLP_ENDPOINT"]
		u, err := url.Parse(ep)
		if err != nil || u.Scheme != "http" || u.Port() == "" {
			bad("%s: OTEL_EXPORTER_OTLP_ENDPOINT=%q: want http://<collector>:<port>", where, ep)
			continue
		}
		if u.Hostname() != collector {
			bad("%s: OTEL_EXPORTER_OTLP_ENDPOINT=%q does not name the collector service %s", where, ep, collector)
		}
		if port, _ := strconv.Atoi(u.Port()); port != httpPort {
			bad("%s: OTEL_EXPORTER_OTLP_ENDPOINT=%q, but the collector receives OTLP/HTTP on port %d", where, ep, httpPort)
		}
	}
	sort.Strings(problems)
	return problems
}

// grafanaDatasource is one provisioned datasource.
type grafanaDatasource struct {
	Name string `yaml:"name"`
	UID  string `yaml:"uid"`
	Type string `yaml:"type"`
	URL  string `yaml:"url"`
}

func loadDatasources(files map[string][]byte) (map[string]grafanaDatasource, []string) {
	out := map[string]grafanaDatasource{}
	var problems []string
	for _, f := range keys(files) {
		var doc struct {
			Datasources []grafanaDatasource `yaml:"datasources"`
		}
		if err := yaml.Unmarshal(files[f], &doc); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		for _, d := range doc.Datasources {
			if d.UID == "" {
				problems = append(problems, fmt.Sprintf("%s: datasource %q has no uid (links and panels name datasources by uid)", f, d.Name))
				continue
			}
			if _, dup := out[d.UID]; dup {
				problems = append(problems, fmt.Sprintf("%s: datasource uid %q is provisioned twice", f, d.UID))
			}
			out[d.UID] = d
		}
	}
	return out, problems
}

var grafanaVarRef = regexp.MustCompile(`^\$\{?([A-Za-z0-9_]+)\}?$`)

// checkGrafanaTracing returns every problem of Grafana's datasources and
// the dashboard's use of them: each datasource points at the compose
// service that serves it, every datasource the dashboard's panels, targets
// and links name is provisioned (or is a datasource variable of that type),
// and the dashboard shows and links the trace of its trace_id variable.
func checkGrafanaTracing(composePath string, p *composeProject, dsFiles map[string][]byte, dashPath string, dash []byte) []string {
	ds, problems := loadDatasources(dsFiles)
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	// Each datasource URL names the service behind it, on its port.
	servicePort := map[string]func(name string) (int, bool){
		"prometheus": func(name string) (int, bool) {
			s := p.Services[name]
			if !strings.HasPrefix(s.Image, "prom/prometheus:") {
				return 0, false
			}
			if a := flagValue(s.Command, "web.listen-address"); a != "" {
				return addrPort(a), true
			}
			return 9090, true
		},
		"jaeger": func(name string) (int, bool) {
			return jaegerQueryPort, len(serviceByImage(p, "jaegertracing/")) == 1 && strings.HasPrefix(p.Services[name].Image, "jaegertracing/")
		},
	}
	for _, uid := range keys(ds) {
		d := ds[uid]
		host, port, err := hostPort(d.URL)
		if err != nil {
			bad("datasource %s: url: %v", uid, err)
			continue
		}
		check, ok := servicePort[d.Type]
		if !ok {
			continue
		}
		want, ok := check(host)
		switch {
		case !ok:
			bad("datasource %s (%s): url %s: %q is not the compose service serving %s", uid, d.Type, d.URL, host, d.Type)
		case port != want:
			bad("datasource %s (%s): url %s: %s serves it on port %d", uid, d.Type, d.URL, host, want)
		}
	}
	if len(serviceByImage(p, "jaegertracing/")) > 0 && !slices.ContainsFunc(keys(ds), func(u string) bool { return ds[u].Type == "jaeger" }) {
		bad("%s has a Jaeger service but Grafana has no Jaeger datasource", composePath)
	}

	var d struct {
		Panels     []panel         `json:"panels"`
		Links      []dashboardLink `json:"links"`
		Templating struct {
			List []struct {
				Name, Type, Query string
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		return append(problems, fmt.Sprintf("%s: %v", dashPath, err))
	}
	vars := map[string]string{} // name -> type (datasource variables: "datasource:<type>")
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "datasource" {
			vars[v.Name] = "datasource:" + v.Query
		}
	}
	checkRef := func(where string, r *datasourceRef) {
		if r == nil || r.UID == "" || r.Type == "grafana" {
			return
		}
		if m := grafanaVarRef.FindStringSubmatch(r.UID); m != nil {
			if vars[m[1]] != "datasource:"+r.Type {
				bad("%s: %s: datasource ${%s} is no %s datasource variable", dashPath, where, m[1], r.Type)
			}
			return
		}
		got, ok := ds[r.UID]
		switch {
		case !ok:
			bad("%s: %s: datasource uid %q is not provisioned (%s)", dashPath, where, r.UID, strings.Join(keys(ds), ", "))
		case got.Type != r.Type:
			bad("%s: %s: datasource uid %q is of type %s, not %s", dashPath, where, r.UID, got.Type, r.Type)
		}
	}
	checkLink := func(where string, l dashboardLink) {
		u, err := url.Parse(l.URL)
		if err != nil {
			bad("%s: %s: link %q: %v", dashPath, where, l.Title, err)
			return
		}
		if u.Path != "/explore" {
			return
		}
		var panes map[string]struct {
			Datasource string `json:"datasource"`
			Queries    []struct {
				Datasource *datasourceRef `json:"datasource"`
			} `json:"queries"`
		}
		// The panes are JSON with Grafana variables in them.
		raw := strings.ReplaceAll(u.Query().Get("panes"), "${trace_id}", "0")
		if err := json.Unmarshal([]byte(raw), &panes); err != nil {
			bad("%s: %s: link %q: panes: %v", dashPath, where, l.Title, err)
			return
		}
		for _, pane := range panes {
			if _, ok := ds[pane.Datasource]; !ok {
				bad("%s: %s: link %q: datasource uid %q is not provisioned", dashPath, where, l.Title, pane.Datasource)
			}
			for _, q := range pane.Queries {
				checkRef(where+" link "+strconv.Quote(l.Title), q.Datasource)
			}
		}
	}
	tracePanel := false
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, pn := range ps {
			where := fmt.Sprintf("panel %q", pn.Title)
			checkRef(where, pn.Datasource)
			for _, t := range pn.Targets {
				checkRef(where+" target "+t.RefID, t.Datasource)
				if r := t.Datasource.or(pn.Datasource); r != nil && r.Type == "jaeger" && strings.Contains(t.Query, "${trace_id}") {
					tracePanel = true
				}
			}
			for _, l := range pn.Links {
				checkLink(where, l)
			}
			walk(pn.Panels)
		}
	}
	walk(d.Panels)
	traceLink := false
	for _, l := range d.Links {
		checkLink("dashboard", l)
		traceLink = traceLink || strings.Contains(l.URL, "${trace_id}")
	}
	if vars["trace_id"] != "textbox" {
		bad("%s: no textbox variable trace_id (an order's trace id from its log lines)", dashPath)
	}
	if !tracePanel {
		bad("%s: no panel shows the Jaeger trace of ${trace_id}", dashPath)
	}
	if !traceLink {
		bad("%s: no dashboard link opens the trace of ${trace_id}", dashPath)
	}
	// Grafana is given these datasources.
	for _, name := range serviceByImage(p, "grafana/grafana") {
		if src := mountedAt(p.Services[name], "/etc/grafana/provisioning/datasources"); filepath.Clean(filepath.Join(filepath.Dir(composePath), src)) != filepath.Clean(datasourcesDir) {
			bad("%s: service %s does not mount %s at /etc/grafana/provisioning/datasources", composePath, name, datasourcesDir)
		}
	}
	sort.Strings(problems)
	return problems
}

// tracingFiles are the files the tracing checks read, by path.
func tracingFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	paths := []string{composeFile, collectorConfigFile, dashboardFile}
	dsPaths, err := filepath.Glob(filepath.Join(datasourcesDir, "*.yml"))
	if err != nil || len(dsPaths) == 0 {
		t.Fatalf("no datasource files in %s (%v)", datasourcesDir, err)
	}
	for _, p := range append(paths, dsPaths...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = b
	}
	return files
}

// tracingProblems runs both tracing checks on files.
func tracingProblems(files map[string][]byte) []string {
	var p composeProject
	if err := yaml.Unmarshal(files[composeFile], &p); err != nil {
		return []string{composeFile + ": " + err.Error()}
	}
	var cfg collectorConfig
	if err := yaml.Unmarshal(files[collectorConfigFile], &cfg); err != nil {
		return []string{collectorConfigFile + ": " + err.Error()}
	}
	ds := map[string][]byte{}
	for f, b := range files {
		if strings.HasPrefix(f, datasourcesDir+"/") {
			ds[f] = b
		}
	}
	return append(checkTracing(composeFile, &p, collectorConfigFile, &cfg),
		checkGrafanaTracing(composeFile, &p, ds, dashboardFile, files[dashboardFile])...)
}

// TestComposeTracing checks the trace path of the compose stack: gateway
// and processors → collector → Jaeger ← Grafana, and the dashboard's trace
// panel and link.
func TestComposeTracing(t *testing.T) {
	for _, problem := range tracingProblems(tracingFiles(t)) {
		t.Error(problem)
	}
}

// TestTracingChecker proves the tracing checks catch the drift they are
// there for.
func TestTracingChecker(t *testing.T) {
	jaegerDS := filepath.Join(datasourcesDir, "jaeger.yml")
	tests := []struct {
		name, file, old, new, expect string
	}{
		{"exporter to no service", collectorConfigFile, "endpoint: jaeger:4317", "endpoint: jaegr:4317", `"jaegr" is not a compose service`},
		{"exporter on Jaeger's wrong port", collectorConfigFile, "endpoint: jaeger:4317", "endpoint: jaeger:14250", "Jaeger receives otlp_grpc on port 4317"},
		{"exporter not defined", collectorConfigFile, "exporters: [otlp_grpc/jaeger]", "exporters: [otlp_grpc/tempo]", `exporter "otlp_grpc/tempo" is not defined`},
		{"receiver on localhost", collectorConfigFile, "endpoint: 0.0.0.0:4318", "endpoint: localhost:4318", "listens only on localhost"},
		{"processor not defined", collectorConfigFile, "processors: [memory_limiter, batch]", "processors: [memory_limiter, batching]", `processor "batching" is not defined`},
		{"config not mounted", composeFile, "../otel/collector.yaml:/etc/otelcol-contrib/config.yaml", "../otel/collector.yaml:/etc/otelcol/config.yaml", "nothing is mounted at its --config"},
		{"endpoint on the wrong port", composeFile, "OTEL_EXPORTER_OTLP_ENDPOINT: http://otel-collector:4318", "OTEL_EXPORTER_OTLP_ENDPOINT: http://otel-collector:4317", "receives OTLP/HTTP on port 4318"},
		{"endpoint to another host", composeFile, "OTEL_EXPORTER_OTLP_ENDPOINT: http://otel-collector:4318", "OTEL_EXPORTER_OTLP_ENDPOINT: http://collector:4318", "does not name the collector service"},
		{"service name", composeFile, "OTEL_SERVICE_NAME: orderflow-gateway", "OTEL_SERVICE_NAME: orderflow", `OTEL_SERVICE_NAME="orderflow", want "orderflow-gateway"`},
		{"exporter off", composeFile, "OTEL_TRACES_EXPORTER: otlp", "OTEL_TRACES_EXPORTER: none", `OTEL_TRACES_EXPORTER="none", want "otlp"`},
		{"datasource uid renamed", jaegerDS, "uid: jaeger", "uid: jaeger-traces", `datasource uid "jaeger" is not provisioned`},
		{"datasource to the wrong port", jaegerDS, "url: http://jaeger:16686", "url: http://jaeger:14268", "jaeger serves it on port 16686"},
		{"panel datasource", dashboardFile, `"query": "${trace_id}"`, `"query": "${order_id}"`, "no panel shows the Jaeger trace"},
		{"link datasource", dashboardFile, `%22datasource%22%3A%22jaeger%22`, `%22datasource%22%3A%22tempo%22`, `link "Trace in Explore": datasource uid "tempo" is not provisioned`},
	}
	orig := tracingFiles(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string][]byte{}
			for k, v := range orig {
				files[k] = v
			}
			s := string(files[tt.file])
			if !strings.Contains(s, tt.old) {
				t.Fatalf("%s does not contain %q", tt.file, tt.old)
			}
			files[tt.file] = []byte(strings.Replace(s, tt.old, tt.new, 1))
			problems := tracingProblems(files)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.expect) }) {
				t.Errorf("problems %v, want one containing %q", problems, tt.expect)
			}
		})
	}
}
