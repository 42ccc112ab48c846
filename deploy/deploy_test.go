package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/test/testenv"
)

// binDir holds the orderflow binary built once for the package's tests.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "orderflow-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var build struct {
	sync.Once
	path string
	err  error
}

// raceEnabled is set when the tests run with -race (race_test.go).
var raceEnabled bool

// orderflowBinary builds ./cmd/orderflow and returns its path. Under -race
// the binary is built with the race detector too, which shares the
// compiled packages with the test build and finds data races in the
// running commands; otherwise it is built as the Dockerfile builds it
// (static, trimmed paths).
func orderflowBinary(t *testing.T) string {
	t.Helper()
	build.Do(func() {
		path := filepath.Join(binDir, "orderflow")
		args := []string{"build", "-o", path}
		env := os.Environ()
		if raceEnabled {
			args = append(args, "-race")
		} else {
			args = append(args, "-trimpath")
			env = append(env, "CGO_ENABLED=0")
		}
		cmd := exec.Command("go", append(args, "./cmd/orderflow")...)
		cmd.Dir = ".."
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build ./cmd/orderflow: %v\n%s", err, out)
			return
		}
		build.path = path
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// process is one running orderflow command.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs `orderflow args...` until the test ends; at cleanup it sends
// SIGTERM, as Kubernetes does, and waits for the drain.
func start(t *testing.T, name string, env []string, args ...string) *process {
	t.Helper()
	p := &process{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(orderflowBinary(t), args...)
	p.cmd.Env = append(cleanEnv(), env...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not stop within 30s of SIGTERM", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, tail(p.out.String(), 60))
		}
	})
	return p
}

// cleanEnv is the test's environment without ORDERFLOW_* settings, so a
// developer's shell does not change what the commands run with.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ORDERFLOW_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var client = &http.Client{Timeout: 5 * time.Second}

// waitOK polls url until it answers 200, failing when p exits first.
func waitOK(t *testing.T, p *process, url string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before %s answered:\n%s", p.name, p.err, url, tail(p.out.String(), 40))
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %s did not answer 200 within %s (last: %s)", p.name, url, within, last)
}

// get returns the status code of GET url.
func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// scrape reads a /metrics endpoint.
func scrape(t *testing.T, url string) exported {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	e := exported{}
	if err := e.parseExposition(resp.Body); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return e
}

// waitMetric scrapes url until the metric has a series with label=value
// (any series when label is empty).
func waitMetric(t *testing.T, url, metric, label, value string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		e := scrape(t, url)
		if s, ok := e[metric]; ok && (label == "" || s[label][value]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s{%s=%q} within %s", url, metric, label, value, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// run runs a one-shot orderflow command and returns its output.
func run(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, orderflowBinary(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("orderflow %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestMetricsMatchDashboardAndAlerts starts the gateway, the processor and
// the provider simulator from the built binary against the shared Kafka,
// drives orders through them (completed ones, duplicates and dead letters,
// so label-vector metrics have series), scrapes both /metrics endpoints and
// fails when the dashboard or an alert rule names a metric, a label or a
// label value the code does not export. It also checks that every probe
// path of the Kubernetes Deployments answers on the listener its port names.
func TestMetricsMatchDashboardAndAlerts(t *testing.T) {
	brokers := testenv.Kafka(t)
	uses := allUses(t)
	probes := append(deploymentProbes(t), composeProbes(t)...)
	names := testenv.Topics(t, brokers)

	const secret = "whsec_deploy_test_secret"
	simAddr, gwHTTP, gwMetrics, procMetrics := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	kafka := []string{"ORDERFLOW_BROKERS=" + brokers, "ORDERFLOW_TOPIC_PREFIX=" + names.Prefix}

	sim := start(t, "sim", nil, "sim", "--addr", simAddr)
	gw := start(t, "gateway", append(kafka, "ORDERFLOW_WEBHOOK_SECRET="+secret),
		"gateway", "--http-addr", gwHTTP, "--metrics-addr", gwMetrics, "--log-format", "json")
	proc := start(t, "processor", append(kafka, "ORDERFLOW_SIM_URL=http://"+simAddr),
		"processor", "--metrics-addr", procMetrics, "--group", names.Prefix+"processor",
		"--label-dir", filepath.Join(t.TempDir(), "labels"),
		"--revoke-deadline", "2s", "--retry-base-delay", "100ms", "--retry-attempts", "2")

	waitOK(t, sim, "http://"+simAddr+"/_sim/stats", 20*time.Second)
	waitOK(t, gw, "http://"+gwHTTP+"/readyz", 30*time.Second)
	waitOK(t, proc, "http://"+procMetrics+"/healthz", 30*time.Second)

	// Probe paths answer 200 where the Deployments and the compose health
	// checks point them.
	listeners := map[string]map[string]string{
		"gateway":   {"http-addr": gwHTTP, "metrics-addr": gwMetrics},
		"processor": {"metrics-addr": procMetrics},
		"sim":       {"addr": simAddr},
	}
	for _, pr := range probes {
		addr := listeners[pr.command][pr.flag]
		if addr == "" {
			t.Errorf("%s: probe %s on port %d: no %s listener --%s in this test", pr.where, pr.path, pr.port, pr.command, pr.flag)
			continue
		}
		if code := get(t, "http://"+addr+pr.path); code != http.StatusOK {
			t.Errorf("%s: GET %s on orderflow %s's --%s listener: %d, want 200", pr.where, pr.path, pr.command, pr.flag, code)
		}
	}

	// Orders that complete, each event sent twice (duplicates, dedup hits).
	url := "http://" + gwHTTP + "/webhooks/stripe"
	run(t, nil, "send-test-event", "--url", url, "--secret", secret, "--count", "2", "--duplicates", "1")
	waitMetric(t, "http://"+procMetrics+"/metrics", "orderflow_orders_total", "status", "completed", 60*time.Second)

	// An order the CRM rejects: a permanent failure, so a dead letter.
	req, err := http.NewRequest(http.MethodPut, "http://"+simAddr+"/_sim/faults",
		strings.NewReader(`{"step":"crm","mode":"reject","rate":1.0}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT /_sim/faults: %s", resp.Status)
	}
	run(t, nil, "send-test-event", "--url", url, "--secret", secret, "--count", "1")
	waitMetric(t, "http://"+procMetrics+"/metrics", "orderflow_dlq_writes_total", "class", "permanent", 60*time.Second)
	// Lag is published at the commit after records were fetched.
	waitMetric(t, "http://"+procMetrics+"/metrics", "orderflow_consumer_lag", "", "", 30*time.Second)

	all := exported{}
	for _, u := range []string{"http://" + gwMetrics + "/metrics", "http://" + procMetrics + "/metrics"} {
		for name, labels := range scrape(t, u) {
			for l, vals := range labels {
				for v := range vals {
					all.add(name, map[string]string{l: v}, "", "")
				}
			}
			if len(labels) == 0 {
				all.add(name, nil, "", "")
			}
		}
	}
	for _, p := range all.check(uses) {
		t.Error(p)
	}
	t.Logf("checked %d series selectors of the dashboard and the alert rules against %d exported series names", len(uses), len(all))
}
