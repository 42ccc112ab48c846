package infra

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A volume whose owner is gone is removed (the compose test's named
// volumes after a killed run); one whose owner runs is kept.
func TestRemoveOrphansRemovesVolumesOfGoneOwners(t *testing.T) {
	if os.Getenv("ORDERFLOW_TEST_INFRA_ENGINE") != "docker" {
		t.Skip("the test infrastructure runs without Docker (ORDERFLOW_TEST_INFRA_ENGINE is not docker)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := EngineFromEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A pid that has exited.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := gone.Process.Pid
	if alive(deadPID) {
		t.Skipf("pid %d was reused at once", deadPID)
	}
	stamp := time.Now().UnixNano()
	orphan := fmt.Sprintf("orderflow-test-orphan-%d", stamp)
	kept := fmt.Sprintf("orderflow-test-kept-%d", stamp)
	keptFile := fmt.Sprintf("orderflow-test-kept-file-%d", stamp)
	ownerFile := filepath.Join(t.TempDir(), ".infra.env")
	if err := os.WriteFile(ownerFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, owner := range map[string]string{orphan: strconv.Itoa(deadPID), kept: strconv.Itoa(os.Getpid()), keptFile: "file:" + ownerFile} {
		if out, err := e.Docker(ctx, "volume", "create", "--label", LabelOwner+"="+owner, name); err != nil {
			t.Fatalf("volume create: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() { _, _ = e.Docker(context.Background(), "volume", "rm", "-f", orphan, kept, keptFile) })

	// Only the volumes: RemoveOrphans would also remove the containers of
	// test runs that share this engine without sharing this test's owners.
	if err := e.removeOrphanVolumes(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := e.Docker(ctx, "volume", "ls", "-q", "--filter", "label="+LabelOwner)
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Fields(string(out))
	if containsString(names, orphan) {
		t.Errorf("volume %s of the gone pid %d is still there", orphan, deadPID)
	}
	if !containsString(names, kept) {
		t.Errorf("volume %s of this test's pid was removed", kept)
	}
	if !containsString(names, keptFile) {
		t.Errorf("volume %s owned by an existing address file was removed", keptFile)
	}
}

// The servers of `infra up` are owned by their address file: kept while it
// exists, gone once infra down removes it.
func TestOwnerGone(t *testing.T) {
	f := filepath.Join(t.TempDir(), ".infra.env")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		owner string
		want  bool
	}{
		{strconv.Itoa(os.Getpid()), false},
		{"file:" + f, false},
		{"file:" + f + ".removed", true},
		{"", true},
		{"not-a-pid", true},
	} {
		if got := ownerGone(tc.owner); got != tc.want {
			t.Errorf("ownerGone(%q) = %v, want %v", tc.owner, got, tc.want)
		}
	}
	if pid := gone.Process.Pid; !alive(pid) {
		if !ownerGone(strconv.Itoa(pid)) {
			t.Errorf("ownerGone(exited pid %d) = false", pid)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
