package console

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor"
)

// BenchmarkApply files polls of 2,000 states of new orders.
func BenchmarkApply(b *testing.B) {
	t := &testing.T{}
	ix := testIndex(t, b.TempDir())
	defer ix.Close()
	var recs []*kgo.Record
	for i := range 2000 {
		st := order(fmt.Sprintf("pi_bench%08d", i), fmt.Sprintf("b%d@example.com", i), processor.StatusCompleted, t0, 6)
		v, _ := st.Encode()
		recs = append(recs, &kgo.Record{Topic: names.State, Key: []byte(st.OrderID), Value: v, Timestamp: t0})
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
}
