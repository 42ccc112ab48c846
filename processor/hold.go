package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics"
)

// This file holds a step whose provider said its quota is used up (an
// integrations.Error with QuotaReset, such as Zoho CRM's API credits for
// the rolling 24 hours). Retrying would spend every order's attempts and
// dead-letter them all; waiting in the record would keep every order in
// flight for hours. Instead the step is held:
//
//   - the order's state records the step as held until the reset
//     (StepState.HeldUntil), no attempt is counted and the record finishes
//     once the order's other steps are done, so its offset is committed
//     and the rest of the chain goes on for every order;
//   - later orders reaching the step while it is held are held at once,
//     without a call;
//   - one alert tells a human, per exhaustion, not per order;
//   - when the reset time comes, or QuotaProbeInterval after the hold
//     began or a probe was refused, whichever is first, one held order is
//     resumed as a probe (an
//     internal EventHoldResume record on its partition of `orders`); when
//     its call is answered without the quota error, the others are resumed
//     at QuotaReleaseRate a second; refused again, the hold goes on until
//     the new reset.
//
// A held step survives a restart or rebalance: it is in the state, and a
// partition's held orders are found again in its local store once the
// partition is restored.

// EventHoldResume asks the processor to run an order's held steps again.
// It carries no customer data.
const EventHoldResume = "orderflow.hold_resume"

// probeTimeout bounds how long a probe may stay without an answer before
// another held order probes instead (its record may sit behind a slow
// one of its order, or its partition moved).
func (p *Processor) probeTimeout() time.Duration {
	return max(4*p.cfg.StepTimeout, 30*time.Second)
}

// holds tracks the held steps of the processor's partitions.
type holds struct {
	p *Processor
	// engaged is set once any step was held: until then a call takes no
	// lock here.
	engaged atomic.Bool
	mu      sync.Mutex
	steps   map[string]*stepHold
	wake    chan struct{}
	now     func() time.Time
}

// stepHold is one step's hold. until is zero when the step is not held;
// probe is the order resumed to probe the provider, "" while none is.
type stepHold struct {
	until time.Time
	// since is when the hold began or a probe was last refused: the next
	// probe is due at until or since + QuotaProbeInterval, the earlier.
	since     time.Time
	reason    string
	probe     string
	probeAt   time.Time
	releasing bool
	// released is the end the hold had when an answered probe last
	// released it: an order's own HeldUntil up to it is what that hold
	// left in the order's state, and never holds the step again.
	released time.Time
	// keys are the held orders by partition.
	keys map[int32]map[string]struct{}
}

func newHolds(p *Processor) *holds {
	return &holds{p: p, steps: map[string]*stepHold{}, wake: make(chan struct{}, 1), now: time.Now}
}

// setClock replaces the clock (tests) and runs a pass.
func (hs *holds) setClock(now func() time.Time) {
	hs.mu.Lock()
	hs.now = now
	hs.mu.Unlock()
	hs.signal()
}

func (hs *holds) step(name string) *stepHold {
	sh := hs.steps[name]
	if sh == nil {
		sh = &stepHold{keys: map[int32]map[string]struct{}{}}
		hs.steps[name] = sh
	}
	return sh
}

func (sh *stepHold) add(part int32, key string) {
	m := sh.keys[part]
	if m == nil {
		m = map[string]struct{}{}
		sh.keys[part] = m
	}
	m[key] = struct{}{}
}

func (sh *stepHold) remove(part int32, key string) {
	if m := sh.keys[part]; m != nil {
		delete(m, key)
		if len(m) == 0 {
			delete(sh.keys, part)
		}
	}
}

func (sh *stepHold) count() int {
	n := 0
	for _, m := range sh.keys {
		n += len(m)
	}
	return n
}

// held is how many orders are held at the step: those waiting, and the
// probe (taken off the list while its call is out, still held until
// answered).
func (sh *stepHold) held() int {
	n := sh.count()
	if sh.probe != "" {
		listed := false
		for _, m := range sh.keys {
			if _, ok := m[sh.probe]; ok {
				listed = true
				break
			}
		}
		if !listed {
			n++
		}
	}
	return n
}

// gauges sets the step's metrics. hs.mu is held.
func (hs *holds) gauges(step string, sh *stepHold) {
	hs.p.m.held.WithLabelValues(step).Set(float64(sh.held()))
	until := 0.0
	if !sh.until.IsZero() {
		until = float64(sh.until.Unix())
	}
	hs.p.m.heldUntil.WithLabelValues(step).Set(until)
}

func (hs *holds) signal() {
	select {
	case hs.wake <- struct{}{}:
	default:
	}
}

// gate decides, before a call, whether the order's step is held: while
// the step's hold lasts (every order but the probe), or when the order's
// own state says held until a time still to come (found before the
// partition's scan) and later than the end of a hold already released
// (a resumed order still carries that one until its call is answered).
// It returns the hold's end and reason.
func (hs *holds) gate(step string, part int32, key string, ss *StepState) (time.Time, string, bool) {
	if !hs.engaged.Load() && ss.HeldUntil == nil {
		return time.Time{}, "", false
	}
	hs.engaged.Store(true)
	hs.mu.Lock()
	defer hs.mu.Unlock()
	sh := hs.step(step)
	if sh.until.IsZero() && ss.HeldUntil != nil && ss.HeldUntil.After(hs.now()) && ss.HeldUntil.After(sh.released) && !sh.releasing {
		sh.until, sh.reason, sh.since = *ss.HeldUntil, ss.HeldReason, hs.now()
		hs.signal()
	}
	if sh.until.IsZero() || sh.probe == key {
		return time.Time{}, "", false
	}
	sh.add(part, key)
	hs.gauges(step, sh)
	return sh.until, sh.reason, true
}

// exhausted records a call refused for the quota until reset; it reports
// whether this starts a hold (the one alert), not a probe refused again
// or an order whose call was already under way.
func (hs *holds) exhausted(step string, part int32, key string, reset time.Time, reason string) (started bool) {
	hs.engaged.Store(true)
	hs.mu.Lock()
	defer hs.mu.Unlock()
	sh := hs.step(step)
	started = sh.until.IsZero() && !sh.releasing
	if reset.After(sh.until) {
		sh.until = reset
	}
	sh.reason, sh.since = reason, hs.now()
	sh.releasing = false
	if sh.probe == key {
		sh.probe = ""
	}
	sh.add(part, key)
	if started {
		hs.p.m.quotaExhausted.WithLabelValues(step).Inc()
	}
	hs.gauges(step, sh)
	hs.signal()
	return started
}

// answered records a call of the step answered without the quota error
// (a success or any other failure): the order is no longer held, and an
// answered probe releases the others.
func (hs *holds) answered(step string, part int32, key string) {
	if !hs.engaged.Load() {
		return
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	sh := hs.steps[step]
	if sh == nil || sh.until.IsZero() && len(sh.keys[part]) == 0 {
		return
	}
	sh.remove(part, key)
	if !sh.until.IsZero() && sh.probe == key {
		hs.p.log.Info("quota probe answered: held orders resume", "step", step, "held", sh.count(), "rate_per_second", hs.p.cfg.QuotaReleaseRate)
		sh.released = sh.until
		sh.until, sh.reason, sh.probe, sh.releasing = time.Time{}, "", "", true
		hs.signal()
	}
	hs.gauges(step, sh)
}

// adopt records an order found held in a restored partition's store.
func (hs *holds) adopt(step string, part int32, key string, until time.Time, reason string) {
	hs.engaged.Store(true)
	hs.mu.Lock()
	defer hs.mu.Unlock()
	sh := hs.step(step)
	if sh.until.IsZero() && !until.After(sh.released) {
		// Left by a hold already released: the order resumes with the
		// others, the step stays free.
		sh.releasing = true
	} else if sh.until.IsZero() && !sh.releasing {
		sh.until, sh.reason, sh.since = until, reason, hs.now()
	} else if !sh.until.IsZero() && until.After(sh.until) {
		sh.until = until
	}
	sh.add(part, key)
	hs.gauges(step, sh)
	hs.signal()
}

// dropPartition forgets the held orders of a partition no longer owned
// (its next owner finds them in its store).
func (hs *holds) dropPartition(part int32) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for step, sh := range hs.steps {
		delete(sh.keys, part)
		hs.gauges(step, sh)
	}
}

// scan finds the held orders of a restored partition in its local store.
func (hs *holds) scan(part *partition) {
	select {
	case <-part.ready:
	case <-part.stopCh:
		return
	}
	if part.degraded.Load() {
		return
	}
	marker := []byte(`"held_until"`)
	found := 0
	err := part.store.Each(func(key string, val []byte, _ int64) bool {
		if !bytes.Contains(val, marker) {
			return !part.stopping()
		}
		var st struct {
			Status Status                `json:"status"`
			Steps  map[string]*StepState `json:"steps"`
		}
		if json.Unmarshal(val, &st) != nil || st.Status == StatusCompleted || st.Status == StatusErased {
			return !part.stopping()
		}
		for step, ss := range st.Steps {
			if ss != nil && !ss.Done && ss.HeldUntil != nil {
				if _, in := hs.p.steps[step]; in {
					hs.adopt(step, part.num, key, *ss.HeldUntil, ss.HeldReason)
					found++
				}
			}
		}
		return !part.stopping()
	})
	if part.stopping() {
		return // take forgot the partition's held orders
	}
	if err != nil {
		part.degrade(err)
		return
	}
	if found > 0 {
		hs.p.log.Info("held steps found in the restored states", "partition", part.num, "held", found)
	}
}

// loop resumes held orders: the probe when a hold's reset time comes,
// then the others at QuotaReleaseRate. It returns when ctx ends.
func (hs *holds) loop(ctx context.Context) {
	tick := time.Second / time.Duration(hs.p.cfg.QuotaReleaseRate)
	tick = max(tick, 10*time.Millisecond)
	perTick := max(1, int(int64(hs.p.cfg.QuotaReleaseRate)*int64(tick)/int64(time.Second)))
	for {
		wait := hs.pass(perTick, tick)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-hs.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// resume is one order to resume.
type resume struct {
	step string
	part int32
	key  string
}

// pass starts what is due and returns how long until the next pass.
func (hs *holds) pass(perTick int, tick time.Duration) time.Duration {
	next := time.Hour
	var out []resume
	hs.mu.Lock()
	now := hs.now()
	for step, sh := range hs.steps {
		switch {
		case !sh.until.IsZero() && sh.probe != "" && now.Sub(sh.probeAt) > hs.p.probeTimeout():
			hs.p.log.Warn("quota probe without an answer; another held order probes", "step", step, "order_id", sh.probe)
			sh.probe = ""
			fallthrough
		case !sh.until.IsZero() && sh.probe == "":
			due := sh.until
			if iv := hs.p.cfg.QuotaProbeInterval; iv > 0 && sh.since.Add(iv).Before(due) {
				due = sh.since.Add(iv)
			}
			if now.Before(due) {
				next = min(next, due.Sub(now))
				continue
			}
			r, ok := sh.pick(step)
			if !ok {
				// Nothing held here any more: the next call finds out.
				sh.until, sh.reason = time.Time{}, ""
				hs.gauges(step, sh)
				continue
			}
			sh.probe, sh.probeAt = r.key, now
			out = append(out, r)
			hs.p.log.Info("one held order probes whether the provider's quota is back", "step", step, "order_id", r.key, "reset", sh.until)
			next = min(next, hs.p.probeTimeout())
		case !sh.until.IsZero():
			next = min(next, max(sh.probeAt.Add(hs.p.probeTimeout()).Sub(now), time.Millisecond))
		case sh.releasing:
			for range perTick {
				r, ok := sh.pick(step)
				if !ok {
					break
				}
				out = append(out, r)
			}
			if sh.count() == 0 {
				sh.releasing = false
				hs.p.log.Info("every held order of the step resumed", "step", step)
			} else {
				next = min(next, tick)
			}
		}
		hs.gauges(step, sh)
	}
	hs.mu.Unlock()
	for _, r := range out {
		hs.produce(r)
	}
	return next
}

// pick takes one held order off the step's list.
func (sh *stepHold) pick(step string) (resume, bool) {
	for part, m := range sh.keys {
		for key := range m {
			sh.remove(part, key)
			return resume{step: step, part: part, key: key}, true
		}
	}
	return resume{}, false
}

// produce writes the resume request of one order; a failed write puts the
// order back on the list.
func (hs *holds) produce(r resume) {
	p := hs.p
	p.mu.Lock()
	part := p.parts[r.part]
	p.mu.Unlock()
	if part == nil || part.stopping() {
		return // the partition's next owner resumes it
	}
	b, err := internalRequest(EventHoldResume, r.key, time.Now())
	if err != nil {
		return
	}
	rec := &kgo.Record{Topic: p.cfg.Topics.Orders, Partition: r.part, Key: []byte(r.key), Value: b,
		Headers: []kgo.RecordHeader{{Key: topics.HeaderEventType, Value: []byte(EventHoldResume)}}}
	ctx, cancel := context.WithTimeout(p.ioCtx, p.cfg.ProduceTimeout)
	p.gp.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		cancel()
		if err == nil {
			return
		}
		p.log.Warn("writing a resume request failed; the order stays held", "order_id", r.key, "step", r.step, "err", err)
		hs.mu.Lock()
		sh := hs.step(r.step)
		sh.add(r.part, r.key)
		if sh.probe == r.key {
			sh.probe = ""
		}
		hs.gauges(r.step, sh)
		hs.mu.Unlock()
		hs.signal()
	})
}

// holdStep records the order's step as held until the given time, with
// the provider's reason; an intent written ahead for it is dropped (no
// call is made under it). Called with mu held.
func (h *handling) holdStep(step string, ss *StepState, until time.Time, reason string) {
	u := until.UTC()
	ss.HeldUntil, ss.HeldReason = &u, truncate(reason, h.p.cfg.MaxErrorLen)
	h.held = true
	if h.preIntent[step] {
		ss.Intent, ss.Lease = nil, nil
		delete(h.preIntent, step)
	}
}

// quotaAlert is the one alert of an exhaustion.
func (p *Processor) quotaAlert(step string, until time.Time, err error) {
	p.alert(integrations.Alert{Step: step, Text: fmt.Sprintf(
		"provider of step %s refused for its quota (%s): step %s is held for every order until %s, no attempts spent; the rest of the chain goes on",
		step, truncate(err.Error(), 200), step, until.UTC().Format(time.RFC3339))})
}

// quotaHeld holds the step after its call was refused for the provider's
// quota: no attempt is counted, the circuit sees an answering provider,
// and the first refusal of an exhaustion raises the one alert. Called with
// mu held.
func (h *handling) quotaHeld(step string, ss *StepState, br *breaker, probe bool, reset time.Time, err error, elapsed float64) stepOutcome {
	br.success(probe) // the provider is up and answering
	h.p.m.stepDuration.WithLabelValues(step, outcomeHeld).Observe(elapsed)
	h.holdStep(step, ss, reset, err.Error())
	if h.p.holds.exhausted(step, h.part.num, h.key, reset, ss.HeldReason) {
		h.log().Warn("provider quota used up: the step is held for every order", "step", step, "until", reset.UTC(), "err", err)
		h.p.quotaAlert(step, reset, err)
	} else {
		h.log().Info("step held: provider quota used up", "step", step, "until", reset.UTC())
	}
	if err := h.persist(); err != nil {
		return stepStopped
	}
	return stepHeld
}

// finishHeld finishes the record of an order whose remaining steps are
// held (or read a held step): the order stays in progress, its state
// names the held steps, and the hold's release resumes it. Called with mu
// held.
func (h *handling) finishHeld() bool {
	h.st.Status = StatusInProgress
	if !h.finish() {
		return false
	}
	h.log().Info("order waits for held steps", "pending", h.st.Pending)
	return true
}
