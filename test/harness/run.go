package harness

import (
	"context"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor"
)

// RunProcessor starts an in-process processor on the brokers seeds and runs
// it until the test ends, when it is stopped and its error, if any, fails
// the test.
func RunProcessor(t *testing.T, cfg processor.Config, prov processor.Providers, seeds []string, log *slog.Logger, reg prometheus.Registerer) {
	t.Helper()
	p, err := processor.New(cfg, prov, []kgo.Opt{kgo.SeedBrokers(seeds...)}, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	})
}
