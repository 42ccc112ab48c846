// Command infra starts and stops the real infrastructure of orderflow's
// tests: Apache Kafka 4.x (from Maven Central's jars), Redis (Debian's
// redis-server) and stripe-mock (Go), each on free loopback ports, and
// finds (or installs) the Chromium the console's browser test drives.
//
// The servers run in containers started with testcontainers-go from local
// images (package infra builds them without a registry) on a Docker engine:
// the one that answers, or a dockerd it installs and starts (root on
// Linux), stopped afterwards. Where that fails, they run as plain
// processes, and an `infra: engine none (...)` line says why.
// ORDERFLOW_TEST_INFRA=docker makes a Docker failure fatal;
// ORDERFLOW_TEST_INFRA=process skips Docker.
//
//	infra up              start them in the background, write the env file
//	infra down            stop what `up` started
//	infra run -- CMD...   start them, run CMD with their addresses in the
//	                      environment, stop them (also on failure or Ctrl-C)
//
// The env file (default test/.infra.env) is sourceable:
// ORDERFLOW_TEST_KAFKA, ORDERFLOW_TEST_KAFKA_LIBS, ORDERFLOW_TEST_REDIS,
// ORDERFLOW_TEST_STRIPE_MOCK, ORDERFLOW_TEST_CHROMIUM,
// ORDERFLOW_TEST_INFRA_ENGINE (docker or process), DOCKER_HOST and
// TESTCONTAINERS_RYUK_DISABLED (with Docker), and the process and container
// ids to stop.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/orderflow/orderflow/test/infra"
)

func main() {
	fs := flag.NewFlagSet("infra", flag.ExitOnError)
	envFile := fs.String("env-file", "test/.infra.env", "file the addresses are written to")
	dir := fs.String("dir", "test/.infra", "folder for the servers' data and logs")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: infra [flags] up|down|run -- CMD [ARGS...]")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() == 0 {
		fs.Usage()
		os.Exit(2)
	}
	var err error
	code := 0
	switch fs.Arg(0) {
	case "up":
		err = up(*envFile, *dir)
	case "down":
		err = down(*envFile, *dir)
	case "run":
		args := fs.Args()[1:]
		if len(args) > 0 && args[0] == "--" {
			args = args[1:]
		}
		if len(args) == 0 {
			fs.Usage()
			os.Exit(2)
		}
		code, err = runWith(*envFile, *dir, args)
	default:
		fs.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "infra: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

type servers struct {
	// Process path.
	kafka  *infra.Kafka
	redis  *infra.Redis
	stripe *infra.StripeMock
	// Docker path (testcontainers-go).
	engine                  *infra.Engine
	kafkaC, redisC, stripeC *infra.Container

	libs string
	// chromium is the browser the console's browser test drives.
	chromium string
}

func (s *servers) stop() {
	for _, c := range []*infra.Container{s.stripeC, s.redisC, s.kafkaC} {
		c.Stop()
	}
	if s.stripe != nil {
		s.stripe.Stop()
	}
	if s.redis != nil {
		s.redis.Stop()
	}
	if s.kafka != nil {
		s.kafka.Stop()
	}
	s.engine.Stop()
}

// Modes of ORDERFLOW_TEST_INFRA.
const (
	modeAuto    = "auto"    // Docker when it works, else plain processes
	modeDocker  = "docker"  // Docker or fail
	modeProcess = "process" // plain processes only
)

func mode() (string, error) {
	switch m := os.Getenv("ORDERFLOW_TEST_INFRA"); m {
	case "", modeAuto:
		return modeAuto, nil
	case modeDocker, modeProcess:
		return m, nil
	default:
		return "", fmt.Errorf("ORDERFLOW_TEST_INFRA=%q: want auto, docker or process", m)
	}
}

// dockerSetupTimeout bounds the whole Docker path before the servers run
// (install, dockerd, base image, server images, containers) on top of each
// step's own bound.
const dockerSetupTimeout = 20 * time.Minute

// start prepares (downloads in parallel) and starts all three: in
// containers (testcontainers-go on a Docker engine, found or started) or,
// where that does not work and the mode allows, as plain processes.
func start(ctx context.Context, dir string, detach bool) (*servers, error) {
	m, err := mode()
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	dctx, dcancel := context.WithTimeout(ctx, dockerSetupTimeout)
	defer dcancel()
	var (
		wg                        sync.WaitGroup
		libs, redisBin, stripeBin string
		libsErr, redisErr, smErr  error
		engine                    *infra.Engine
		engineErr                 = errors.New("ORDERFLOW_TEST_INFRA=process")
	)
	var chromium, chromiumVersion string
	var chromiumErr error
	wg.Add(4)
	go func() {
		defer wg.Done()
		chromium, chromiumVersion, chromiumErr = infra.ChromiumBinary(ctx, logf)
	}()
	go func() { defer wg.Done(); libs, libsErr = infra.KafkaLibs(ctx, infra.KafkaVersion, logf) }()
	go func() { defer wg.Done(); redisBin, redisErr = infra.RedisBinary(ctx, logf) }()
	go func() { defer wg.Done(); stripeBin, smErr = infra.StripeMockBinary(ctx, logf) }()
	if m != modeProcess {
		wg.Add(1)
		go func() {
			defer wg.Done()
			engine, engineErr = infra.StartEngine(dctx, infra.EngineOptions{RunDir: filepath.Join(abs, "docker"), Detach: detach, Logf: logf})
		}()
	}
	wg.Wait()
	if err := errors.Join(libsErr, redisErr, smErr, chromiumErr); err != nil {
		engine.Stop()
		return nil, err
	}
	s := &servers{libs: libs, chromium: chromium}
	if engineErr == nil {
		fmt.Println(engine.Describe())
		s.engine = engine
		engineErr = startContainers(dctx, s, stripeBin)
		if engineErr != nil {
			s.stop()
			s = &servers{libs: libs, chromium: chromium}
		}
	}
	if engineErr != nil {
		if m == modeDocker {
			return nil, fmt.Errorf("ORDERFLOW_TEST_INFRA=docker: %w", engineErr)
		}
		if m == modeAuto {
			fmt.Printf("infra: engine none (Docker path failed: %s); servers run as plain processes\n", oneLine(engineErr))
		} else {
			fmt.Println("infra: engine none (ORDERFLOW_TEST_INFRA=process); servers run as plain processes")
		}
		if err := startProcesses(ctx, s, abs, redisBin, stripeBin, detach); err != nil {
			return nil, err
		}
	}
	fmt.Printf("infra: %s at %s\n", chromiumVersion, chromium)
	return s, nil
}

func oneLine(err error) string {
	msg := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i] + " (more above)"
		logf("infra: %v", err)
	}
	return msg
}

// startContainers builds (or finds) the local images and starts the three
// servers from them with testcontainers-go.
func startContainers(ctx context.Context, s *servers, stripeBin string) error {
	infra.UseEngine(s.engine)
	if err := s.engine.RemoveOrphans(ctx); err != nil {
		return fmt.Errorf("remove containers of earlier runs: %w", err)
	}
	im, err := s.engine.ServerImages(ctx, s.libs, stripeBin, logf)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var kErr, rErr, sErr error
	wg.Add(3)
	go func() { defer wg.Done(); s.kafkaC, kErr = infra.KafkaContainer(ctx, im.Kafka) }()
	go func() { defer wg.Done(); s.redisC, rErr = infra.RedisContainer(ctx, im.Redis) }()
	go func() { defer wg.Done(); s.stripeC, sErr = infra.StripeMockContainer(ctx, im.StripeMock) }()
	wg.Wait()
	if err := errors.Join(kErr, rErr, sErr); err != nil {
		return err
	}
	via := "container %s, testcontainers-go"
	fmt.Printf("infra: kafka %s at %s ("+via+")\n", s.kafkaC.Version, s.kafkaC.KafkaAddr(), s.kafkaC.Image)
	fmt.Printf("infra: redis %s at %s ("+via+")\n", s.redisC.Version, s.redisC.Addr(), s.redisC.Image)
	fmt.Printf("infra: stripe-mock %s at %s ("+via+")\n", s.stripeC.Version, s.stripeC.URL(), s.stripeC.Image)
	return nil
}

// startProcesses starts the three servers as plain processes.
func startProcesses(ctx context.Context, s *servers, abs, redisBin, stripeBin string, detach bool) error {
	var wg sync.WaitGroup
	var kErr, rErr, sErr error
	wg.Add(3)
	go func() {
		defer wg.Done()
		s.kafka, kErr = infra.StartKafka(ctx, infra.KafkaConfig{Libs: s.libs, Version: infra.KafkaVersion, Dir: filepath.Join(abs, "kafka"), Detach: detach})
	}()
	go func() {
		defer wg.Done()
		s.redis, rErr = infra.StartRedis(ctx, redisBin, filepath.Join(abs, "redis"), 0, detach)
	}()
	go func() {
		defer wg.Done()
		s.stripe, sErr = infra.StartStripeMock(ctx, stripeBin, filepath.Join(abs, "stripe-mock"), detach)
	}()
	wg.Wait()
	if err := errors.Join(kErr, rErr, sErr); err != nil {
		s.stop()
		return err
	}
	fmt.Printf("infra: kafka %s at %s (process)\n", s.kafka.Version(), s.kafka.Addr())
	fmt.Printf("infra: redis %s at %s (process)\n", s.redis.Version(), s.redis.Addr())
	fmt.Printf("infra: stripe-mock %s at %s (process)\n", s.stripe.Version(), s.stripe.URL())
	return nil
}

func (s *servers) env() []string {
	env := []string{
		"ORDERFLOW_TEST_KAFKA_VERSION=" + infra.KafkaVersion,
		"ORDERFLOW_TEST_KAFKA_LIBS=" + s.libs,
		"ORDERFLOW_TEST_CHROMIUM=" + s.chromium,
	}
	if s.engine != nil {
		env = append(env, s.engine.Env()...)
		env = append(env,
			"ORDERFLOW_TEST_INFRA_ENGINE=docker",
			"ORDERFLOW_TEST_KAFKA="+s.kafkaC.KafkaAddr(),
			"ORDERFLOW_TEST_REDIS="+s.redisC.Addr(),
			"ORDERFLOW_TEST_STRIPE_MOCK="+s.stripeC.URL(),
			fmt.Sprintf("ORDERFLOW_TEST_INFRA_CONTAINERS='%s %s %s'", s.kafkaC.ID(), s.redisC.ID(), s.stripeC.ID()),
		)
		// For the benchmarks' CPU figures only; the containers are stopped
		// by id, never by these pids.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		env = append(env, fmt.Sprintf("ORDERFLOW_TEST_INFRA_SERVER_PIDS='%d %d %d'", s.kafkaC.HostPID(ctx), s.redisC.HostPID(ctx), s.stripeC.HostPID(ctx)))
		cancel()
		if pid := s.engine.PID(); pid > 0 {
			env = append(env, fmt.Sprintf("ORDERFLOW_TEST_DOCKERD_PID=%d", pid))
		}
		return env
	}
	return append(env,
		"ORDERFLOW_TEST_INFRA_ENGINE=process",
		"ORDERFLOW_TEST_KAFKA="+s.kafka.Addr(),
		"ORDERFLOW_TEST_REDIS="+s.redis.Addr(),
		"ORDERFLOW_TEST_STRIPE_MOCK="+s.stripe.URL(),
		fmt.Sprintf("ORDERFLOW_TEST_INFRA_PIDS='%d %d %d'", s.kafka.PID(), s.redis.PID(), s.stripe.PID()),
	)
}

func writeEnv(file string, env []string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	body := "# written by test/infra; source it: set -a; . " + file + "; set +a\n" + strings.Join(env, "\n") + "\n"
	return os.WriteFile(file, []byte(body), 0o644)
}

// stale stops servers left by an earlier `up` or an aborted run: their
// processes, their containers, then the dockerd started for them.
func stale(envFile string) {
	b, err := os.ReadFile(envFile)
	if err != nil {
		return
	}
	vals := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vals[k] = strings.Trim(v, "'\"")
		}
	}
	for _, p := range strings.Fields(vals["ORDERFLOW_TEST_INFRA_PIDS"]) {
		if pid, err := strconv.Atoi(p); err == nil {
			infra.KillGroup(pid, 20*time.Second)
		}
	}
	if ids := strings.Fields(vals["ORDERFLOW_TEST_INFRA_CONTAINERS"]); len(ids) > 0 && vals["DOCKER_HOST"] != "" {
		cli, err := infra.DockerCLI()
		if err != nil {
			cli = "docker"
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, cli, append([]string{"rm", "-f", "-v"}, ids...)...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+vals["DOCKER_HOST"])
		_ = cmd.Run()
		cancel()
	}
	if pid, err := strconv.Atoi(vals["ORDERFLOW_TEST_DOCKERD_PID"]); err == nil {
		infra.StopDockerd(pid)
	}
}

func up(envFile, dir string) error {
	stale(envFile)
	// The servers outlive this process: their address file owns their
	// containers, so another run's clean-up leaves them until infra down.
	if abs, err := filepath.Abs(envFile); err == nil {
		infra.Owner = "file:" + abs
	}
	if err := writeEnv(envFile, nil); err != nil { // owns them while they start
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := start(ctx, dir, true)
	if err != nil {
		_ = os.Remove(envFile)
		return err
	}
	if err := writeEnv(envFile, s.env()); err != nil {
		s.stop()
		return err
	}
	fmt.Printf("infra: addresses in %s (set -a; . %s; set +a); stop with 'make infra-down'\n", envFile, envFile)
	return nil
}

func down(envFile, dir string) error {
	stale(envFile)
	_ = os.Remove(envFile)
	return os.RemoveAll(dir)
}

// runWith starts the servers, runs argv with their addresses in its
// environment, and stops them whatever happens. It returns argv's exit code.
func runWith(envFile, dir string, argv []string) (int, error) {
	stale(envFile)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-sigs
		cancel()
	}()
	s, err := start(ctx, dir, false)
	if err != nil {
		return 1, err
	}
	defer func() {
		s.stop()
		_ = os.Remove(envFile)
		_ = os.RemoveAll(dir)
	}()
	env := s.env()
	if err := writeEnv(envFile, env); err != nil {
		return 1, err
	}
	signal.Reset(os.Interrupt, syscall.SIGTERM)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	environ := os.Environ()
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		environ = append(environ, k+"="+strings.Trim(v, "'"))
	}
	sort.Strings(environ)
	cmd.Env = environ
	if err := cmd.Start(); err != nil {
		return 1, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			_ = cmd.Process.Signal(sig)
		case err := <-done:
			var ee *exec.ExitError
			switch {
			case err == nil:
				return 0, nil
			case errors.As(err, &ee):
				if ee.ExitCode() < 0 {
					return 1, nil
				}
				return ee.ExitCode(), nil
			default:
				return 1, err
			}
		}
	}
}
