package console

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/dlq"
	"github.com/orderflow/orderflow/topics"
)

type fakeEraser struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeEraser) Erase(_ context.Context, id string, st *processor.State, p int32, _ time.Duration) (dlq.Erasure, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, id+"@"+string(st.Status)+"/"+itoa32(p))
	return dlq.Erasure{Partition: p, Marker: itoa32(p) + "/9"}, nil
}

func itoa32(p int32) string { return string(rune('0' + p)) }

func TestErase(t *testing.T) {
	er := &fakeEraser{}
	ts := newTestServer(t, func(c *Config) { c.Eraser = er })
	seed(t, ts.ix)
	viewer := newClient(t, ts.URL)
	viewer.login("vic")
	if _, body, _ := viewer.get("/orders/pi_done0000001"); strings.Contains(body, `id="erase"`) {
		t.Error("a viewer is offered the erase form")
	}
	if code, _, _ := viewer.post("/orders/pi_done0000001/erase", url.Values{"csrf": {viewer.csrf}, "confirm": {"pi_done0000001"}}); code != http.StatusForbidden {
		t.Errorf("viewer erase: %d, want 403", code)
	}
	c := newClient(t, ts.URL)
	c.login("ops")
	if _, body, _ := c.get("/orders/pi_done0000001"); !strings.Contains(body, `id="erase"`) {
		t.Error("an operator is not offered the erase form")
	}
	if code, _, _ := c.post("/orders/pi_done0000001/erase", url.Values{"confirm": {"pi_done0000001"}}); code != http.StatusForbidden {
		t.Errorf("erase without CSRF token: %d, want 403", code)
	}
	code, body, _ := c.post("/orders/pi_done0000001/erase", url.Values{"csrf": {c.csrf}, "confirm": {"pi_done"}})
	if code != http.StatusBadRequest || !strings.Contains(body, "Type the order id to confirm") {
		t.Errorf("erase with a wrong confirmation: %d", code)
	}
	if code, _, _ := c.post("/orders/pi_nosuch/erase", url.Values{"csrf": {c.csrf}, "confirm": {"pi_nosuch"}}); code != http.StatusNotFound {
		t.Errorf("erase of an unknown order: %d, want 404", code)
	}
	if len(er.calls) != 0 {
		t.Fatalf("refused erasures reached the eraser: %v", er.calls)
	}
	code, _, h := c.post("/orders/pi_done0000001/erase", url.Values{"csrf": {c.csrf}, "confirm": {"pi_done0000001"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/orders/pi_done0000001" {
		t.Fatalf("erase: %d %s", code, h.Get("Location"))
	}
	if len(er.calls) != 1 || er.calls[0] != "pi_done0000001@completed/0" {
		t.Fatalf("eraser calls = %v", er.calls)
	}
	var got []string
	for _, a := range ts.auditor.records() {
		if a.Action == topics.AuditErase {
			got = append(got, a.Outcome+" "+a.Target+" "+a.Result)
		}
	}
	if strings.Join(got, "|") != "started order pi_done0000001 |ok order pi_done0000001 erasure marker at 0/9; not erased: the shipping label file /labels/pi_done0000001_label-1.pdf and the customs declaration file /labels/pi_done0000001_customs-1.pdf, and the order's records on t.orders (7 days) and t.orders.dlq (30 days)" {
		t.Fatalf("erase audit = %q", got)
	}
	ts.auditor.mu.Lock()
	ts.auditor.fail = true
	ts.auditor.mu.Unlock()
	if code, body, _ := c.post("/orders/pi_wait0000002/erase", url.Values{"csrf": {c.csrf}, "confirm": {"pi_wait0000002"}}); code != http.StatusServiceUnavailable || !strings.Contains(body, "nothing was erased") {
		t.Fatalf("erase without audit log: %d", code)
	}
	if len(er.calls) != 1 {
		t.Fatal("erased although the audit record failed")
	}
}

// An erased order's page says what erasure left, not "see the steps": no
// customer, no steps (the marker keeps none), its dead letters erased and
// no link to replay them.
func TestErasedOrderPage(t *testing.T) {
	ts := newTestServer(t, nil)
	seed(t, ts.ix)
	at := t0.Add(4 * time.Hour)
	marker := &processor.State{Version: 1, OrderID: "pi_dead0000003", Status: processor.StatusErased, ErasedAt: &at, CreatedAt: t0.Add(2 * time.Minute), UpdatedAt: at}
	apply(t, ts.ix, stateRecord(t, marker, 1, 5), letterRecord("pi_dead0000003", "crm", topics.ClassPermanent, 0, 12, t0.Add(3*time.Hour)))
	c := newClient(t, ts.URL)
	c.login("ops")
	code, body, _ := c.get("/orders/pi_dead0000003")
	if code != 200 {
		t.Fatalf("erased order page: %d", code)
	}
	for _, want := range []string{"Nothing: the order&#39;s data was erased on 2026-03-02 14:00:00Z.", "the erasure&#39;s row on the audit page names them", "(not shown: the order was erased)", `id="erased"`, `<span class="badge s-erased">erased</span>`} {
		if !strings.Contains(body, want) {
			t.Errorf("erased order page lacks %q:\n%s", want, body)
		}
	}
	for _, unwanted := range []string{"see the steps below", "invalid postal code", `id="steps"`, `id="customer"`, "cy@example.com", "replay from the dead letters page", `id="erase-form"`} {
		if strings.Contains(body, unwanted) {
			t.Errorf("erased order page has %q", unwanted)
		}
	}
}
