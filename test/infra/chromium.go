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
		if err := aptInstall(ctx, logf, "chromium"); err != nil {
			return "", "", err
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
