package airtable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// batchFake is an Airtable table that upserts on "Order ID": it records
// each request's records and answers with one record per order (id
// "rec_<order id>"), in reverse order so that callers must be matched by
// the merge field. reject, when set, may answer a request with an error
// instead.
type batchFake struct {
	t      *testing.T
	reject func(orderIDs []string) (status int, file string, headers map[string]string)
	mu     sync.Mutex
	reqs   [][]map[string]any // fields of each request's records
}

func (f *batchFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body struct {
		Records []record `json:"records"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		f.t.Errorf("body is not JSON: %v", err)
	}
	var ids []string
	var fields []map[string]any
	for _, rec := range body.Records {
		id, _ := rec.Fields["Order ID"].(string)
		ids = append(ids, id)
		fields = append(fields, rec.Fields)
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, fields)
	reject := f.reject
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if reject != nil {
		if status, file, hdr := reject(ids); status != 0 {
			for k, v := range hdr {
				w.Header().Set(k, v)
			}
			w.WriteHeader(status)
			data, err := os.ReadFile(filepath.Join("testdata", file))
			if err != nil {
				f.t.Error(err)
			}
			_, _ = w.Write(data)
			return
		}
	}
	var out upsertResponse
	for i := len(body.Records) - 1; i >= 0; i-- {
		id := "rec_" + ids[i]
		out.Records = append(out.Records, record{ID: id, Fields: body.Records[i].Fields})
		out.UpdatedRecords = append(out.UpdatedRecords, id)
	}
	_ = json.NewEncoder(w).Encode(out)
}

// requests returns the order ids of each request, in request order.
func (f *batchFake) requests() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]string
	for _, recs := range f.reqs {
		var ids []string
		for _, fields := range recs {
			id, _ := fields["Order ID"].(string)
			ids = append(ids, id)
		}
		out = append(out, ids)
	}
	return out
}

func newBatchTest(t *testing.T, f *batchFake) *Client {
	t.Helper()
	f.t = t
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, Token: testToken, BaseID: testBase, Table: testTable})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// hold makes the client's first request wait for release, so that a test
// can queue calls first. Later turns come at once.
func hold(c *Client) (release func()) {
	gate := make(chan struct{})
	c.limiter.mu.Lock()
	c.limiter.next = time.Now().Add(time.Hour)
	c.limiter.sleep = func(ctx context.Context, _ time.Duration) error {
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.limiter.mu.Unlock()
	return sync.OnceFunc(func() { close(gate) })
}

// waitQueued waits until n calls are queued.
func waitQueued(t *testing.T, c *Client, n int) {
	t.Helper()
	for stop := time.Now().Add(10 * time.Second); time.Now().Before(stop); time.Sleep(time.Millisecond) {
		c.mu.Lock()
		got := len(c.pending)
		c.mu.Unlock()
		if got == n {
			return
		}
	}
	t.Fatalf("queued calls never reached %d", n)
}

type outcome struct {
	res integrations.ProductionLogResult
	err error
}

// upsertAsync starts UpsertOrder for order id and returns where its
// outcome arrives.
func upsertAsync(ctx context.Context, c *Client, id string, steps ...string) <-chan outcome {
	ch := make(chan outcome, 1)
	o := testOrder()
	o.ID = id
	go func() {
		res, err := c.UpsertOrder(ctx, o, steps)
		ch <- outcome{res, err}
	}()
	return ch
}

func TestConcurrentCallsShareRequests(t *testing.T) {
	f := &batchFake{}
	c := newBatchTest(t, f)
	release := hold(c)
	const n = 25
	outs := make([]<-chan outcome, n)
	for i := range outs {
		outs[i] = upsertAsync(context.Background(), c, fmt.Sprintf("pi_%02d", i))
	}
	waitQueued(t, c, n)
	release()
	for i, ch := range outs {
		o := <-ch
		if want := fmt.Sprintf("rec_pi_%02d", i); o.err != nil || o.res.RecordID != want {
			t.Errorf("caller %d: %+v, %v; want record %s", i, o.res, o.err, want)
		}
	}
	reqs := f.requests()
	if len(reqs) > 3 {
		t.Errorf("%d requests for %d calls, want at most 3", len(reqs), n)
	}
	total := 0
	for _, ids := range reqs {
		if len(ids) > MaxBatch {
			t.Errorf("request with %d records", len(ids))
		}
		total += len(ids)
	}
	if total != n {
		t.Errorf("%d records sent, want %d", total, n)
	}
}

func TestSameOrderTwiceGoesInTwoRequests(t *testing.T) {
	f := &batchFake{}
	c := newBatchTest(t, f)
	release := hold(c)
	first := upsertAsync(context.Background(), c, "pi_1", "details")
	waitQueued(t, c, 1)
	second := upsertAsync(context.Background(), c, "pi_1", "details", "crm")
	waitQueued(t, c, 2)
	other := upsertAsync(context.Background(), c, "pi_2", "details")
	waitQueued(t, c, 3)
	release()
	for _, ch := range []<-chan outcome{first, second, other} {
		if o := <-ch; o.err != nil {
			t.Fatal(o.err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(f.reqs))
	}
	status := func(req, rec int) string {
		return fmt.Sprintf("%v:%v", f.reqs[req][rec]["Order ID"], f.reqs[req][rec]["Status"])
	}
	if len(f.reqs[0]) != 2 || status(0, 0) != "pi_1:details" || status(0, 1) != "pi_2:details" ||
		len(f.reqs[1]) != 1 || status(1, 0) != "pi_1:details, crm" {
		t.Errorf("requests %v, want [pi_1 details, pi_2] then [pi_1 details, crm]", f.reqs)
	}
}

func TestRejectedBatchIsRetriedRecordByRecord(t *testing.T) {
	f := &batchFake{reject: func(ids []string) (int, string, map[string]string) {
		if slices.Contains(ids, "pi_bad") {
			return http.StatusUnprocessableEntity, "error_422.json", nil
		}
		return 0, "", nil
	}}
	c := newBatchTest(t, f)
	release := hold(c)
	ids := []string{"pi_a", "pi_bad", "pi_c"}
	outs := map[string]<-chan outcome{}
	for i, id := range ids {
		outs[id] = upsertAsync(context.Background(), c, id)
		waitQueued(t, c, i+1)
	}
	release()
	for _, id := range ids {
		o := <-outs[id]
		var e *integrations.Error
		switch {
		case id == "pi_bad":
			if !errors.As(o.err, &e) || e.Class != integrations.Permanent || e.Status != 422 {
				t.Errorf("%s: err = %v, want permanent 422", id, o.err)
			}
		case o.err != nil || o.res.RecordID != "rec_"+id:
			t.Errorf("%s: %+v, %v; want written", id, o.res, o.err)
		}
	}
	// The batch, then each record alone (those requests run concurrently,
	// in any order).
	got := f.requests()
	if len(got) > 1 {
		slices.SortFunc(got[1:], func(a, b []string) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	}
	want := [][]string{{"pi_a", "pi_bad", "pi_c"}, {"pi_a"}, {"pi_bad"}, {"pi_c"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("requests %v, want %v", got, want)
	}
}

func TestRequestErrorFailsTheWholeBatch(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		file       string
		class      integrations.Class
		retryAfter time.Duration
	}{
		{"429", http.StatusTooManyRequests, "error_429.json", integrations.Transient, RateLimitPenalty},
		{"401", http.StatusUnauthorized, "error_401.json", integrations.Permanent, 0},
		{"503", http.StatusServiceUnavailable, "error_429.json", integrations.Transient, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &batchFake{reject: func([]string) (int, string, map[string]string) { return tt.status, tt.file, nil }}
			c := newBatchTest(t, f)
			release := hold(c)
			var outs []<-chan outcome
			for i := 0; i < 3; i++ {
				outs = append(outs, upsertAsync(context.Background(), c, fmt.Sprintf("pi_%d", i)))
				waitQueued(t, c, i+1)
			}
			release()
			for i, ch := range outs {
				o := <-ch
				var e *integrations.Error
				if !errors.As(o.err, &e) || e.Class != tt.class || e.Status != tt.status || e.RetryAfter != tt.retryAfter {
					t.Errorf("caller %d: err = %+v, want class %v status %d retry after %v", i, o.err, tt.class, tt.status, tt.retryAfter)
				}
			}
			if n := len(f.requests()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

func TestCancelledCallerLeavesTheQueue(t *testing.T) {
	f := &batchFake{}
	c := newBatchTest(t, f)
	release := hold(c)
	ctx, cancel := context.WithCancel(context.Background())
	a := upsertAsync(context.Background(), c, "pi_a")
	waitQueued(t, c, 1)
	gone := upsertAsync(ctx, c, "pi_gone")
	waitQueued(t, c, 2)
	b := upsertAsync(context.Background(), c, "pi_b")
	waitQueued(t, c, 3)
	cancel()
	o := <-gone
	if o.err == nil || integrations.IsPermanent(o.err) || !errors.Is(o.err, context.Canceled) {
		t.Fatalf("cancelled caller: err = %v, want transient, context canceled", o.err)
	}
	waitQueued(t, c, 2)
	release()
	for _, ch := range []<-chan outcome{a, b} {
		if o := <-ch; o.err != nil {
			t.Fatal(o.err)
		}
	}
	if got := f.requests(); fmt.Sprint(got) != "[[pi_a pi_b]]" {
		t.Errorf("requests %v, want [[pi_a pi_b]]", got)
	}
}

func TestCallWaitsForItsTurnUntilItsDeadline(t *testing.T) {
	f := &batchFake{}
	c := newBatchTest(t, f)
	hold(c) // never released: the turn does not come
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.UpsertOrder(ctx, testOrder(), nil)
	if err == nil || integrations.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want transient after the deadline", err)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestClose(t *testing.T) {
	f := &batchFake{}
	c := newBatchTest(t, f)
	hold(c)
	queued := upsertAsync(context.Background(), c, "pi_a")
	waitQueued(t, c, 1)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	o := <-queued
	if o.err == nil || integrations.IsPermanent(o.err) || !strings.Contains(o.err.Error(), "closed") {
		t.Errorf("queued call after Close: %v, want transient closed", o.err)
	}
	if _, err := c.UpsertOrder(context.Background(), testOrder(), nil); err == nil || integrations.IsPermanent(err) {
		t.Errorf("call after Close: %v, want transient error", err)
	}
	c.mu.Lock()
	running := c.senderRunning
	c.mu.Unlock()
	if running {
		t.Error("sender still running after Close")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestResponseMatching(t *testing.T) {
	tests := []struct {
		name string
		body string
		want map[string]string // order id → record id, "" for an error
	}{
		{"by merge field, any order",
			`{"records":[{"id":"recB","fields":{"Order ID":"pi_b"}},{"id":"recA","fields":{"Order ID":"pi_a"}}]}`,
			map[string]string{"pi_a": "recA", "pi_b": "recB"}},
		{"by position when the field is not echoed",
			`{"records":[{"id":"recA","fields":{}},{"id":"recB","fields":{}}]}`,
			map[string]string{"pi_a": "recA", "pi_b": "recB"}},
		{"a missing record fails only its caller",
			`{"records":[{"id":"recB","fields":{"Order ID":"pi_b"}}]}`,
			map[string]string{"pi_a": "", "pi_b": "recB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			c, err := New(Config{BaseURL: srv.URL, Token: testToken, BaseID: testBase, Table: testTable})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			release := hold(c)
			a := upsertAsync(context.Background(), c, "pi_a")
			waitQueued(t, c, 1)
			b := upsertAsync(context.Background(), c, "pi_b")
			waitQueued(t, c, 2)
			release()
			for id, ch := range map[string]<-chan outcome{"pi_a": a, "pi_b": b} {
				o := <-ch
				if want := tt.want[id]; o.res.RecordID != want || (want == "") != (o.err != nil) {
					t.Errorf("%s: %+v, %v; want record %q", id, o.res, o.err, want)
				}
			}
		})
	}
}

// Requests in flight to the base are bounded: 4 by default, 8 without the
// client-side rate limit. A fake that holds every request counts them.
func TestRequestsInFlightAreBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		noRPS bool
		want  int
	}{{"rate limited", false, defaultMaxInFlight}, {"no rate limit", true, unlimitedMaxInFlight}} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			cur, peak := 0, 0
			gate := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				cur++
				peak = max(peak, cur)
				mu.Unlock()
				<-gate
				mu.Lock()
				cur--
				mu.Unlock()
				var body struct {
					Records []record `json:"records"`
				}
				_ = json.NewDecoder(r.Body).Decode(&body)
				var out upsertResponse
				for _, rec := range body.Records {
					id, _ := rec.Fields["Order ID"].(string)
					out.Records = append(out.Records, record{ID: "rec_" + id, Fields: rec.Fields})
				}
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(out)
			}))
			t.Cleanup(srv.Close)
			c, err := New(Config{BaseURL: srv.URL, Token: testToken, BaseID: testBase, Table: testTable,
				NoRateLimit: tc.noRPS, RequestsPerSecond: 1000})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			// One order per request: each call waits until the previous
			// ones are sent, so every request carries a single record.
			const n = 12
			outs := make([]<-chan outcome, n)
			for i := range outs {
				outs[i] = upsertAsync(context.Background(), c, fmt.Sprintf("pi_%02d", i))
				for stop := time.Now().Add(5 * time.Second); time.Now().Before(stop); time.Sleep(time.Millisecond) {
					mu.Lock()
					busy := cur
					mu.Unlock()
					if busy >= min(i+1, tc.want) {
						break
					}
				}
			}
			// Settled: the bound's worth of requests at the server and every
			// other call queued in the client, its sender waiting for a slot
			// (or the bound already broken at the server).
			settled := false
			for stop := time.Now().Add(10 * time.Second); !settled && time.Now().Before(stop); time.Sleep(time.Millisecond) {
				c.mu.Lock()
				inFlight, queued := c.inFlight, len(c.pending)
				c.mu.Unlock()
				mu.Lock()
				busy, over := cur, peak > tc.want
				mu.Unlock()
				settled = over || (inFlight == tc.want && busy == tc.want && queued == n-tc.want)
			}
			mu.Lock()
			got := peak
			mu.Unlock()
			if !settled {
				t.Errorf("never settled at %d requests in flight with the other %d calls queued", tc.want, n-tc.want)
			}
			close(gate)
			for i, ch := range outs {
				if o := <-ch; o.err != nil {
					t.Errorf("caller %d: %v", i, o.err)
				}
			}
			if got != tc.want {
				t.Errorf("peak requests in flight %d, want %d", got, tc.want)
			}
		})
	}
}

// A fleet's turn (Config.Turn) is waited for before the batch is taken:
// the first call starts the wait, the calls that arrive during it go in
// the same request.
func TestRecordsArrivingDuringTheTurnGoInTheBatch(t *testing.T) {
	f := &batchFake{t: t}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	turn := func(ctx context.Context) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c, err := New(Config{BaseURL: srv.URL, Token: testToken, BaseID: testBase, Table: testTable, NoRateLimit: true, Turn: turn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	first := upsertAsync(context.Background(), c, "pi_00")
	<-entered // the sender waits for the fleet's turn
	outs := []<-chan outcome{first}
	for i := 1; i < MaxBatch; i++ {
		outs = append(outs, upsertAsync(context.Background(), c, fmt.Sprintf("pi_%02d", i)))
	}
	waitQueued(t, c, MaxBatch)
	close(gate)
	for i, ch := range outs {
		if o := <-ch; o.err != nil {
			t.Errorf("caller %d: %v", i, o.err)
		}
	}
	if reqs := f.requests(); len(reqs) != 1 || len(reqs[0]) != MaxBatch {
		t.Errorf("requests = %v, want one of %d records", reqs, MaxBatch)
	}
}
