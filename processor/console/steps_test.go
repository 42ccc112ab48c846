package console

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/processor"
)

// The order page lists every step of the order's chain: the steps still
// pending and not started (webhooks with no entry yet) as pending, in
// their chain order.
func TestOrderPagePendingWebhooks(t *testing.T) {
	ts := newTestServer(t, nil)
	// --steps details,webhook:wms,shipping,invoice,email,crm,production_log
	// with the gate wms refusing the order.
	st := order("pi_gate0000005", "eve@example.com", processor.StatusDeadLettered, t0, 1)
	wh := st.Step("webhook:wms")
	at := t0.Add(2 * time.Second)
	wh.Attempts, wh.LastError, wh.FirstFailure, wh.LastFailure = 1, "webhook: wms: HTTP 422", &at, &at
	st.Pending = []string{"webhook:wms", processor.StepShipping, processor.StepInvoice, processor.StepEmail, processor.StepCRM, processor.StepProductionLog}
	st.DeadLetter = &processor.DeadLetter{Partition: 0, Offset: 3, Step: "webhook:wms", Class: "permanent", At: at}
	// --steps details,shipping,invoice,email,webhook:tok,webhook:simhook:
	// tok failing, simhook not started.
	st2 := order("pi_hook0000006", "fay@example.com", processor.StatusInProgress, t0, 6)
	tok := st2.Step("webhook:tok")
	tok.Attempts, tok.LastError, tok.FirstFailure, tok.LastFailure = 2, "webhook: tok: HTTP 503", &at, &at
	st2.Pending = []string{"webhook:tok", "webhook:simhook"}
	apply(t, ts.ix, stateRecord(t, st, 0, 0), stateRecord(t, st2, 1, 0))
	c := newClient(t, ts.URL)
	c.login("ops")
	row := regexp.MustCompile(`<tr><td>([a-z_:]+)</td><td><span class="badge s-[a-z_]+">([a-z]+)`)
	for id, want := range map[string][]string{
		"pi_gate0000005": {"details done", "webhook:wms failing", "shipping pending", "invoice pending", "email pending", "crm pending", "production_log pending"},
		"pi_hook0000006": {"details done", "crm done", "production_log done", "shipping done", "invoice done", "email done", "webhook:tok failing", "webhook:simhook pending"},
	} {
		code, body, _ := c.get("/orders/" + id)
		if code != 200 {
			t.Fatalf("%s: order page %d", id, code)
		}
		_, steps, _ := strings.Cut(body, `<table id="steps">`)
		steps, _, _ = strings.Cut(steps, "</table>")
		var got []string
		for _, m := range row.FindAllStringSubmatch(steps, -1) {
			got = append(got, m[1]+" "+m[2])
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: steps\n%q\nwant\n%q", id, got, want)
		}
	}
}

// An order whose step waits on its provider's open circuit is waiting,
// though no attempt of it was counted: in the status filter, the
// overview's counts, and on its page, which says so.
func TestOrderWaitingOnOpenCircuit(t *testing.T) {
	ts := newTestServer(t, nil)
	circ := order("pi_circ0000007", "gus@example.com", processor.StatusInProgress, t0, 3)
	at := t0.Add(5 * time.Second)
	circ.Step(processor.StepShipping).CircuitOpen = &at
	calm := order("pi_calm0000008", "hal@example.com", processor.StatusInProgress, t0.Add(time.Minute), 3)
	apply(t, ts.ix, stateRecord(t, circ, 0, 0), stateRecord(t, calm, 1, 0))
	c := newClient(t, ts.URL)
	c.login("ops")

	code, body, _ := c.get("/api/overview")
	var ov struct {
		Counts map[string]int64 `json:"counts"`
	}
	if err := json.Unmarshal([]byte(body), &ov); err != nil || code != 200 {
		t.Fatalf("API overview: %d %v\n%s", code, err, body)
	}
	if ov.Counts["waiting"] != 1 || ov.Counts["in_progress"] != 2 {
		t.Errorf("overview counts waiting %d, in_progress %d; want 1 and 2", ov.Counts["waiting"], ov.Counts["in_progress"])
	}
	code, body, _ = c.get("/orders?status=waiting")
	if code != 200 || !strings.Contains(body, "pi_circ0000007") || strings.Contains(body, "pi_calm0000008") {
		t.Errorf("/orders?status=waiting: %d, want pi_circ0000007 alone", code)
	}
	code, body, _ = c.get("/orders/pi_circ0000007")
	if want := `<span class="badge s-waiting">waiting on the open circuit since 2026-03-02T10:00:05Z (its provider fails for every order)</span>`; code != 200 || !strings.Contains(body, want) {
		t.Errorf("order page lacks %q (%d)", want, code)
	}
}
