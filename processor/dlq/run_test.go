package dlq

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/processor"
)

// TestRun: the whole replay as `dlq replay` and the console run it: picked
// by source, a dry run that sends nothing, a confirmation that cancels, a
// real run with one outcome per letter, and the statuses afterwards.
func TestRun(t *testing.T) {
	f := newFixture(t)
	f.produce(
		f.deadLetter("pi_run_a", 0, "shipping", "exhausted", 0), // 0/0
		f.deadLetter("pi_run_a", 0, "shipping", "parked", 0),    // 0/1
		f.deadLetter("pi_run_b", 1, "crm", "permanent", 0),      // 1/0
		f.deadLetter("pi_run_c", 2, "email", "permanent", 0),    // 2/0
	)
	now := time.Now().UTC()
	f.produce(f.state(&processor.State{OrderID: "pi_run_c", Status: processor.StatusCompleted, CreatedAt: now, UpdatedAt: now}))
	c := f.client()

	if _, err := c.Run(f.ctx, ReplayRequest{}); !errors.Is(err, ErrNoSelection) {
		t.Fatalf("Run without a selection = %v, want ErrNoSelection", err)
	}
	if _, err := c.Run(f.ctx, ReplayRequest{Filter: Filter{Sources: []string{"0/x"}}}); !errors.Is(err, ErrBadFilter) {
		t.Fatalf("Run with a bad source = %v, want ErrBadFilter", err)
	}
	// Picking the parked letter alone: the earlier one is left out.
	res, err := c.Run(f.ctx, ReplayRequest{Filter: Filter{Sources: []string{"0/1", "2/0"}}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plan) != 2 || res.Replay != 1 || res.AlreadyCompleted != 1 || len(res.LeftOut) != 1 || res.LeftOut[0].Source() != "0/0" || res.Outcomes != nil {
		t.Fatalf("dry run = %+v", res)
	}
	res, err = c.Run(f.ctx, ReplayRequest{Filter: Filter{Orders: []string{"pi_run_b"}}, Confirm: func(p Preview) bool { return p.Replay != 1 }})
	if !errors.Is(err, ErrCancelled) || res.Outcomes != nil {
		t.Fatalf("cancelled run = %+v, %v", res, err)
	}
	if n := len(readAll(t, f, f.names.Orders, 0)); n != 0 {
		t.Fatalf("%d records sent by a dry run or a cancelled one", n)
	}
	res, err = c.Run(f.ctx, ReplayRequest{Filter: Filter{Sources: []string{"0/0", "0/1", "1/0", "2/0"}}, Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range res.Outcomes {
		got = append(got, o.Source+" "+o.Order+" "+o.Result)
	}
	want := "0/0 pi_run_a replayed|0/1 pi_run_a replayed|1/0 pi_run_b replayed|2/0 pi_run_c skipped: already completed"
	if strings.Join(got, "|") != want || res.Summary.Replayed != 3 || res.Summary.AlreadyCompleted != 1 {
		t.Fatalf("outcomes = %v (summary %+v)\nwant %s", got, res.Summary, want)
	}
	readAll(t, f, f.names.Orders, 3)

	// The processor applied the replay of pi_run_b and it completed; pi_run_a
	// is running again.
	f.produce(f.state(&processor.State{OrderID: "pi_run_a", Status: processor.StatusInProgress, Replays: []string{"0/0", "0/1"}, CreatedAt: now, UpdatedAt: now}),
		f.state(&processor.State{OrderID: "pi_run_b", Status: processor.StatusCompleted, Replays: []string{"1/0"}, CreatedAt: now, UpdatedAt: now}))
	ls, err := c.ListStatus(f.ctx, Filter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, l := range ls {
		got = append(got, l.Source()+" "+l.Status)
	}
	if strings.Join(got, "|") != "0/0 replayed|0/1 replayed|1/0 resolved|2/0 resolved" {
		t.Fatalf("statuses = %v", got)
	}
	if open, err := c.ListStatus(f.ctx, Filter{}, []string{LetterOpen}); err != nil || len(open) != 0 {
		t.Fatalf("open = %v, %v", open, err)
	}
	if _, err := c.ListStatus(f.ctx, Filter{}, []string{"closed"}); !errors.Is(err, ErrBadFilter) {
		t.Fatalf("unknown status = %v", err)
	}
}

func TestLetterStatus(t *testing.T) {
	for _, tc := range []struct {
		st        *processor.State
		want      string
		eventType string
	}{
		{nil, LetterOpen, ""},
		{&processor.State{Status: processor.StatusDeadLettered}, LetterOpen, ""},
		{&processor.State{Status: processor.StatusDeadLettered, Replays: []string{"1/2"}}, LetterReplayed, ""},
		{&processor.State{Status: processor.StatusInProgress, Replays: []string{"3/3"}}, LetterOpen, ""},
		{&processor.State{Status: processor.StatusCompleted, Replays: []string{"1/2"}}, LetterResolved, ""},
		{&processor.State{Status: processor.StatusCompleted}, LetterResolved, ""},
		// An erasure marker keeps no replays: the letter is not open.
		{&processor.State{Status: processor.StatusErased}, LetterErased, ""},
		// A refund parked behind the failure: the order completing (its
		// failed step replayed alone) leaves it open until it is replayed.
		{&processor.State{Status: processor.StatusCompleted}, LetterOpen, processor.EventChargeRefunded},
		{&processor.State{Status: processor.StatusCompleted, Replays: []string{"1/2"}}, LetterResolved, processor.EventChargeRefunded},
		{&processor.State{Status: processor.StatusCompleted}, LetterResolved, processor.EventPaymentSucceeded},
		// So does a refund's failure parked behind it.
		{&processor.State{Status: processor.StatusCompleted}, LetterOpen, processor.EventRefundUpdated},
		{&processor.State{Status: processor.StatusCompleted, Replays: []string{"1/2"}}, LetterResolved, processor.EventRefundUpdated},
		{&processor.State{Status: processor.StatusCompleted}, LetterOpen, processor.EventDisputeCreated},
		{&processor.State{Status: processor.StatusCompleted, Replays: []string{"1/2"}}, LetterResolved, processor.EventDisputeCreated},
		// Refunded before shipping, the chain stopped: the failure and the
		// payment events parked behind it are done with; a dispute is not.
		{&processor.State{Status: processor.StatusRefunded}, LetterResolved, ""},
		{&processor.State{Status: processor.StatusRefunded}, LetterResolved, processor.EventPaymentSucceeded},
		{&processor.State{Status: processor.StatusRefunded}, LetterOpen, processor.EventDisputeCreated},
		{&processor.State{Status: processor.StatusRefunded, Replays: []string{"1/2"}}, LetterResolved, processor.EventDisputeCreated},
	} {
		if got := LetterStatus("1/2", tc.eventType, tc.st); got != tc.want {
			t.Errorf("LetterStatus(%q, %+v) = %s, want %s", tc.eventType, tc.st, got, tc.want)
		}
	}
}
