package slack_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/integrations/slack"
)

// The real client against the simulator with Slack's limit enforced: a
// burst with hostile, long text arrives as a few messages, none refused.
func TestAgainstSimulator(t *testing.T) {
	s, err := sim.New(sim.Config{EnforceLimits: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); _ = s.Close() })
	c, err := slack.New(slack.Config{
		WebhookURL:  srv.URL + "/services/T0SHOP/B0OPS/abcDEF123",
		BatchWindow: 20 * time.Millisecond, BatchMax: 100, MinInterval: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("<!channel> & ", 2000)
	for i := range 250 {
		if err := c.Alert(context.Background(), integrations.Alert{OrderID: fmt.Sprintf("pi_%04d", i), Step: "shipping", Text: fmt.Sprintf("reason %d %s", i%7, long)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats().Steps[sim.StepSlack]
	if st.Requests == 0 || st.Requests > 5 || st.Created != st.Requests || st.RejectedRateLimited != 0 {
		t.Fatalf("slack stats %+v, want 1..5 requests, all accepted", st)
	}
}
