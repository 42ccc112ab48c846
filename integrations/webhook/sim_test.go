package webhook_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/integrations/webhook"
)

// The real client against the simulator's receiver, which verifies the
// signature with its own implementation of the specification and counts
// a redelivery of one order as a duplicate.
func TestAgainstSimulator(t *testing.T) {
	s, err := sim.New(sim.Config{WebhookSecrets: []string{secretB}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); _ = s.Close() })

	c := newClient(t, srv.URL+"/webhooks/erp", func(c *webhook.Config) { c.Secrets = []string{secretC, secretB} })
	for range 2 {
		if _, err := c.Deliver(context.Background(), testOrder(), testResults()); err != nil {
			t.Fatal(err)
		}
	}
	got := s.WebhookDeliveries()
	if len(got) != 1 || got[0].ID != "msg_a0b7d627a8fc00c8f9da608b1d9b6f3f" || got[0].Attempts != 2 || !got[0].Verified ||
		got[0].Type != "order.erp" || got[0].Order != "pi_3Abc" {
		t.Fatalf("deliveries %+v", got)
	}
	if st := s.Stats().Steps[sim.StepWebhook]; st != (sim.StepStats{Requests: 2, Created: 2, DuplicateCreates: 1}) {
		t.Fatalf("stats %+v", st)
	}

	// A client whose secret the receiver does not know fails permanently.
	bad := newClient(t, srv.URL+"/webhooks/erp", func(c *webhook.Config) { c.Secrets = []string{secretC} })
	if _, err := bad.Deliver(context.Background(), testOrder(), nil); !integrations.IsPermanent(err) {
		t.Fatalf("unknown secret: err = %v, want permanent", err)
	}
	// The simulator's unavailable fault is transient for the client.
	if err := s.SetFault(sim.Fault{Step: sim.StepWebhook, Mode: sim.ModeUnavailable}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Deliver(context.Background(), testOrder(), nil); err == nil || integrations.IsPermanent(err) {
		t.Fatalf("unavailable: err = %v, want transient", err)
	}
}
