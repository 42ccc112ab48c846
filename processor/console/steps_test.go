package console

import (
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
