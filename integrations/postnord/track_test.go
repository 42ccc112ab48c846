package postnord_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/labelstore"
	"github.com/orderflow/orderflow/integrations/postnord"
	"github.com/orderflow/orderflow/integrations/sim"
)

func trackClient(t *testing.T, base string) *postnord.Client {
	t.Helper()
	store, err := labelstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := postnord.New(postnord.Config{
		BaseURL: base, APIKey: "0123456789abcdef0123456789abcdef", Labels: store,
		ApplicationID: 1, CustomerNumber: "1234567890",
		Consignor: postnord.Party{Name: "Verkstad AB", Streets: []string{"Industrigatan 4"}, PostalCode: "11122", City: "Stockholm", CountryCode: "SE"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func trackOrder(id string) integrations.Order {
	return integrations.Order{
		ID: id, Number: integrations.OrderNumber(id),
		Customer: integrations.Customer{Name: "Åsa Öberg", Email: "asa@example.se"},
		Shipping: integrations.Address{Name: "Åsa Öberg", Line1: "Storgatan 1", PostalCode: "41301", City: "Göteborg", Country: "SE"},
	}
}

// A booking is found by the order's CU reference once the simulator's
// visibility delay has passed, not before; another order's reference finds
// nothing.
func TestFindShipmentAgainstSimulator(t *testing.T) {
	s, err := sim.New(sim.Config{DataDir: t.TempDir(), PostNordVisibility: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); _ = s.Close() })
	c := trackClient(t, srv.URL)
	ctx := context.Background()
	o := trackOrder("pi_3TrackTest0000000001")
	booked, err := c.CreateShipment(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, found, err := c.FindShipment(ctx, o); err != nil || found {
		t.Fatalf("look-up before the visibility delay: found %v, err %v; want not found", found, err)
	}
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/_sim/postnord", strings.NewReader(`{"visibility":"0s"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /_sim/postnord: %v %v", resp, err)
	}
	resp.Body.Close()
	got, found, err := c.FindShipment(ctx, o)
	if err != nil || !found {
		t.Fatalf("look-up after the delay: found %v, err %v", found, err)
	}
	if got.TrackingNumber != booked.TrackingNumber || got.ShipmentID != booked.ShipmentID {
		t.Errorf("found %+v, booked %+v", got, booked)
	}
	if want := "https://tracking.postnord.com/se/?id=" + booked.TrackingNumber; got.TrackingURL != want {
		t.Errorf("tracking URL %q, want %q", got.TrackingURL, want)
	}
	// The label the booking stored is the found shipment's; gone from the
	// store, the shipment has none (print it from PostNord's portal).
	if got.LabelLocation == "" || got.LabelLocation != booked.LabelLocation {
		t.Errorf("found label %q, want the stored %q", got.LabelLocation, booked.LabelLocation)
	}
	u, err := url.Parse(booked.LabelLocation)
	if err != nil || os.Remove(u.Path) != nil {
		t.Fatalf("remove the label %q: %v", booked.LabelLocation, err)
	}
	if got, found, err := c.FindShipment(ctx, o); err != nil || !found || got.LabelLocation != "" {
		t.Errorf("label gone: found %v, label %q, err %v; want found without a label", found, got.LabelLocation, err)
	}
	if _, found, err := c.FindShipment(ctx, trackOrder("pi_3TrackTest0000000002")); err != nil || found {
		t.Errorf("another order's reference: found %v, err %v; want not found", found, err)
	}
}

// The answers PostNord may give for "no match" are all "not found"; an
// authorisation failure is an error, never "not found".
func TestFindShipmentAnswers(t *testing.T) {
	for _, tt := range []struct {
		name      string
		status    int
		body      string
		found     bool
		permanent bool
		err       bool
	}{
		{"empty list", 200, `{"TrackingInformationResponse":{"shipments":[]}}`, false, false, false},
		{"404", 404, `{"message":"not found"}`, false, false, false},
		{"fault only", 200, `{"TrackingInformationResponse":{"compositeFault":{"faults":[{"faultCode":"X","explanationText":"no shipments"}]}}}`, false, false, false},
		{"other reference only", 200, `{"TrackingInformationResponse":{"shipments":[{"shipmentId":"S1","shipmentReferences":[{"type":"CU","value":"pi_other"}],"items":[{"itemId":"00373500000000000001"}]}]}}`, false, false, false},
		{"match", 200, `{"TrackingInformationResponse":{"shipments":[{"shipmentId":"S2","shipmentReferences":[{"type":"CU","value":"pi_3TrackAnswers"}],"items":[{"itemId":"00373500000000000002"}]}]}}`, true, false, false},
		{"403 gateway", 403, `{"error":{"status_code":403,"error_type":"Forbidden","message":"Invalid API Key"}}`, false, true, true},
		{"503", 503, `{"message":"down"}`, false, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var path string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				path = r.URL.Path
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c := trackClient(t, srv.URL)
			s, found, err := c.FindShipment(context.Background(), trackOrder("pi_3TrackAnswers"))
			if want := "/rest/shipment/v7/trackandtrace/customernumber/1234567890/reference/pi_3TrackAnswers/public"; path != want {
				t.Errorf("path %s, want %s", path, want)
			}
			if found != tt.found || (err != nil) != tt.err {
				t.Fatalf("found %v, err %v; want found %v, error %v", found, err, tt.found, tt.err)
			}
			if err != nil && integrations.IsPermanent(err) != tt.permanent {
				t.Errorf("permanent = %v, want %v (%v)", integrations.IsPermanent(err), tt.permanent, err)
			}
			if tt.found && (s.ShipmentID != "S2" || s.TrackingNumber != "00373500000000000002") {
				t.Errorf("shipment %+v", s)
			}
		})
	}
}

// Under the simulator's late-answer fault a client that gives up in the
// second half of the delay leaves a booking it never learnt of; the look-up
// by reference finds it.
func TestLateAnswerLeavesAFindableBooking(t *testing.T) {
	s, err := sim.New(sim.Config{DataDir: t.TempDir(), PostNordVisibility: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); _ = s.Close() })
	if err := s.SetFault(sim.Fault{Step: sim.StepShipping, Mode: sim.ModeLateAnswer, Rate: 1, Latency: 4 * time.Second}); err != nil {
		t.Fatal(err)
	}
	c := trackClient(t, srv.URL)
	o := trackOrder("pi_3TrackLateAnswer0001")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second) // served at 2 s, answered at 4 s
	_, err = c.CreateShipment(ctx, o)
	cancel()
	if err == nil {
		t.Fatal("booking answered despite the client's deadline")
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Steps[sim.StepShipping].AnswersLost != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want one answer lost", s.Stats().Steps[sim.StepShipping])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := s.Stats().Steps[sim.StepShipping]; st.Created != 1 {
		t.Errorf("created %d, want 1", st.Created)
	}
	s.ClearFaults("")
	if _, found, err := c.FindShipment(context.Background(), o); err != nil || !found {
		t.Errorf("look-up: found %v, err %v; want the booking", found, err)
	}
}
