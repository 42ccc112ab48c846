package infra

import (
	"context"
	"fmt"
	"os"
	"os/exec"
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
	for name, pid := range map[string]int{orphan: deadPID, kept: os.Getpid()} {
		if out, err := e.Docker(ctx, "volume", "create", "--label", LabelOwner+"="+strconv.Itoa(pid), name); err != nil {
			t.Fatalf("volume create: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() { _, _ = e.Docker(context.Background(), "volume", "rm", "-f", orphan, kept) })

	// Not RemoveOrphans: it would also remove the containers of
	// `infra up`, whose owner has exited.
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
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
