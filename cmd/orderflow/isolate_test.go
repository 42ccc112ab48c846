package main

import (
	"os"
	"strings"
	"testing"
)

// refusedBrokers is a broker address nothing listens on: a test that
// expects a command to stop before it contacts Kafka passes it, so a
// regression fails at once instead of joining whatever broker answers at
// the default 127.0.0.1:9092 (a developer's `make run`).
const refusedBrokers = "127.0.0.1:1"

// TestMain unsets every ORDERFLOW_* variable but the test infrastructure's
// ORDERFLOW_TEST_* before the tests run, so an ORDERFLOW_BROKERS or other
// setting exported in the developer's shell cannot steer a command under
// test; a test that wants one sets it with t.Setenv.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "ORDERFLOW_") && !strings.HasPrefix(name, "ORDERFLOW_TEST_") {
			_ = os.Unsetenv(name)
		}
	}
	os.Exit(m.Run())
}

// refuseKafka makes a command of the test that is given no --brokers read
// refusedBrokers from ORDERFLOW_BROKERS, unless the test set a broker
// itself.
func refuseKafka(t *testing.T) {
	t.Helper()
	if os.Getenv("ORDERFLOW_BROKERS") == "" {
		t.Setenv("ORDERFLOW_BROKERS", refusedBrokers)
	}
}
