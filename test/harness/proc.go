// Package harness runs orderflow's real processes for the benchmarks and the
// reliability suite: it builds the binary, starts, stops and kills its
// commands, reads their peak memory, follows `orders.state` to know when
// orders are finished, and drives the provider simulator's fault control.
package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var build struct {
	sync.Mutex
	path string
}

// Binary builds ./cmd/orderflow once per process into dir (or a temp folder)
// and returns its path. root is the module root.
func Binary(ctx context.Context, root, dir string) (string, error) {
	build.Lock()
	defer build.Unlock()
	if build.path != "" {
		if _, err := os.Stat(build.path); err == nil {
			return build.path, nil
		}
		build.path = "" // its folder was removed (a test's temporary folder)
	}
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "orderflow-bin-"); err != nil {
			return "", err
		}
	}
	out := filepath.Join(dir, "orderflow")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/orderflow")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	build.path = out
	return out, nil
}

// ModuleRoot walks up from the working directory to the folder holding go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Proc is one running command (orderflow or any other program).
type Proc struct {
	Name string
	argv []string
	env  []string
	log  string

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	peak  int64 // highest VmHWM seen across restarts, KiB
	start int64 // the log's size when the process last started
}

// NewProc prepares a process; output goes to logFile.
func NewProc(name, logFile string, env []string, argv ...string) *Proc {
	return &Proc{Name: name, argv: argv, env: env, log: logFile}
}

// Start starts the process (again, after a stop or kill).
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !exited(p.done) {
		return fmt.Errorf("%s already running", p.Name)
	}
	lf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if fi, err := lf.Stat(); err == nil {
		p.start = fi.Size()
	}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), p.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		lf.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	go p.sampleRSS(cmd.Process.Pid, done)
	return nil
}

func exited(done chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Running reports whether the process is alive.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !exited(p.done)
}

// Stop sends SIGTERM and waits up to grace before SIGKILL. It returns
// whether the process exited by itself in time.
func (p *Proc) Stop(grace time.Duration) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || exited(done) {
		return true
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
		return true
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return false
	}
}

// Kill sends SIGKILL to the process group and waits for it.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || exited(done) {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Signal sends sig to the process group (SIGSTOP and SIGCONT freeze and
// thaw it); it reports whether the process was running.
func (p *Proc) Signal(sig syscall.Signal) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || exited(done) {
		return false
	}
	return syscall.Kill(-cmd.Process.Pid, sig) == nil
}

// ExitCode is the last run's exit code (-1 while running or when killed).
func (p *Proc) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.ProcessState == nil {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// PID is the running process's id, or 0.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || exited(p.done) {
		return 0
	}
	return p.cmd.Process.Pid
}

// PeakRSS is the highest resident set size seen, in bytes.
func (p *Proc) PeakRSS() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak * 1024
}

func (p *Proc) sampleRSS(pid int, done chan struct{}) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		if kb := vmHWM(pid); kb > 0 {
			p.mu.Lock()
			if kb > p.peak {
				p.peak = kb
			}
			p.mu.Unlock()
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// vmHWM reads the peak resident set size of a process in KiB.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// SetFlag sets the value that follows --name in the process's arguments,
// for its next start; it reports whether the flag was there.
func (p *Proc) SetFlag(name, value string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 1; i+1 < len(p.argv); i++ {
		if p.argv[i] == "--"+name {
			p.argv[i+1] = value
			return true
		}
	}
	return false
}

// LogSinceStart returns what the process logged since it last started.
func (p *Proc) LogSinceStart() string {
	p.mu.Lock()
	from := p.start
	p.mu.Unlock()
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	if from > int64(len(b)) {
		return ""
	}
	return string(b[from:])
}

// LogTail returns the last n lines of the process's log.
func (p *Proc) LogTail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitHTTP polls url until it answers 200 or ctx ends.
func WaitHTTP(ctx context.Context, url string) error {
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %v (last: %v)", url, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
