// Package infra starts the real infrastructure orderflow's tests run on: an
// Apache Kafka 4.x broker (single-node KRaft, assembled from Maven Central's
// jars and cached), a Redis server (Debian's redis-server, installed when
// missing) and stripe-mock (built with the Go toolchain at a pinned version).
// Each is started on free loopback ports and waited for until it answers.
//
// The command in test/infra/cmd/infra wraps it for `make test`,
// `make infra-up` and `make infra-down`; package test/testenv uses it for
// tests that stop and start a server of their own.
package infra

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Pinned versions.
const (
	KafkaVersion      = "4.4.0"
	StripeMockModule  = "github.com/stripe/stripe-mock"
	StripeMockVersion = "v0.203.0"
)

// CacheDir is where downloads are kept between runs:
// $ORDERFLOW_CACHE, else the user cache folder + "/orderflow".
func CacheDir() (string, error) {
	if d := os.Getenv("ORDERFLOW_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "orderflow"), nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// process is a server process started in its own process group, so that
// stopping it also stops anything it started.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startProcess starts argv with output appended to logFile. detach puts it
// in a new session so it outlives the caller (for `infra up`).
func startProcess(name, logFile string, detach bool, env []string, argv ...string) (*process, error) {
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !detach, Setsid: detach}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the process group and waits up to grace, then kills.
func (p *process) stop(sig syscall.Signal, grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = syscall.Kill(-p.pid(), sig)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	<-p.done
}

// KillGroup stops a process group started by an earlier `infra up`:
// SIGTERM, then SIGKILL after grace. A group that is gone is not an error.
func KillGroup(pid int, grace time.Duration) {
	if pid <= 0 {
		return
	}
	if syscall.Kill(-pid, syscall.SIGTERM) != nil {
		return
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if syscall.Kill(-pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// waitFor calls check until it succeeds, the process exits, or ctx ends.
func waitFor(ctx context.Context, p *process, logFile string, check func(context.Context) error) error {
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited before it was ready (%v); last lines of %s:\n%s", p.name, p.err, logFile, tail(logFile, 30))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %v (last check: %v); last lines of %s:\n%s", p.name, ctx.Err(), last, logFile, tail(logFile, 30))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// tail returns the last n lines of a file.
func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// run runs a command to completion, returning its combined output in the
// error when it fails.
func run(ctx context.Context, dir string, env []string, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, lastBytes(out.Bytes(), 4000))
	}
	return out.Bytes(), nil
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// lookPath is exec.LookPath that also looks in /usr/sbin and /usr/local/sbin
// (where Debian puts redis-server when PATH lacks them).
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

func itoa(i int) string { return strconv.Itoa(i) }

var errNotReady = errors.New("not ready")
