package console

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor"
)

// BenchmarkApply files polls of 2,000 states of new orders (finished
// orders as the processor records them): read from the digest header,
// scanned, and decoded in full.
func BenchmarkApply(b *testing.B) {
	for _, c := range []struct {
		name         string
		digest, scan bool
	}{{"digest", true, true}, {"scan", false, true}, {"decode", false, false}} {
		b.Run(c.name, func(b *testing.B) {
			defer func(d, s bool) { useDigests, scanStates = d, s }(useDigests, scanStates)
			useDigests, scanStates = c.digest, c.scan
			t := &testing.T{}
			ix := testIndex(t, b.TempDir())
			defer ix.Close()
			var recs []*kgo.Record
			for i := range 2000 {
				st := fullState(i)
				st.OrderID = fmt.Sprintf("pi_bench%08d", i)
				v, _ := st.Encode()
				recs = append(recs, &kgo.Record{Topic: names.State, Key: []byte(st.OrderID), Value: v, Headers: processor.StateHeaders(st, v), Timestamp: t0})
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j, r := range recs {
					r.Offset = int64(i*len(recs) + j)
					r.Key = []byte(fmt.Sprintf("pi_b%d_%d", i, j))
				}
				if _, err := ix.Apply(names, recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
		})
	}
}
