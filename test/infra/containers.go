package infra

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
)

// ContainerStartTimeout bounds one container's start until it answers.
const ContainerStartTimeout = 2 * time.Minute

// Container is a server running in a container started with
// testcontainers-go on the host network: it binds loopback ports picked
// free (picked again when one is found taken), so every connection stays
// on 127.0.0.1 and no container address is used.
type Container struct {
	Name, Image, Version string
	c                    testcontainers.Container
	ports                []int
}

// ID is the container's id.
func (c *Container) ID() string { return c.c.GetContainerID() }

// HostPID is the process id, on this host, of the container's main process
// (the server itself: the images exec it), or 0 when it cannot be read.
// The benchmarks read its CPU time from /proc.
func (c *Container) HostPID(ctx context.Context) int {
	if c == nil || c.c == nil {
		return 0
	}
	st, err := c.c.State(ctx)
	if err != nil || st == nil {
		return 0
	}
	return st.Pid
}

// Port is the i-th port it listens on.
func (c *Container) Port(i int) int { return c.ports[i] }

// Stop removes the container (and its volumes).
func (c *Container) Stop() {
	if c == nil || c.c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = c.c.Terminate(ctx, testcontainers.StopTimeout(5*time.Second))
}

// UseEngine points testcontainers-go at e, with Ryuk (its reaper, whose
// image is not available without a registry) disabled: the containers are
// removed by Stop, and containers of a killed run by RemoveOrphans. It must
// be called before the first container starts.
func UseEngine(e *Engine) {
	for _, kv := range e.Env() {
		k, v, _ := cutEq(kv)
		os.Setenv(k, v)
	}
}

func cutEq(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// runContainer starts image with cmd on nPorts fresh ports (cmd builds the
// command from them) and waits until ready answers, retrying on fresh
// ports when the server finds one taken.
func runContainer(ctx context.Context, name, image string, nPorts int, env func([]int) map[string]string, cmd func([]int) []string, ready func(context.Context, []int) error) (*Container, error) {
	var out *Container
	err := withFreshPorts(nPorts, func(ports []int) error {
		sctx, cancel := context.WithTimeout(ctx, ContainerStartTimeout)
		defer cancel()
		opts := []testcontainers.ContainerCustomizer{
			testcontainers.WithLabels(map[string]string{LabelOwner: Owner}),
			testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
				hc.NetworkMode = "host"
			}),
		}
		if env != nil {
			opts = append(opts, testcontainers.WithEnv(env(ports)))
		}
		if cmd != nil {
			opts = append(opts, testcontainers.WithCmd(cmd(ports)...))
		}
		c, err := run1(sctx, image, opts...)
		if err != nil {
			if c != nil {
				_ = c.Terminate(context.Background())
			}
			return fmt.Errorf("start %s container (%s): %w", name, image, err)
		}
		for {
			cctx, ccancel := context.WithTimeout(sctx, 2*time.Second)
			rerr := ready(cctx, ports)
			ccancel()
			if rerr == nil {
				out = &Container{Name: name, Image: image, c: c, ports: ports}
				return nil
			}
			st, serr := c.State(sctx)
			exited := serr == nil && !st.Running
			if exited || sctx.Err() != nil {
				logs := containerLogs(c)
				_ = c.Terminate(context.Background())
				if exited {
					return fmt.Errorf("%s container exited before it was ready (code %d); last lines of its log:\n%s", name, st.ExitCode, logs)
				}
				return fmt.Errorf("%s container not ready within %s (last check: %v); last lines of its log:\n%s", name, ContainerStartTimeout, rerr, logs)
			}
			select {
			case <-sctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	})
	return out, err
}

// quiet drops testcontainers-go's progress lines; failures carry the
// container's own log instead.
type quiet struct{}

func (quiet) Printf(string, ...any) {}

// run1 starts one container like testcontainers.Run, on a provider whose
// default network is the host network: with no "bridge" network (dockerd
// --bridge=none), Run would create a "reaper_default" bridge and attach
// every container to it.
func run1(ctx context.Context, image string, opts ...testcontainers.ContainerCustomizer) (testcontainers.Container, error) {
	req := testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{Image: image}, Started: true}
	for _, o := range opts {
		if err := o.Customize(&req); err != nil {
			return nil, err
		}
	}
	p, err := testcontainers.NewDockerProvider(testcontainers.WithDefaultBridgeNetwork("host"), testcontainers.WithLogger(quiet{}))
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return p.RunContainer(ctx, req.ContainerRequest)
}

func containerLogs(c testcontainers.Container) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc, err := c.Logs(ctx)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(lastBytes(b, 3000))
}

// KafkaContainer runs the broker from the local Kafka image.
func KafkaContainer(ctx context.Context, image string) (*Container, error) {
	k := &Kafka{}
	c, err := runContainer(ctx, "kafka", image, 2,
		func(p []int) map[string]string {
			return map[string]string{"KAFKA_PORT": itoa(p[0]), "KAFKA_CONTROLLER_PORT": itoa(p[1])}
		}, nil,
		func(ctx context.Context, p []int) error { k.cfg.Port = p[0]; return k.ping(ctx) })
	if err != nil {
		return nil, err
	}
	c.Version = KafkaVersion
	return c, nil
}

// KafkaAddr is the broker's bootstrap address.
func (c *Container) KafkaAddr() string { return fmt.Sprintf("127.0.0.1:%d", c.ports[0]) }

// RedisContainer runs Debian's redis-server from the local Redis image.
func RedisContainer(ctx context.Context, image string) (*Container, error) {
	r := &Redis{}
	c, err := runContainer(ctx, "redis", image, 1, nil,
		func(p []int) []string {
			return []string{"--bind", "127.0.0.1", "--port", itoa(p[0]), "--save", "", "--appendonly", "no", "--protected-mode", "yes"}
		},
		func(ctx context.Context, p []int) error { r.port = p[0]; return r.ping(ctx) })
	if err != nil {
		return nil, err
	}
	c.Version = r.version
	return c, nil
}

// StripeMockContainer runs stripe-mock from the local image.
func StripeMockContainer(ctx context.Context, image string) (*Container, error) {
	s := &StripeMock{}
	c, err := runContainer(ctx, "stripe-mock", image, 2, nil,
		func(p []int) []string {
			return []string{"-http-addr", fmt.Sprintf("127.0.0.1:%d", p[0]), "-https-addr", fmt.Sprintf("127.0.0.1:%d", p[1])}
		},
		func(ctx context.Context, p []int) error { s.port = p[0]; return s.ping(ctx) })
	if err != nil {
		return nil, err
	}
	c.Version = StripeMockVersion
	return c, nil
}

// URL is stripe-mock's HTTP base URL.
func (c *Container) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", c.ports[0]) }

// Addr is host:port of the first port.
func (c *Container) Addr() string { return fmt.Sprintf("127.0.0.1:%d", c.ports[0]) }
