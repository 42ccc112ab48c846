package airtable

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// waitRequests waits until the fake has seen n requests and returns the
// fields of every record sent, by request.
func waitRequests(t *testing.T, f *batchFake, n int) [][]map[string]any {
	t.Helper()
	for stop := time.Now().Add(10 * time.Second); time.Now().Before(stop); time.Sleep(time.Millisecond) {
		f.mu.Lock()
		got := len(f.reqs)
		out := append([][]map[string]any(nil), f.reqs...)
		f.mu.Unlock()
		if got >= n {
			return out
		}
	}
	t.Fatalf("requests never reached %d", n)
	return nil
}

func progress(id string, status string, steps ...string) integrations.Progress {
	o := testOrder()
	o.ID = id
	return integrations.Progress{OrderID: id, Order: &o, Status: status, CompletedSteps: steps}
}

func newBatchServer(t *testing.T, f *batchFake) string {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

// Reports of one order coalesce while they wait: the latest wins, in the
// place of the first.
func TestProgressCoalescesPerOrder(t *testing.T) {
	f := &batchFake{}
	c := newBatchTest(t, f)
	release := hold(c)
	c.ReportProgress(progress("pi_a", "in_progress", "details"))
	c.ReportProgress(progress("pi_b", "in_progress", "details"))
	c.ReportProgress(progress("pi_a", "in_progress", "details", "crm"))
	c.ReportProgress(progress("pi_a", "in_progress", "details", "crm", "production_log"))
	release()
	reqs := waitRequests(t, f, 1)
	if len(reqs) != 1 || len(reqs[0]) != 2 {
		t.Fatalf("requests = %v, want one with two records", f.requests())
	}
	if reqs[0][0]["Order ID"] != "pi_a" || reqs[0][0]["Status"] != "details, crm, production_log" || reqs[0][1]["Status"] != "details" {
		t.Errorf("records = %v", reqs[0])
	}
}

// Waiting production-log calls go first; reports fill the room they leave,
// at most ten records per request, one per order; a call for an order
// supersedes its queued report.
func TestProgressYieldsToCalls(t *testing.T) {
	f := &batchFake{}
	c := newBatchTest(t, f)
	release := hold(c)
	for i := range 12 {
		c.ReportProgress(progress(fmt.Sprintf("pi_r%02d", i), "in_progress", "details"))
	}
	var done []<-chan outcome
	for i, id := range []string{"pi_c1", "pi_r00"} {
		done = append(done, upsertAsync(context.Background(), c, id))
		waitQueued(t, c, i+1)
	}
	release()
	for _, ch := range done {
		if o := <-ch; o.err != nil {
			t.Fatal(o.err)
		}
	}
	reqs := waitRequests(t, f, 2)
	want := [][]string{
		{"pi_c1", "pi_r00", "pi_r01", "pi_r02", "pi_r03", "pi_r04", "pi_r05", "pi_r06", "pi_r07", "pi_r08"},
		{"pi_r09", "pi_r10", "pi_r11"},
	}
	// The two requests run concurrently: they may arrive in either order.
	got := f.requests()
	if len(got) == 2 && len(got[0]) == 3 {
		got[0], got[1] = got[1], got[0]
		reqs[0], reqs[1] = reqs[1], reqs[0]
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("requests = %v\nwant %v", got, want)
	}
	// pi_r00's record is the call's (its steps), not the queued report's.
	if reqs[0][1]["Status"] != "" {
		t.Errorf("pi_r00 status = %v, want the call's (no steps)", reqs[0][1]["Status"])
	}
}

// At most MaxProgress orders wait; a report for another is dropped and
// counted, one for a waiting order still replaces it.
func TestProgressIsBounded(t *testing.T) {
	f := &batchFake{t: t}
	srv := newBatchServer(t, f)
	c, err := New(Config{BaseURL: srv, Token: testToken, BaseID: testBase, Table: testTable, MaxProgress: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	release := hold(c)
	c.ReportProgress(progress("pi_a", "in_progress", "details"))
	c.ReportProgress(progress("pi_b", "in_progress", "details"))
	c.ReportProgress(progress("pi_c", "in_progress", "details"))
	c.ReportProgress(progress("pi_a", "in_progress", "details", "crm"))
	if n := c.ProgressDropped(); n != 1 {
		t.Errorf("dropped = %d, want 1", n)
	}
	release()
	waitRequests(t, f, 1)
	if got := fmt.Sprint(f.requests()); got != "[[pi_a pi_b]]" {
		t.Errorf("requests = %s", got)
	}
}

// Reports wait out a pause after a 429 and then go.
func TestProgressSurvivesAPause(t *testing.T) {
	f := &batchFake{}
	c := newBatchTest(t, f)
	c.limiter.pause(300 * time.Millisecond)
	start := time.Now()
	c.ReportProgress(progress("pi_a", "completed", "details", "crm"))
	waitRequests(t, f, 1)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("sent %v after the report, inside the pause", d)
	}
}

// The status text for each state; the reason of a failure goes to the
// failure field when the table has one.
func TestProgressStatusField(t *testing.T) {
	dead := integrations.Progress{OrderID: "pi_x", Status: "dead_lettered", CompletedSteps: []string{"details", "crm"}, FailedStep: "shipping", Failure: "postnord: book shipment: HTTP 400: bad postal code"}
	tests := []struct {
		name   string
		mod    func(*Config)
		p      integrations.Progress
		status any
		fail   any
	}{
		{"in progress", nil, integrations.Progress{OrderID: "pi_x", Status: "in_progress", CompletedSteps: []string{"details"}}, "details", nil},
		{"completed", nil, integrations.Progress{OrderID: "pi_x", Status: "completed", CompletedSteps: []string{"details", "crm"}}, "details, crm; completed", nil},
		{"dead-lettered", nil, dead, "details, crm; failed at shipping: postnord: book shipment: HTTP 400: bad postal code", nil},
		{"dead-lettered with a failure field", func(c *Config) { c.Fields.Failure = "Failure" }, dead, "details, crm; failed at shipping", "shipping: postnord: book shipment: HTTP 400: bad postal code"},
		{"replayed clears the failure", func(c *Config) { c.Fields.Failure = "Failure" }, integrations.Progress{OrderID: "pi_x", Status: "in_progress"}, "", ""},
		{"as a list", func(c *Config) { c.StatusAsList = true }, dead, []string{"details", "crm", "failed: shipping"}, nil},
		{"refunded", nil, integrations.Progress{OrderID: "pi_x", Status: "refunded", CompletedSteps: []string{"details"}}, "details; refunded", nil},
		{"awaiting payment", nil, integrations.Progress{OrderID: "pi_x", Status: "awaiting_payment"}, "awaiting payment", nil},
		{"payment failed", nil, integrations.Progress{OrderID: "pi_x", Status: "payment_failed"}, "payment failed", nil},
		{"payment failed as a list", func(c *Config) { c.StatusAsList = true }, integrations.Progress{OrderID: "pi_x", Status: "payment_failed"}, []string{"payment failed"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Token: testToken, BaseID: testBase, Table: testTable}
			if tt.mod != nil {
				tt.mod(&cfg)
			}
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			m := c.progressFields(tt.p)
			if fmt.Sprint(m["Status"]) != fmt.Sprint(tt.status) || fmt.Sprint(m["Failure"]) != fmt.Sprint(tt.fail) {
				t.Errorf("Status %#v Failure %#v, want %#v %#v", m["Status"], m["Failure"], tt.status, tt.fail)
			}
			if m["Order ID"] != "pi_x" || m["Order Number"] != integrations.OrderNumber("pi_x") {
				t.Errorf("row = %v", m)
			}
		})
	}
}
