package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// buildVersion is what the binary was built from: the module version
// ("(devel)" for a build in a checkout), the VCS revision and time, and
// whether the work tree had changes, from Go's build information.
type buildVersion struct {
	Version, Revision, Time, GoVersion string
	Modified                           bool
}

func readBuildVersion() buildVersion {
	v := buildVersion{Version: "unknown", Revision: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.GoVersion = bi.GoVersion
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String is the --version line: orderflow (devel) 3fd4c15… (modified) 2026-12-01T22:10:00Z go1.26.
func (v buildVersion) String() string {
	s := "orderflow " + v.Version + " " + v.Revision
	if v.Modified {
		s += " (modified)"
	}
	if v.Time != "" {
		s += " " + v.Time
	}
	if v.GoVersion != "" {
		s += " " + v.GoVersion
	}
	return s
}

func printVersion(w io.Writer) { fmt.Fprintln(w, readBuildVersion().String()) }

// buildInfoGauge is orderflow_build_info{version,revision,modified,go_version} 1,
// so a dashboard shows which build each process runs.
func buildInfoGauge() prometheus.Collector {
	v := readBuildVersion()
	modified := "false"
	if v.Modified {
		modified = "true"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orderflow_build_info",
		Help: "The build this process runs: module version, VCS revision, whether the tree was modified, Go version. Always 1.",
		ConstLabels: prometheus.Labels{
			"version": v.Version, "revision": v.Revision, "modified": modified, "go_version": v.GoVersion,
		},
	})
	g.Set(1)
	return g
}
