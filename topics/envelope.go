package topics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// EnvelopeVersion is the current envelope format. Decode accepts this and
// every earlier version it knows; a newer one is an error, never a guess.
const EnvelopeVersion = 1

// Envelope is the value of a record on `orders` (and, unchanged, on
// `orders.dlq`). Event is the raw Stripe event JSON exactly as received, so
// nothing Stripe sent is lost and any field can be read later.
type Envelope struct {
	Version    int             `json:"v"`
	EventID    string          `json:"event_id"`
	EventType  string          `json:"event_type"`
	APIVersion string          `json:"api_version,omitempty"`
	Created    int64           `json:"created"`     // Stripe's event.created, unix seconds
	ReceivedAt time.Time       `json:"received_at"` // when the gateway accepted it
	Key        string          `json:"key"`         // the order key (PaymentIntent id)
	ObjectID   string          `json:"object_id"`   // data.object.id
	Event      json.RawMessage `json:"event"`
}

// Errors returned by DecodeEnvelope.
var (
	ErrEnvelopeVersion = errors.New("topics: unsupported envelope version")
	ErrEnvelopeInvalid = errors.New("topics: invalid envelope")
)

// Encode returns the envelope's wire form. Version is set to the current one
// when zero.
func (e Envelope) Encode() ([]byte, error) {
	if e.Version == 0 {
		e.Version = EnvelopeVersion
	}
	if e.EventID == "" || e.EventType == "" || e.Key == "" {
		return nil, fmt.Errorf("%w: event id, type and key are required", ErrEnvelopeInvalid)
	}
	if len(e.Event) == 0 || !json.Valid(e.Event) {
		return nil, fmt.Errorf("%w: event is not JSON", ErrEnvelopeInvalid)
	}
	var buf bytes.Buffer
	buf.Grow(len(e.Event) + 256)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// DecodeEnvelope parses a record value. It fails on anything that is not a
// complete envelope of a known version.
func DecodeEnvelope(b []byte) (Envelope, error) {
	var e Envelope
	if err := Unmarshal(b, &e); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrEnvelopeInvalid, err)
	}
	switch {
	case e.Version <= 0:
		return Envelope{}, fmt.Errorf("%w: missing version", ErrEnvelopeInvalid)
	case e.Version > EnvelopeVersion:
		return Envelope{}, fmt.Errorf("%w %d (this build reads up to %d)", ErrEnvelopeVersion, e.Version, EnvelopeVersion)
	case e.EventID == "" || e.EventType == "" || e.Key == "":
		return Envelope{}, fmt.Errorf("%w: event id, type and key are required", ErrEnvelopeInvalid)
	case len(e.Event) == 0:
		return Envelope{}, fmt.Errorf("%w: no event", ErrEnvelopeInvalid)
	}
	return e, nil
}
