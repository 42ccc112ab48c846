package processor

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor/statestore"
	"github.com/orderflow/orderflow/topics"
)

// startWith starts a processor after prepare has adjusted it.
func (h *harness) startWith(cfg Config, prov Providers, prepare func(*Processor)) *running {
	h.t.Helper()
	reg := prometheus.NewRegistry()
	p, err := New(cfg, prov, []kgo.Opt{kgo.SeedBrokers(h.brokers...)}, testLogger(h.t), reg)
	if err != nil {
		h.t.Fatal(err)
	}
	if prepare != nil {
		prepare(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	h.t.Cleanup(func() { r.stop(h.t) })
	return r
}

// restoredOnce waits for the processor's restore of its partitions and
// returns how many orders.state records it read.
func (r *running) restoredOnce(t *testing.T, partitions int) float64 {
	t.Helper()
	eventually(t, "restore", 30*time.Second, func() bool { return histogramCount(r.p.m.restore) >= uint64(partitions) })
	return metricValue(r.p.m.restoredStates)
}

func (h *harness) storeDir(root string, partition int) string {
	return filepath.Join(root, h.names.State, strconvItoa(partition))
}

func strconvItoa(n int) string { return string(rune('0' + n)) }

// completeOrders runs a processor until the orders are completed, then
// stops it gracefully.
func (h *harness) completeOrders(cfg Config, f *fakes, orders ...string) {
	h.t.Helper()
	r := h.start(cfg, f.providers())
	for _, o := range orders {
		h.send(paid(o))
	}
	h.waitStates("orders completed", 30*time.Second, allStatus(orders, StatusCompleted))
	r.stop(h.t)
}

// A restart on the same disk reads only the changelog past the store's
// checkpoint (nothing after a clean stop) and still knows every order; a
// restart without a store reads the whole changelog.
func TestRestartWithAndWithoutLocalStore(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	f := newFakes()
	cfg := h.config()
	cfg.StateDir = t.TempDir()
	h.completeOrders(cfg, f, "pi_warm1", "pi_warm2") // 6 state writes each

	r := h.start(cfg, f.providers())
	if n := r.restoredOnce(t, 1); n != 0 {
		t.Errorf("warm restart read %v state records, want 0 (the store was current)", n)
	}
	if n := metricValue(r.p.m.storeRebuilds); n != 0 {
		t.Errorf("warm restart rebuilt %v stores, want 0", n)
	}
	h.send(paid("pi_warm1"), event{key: "pi_warm2", typ: EventChargeRefunded, id: "evt_refund_warm2", object: "ch_warm2"})
	eventually(t, "refund after shipping flagged", 30*time.Second, func() bool {
		st := h.states()["pi_warm2"]
		return st != nil && st.HasFlag(FlagRefundedAfterShipping)
	})
	if n := f.createdCount(StepDetails, "pi_warm1"); n != 1 {
		t.Errorf("details of the completed order ran %d times after the restart, want 1", n)
	}
	r.stop(t)

	cold := cfg
	cold.StateDir = "" // a temporary folder: no local store
	r = h.start(cold, f.providers())
	if n := r.restoredOnce(t, 1); n != 13 {
		t.Errorf("restart without a store read %v state records, want 13 (6 + 6 + the refund's)", n)
	}
	h.send(paid("pi_warm2"))
	h.send(paid("pi_cold3"))
	h.waitStates("new order completed", 30*time.Second, allStatus([]string{"pi_cold3"}, StatusCompleted))
	if n := f.attemptCount(StepDetails, "pi_warm2"); n != 1 {
		t.Errorf("details of the completed order ran %d times after a cold restart, want 1", n)
	}
}

// A deleted, corrupt or foreign store is rebuilt from the changelog, never
// trusted.
func TestUntrustedStoresAreRebuilt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, h *harness, dir string)
	}{
		{"deleted", func(t *testing.T, _ *harness, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}},
		{"corrupt files", func(t *testing.T, _ *harness, dir string) {
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Name() == "orderflow-store" {
					continue
				}
				if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte(strings.Repeat("garbage ", 64)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"another topic prefix", func(t *testing.T, _ *harness, dir string) {
			other := newHarness(t, 1)
			ocfg := other.config()
			ocfg.StateDir = t.TempDir()
			other.completeOrders(ocfg, newFakes(), "pi_foreign")
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			copyDir(t, other.storeDir(ocfg.StateDir, 0), dir)
		}},
		{"checkpoint beyond the log end", func(t *testing.T, h *harness, dir string) {
			st, _, err := statestore.Open(dir, storeIdentity(t, h), statestore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Load().Finish(1000); err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 1)
			f := newFakes()
			cfg := h.config()
			cfg.StateDir = t.TempDir()
			h.completeOrders(cfg, f, "pi_spoil")
			tc.spoil(t, h, h.storeDir(cfg.StateDir, 0))

			r := h.start(cfg, f.providers())
			if n := r.restoredOnce(t, 1); n != 6 {
				t.Errorf("restore read %v state records, want all 6", n)
			}
			if n := metricValue(r.p.m.storeRebuilds); n != 1 {
				t.Errorf("stores rebuilt = %v, want 1", n)
			}
			h.send(paid("pi_spoil"), paid("pi_foreign"))
			h.waitStates("other order completed", 30*time.Second, allStatus([]string{"pi_foreign"}, StatusCompleted))
			if n := f.attemptCount(StepDetails, "pi_spoil"); n != 1 {
				t.Errorf("details of the completed order ran %d times, want 1 (its state was restored)", n)
			}
			if n := f.createdCount(StepDetails, "pi_foreign"); n != 1 {
				t.Errorf("details of an order unknown to this topic ran %d times, want 1 (no foreign state used)", n)
			}
		})
	}
}

func storeIdentity(t *testing.T, h *harness) statestore.Identity {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	meta, err := kadm.NewClient(h.prod).Metadata(ctx, h.names.State)
	if err != nil {
		t.Fatal(err)
	}
	return statestore.Identity{ClusterID: meta.Cluster, Topic: h.names.State, TopicID: meta.Topics[h.names.State].ID.String()}
}

// A topic deleted and created again has a new topic id: the store of the
// old one is rebuilt, and its orders are unknown.
func TestStoreOfARecreatedTopicIsRebuilt(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	f := newFakes()
	cfg := h.config()
	cfg.StateDir = t.TempDir()
	h.completeOrders(cfg, f, "pi_recreate")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(h.prod)
	if _, err := adm.DeleteTopics(ctx, h.names.Orders, h.names.State, h.names.DLQ); err != nil {
		t.Fatal(err)
	}
	eventually(t, "topics deleted", 30*time.Second, func() bool {
		td, err := adm.ListTopics(ctx, h.names.State)
		return err == nil && !td.Has(h.names.State)
	})
	eventually(t, "topics created again", 30*time.Second, func() bool {
		_, err := topics.Create(ctx, adm, h.names.Specs(1), 1)
		return err == nil
	})

	prod, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	h.prod = prod // the old client knows the old topic ids

	r := h.start(cfg, f.providers())
	r.restoredOnce(t, 1)
	if n := metricValue(r.p.m.storeRebuilds); n != 1 {
		t.Errorf("stores rebuilt = %v, want 1", n)
	}
	h.send(paid("pi_recreate"))
	h.waitStates("order completed again", 30*time.Second, allStatus([]string{"pi_recreate"}, StatusCompleted))
	if n := f.createdCount(StepDetails, "pi_recreate"); n != 2 {
		t.Errorf("details ran %d times, want 2 (the new topic has no state of the order)", n)
	}
}

// A partition that comes back to a processor whose local copy is behind
// (another processor owned it meanwhile) reads the changelog from its
// copy's checkpoint and sees what the other one wrote.
func TestRebalanceToAStaleLocalCopy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	f := newFakes()
	cfgA, cfgB := h.config(), h.config()
	cfgA.StateDir, cfgB.StateDir = t.TempDir(), t.TempDir()
	h.completeOrders(cfgA, f, "pi_a1")          // offsets 0-5, in A's store
	h.completeOrders(cfgB, f, "pi_b1", "pi_b2") // offsets 6-17, only on the changelog for A

	r := h.start(cfgA, f.providers())
	if n := r.restoredOnce(t, 1); n != 12 {
		t.Errorf("A read %v state records, want the 12 B wrote", n)
	}
	if n := metricValue(r.p.m.storeRebuilds); n != 0 {
		t.Errorf("stores rebuilt = %v, want 0 (A's copy is behind, not untrusted)", n)
	}
	h.send(paid("pi_b1"), paid("pi_a1"), paid("pi_a3"))
	h.waitStates("new order completed", 30*time.Second, allStatus([]string{"pi_a3"}, StatusCompleted))
	for _, o := range []string{"pi_a1", "pi_b1"} {
		if n := f.attemptCount(StepDetails, o); n != 1 {
			t.Errorf("details of %s ran %d times, want 1", o, n)
		}
	}
}

// A crash after a state write was acknowledged on Kafka and before it was
// written to the local store is harmless: the store's checkpoint did not
// pass that record, so the next start reads it again, and the step it
// recorded is not called again.
func TestCrashBetweenAckAndLocalWrite(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	f := newFakes()
	cfg := h.config()
	cfg.StateDir = t.TempDir()
	var writes atomic.Int32
	var r1 *running
	r1 = h.startWith(cfg, f.providers(), func(p *Processor) {
		p.beforeLocalWrite = func(_ int32, key string) bool {
			if key != "pi_ack" || writes.Add(1) != 4 {
				return true
			}
			// The 4th write holds the shipment: acknowledged, never local.
			p.kill()
			return false
		}
	})
	h.send(paid("pi_ack"))
	eventually(t, "crash after the shipment's write", 30*time.Second, func() bool { return writes.Load() >= 4 })
	r1.stop(t)

	r2 := h.start(cfg, f.providers())
	if n := r2.restoredOnce(t, 1); n != 1 {
		t.Errorf("restart read %v state records, want 1 (the one acknowledged but not stored)", n)
	}
	st := h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_ack"}, StatusCompleted))["pi_ack"]
	if n := f.createdCount(StepShipping, "pi_ack"); n != 1 {
		t.Errorf("shipments created = %d, want 1", n)
	}
	if st.HasFlag(FlagPossibleDuplicatePrefix + StepShipping) {
		t.Errorf("flags %v: the shipment was recorded, it is not a possible duplicate", st.Flags)
	}
}

// Only a bounded cache of states stays in memory; the rest are read back
// from the store, and the per-key checks still hold.
func TestStateCacheBound(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	f := newFakes()
	cfg := h.config()
	cfg.StateCacheEntries = 2
	orders := keys("cache", 6)
	r := h.start(cfg, f.providers())
	for _, o := range orders {
		h.send(paid(o))
	}
	h.waitStates("orders completed", 30*time.Second, allStatus(orders, StatusCompleted))
	eventually(t, "gauges", 10*time.Second, func() bool {
		return metricValue(r.p.m.states.WithLabelValues("disk")) == 6
	})
	if n := metricValue(r.p.m.states.WithLabelValues("memory")); n > 2 {
		t.Errorf("states in memory = %v, want at most 2", n)
	}
	// Redeliveries and duplicates of evicted orders change nothing.
	for _, o := range orders {
		h.send(paid(o))
	}
	h.send(paid("pi_cachelast"))
	h.waitStates("last order completed", 30*time.Second, allStatus([]string{"pi_cachelast"}, StatusCompleted))
	for _, o := range orders {
		if n := f.attemptCount(StepDetails, o); n != 1 {
			t.Errorf("details of %s ran %d times, want 1", o, n)
		}
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		in, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(to, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
}
