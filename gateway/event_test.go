package gateway

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/orderflow/orderflow/topics"
)

func TestParseEventFixtures(t *testing.T) {
	tests := []struct {
		fixture, id, typ, key, object string
	}{
		{"payment_intent.succeeded", "evt_3OKpiLJZ4cn2Yx0b1c2Ld9Xa", "payment_intent.succeeded", "pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t", "pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t"},
		{"checkout.session.completed", "evt_1OKpjAJZ4cn2Yx0bT6vWn2Ke", "checkout.session.completed", "pi_3OKpjAJZ4cn2Yx0b0Hk2Lm4N", "cs_test_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ"},
		{"checkout.session.completed.no_payment_intent", "evt_1OKpkBJZ4cn2Yx0bR2s4T6uV", "checkout.session.completed", "cs_test_b9Z8y7X6w5V4u3T2s1R0qPoNmLkJiHgFeDcB", "cs_test_b9Z8y7X6w5V4u3T2s1R0qPoNmLkJiHgFeDcB"},
		{"charge.refunded", "evt_3OKpiLJZ4cn2Yx0b1W9xYz0A", "charge.refunded", "pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t", "ch_3OKpiLJZ4cn2Yx0b1F3cDk9q"},
		{"customer.created", "evt_1OKpiHJZ4cn2Yx0bM3n5P7qR", "customer.created", "cus_P8yNUxd3k2Qm1a", "cus_P8yNUxd3k2Qm1a"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			e, key, err := parseEvent(fixture(t, tt.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if e.ID != tt.id || e.Type != tt.typ || key != tt.key || e.Data.Object.ID != tt.object || e.APIVersion != "2023-10-16" || e.Created == 0 {
				t.Errorf("got id %q type %q key %q object %q api %q created %d", e.ID, e.Type, key, e.Data.Object.ID, e.APIVersion, e.Created)
			}
		})
	}
}

func TestOrderKey(t *testing.T) {
	tests := []struct {
		name, body, key string
	}{
		{"payment intent uses its own id", `{"id":"evt","type":"payment_intent.payment_failed","data":{"object":{"id":"pi_1","payment_intent":"pi_other"}}}`, "pi_1"},
		{"session with payment intent", `{"id":"evt","type":"checkout.session.async_payment_succeeded","data":{"object":{"id":"cs_1","payment_intent":"pi_2"}}}`, "pi_2"},
		{"session with expanded payment intent", `{"id":"evt","type":"checkout.session.completed","data":{"object":{"id":"cs_1","payment_intent":{"id":"pi_3","object":"payment_intent"}}}}`, "pi_3"},
		{"session with null payment intent", `{"id":"evt","type":"checkout.session.completed","data":{"object":{"id":"cs_1","payment_intent":null}}}`, "cs_1"},
		{"charge with payment intent", `{"id":"evt","type":"charge.refunded","data":{"object":{"id":"ch_1","payment_intent":"pi_4"}}}`, "pi_4"},
		{"legacy charge without payment intent", `{"id":"evt","type":"charge.refunded","data":{"object":{"id":"ch_1"}}}`, "ch_1"},
		{"payment intent of an odd type", `{"id":"evt","type":"charge.refunded","data":{"object":{"id":"ch_1","payment_intent":42}}}`, "ch_1"},
		{"ids of other characters are carried unchanged", `{"id":"evt_\u00e9\ud83d\ude00","type":"payment_intent.succeeded","data":{"object":{"id":"pi_\u00e9 \u202e1"}}}`, "pi_\u00e9 \u202e1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, key, err := parseEvent([]byte(tt.body))
			if err != nil || key != tt.key {
				t.Errorf("key %q err %v, want %q", key, err, tt.key)
			}
		})
	}
}

func TestParseEventErrors(t *testing.T) {
	tests := []struct {
		body string
		want error
	}{
		{``, ErrNotJSON},
		{`{`, ErrNotJSON},
		{`"event"`, ErrNotJSON},
		{`{"id":5}`, ErrNotJSON},
		{`{"id":"evt","object":"list"}`, ErrNotJSON},
		{`{"id":"evt","type":"x","data":{"object":"str"}}`, ErrNotJSON},
		{`{"type":"x","data":{"object":{"id":"a"}}}`, ErrNoEventID},
		{`{"id":"evt","data":{"object":{"id":"a"}}}`, ErrNoEventType},
		{`{"id":"evt","type":"x"}`, ErrNoEventObject},
		{`{"id":"evt","type":"x","data":{"object":{}}}`, ErrNoObjectID},
		{`null`, ErrNotJSON},
		{" \n null", ErrNotJSON},
		{`{"id":"  ","type":"x","data":{"object":{"id":"a"}}}`, ErrBlankEventID},
		{`{"id":"\t\n","type":"x","data":{"object":{"id":"a"}}}`, ErrBlankEventID},
		{"{\"id\":\"evt_\xff\",\"type\":\"x\",\"data\":{\"object\":{\"id\":\"a\"}}}", ErrEventIDNotUTF8},
		{`{"id":"evt_\ud800","type":"x","data":{"object":{"id":"a"}}}`, ErrEventIDNotUTF8},
		{`{"id":"evt_1\nX-Injected: 1","type":"x","data":{"object":{"id":"a"}}}`, ErrEventIDControl},
		{`{"id":"evt_1\u0000","type":"x","data":{"object":{"id":"a"}}}`, ErrEventIDControl},
		{`{"id":"evt","type":"x","data":{"object":{"id":" "}}}`, ErrBlankObjectID},
		{"{\"id\":\"evt\",\"type\":\"x\",\"data\":{\"object\":{\"id\":\"pi_\xfe\"}}}", ErrObjectIDNotUTF8},
		{`{"id":"evt","type":"payment_intent.succeeded","data":{"object":{"id":"A\nB"}}}`, ErrObjectIDControl},
		{`{"id":"evt","type":"charge.refunded","data":{"object":{"id":"ch_1\u007f"}}}`, ErrObjectIDControl},
		{`{"id":"evt","type":"charge.refunded","data":{"object":{"id":"ch_1\u0085"}}}`, ErrObjectIDControl},
		{`{"id":"evt","type":"charge.refunded","data":{"object":{"id":"ch_1","payment_intent":"pi_A\rB"}}}`, ErrPaymentIntentIDControl},
		// A blank payment_intent is refused, not replaced by the object's id.
		{`{"id":"evt","type":"checkout.session.completed","data":{"object":{"id":"cs_1","payment_intent":""}}}`, ErrBlankPaymentIntentID},
		{`{"id":"evt","type":"checkout.session.completed","data":{"object":{"id":"cs_1","payment_intent":"  "}}}`, ErrBlankPaymentIntentID},
		{`{"id":"evt","type":"checkout.session.completed","data":{"object":{"id":"cs_1","payment_intent":{"id":"\t"}}}}`, ErrBlankPaymentIntentID},
		{`{"id":"evt","type":"charge.refunded","data":{"object":{"id":"ch_1","payment_intent":" "}}}`, ErrBlankPaymentIntentID},
		{`{"id":"evt","type":"checkout.session.completed","data":{"object":{"id":"cs_1","payment_intent":{"id":"pi_\udfff"}}}}`, ErrPaymentIntentIDNotUTF8},
	}
	for _, tt := range tests {
		if _, _, err := parseEvent([]byte(tt.body)); !errors.Is(err, tt.want) {
			t.Errorf("parseEvent(%s) = %v, want %v", tt.body, err, tt.want)
		}
	}
}

// FuzzParseEventAgrees holds the gateway's decoding of an event
// (topics.Unmarshal) to encoding/json's: the same acceptance and the same
// fields, on the fixtures and odd shapes (names in other cases, duplicate
// names, nulls, invalid UTF-8, an expanded payment_intent).
func FuzzParseEventAgrees(f *testing.F) {
	for _, name := range []string{"payment_intent.succeeded", "checkout.session.completed", "checkout.session.completed.no_payment_intent", "charge.refunded", "customer.created"} {
		f.Add(fixture(f, name))
	}
	for _, s := range []string{
		`{"ID":"evt_1","Type":"charge.refunded","DATA":{"Object":{"Id":"ch_1","Payment_Intent":"pi_1"}}}`,
		`{"id":"evt_1","id":"evt_2","type":"x","data":{"object":{"id":"a"},"object":{"id":"b"}}}`,
		`{"id":null,"type":"x","data":{"object":null}}`,
		"{\"id\":\"evt_\xff\",\"type\":\"x\",\"data\":{\"object\":{\"id\":\"a\xfe\"}}}",
		`{"id":"evt","type":"checkout.session.completed","data":{"object":{"id":"cs_1","payment_intent":{"id":"pi_3","object":"payment_intent"}}}}`,
		`{"id":"evt","type":"x","created":1.5,"data":{"object":{"id":"a"}}}`,
		`{"id":"evt","type":"x","data":{"object":{"id":"a"}}} trailing`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want, got event
		werr := json.Unmarshal(b, &want)
		gerr := topics.Unmarshal(b, &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%q: error %v, encoding/json's %v", b, gerr, werr)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %+v, encoding/json read %+v", b, got, want)
		}
	})
}
