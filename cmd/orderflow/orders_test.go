package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
)

func TestOrdersShow(t *testing.T) {
	e := newDLQEnv(t)
	at := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)
	res := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	st := &processor.State{
		OrderID: "pi_show", Status: processor.StatusInProgress, CreatedAt: at, UpdatedAt: at,
		Order: &integrations.Order{ID: "pi_show", Number: "OF-PI_SHOW", Currency: "eur", AmountTotal: 4200,
			Customer: integrations.Customer{Name: "Åsa Öberg", Email: buyerEmail},
			Shipping: integrations.Address{Name: "Åsa Öberg", Line1: "Kauppakatu 1", City: "Oulu", PostalCode: "90100", Country: "FI"}},
		Steps: map[string]*processor.StepState{
			processor.StepDetails:       {Done: true, DoneAt: &at},
			processor.StepCRM:           {Done: true, DoneAt: &at, Result: res(integrations.CRMResult{ContactID: "c-1", DealID: "deal-42"})},
			processor.StepProductionLog: {Done: true, DoneAt: &at, Result: res(integrations.ProductionLogResult{RecordID: "recAB"})},
			processor.StepShipping: {Done: true, DoneAt: &at, Result: res(integrations.Shipment{ShipmentID: "s-9", TrackingNumber: "00370733741234567890",
				LabelLocation: "labels/OF-PI_SHOW.pdf"})},
			processor.StepInvoice: {Done: true, DoneAt: &at, Result: res(integrations.Invoice{Number: "INV-OF-PI_SHOW", ProviderID: "nv-7"})},
			processor.StepEmail:   {Attempts: 2, LastError: "mailgun: 503 Service Unavailable", LastFailure: &at},
		},
		Flags: []string{"possible_duplicate:shipping"},
	}
	// An older state first: the latest one is shown.
	e.produce(e.state(1, &processor.State{OrderID: "pi_show", Status: processor.StatusDeadLettered}), e.state(1, st))

	code, out, errs := e.run("orders", "show", "pi_show")
	if code != 0 {
		t.Fatalf("orders show: exit %d\n%s", code, errs)
	}
	for _, want := range []string{"order pi_show (OF-PI_SHOW)", "in_progress", "deal deal-42", "record recAB",
		"tracking 00370733741234567890", "label labels/OF-PI_SHOW.pdf", "number INV-OF-PI_SHOW", "2 attempt(s)",
		"mailgun: 503 Service Unavailable", "possible_duplicate:shipping", "42.00 EUR"} {
		if !strings.Contains(out, want) {
			t.Errorf("orders show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, buyerEmail) || strings.Contains(out, "Kauppakatu") {
		t.Errorf("orders show prints customer data:\n%s", out)
	}

	code, out, errs = e.run("orders", "show", "pi_show", "--json")
	if code != 0 {
		t.Fatalf("orders show --json: exit %d\n%s", code, errs)
	}
	got, err := processor.DecodeState([]byte(out))
	if err != nil {
		t.Fatalf("--json output is not a state: %v\n%s", err, out)
	}
	if got.Status != processor.StatusInProgress || !got.HasFlag("possible_duplicate:shipping") || got.Steps[processor.StepEmail].Attempts != 2 {
		t.Errorf("--json state = %+v", got)
	}
	if got.Order.Customer.Email != "***" || got.Order.Shipping.City != "***" || got.Order.AmountTotal != 4200 {
		t.Errorf("--json does not mask customer data: %+v", got.Order)
	}

	code, out, _ = e.run("orders", "show", "--json", "--reveal", "pi_show")
	if code != 0 || !strings.Contains(out, buyerEmail) {
		t.Errorf("orders show --json --reveal: exit %d\n%s", code, out)
	}

	code, _, errs = e.run("orders", "show", "pi_none")
	if code != 1 || !strings.Contains(errs, "order pi_none not found") {
		t.Errorf("unknown order: exit %d, stderr %q", code, errs)
	}
}

func TestOrdersErase(t *testing.T) {
	e := newDLQEnv(t)
	at := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)
	st := &processor.State{OrderID: "pi_erase", Status: processor.StatusCompleted, CreatedAt: at, UpdatedAt: at,
		Order: &integrations.Order{ID: "pi_erase", Customer: integrations.Customer{Name: "Åsa Öberg", Email: buyerEmail}},
		Steps: map[string]*processor.StepState{processor.StepShipping: {Done: true,
			Result: []byte(`{"tracking_number":"00370712345","label_location":"file:///srv/labels/pi_erase_label-00370712345.pdf"}`)}}}
	e.produce(e.state(2, st))

	code, _, errs := e.run("orders", "erase", "pi_unknown", "--yes")
	if code != 1 || !strings.Contains(errs, "order pi_unknown not found on "+e.names.State+": nothing to erase") {
		t.Errorf("unknown order: exit %d, stderr %q", code, errs)
	}
	code, _, errs = e.run("orders", "erase", "pi_erase")
	if code != 2 || !strings.Contains(errs, "pass --yes") {
		t.Errorf("no terminal, no --yes: exit %d, stderr %q", code, errs)
	}
	// Declined at the prompt: nothing done, so not exit 0.
	stdinIsTerminal = func() bool { return true }
	stdin = strings.NewReader("no\n")
	code, _, errs = e.run("orders", "erase", "pi_erase")
	stdinIsTerminal, stdin = func() bool { return false }, nil
	if code != 1 || !strings.HasSuffix(errs, "Type 'yes' to erase: orderflow: erase not confirmed: nothing erased\n") {
		t.Errorf("declined at the prompt: exit %d, stderr %q; want 1 and nothing erased", code, errs)
	}
	if reqs := e.eraseRequests(); len(reqs) != 0 {
		t.Errorf("declined erase wrote %d erase request(s)", len(reqs))
	}

	// No processor confirms: the request stays, the command says so.
	code, _, errs = e.run("orders", "erase", "pi_erase", "--yes", "--wait", "1s")
	if code != 1 || !strings.Contains(errs, "no processor confirmed it") {
		t.Errorf("unconfirmed erase: exit %d, stderr %q", code, errs)
	}
	reqs := e.eraseRequests()
	if len(reqs) != 1 || reqs[0].Partition != 2 {
		t.Fatalf("erase requests on orders = %v, want one on partition 2 (the state's)", reqs)
	}
	env, err := topics.DecodeEnvelope(reqs[0].Value)
	if err != nil || env.EventType != processor.EventEraseRequested || env.Key != "pi_erase" || strings.Contains(string(reqs[0].Value), buyerEmail) {
		t.Errorf("erase request = %s (%v)", reqs[0].Value, err)
	}

	// What a processor does: once the second request is on `orders`, it
	// writes the erasure marker. Written on that observable condition, not
	// after a delay: a marker written before the command has read the
	// state's end would be one the command is not waiting for.
	marker := make(chan error, 1)
	go func() {
		marker <- e.markErasedAfterRequests("pi_erase", 2, 2)
	}()
	code, out, errs := e.run("orders", "erase", "pi_erase", "--yes", "--wait", "30s")
	if code != 0 || !strings.Contains(out, "order pi_erase erased: erasure marker at "+e.names.State+" 2/") {
		t.Errorf("confirmed erase: exit %d\n%s%s", code, out, errs)
	}
	// The label file stays, and the result that named it is erased: the
	// command names it.
	if want := "not erased: the shipping label file /srv/labels/pi_erase_label-00370712345.pdf, and the order's records on " + e.names.Orders + " (7 days) and " + e.names.DLQ + " (30 days)\n"; !strings.HasSuffix(out, want) {
		t.Errorf("confirmed erase: output\n%s\nwant it to end in\n%s", out, want)
	}
	if err := <-marker; err != nil {
		t.Fatal(err)
	}
	code, out, _ = e.run("orders", "erase", "pi_erase", "--yes")
	if code != 0 || !strings.Contains(out, "order pi_erase was already erased at ") {
		t.Errorf("second erase: exit %d\n%s", code, out)
	}
	code, out, _ = e.run("orders", "show", "pi_erase")
	// No step is listed: the marker keeps none, and "pending" would say
	// they never ran.
	if code != 0 || !strings.Contains(out, "status   erased") || strings.Contains(out, "Öberg") || strings.Contains(out, "pending") {
		t.Errorf("show of an erased order: exit %d\n%s", code, out)
	}
}

// eraseRequests returns the erase requests on `orders`.
func (e *dlqEnv) eraseRequests() []*kgo.Record {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers), kgo.ConsumeTopics(e.names.Orders),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(e.ctx, 3*time.Second)
	defer cancel()
	var out []*kgo.Record
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if h, _ := recHeader(r, topics.HeaderEventType); h == processor.EventEraseRequested {
				out = append(out, r)
			}
		})
		if len(out) > 0 {
			break
		}
	}
	return out
}

// markErasedAfterRequests plays the processor of partition: when the
// n-th erase request for id is on that partition of `orders`, it writes
// the erasure marker to `orders.state`.
func (e *dlqEnv) markErasedAfterRequests(id string, partition int32, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{e.names.Orders: {partition: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	seen := 0
	for seen < n {
		fs := cl.PollFetches(e.ctx)
		if e.ctx.Err() != nil {
			return fmt.Errorf("saw %d of %d erase requests for %s", seen, n, id)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if h, _ := recHeader(r, topics.HeaderEventType); h == processor.EventEraseRequested && string(r.Key) == id {
				seen++
			}
		})
	}
	erasedAt := time.Now().UTC()
	b, err := (&processor.State{OrderID: id, Status: processor.StatusErased, ErasedAt: &erasedAt}).Encode()
	if err != nil {
		return err
	}
	return cl.ProduceSync(e.ctx, &kgo.Record{Topic: e.names.State, Partition: partition, Key: []byte(id), Value: b}).FirstErr()
}

func recHeader(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}
