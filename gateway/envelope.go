package gateway

import (
	"strconv"
	"time"

	"github.com/orderflow/orderflow/topics"
)

// encodeEnvelope returns the wire form of e exactly as topics.Envelope.Encode
// writes it (same fields, names, order and omitempty rules), except that
// e.Event is spliced in as received instead of being validated and compacted
// a second time: the caller has just decoded it as a JSON object, and on a
// busy gateway those two extra passes over every body cost more than the
// rest of the request. e.Event must be valid JSON; DecodeEnvelope reads the
// result like any other envelope (TestEncodeEnvelopeMatchesTopics keeps the
// two encoders in step).
func encodeEnvelope(e topics.Envelope) []byte {
	if e.Version == 0 {
		e.Version = topics.EnvelopeVersion
	}
	b := make([]byte, 0, len(e.Event)+len(e.EventID)+len(e.EventType)+len(e.APIVersion)+len(e.Key)+len(e.ObjectID)+192)
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(e.Version), 10)
	b = append(b, `,"event_id":`...)
	b = appendString(b, e.EventID)
	b = append(b, `,"event_type":`...)
	b = appendString(b, e.EventType)
	if e.APIVersion != "" {
		b = append(b, `,"api_version":`...)
		b = appendString(b, e.APIVersion)
	}
	b = append(b, `,"created":`...)
	b = strconv.AppendInt(b, e.Created, 10)
	b = append(b, `,"received_at":"`...)
	b = e.ReceivedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","key":`...)
	b = appendString(b, e.Key)
	b = append(b, `,"object_id":`...)
	b = appendString(b, e.ObjectID)
	b = append(b, `,"event":`...)
	b = append(b, e.Event...)
	return append(b, '}')
}

// appendString appends s as a JSON string, escaping as encoding/json does
// with HTML escaping off.
func appendString(b []byte, s string) []byte { return topics.AppendString(b, s, false) }
