package infra

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// ChromiumBinary returns the path of a headless-capable Chromium and its
// version, installing Debian's chromium package (apt-get update first)
// when it is missing and we are root. The console's browser test drives
// it. logf reports progress (may be nil).
func ChromiumBinary(ctx context.Context, logf func(string, ...any)) (path, version string, err error) {
	find := func() (string, error) {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := lookPath(name); err == nil {
				return p, nil
			}
		}
		return "", fmt.Errorf("chromium is not installed")
	}
	path, err = find()
	if err != nil {
		if os.Geteuid() != 0 {
			return "", "", fmt.Errorf("chromium is not installed: run 'sudo apt-get install chromium'")
		}
		if _, err := lookPath("apt-get"); err != nil {
			return "", "", fmt.Errorf("chromium is not installed and apt-get is not available: install Chromium")
		}
		if logf != nil {
			logf("infra: installing Debian's chromium (apt-get)")
		}
		env := []string{"DEBIAN_FRONTEND=noninteractive"}
		if _, err := run(ctx, "", env, "apt-get", "update", "-qq"); err != nil {
			return "", "", fmt.Errorf("install chromium: %w", err)
		}
		if _, err := run(ctx, "", env, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"); err != nil {
			return "", "", fmt.Errorf("install chromium: %w", err)
		}
		if path, err = find(); err != nil {
			return "", "", err
		}
	}
	out, err := run(ctx, "", nil, path, "--version")
	if err != nil {
		return "", "", fmt.Errorf("chromium --version: %w", err)
	}
	// Debian's wrapper script may print shell warnings beside the version.
	version = strings.TrimSpace(string(out))
	for _, line := range strings.Split(version, "\n") {
		if strings.Contains(line, "Chromium") {
			version = strings.TrimSpace(line)
			if i := strings.Index(version, "Chromium"); i > 0 {
				version = version[i:]
			}
			break
		}
	}
	return path, version, nil
}
