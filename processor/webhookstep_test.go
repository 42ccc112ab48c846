package processor

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/orderflow/orderflow/integrations/webhook"
	"github.com/orderflow/orderflow/topics"
)

// whSecret is 32 random bytes, base64 with the whsec_ prefix.
const whSecret = "whsec_7u4nG1Wq0cMCJ5b8v6m7vJ2vN1n3J8k0f1q2r3s4t5U="

// whReceiver verifies every request with the Standard Webhooks reference
// library (an implementation independent of integrations/webhook) and
// answers per webhook name: "erp" 503 with Retry-After once, then 200;
// "gone" 400 always.
type whReceiver struct {
	t  *testing.T
	mu sync.Mutex
	// got holds the verified deliveries by path.
	got map[string][]whGot
}

type whGot struct {
	id      string
	payload webhook.Payload
}

func (rc *whReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	wh, err := standardwebhooks.NewWebhook(whSecret)
	if err != nil {
		rc.t.Error(err)
		return
	}
	if err := wh.Verify(body, r.Header); err != nil {
		rc.t.Errorf("%s: signature not verified: %v", r.URL.Path, err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		rc.t.Errorf("payload: %v", err)
	}
	rc.mu.Lock()
	rc.got[r.URL.Path] = append(rc.got[r.URL.Path], whGot{id: r.Header.Get("webhook-id"), payload: p})
	n := len(rc.got[r.URL.Path])
	rc.mu.Unlock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/gone"):
		http.Error(w, "unknown order format", http.StatusBadRequest)
	case n == 1:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (rc *whReceiver) deliveries(path string) []whGot {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]whGot(nil), rc.got[path]...)
}

// A webhook step placed after the invoice posts the order with the results
// before it, signed; a 503 is retried with the same webhook-id; a 400
// dead-letters that webhook step alone: the email, which does not read it,
// is sent all the same.
func TestWebhookStep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	f := newFakes()
	rc := &whReceiver{t: t, got: map[string][]whGot{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	client := func(name string) *webhook.Client {
		c, err := webhook.New(webhook.Config{Name: name, URL: srv.URL + "/hooks/" + name, Secrets: []string{whSecret}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	prov := f.providers()
	before := []string{StepDetails, StepCRM, StepProductionLog, StepShipping, StepInvoice}
	prov.Chain = append(BuiltinChain(prov)[:5], WebhookStep(client("erp"), before), WebhookStep(client("gone"), before),
		BuiltinStep(StepEmail, prov))
	h.start(h.config(), prov)
	h.send(paid("pi_3Abc"))
	st := h.waitStates("dead-lettered at the gone webhook", 30*time.Second, allStatus([]string{"pi_3Abc"}, StatusDeadLettered))["pi_3Abc"]

	got := rc.deliveries("/hooks/erp")
	// msg_ + 32 hex digits of SHA-256("erp\x00pi_3Abc"), as in the
	// webhook package's own test.
	const wantID = "msg_a0b7d627a8fc00c8f9da608b1d9b6f3f"
	if len(got) != 2 || got[0].id != wantID || got[1].id != wantID {
		t.Fatalf("erp deliveries %+v, want two with id %s", got, wantID)
	}
	p := got[1].payload
	if p.Type != "order.erp" || p.Version != 1 || p.Data.Order.ID != "pi_3Abc" {
		t.Errorf("payload type %q version %d order %q", p.Type, p.Version, p.Data.Order.ID)
	}
	var inv struct {
		Number string `json:"number"`
	}
	if err := json.Unmarshal(p.Data.Results[StepInvoice], &inv); err != nil || inv.Number != "INV-"+st.Order.Number {
		t.Errorf("payload invoice %s (%v), want number INV-%s", p.Data.Results[StepInvoice], err, st.Order.Number)
	}
	if _, ok := p.Data.Results[StepShipping]; !ok {
		t.Errorf("payload results %v lack the shipment", p.Data.Results)
	}
	var res webhook.Result
	if ss := st.Steps["webhook:erp"]; ss == nil || !ss.Done || json.Unmarshal(ss.Result, &res) != nil || res.MessageID != wantID || res.Status != 204 {
		t.Errorf("state of webhook:erp %+v, want done with message id and status 204", ss)
	}

	if n := len(rc.deliveries("/hooks/gone")); n != 1 {
		t.Errorf("gone: %d deliveries, want 1 (a 400 is not retried)", n)
	}
	if st.DeadLetter == nil || st.DeadLetter.Step != "webhook:gone" || st.DeadLetter.Class != topics.ClassPermanent {
		t.Errorf("dead letter %+v, want webhook:gone, permanent", st.DeadLetter)
	}
	if n := f.createdCount(StepEmail, "pi_3Abc"); n != 1 {
		t.Errorf("email sent %d times, want 1: it does not wait for the webhooks", n)
	}
	if len(st.Pending) != 1 || st.Pending[0] != "webhook:gone" {
		t.Errorf("pending %v, want [webhook:gone]", st.Pending)
	}
}

// An invalid chain is refused with its reason.
func TestValidateChain(t *testing.T) {
	prov := newFakes().providers()
	c := BuiltinChain(prov)
	tests := []struct {
		name  string
		chain []Step
		want  string
	}{
		{"empty", nil, "no steps"},
		{"duplicate", append(c[:len(c):len(c)], BuiltinStep(StepCRM, prov)), `duplicate step "crm"`},
		{"read before", []Step{c[0], c[4], c[3]}, `step "invoice" reads "shipping", which comes after it`},
	}
	for _, tt := range tests {
		err := ValidateChain(tt.chain)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	if err := ValidateChain(c); err != nil {
		t.Errorf("built-in chain: %v", err)
	}
	// A read step left out of the chain is allowed (it is skipped).
	if err := ValidateChain([]Step{c[0], c[4]}); err != nil {
		t.Errorf("invoice without shipping: %v", err)
	}
}
