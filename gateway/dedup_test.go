package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestMemoryDeduper(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	d := NewMemoryDeduper(3)
	d.now = func() time.Time { return now }

	seen := func(id string) bool {
		t.Helper()
		s, err := d.Seen(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if seen("evt_a") {
		t.Fatal("unmarked id seen")
	}
	_ = d.Mark(ctx, "evt_a", time.Hour)
	if !seen("evt_a") {
		t.Fatal("marked id not seen")
	}

	// SET NX semantics: a second mark does not extend the first.
	now = now.Add(30 * time.Minute)
	_ = d.Mark(ctx, "evt_a", time.Hour)
	now = now.Add(30 * time.Minute)
	if seen("evt_a") {
		t.Error("id still seen after its first ttl")
	}

	// Bounded: the oldest mark goes first.
	for i := range 4 {
		_ = d.Mark(ctx, fmt.Sprintf("evt_%d", i), time.Hour)
	}
	if d.Len() != 3 {
		t.Errorf("holds %d ids, want 3", d.Len())
	}
	if seen("evt_0") || !seen("evt_1") || !seen("evt_3") {
		t.Error("eviction did not drop exactly the oldest id")
	}
}

func TestThrottle(t *testing.T) {
	th := throttle{interval: 10 * time.Second}
	t0 := time.Unix(1_700_000_000, 0)
	if ok, n := th.allow(t0); !ok || n != 0 {
		t.Fatalf("first line: %v %d", ok, n)
	}
	for i := range 5 {
		if ok, _ := th.allow(t0.Add(time.Duration(i) * time.Second)); ok {
			t.Fatal("allowed within the interval")
		}
	}
	if ok, n := th.allow(t0.Add(10 * time.Second)); !ok || n != 5 {
		t.Errorf("after the interval: %v, suppressed %d, want true 5", ok, n)
	}
}
