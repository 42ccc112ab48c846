package processor

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics"
)

// States no code path writes, found by fuzzing and hostile-input tests,
// once crashed the processor on every restart. They must not: a null step
// is an unreadable state (skipped with an alert), and a skipped details step
// is run anyway, because every later step needs the order.
func TestOddStatesDoNotCrashTheProcessor(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 3)
	f := newFakes()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const p = int32(2)
	nullStep := `{"v":1,"order_id":"pi_nullstep","status":"in_progress","steps":{"crm":null},"created_at":"2026-11-28T12:00:00Z","updated_at":"2026-11-28T12:00:00Z"}`
	noDetails := `{"v":1,"order_id":"pi_nodetails","status":"in_progress","steps":{"details":{"skipped":true},"crm":{"skipped":true},"production_log":{"skipped":true},"shipping":{"skipped":true},"invoice":{"intent":"2026-11-28T12:00:00Z"}},"created_at":"2026-11-28T12:00:00Z","updated_at":"2026-11-28T12:00:00Z"}`
	if err := cl.ProduceSync(context.Background(),
		&kgo.Record{Topic: h.names.State, Partition: p, Key: []byte("pi_nullstep"), Value: []byte(nullStep)},
		&kgo.Record{Topic: h.names.State, Partition: p, Key: []byte("pi_nodetails"), Value: []byte(noDetails)},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	h.start(h.config(), f.providers())
	h.sendTo(p, paid("pi_nullstep"), paid("pi_nodetails"))
	h.waitStates("both orders completed", 30*time.Second, allStatus([]string{"pi_nullstep", "pi_nodetails"}, StatusCompleted))
	if n := f.createdCount(StepDetails, "pi_nodetails"); n != 1 {
		t.Errorf("details of the order whose details were marked skipped ran %d times, want 1", n)
	}
	if n := f.createdCount(StepInvoice, "pi_nodetails"); n != 1 {
		t.Errorf("invoices created = %d, want 1 (the interrupted call is reconciled first)", n)
	}
}

// A panic while handling one record dead-letters that record as corrupt
// and the processor goes on with the others: in the first step (run on the
// record's goroutine) as in a step run beside others (on its own).
func TestPanicIsDeadLetteredNotACrash(t *testing.T) {
	t.Parallel()
	for _, step := range []string{StepDetails, StepCRM} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			h := newLogicHarness(t, 3)
			f := newFakes()
			f.setFail(func(s, order string, _ int) error {
				if s == step && order == "pi_panics" {
					panic("provider client bug")
				}
				return nil
			})
			h.start(h.config(), f.providers())
			h.sendTo(1, paid("pi_panics"), paid("pi_fine"))
			h.waitStates("other order completed", 30*time.Second, allStatus([]string{"pi_fine"}, StatusCompleted))
			var corrupt bool
			eventually(t, "dead letter of class corrupt", 30*time.Second, func() bool {
				for _, r := range h.readAll(h.names.DLQ) {
					if v, _ := header(r, topics.HeaderDLQClass); v == topics.ClassCorrupt && string(r.Key) == "pi_panics" {
						corrupt = true
					}
				}
				return corrupt
			})
		})
	}
}

// An order takes six state writes: one per step, with the intent of shipping,
// invoice and email persisted in the write before their call (the previous
// step's result) and the completion in the last step's write. Every intent
// is persisted before its call and every result before the next call.
func TestStateWritesPerOrder(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 1)
	f := newFakes()
	h.start(h.config(), f.providers())
	h.send(paid("pi_writes"))
	h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_writes"}, StatusCompleted))
	var states []*State
	for _, r := range h.readAll(h.names.State) {
		if string(r.Key) != "pi_writes" {
			continue
		}
		st, err := DecodeState(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, st)
	}
	if len(states) != 6 {
		t.Fatalf("%d state writes, want 6", len(states))
	}
	// Steps run as a graph (crm, production_log and shipping side by side
	// after details), so the order of the writes varies; each write records
	// exactly one more step done, and a step that is not idempotent has its
	// intent in an earlier write, one in which the steps it reads are done.
	chain := BuiltinChain(f.providers())
	done := map[string]bool{}
	for i, st := range states {
		var newly []string
		for _, step := range Chain {
			if ss := st.Steps[step]; ss != nil && ss.Done && !done[step] {
				newly = append(newly, step)
				done[step] = true
			}
		}
		if len(newly) != 1 {
			t.Errorf("write %d: newly done %v, want one step", i+1, newly)
		}
		if i+1 < len(states) && st.Status == StatusCompleted {
			t.Errorf("write %d: completed before the last step", i+1)
		}
		if i == 0 && (len(newly) != 1 || newly[0] != StepDetails) {
			t.Errorf("first write: %v done, want details", newly)
		}
	}
	for _, s := range chain {
		if s.Idempotent() {
			continue
		}
		intentAt, doneAt := -1, -1
		for i, st := range states {
			ss := st.Steps[s.Name()]
			if ss != nil && ss.Intent != nil && intentAt < 0 {
				intentAt = i
				for _, r := range append(s.Reads(), StepDetails) {
					if rs := st.Steps[r]; rs == nil || !rs.Done {
						t.Errorf("write %d: intent of %s before %s, which it reads, is done", i+1, s.Name(), r)
					}
				}
			}
			if ss != nil && ss.Done && doneAt < 0 {
				doneAt = i
			}
		}
		if intentAt < 0 || intentAt >= doneAt {
			t.Errorf("%s: intent in write %d, result in write %d; want the intent written first", s.Name(), intentAt+1, doneAt+1)
		}
	}
	for _, s := range chain {
		if s.Idempotent() {
			for i, st := range states {
				if ss := st.Steps[s.Name()]; ss != nil && ss.Intent != nil {
					t.Errorf("write %d: intent of idempotent %s", i+1, s.Name())
				}
			}
		}
	}
	if last := states[5]; last.Status != StatusCompleted || last.NextOffset == 0 {
		t.Errorf("last write: status %s next offset %d, want completed with the record handled", last.Status, last.NextOffset)
	}
	if f.createdCount(StepShipping, "pi_writes") != 1 || f.createdCount(StepEmail, "pi_writes") != 1 {
		t.Error("a step ran more than once")
	}
}

// A processor stopped while it is still checking its topics returns no error:
// a stop is not a failure.
func TestRunStoppedBeforeStartIsNotAnError(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 1)
	p, err := New(h.config(), newFakes().providers(), []kgo.Opt{kgo.SeedBrokers(h.brokers...)}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run with a cancelled context: %v, want nil", err)
	}
}

// A graceful stop right after a step whose write also carried the next
// step's intent clears that intent: the next owner makes the call without
// flagging the order as a possible duplicate.
func TestStopClearsAnIntentWrittenAhead(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 1)
	f := newFakes()
	cfg := h.config()
	var r1 *running
	stopped := make(chan struct{})
	f.afterCreate = func(step, order string) {
		if step == StepDetails && order == "pi_stop" {
			// Stop the processor while this call is in flight, and return
			// only once its partition is stopping: the chain then sees the
			// stop before it could start shipping.
			r1.p.mu.Lock()
			var parts []*partition
			for _, part := range r1.p.parts {
				parts = append(parts, part)
			}
			r1.p.mu.Unlock()
			r1.cancel()
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				all := len(parts) > 0
				for _, part := range parts {
					all = all && part.stopping()
				}
				if all {
					break
				}
				if time.Now().After(deadline) {
					t.Error("the partition did not begin stopping within 10 s of the stop")
					break
				}
			}
			close(stopped)
		}
	}
	r1 = h.start(cfg, f.providers())
	h.send(paid("pi_stop"))
	<-stopped
	r1.stop(t)
	if n := f.createdCount(StepShipping, "pi_stop"); n != 0 {
		t.Fatalf("shipping called %d times before the stop, want 0", n)
	}
	f.afterCreate = nil
	h.start(cfg, f.providers())
	st := h.waitStates("completed after the restart", 30*time.Second, allStatus([]string{"pi_stop"}, StatusCompleted))
	if flags := st["pi_stop"].Flags; len(flags) != 0 {
		t.Errorf("flags %v, want none: no call was interrupted", flags)
	}
	if n := f.createdCount(StepShipping, "pi_stop"); n != 1 {
		t.Errorf("shipping created %d times, want 1", n)
	}
}

// A short session timeout (faster failover after a crash) is accepted:
// the heartbeat interval follows it.
func TestShortSessionTimeout(t *testing.T) {
	h := newLogicHarness(t, 1)
	cfg := h.config()
	cfg.SessionTimeout = 2 * time.Second
	p, err := New(cfg, newFakes().providers(), []kgo.Opt{kgo.SeedBrokers(h.brokers...)}, testLogger(t), nil)
	if err != nil {
		t.Fatalf("New with a 2s session timeout: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// messageFinder is a fake Mailer that can look its messages up.
type messageFinder struct{ *fakes }

func (m messageFinder) FindMessage(_ context.Context, o integrations.Order) (integrations.Message, bool, error) {
	if m.createdCount(StepEmail, o.ID) > 0 {
		return integrations.Message{MessageID: "<" + o.Number + "@mg>"}, true, nil
	}
	return integrations.Message{}, false, nil
}

// The email of an order whose processor crashed right after the provider
// accepted it is found by its Message-Id, not sent again.
func TestEmailIntentIsReconciled(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 1)
	f := newFakes()
	prov := f.providers()
	prov.Mailer = messageFinder{f}
	cfg := h.config()
	var r1 *running
	var once sync.Once
	f.afterCreate = func(step, order string) {
		if step == StepEmail {
			once.Do(func() { r1.p.kill() })
		}
	}
	r1 = h.start(cfg, prov)
	h.send(paid("pi_mail"))
	eventually(t, "email sent", 30*time.Second, func() bool { return f.createdCount(StepEmail, "pi_mail") == 1 })
	r1.stop(t)
	f.mu.Lock()
	f.afterCreate = nil
	f.mu.Unlock()
	h.start(cfg, prov)
	st := h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_mail"}, StatusCompleted))["pi_mail"]
	if n := f.attemptCount(StepEmail, "pi_mail"); n != 1 {
		t.Errorf("email sent %d times, want 1", n)
	}
	if len(st.Flags) != 0 {
		t.Errorf("flags %v, want none", st.Flags)
	}
}

// A stop the processor asks for itself (a local store found corrupt while
// running: only a restart rebuilds it) ends Run with its reason, after a
// graceful stop.
func TestStopForEndsRunWithItsReason(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 1)
	f := newFakes()
	r := h.start(h.config(), f.providers())
	h.send(paid("pi_before_stop"))
	h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_before_stop"}, StatusCompleted))
	reason := errors.New("processor: local state store of partition 0 is corrupt; restart to rebuild it")
	r.p.stopFor(reason)
	select {
	case err := <-r.done:
		close(r.done)
		if !errors.Is(err, reason) {
			t.Fatalf("Run returned %v, want %v", err, reason)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not end")
	}
}
