package harness

import (
	"path/filepath"
	"testing"
	"time"
)

// waitExit waits until p's process has exited.
func waitExit(t *testing.T, p *Proc) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.Running() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not exit", p.Name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A restart sees only its own log lines, and a flag changed with SetFlag
// is what the next start runs with.
func TestSetFlagAndLogSinceStart(t *testing.T) {
	p := NewProc("echo", filepath.Join(t.TempDir(), "echo.log"), nil, "sh", "-c", `echo "$1 $2"`, "sh", "--addr", "one")
	if p.SetFlag("port", "x") {
		t.Fatal("SetFlag found a flag the arguments do not have")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitExit(t, p)
	if got := p.LogSinceStart(); got != "--addr one\n" {
		t.Fatalf("first start logged %q", got)
	}
	if !p.SetFlag("addr", "two") {
		t.Fatal("SetFlag did not find --addr")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitExit(t, p)
	if got := p.LogSinceStart(); got != "--addr two\n" {
		t.Fatalf("second start logged %q, want its own line only", got)
	}
	if got := p.LogTail(5); got != "--addr one\n--addr two" {
		t.Fatalf("whole log %q", got)
	}
}
