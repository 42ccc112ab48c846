package topics

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

type jsonProbe struct {
	Name   string            `json:"name"`
	N      int64             `json:"n"`
	U      uint8             `json:"u"`
	F      float64           `json:"f"`
	P      *string           `json:"p"`
	L      []string          `json:"l"`
	M      map[string]string `json:"m"`
	Raw    json.RawMessage   `json:"raw"`
	Nested *jsonProbe        `json:"nested"`
}

// Unmarshal reads what encoding/json reads, and fails where it fails with
// its error.
func TestUnmarshalAgrees(t *testing.T) {
	for _, in := range []string{
		`{"name":"a","n":-3,"u":255,"f":1.5e3,"p":"x","l":["a","b"],"m":{"k":"v"},"raw":{"a": [1, 2]},"nested":{"name":"b"}}`,
		`{"NAME":"case","N":1}`,             // names matched without regard to case
		`{"name":"first","name":"second"}`,  // the last duplicate wins
		"{\"name\":\"bad \xff utf8\"}",      // invalid UTF-8 replaced
		`{"name":null,"l":null,"raw":null}`, // nulls
		`{"unknown":1,"name":"x"}`,          // unknown fields ignored
		`{"u":256}`,                         // out of range
		`{"n":1.5}`,                         // not an integer
		`{"name":1}`,                        // wrong type
		`{"name":"x"`,                       // truncated
		`{"name":"x"} trailing`,             // trailing data
		`[]`, `null`, ``, `"s"`,
		`{"raw":  {"spaced" :  true}  }`,
	} {
		var want, got jsonProbe
		werr := json.Unmarshal([]byte(in), &want)
		gerr := Unmarshal([]byte(in), &got)
		if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
			t.Errorf("%q: error %v, encoding/json's %v", in, gerr, werr)
			continue
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %+v, encoding/json read %+v", in, got, want)
		}
	}
}

// FuzzUnmarshalAgrees holds Unmarshal to encoding/json on envelopes.
func FuzzUnmarshalAgrees(f *testing.F) {
	f.Add([]byte(`{"v":1,"event_id":"evt_1","event_type":"payment_intent.succeeded","key":"pi_1","event":{"id":"evt_1"}}`))
	f.Add([]byte(`{"V":1,"EVENT_ID":"e","event":[1,2,{"a":null}],"received_at":"2026-01-02T03:04:05Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var want, got Envelope
		werr := json.Unmarshal(b, &want)
		gerr := Unmarshal(b, &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%q: error %v, encoding/json's %v", b, gerr, werr)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %+v, encoding/json read %+v", b, got, want)
		}
	})
}

// BenchmarkUnmarshal compares Unmarshal with encoding/json on an
// envelope of a Stripe event.
func BenchmarkUnmarshal(b *testing.B) {
	rec := []byte(`{"v":1,"event_id":"evt_3OKpiLJZ4cn2Yx0b1Q8sGz7t","event_type":"payment_intent.succeeded","key":"pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t","object_id":"pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t","created":1764331200,"received_at":"2026-11-28T12:00:00.123456789Z","event":{"id":"evt_3OKpiLJZ4cn2Yx0b1Q8sGz7t","object":"event","type":"payment_intent.succeeded","created":1764331200,"data":{"object":{"id":"pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t","object":"payment_intent","amount":12400,"amount_received":12400,"currency":"eur","status":"succeeded","metadata":{"order_ref":"A-1001","locale":"fi"},"latest_charge":"ch_3OKpiLJZ4cn2Yx0b1Q8sGz7t"}},"livemode":false,"pending_webhooks":1}}`)
	b.Run("v2-in-v1-mode", func(b *testing.B) {
		for range b.N {
			var e Envelope
			if err := Unmarshal(rec, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for range b.N {
			var e Envelope
			if err := json.Unmarshal(rec, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzAppendString holds AppendString to encoding/json, with HTML escaping
// on (Marshal) and off (an Encoder with SetEscapeHTML(false)).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"plain", "<a href=\"x\">&amp;</a>", "\x00\x01\b\f\n\r\t\x1f\x7f", "bad \xff\xfe utf8", "line\u2028para\u2029", "é 📦 \\ \""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s, true); string(got) != string(want) {
			t.Fatalf("%q with HTML escaped: %s, encoding/json %s", s, got, want)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		if got := AppendString(nil, s, false); string(got) != strings.TrimSuffix(buf.String(), "\n") {
			t.Fatalf("%q without HTML escaping: %s, encoding/json %s", s, got, buf.String())
		}
	})
}
