package console

import (
	"os"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor"
)

// BenchmarkApplyLarge files CONSOLE_BENCH_ORDERS (default 200,000) new
// orders (records as the processor writes them, digest header included)
// in polls of 2,000 into one index, as a catch-up does, under the
// console's default memory limit and cache, and reports the time in Apply
// (the records are made outside it), the bytes flushed and compacted and
// the write stalls, and the CPU per record (decoding, writing, flushes
// and compactions); then the time the index takes to open again.
func BenchmarkApplyLarge(b *testing.B) {
	n := 200000
	if v, err := strconv.Atoi(os.Getenv("CONSOLE_BENCH_ORDERS")); err == nil {
		n = v
	}
	// CONSOLE_BENCH_DIGESTS=0 writes the records without the digest
	// header, as builds before it did (the index scans them).
	digests := os.Getenv("CONSOLE_BENCH_DIGESTS") != "0"
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(192 << 20))
	// The records are made as they are filed (all of them would not fit
	// in memory): the CPU of making them alone is measured first and
	// taken from the CPU of the run.
	gen := func(fn func([]*kgo.Record)) {
		var recs []*kgo.Record
		for j := range n {
			st := fullState(j)
			st.CreatedAt = t0.Add(time.Duration(j) * time.Second)
			v, _ := st.Encode()
			var hs []kgo.RecordHeader
			if digests {
				hs = processor.StateHeaders(st, v)
			}
			recs = append(recs, &kgo.Record{Topic: names.State, Partition: int32(j % 12), Offset: int64(j / 12), Key: []byte(st.OrderID), Value: v, Headers: hs, Timestamp: t0})
			if len(recs) == 2000 {
				fn(recs)
				recs = nil
			}
		}
		fn(recs)
	}
	c0 := cpuTime()
	gen(func([]*kgo.Record) {})
	genCPU := cpuTime() - c0
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		ix, _, err := OpenIndex(dir, Identity{ClusterID: "c1"}, 64<<20)
		if err != nil {
			b.Fatal(err)
		}
		c0 := cpuTime()
		var applying time.Duration
		gen(func(recs []*kgo.Record) {
			t := time.Now()
			if _, err := ix.Apply(names, recs); err != nil {
				b.Fatal(err)
			}
			applying += time.Since(t)
		})
		m := ix.db.Metrics()
		ix.Close()
		cpu := cpuTime() - c0 - genCPU
		b.ReportMetric(float64(n)/applying.Seconds(), "records/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/record")
		b.Logf("applied %d in %v: %.0f/s, %.1f µs CPU each (flushes and compactions included); compactions %d, written %d MiB, write stalls %d, %v (last: %s)", n, applying, float64(n)/applying.Seconds(),
			float64(cpu.Microseconds())/float64(n), m.Compact.Count, (m.Total().TableBytesFlushed+m.Total().TableBytesCompacted)>>20, ix.stalls, ix.stalled, ix.reason)
		// A restart: the table of search terms and the filter of ids are
		// filled from the summaries.
		t := time.Now()
		ix, rebuilt, err := OpenIndex(dir, Identity{ClusterID: "c1"}, 64<<20)
		if err != nil || rebuilt != "" {
			b.Fatalf("reopen: %v %q", err, rebuilt)
		}
		b.Logf("reopened in %v: %d terms in memory", time.Since(t), ix.terms.size())
		ix.Close()
	}
}

// cpuTime is the CPU time (user and system) of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
