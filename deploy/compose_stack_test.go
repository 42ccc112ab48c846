package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/orderflow/orderflow/test/infra"
	"github.com/orderflow/orderflow/test/testenv"
)

// The compose stack started for real: deploy/compose/compose.yaml with the
// override testdata/compose-local.yaml, on the Docker engine of the tests,
// with Debian's docker-compose.

const (
	composeLocalOverride = "testdata/compose-local.yaml"
	// upstreamProfile holds the services without a local image.
	upstreamProfile = "upstream-images"
)

// upstreamOnly are the services of compose.yaml that have no local image
// (Debian packages none of them), so the test leaves them out.
var upstreamOnly = []string{"grafana", "jaeger", "otel-collector"}

// composeV1 returns the compose file as Debian's docker-compose 1.29 and
// host networking accept it: without the top-level name (1.29 rejects it)
// and without the services' ports (refused with network_mode: host, and
// needless there). Everything else stays as written, anchors included.
func composeV1(src []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a mapping")
	}
	root := doc.Content[0]
	deleteKey(root, "name")
	services := mappingValue(root, "services")
	if services == nil || services.Kind != yaml.MappingNode {
		return nil, errors.New("no services")
	}
	for i := 1; i < len(services.Content); i += 2 {
		deleteKey(services.Content[i], "ports")
	}
	return yaml.Marshal(&doc)
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// TestComposeLocalOverride checks, without an engine, that the override
// covers compose.yaml: every service either gets a local image on the host
// network or is one of the services without a local image, kept out by
// the profile; and that composeV1 removes only what it says.
func TestComposeLocalOverride(t *testing.T) {
	base, err := loadCompose(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(composeLocalOverride)
	if err != nil {
		t.Fatal(err)
	}
	var over struct {
		Services map[string]struct {
			Image       string   `yaml:"image"`
			NetworkMode string   `yaml:"network_mode"`
			Profiles    []string `yaml:"profiles"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &over); err != nil {
		t.Fatal(err)
	}
	var upstream []string
	for _, name := range keys(base.Services) {
		o, ok := over.Services[name]
		switch {
		case !ok:
			t.Errorf("service %s of %s is not in %s: give it a local image or the %s profile", name, composeFile, composeLocalOverride, upstreamProfile)
		case slices.Contains(o.Profiles, upstreamProfile):
			upstream = append(upstream, name)
		case !strings.HasPrefix(o.Image, "${COMPOSE_TEST_") || o.NetworkMode != "host":
			t.Errorf("%s: service %s: image %q, network_mode %q; want a local image (${COMPOSE_TEST_…}) on the host network", composeLocalOverride, name, o.Image, o.NetworkMode)
		}
	}
	for name := range over.Services {
		if _, ok := base.Services[name]; !ok {
			t.Errorf("%s: service %s is not in %s", composeLocalOverride, name, composeFile)
		}
	}
	if !slices.Equal(upstream, upstreamOnly) {
		t.Errorf("services left out of the test: %v, want %v", upstream, upstreamOnly)
	}

	src, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := composeV1(src)
	if err != nil {
		t.Fatal(err)
	}
	var orig, got map[string]any
	if err := yaml.Unmarshal(src, &orig); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(v1, &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got["name"]; ok || orig["name"] != "orderflow" {
		t.Errorf("name: %v in compose.yaml, %v after composeV1; want orderflow, then none", orig["name"], got["name"])
	}
	delete(orig, "name")
	ports := 0
	for _, s := range orig["services"].(map[string]any) {
		if _, ok := s.(map[string]any)["ports"]; ok {
			ports++
		}
		delete(s.(map[string]any), "ports")
	}
	// kafka, sim, gateway, prometheus, grafana, otel-collector, jaeger
	if ports != 7 {
		t.Errorf("%d services publish ports in compose.yaml, want 7", ports)
	}
	if !jsonEqual(t, orig, got) {
		t.Errorf("composeV1 changed more than name and ports:\n%s", v1)
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

// compose runs docker-compose on the test's project.
type compose struct {
	cli, project string
	args         []string // --project-directory, -f ...
	env          []string
}

func (c *compose) run(ctx context.Context, args ...string) (string, error) {
	argv := append(append([]string{"-p", c.project}, c.args...), args...)
	cmd := exec.CommandContext(ctx, c.cli, argv...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker-compose %s: %w\n%s", strings.Join(args, " "), err, tail(string(out), 40))
	}
	return string(out), nil
}

// TestComposeStack starts deploy/compose/compose.yaml on the local images
// (testdata/compose-local.yaml; Grafana, the OpenTelemetry Collector and
// Jaeger have none and are left out), and checks: compose up waits for
// Kafka, the topics job and the health checks; the topics exist with 12
// partitions; an order sent with send-test-event from the gateway service
// completes; Prometheus scrapes the gateway and both processors, loads the
// alert rules and sees the completed order; compose down removes the
// containers and the volumes.
func TestComposeStack(t *testing.T) {
	testStart := time.Now()
	e := engine(t)
	ctx := context.Background()
	cli, err := infra.ComposeCLI(ctx, t.Logf)
	if err != nil {
		// With an engine, its Compose tool is expected too.
		if testenv.InCI() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	orderflowImg := orderflowImage(t, "debug")
	libs, err := infra.KafkaLibs(ctx, infra.KafkaVersion, nil)
	if err != nil {
		t.Fatal(err)
	}
	sm, err := infra.StripeMockBinary(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	server, err := e.ServerImages(ctx, libs, sm, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	imagesReady := time.Now()

	// Ports of this run, all loopback, none the test infrastructure uses.
	port := map[string]int{}
	for _, name := range []string{"KAFKA", "KAFKA_CONTROLLER", "REDIS", "SIM", "GATEWAY", "GATEWAY_METRICS", "PROCESSOR_1_METRICS", "PROCESSOR_2_METRICS", "PROMETHEUS"} {
		p, err := infra.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		port[name] = p
	}
	metricsPort := map[string]int{"gateway": port["GATEWAY_METRICS"], "processor-1": port["PROCESSOR_1_METRICS"], "processor-2": port["PROCESSOR_2_METRICS"]}

	// compose.yaml as docker-compose 1.29 reads it, and prometheus.yml with
	// this run's metrics ports.
	dir := t.TempDir()
	src, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := composeV1(src)
	if err != nil {
		t.Fatal(err)
	}
	baseFile := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(baseFile, v1, 0o644); err != nil {
		t.Fatal(err)
	}
	promConfig := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promConfig, prometheusConfigFor(t, metricsPort), 0o644); err != nil {
		t.Fatal(err)
	}
	overrideFile, err := filepath.Abs(composeLocalOverride)
	if err != nil {
		t.Fatal(err)
	}
	projectDir, err := filepath.Abs(filepath.Dir(composeFile))
	if err != nil {
		t.Fatal(err)
	}
	env := append(cleanEnv(), "DOCKER_HOST="+e.Host,
		"COMPOSE_TEST_OWNER="+strconv.Itoa(os.Getpid()),
		"COMPOSE_TEST_KAFKA_IMAGE="+server.Kafka,
		"COMPOSE_TEST_REDIS_IMAGE="+server.Redis,
		"COMPOSE_TEST_ORDERFLOW_IMAGE="+orderflowImg,
		"COMPOSE_TEST_PROMETHEUS_IMAGE="+images.bases.Prometheus,
		"COMPOSE_TEST_PROMETHEUS_CONFIG="+promConfig,
	)
	for name, p := range port {
		env = append(env, fmt.Sprintf("COMPOSE_TEST_%s_PORT=%d", name, p))
	}
	c := &compose{
		cli:     cli,
		project: fmt.Sprintf("orderflow-compose-test-%d", os.Getpid()),
		args:    []string{"--project-directory", projectDir, "-f", baseFile, "-f", overrideFile},
		env:     env,
	}

	// The effective file: every service that runs uses a local image on
	// the host network.
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := c.run(cctx, "config")
	if err != nil {
		t.Fatal(err)
	}
	var eff struct {
		Services map[string]struct {
			Image       string   `yaml:"image"`
			NetworkMode string   `yaml:"network_mode"`
			Profiles    []string `yaml:"profiles"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(out), &eff); err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	var running []string
	for _, name := range keys(eff.Services) {
		s := eff.Services[name]
		if slices.Contains(s.Profiles, upstreamProfile) {
			continue
		}
		running = append(running, name)
		if !strings.HasPrefix(s.Image, infra.ImageRepo) || s.NetworkMode != "host" {
			t.Errorf("effective service %s: image %q, network_mode %q; want a local %s image on the host network", name, s.Image, s.NetworkMode, infra.ImageRepo)
		}
	}
	if want := []string{"gateway", "kafka", "processor-1", "processor-2", "prometheus", "redis", "sim", "topics"}; !slices.Equal(running, want) {
		t.Fatalf("services the test starts: %v, want %v", running, want)
	}

	// compose down at the end whatever happens (the test's own down below
	// is checked; this one only cleans up after a failure).
	down := func(ctx context.Context) (string, error) {
		return c.run(ctx, "down", "--volumes", "--remove-orphans", "--timeout", "60")
	}
	downDone := false
	t.Cleanup(func() {
		if t.Failed() {
			lctx, lcancel := context.WithTimeout(context.Background(), time.Minute)
			logs, _ := c.run(lctx, "logs", "--no-color", "--tail", "40")
			lcancel()
			t.Logf("compose logs:\n%s", logs)
		}
		if !downDone {
			dctx, dcancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer dcancel()
			if out, err := down(dctx); err != nil {
				t.Errorf("cleanup: %v\n%s", err, out)
			}
		}
	})

	// compose up: it waits for Kafka's health check, the topics job to
	// complete and the simulator and Redis to be healthy before it starts
	// what depends on them.
	upStart := time.Now()
	uctx, ucancel := context.WithTimeout(ctx, 5*time.Minute)
	defer ucancel()
	if _, err := c.run(uctx, "up", "-d", "--no-build"); err != nil {
		t.Fatal(err)
	}
	upDone := time.Now()

	// Every container and volume of the project carries the owner label,
	// so a killed run's are removed by the next (infra.RemoveOrphans).
	owner := infra.LabelOwner + "=" + strconv.Itoa(os.Getpid())
	for _, kind := range []string{"ps -a", "volume ls"} {
		args := append(strings.Fields(kind), "-q", "--filter", "label=com.docker.compose.project="+c.project)
		all, err1 := docker(t, args...)
		owned, err2 := docker(t, append(args, "--filter", "label="+owner)...)
		if err := errors.Join(err1, err2); err != nil || all == "" || all != owned {
			t.Errorf("docker %s of the project: %q, of those labelled %s: %q (%v); want the same, not none", kind, all, owner, owned, err)
		}
	}

	// The topics job created the topics, with compose.yaml's 12 partitions.
	kafka := fmt.Sprintf("127.0.0.1:%d", port["KAFKA"])
	checkTopics(t, kafka, map[string]int{"orders": 12, "orders.state": 12, "orders.dlq": 12})

	// The gateway and both processors answer their health checks.
	gw := fmt.Sprintf("http://127.0.0.1:%d", port["GATEWAY"])
	waitHTTP(t, gw+"/readyz", 2*time.Minute)
	for _, p := range []string{"processor-1", "processor-2"} {
		waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", metricsPort[p]), 2*time.Minute)
	}
	healthy := time.Now()

	// One order, sent as the compose file documents, in the gateway
	// service's container with its webhook secret: with exec in the
	// running one, as docker-compose 1.29's run links the new container to
	// the service's dependencies, which host networking refuses.
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer rcancel()
	out, err = c.run(rctx, "exec", "-T", "gateway", "/orderflow", "send-test-event",
		"--url", fmt.Sprintf("http://gateway:%d/webhooks/stripe", port["GATEWAY"]),
		"--sim-url", fmt.Sprintf("http://sim:%d", port["SIM"]), "--count", "1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("send-test-event: %s", strings.TrimSpace(tail(out, 5)))
	// Completed by one of the processors, exactly once.
	completed := func() float64 {
		n := 0.0
		for _, p := range []string{"processor-1", "processor-2"} {
			n += counterSum(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort[p]), "orderflow_orders_total", "status", "completed")
		}
		return n
	}
	waitUntil(t, 3*time.Minute, "an order completed by the processors", func() (bool, string) {
		n := completed()
		return n >= 1, fmt.Sprintf("orderflow_orders_total{status=\"completed\"} summed over both processors = %v", n)
	})
	if n := completed(); n != 1 {
		t.Errorf("orders completed = %v, want 1", n)
	}
	orderDone := time.Now()

	// Prometheus scrapes the gateway and both processors.
	prom := fmt.Sprintf("http://127.0.0.1:%d", port["PROMETHEUS"])
	wantTargets := map[string]int{"orderflow-gateway": 1, "orderflow-processor": 2}
	waitUntil(t, 90*time.Second, "Prometheus targets up", func() (bool, string) {
		up, desc := promTargetsUp(t, prom)
		for job, n := range wantTargets {
			if up[job] != n {
				return false, desc
			}
		}
		return len(up) == len(wantTargets), desc
	})
	// It loaded the alert rules of alerts.yml.
	rules := promRuleNames(t, prom)
	for _, want := range []string{"OrderflowGatewayErrors", "OrderflowDeadLetters", "OrderflowCircuitOpen", "OrderflowProcessorAbsent"} {
		if !slices.Contains(rules, want) {
			t.Errorf("Prometheus has not loaded alert %s (loaded: %v)", want, rules)
		}
	}
	// And it sees the order, from the processors' metrics.
	waitUntil(t, 90*time.Second, "Prometheus seeing the completed order", func() (bool, string) {
		v, desc := promQuery(t, prom, `sum(orderflow_orders_total{status="completed"})`)
		return v == "1", desc
	})
	scraped := time.Now()

	// compose down removes the containers and the volumes.
	dctx, dcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer dcancel()
	if _, err := down(dctx); err != nil {
		t.Fatal(err)
	}
	downDone = true
	downFinished := time.Now()
	label := "label=com.docker.compose.project=" + c.project
	if left, err := docker(t, "ps", "-a", "-q", "--filter", label); err != nil || left != "" {
		t.Errorf("containers of the project after compose down: %q, %v", left, err)
	}
	if left, err := docker(t, "volume", "ls", "-q", "--filter", label); err != nil || left != "" {
		t.Errorf("volumes of the project after compose down: %q, %v", left, err)
	}
	t.Logf("timings: images %s, compose up %s, healthy %s, order completed %s, Prometheus %s, compose down %s; total %s",
		imagesReady.Sub(testStart).Round(time.Second), upDone.Sub(upStart).Round(time.Second),
		healthy.Sub(upDone).Round(time.Second), orderDone.Sub(healthy).Round(time.Second),
		scraped.Sub(orderDone).Round(time.Second), downFinished.Sub(scraped).Round(time.Second),
		time.Since(testStart).Round(time.Second))
}

// prometheusConfigFor is deploy/prometheus/prometheus.yml with each
// target's port replaced by the service's metrics port of this run (the
// host names stay: extra_hosts resolves them).
func prometheusConfigFor(t *testing.T, metricsPort map[string]int) []byte {
	t.Helper()
	b, err := os.ReadFile(promConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, sc := range cfg["scrape_configs"].([]any) {
		for _, st := range sc.(map[string]any)["static_configs"].([]any) {
			targets := st.(map[string]any)["targets"].([]any)
			for i, tg := range targets {
				host, _, err := netSplit(tg.(string))
				if err != nil {
					t.Fatal(err)
				}
				p, ok := metricsPort[host]
				if !ok {
					t.Fatalf("%s: target %s is no service of the test", promConfigFile, tg)
				}
				targets[i] = fmt.Sprintf("%s:%d", host, p)
				n++
			}
		}
	}
	if n != len(metricsPort) {
		t.Fatalf("%s has %d targets, want %d", promConfigFile, n, len(metricsPort))
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkTopics fails unless each topic exists with its partition count.
func checkTopics(t *testing.T, brokers string, want map[string]int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	td, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatalf("list topics of the compose Kafka: %v", err)
	}
	for name, n := range want {
		d, ok := td[name]
		switch {
		case !ok:
			t.Errorf("topic %s missing (topics: %v)", name, td.Names())
		case d.Err != nil:
			t.Errorf("topic %s: %v", name, d.Err)
		case len(d.Partitions) != n:
			t.Errorf("topic %s has %d partitions, want %d", name, len(d.Partitions), n)
		}
	}
}

// waitHTTP polls url until it answers 200.
func waitHTTP(t *testing.T, url string, within time.Duration) {
	t.Helper()
	waitUntil(t, within, url, func() (bool, string) {
		resp, err := client.Get(url)
		if err != nil {
			return false, err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	})
}

// waitUntil polls cond until it holds, failing after within with cond's
// last description.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last: %s)", what, within, desc)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// counterSum is the sum of the metric's samples with label=value (0 when
// the endpoint does not answer or has none).
func counterSum(t *testing.T, url, metric, label, value string) float64 {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	sum := 0.0
	for _, m := range fams[metric].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// promGet decodes a Prometheus API answer's data.
func promGet(t *testing.T, u string, data any) error {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("GET %s: %s: %v", u, resp.Status, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("GET %s: %s %s", u, r.Status, r.Error)
	}
	return json.Unmarshal(r.Data, data)
}

// promTargetsUp counts the active targets that are up, by job, and
// describes every target.
func promTargetsUp(t *testing.T, prom string) (map[string]int, string) {
	t.Helper()
	var d struct {
		ActiveTargets []struct {
			Labels    map[string]string `json:"labels"`
			ScrapeURL string            `json:"scrapeUrl"`
			Health    string            `json:"health"`
			LastError string            `json:"lastError"`
		} `json:"activeTargets"`
	}
	if err := promGet(t, prom+"/api/v1/targets?state=active", &d); err != nil {
		return nil, err.Error()
	}
	up := map[string]int{}
	var desc []string
	for _, tg := range d.ActiveTargets {
		if tg.Health == "up" {
			up[tg.Labels["job"]]++
		}
		desc = append(desc, fmt.Sprintf("%s %s %s %s", tg.Labels["job"], tg.ScrapeURL, tg.Health, tg.LastError))
	}
	return up, strings.Join(desc, "; ")
}

// promRuleNames lists the rules Prometheus has loaded.
func promRuleNames(t *testing.T, prom string) []string {
	t.Helper()
	var d struct {
		Groups []struct {
			Rules []struct {
				Name string `json:"name"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := promGet(t, prom+"/api/v1/rules", &d); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range d.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Name)
		}
	}
	return names
}

// promQuery evaluates an instant query whose answer is one sample and
// returns its value ("" when there is none).
func promQuery(t *testing.T, prom, q string) (string, string) {
	t.Helper()
	var d struct {
		Result []struct {
			Value []any `json:"value"`
		} `json:"result"`
	}
	if err := promGet(t, prom+"/api/v1/query?query="+url.QueryEscape(q), &d); err != nil {
		return "", err.Error()
	}
	if len(d.Result) != 1 || len(d.Result[0].Value) != 2 {
		return "", fmt.Sprintf("%s: %d samples", q, len(d.Result))
	}
	v, _ := d.Result[0].Value[1].(string)
	return v, fmt.Sprintf("%s = %s", q, v)
}
