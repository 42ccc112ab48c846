package topics

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	event := json.RawMessage(`{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1","name":"Åsa <Öberg> 山田"}}}`)
	in := Envelope{
		EventID: "evt_1", EventType: "payment_intent.succeeded", APIVersion: "2023-10-16",
		Created: 1700000000, ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Key: "pi_1", ObjectID: "pi_1", Event: event,
	}
	b, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `\u003c`) {
		t.Errorf("encoded envelope escapes HTML: %s", b)
	}
	out, err := DecodeEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if out.Version != EnvelopeVersion {
		t.Errorf("version = %d, want %d", out.Version, EnvelopeVersion)
	}
	if string(out.Event) != string(event) {
		t.Errorf("event changed:\n got %s\nwant %s", out.Event, event)
	}
	out.Event, in.Event = nil, nil
	in.Version = EnvelopeVersion
	if !out.ReceivedAt.Equal(in.ReceivedAt) {
		t.Errorf("received_at = %v, want %v", out.ReceivedAt, in.ReceivedAt)
	}
	out.ReceivedAt, in.ReceivedAt = time.Time{}, time.Time{}
	if out.EventID != in.EventID || out.EventType != in.EventType || out.Key != in.Key || out.ObjectID != in.ObjectID || out.APIVersion != in.APIVersion || out.Created != in.Created {
		t.Errorf("decoded %+v, want %+v", out, in)
	}
}

func TestEnvelopeEncodeRejects(t *testing.T) {
	for name, e := range map[string]Envelope{
		"no id":     {EventType: "x", Key: "k", Event: json.RawMessage(`{}`)},
		"no type":   {EventID: "e", Key: "k", Event: json.RawMessage(`{}`)},
		"no key":    {EventID: "e", EventType: "x", Event: json.RawMessage(`{}`)},
		"no event":  {EventID: "e", EventType: "x", Key: "k"},
		"bad event": {EventID: "e", EventType: "x", Key: "k", Event: json.RawMessage(`{`)},
	} {
		if _, err := e.Encode(); !errors.Is(err, ErrEnvelopeInvalid) {
			t.Errorf("%s: err = %v, want ErrEnvelopeInvalid", name, err)
		}
	}
}

func TestDecodeEnvelopeRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		want error
	}{
		"not json":      {`{"v":1,`, ErrEnvelopeInvalid},
		"no version":    {`{"event_id":"e","event_type":"t","key":"k","event":{}}`, ErrEnvelopeInvalid},
		"newer version": {`{"v":99,"event_id":"e","event_type":"t","key":"k","event":{}}`, ErrEnvelopeVersion},
		"no key":        {`{"v":1,"event_id":"e","event_type":"t","event":{}}`, ErrEnvelopeInvalid},
		"no event":      {`{"v":1,"event_id":"e","event_type":"t","key":"k"}`, ErrEnvelopeInvalid},
		"wrong type":    {`{"v":"1","event_id":"e","event_type":"t","key":"k","event":{}}`, ErrEnvelopeInvalid},
	} {
		if _, err := DecodeEnvelope([]byte(tc.in)); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	good, _ := Envelope{EventID: "e", EventType: "t", Key: "k", Event: json.RawMessage(`{"a":1}`)}.Encode()
	f.Add(good)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEnvelope(b)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode and decode to the same ids.
		b2, err := e.Encode()
		if err != nil {
			if errors.Is(err, ErrEnvelopeInvalid) {
				return // e.g. event is valid JSON for Unmarshal but not json.Valid after RawMessage copy
			}
			t.Fatalf("re-encode: %v", err)
		}
		e2, err := DecodeEnvelope(b2)
		if err != nil || e2.EventID != e.EventID || e2.Key != e.Key {
			t.Fatalf("round trip changed the envelope: %v", err)
		}
	})
}

func TestSpecs(t *testing.T) {
	n := New("shop1.")
	if n.Orders != "shop1.orders" || n.State != "shop1.orders.state" || n.DLQ != "shop1.orders.dlq" || n.Audit != "shop1.orders.audit" {
		t.Fatalf("names = %+v", n)
	}
	specs := n.Specs(0)
	if len(specs) != 4 {
		t.Fatalf("%d specs", len(specs))
	}
	for _, s := range specs {
		want := int32(DefaultPartitions)
		if s.Name == n.Audit {
			want = 1
		}
		if s.Partitions != want {
			t.Errorf("%s: %d partitions", s.Name, s.Partitions)
		}
		if s.Configs["cleanup.policy"] != s.CleanupPolicy() {
			t.Errorf("%s: config cleanup.policy %q, CleanupPolicy %q", s.Name, s.Configs["cleanup.policy"], s.CleanupPolicy())
		}
	}
	if specs[1].CleanupPolicy() != "compact" || specs[1].CopartitionWith != n.Orders {
		t.Errorf("state spec = %+v", specs[1])
	}
	if a := specs[3]; a.Name != "shop1.orders.audit" || a.CleanupPolicy() != "delete" || a.Configs["retention.ms"] != "31536000000" {
		t.Errorf("audit spec = %+v, want delete with 365 days", a)
	}
}

func TestAuditRecord(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	in := AuditRecord{ID: "a1", At: at, Actor: "ops", Role: "operator", Action: AuditReplay, Target: "dead letters 0/4", Outcome: AuditOK, Result: "replayed 1"}
	b, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeAudit(b)
	if err != nil {
		t.Fatal(err)
	}
	if out.Version != 1 || out.Actor != "ops" || out.Action != "replay" || !out.At.Equal(at) || out.Result != "replayed 1" {
		t.Fatalf("round trip = %+v", out)
	}
	for _, bad := range []string{`{"v":1,"action":"replay","outcome":"ok"}`, `{"v":2,"id":"x","action":"replay","outcome":"ok"}`, `nope`} {
		if _, err := DecodeAudit([]byte(bad)); !errors.Is(err, ErrAuditInvalid) {
			t.Errorf("DecodeAudit(%s) = %v, want ErrAuditInvalid", bad, err)
		}
	}
	if _, err := (AuditRecord{Action: "replay"}).Encode(); !errors.Is(err, ErrAuditInvalid) {
		t.Errorf("Encode without id = %v", err)
	}
}
