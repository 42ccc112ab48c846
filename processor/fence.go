package processor

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// This file fences a processor that lost its partitions without knowing it
// (paused by SIGSTOP, a long GC or a frozen VM past its session timeout)
// away from the calls that are not idempotent. Two rules, one per side:
//
//   - The owner starts a state write or a non-idempotent call only while
//     the group coordinator has confirmed its membership recently enough
//     that it cannot have been expelled yet (membership, below), and every
//     such call carries a lease: an absolute deadline written in the intent
//     before the call and used as the call's context deadline, so nothing is
//     sent after it.
//   - The next owner that finds an intent without a result waits for the
//     lease to end, plus the clock drift bound, before it looks the call up
//     at the provider (reconcile), and takes "not found" for an answer only
//     once the provider's visibility delay has passed too.
//
// DESIGN.md ("Zombie processors") states the guarantee and its assumptions.

// membership confirms, with a Heartbeat of the member's own id and
// generation sent to the group coordinator, that this process is still a
// member of the group. The coordinator expels a member only after a full
// session timeout without a heartbeat (or a rebalance timeout, which is
// never shorter), counted from when it received the last one; a heartbeat
// sent at S and accepted therefore proves membership until S plus the
// session timeout. A confirmation is trusted for half of that (deadline):
// every state write must leave the process before it (the record's context
// deadline: franz-go fails a record whose context ended before its request
// is written, so a write queued before a pause is dropped, not sent after
// it). It is renewed on demand once a quarter session timeout old, one
// Heartbeat at a time, so a write or call starts with at least a quarter
// session timeout of trust left; under load that costs about one request
// per quarter session timeout.
type membership struct {
	// confirm sends one Heartbeat and reports whether the coordinator
	// accepted it (an error is a failure to ask, not an answer).
	confirm func(ctx context.Context) (bool, error)
	trust   time.Duration // how long a confirmation is trusted
	now     func() time.Time

	mu       sync.Mutex
	until    time.Time     // the last confirmation is trusted before this (its send time + trust)
	inflight chan struct{} // closed when the Heartbeat in flight returns
}

func newMembership(confirm func(context.Context) (bool, error), session time.Duration) *membership {
	return &membership{confirm: confirm, trust: session / 2, now: time.Now}
}

// groupHeartbeat returns a confirm function for the client's group.
func groupHeartbeat(cl *kgo.Client, group string) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		member, gen := cl.GroupMetadata()
		if member == "" || gen < 0 {
			return false, nil // not (or no longer) in the group
		}
		req := kmsg.NewPtrHeartbeatRequest()
		req.Group, req.MemberID, req.Generation = group, member, gen
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return false, err
		}
		switch err := kerr.ErrorForCode(resp.ErrorCode); err {
		case nil, kerr.RebalanceInProgress:
			// Still a member of this generation; during a rebalance the
			// member keeps what it has not been asked to give up.
			return true, nil
		default:
			return false, nil // unknown member, illegal generation, fenced
		}
	}
}

// deadline is when the last confirmation stops being trusted (zero: none).
func (m *membership) deadline() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.until
}

// fresh reports whether the last confirmation has at least half its trust
// left.
func (m *membership) fresh() bool { return m.now().Before(m.until.Add(-m.trust / 2)) }

// lose forgets the confirmation (the client reported its partitions lost).
func (m *membership) lose() {
	m.mu.Lock()
	m.until = time.Time{}
	m.mu.Unlock()
}

// await returns true once the membership is confirmed with at least half
// its trust left, asking the coordinator when it has less; it returns false when
// stop is closed first. Failed or refused confirmations are asked again
// every retry.
func (m *membership) await(stop <-chan struct{}, retry time.Duration) bool {
	for {
		m.mu.Lock()
		if m.fresh() {
			m.mu.Unlock()
			return true
		}
		wait := m.inflight
		if wait == nil {
			wait = make(chan struct{})
			m.inflight = wait
			m.mu.Unlock()
			ok := m.ask(stop)
			m.mu.Lock()
			m.inflight = nil
			close(wait)
			m.mu.Unlock()
			if ok {
				continue
			}
			if !sleep(retry, stop) {
				return false
			}
			continue
		}
		m.mu.Unlock()
		select {
		case <-wait:
		case <-stop:
			return false
		}
	}
}

// ask sends one confirmation and, when accepted, trusts it from the time
// it was sent.
func (m *membership) ask(stop <-chan struct{}) bool {
	ctx, cancel := context.WithTimeout(context.Background(), m.trust)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	sent := m.now()
	ok, err := m.confirm(ctx)
	if err != nil || !ok {
		return false
	}
	m.mu.Lock()
	if u := sent.Add(m.trust); u.After(m.until) {
		m.until = u
	}
	m.mu.Unlock()
	return true
}

// leaseEnd is when the call behind an intent can no longer be sent: its
// lease, or for an intent written without one (an earlier version), the
// intent's time plus the step timeout.
func (p *Processor) leaseEnd(ss *StepState) time.Time {
	if ss.Lease != nil {
		return *ss.Lease
	}
	if ss.Intent != nil {
		return ss.Intent.Add(p.cfg.StepTimeout)
	}
	return time.Time{}
}

// errFenced is returned by a state write the fence refused: the membership
// could not be confirmed before the partition's calls were cancelled.
var errFenced = errors.New("processor: group membership not confirmed; write not made")

// fenced waits until the processor's membership is confirmed, before a
// state write or a call that is not idempotent. False means the partition's
// in-flight work was cancelled first (deadline of a revocation, partitions
// lost, kill): the caller must not write or call.
func (h *handling) fenced() bool {
	if h.p.member == nil {
		return true
	}
	return h.p.member.await(h.part.stepCtx.Done(), fenceRetry) && h.part.stepCtx.Err() == nil
}

// fenceRetry spaces confirmations the coordinator refused or did not
// answer.
const fenceRetry = 200 * time.Millisecond
