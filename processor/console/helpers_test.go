package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/crypto/bcrypt"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/dlq"
	"github.com/orderflow/orderflow/topics"
)

var names = topics.New("t.")

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// order is a state for tests: every step up to doneUpTo done.
func order(id, email string, status processor.Status, created time.Time, doneUpTo int) *processor.State {
	st := &processor.State{Version: 1, OrderID: id, Status: status, CreatedAt: created, UpdatedAt: created.Add(time.Minute),
		Order: &integrations.Order{Model: integrations.OrderModel, ID: id, Number: integrations.OrderNumber(id), Currency: "eur", AmountTotal: 4200,
			Customer: integrations.Customer{Name: "Anna Öberg", Email: email},
			Shipping: integrations.Address{Name: "Anna Öberg", Line1: "Kauppakatu 1", PostalCode: "90100", City: "Oulu", Country: "FI"}},
		AppliedEvents: []string{"evt_" + id},
	}
	for i, step := range processor.Chain {
		if i >= doneUpTo {
			break
		}
		ss := st.Step(step)
		ss.Done = true
		at := created.Add(time.Duration(i+1) * time.Second)
		ss.DoneAt = &at
		switch step {
		case processor.StepShipping:
			ss.Result, _ = json.Marshal(integrations.Shipment{ShipmentID: "sh1", TrackingNumber: "TRK" + id,
				TrackingURL: "https://tracking.example/" + id, LabelLocation: "file:///labels/" + id + "_label-1.pdf",
				CustomsLocation: "file:///labels/" + id + "_customs-1.pdf"})
		case processor.StepInvoice:
			ss.Result, _ = json.Marshal(integrations.Invoice{Number: "INV" + id, ProviderID: "9"})
		case processor.StepCRM:
			ss.Result, _ = json.Marshal(integrations.CRMResult{ContactID: "c1", DealID: "d1"})
		}
	}
	return st
}

// stateRecord is st as the processor writes it on orders.state.
func stateRecord(t *testing.T, st *processor.State, partition int32, offset int64) *kgo.Record {
	t.Helper()
	v, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: names.State, Partition: partition, Offset: offset, Key: []byte(st.OrderID), Value: v,
		Headers: processor.StateHeaders(st, v), Timestamp: st.UpdatedAt}
}

func eventRecord(id, eventID, typ string, partition int32, offset int64, at time.Time, extra ...kgo.RecordHeader) *kgo.Record {
	h := append([]kgo.RecordHeader{{Key: topics.HeaderEventID, Value: []byte(eventID)}, {Key: topics.HeaderEventType, Value: []byte(typ)}}, extra...)
	return &kgo.Record{Topic: names.Orders, Partition: partition, Offset: offset, Key: []byte(id), Value: []byte(`{"v":1}`), Headers: h, Timestamp: at}
}

func letterRecord(id, step, class string, partition int32, offset int64, at time.Time) *kgo.Record {
	h := []kgo.RecordHeader{
		{Key: topics.HeaderEventID, Value: []byte("evt_" + id)},
		{Key: topics.HeaderDLQStep, Value: []byte(step)}, {Key: topics.HeaderDLQClass, Value: []byte(class)},
		{Key: topics.HeaderDLQError, Value: []byte("postnord: 400 invalid postal code")},
		{Key: topics.HeaderDLQAttempts, Value: []byte("1")},
		{Key: topics.HeaderDLQLastFailure, Value: []byte(at.Format(time.RFC3339))},
		{Key: topics.HeaderDLQPartition, Value: []byte(fmt.Sprint(partition))},
	}
	return &kgo.Record{Topic: names.DLQ, Partition: partition, Offset: offset, Key: []byte(id), Value: []byte(`{"v":1}`), Headers: h, Timestamp: at}
}

func testIndex(t *testing.T, dir string) *Index {
	t.Helper()
	ix, _ := reopenIndex(t, dir)
	return ix
}

// reopenIndex opens the index in dir (of the tests' identity) and returns
// why it was rebuilt ("" when it was kept).
func reopenIndex(t *testing.T, dir string) (*Index, string) {
	t.Helper()
	ix, rebuilt, err := OpenIndex(dir, Identity{ClusterID: "c1", Topics: map[string]string{names.State: "id1"}}, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	return ix, rebuilt
}

// wantEmptied fails unless ix, just rebuilt, holds neither the order id
// nor any checkpoint.
func wantEmptied(t *testing.T, ix *Index, id string) {
	t.Helper()
	if _, err := ix.Get(id); err != ErrNotFound || len(ix.Offsets()) != 0 {
		t.Fatalf("the old index was kept: %v %v", err, ix.Offsets())
	}
}

// written are the state records applied in tests, for fakeStates.
var written sync.Map // "<partition>/<offset>" → *kgo.Record

func apply(t *testing.T, ix *Index, recs ...*kgo.Record) {
	t.Helper()
	for _, r := range recs {
		if r.Topic == names.State {
			written.Store(fmt.Sprintf("%s/%d/%d", ix.dir, r.Partition, r.Offset), r)
		}
	}
	if _, err := ix.Apply(names, recs); err != nil {
		t.Fatal(err)
	}
}

// fakeStates reads the state records tests applied to an index.
type fakeStates struct{ dir string }

func (f fakeStates) StateAt(_ context.Context, id string, p int32, o int64) (*processor.State, error) {
	v, ok := written.Load(fmt.Sprintf("%s/%d/%d", f.dir, p, o))
	if !ok || string(v.(*kgo.Record).Key) != id {
		return nil, fmt.Errorf("no state of %s at %d/%d", id, p, o)
	}
	return processor.DecodeState(v.(*kgo.Record).Value)
}

// fakeReplayer records the requests and answers with a plan of the
// sources it was given, but for those in absent (no dead letter there).
type fakeReplayer struct {
	mu     sync.Mutex
	reqs   []dlq.ReplayRequest
	err    error
	absent []string
}

func (f *fakeReplayer) Run(_ context.Context, req dlq.ReplayRequest) (dlq.ReplayResult, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	var res dlq.ReplayResult
	for _, src := range req.Filter.Sources {
		if slices.Contains(f.absent, src) {
			continue
		}
		p, o, _ := dlq.ParseSource(src)
		res.Plan = append(res.Plan, dlq.Decision{DeadLetter: dlq.DeadLetter{Partition: p, Offset: o, Key: "pi_x"}})
		res.Replay++
	}
	if !req.DryRun {
		res.Summary.Replayed = res.Replay
		for _, d := range res.Plan {
			res.Outcomes = append(res.Outcomes, dlq.Outcome{Source: d.Source(), Order: d.Key, Result: "replayed"})
		}
	}
	return res, f.err
}

func (f *fakeReplayer) requests() []dlq.ReplayRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]dlq.ReplayRequest(nil), f.reqs...)
}

// memAuditor keeps the records; fail makes every write fail.
type memAuditor struct {
	mu   sync.Mutex
	recs []topics.AuditRecord
	fail bool
}

func (m *memAuditor) Audit(_ context.Context, a topics.AuditRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return fmt.Errorf("broker unreachable")
	}
	m.recs = append(m.recs, a)
	return nil
}

func (m *memAuditor) records() []topics.AuditRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]topics.AuditRecord(nil), m.recs...)
}

// accounts: ops (operator) and vic (viewer), password "correct horse";
// the token "tok-ops" is an operator's.
func accounts(t *testing.T) *Accounts {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	a := &Accounts{}
	if err := a.ParseUsers(strings.NewReader(fmt.Sprintf("# people\nops:operator:%s\nvic:viewer:%s\n", h, h))); err != nil {
		t.Fatal(err)
	}
	// sha256("tok-ops")
	if err := a.ParseTokens(strings.NewReader("ci:operator:041086374f20673b2d3681b40573ae817db655c399362cd08205cf77c8217ed0\n")); err != nil {
		t.Fatal(err)
	}
	return a
}

// client is a browser: a cookie jar, no redirects followed.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func newClient(t *testing.T, base string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: base, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (c *client) get(path string) (int, string, http.Header) {
	c.t.Helper()
	resp, err := c.hc.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return resp.StatusCode, string(b), resp.Header
}

func (c *client) post(path string, form url.Values) (int, string, http.Header) {
	c.t.Helper()
	resp, err := c.hc.PostForm(c.base+path, form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// login logs in as name and fails the test unless it works.
func (c *client) login(name string) {
	c.t.Helper()
	c.get("/login")
	code, body, h := c.post("/login", url.Values{"csrf": {c.csrf}, "name": {name}, "password": {"correct horse"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/" {
		c.t.Fatalf("login as %s: %d %s\n%s", name, code, h.Get("Location"), body)
	}
	c.get("/") // the new session's CSRF token
}

type testServer struct {
	*httptest.Server
	srv     *Server
	ix      *Index
	replay  *fakeReplayer
	auditor *memAuditor
	now     *time.Time
}

func newTestServer(t *testing.T, mod func(*Config)) *testServer {
	t.Helper()
	ix := testIndex(t, t.TempDir())
	t.Cleanup(func() { ix.Close() })
	ts := &testServer{ix: ix, replay: &fakeReplayer{}, auditor: &memAuditor{}}
	now := t0.Add(time.Hour)
	ts.now = &now
	cfg := Config{Index: ix, Replayer: ts.replay, States: fakeStates{dir: ix.dir}, Auditor: ts.auditor, Names: names, Accounts: accounts(t),
		Now: func() time.Time { return *ts.now }}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	ts.Server = httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts
}
