package infra

import (
	"errors"
	"fmt"
	"strings"
)

// Free ports are picked before the server binds them, so another process
// may take one in between (Kafka then fails with "BindException: Address
// already in use"). Servers started on picked ports are therefore retried
// on fresh ones, up to portAttempts times, when their start fails that
// way. A port the caller fixed is never changed.
const portAttempts = 4

// freePort is FreePort; tests replace it to hand out a taken port.
var freePort = FreePort

// isAddrInUse reports whether a failed start was a port taken by someone
// else (the error carries the server's last log lines).
func isAddrInUse(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "Address already in use") || strings.Contains(s, "address already in use") ||
		strings.Contains(s, "BindException")
}

// withFreshPorts calls start with n freshly picked ports until it
// succeeds, fails for another reason, or portAttempts have failed on a
// taken port.
func withFreshPorts(n int, start func(ports []int) error) error {
	var errs []error
	for attempt := 1; attempt <= portAttempts; attempt++ {
		ports := make([]int, n)
		for i := range ports {
			p, err := freePort()
			if err != nil {
				return err
			}
			ports[i] = p
		}
		err := start(ports)
		if err == nil || !isAddrInUse(err) {
			return err
		}
		errs = append(errs, fmt.Errorf("attempt %d on ports %v: %w", attempt, ports, err))
	}
	return fmt.Errorf("every port picked was taken before the server bound it: %w", errors.Join(errs...))
}
