package alertbatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

func TestSummaryBounds(t *testing.T) {
	s := NewSummary()
	for i := range 15 {
		s.Add(integrations.Alert{OrderID: fmt.Sprint("pi_", i), Step: "shipping", Text: fmt.Sprint("reason ", i%5)})
	}
	for i := range 12 {
		s.Add(integrations.Alert{OrderID: fmt.Sprint("pi_s", i), Step: fmt.Sprint("step", i)})
	}
	s.Add(integrations.Alert{Step: "", Text: strings.Repeat("é", 400)})
	if s.Total != 28 || s.FirstOrder != "pi_0" {
		t.Fatalf("total %d first %q", s.Total, s.FirstOrder)
	}
	if len(s.Groups) != MaxSteps+1 {
		t.Fatalf("%d groups, want %d steps and other", len(s.Groups), MaxSteps)
	}
	g := s.Groups[0]
	if g.Step != "shipping" || g.Count != 15 || len(g.Orders) != 10 || g.MoreOrders != 5 {
		t.Errorf("shipping group %+v", g)
	}
	if len(g.Reasons) != 3 || g.Reasons[0] != (Reason{"reason 0", 3}) || g.OtherReasons != 6 {
		t.Errorf("reasons %+v other %d, want 3 distinct (×3 each) and 6 others", g.Reasons, g.OtherReasons)
	}
	other := s.Groups[len(s.Groups)-1]
	// step0..step8 fill the list; step9, step10, step11 and the alert at
	// no step go to other.
	if other.Step != "other" || other.Count != 4 {
		t.Errorf("last group %+v, want other with 4", other)
	}
	if r := other.Reasons[0].Text; len([]rune(r)) != MaxReasonLen+1 || !strings.HasSuffix(r, "…") {
		t.Errorf("reason not cut to %d characters: %d", MaxReasonLen, len([]rune(r)))
	}
}

type recorder struct {
	mu    sync.Mutex
	sends []*Summary
	busy  bool
	err   error
	at    []time.Time
}

func (r *recorder) send(ctx context.Context, s *Summary) error {
	r.mu.Lock()
	if r.busy {
		r.err = errors.New("concurrent sends")
	}
	r.busy = true
	r.mu.Unlock()
	time.Sleep(time.Millisecond)
	r.mu.Lock()
	r.busy = false
	r.sends = append(r.sends, s)
	r.at = append(r.at, time.Now())
	r.mu.Unlock()
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sends)
}

func TestMaxSendsBeforeTheWindowEnds(t *testing.T) {
	r := &recorder{}
	b, err := New(Config{Window: time.Hour, Max: 5, MinInterval: time.Millisecond}, r.send)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := range 5 {
		_ = b.Add(context.Background(), integrations.Alert{OrderID: fmt.Sprint(i), Step: "crm"})
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.count() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a full batch was not sent before the window ended")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if got := r.sends[0].Total; got != 5 {
		t.Fatalf("first batch has %d alerts, want 5", got)
	}
}

func TestSendsAreSerialAndCloseFlushes(t *testing.T) {
	r := &recorder{}
	b, err := New(Config{Window: time.Millisecond, Max: 3, MinInterval: time.Millisecond}, r.send)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				_ = b.Add(context.Background(), integrations.Alert{OrderID: fmt.Sprint(g, "-", i), Step: "crm"})
			}
		}()
	}
	wg.Wait()
	_ = b.Close()
	total := 0
	for _, s := range r.sends {
		total += s.Total
	}
	if total != 200 || r.err != nil {
		t.Fatalf("sent %d alerts (want 200), %v", total, r.err)
	}
	if err := b.Add(context.Background(), integrations.Alert{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close = %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// Close still spaces its sends MinInterval apart.
func TestCloseKeepsMinInterval(t *testing.T) {
	r := &recorder{}
	b, err := New(Config{Window: time.Millisecond, Max: 1, MinInterval: 200 * time.Millisecond}, r.send)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Add(context.Background(), integrations.Alert{OrderID: "a"})
	_ = b.Add(context.Background(), integrations.Alert{OrderID: "b"})
	_ = b.Add(context.Background(), integrations.Alert{OrderID: "c"})
	_ = b.Close()
	total := 0
	for _, s := range r.sends {
		total += s.Total
	}
	if total != 3 {
		t.Fatalf("%d alerts sent, want 3", total)
	}
	for i := 1; i < len(r.at); i++ {
		if gap := r.at[i].Sub(r.at[i-1]); gap < 190*time.Millisecond {
			t.Fatalf("sends %d and %d %v apart, want ≥ 200ms", i, i+1, gap)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Window: -1}, {Max: -1}, {MinInterval: -1}, {FlushTimeout: -1}} {
		if _, err := New(c, func(context.Context, *Summary) error { return nil }); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// Alerts about orders at no step (refunds, disputes) list up to ten
// distinct reasons, each one an order's to act on; a step's failures list
// three.
func TestSummaryListsMoreReasonsAboutOrders(t *testing.T) {
	s := NewSummary()
	for i := range 12 {
		s.Add(integrations.Alert{OrderID: fmt.Sprint("pi_", i), Text: fmt.Sprint("a payment of ", i, ".00 EUR was disputed")})
	}
	g := s.Groups[0]
	if g.Step != "" || len(g.Reasons) != 10 || g.OtherReasons != 2 {
		t.Fatalf("group at no step: %d reasons, %d others; want 10 and 2", len(g.Reasons), g.OtherReasons)
	}
	if g.Reasons[9] != (Reason{"a payment of 9.00 EUR was disputed", 1}) {
		t.Errorf("tenth reason %+v", g.Reasons[9])
	}
}
