package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/testenv"
	"github.com/orderflow/orderflow/topics"
)

// simExchange is one provider request to the simulator and its answer.
type simExchange struct {
	method, path, contentType string
	body, resp                []byte
}

// simRecorder records the provider requests passing to the simulator.
type simRecorder struct {
	h  http.Handler
	mu sync.Mutex
	ex []simExchange
}

type respCapture struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (c *respCapture) Write(b []byte) (int, error) { c.buf.Write(b); return c.ResponseWriter.Write(b) }

func (rc *simRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	cw := &respCapture{ResponseWriter: w}
	rc.h.ServeHTTP(cw, r)
	rc.mu.Lock()
	rc.ex = append(rc.ex, simExchange{r.Method, r.URL.Path, r.Header.Get("Content-Type"), body, cw.buf.Bytes()})
	rc.mu.Unlock()
}

func (rc *simRecorder) matching(method string, path *regexp.Regexp) []simExchange {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []simExchange
	for _, e := range rc.ex {
		if e.method == method && path.MatchString(e.path) {
			out = append(out, e)
		}
	}
	return out
}

// An order runs end to end with DHL as the shipping provider, chosen only
// by --steps shipping=dhl: real Kafka, the processor, the real clients and
// the simulator. DHL (not PostNord) books the parcel, the label is stored,
// and its shipment number reaches the invoice and the confirmation email.
func TestDHLShippingEndToEnd(t *testing.T) {
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers, 1)
	seeds := strings.Split(brokers, ",")
	s, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &simRecorder{h: s.Handler()}
	srv := httptest.NewServer(rec)
	t.Cleanup(func() { srv.Close(); _ = s.Close() })

	labels := t.TempDir()
	p := parseProviderFlags(t, nil, "--sim-url", srv.URL, "--label-dir", labels, "--steps", "details,shipping=dhl,invoice,email")
	prov, cleanup, err := p.build(context.Background(), discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	cfg := processor.DefaultConfig(names)
	cfg.Group = names.Prefix + "processor"
	cfg.CommitInterval = 100 * time.Millisecond
	proc, err := processor.New(cfg, prov, []kgo.Opt{kgo.SeedBrokers(seeds...)}, discardLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
		cleanup()
	})

	const key = "pi_3DhlEndToEnd00000001"
	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(names.Orders))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	raw, _ := json.Marshal(map[string]any{"id": "evt_" + key, "type": processor.EventPaymentSucceeded, "data": map[string]any{"object": map[string]any{"id": key}}})
	env, err := topics.Envelope{EventID: "evt_" + key, EventType: processor.EventPaymentSucceeded, Key: key, ObjectID: key,
		Created: time.Now().Unix(), ReceivedAt: time.Now().UTC(), Event: raw}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(context.Background(), &kgo.Record{Key: []byte(key), Value: env}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(names.State), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	var st *processor.State
	deadline := time.Now().Add(time.Minute)
	for st == nil || st.Status != processor.StatusCompleted {
		if time.Now().After(deadline) {
			t.Fatalf("order not completed within a minute: %+v", st)
		}
		pctx, pcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			if string(r.Key) == key {
				if s, err := processor.DecodeState(r.Value); err == nil {
					st = s
				}
			}
		})
		pcancel()
	}

	// DHL booked it, once; PostNord was not called.
	bookings := rec.matching(http.MethodPost, regexp.MustCompile(`^/parcel/de/shipping/v2/orders$`))
	if len(bookings) != 1 {
		t.Fatalf("%d DHL bookings, want 1", len(bookings))
	}
	if n := len(rec.matching(http.MethodPost, regexp.MustCompile(`^/rest/shipment/`))); n != 0 {
		t.Errorf("%d PostNord bookings, want 0", n)
	}
	var answer struct {
		Items []struct {
			ShipmentNo string `json:"shipmentNo"`
		} `json:"items"`
	}
	if err := json.Unmarshal(bookings[0].resp, &answer); err != nil || len(answer.Items) != 1 {
		t.Fatalf("DHL answer %s: %v", bookings[0].resp, err)
	}
	no := answer.Items[0].ShipmentNo
	if !regexp.MustCompile(`^00340434\d{12}$`).MatchString(no) {
		t.Fatalf("shipment number %q", no)
	}
	var req struct {
		Shipments []struct {
			RefNo string `json:"refNo"`
		} `json:"shipments"`
	}
	if err := json.Unmarshal(bookings[0].body, &req); err != nil || len(req.Shipments) != 1 || req.Shipments[0].RefNo != key {
		t.Errorf("DHL request refNo %+v (%v), want %s", req, err, key)
	}

	// The state has DHL's shipment; the label is a PDF in --label-dir.
	var sh integrations.Shipment
	if ss := st.Steps[processor.StepShipping]; ss == nil || json.Unmarshal(ss.Result, &sh) != nil {
		t.Fatalf("shipping result %+v", st.Steps[processor.StepShipping])
	}
	if sh.TrackingNumber != no || sh.ShipmentID != no {
		t.Errorf("shipment recorded %+v, want tracking number %s", sh, no)
	}
	pdf, err := os.ReadFile(filepath.Join(labels, key+"_label-"+no+".pdf"))
	if err != nil || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Errorf("label: %.20q, %v", pdf, err)
	}

	// The invoice carries the tracking number, the email the number and
	// DHL's tracking link.
	invoices := rec.matching(http.MethodPost, regexp.MustCompile(`(?i)^/salesinvoice\.nv$`))
	if len(invoices) != 1 || !bytes.Contains(invoices[0].body, []byte("Tracking "+no)) {
		t.Errorf("%d invoices; want one with \"Tracking %s\"", len(invoices), no)
	}
	emails := rec.matching(http.MethodPost, regexp.MustCompile(`^/v3/[^/]+/messages$`))
	if len(emails) != 1 {
		t.Fatalf("%d emails, want 1", len(emails))
	}
	form, _ := http.NewRequest(http.MethodPost, "/", bytes.NewReader(emails[0].body))
	form.Header.Set("Content-Type", emails[0].contentType)
	if err := form.ParseMultipartForm(1 << 20); err != nil && err != http.ErrNotMultipart {
		t.Fatal(err)
	}
	var vars struct {
		TrackingNumber string `json:"tracking_number"`
		TrackingURL    string `json:"tracking_url"`
	}
	if err := json.Unmarshal([]byte(form.FormValue("h:X-Mailgun-Variables")), &vars); err != nil {
		t.Fatalf("email variables: %v", err)
	}
	if vars.TrackingNumber != no || !regexp.MustCompile(`^https://www\.dhl\.de/(de|en)/privatkunden/pakete-empfangen/verfolgen\.html\?piececode=`+no+`$`).MatchString(vars.TrackingURL) {
		t.Errorf("email tracking %+v, want number %s and DHL's link", vars, no)
	}
}
