// Command infra starts and stops the real infrastructure of orderflow's
// tests: Apache Kafka 4.x (from Maven Central's jars), Redis (Debian's
// redis-server) and stripe-mock (Go), each on free loopback ports, and
// finds (or installs) the Chromium the console's browser test drives.
//
//	infra up              start them in the background, write the env file
//	infra down            stop what `up` started
//	infra run -- CMD...   start them, run CMD with their addresses in the
//	                      environment, stop them (also on failure or Ctrl-C)
//
// The env file (default test/.infra.env) is sourceable:
// ORDERFLOW_TEST_KAFKA, ORDERFLOW_TEST_KAFKA_LIBS, ORDERFLOW_TEST_REDIS,
// ORDERFLOW_TEST_STRIPE_MOCK, ORDERFLOW_TEST_CHROMIUM, and the process ids
// to stop.
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
	kafka  *infra.Kafka
	redis  *infra.Redis
	stripe *infra.StripeMock
	libs   string
	// chromium is the browser the console's browser test drives.
	chromium string
}

func (s *servers) stop() {
	if s.stripe != nil {
		s.stripe.Stop()
	}
	if s.redis != nil {
		s.redis.Stop()
	}
	if s.kafka != nil {
		s.kafka.Stop()
	}
}

// start prepares (downloads in parallel) and starts all three.
func start(ctx context.Context, dir string, detach bool) (*servers, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var (
		wg                        sync.WaitGroup
		libs, redisBin, stripeBin string
		libsErr, redisErr, smErr  error
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
	wg.Wait()
	if err := errors.Join(libsErr, redisErr, smErr, chromiumErr); err != nil {
		return nil, err
	}
	s := &servers{libs: libs, chromium: chromium}
	var kErr, rErr, sErr error
	wg.Add(3)
	go func() {
		defer wg.Done()
		s.kafka, kErr = infra.StartKafka(ctx, infra.KafkaConfig{Libs: libs, Version: infra.KafkaVersion, Dir: filepath.Join(abs, "kafka"), Detach: detach})
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
		return nil, err
	}
	fmt.Printf("infra: kafka %s at %s\n", s.kafka.Version(), s.kafka.Addr())
	fmt.Printf("infra: redis %s at %s\n", s.redis.Version(), s.redis.Addr())
	fmt.Printf("infra: stripe-mock %s at %s\n", s.stripe.Version(), s.stripe.URL())
	fmt.Printf("infra: %s at %s\n", chromiumVersion, chromium)
	return s, nil
}

func (s *servers) env() []string {
	return []string{
		"ORDERFLOW_TEST_KAFKA=" + s.kafka.Addr(),
		"ORDERFLOW_TEST_KAFKA_VERSION=" + s.kafka.Version(),
		"ORDERFLOW_TEST_KAFKA_LIBS=" + s.libs,
		"ORDERFLOW_TEST_REDIS=" + s.redis.Addr(),
		"ORDERFLOW_TEST_STRIPE_MOCK=" + s.stripe.URL(),
		"ORDERFLOW_TEST_CHROMIUM=" + s.chromium,
		fmt.Sprintf("ORDERFLOW_TEST_INFRA_PIDS='%d %d %d'", s.kafka.PID(), s.redis.PID(), s.stripe.PID()),
	}
}

func writeEnv(file string, env []string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	body := "# written by test/infra; source it: set -a; . " + file + "; set +a\n" + strings.Join(env, "\n") + "\n"
	return os.WriteFile(file, []byte(body), 0o644)
}

// stale stops servers left by an earlier `up` or an aborted run.
func stale(envFile string) {
	f, err := os.Open(envFile)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "ORDERFLOW_TEST_INFRA_PIDS=")
		if !ok {
			continue
		}
		for _, p := range strings.Fields(strings.Trim(v, "'\"")) {
			if pid, err := strconv.Atoi(p); err == nil {
				infra.KillGroup(pid, 20*time.Second)
			}
		}
	}
}

func up(envFile, dir string) error {
	stale(envFile)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := start(ctx, dir, true)
	if err != nil {
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
