package main

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{arg}, &stdout, &stderr); code != 0 {
			t.Fatalf("%s: exit %d", arg, code)
		}
		line := stdout.String()
		if !strings.HasPrefix(line, "orderflow ") || !strings.HasSuffix(line, " "+runtime.Version()+"\n") || strings.Count(line, "\n") != 1 {
			t.Errorf("%s printed %q, want one line: orderflow <version> <revision> … %s", arg, line, runtime.Version())
		}
	}
}

func TestBuildInfoGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildInfoGauge())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "orderflow_build_info" || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v, want one orderflow_build_info", mfs)
	}
	m := mfs[0].GetMetric()[0]
	if m.GetGauge().GetValue() != 1 {
		t.Errorf("value %v, want 1", m.GetGauge().GetValue())
	}
	v := readBuildVersion()
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	want := map[string]string{"go_version": runtime.Version(), "version": v.Version, "revision": v.Revision, "modified": "false"}
	if v.Modified {
		want["modified"] = "true"
	}
	for k, w := range want {
		if labels[k] != w {
			t.Errorf("label %s = %q, want %q", k, labels[k], w)
		}
	}
}
