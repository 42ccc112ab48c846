package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// Drains run in rounds report each system's medians and this build ÷ the
// baseline in each round.
func TestDrainMedians(t *testing.T) {
	cpu := func(ms float64) map[string]float64 { return map[string]float64{"processor": ms} }
	rows := []DrainRow{
		{System: "orderflow processor (baseline)", Round: 1, OrdersPerSec: 500, CPUMsPerOrder: cpu(2.0)},
		{System: "orderflow processor", Round: 1, OrdersPerSec: 450, CPUMsPerOrder: cpu(2.2)},
		{System: "orderflow processor (baseline)", Round: 2, OrdersPerSec: 400, CPUMsPerOrder: cpu(2.4)},
		{System: "orderflow processor", Round: 2, OrdersPerSec: 440, CPUMsPerOrder: cpu(2.1)},
		{System: "orderflow processor (baseline)", Round: 3, OrdersPerSec: 600, CPUMsPerOrder: cpu(1.8)},
		{System: "orderflow processor", Round: 3, OrdersPerSec: 600, CPUMsPerOrder: cpu(1.9)},
	}
	var s strings.Builder
	drainMedians(&s, rows)
	for _, want := range []string{
		"| orderflow processor (baseline) | 0 ms | 3 | 500 | 2.00 |  |",
		"| orderflow processor | 0 ms | 3 | 450 | 2.10 | 0.90, 1.10, 1.00 (median 1.00) |",
	} {
		if !strings.Contains(s.String(), want) {
			t.Errorf("medians lack %q:\n%s", want, s.String())
		}
	}
	if got := medianRate(rows, "orderflow processor", 0); got != 450 {
		t.Errorf("median rate = %v, want 450", got)
	}
	// One round: no medians table.
	s.Reset()
	drainMedians(&s, []DrainRow{{System: "orderflow processor", OrdersPerSec: 450}})
	if s.Len() != 0 {
		t.Errorf("one round wrote medians:\n%s", s.String())
	}
	if got := (DrainRow{System: "x", Round: 2}).label(); got != "x (round 2)" {
		t.Errorf("label = %q", got)
	}
}

// The label probe writes its labels through the label store and leaves
// them, and reports a cost.
func TestLabelFileCost(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "labels")
	cost, err := labelFileCost(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if cost <= 0 {
		t.Errorf("cost %v, want the CPU of a write", cost)
	}
	files, err := filepath.Glob(filepath.Join(dir, "pi_labelprobe*_label-1.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 200 {
		t.Errorf("%d label files left, want 200", len(files))
	}
}
