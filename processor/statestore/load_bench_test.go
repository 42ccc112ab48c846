package statestore

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
)

// benchState is a completed order's state record as the processor writes
// it (605 bytes); ####### is the order number.
var benchState = []byte(`{"v":1,"order_id":"pi_bench#######","status":"completed","steps":{"crm":{"done":true,"done_at":"2026-12-02T04:46:28.555559417Z"},"details":{"done":true,"done_at":"2026-12-02T04:46:28.555559417Z"},"email":{"done":true,"done_at":"2026-12-02T04:46:28.555559417Z"},"invoice":{"done":true,"done_at":"2026-12-02T04:46:28.555559417Z"},"production_log":{"done":true,"done_at":"2026-12-02T04:46:28.555559417Z"},"shipping":{"done":true,"done_at":"2026-12-02T04:46:28.555559417Z"}},"applied_events":["evt_bench#######"],"created_at":"2026-12-02T04:46:28.555559417Z","updated_at":"2026-12-02T04:46:28.555559417Z"}`)

// BenchmarkLoad measures a rebuild from the changelog without Kafka: 200,000
// states through a Loader into an empty store, in key order (as a
// partition written in order) and scattered (keys of a real shop).
func BenchmarkLoad(b *testing.B) {
	const n = 200000
	for _, order := range []string{"sequential", "scattered"} {
		b.Run(order, func(b *testing.B) {
			keys := make([][]byte, n)
			vals := make([][]byte, n)
			for i := range keys {
				k := i
				if order == "scattered" {
					k = (i * 7919) % n
				}
				id := fmt.Sprintf("%07d", k)
				keys[i] = []byte("pi_bench" + id)
				vals[i] = bytes.ReplaceAll(benchState, []byte("#######"), []byte(id))
			}
			b.SetBytes(int64(n * len(benchState)))
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				s, _, err := Open(filepath.Join(b.TempDir(), "s"), testID, Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				l := s.Load()
				for i := range keys {
					if err := l.Add(keys[i], vals[i], int64(i)); err != nil {
						b.Fatal(err)
					}
				}
				if err := l.Finish(n); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				_ = s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "states/s")
		})
	}
}
