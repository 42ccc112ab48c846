package infra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bounds of the Docker path. Each step that exceeds its bound fails with a
// message naming the step; `infra` then falls back to plain processes (see
// package test/infra/cmd/infra).
const (
	InstallTimeout   = 6 * time.Minute  // apt-get install docker.io debootstrap docker-compose
	DockerdTimeout   = 60 * time.Second // dockerd answering on its socket
	DockerdStopGrace = 30 * time.Second // SIGTERM to SIGKILL
	EnginePingTime   = 5 * time.Second  // an existing engine answering
)

// LabelOwner marks every container the test infrastructure starts; the
// value is the owner (Owner): the pid of the process that started it, or
// "file:<path>" for the servers of `infra up`, which outlive that process
// and are owned by their address file until `infra down` removes it.
// Containers whose owner is gone are removed before new ones start (Ryuk,
// testcontainers' reaper, is not used: its image is not always available).
const LabelOwner = "org.orderflow.test.owner"

// Owner is the LabelOwner value of the containers this process starts.
var Owner = strconv.Itoa(os.Getpid())

// ownerGone reports whether the owner named by a LabelOwner value is gone:
// its process has exited, or its file was removed.
func ownerGone(v string) bool {
	if f, ok := strings.CutPrefix(v, "file:"); ok {
		_, err := os.Stat(f)
		return errors.Is(err, fs.ErrNotExist)
	}
	pid, _ := strconv.Atoi(v)
	return !alive(pid)
}

// engineSlots is how many dockerd instances (each with its own image cache)
// may run at once on one machine, one per concurrent test run.
const engineSlots = 3

// Engine is a Docker engine the tests use: one that was already running
// (Started false) or a dockerd started here and stopped by Stop.
type Engine struct {
	Host    string // DOCKER_HOST value, unix://...
	CLI     string // docker command-line client
	Version string // server version
	Started bool   // dockerd was started by us
	DataDir string // dockerd's --data-root when Started
	Driver  string // its storage driver

	proc *process
}

// Describe is the engine's `infra:` line.
func (e *Engine) Describe() string {
	if e.Started {
		return fmt.Sprintf("infra: engine docker %s, dockerd started at %s (%s storage, images cached in %s)", e.Version, e.Host, e.Driver, e.DataDir)
	}
	return fmt.Sprintf("infra: engine docker %s, already running at %s", e.Version, e.Host)
}

// Env is what a client of the engine needs: DOCKER_HOST, and Ryuk off.
func (e *Engine) Env() []string {
	return []string{"DOCKER_HOST=" + e.Host, "TESTCONTAINERS_RYUK_DISABLED=true"}
}

// Docker runs the docker client against the engine.
func (e *Engine) Docker(ctx context.Context, args ...string) ([]byte, error) {
	return run(ctx, "", []string{"DOCKER_HOST=" + e.Host, "DOCKER_BUILDKIT=1"}, append([]string{e.CLI}, args...)...)
}

// PID is dockerd's pid (0 when not started here).
func (e *Engine) PID() int {
	if e.proc == nil {
		return 0
	}
	return e.proc.pid()
}

// Stop stops a dockerd started here (its containers stop with it) and
// releases its slot. An engine that was already running is left alone.
func (e *Engine) Stop() {
	if e == nil || e.proc == nil {
		return
	}
	e.proc.stop(syscall.SIGTERM, DockerdStopGrace)
}

// DockerCLI is the docker client the infrastructure uses.
func DockerCLI() (string, error) { return dockerCLI() }

// dockerCLI finds a docker client, preferring Debian's (its BuildKit is
// built in; other clients may need the buildx plugin).
func dockerCLI() (string, error) {
	for _, p := range []string{"/usr/bin/docker"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return lookPath("docker")
}

// pingEngine returns the server version the engine at host reports.
func pingEngine(ctx context.Context, cli, host string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, EnginePingTime)
	defer cancel()
	out, err := run(ctx, "", []string{"DOCKER_HOST=" + host}, cli, "version", "--format", "{{.Server.Version}}")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// EngineOptions say how to find or start an engine.
type EngineOptions struct {
	// RunDir holds dockerd's log (test/.infra/docker).
	RunDir string
	// Detach: the dockerd outlives this process (infra up).
	Detach bool
	Logf   func(string, ...any)
}

// StartEngine returns a running engine: the one DOCKER_HOST or
// /var/run/docker.sock names if it answers, else (root on Linux with
// apt-get) a dockerd it installs and starts with host networking only (no bridge, no iptables), its data root (the image
// cache) under CacheDir()/docker/slot-N (overlay2 storage where the kernel
// allows it, else vfs) and its sockets under
// /run/orderflow-docker/slot-N. The error says why neither worked.
func StartEngine(ctx context.Context, o EngineOptions) (*Engine, error) {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	cli, cliErr := dockerCLI()
	if cliErr == nil {
		host := os.Getenv("DOCKER_HOST")
		if host == "" {
			if _, err := os.Stat("/var/run/docker.sock"); err == nil {
				host = "unix:///var/run/docker.sock"
			}
		}
		if host != "" {
			v, err := pingEngine(ctx, cli, host)
			if err == nil {
				return &Engine{Host: host, CLI: cli, Version: v}, nil
			}
			if os.Getenv("DOCKER_HOST") != "" {
				return nil, fmt.Errorf("DOCKER_HOST=%s does not answer: %v", host, firstLine(err))
			}
		}
	}
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("no Docker engine answers, and starting one is only done on Linux")
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("no Docker engine answers, and starting one needs root")
	}
	if _, err := lookPath("dockerd"); err != nil {
		ictx, cancel := context.WithTimeout(ctx, InstallTimeout)
		defer cancel()
		if err := aptInstall(ictx, logf, "docker.io", "debootstrap", "docker-compose"); err != nil {
			return nil, fmt.Errorf("(bounded at %s) %w", InstallTimeout, err)
		}
	} else if _, err := lookPath("debootstrap"); err != nil {
		ictx, cancel := context.WithTimeout(ctx, InstallTimeout)
		defer cancel()
		if err := aptInstall(ictx, logf, "debootstrap", "docker-compose"); err != nil {
			return nil, fmt.Errorf("(bounded at %s) %w", InstallTimeout, err)
		}
	}
	if cli, cliErr = dockerCLI(); cliErr != nil {
		return nil, cliErr
	}
	return startDockerd(ctx, cli, o, logf)
}

// slotOwner is written next to a slot when its dockerd starts: "run <pid>"
// (the dockerd belongs to that process and is left over once it is gone)
// or "up <pid>" (infra up: `infra down` stops it).
type slotOwner struct {
	kind string
	pid  int
}

func readOwner(file string) slotOwner {
	b, err := os.ReadFile(file)
	if err != nil {
		return slotOwner{}
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return slotOwner{}
	}
	pid, _ := strconv.Atoi(f[1])
	return slotOwner{kind: f[0], pid: pid}
}

// alive reports whether pid runs: a zombie (killed, not yet reaped, as
// happens when nobody reaps orphans) does not.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

func readPID(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// runRoot is where a slot's sockets live: a short path, as unix socket
// paths are limited to 108 bytes.
func runRoot(slot int) string {
	return fmt.Sprintf("/run/orderflow-docker/slot-%d", slot)
}

// dockerdIn returns the pid of a live dockerd serving dataDir (from the
// slot's pid file; the command line is checked against pid reuse), or 0.
func dockerdIn(slot int, dataDir string) int {
	pid := readPID(filepath.Join(runRoot(slot), "docker.pid"))
	if !alive(pid) {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(b), dataDir) {
		return 0
	}
	return pid
}

// claimSlot picks an engine slot with no dockerd running, under a
// machine-wide lock held until the new dockerd answers (see startDockerd).
// A dockerd left over from a killed run (its owner is gone) is stopped and
// its slot reused.
func claimSlot(ctx context.Context, logf func(string, ...any)) (slot int, claim *os.File, err error) {
	cache, err := CacheDir()
	if err != nil {
		return 0, nil, err
	}
	base := filepath.Join(cache, "docker")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return 0, nil, err
	}
	claim, err = os.OpenFile(filepath.Join(base, "claim.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return 0, nil, err
	}
	for syscall.Flock(int(claim.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		select {
		case <-ctx.Done():
			claim.Close()
			return 0, nil, fmt.Errorf("waiting for another run to start its dockerd: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	var busy []string
	for slot := 0; slot < engineSlots; slot++ {
		dataDir := filepath.Join(base, fmt.Sprintf("slot-%d", slot))
		pid := dockerdIn(slot, dataDir)
		if pid == 0 {
			return slot, claim, nil
		}
		owner := readOwner(filepath.Join(base, fmt.Sprintf("slot-%d.owner", slot)))
		if owner.kind == "run" && !alive(owner.pid) {
			logf("infra: stopping dockerd %d left over from an earlier run (slot %d)", pid, slot)
			KillGroup(pid, DockerdStopGrace)
			if dockerdIn(slot, dataDir) == 0 {
				return slot, claim, nil
			}
		}
		busy = append(busy, fmt.Sprintf("slot %d (%s %d)", slot, owner.kind, owner.pid))
	}
	claim.Close()
	return 0, nil, fmt.Errorf("every dockerd slot is in use by another test run: %s", strings.Join(busy, ", "))
}

// startDockerd starts dockerd in a claimed slot and waits until it answers.
func startDockerd(ctx context.Context, cli string, o EngineOptions, logf func(string, ...any)) (*Engine, error) {
	slot, claim, err := claimSlot(ctx, logf)
	if err != nil {
		return nil, err
	}
	defer claim.Close()
	cache, _ := CacheDir()
	dataDir := filepath.Join(cache, "docker", fmt.Sprintf("slot-%d", slot))
	rr := runRoot(slot)
	// A dockerd killed with SIGKILL leaves its pid file and socket behind
	// (no dockerd runs in this slot now: claimSlot checked); the rest of
	// the exec root dockerd cleans up itself.
	_ = os.Remove(filepath.Join(rr, "docker.pid"))
	_ = os.Remove(filepath.Join(rr, "docker.sock"))
	for _, d := range []string{dataDir, rr, o.RunDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	kind := "run"
	if o.Detach {
		kind = "up"
	}
	ownerFile := filepath.Join(cache, "docker", fmt.Sprintf("slot-%d.owner", slot))
	if err := os.WriteFile(ownerFile, []byte(fmt.Sprintf("%s %d\n", kind, os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	// Builder cache bounded: vfs stores every layer in full.
	config := filepath.Join(rr, "daemon.json")
	if err := os.WriteFile(config, []byte(`{"builder": {"gc": {"enabled": true, "defaultKeepStorage": "8GB"}}}`+"\n"), 0o644); err != nil {
		return nil, err
	}
	sock := filepath.Join(rr, "docker.sock")
	host := "unix://" + sock
	log := filepath.Join(o.RunDir, "dockerd.log")
	driver := storageDriver(dataDir)
	argv := []string{"dockerd", "--storage-driver", driver, "--iptables=false", "--ip6tables=false", "--bridge=none",
		"--data-root", dataDir, "--exec-root", filepath.Join(rr, "exec"), "--pidfile", filepath.Join(rr, "docker.pid"),
		"--config-file", config, "-H", host}
	p, err := startProcess("dockerd", log, true, nil, argv...)
	if err != nil {
		return nil, err
	}
	e := &Engine{Host: host, CLI: cli, Started: true, DataDir: dataDir, Driver: driver, proc: p}
	wctx, cancel := context.WithTimeout(ctx, DockerdTimeout)
	defer cancel()
	err = waitFor(wctx, p, log, func(ctx context.Context) error {
		v, err := pingEngine(ctx, cli, host)
		e.Version = v
		return err
	})
	if err != nil {
		p.stop(syscall.SIGKILL, time.Second)
		return nil, fmt.Errorf("dockerd did not answer within %s: %w", DockerdTimeout, err)
	}
	return e, nil
}

// storageDriver is overlay2 where an overlay file system mounts under dir
// (it shares image layers between containers), else vfs (full copies:
// slower and larger, but works everywhere).
func storageDriver(dir string) string {
	t, err := os.MkdirTemp(dir, "overlay-probe-")
	if err != nil {
		return "vfs"
	}
	defer os.RemoveAll(t)
	for _, d := range []string{"l", "u", "w", "m"} {
		if os.Mkdir(filepath.Join(t, d), 0o755) != nil {
			return "vfs"
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", filepath.Join(t, "l"), filepath.Join(t, "u"), filepath.Join(t, "w"))
	if syscall.Mount("overlay", filepath.Join(t, "m"), "overlay", 0, opts) != nil {
		return "vfs"
	}
	_ = syscall.Unmount(filepath.Join(t, "m"), 0)
	return "overlay2"
}

// RemoveOrphans removes containers and volumes labelled by the test
// infrastructure whose owning process is gone (left by a killed run).
func (e *Engine) RemoveOrphans(ctx context.Context) error {
	out, err := e.Docker(ctx, "ps", "-a", "--filter", "label="+LabelOwner, "--format", `{{.ID}} {{.Label "`+LabelOwner+`"}}`)
	if err != nil {
		return err
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if ownerGone(f[1]) {
			ids = append(ids, f[0])
		}
	}
	if len(ids) > 0 {
		if _, err := e.Docker(ctx, append([]string{"rm", "-f", "-v"}, ids...)...); err != nil {
			return err
		}
	}
	if err := e.removeOrphanVolumes(ctx); err != nil {
		return err
	}
	if e.Started {
		// Bridges testcontainers-go may have made on an engine of ours.
		_, _ = e.Docker(ctx, "network", "prune", "-f")
	}
	return nil
}

// removeOrphanVolumes removes the volumes labelled by the test
// infrastructure (the compose test's named volumes) whose owner is gone.
func (e *Engine) removeOrphanVolumes(ctx context.Context) error {
	out, err := e.Docker(ctx, "volume", "ls", "--filter", "label="+LabelOwner, "--format", `{{.Name}} {{.Label "`+LabelOwner+`"}}`)
	if err != nil {
		return err
	}
	var vols []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if ownerGone(f[1]) {
			vols = append(vols, f[0])
		}
	}
	if len(vols) > 0 {
		if _, err := e.Docker(ctx, append([]string{"volume", "rm", "-f"}, vols...)...); err != nil {
			return err
		}
	}
	return nil
}

// StopDockerd stops a dockerd started by `infra up` (pid from the env file).
func StopDockerd(pid int) { KillGroup(pid, DockerdStopGrace) }

func firstLine(err error) string {
	s := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// hashKey is a short content key.
func hashKey(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ComposeTimeout bounds installing docker-compose.
const ComposeTimeout = InstallTimeout

// ComposeCLI returns Debian's docker-compose (the Compose tool Debian
// packages, 1.29), installing it with apt-get when it is missing and this
// runs as root on Linux.
func ComposeCLI(ctx context.Context, logf func(string, ...any)) (string, error) {
	if p, err := lookPath("docker-compose"); err == nil {
		return p, nil
	}
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		return "", fmt.Errorf("docker-compose is not installed (as root on Linux the tests install Debian's docker-compose)")
	}
	ictx, cancel := context.WithTimeout(ctx, ComposeTimeout)
	defer cancel()
	if err := aptInstall(ictx, logf, "docker-compose"); err != nil {
		return "", fmt.Errorf("(bounded at %s) %w", ComposeTimeout, err)
	}
	return lookPath("docker-compose")
}
