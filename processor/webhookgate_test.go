package processor

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations/webhook"
	"github.com/orderflow/orderflow/topics"
)

// gateReceiver is a warehouse system behind a gate webhook. For every
// delivery it records whether shipping had been called for that order
// before it answered. The order pi_gateok is refused with a 503 (Retry-After
// 1) once, then accepted; pi_gatebad is refused with a 400 while refuse is
// set, then accepted.
type gateReceiver struct {
	f      *fakes
	refuse atomic.Bool
	mu     sync.Mutex
	// got is, per order, one entry per delivery: the shipping calls made
	// before the answer.
	got map[string][]int
}

func (rc *gateReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var p webhook.Payload
	_ = json.Unmarshal(body, &p)
	order := p.Data.Order.ID
	rc.mu.Lock()
	rc.got[order] = append(rc.got[order], rc.f.attemptCount(StepShipping, order))
	n := len(rc.got[order])
	rc.mu.Unlock()
	switch {
	case order == "pi_gateok" && n == 1:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	case order == "pi_gatebad" && rc.refuse.Load():
		http.Error(w, "unknown article", http.StatusBadRequest)
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

func (rc *gateReceiver) deliveries(order string) []int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got[order])
}

// A gate webhook holds the steps after it: shipping is not called until the
// warehouse answered 2xx (a 503 retried first); a warehouse refusing the
// order for good dead-letters it at the gate with shipping, invoice and
// email pending and never called, and a replay, once the warehouse accepts
// it, runs them. The CRM, listed before the gate and not read by it, is
// not held.
func TestWebhookGateHoldsLaterSteps(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 1)
	f := newFakes()
	rc := &gateReceiver{f: f, got: map[string][]int{}}
	rc.refuse.Store(true)
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	wc, err := webhook.New(webhook.Config{Name: "wms", URL: srv.URL + "/hooks/wms", Secrets: []string{whSecret}})
	if err != nil {
		t.Fatal(err)
	}
	prov := f.providers()
	prov.Chain = []Step{BuiltinStep(StepDetails, prov), BuiltinStep(StepCRM, prov), WebhookGateStep(wc, []string{StepDetails}),
		BuiltinStep(StepShipping, prov), BuiltinStep(StepInvoice, prov), BuiltinStep(StepEmail, prov)}
	if err := ValidateChain(prov.Chain); err != nil {
		t.Fatal(err)
	}
	h.start(h.config(), prov)

	h.send(paid("pi_gateok"), paid("pi_gatebad"))
	states := h.waitStates("one order completed, one dead-lettered at the gate", 30*time.Second, func(m map[string]*State) bool {
		return allStatus([]string{"pi_gateok"}, StatusCompleted)(m) && allStatus([]string{"pi_gatebad"}, StatusDeadLettered)(m)
	})

	// pi_gateok: two deliveries (503, then 202), shipping called by neither
	// time, then once.
	if got := rc.deliveries("pi_gateok"); !slices.Equal(got, []int{0, 0}) {
		t.Errorf("pi_gateok: shipping calls seen at each delivery %v, want [0 0]", got)
	}
	if n := f.createdCount(StepShipping, "pi_gateok"); n != 1 {
		t.Errorf("pi_gateok: %d shipments, want 1", n)
	}

	// pi_gatebad: refused once (a 400 is not retried), nothing after the
	// gate called, the CRM done all the same.
	bad := states["pi_gatebad"]
	if got := rc.deliveries("pi_gatebad"); !slices.Equal(got, []int{0}) {
		t.Errorf("pi_gatebad: deliveries %v, want one, before any shipping call", got)
	}
	for _, step := range []string{StepShipping, StepInvoice, StepEmail} {
		if n := f.attemptCount(step, "pi_gatebad"); n != 0 {
			t.Errorf("pi_gatebad: %s called %d times behind a refusing gate", step, n)
		}
	}
	if want := []string{"webhook:wms", StepShipping, StepInvoice, StepEmail}; !slices.Equal(bad.Pending, want) {
		t.Errorf("pi_gatebad pending %v, want %v", bad.Pending, want)
	}
	if ss := bad.Steps[StepCRM]; ss == nil || !ss.Done {
		t.Errorf("pi_gatebad: crm %+v, want done (it is before the gate)", ss)
	}
	if bad.DeadLetter == nil || bad.DeadLetter.Step != "webhook:wms" || bad.DeadLetter.Class != topics.ClassPermanent {
		t.Fatalf("pi_gatebad dead letter %+v, want webhook:wms, permanent", bad.DeadLetter)
	}

	// The warehouse accepts it now: a replay of the dead letter sends the
	// webhook again and runs the steps after it.
	rc.refuse.Store(false)
	h.replayLetter(h.lastLetter("pi_gatebad"))
	done := h.waitStates("pi_gatebad completed after the replay", 30*time.Second, allStatus([]string{"pi_gatebad"}, StatusCompleted))["pi_gatebad"]
	if got := rc.deliveries("pi_gatebad"); !slices.Equal(got, []int{0, 0}) {
		t.Errorf("pi_gatebad after the replay: deliveries %v, want [0 0] (shipping only after the accepted one)", got)
	}
	for _, step := range []string{StepShipping, StepInvoice, StepEmail} {
		if n := f.createdCount(step, "pi_gatebad"); n != 1 {
			t.Errorf("pi_gatebad after the replay: %s done %d times, want 1", step, n)
		}
	}
	if n := f.createdCount(StepCRM, "pi_gatebad"); n != 1 {
		t.Errorf("pi_gatebad: crm called %d times, want 1 (done before the dead letter)", n)
	}
	if len(done.Pending) != 0 {
		t.Errorf("pi_gatebad completed with pending %v", done.Pending)
	}
}

// waitsFor: a step waits for what it reads and for every gate before it.
func TestWaitsForGates(t *testing.T) {
	prov := newFakes().providers()
	wc := func(name string) *webhook.Client {
		c, err := webhook.New(webhook.Config{Name: name, URL: "https://wms.example/hooks", Secrets: []string{whSecret}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	chain := []Step{BuiltinStep(StepDetails, prov), BuiltinStep(StepCRM, prov), WebhookGateStep(wc("wms"), []string{StepDetails, StepCRM}),
		WebhookStep(wc("erp"), []string{StepDetails, StepCRM, "webhook:wms"}), BuiltinStep(StepShipping, prov), BuiltinStep(StepInvoice, prov)}
	want := [][]string{nil, nil, {StepDetails, StepCRM}, {StepDetails, StepCRM, "webhook:wms"}, {"webhook:wms"}, {StepShipping, "webhook:wms"}}
	for i := range chain {
		if got := waitsFor(chain, i); !slices.Equal(got, want[i]) {
			t.Errorf("%s waits for %v, want %v", chain[i].Name(), got, want[i])
		}
	}
}

// slowGate is a warehouse that answers pi_gateslow only once release is
// closed, and refuses pi_gatebad with a 400 while refuse is set.
type slowGate struct {
	refuse  atomic.Bool
	release chan struct{}
	got     chan string // the order of each delivery
}

func (g *slowGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var p webhook.Payload
	_ = json.Unmarshal(body, &p)
	order := p.Data.Order.ID
	g.got <- order
	switch {
	case order == "pi_gateslow":
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusOK)
	case order == "pi_gatebad" && g.refuse.Load():
		http.Error(w, "unknown article", http.StatusBadRequest)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// The production log's progress reports (its row, with the customer's
// data) wait for a gate listed before the production log as its step does:
// nothing is reported of an order while the gate has not answered, nor of
// an order the gate refused; once it passed, the reports come.
func TestWebhookGateHoldsProgressReports(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 1)
	f := newFakes()
	pl := &progressLog{fakes: f}
	g := &slowGate{release: make(chan struct{}), got: make(chan string, 16)}
	g.refuse.Store(true)
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	wc, err := webhook.New(webhook.Config{Name: "wms", URL: srv.URL + "/hooks/wms", Secrets: []string{whSecret}})
	if err != nil {
		t.Fatal(err)
	}
	prov := f.providers()
	prov.ProductionLog = pl
	prov.Chain = []Step{BuiltinStep(StepDetails, prov), WebhookGateStep(wc, []string{StepDetails}),
		BuiltinStep(StepShipping, prov), BuiltinStep(StepInvoice, prov), BuiltinStep(StepEmail, prov),
		BuiltinStep(StepCRM, prov), BuiltinStep(StepProductionLog, prov)}
	if err := ValidateChain(prov.Chain); err != nil {
		t.Fatal(err)
	}
	cfg := h.config()
	cfg.StepTimeout = 30 * time.Second // the slow gate answers when told
	h.start(cfg, prov)

	h.send(paid("pi_gateslow"), paid("pi_gatebad"))
	// Both deliveries arrived: each order's details were recorded (a state
	// write, reported so far) before its gate was called.
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case o := <-g.got:
			seen[o] = true
		case <-time.After(30 * time.Second):
			t.Fatalf("deliveries seen %v, want pi_gateslow and pi_gatebad", seen)
		}
	}
	h.waitStates("pi_gatebad dead-lettered at the gate", 30*time.Second, allStatus([]string{"pi_gatebad"}, StatusDeadLettered))
	if r := pl.of("pi_gateslow"); len(r) != 0 {
		t.Errorf("pi_gateslow: %d progress reports while its gate had not answered, want none: %+v", len(r), r)
	}
	if n := f.attemptCount(StepProductionLog, "pi_gateslow"); n != 0 {
		t.Errorf("pi_gateslow: production log called %d times before the gate answered", n)
	}

	// The gate answers: the reports come, each with the gate done.
	close(g.release)
	h.waitStates("pi_gateslow completed", 30*time.Second, allStatus([]string{"pi_gateslow"}, StatusCompleted))
	eventually(t, "pi_gateslow's completion reported", 10*time.Second, func() bool {
		r := pl.of("pi_gateslow")
		return len(r) > 0 && r[len(r)-1].Status == string(StatusCompleted)
	})

	// The refused order is accepted on its replay: only then is it reported.
	g.refuse.Store(false)
	h.replayLetter(h.lastLetter("pi_gatebad"))
	h.waitStates("pi_gatebad completed after the replay", 30*time.Second, allStatus([]string{"pi_gatebad"}, StatusCompleted))
	eventually(t, "pi_gatebad's completion reported", 10*time.Second, func() bool {
		r := pl.of("pi_gatebad")
		return len(r) > 0 && r[len(r)-1].Status == string(StatusCompleted)
	})
	for _, key := range []string{"pi_gateslow", "pi_gatebad"} {
		for i, r := range pl.of(key) {
			if !slices.Contains(r.CompletedSteps, "webhook:wms") || r.Status == string(StatusDeadLettered) {
				t.Errorf("%s: report %d (%s, steps %v) made before the gate passed", key, i, r.Status, r.CompletedSteps)
			}
		}
	}
}
