package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/testenv"
	"github.com/orderflow/orderflow/topics"
)

func init() {
	// Tests never run on a terminal, whatever runs them.
	stdinIsTerminal = func() bool { return false }
}

// dlqEnv is a fresh set of topics (3 partitions) and a producer writing to
// explicit partitions.
type dlqEnv struct {
	t       *testing.T
	brokers string
	names   topics.Names
	prod    *kgo.Client
	ctx     context.Context
}

func newDLQEnv(t *testing.T) *dlqEnv {
	t.Helper()
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers, 3)
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return &dlqEnv{t: t, brokers: brokers, names: names, prod: prod, ctx: ctx}
}

// run runs the CLI against the env's topics.
func (e *dlqEnv) run(args ...string) (int, string, string) {
	e.t.Helper()
	return orderflow(e.t, append(args, "--brokers", e.brokers, "--topic-prefix", e.names.Prefix)...)
}

func (e *dlqEnv) produce(rs ...*kgo.Record) {
	e.t.Helper()
	if err := e.prod.ProduceSync(e.ctx, rs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// dl describes a dead letter to write.
type dl struct {
	key         string
	partition   int32
	step, class string
	replays     int
	failedAgo   time.Duration
	err         string
	eventType   string // checkout.session.completed unless set
}

const buyerEmail = "asa.oberg@example.com"

func (e *dlqEnv) deadLetter(d dl) *kgo.Record {
	e.t.Helper()
	if d.eventType == "" {
		d.eventType = "checkout.session.completed"
	}
	env := topics.Envelope{EventID: "evt_" + d.key, EventType: d.eventType, Key: d.key, ObjectID: "cs_" + d.key,
		ReceivedAt: time.Now().UTC().Truncate(time.Second),
		Event: json.RawMessage(`{"id":"evt_` + d.key + `","type":"checkout.session.completed","data":{"object":{"id":"cs_` + d.key +
			`","amount_total":4200,"customer_details":{"email":"` + buyerEmail + `","name":"Åsa Öberg","phone":"+358401234567"},` +
			`"shipping_details":{"name":"Åsa Öberg","address":{"line1":"Kauppakatu 1","city":"Oulu","postal_code":"90100","country":"FI"}}}}}`)}
	v, err := env.Encode()
	if err != nil {
		e.t.Fatal(err)
	}
	at := time.Now().Add(-d.failedAgo).UTC()
	if d.err == "" {
		d.err = d.step + ": provider said no"
	}
	h := func(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }
	return &kgo.Record{Topic: e.names.DLQ, Partition: d.partition, Key: []byte(d.key), Value: v, Headers: []kgo.RecordHeader{
		h(topics.HeaderEventID, env.EventID), h(topics.HeaderEventType, env.EventType), h(topics.HeaderTraceParent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
		h(topics.HeaderDLQTopic, e.names.Orders), h(topics.HeaderDLQPartition, strconv.Itoa(int(d.partition))), h(topics.HeaderDLQOffset, "17"),
		h(topics.HeaderDLQStep, d.step), h(topics.HeaderDLQClass, d.class), h(topics.HeaderDLQError, d.err),
		h(topics.HeaderDLQAttempts, "3"), h(topics.HeaderDLQFirstFailure, at.Add(-time.Minute).Format(time.RFC3339)),
		h(topics.HeaderDLQLastFailure, at.Format(time.RFC3339)), h(topics.HeaderDLQReplayCount, strconv.Itoa(d.replays)),
	}}
}

// state writes an order state to the partition of its order's dead letters.
func (e *dlqEnv) state(partition int32, st *processor.State) *kgo.Record {
	e.t.Helper()
	b, err := st.Encode()
	if err != nil {
		e.t.Fatal(err)
	}
	return &kgo.Record{Topic: e.names.State, Partition: partition, Key: []byte(st.OrderID), Value: b}
}

// ordersEnd is the total end offset of `orders`: how many records it holds.
func (e *dlqEnv) ordersEnd() int64 {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(e.ctx, e.names.Orders)
	if err != nil {
		e.t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// orders reads every record of `orders` (n of them).
func (e *dlqEnv) orders(n int) []*kgo.Record {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers), kgo.ConsumeTopics(e.names.Orders), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(e.ctx)
		if e.ctx.Err() != nil {
			e.t.Fatalf("read %d of %d records of %s", len(out), n, e.names.Orders)
		}
		out = append(out, fs.Records()...)
	}
	slices.SortFunc(out, func(a, b *kgo.Record) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	return out
}

func headerMap(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

func (e *dlqEnv) seedMixed() {
	e.produce(
		e.deadLetter(dl{key: "pi_a", partition: 0, step: "crm", class: "permanent", failedAgo: 3 * time.Hour, err: "zoho: 400 INVALID_DATA " + strings.Repeat("detail ", 30)}),
		e.deadLetter(dl{key: "pi_b", partition: 1, step: "shipping", class: "exhausted", failedAgo: 30 * time.Minute, replays: 1}),
		e.deadLetter(dl{key: "pi_b", partition: 1, step: "shipping", class: "parked", failedAgo: 20 * time.Minute, replays: 1}),
		e.deadLetter(dl{key: "pi_c", partition: 2, step: "email", class: "permanent", failedAgo: 10 * time.Minute}),
	)
}

func TestDLQList(t *testing.T) {
	e := newDLQEnv(t)
	code, out, errs := e.run("dlq", "list")
	if code != 0 || !strings.Contains(out, "0 dead letter(s)") {
		t.Fatalf("list of an empty DLQ: exit %d\n%s%s", code, out, errs)
	}
	e.seedMixed()

	code, out, errs = e.run("dlq", "list", "--width", "30")
	if code != 0 {
		t.Fatalf("list: exit %d\n%s", code, errs)
	}
	for _, want := range []string{"P/OFFSET", "0/0", "1/0", "1/1", "2/0", "pi_a", "pi_b", "pi_c", "zoho: 400 INVALID_DATA detail…",
		"4 dead letter(s)", "by step:  crm 1, shipping 2, email 1", "by class: permanent 2, exhausted 1, parked 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, buyerEmail) {
		t.Errorf("list shows customer data:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		want []string // sources listed
	}{
		{[]string{"--order", "pi_b"}, []string{"1/0", "1/1"}},
		{[]string{"--order", "pi_a,pi_c"}, []string{"0/0", "2/0"}},
		{[]string{"--step", "shipping"}, []string{"1/0", "1/1"}},
		{[]string{"--class", "permanent"}, []string{"0/0", "2/0"}},
		{[]string{"--class", "parked,exhausted", "--step", "shipping"}, []string{"1/0", "1/1"}},
		{[]string{"--since", "1h"}, []string{"1/0", "1/1", "2/0"}},
		{[]string{"--until", "1h"}, []string{"0/0"}},
		{[]string{"--since", "25m", "--until", "15m"}, []string{"1/1"}},
		{[]string{"--since", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, []string{"1/0", "1/1", "2/0"}},
		{[]string{"--order", "pi_none"}, nil},
	} {
		code, out, errs := e.run(append([]string{"dlq", "list", "--json"}, tc.args...)...)
		if code != 0 {
			t.Errorf("list --json %v: exit %d\n%s", tc.args, code, errs)
			continue
		}
		var got []struct {
			Source, OrderID, Step, Class, Error, EventID string
			Attempts, ReplayCount                        int
			LastFailure                                  *time.Time `json:"last_failure"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Errorf("list --json %v: %v\n%s", tc.args, err, out)
			continue
		}
		var srcs []string
		for _, g := range got {
			srcs = append(srcs, g.Source)
		}
		if !slices.Equal(srcs, tc.want) {
			t.Errorf("list --json %v = %v, want %v", tc.args, srcs, tc.want)
		}
		if strings.Contains(out, buyerEmail) || strings.Contains(out, "Öberg") {
			t.Errorf("list --json shows customer data:\n%s", out)
		}
	}

	_, out, _ = e.run("dlq", "list", "--json", "--order", "pi_b")
	var one []map[string]any
	if err := json.Unmarshal([]byte(out), &one); err != nil || len(one) != 2 {
		t.Fatalf("list --json --order pi_b: %v\n%s", err, out)
	}
	for k, want := range map[string]any{"order_id": "pi_b", "step": "shipping", "class": "exhausted", "attempts": 3.0,
		"replay_count": 1.0, "event_id": "evt_pi_b", "original_topic": e.names.Orders, "original_offset": 17.0} {
		if one[0][k] != want {
			t.Errorf("JSON %s = %v, want %v", k, one[0][k], want)
		}
	}
}

func TestDLQShow(t *testing.T) {
	e := newDLQEnv(t)
	e.seedMixed()
	leaks := []string{buyerEmail, "Öberg", "+358401234567", "Kauppakatu", "90100", "Oulu"}

	code, out, errs := e.run("dlq", "show", "1/0")
	if code != 0 {
		t.Fatalf("show 1/0: exit %d\n%s", code, errs)
	}
	for _, want := range []string{"dead letter 1/0 on " + e.names.DLQ, "pi_b", "shipping", "exhausted", "replay count", "evt_pi_b",
		"checkout.session.completed", `"amount_total": 4200`, `"email": "***"`, "customer data masked",
		topics.HeaderTraceParent, topics.HeaderDLQFirstFailure, topics.HeaderDLQOffset} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	for _, leak := range leaks {
		if strings.Contains(out, leak) {
			t.Errorf("show without --reveal shows %q:\n%s", leak, out)
		}
	}

	code, out, _ = e.run("dlq", "show", "--reveal", "1/0")
	if code != 0 {
		t.Fatalf("show --reveal: exit %d", code)
	}
	for _, want := range leaks {
		if !strings.Contains(out, want) {
			t.Errorf("show --reveal lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = e.run("dlq", "show", "pi_b")
	if code != 0 || !strings.Contains(out, "dead letter 1/0") || !strings.Contains(out, "dead letter 1/1") || strings.Contains(out, "pi_a") {
		t.Errorf("show by order: exit %d\n%s", code, out)
	}

	for _, tc := range []struct{ arg, want string }{
		{"2/5", "no dead letter at 2/5"},
		{"9/0", "no dead letter at 9/0"},
		{"pi_none", "order pi_none has no dead letters"},
	} {
		code, _, errs := e.run("dlq", "show", tc.arg)
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("show %s: exit %d, stderr %q; want 1 and %q", tc.arg, code, errs, tc.want)
		}
	}
}

// TestDLQReplay: a dry run changes nothing; a replay re-produces each dead
// letter with its key, value, original headers and the replay headers, in
// order, skipping those already replayed and orders already completed; once
// the processor has recorded the replays, a second replay sends nothing.
func TestDLQReplay(t *testing.T) {
	e := newDLQEnv(t)
	e.seedMixed()
	e.produce(
		e.deadLetter(dl{key: "pi_done", partition: 2, step: "invoice", class: "exhausted"}), // 2/1
		e.deadLetter(dl{key: "pi_again", partition: 0, step: "crm", class: "exhausted"}),    // 0/1
		e.state(2, &processor.State{OrderID: "pi_done", Status: processor.StatusCompleted}), // finished by other means
		e.state(0, &processor.State{OrderID: "pi_again", Status: processor.StatusInProgress, // its replay was applied
			Replays: []string{"0/1"}}),
		e.state(1, &processor.State{OrderID: "pi_b", Status: processor.StatusParked, Replays: []string{"1/99"}}),
	)

	code, out, errs := e.run("dlq", "replay", "--all", "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, errs)
	}
	for _, want := range []string{"0/0", "skip: already replayed", "skip: already completed",
		"would replay 4 to " + e.names.Orders + ", skip 2 (already replayed 1, already completed 1); nothing was changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if n := e.ordersEnd(); n != 0 {
		t.Fatalf("dry run wrote %d records to orders", n)
	}
	// Replaying pi_b's parked event without its earlier dead letter would
	// reorder its events: the tool warns.
	code, out, errs = e.run("dlq", "replay", "--class", "parked", "--dry-run")
	if code != 0 || !strings.Contains(errs, "warning: order pi_b has an earlier dead letter 1/0 (step shipping, class exhausted)") ||
		!strings.Contains(out, "would replay 1") {
		t.Errorf("dry run of a later dead letter alone: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = e.run("dlq", "replay", "--step", "shipping", "--dry-run")
	if code != 0 || strings.Contains(errs, "warning") {
		t.Errorf("dry run of all of pi_b's dead letters warns: exit %d\n%s", code, errs)
	}

	code, out, errs = e.run("dlq", "replay", "--all", "--yes", "--rate", "200")
	if code != 0 || !strings.Contains(out, "replayed 4, skipped 2 (already replayed 1, already completed 1), failed 0") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errs)
	}
	recs := e.orders(4)
	type seen struct {
		partition int32
		key       string
		replay    string
		source    string
	}
	var got []seen
	dlqByKey := map[string][]byte{}
	for _, r := range recs {
		h := headerMap(r)
		got = append(got, seen{r.Partition, string(r.Key), h[topics.HeaderReplay], h[topics.HeaderReplaySource]})
		for k := range h {
			if strings.HasPrefix(k, "orderflow-dlq-") {
				t.Errorf("replayed record %s carries DLQ header %s", h[topics.HeaderReplaySource], k)
			}
		}
		if h[topics.HeaderEventID] != "evt_"+string(r.Key) || h[topics.HeaderTraceParent] == "" {
			t.Errorf("replayed record lost its original headers: %v", h)
		}
		env, err := topics.DecodeEnvelope(r.Value)
		if err != nil || env.Key != string(r.Key) {
			t.Errorf("replayed value %s: %v", r.Value, err)
		}
		dlqByKey[string(r.Key)] = r.Value
	}
	want := []seen{
		{0, "pi_a", "1", "0/0"},
		{1, "pi_b", "2", "1/0"}, // replay count of the dead letter + 1, in DLQ order
		{1, "pi_b", "2", "1/1"},
		{2, "pi_c", "1", "2/0"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("replayed\n%v\nwant\n%v", got, want)
	}

	// The processor applies the replays: it records each source.
	e.produce(
		e.state(0, &processor.State{OrderID: "pi_a", Status: processor.StatusCompleted, Replays: []string{"0/0"}}),
		e.state(1, &processor.State{OrderID: "pi_b", Status: processor.StatusInProgress, Replays: []string{"1/0", "1/1"}}),
		e.state(2, &processor.State{OrderID: "pi_c", Status: processor.StatusInProgress, Replays: []string{"2/0"}}),
	)
	code, out, errs = e.run("dlq", "replay", "--all", "--yes")
	if code != 0 || !strings.Contains(out, "replayed 0, skipped 6 (already replayed 5, already completed 1), failed 0") {
		t.Fatalf("second replay: exit %d\n%s%s", code, out, errs)
	}
	if n := e.ordersEnd(); n != 4 {
		t.Fatalf("second replay: orders holds %d records, want 4", n)
	}

	code, out, _ = e.run("dlq", "replay", "--order", "pi_none", "--yes")
	if code != 0 || !strings.Contains(out, "no dead letters match") {
		t.Errorf("replay of nothing: exit %d\n%s", code, out)
	}
}

func TestDLQReplayRate(t *testing.T) {
	e := newDLQEnv(t)
	var rs []*kgo.Record
	for i := range 10 {
		rs = append(rs, e.deadLetter(dl{key: fmt.Sprintf("pi_r%d", i), partition: int32(i % 3), step: "crm", class: "exhausted"}))
	}
	e.produce(rs...)
	// --timeout bounds the reads, not the sending: 10 records at 8/s take
	// longer than it.
	code, out, errs := e.run("dlq", "replay", "--step", "crm", "--yes", "--rate", "8", "--timeout", "1s")
	if code != 0 || !strings.Contains(out, "replayed 10,") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errs)
	}
	recs := e.orders(10)
	first, last := recs[0].Timestamp, recs[0].Timestamp
	for _, r := range recs {
		if r.Timestamp.Before(first) {
			first = r.Timestamp
		}
		if r.Timestamp.After(last) {
			last = r.Timestamp
		}
	}
	if span := last.Sub(first); span < time.Second {
		t.Errorf("10 records at --rate 8 were produced within %v, want at least ~1.1s", span)
	}
}

func TestDLQReplayConfirmation(t *testing.T) {
	e := newDLQEnv(t)
	e.produce(e.deadLetter(dl{key: "pi_q", partition: 0, step: "crm", class: "permanent"}))
	stdinIsTerminal = func() bool { return true }
	defer func() { stdinIsTerminal = func() bool { return false }; stdin = nil }()

	stdin = strings.NewReader("n\n")
	code, _, errs := e.run("dlq", "replay", "--order", "pi_q")
	if code != 1 || !strings.Contains(errs, "Replay 1 dead letter(s)") || !strings.Contains(errs, "replay cancelled; nothing was sent") {
		t.Fatalf("answered no: exit %d\n%s", code, errs)
	}
	if n := e.ordersEnd(); n != 0 {
		t.Fatalf("answered no, yet %d records were written", n)
	}
	stdin = strings.NewReader("y\n")
	code, out, errs := e.run("dlq", "replay", "--order", "pi_q")
	if code != 0 || !strings.Contains(out, "replayed 1,") {
		t.Fatalf("answered yes: exit %d\n%s%s", code, out, errs)
	}
	if n := e.ordersEnd(); n != 1 {
		t.Fatalf("answered yes: %d records written, want 1", n)
	}
}

// TestDLQUsageErrors: bad invocations exit 2 with a one-line reason, before
// connecting to Kafka (the brokers given do not exist).
func TestDLQUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq"}, "want 'list', 'show' or 'replay'"},
		{[]string{"dlq", "purge"}, `unknown subcommand "purge"`},
		{[]string{"dlq", "list", "--since", "yesterday"}, `--since: time "yesterday": want a duration`},
		{[]string{"dlq", "list", "--until", "2026-13-01"}, `--until: time "2026-13-01"`},
		{[]string{"dlq", "list", "--since", "1h", "--until", "2h"}, "is not before"},
		{[]string{"dlq", "list", "--class", "sad"}, `orderflow: --class: unknown class "sad" (want one of permanent, exhausted, parked, corrupt)`},
		{[]string{"dlq", "list", "--step", "fax"}, `unknown step "fax"`},
		{[]string{"dlq", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"dlq", "list", "--width", "-1"}, "--width"},
		{[]string{"dlq", "list", "--nope"}, "unknown flag --nope. See orderflow dlq list --help"},
		{[]string{"dlq", "show"}, "want one <partition>/<offset> or <order-id>"},
		{[]string{"dlq", "show", "1/x"}, `bad partition/offset "1/x": offset must be a number`},
		{[]string{"dlq", "show", "a/1"}, `bad partition/offset "a/1": partition must be a number`},
		{[]string{"dlq", "show", "1/2", "pi_1"}, "want one"},
		{[]string{"dlq", "replay"}, "say what to replay with --order, --step, --class, --since or --until, or pass --all"},
		{[]string{"dlq", "replay", "--all", "--step", "crm"}, "--all cannot be combined with filters"},
		{[]string{"dlq", "replay", "--all", "--rate", "0"}, "--rate 0: want a number of records per second above 0 and at most 1000"},
		{[]string{"dlq", "replay", "--class", "bogus", "--yes"}, `orderflow: --class: unknown class "bogus"`},
		{[]string{"dlq", "replay", "--all"}, "not on a terminal, cannot ask for confirmation: pass --yes"},
		{[]string{"orders"}, "want 'show <order-id>', 'erase <order-id>', 'list' or 'search <term>'"},
		{[]string{"orders", "lst"}, `unknown subcommand "lst"`},
		{[]string{"orders", "search"}, "want one search term"},
		{[]string{"orders", "list", "--status", "lost"}, `unknown status "lost"`},
		{[]string{"orders", "list", "--step", "fax"}, `unknown step "fax"`},
		{[]string{"orders", "list", "--since", "soon"}, `since: time "soon"`},
		{[]string{"orders", "list", "--limit", "0"}, "--limit must be from 1 to 1000"},
		{[]string{"dlq", "list", "--status", "closed"}, `unknown status "closed"`},
		{[]string{"orders", "show"}, "want one order id"},
		{[]string{"orders", "show", "pi_1", "pi_2"}, "want one order id"},
	} {
		code, out, errs := orderflow(t, append(tc.args, "--brokers", "127.0.0.1:1")...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
		if out != "" {
			t.Errorf("%v: wrote to stdout: %q", tc.args, out)
		}
		if lines := strings.Count(strings.TrimSpace(lastLine(errs)), "\n"); lines != 0 {
			t.Errorf("%v: reason spans lines: %q", tc.args, errs)
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}

// The dead letters of an erased order stand erased, not open: the
// processor ignores the order's events, so a replay skips them and says
// why, and `--status open` leaves them out.
func TestDLQErasedOrder(t *testing.T) {
	e := newDLQEnv(t)
	erasedAt := time.Now().UTC()
	e.produce(
		e.deadLetter(dl{key: "pi_gone", partition: 1, step: "shipping", class: "permanent"}), // 1/0
		e.state(1, &processor.State{OrderID: "pi_gone", Status: processor.StatusErased, ErasedAt: &erasedAt}),
	)
	code, out, errs := e.run("dlq", "list")
	if code != 0 || !strings.Contains(out, "by status: erased 1") {
		t.Fatalf("list: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs = e.run("dlq", "list", "--status", "open"); code != 0 || !strings.Contains(out, "0 dead letter(s)") {
		t.Fatalf("list --status open: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = e.run("dlq", "replay", "--all", "--dry-run")
	if code != 0 || !strings.Contains(out, "skip: order erased") ||
		!strings.Contains(out, "would replay 0 to "+e.names.Orders+", skip 1 (already replayed 0, already completed 0, order erased 1)") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = e.run("dlq", "replay", "--all", "--yes")
	if code != 0 || !strings.Contains(out, "replayed 0, skipped 1 (already replayed 0, already completed 0, order erased 1), failed 0") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errs)
	}
	if n := e.ordersEnd(); n != 0 {
		t.Fatalf("replay of an erased order's dead letter wrote %d records to orders", n)
	}
}

// A refund parked behind an order's failure is still to be replayed once
// the order completed (its failed step replayed alone): it stays open, and
// a replay of the order sends it, not the letter the completion resolved.
func TestDLQParkedRefundOfACompletedOrder(t *testing.T) {
	e := newDLQEnv(t)
	failed := e.deadLetter(dl{key: "pi_ref", partition: 1, step: "shipping", class: "exhausted"})
	refund := e.deadLetter(dl{key: "pi_ref", partition: 1, step: "shipping", class: "parked", eventType: processor.EventChargeRefunded})
	e.produce(failed, refund)
	at := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)
	// The shipping letter (1/0) was replayed alone and the order completed.
	e.produce(e.state(1, &processor.State{OrderID: "pi_ref", Status: processor.StatusCompleted, CreatedAt: at, UpdatedAt: at, Replays: []string{"1/0"}}))

	code, out, errs := e.run("dlq", "list", "--status", "open")
	if code != 0 || !strings.Contains(out, "1/1") || strings.Contains(out, "1/0 ") {
		t.Fatalf("open letters: exit %d\n%s%s", code, out, errs)
	}
	before := e.ordersEnd()
	code, out, errs = e.run("dlq", "replay", "--order", "pi_ref", "--yes")
	if code != 0 || !strings.Contains(out, "replayed 1, skipped 1 (already replayed 1, already completed 0), failed 0") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errs)
	}
	if n := e.ordersEnd() - before; n != 1 {
		t.Fatalf("%d records written to orders, want 1 (the refund)", n)
	}
	recs := e.orders(1)
	if h, _ := recHeader(recs[len(recs)-1], topics.HeaderEventType); h != processor.EventChargeRefunded {
		t.Errorf("replayed %q, want the refund", h)
	}
}

// dlq list|replay --step names the webhook steps too.
func TestDlqStepHelpNamesWebhooks(t *testing.T) {
	for _, cmd := range []string{"list", "replay"} {
		var stdout, stderr bytes.Buffer
		run(context.Background(), []string{"dlq", cmd, "--help"}, &stdout, &stderr)
		if want := "details, crm, production_log, shipping, invoice, email, webhook:<name>)"; !strings.Contains(stdout.String(), want) {
			t.Errorf("dlq %s --help: no %q in\n%s", cmd, want, stdout.String())
		}
	}
}
