package dlq_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/dlq"
	"github.com/orderflow/orderflow/test/testenv"
	"github.com/orderflow/orderflow/topics"
)

// shop fakes every provider in memory, counts successful calls per step and
// order, and rejects calls of the steps marked down (permanently, as a
// provider rejecting the request would).
type shop struct {
	mu      sync.Mutex
	down    map[string]bool           // step → rejecting
	created map[string]map[string]int // step → order → successful calls
	invs    map[string]integrations.Invoice
}

func newShop() *shop {
	return &shop{down: map[string]bool{}, created: map[string]map[string]int{}, invs: map[string]integrations.Invoice{}}
}

func (s *shop) setDown(step string, down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down[step] = down
}

func (s *shop) count(step, order string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created[step][order]
}

func (s *shop) call(step, order string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down[step] {
		return integrations.Permanentf(step+"-provider", "call", "400 rejected the request for %s", order)
	}
	if s.created[step] == nil {
		s.created[step] = map[string]int{}
	}
	s.created[step][order]++
	return nil
}

func (s *shop) OrderDetails(_ context.Context, id string) (integrations.Order, error) {
	return integrations.Order{Model: integrations.OrderModel, ID: id, PaymentIntentID: id, Number: integrations.OrderNumber(id), Currency: "eur", AmountTotal: 4200,
		Customer: integrations.Customer{Name: "Åsa Öberg", Email: "asa@example.com"}}, s.call(processor.StepDetails, id)
}

func (s *shop) UpsertContactAndDeal(_ context.Context, o integrations.Order) (integrations.CRMResult, error) {
	return integrations.CRMResult{ContactID: "c-" + o.ID, DealID: "d-" + o.ID}, s.call(processor.StepCRM, o.ID)
}

func (s *shop) UpsertOrder(_ context.Context, o integrations.Order, _ []string) (integrations.ProductionLogResult, error) {
	return integrations.ProductionLogResult{RecordID: "r-" + o.ID}, s.call(processor.StepProductionLog, o.ID)
}

func (s *shop) CreateShipment(_ context.Context, o integrations.Order) (integrations.Shipment, error) {
	return integrations.Shipment{ShipmentID: "s-" + o.ID, TrackingNumber: "T" + o.Number}, s.call(processor.StepShipping, o.ID)
}

func (s *shop) CreateInvoice(_ context.Context, o integrations.Order, _ integrations.Shipment) (integrations.Invoice, error) {
	if err := s.call(processor.StepInvoice, o.ID); err != nil {
		return integrations.Invoice{}, err
	}
	inv := integrations.Invoice{Number: s.InvoiceNumber(o), ProviderID: "nv-" + o.ID}
	s.mu.Lock()
	s.invs[inv.Number] = inv
	s.mu.Unlock()
	return inv, nil
}

func (s *shop) FindInvoice(_ context.Context, number string) (integrations.Invoice, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.invs[number]
	return inv, ok, nil
}

func (s *shop) InvoiceNumber(o integrations.Order) string { return "INV-" + o.Number }

func (s *shop) SendConfirmation(_ context.Context, o integrations.Order, _ integrations.Shipment, _ integrations.Invoice) (integrations.Message, error) {
	return integrations.Message{MessageID: "<" + o.ID + "@test>"}, s.call(processor.StepEmail, o.ID)
}

func (s *shop) Alert(context.Context, integrations.Alert) error { return nil }

// TestProviderOutageAndReplay runs the real processor against fake
// providers: a rejecting CRM dead-letters orders; once it is fixed a replay
// completes them with every side effect done once; a second replay, and
// the same dead letter re-sent behind the tool's back, change nothing; an
// order failing again after its replay returns to the DLQ with its replay
// count incremented.
func TestProviderOutageAndReplay(t *testing.T) {
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	shop := newShop()
	cfg := processor.DefaultConfig(names)
	cfg.Group = names.Prefix + "processor"
	cfg.Retry = processor.RetryPolicy{BaseDelay: 5 * time.Millisecond, MaxDelay: 40 * time.Millisecond, MaxAttempts: 3}
	cfg.Breaker = processor.BreakerConfig{FailureThreshold: 50, MinOrders: 50, Window: time.Second, Cooldown: 100 * time.Millisecond}
	cfg.CommitInterval = 50 * time.Millisecond
	cfg.RevokeDeadline = 2 * time.Second
	cfg.StepTimeout = 5 * time.Second
	cfg.ProduceTimeout = 10 * time.Second
	p, err := processor.New(cfg, processor.Providers{Details: shop, CRM: shop, ProductionLog: shop, Shipping: shop,
		Invoicing: shop, Mailer: shop, Alerter: shop}, []kgo.Opt{kgo.SeedBrokers(brokers)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("processor Run: %v", err)
		}
	}()

	c, err := dlq.New(names, []kgo.Opt{kgo.SeedBrokers(brokers)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	send := func(key string) {
		t.Helper()
		ev, _ := json.Marshal(map[string]any{"id": "evt_" + key, "type": processor.EventPaymentSucceeded, "data": map[string]any{"object": map[string]any{"id": key}}})
		v, err := topics.Envelope{EventID: "evt_" + key, EventType: processor.EventPaymentSucceeded, Key: key, ObjectID: key,
			Created: time.Now().Unix(), ReceivedAt: time.Now().UTC(), Event: ev}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		rec := &kgo.Record{Topic: names.Orders, Key: []byte(key), Value: v,
			Headers: []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte("evt_" + key)}, {Key: topics.HeaderEventType, Value: []byte(processor.EventPaymentSucceeded)}}}
		if err := prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	listed := func(f dlq.Filter, n int) []dlq.DeadLetter {
		t.Helper()
		var ds []dlq.DeadLetter
		waitFor("dead letters", func() bool {
			var err error
			ds, err = c.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			return len(ds) >= n
		})
		return ds
	}
	status := func(order string) processor.Status {
		st, err := c.OrderState(ctx, order)
		if err != nil {
			return ""
		}
		return st.Status
	}

	// The CRM rejects every order: all three are dead-lettered at crm.
	orders := []string{"pi_e2e_1", "pi_e2e_2", "pi_e2e_3"}
	shop.setDown(processor.StepCRM, true)
	for _, o := range orders {
		send(o)
	}
	ds := listed(dlq.Filter{Steps: []string{processor.StepCRM}}, 3)
	for _, d := range ds {
		if d.Class != topics.ClassPermanent || d.ReplayCount != 0 || !slices.Contains(orders, d.Key) {
			t.Errorf("dead letter %s: %+v", d.Source(), d)
		}
	}
	if other, _ := c.List(ctx, dlq.Filter{Steps: []string{processor.StepShipping}}); len(other) != 0 {
		t.Errorf("filter --step shipping lists %d dead letters", len(other))
	}

	// Fixed: a replay completes them.
	shop.setDown(processor.StepCRM, false)
	plan, err := c.Plan(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := c.Replay(ctx, plan, dlq.ReplayOptions{Rate: 100})
	if err != nil || sum.Replayed != 3 {
		t.Fatalf("replay: %+v, %v", sum, err)
	}
	for _, o := range orders {
		waitFor(o+" completed", func() bool { return status(o) == processor.StatusCompleted })
	}

	// A second replay skips them all; the same dead letter re-sent behind
	// the tool's back is ignored by the processor.
	plan, err = c.Plan(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	sum, err = c.Replay(ctx, plan, dlq.ReplayOptions{})
	if err != nil || sum.Replayed != 0 || sum.AlreadyReplayed != 3 {
		t.Fatalf("second replay: %+v, %v", sum, err)
	}
	again := dlq.ReplayRecord(ds[0], names.Orders, ds[0].OriginalPartition)
	pm, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	if err := pm.ProduceSync(ctx, again).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// A marker order behind it on the same partition shows when the
	// processor has handled the re-sent record.
	marker := ""
	for i := 0; marker == ""; i++ {
		k := "pi_marker_" + string(rune('a'+i))
		if testPartition(k, 3) == ds[0].OriginalPartition {
			marker = k
		}
	}
	send(marker)
	waitFor("marker order completed", func() bool { return status(marker) == processor.StatusCompleted })
	for _, o := range orders {
		for _, step := range processor.Chain {
			if n := shop.count(step, o); n != 1 {
				t.Errorf("%s: %s done %d times, want once", o, step, n)
			}
		}
	}

	// An order whose shipping keeps failing returns to the DLQ after its
	// replay, its replay count incremented.
	shop.setDown(processor.StepShipping, true)
	send("pi_e2e_again")
	first := listed(dlq.Filter{Orders: []string{"pi_e2e_again"}}, 1)
	if first[0].ReplayCount != 0 || first[0].Step != processor.StepShipping {
		t.Fatalf("first dead letter: %+v", first[0])
	}
	plan, err = c.Plan(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := c.Replay(ctx, plan, dlq.ReplayOptions{}); err != nil || sum.Replayed != 1 {
		t.Fatalf("replay of pi_e2e_again: %+v, %v", sum, err)
	}
	both := listed(dlq.Filter{Orders: []string{"pi_e2e_again"}}, 2)
	second := both[1]
	if second.ReplayCount != 1 || second.Step != processor.StepShipping || second.Source() == first[0].Source() {
		t.Errorf("dead letter after a failed replay: %+v", second)
	}
	if v, _ := second.Header(topics.HeaderReplaySource); v != first[0].Source() {
		t.Errorf("second dead letter's replay source %q, want %q", v, first[0].Source())
	}
	if n := shop.count(processor.StepCRM, "pi_e2e_again"); n != 1 {
		t.Errorf("crm ran %d times for pi_e2e_again, want once (the replay resumes at shipping)", n)
	}
}

// testPartition is the default partitioner's choice for a key.
func testPartition(key string, n int) int32 {
	tp := kgo.StickyKeyPartitioner(nil).ForTopic("")
	return int32(tp.Partition(&kgo.Record{Key: []byte(key)}, n))
}
