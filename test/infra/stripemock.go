package infra

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// StripeMockBinary builds stripe-mock at the pinned version with the Go
// toolchain into the cache, once.
func StripeMockBinary(ctx context.Context, logf func(string, ...any)) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	bindir := filepath.Join(cache, "stripe-mock-"+StripeMockVersion)
	bin := filepath.Join(bindir, "stripe-mock")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if logf != nil {
		logf("infra: building stripe-mock %s with go install (once)", StripeMockVersion)
	}
	if _, err := run(ctx, "", []string{"GOBIN=" + bindir, "GOFLAGS=-mod=mod", "GOWORK=off"},
		"go", "install", StripeMockModule+"@"+StripeMockVersion); err != nil {
		return "", fmt.Errorf("build stripe-mock: %w", err)
	}
	return bin, nil
}

// StripeMock is a running stripe-mock (HTTP only).
type StripeMock struct {
	proc *process
	port int
}

// StartStripeMock starts stripe-mock on free ports, picked again when one
// is found taken.
func StartStripeMock(ctx context.Context, bin, dir string, detach bool) (*StripeMock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var s *StripeMock
	err := withFreshPorts(2, func(ports []int) error {
		var err error
		s, err = startStripeMock(ctx, bin, dir, ports[0], ports[1], detach)
		return err
	})
	return s, err
}

func startStripeMock(ctx context.Context, bin, dir string, port, httpsPort int, detach bool) (*StripeMock, error) {
	log := filepath.Join(dir, "stripe-mock.log")
	_ = os.Remove(log)
	p, err := startProcess("stripe-mock", log, detach, nil, bin,
		"-http-addr", fmt.Sprintf("127.0.0.1:%d", port), "-https-addr", fmt.Sprintf("127.0.0.1:%d", httpsPort))
	if err != nil {
		return nil, err
	}
	s := &StripeMock{proc: p, port: port}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := waitFor(wctx, p, log, s.ping); err != nil {
		p.stop(syscall.SIGKILL, time.Second)
		return nil, err
	}
	return s, nil
}

func (s *StripeMock) ping(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/v1/customers", nil)
	req.Header.Set("Authorization", "Bearer sk_test_123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/customers: %s", resp.Status)
	}
	return nil
}

// URL is the HTTP base URL.
func (s *StripeMock) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.port) }

// Version is the pinned version.
func (s *StripeMock) Version() string { return StripeMockVersion }

// Stop stops it.
func (s *StripeMock) Stop() { s.proc.stop(syscall.SIGTERM, 5*time.Second) }

// PID is its process (group) id.
func (s *StripeMock) PID() int { return s.proc.pid() }
