package topics_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/test/testenv"
	"github.com/orderflow/orderflow/topics"
)

func admin(t *testing.T, brokers string) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

func TestCreateAndCheck(t *testing.T) {
	brokers := testenv.Kafka(t)
	_, adm := admin(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names := topics.New(testenv.Prefix(t))
	specs := names.Specs(4)

	diffs, err := topics.Check(ctx, adm, specs)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 4 {
		t.Fatalf("before create: %v, want 4 missing topics", diffs)
	}
	for _, d := range diffs {
		if d.Reason != "missing" {
			t.Errorf("before create: %v", d)
		}
	}

	created, err := topics.Create(ctx, adm, specs, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 4 {
		t.Fatalf("created %v", created)
	}
	again, err := topics.Create(ctx, adm, specs, 1)
	if err != nil || len(again) != 0 {
		t.Fatalf("second create: created %v, err %v; want nothing, no error", again, err)
	}
	diffs, err = topics.Check(ctx, adm, specs)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 0 {
		t.Fatalf("after create: %v", diffs)
	}
}

func TestCheckNamesEveryDifference(t *testing.T) {
	brokers := testenv.Kafka(t)
	_, adm := admin(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names := topics.New(testenv.Prefix(t))
	// orders with 4 partitions, orders.state with 2 and the wrong cleanup
	// policy, orders.dlq missing.
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, names.Orders); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("delete")}, names.State); err != nil {
		t.Fatal(err)
	}
	for {
		details, err := adm.ListTopics(ctx, names.Orders, names.State)
		if err == nil && details[names.Orders].Err == nil && details[names.State].Err == nil &&
			len(details[names.Orders].Partitions) == 4 && len(details[names.State].Partitions) == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("created topics never became visible")
		}
		time.Sleep(100 * time.Millisecond)
	}
	diffs, err := topics.Check(ctx, adm, names.Specs(4))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range diffs {
		got = append(got, d.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		names.DLQ + ": missing",
		names.Audit + ": missing",
		names.State + ": not co-partitioned with " + names.Orders,
		names.State + ": has 2 partitions, want 4",
		names.State + `: cleanup.policy is "delete", want "compact"`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("differences do not name %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, names.Orders+":") {
		t.Errorf("orders is right but reported:\n%s", all)
	}
}

func TestEnvelopeThroughKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		names.Orders: {0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart(), 2: kgo.NewOffset().AtStart()},
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	in := topics.Envelope{
		EventID: "evt_rt", EventType: "checkout.session.completed", Key: "pi_rt", ObjectID: "cs_rt",
		ReceivedAt: time.Now().UTC().Truncate(time.Millisecond),
		Event:      json.RawMessage(`{"id":"evt_rt","data":{"object":{"id":"cs_rt","customer_details":{"name":"Jürgen 田中"}}}}`),
	}
	val, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	rec := &kgo.Record{Topic: names.Orders, Key: []byte(in.Key), Value: val,
		Headers: []kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte(in.EventID)}}}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatal("no record consumed")
		}
		var got *kgo.Record
		fs.EachRecord(func(r *kgo.Record) { got = r })
		if got == nil {
			continue
		}
		out, err := topics.DecodeEnvelope(got.Value)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Key) != "pi_rt" || out.EventID != in.EventID || string(out.Event) != string(in.Event) || !out.ReceivedAt.Equal(in.ReceivedAt) {
			t.Fatalf("consumed key %q envelope %+v, want %+v", got.Key, out, in)
		}
		if len(got.Headers) != 1 || string(got.Headers[0].Value) != "evt_rt" {
			t.Fatalf("headers = %v", got.Headers)
		}
		return
	}
}
