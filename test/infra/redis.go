package infra

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// RedisBinary returns the path of redis-server, installing Debian's
// redis-server package (apt-get update first) when it is missing and we are
// root. logf reports progress (may be nil).
func RedisBinary(ctx context.Context, logf func(string, ...any)) (string, error) {
	if p, err := lookPath("redis-server"); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("redis-server is not installed: run 'sudo apt-get install redis-server'")
	}
	if err := aptInstall(ctx, logf, "redis-server"); err != nil {
		return "", err
	}
	return lookPath("redis-server")
}

// Redis is a running redis-server with no persistence.
type Redis struct {
	bin, dir string
	port     int
	detach   bool
	proc     *process
	version  string
}

// StartRedis starts redis-server on the given port, or on a free one (port
// 0), picked again when the server finds it taken.
func StartRedis(ctx context.Context, bin, dir string, port int, detach bool) (*Redis, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if port != 0 {
		r := &Redis{bin: bin, dir: dir, port: port, detach: detach}
		return r, r.Start(ctx)
	}
	var r *Redis
	err := withFreshPorts(1, func(ports []int) error {
		r = &Redis{bin: bin, dir: dir, port: ports[0], detach: detach}
		return r.Start(ctx)
	})
	return r, err
}

// Start starts a stopped server on the same port.
func (r *Redis) Start(ctx context.Context) error {
	if r.proc != nil && !r.proc.exited() {
		return nil
	}
	log := filepath.Join(r.dir, "redis.log")
	_ = os.Remove(log)
	p, err := startProcess("redis", log, r.detach, nil, r.bin,
		"--bind", "127.0.0.1", "--port", itoa(r.port), "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--protected-mode", "yes", "--daemonize", "no")
	if err != nil {
		return err
	}
	r.proc = p
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := waitFor(wctx, p, log, r.ping); err != nil {
		p.stop(syscall.SIGKILL, time.Second)
		return err
	}
	return nil
}

// ping sends INFO server and keeps the version it reports.
func (r *Redis) ping(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", r.Addr())
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("INFO server\r\n")); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	head, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(head, "$") {
		return fmt.Errorf("unexpected reply %q", strings.TrimSpace(head))
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
			r.version = strings.TrimSpace(v)
			return nil
		}
	}
}

// Stop stops the server (SIGTERM).
func (r *Redis) Stop() { r.proc.stop(syscall.SIGTERM, 10*time.Second) }

// Kill stops the server with SIGKILL.
func (r *Redis) Kill() { r.proc.stop(syscall.SIGKILL, time.Second) }

// Addr is host:port.
func (r *Redis) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

// Version is what INFO reported.
func (r *Redis) Version() string { return r.version }

// PID is the server's process (group) id.
func (r *Redis) PID() int { return r.proc.pid() }
