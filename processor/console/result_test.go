package console

import (
	"encoding/json"
	"testing"

	"github.com/orderflow/orderflow/integrations"
)

// TestResultStringAgrees: the scan of a shipping result finds the tracking
// number json.Unmarshal finds, or leaves the record to it.
func TestResultStringAgrees(t *testing.T) {
	for _, c := range []struct {
		raw      string
		want     string // the tracking number Summarize keeps
		answered bool   // the scan answers (no full decode)
	}{
		{`{"shipment_id":"7","tracking_number":"00373500000000000042","tracking_url":"https://t/x","label_location":""}`, "00373500000000000042", true},
		{` { "tracking_number" : "A\u00e9B" } `, "AéB", true},
		{`{"carrier":{"name":"postnord","n":[1,2]},"tracking_number":"K1"}`, "K1", true},
		{`{}`, "", true},
		{`{"tracking_number":"K1","tracking_number":"K2"}`, "K2", false},
		{`{"Tracking_Number":"K3"}`, "K3", false},
		{`{"tracking_number":"K4","shipment_id":7}`, "", false},
		{`{"tracking_number":null}`, "", false},
		{`null`, "", false},
		{`{"tracking_number":"K5"} x`, "", false},
		{`["K6"]`, "", false},
		{"{\"tracking_number\":\"K7\xff\"}", "K7\ufffd", false},
	} {
		got, ok := resultString([]byte(c.raw), shipmentFields, "tracking_number")
		if ok != c.answered || ok && got != c.want {
			t.Errorf("%s: scan = %q, %v; want %q, %v", c.raw, got, ok, c.want, c.answered)
		}
		st := fullState(1)
		st.Steps["shipping"].Result = json.RawMessage(c.raw)
		if s := Summarize(st); s.Tracking != c.want {
			t.Errorf("%s: Summarize tracking = %q, want %q", c.raw, s.Tracking, c.want)
		}
		var sh integrations.Shipment
		ref := ""
		if json.Unmarshal([]byte(c.raw), &sh) == nil {
			ref = sh.TrackingNumber
		}
		if ref != c.want {
			t.Errorf("%s: json.Unmarshal finds %q, the table says %q", c.raw, ref, c.want)
		}
	}
	if got, ok := resultString([]byte(`{"number":"55430000000042","provider_id":"1811"}`), invoiceFields, "number"); !ok || got != "55430000000042" {
		t.Errorf("invoice number = %q, %v", got, ok)
	}
}
