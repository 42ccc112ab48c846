package infra

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// apt serializes this process's apt-get runs (they take the same locks)
// and runs apt-get update once.
var apt struct {
	sync.Mutex
	updated bool
}

// aptInstall installs Debian packages with apt-get (root only), waiting
// for another apt-get's lock for up to four minutes.
func aptInstall(ctx context.Context, logf func(string, ...any), pkgs ...string) error {
	what := strings.Join(pkgs, " ")
	if _, err := lookPath("apt-get"); err != nil {
		return fmt.Errorf("install %s: apt-get is not available", what)
	}
	apt.Lock()
	defer apt.Unlock()
	if logf != nil {
		logf("infra: installing Debian's %s (apt-get)", what)
	}
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	lock := "-oDPkg::Lock::Timeout=240"
	if !apt.updated {
		if _, err := run(ctx, "", env, "apt-get", lock, "update", "-qq"); err != nil {
			return fmt.Errorf("install %s: %w", what, err)
		}
		apt.updated = true
	}
	args := append([]string{"apt-get", lock, "install", "-y", "-qq", "--no-install-recommends"}, pkgs...)
	if _, err := run(ctx, "", env, args...); err != nil {
		return fmt.Errorf("install %s: %w", what, err)
	}
	return nil
}
