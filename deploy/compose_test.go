package deploy_test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeProject is the part of a compose file the checks read.
type composeProject struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
		Target     string `yaml:"target"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Volumes     []string `yaml:"volumes"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func loadCompose(path string) (*composeProject, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p composeProject
	if err := yaml.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &p, nil
}

// orderflowService reports whether the service runs the orderflow image.
func (s composeService) orderflow() bool {
	return s.Build != nil || strings.HasPrefix(s.Image, "orderflow")
}

var healthURL = regexp.MustCompile(`https?://[^\s"']+`)

// checkCompose returns every problem of the compose project at path:
// services without an image, missing build contexts, Dockerfiles and
// stages, mounts of files that do not exist, broken depends_on, and
// orderflow commands, flags and variables the binary does not know.
func checkCompose(path string, p *composeProject, c *cli) []string {
	dir := filepath.Dir(path)
	var problems []string
	bad := func(svc, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s: service %s: %s", path, svc, fmt.Sprintf(format, args...)))
	}
	if len(p.Services) == 0 {
		return []string{path + ": no services"}
	}
	for _, name := range keys(p.Services) {
		s := p.Services[name]
		if s.Image == "" && s.Build == nil {
			bad(name, "needs an image or a build")
		}
		if s.Build != nil {
			ctx := filepath.Join(dir, s.Build.Context)
			dockerfile := s.Build.Dockerfile
			if dockerfile == "" {
				dockerfile = "Dockerfile"
			}
			b, err := os.ReadFile(filepath.Join(ctx, dockerfile))
			if err != nil {
				bad(name, "build: %v", err)
			} else if s.Build.Target != "" && !regexp.MustCompile(`(?mi)^FROM\s.*\sAS\s+`+regexp.QuoteMeta(s.Build.Target)+`\s*$`).Match(b) {
				bad(name, "build target %q is not a stage of %s", s.Build.Target, dockerfile)
			}
		}
		for dep, d := range s.DependsOn {
			other, ok := p.Services[dep]
			switch {
			case !ok:
				bad(name, "depends on unknown service %q", dep)
			case !slices.Contains([]string{"service_started", "service_healthy", "service_completed_successfully"}, d.Condition):
				bad(name, "depends_on %s: condition %q", dep, d.Condition)
			case d.Condition == "service_healthy" && other.Healthcheck == nil:
				bad(name, "waits for %s to be healthy, but it has no healthcheck", dep)
			}
		}
		for _, v := range s.Volumes {
			src, _, ok := strings.Cut(v, ":")
			if !ok {
				continue // an anonymous volume
			}
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
					bad(name, "mounts %s: %v", src, err)
				}
			} else if _, ok := p.Volumes[src]; !ok {
				bad(name, "named volume %q is not declared", src)
			}
		}
		if !s.orderflow() {
			continue
		}
		command, args, err := c.command(s.Command)
		if err != nil {
			bad(name, "command %v: %v", s.Command, err)
			continue
		}
		where := fmt.Sprintf("%s: service %s", path, name)
		_, ps := c.effectiveFlags(where, command, args)
		problems = append(problems, ps...)
		for _, k := range keys(s.Environment) {
			problems = append(problems, c.checkEnv(where, k, command)...)
		}
		if u := s.Environment["ORDERFLOW_SIM_URL"]; u != "" {
			pu, err := url.Parse(u)
			if err != nil {
				bad(name, "ORDERFLOW_SIM_URL %q: %v", u, err)
			} else if sim, ok := p.Services[pu.Hostname()]; !ok || !slices.Contains(sim.Command, "sim") {
				bad(name, "ORDERFLOW_SIM_URL %q does not name the simulator service", u)
			}
		}
	}
	sort.Strings(problems)
	return problems
}

// composeProbes returns the HTTP health checks of the orderflow services,
// resolved to the listener flag that serves them.
func composeProbes(t *testing.T) []kubeProbe {
	t.Helper()
	c := binaryCLI(t)
	p, err := loadCompose(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []kubeProbe
	for _, name := range keys(p.Services) {
		s := p.Services[name]
		if !s.orderflow() || s.Healthcheck == nil {
			continue
		}
		command, args, err := c.command(s.Command)
		if err != nil {
			t.Fatalf("service %s: %v", name, err)
		}
		flags, _ := c.effectiveFlags(name, command, args)
		raw := healthURL.FindString(strings.Join(s.Healthcheck.Test, " "))
		u, err := url.Parse(raw)
		if err != nil || raw == "" {
			t.Fatalf("service %s: health check %v has no URL", name, s.Healthcheck.Test)
		}
		port := addrPort(u.Host)
		flag := ""
		for _, f := range keys(flags) {
			if isAddrFlag(f) && addrPort(flags[f]) == port {
				flag = f
			}
		}
		if flag == "" {
			t.Errorf("service %s: health check port %d is no listener of orderflow %s", name, port, command)
			continue
		}
		out = append(out, kubeProbe{where: composeFile + " service " + name + " healthcheck", command: command, flag: flag, port: port, path: u.Path})
	}
	return out
}

func TestCompose(t *testing.T) {
	c := binaryCLI(t)
	p, err := loadCompose(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, problem := range checkCompose(composeFile, p, c) {
		t.Error(problem)
	}
	// The stack the issue asks for, by what each service runs.
	count := map[string]int{}
	for _, s := range p.Services {
		switch {
		case s.orderflow() && len(s.Command) > 0:
			count[strings.Join(s.Command[:min(2, len(s.Command))], " ")]++
			count[s.Command[0]]++
		case strings.HasPrefix(s.Image, "apache/kafka:4."):
			count["kafka"]++
		case strings.HasPrefix(s.Image, "redis:"):
			count["redis"]++
		case strings.HasPrefix(s.Image, "prom/prometheus:"):
			count["prometheus"]++
		case strings.HasPrefix(s.Image, "grafana/grafana"):
			count["grafana"]++
		case strings.HasPrefix(s.Image, "otel/opentelemetry-collector"):
			count["otel-collector"]++
		case strings.HasPrefix(s.Image, "jaegertracing/"):
			count["jaeger"]++
		}
	}
	for what, n := range map[string]int{"kafka": 1, "redis": 1, "topics create": 1, "gateway": 1, "processor": 2, "sim": 1, "prometheus": 1, "grafana": 1, "otel-collector": 1, "jaeger": 1} {
		if count[what] != n {
			t.Errorf("%d services run %s, want %d", count[what], what, n)
		}
	}
	if len(composeProbes(t)) == 0 {
		t.Error("no orderflow service has an HTTP health check")
	}
}

// TestPrometheusConfigScrapesCompose checks that the compose stack's
// Prometheus loads the alert rules and scrapes every gateway and processor
// on its metrics listener.
func TestPrometheusConfigScrapesCompose(t *testing.T) {
	c := binaryCLI(t)
	p, err := loadCompose(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(promConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	// The rule file is mounted where rule_files says.
	var prom composeService
	for _, s := range p.Services {
		if strings.HasPrefix(s.Image, "prom/prometheus:") {
			prom = s
		}
	}
	for _, rf := range cfg.RuleFiles {
		if !slices.ContainsFunc(prom.Volumes, func(v string) bool {
			return strings.Contains(v, "alerts.yml:"+rf)
		}) {
			t.Errorf("rule file %s is not alerts.yml mounted into the prometheus service (%v)", rf, prom.Volumes)
		}
	}
	if len(cfg.RuleFiles) == 0 {
		t.Error("prometheus.yml loads no rule files")
	}
	scraped := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, _, err := netSplit(target)
				if err != nil {
					t.Errorf("job %s: %v", sc.JobName, err)
					continue
				}
				s, ok := p.Services[host]
				if !ok {
					t.Errorf("job %s: target %s is not a compose service", sc.JobName, target)
					continue
				}
				command, args, err := c.command(s.Command)
				if err != nil {
					t.Errorf("job %s: target %s: %v", sc.JobName, target, err)
					continue
				}
				flags, _ := c.effectiveFlags(host, command, args)
				if addrPort(flags["metrics-addr"]) != addrPort(target) {
					t.Errorf("job %s: target %s, but %s serves metrics on %q", sc.JobName, target, host, flags["metrics-addr"])
				}
				scraped[host] = true
			}
		}
	}
	for name, s := range p.Services {
		if s.orderflow() && len(s.Command) > 0 && (s.Command[0] == "gateway" || s.Command[0] == "processor") && !scraped[name] {
			t.Errorf("service %s is not scraped", name)
		}
	}
}

// TestComposeChecker proves the compose checks catch what they are there
// for.
func TestComposeChecker(t *testing.T) {
	c := binaryCLI(t)
	orig, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, old, new, expect string
	}{
		{"unknown flag", `"--http-addr", ":8080"`, `"--listen", ":8080"`, "has no flag --listen"},
		{"unknown variable", "ORDERFLOW_REDIS_ADDR:", "ORDERFLOW_REDIS:", "ORDERFLOW_REDIS is not read"},
		{"unknown dependency", "      redis:\n        condition: service_healthy", "      valkey:\n        condition: service_healthy", `unknown service "valkey"`},
		{"missing mounted file", "../prometheus/alerts.yml:", "../prometheus/rules.yml:", "rules.yml"},
		{"missing build stage", "target: debug", "target: dbg", `build target "dbg"`},
		{"sim url to nowhere", "ORDERFLOW_SIM_URL: http://sim:8090", "ORDERFLOW_SIM_URL: http://simulator:8090", "does not name the simulator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := string(orig)
			if !strings.Contains(s, tt.old) {
				t.Fatalf("compose.yaml does not contain %q", tt.old)
			}
			var p composeProject
			if err := yaml.Unmarshal([]byte(strings.Replace(s, tt.old, tt.new, 1)), &p); err != nil {
				t.Fatal(err)
			}
			problems := checkCompose(composeFile, &p, c)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.expect) }) {
				t.Errorf("problems %v, want one containing %q", problems, tt.expect)
			}
		})
	}
}
