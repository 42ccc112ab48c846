package console

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSummaryCodecRoundTrip(t *testing.T) {
	// An offset keeps its value, not its name (as a JSON round trip).
	stockholm := time.FixedZone("", 3600)
	full := &Summary{
		ID: "pi_3QcodecXy", Number: "OF-3QCODECXY", Status: "waiting", Step: "shipping",
		Created: time.Date(2026, 11, 30, 10, 4, 5, 123456789, time.UTC), Updated: time.Date(2026, 11, 30, 11, 0, 0, 0, stockholm),
		Amount: 68182, Currency: "sek", Email: "Buyer@Example.com", Name: "Sanna Öhman", Tracking: "00373500000000000042",
		Invoice: "55430000000042", Flags: []string{"possible_duplicate:crm", "x"}, Replays: []string{"orders.dlq/3/17"},
		Done: 2, DoneMask: 5, Attempts: map[string]int{"shipping": 3, "crm": 1}, LastError: "postnord: 503",
		StateStatus: "in_progress", StatePartition: 11, StateOffset: 1 << 40,
		Events: []string{"evt_1Qcodec", "evt_2Qcodec"},
	}
	for name, s := range map[string]*Summary{"full": full, "empty": {}, "negative": {ID: "a", Amount: -5, StatePartition: -1, StateOffset: -1}} {
		got, err := decodeSummary(appendSummary(nil, s))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("%s: got %+v, want %+v", name, got, s)
		}
	}
	enc := appendSummary(nil, full)
	for _, n := range []int{0, 1, 5, len(enc) / 2, len(enc) - 1} {
		if _, err := decodeSummary(enc[:n]); err == nil {
			t.Errorf("decode of %d of %d bytes: no error", n, len(enc))
		}
	}
	if _, err := decodeSummary(append(enc, 0)); err == nil {
		t.Error("decode with a trailing byte: no error")
	}
	if _, err := decodeSummary([]byte(`{"id":"pi_1"}`)); err == nil {
		t.Error("decode of a JSON summary: no error")
	}
}

// The JSON of a summary leaves out the step of an order with none (the
// table's "-" is not a step) and keeps a current one.
func TestSummaryJSONStep(t *testing.T) {
	for _, tc := range []struct {
		step, want string
	}{
		{noStep, `{"id":"pi_1","status":"completed","created":"0001-01-01T00:00:00Z","updated":"0001-01-01T00:00:00Z","state_status":"","state_partition":0,"state_offset":0}`},
		{"crm", `{"id":"pi_1","status":"completed","step":"crm","created":"0001-01-01T00:00:00Z","updated":"0001-01-01T00:00:00Z","state_status":"","state_partition":0,"state_offset":0}`},
	} {
		got, err := json.Marshal(Summary{ID: "pi_1", Status: "completed", Step: tc.step})
		if err != nil || string(got) != tc.want {
			t.Errorf("step %q: %s %v, want %s", tc.step, got, err, tc.want)
		}
		// Inside a page too.
		page, _ := json.Marshal(APIPage{Orders: []Summary{{ID: "pi_1", Status: "completed", Step: tc.step}}})
		if !strings.Contains(string(page), tc.want) {
			t.Errorf("page %s lacks %s", page, tc.want)
		}
	}
}
