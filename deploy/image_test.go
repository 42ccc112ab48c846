package deploy_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/test/infra"
	"github.com/orderflow/orderflow/test/testenv"
)

// The image tests build the project's Dockerfile on the Docker engine the
// test infrastructure uses (DOCKER_HOST; see test/infra), with the local
// substitutes of its upstream bases, and run what it built.

var images struct {
	once  sync.Once
	e     *infra.Engine
	bases infra.BuildImages
	err   error

	mu    sync.Mutex
	built map[string]string
}

// engine returns the Docker engine, or skips (fails under CI=true) when
// there is none.
func engine(t *testing.T) *infra.Engine {
	t.Helper()
	images.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		images.e, images.err = infra.EngineFromEnv(ctx)
		if images.err != nil {
			return
		}
		images.bases, images.err = images.e.BuildBases(ctx, t.Logf)
	})
	if images.err != nil {
		msg := "Docker engine or local base images unavailable: " + images.err.Error() + " (run the tests with 'make test')"
		if testenv.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return images.e
}

// orderflowImage builds the Dockerfile's target ("" = the default image).
func orderflowImage(t *testing.T, target string) string {
	t.Helper()
	e := engine(t)
	images.mu.Lock()
	defer images.mu.Unlock()
	if tag, ok := images.built[target]; ok {
		return tag
	}
	start := time.Now()
	tag, err := e.OrderflowImage(context.Background(), "..", target, images.bases)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %s", tag, time.Since(start).Round(time.Second))
	if images.built == nil {
		images.built = map[string]string{}
	}
	images.built[target] = tag
	return tag
}

// docker runs the docker client and returns its combined output.
func docker(t *testing.T, args ...string) (string, error) {
	t.Helper()
	e := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := e.Docker(ctx, args...)
	return strings.TrimSpace(string(out)), err
}

// startImage runs the image with args in the foreground (docker run, host
// network) until the test ends; at cleanup the client forwards SIGTERM to
// the container, and the container is removed.
func startImage(t *testing.T, image, name string, env []string, args ...string) *process {
	t.Helper()
	e := engine(t)
	cname := fmt.Sprintf("orderflow-test-%s-%d", name, time.Now().UnixNano())
	argv := []string{"run", "--rm", "--network", "host", "--name", cname,
		"--label", infra.LabelOwner + "=" + strconv.Itoa(os.Getpid())}
	for _, kv := range env {
		argv = append(argv, "-e", kv)
	}
	argv = append(append(argv, image), args...)
	p := &process{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(e.CLI, argv...)
	p.cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.Host)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("docker run %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(40 * time.Second):
			_, _ = docker(t, "rm", "-f", cname)
			<-p.done
			t.Errorf("%s did not stop within 40s of SIGTERM", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, tail(p.out.String(), 60))
		}
	})
	return p
}

// TestImage builds the default image and checks that it answers help and
// --version,
// runs as the nonroot user, and that a gateway, a processor and the
// provider simulator from it complete an order sent with send-test-event
// (also from the image), against the shared Kafka.
func TestImage(t *testing.T) {
	img := orderflowImage(t, "")

	out, err := docker(t, "run", "--rm", "--network", "host", img, "help")
	if err != nil {
		t.Fatalf("docker run %s help: %v\n%s", img, err, out)
	}
	for _, want := range []string{"Usage: orderflow <command>", "gateway", "processor", "send-test-event"} {
		if !strings.Contains(out, want) {
			t.Errorf("docker run %s help: output lacks %q:\n%s", img, want, out)
		}
	}
	// --version names the module and the Go that built it.
	if v, err := docker(t, "run", "--rm", "--network", "host", img, "--version"); err != nil || !strings.HasPrefix(v, "orderflow ") || !strings.Contains(v, " go1.") {
		t.Errorf("docker run %s --version = %q, %v; want \"orderflow <version> <revision> go1.…\"", img, v, err)
	}
	// With no arguments the image runs CMD ["help"].
	if out2, err := docker(t, "run", "--rm", "--network", "host", img); err != nil || out2 != out {
		t.Errorf("docker run %s (default CMD): %v; output differs from help:\n%s", img, err, out2)
	}
	if user, err := docker(t, "image", "inspect", "--format", "{{.Config.User}}", img); err != nil || user != "65532:65532" {
		t.Errorf("image user = %q, %v; want 65532:65532", user, err)
	}

	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers)
	const secret = "whsec_image_test_secret"
	simAddr, gwHTTP, gwMetrics, procMetrics := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	kafka := []string{"ORDERFLOW_BROKERS=" + brokers, "ORDERFLOW_TOPIC_PREFIX=" + names.Prefix}

	sim := startImage(t, img, "sim", nil, "sim", "--addr", simAddr)
	gw := startImage(t, img, "gateway", append(kafka, "ORDERFLOW_WEBHOOK_SECRET="+secret),
		"gateway", "--http-addr", gwHTTP, "--metrics-addr", gwMetrics)
	proc := startImage(t, img, "processor", append(kafka, "ORDERFLOW_SIM_URL=http://"+simAddr),
		"processor", "--metrics-addr", procMetrics, "--group", names.Prefix+"processor",
		"--revoke-deadline", "2s", "--retry-base-delay", "100ms", "--retry-attempts", "2")
	waitOK(t, sim, "http://"+simAddr+"/_sim/stats", 60*time.Second)
	waitOK(t, gw, "http://"+gwHTTP+"/readyz", 60*time.Second)
	waitOK(t, proc, "http://"+procMetrics+"/healthz", 60*time.Second)

	// The processes in the containers run as 65532, seen from the host.
	for _, name := range []string{"sim", "gateway", "processor"} {
		pid, err := docker(t, "ps", "--filter", "name=orderflow-test-"+name+"-", "--filter", "label="+infra.LabelOwner+"="+strconv.Itoa(os.Getpid()), "--format", "{{.ID}}")
		if err != nil || pid == "" {
			t.Fatalf("find the %s container: %q, %v", name, pid, err)
		}
		hostPID, err := docker(t, "inspect", "--format", "{{.State.Pid}}", pid)
		if err != nil {
			t.Fatal(err)
		}
		status, err := os.ReadFile("/proc/" + hostPID + "/status")
		if err != nil {
			t.Fatal(err)
		}
		if uid := statusField(string(status), "Uid:"); uid != "65532" {
			t.Errorf("%s container runs as uid %q, want 65532 (nonroot)", name, uid)
		}
	}

	out, err = docker(t, "run", "--rm", "--network", "host", img,
		"send-test-event", "--url", "http://"+gwHTTP+"/webhooks/stripe", "--secret", secret, "--count", "1")
	if err != nil {
		t.Fatalf("send-test-event from the image: %v\n%s", err, out)
	}
	waitMetric(t, "http://"+procMetrics+"/metrics", "orderflow_orders_total", "status", "completed", 90*time.Second)
}

// statusField is the first value of a /proc/PID/status line.
func statusField(status, key string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			if f := strings.Fields(v); len(f) > 0 {
				return f[0]
			}
		}
	}
	return ""
}
