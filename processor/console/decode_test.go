package console

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
)

func TestDecodeStateAgrees(t *testing.T) {
	full := order("pi_agree000001", "a@example.com", processor.StatusDeadLettered, t0, 4)
	full.Flags = []string{"possible_duplicate:shipping"}
	full.Replays = []string{"1/2"}
	full.DeadLetter = &processor.DeadLetter{Partition: 1, Offset: 2, Step: "invoice", Class: topics.ClassExhausted, At: t0}
	at := t0.Add(time.Hour)
	full.Step(processor.StepInvoice).Intent = &at
	full.Step(processor.StepInvoice).LastError = "netvisor: 503"
	good, _ := full.Encode()
	for _, raw := range []string{
		string(good),
		`{"v":1,"order_id":"pi_min","status":"completed","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z"}`,
		"{\"v\":1,\"order_id\":\"pi_utf\",\"status\":\"in_progress\",\"last_error\":\"bad \xff byte\",\"created_at\":\"2026-01-02T03:04:05Z\",\"updated_at\":\"2026-01-02T03:04:05Z\"}",
		`{"v":2,"order_id":"pi_new"}`, `{"v":1}`, `{"v":1,"order_id":"x","steps":{"crm":null}}`, `nope`,
	} {
		want, werr := processor.DecodeState([]byte(raw))
		got, gerr := decodeState([]byte(raw))
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%.60s: DecodeState error %v, decodeState error %v", raw, werr, gerr)
			continue
		}
		if werr == nil && !reflect.DeepEqual(want, got) {
			a, _ := json.Marshal(got)
			b, _ := json.Marshal(want)
			t.Errorf("%.60s: decodeState\n%s\nwant\n%s", raw, a, b)
		}
	}
}
