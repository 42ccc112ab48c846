package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/orderflow/orderflow/topics"
)

func TestEncodeEnvelopeMatchesTopics(t *testing.T) {
	at := time.Date(2026, 11, 28, 10, 4, 5, 123456789, time.UTC)
	var envs []topics.Envelope
	for _, name := range []string{"payment_intent.succeeded", "checkout.session.completed", "charge.refunded"} {
		body := fixture(t, name)
		var compact bytes.Buffer
		if err := json.Compact(&compact, body); err != nil {
			t.Fatal(err)
		}
		e, key, err := parseEvent(body)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, topics.Envelope{EventID: e.ID, EventType: e.Type, APIVersion: e.APIVersion, Created: e.Created, ReceivedAt: at, Key: key, ObjectID: e.Data.Object.ID, Event: compact.Bytes()})
	}
	envs = append(envs,
		topics.Envelope{EventID: "evt_\"q\"\\\n\t\x01<&>", EventType: "x.y", Created: -5, ReceivedAt: at.Truncate(time.Second), Key: "k\u2028\u2029é", ObjectID: "o\xff", Event: json.RawMessage(`{"a":1}`)},
		topics.Envelope{Version: 1, EventID: "e", EventType: "t", APIVersion: "2025-03-31.basil", ReceivedAt: at.In(time.FixedZone("x", 3600)), Key: "k", ObjectID: "", Event: json.RawMessage(`{}`)},
	)
	for _, e := range envs {
		want, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeEnvelope(e); !bytes.Equal(got, want) {
			t.Errorf("encodeEnvelope differs from Envelope.Encode:\n got %s\nwant %s", got, want)
		}
	}
}

func TestEncodeEnvelopeKeepsEventAsReceived(t *testing.T) {
	body := fixture(t, "charge.refunded")
	e, key, _ := parseEvent(body)
	env := topics.Envelope{EventID: e.ID, EventType: e.Type, Created: e.Created, ReceivedAt: time.Now(), Key: key, ObjectID: e.Data.Object.ID, Event: body}
	dec, err := topics.DecodeEnvelope(encodeEnvelope(env))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dec.Event, bytes.TrimSpace(body)) || dec.Key != key || dec.EventID != e.ID {
		t.Errorf("decoded envelope lost data: %+v", dec)
	}
}
