package processor

import (
	"reflect"
	"testing"
	"time"
)

// Every state record the processor writes on orders.state carries the
// digest header, and it reads back as the digest of the record's value:
// the order's states as it runs, and its erasure marker.
func TestStateRecordsCarryDigest(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	f := newFakes()
	f.setFail(func(step, order string, attempt int) error {
		if step == StepShipping && attempt == 1 {
			return transient(step)
		}
		return nil
	})
	h.start(h.config(), f.providers())
	h.sendTo(0, paid("pi_digest"))
	h.waitStates("completed", 30*time.Second, allStatus([]string{"pi_digest"}, StatusCompleted))
	h.eraseRequest(0, "pi_digest")
	h.waitStates("erased", 30*time.Second, allStatus([]string{"pi_digest"}, StatusErased))

	var last Digest
	statuses := map[Status]int{}
	for _, r := range h.readAll(h.names.State) {
		v, ok := header(r, "orderflow-state-digest")
		if !ok {
			t.Errorf("state record at offset %d without the digest header", r.Offset)
			continue
		}
		got, err := ParseDigest([]byte(v), r.Value)
		if err != nil {
			t.Errorf("offset %d: %v", r.Offset, err)
			continue
		}
		st, err := DecodeState(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if want := DigestOf(st); !reflect.DeepEqual(got, want) {
			t.Errorf("offset %d: header\n%+v\nthe value's\n%+v", r.Offset, got, want)
		}
		statuses[got.Status]++
		if got.Status == StatusCompleted {
			last = got
		}
	}
	if statuses[StatusInProgress] == 0 || statuses[StatusCompleted] == 0 || statuses[StatusErased] != 1 {
		t.Errorf("digests by status %v, want in progress ones, completed ones and one erased", statuses)
	}
	if last.Tracking != "TOF-DIGEST" || last.Invoice != "INV-OF-DIGEST" || last.Email != "t@example.com" || last.Number != "OF-DIGEST" ||
		last.AmountTotal != 12400 || len(last.AppliedEvents) != 1 || last.AppliedEvents[0] != "evt_pi_pi_digest" {
		t.Errorf("completed digest %+v", last)
	}
	if s := last.Step(StepShipping); s == nil || !s.Done || s.Attempts != 1 {
		t.Errorf("shipping in the completed digest: %+v, want done after 1 failed attempt", s)
	}
}
