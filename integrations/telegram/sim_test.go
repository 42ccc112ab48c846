package telegram_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/integrations/telegram"
)

// The real client against the provider simulator, which also checks the
// HTML and the length: a burst with hostile text arrives as a few messages.
func TestAgainstSimulator(t *testing.T) {
	s, err := sim.New(sim.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); _ = s.Close() })
	c, err := telegram.New(telegram.Config{
		BaseURL: srv.URL, Token: "123456:AAH-sim-token", ChatID: "-1001",
		BatchWindow: 20 * time.Millisecond, MinInterval: time.Millisecond, BatchMax: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("<&> ", 2000)
	for i := range 300 {
		a := integrations.Alert{OrderID: fmt.Sprintf("pi_%04d", i), Step: "shipping", Text: fmt.Sprintf("reason %d %s", i%7, long)}
		if err := c.Alert(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.Alert(context.Background(), integrations.Alert{OrderID: "pi_x", Step: "invoice", Text: long + long})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL + "/_sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Steps map[string]struct {
			Requests int `json:"requests"`
			Created  int `json:"created"`
		} `json:"steps"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	a := st.Steps["alert"]
	if a.Requests == 0 || a.Requests > 6 || a.Created != a.Requests {
		t.Fatalf("alert stats = %+v, want 1..6 requests all accepted", a)
	}
}
