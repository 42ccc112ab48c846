package console

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkApplyLarge files CONSOLE_BENCH_ORDERS (default 200,000) new
// orders in polls of 5,000 into one index, as a catch-up does, under the
// console's default memory limit and cache.
func BenchmarkApplyLarge(b *testing.B) {
	n := 200000
	if v, err := strconv.Atoi(os.Getenv("CONSOLE_BENCH_ORDERS")); err == nil {
		n = v
	}
	variant := os.Getenv("CONSOLE_BENCH_VARIANT")
	tuneOptions = func(o *pebble.Options) {
		switch variant {
		case "mem64":
			o.MemTableSize = 64 << 20
		case "l0":
			o.L0CompactionThreshold = 8
			o.L0StopWritesThreshold = 40
			o.LBaseMaxBytes = 512 << 20
		case "t32":
			o.MemTableSize = 32 << 20
			o.L0CompactionThreshold = 8
			o.L0StopWritesThreshold = 32
			o.LBaseMaxBytes = 256 << 20
		case "t32m4":
			o.MemTableSize = 32 << 20
			o.MemTableStopWritesThreshold = 4
			o.L0CompactionThreshold = 8
			o.L0StopWritesThreshold = 32
			o.LBaseMaxBytes = 256 << 20
		case "m16x4":
			o.MemTableSize = 16 << 20
			o.MemTableStopWritesThreshold = 4
			o.L0CompactionThreshold = 8
			o.L0StopWritesThreshold = 32
			o.LBaseMaxBytes = 256 << 20
		case "both":
			o.MemTableSize = 64 << 20
			o.L0CompactionThreshold = 8
			o.L0StopWritesThreshold = 40
			o.LBaseMaxBytes = 512 << 20
		}
	}
	defer func() { tuneOptions = nil }()
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(192 << 20))
	for i := 0; i < b.N; i++ {
		ix, _, err := OpenIndex(b.TempDir(), Identity{ClusterID: "c1"}, 64<<20)
		if err != nil {
			b.Fatal(err)
		}
		var applying time.Duration
		apply := func(recs []*kgo.Record) {
			t := time.Now()
			if _, err := ix.Apply(names, recs); err != nil {
				b.Fatal(err)
			}
			applying += time.Since(t)
		}
		var recs []*kgo.Record
		for j := range n {
			st := fullState(j)
			st.CreatedAt = t0.Add(time.Duration(j) * time.Second)
			v, _ := st.Encode()
			recs = append(recs, &kgo.Record{Topic: names.State, Partition: int32(j % 12), Offset: int64(j / 12), Key: []byte(st.OrderID), Value: v, Timestamp: t0})
			if len(recs) == 5000 {
				apply(recs)
				recs = nil
			}
		}
		apply(recs)
		m := ix.db.Metrics()
		fmt.Fprintf(os.Stderr, "%s: applied %d in %v: %.0f/s; compactions %d, written %d MiB, stalls %d %v (%s)\n", variant, n, applying, float64(n)/applying.Seconds(),
			m.Compact.Count, (m.Total().TableBytesFlushed+m.Total().TableBytesCompacted)>>20, ix.stalls, ix.stalled, ix.reason)
		ix.Close()
	}
}
