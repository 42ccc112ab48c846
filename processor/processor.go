package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor/statestore"
	"github.com/orderflow/orderflow/topics"
)

// Providers are the provider clients the steps call. A nil provider turns
// its step off (recorded as skipped in the state), except Details, which
// every chain needs. A nil Alerter only logs.
//
// Chain, when set, is the step chain in order, and the provider fields
// other than Alerter (and a ProductionLog that reports progress) are not
// used to build it; nil means BuiltinChain of these providers.
type Providers struct {
	Chain         []Step
	Details       OrderDetails
	CRM           CRM
	ProductionLog ProductionLog
	Shipping      Shipping
	Invoicing     Invoicing
	Mailer        Mailer
	Alerter       Alerter
}

// Processor consumes `orders` in a consumer group and runs each order's step
// chain. Build it with New and run it once with Run.
type Processor struct {
	cfg  Config
	prov Providers
	log  *slog.Logger
	m    *metrics
	cl   *kgo.Client
	gp   *topics.GroupProducer // state and dead-letter writes through cl
	// clSet is closed once cl is set. franz-go may join the group and call
	// the partition callbacks before kgo.NewClient returns; they wait on it.
	clSet   chan struct{}
	kgoOpts []kgo.Opt // connection options, reused by restore clients

	// chain is the step chain; steps the same by name; names every step
	// name the orders may carry: the chain's, then absent, the built-in
	// steps left out of it (recorded as skipped).
	chain  []Step
	steps  map[string]Step
	names  []string
	absent []string
	// progressGates are the gates listed before the production log (every
	// gate when it is not in the chain): its progress reports wait for
	// them as its step does (reportProgress).
	progressGates []string

	breakers map[string]*breaker
	// holds are the steps held for their provider's quota (hold.go).
	holds *holds
	// member fences state writes and non-idempotent calls to a confirmed
	// group membership (fence.go).
	member *membership

	// unpersisted holds results of calls to providers that are not
	// idempotent whose state write failed (the partition was lost while
	// Kafka was unreachable), by "<order>/<step>". When the order comes back
	// to this process, the result is recorded instead of calling again.
	// Entries older than unpersistedTTL are dropped by the commit loop.
	unpersisted sync.Map

	mu       sync.Mutex
	parts    map[int32]*partition
	inflight atomic.Int64
	// room is signalled when in-flight records finish, waking a poll loop
	// that waits at the global bound.
	room     chan struct{}
	commitMu sync.Mutex
	// alertQ holds alerts for the one goroutine that sends them (sendAlerts).
	alertMu     sync.Mutex
	alertQ      chan integrations.Alert
	alertDone   chan struct{}
	alertClosed bool
	ioCtx       context.Context // produce and commit; cancelled by kill and at the end of Run
	ioCancel    context.CancelFunc
	killed      atomic.Bool
	runCancel   context.CancelFunc
	runCancelMu sync.Mutex
	// stopErr is what Run returns after a stop the processor asked for
	// itself (stopFor).
	stopErr error
	ran     atomic.Bool

	// stateRoot holds the partitions' local stores; stateTmp says it is a
	// temporary folder of this processor, removed at the end of Run.
	stateRoot  string
	stateTmp   bool
	stateLock  *os.File
	blockCache *statestore.Cache
	lastClean  time.Time
	// beforeLocalWrite, when set (tests), runs after a state write was
	// acknowledged and before the local store write; false skips the local
	// write, as a crash between the two would.
	beforeLocalWrite func(partition int32, key string) bool
}

// maxFetchBytes caps one fetch response (franz-go's default is 50 MiB).
const maxFetchBytes = 8 << 20

// New validates cfg and builds a Processor. kgoOpts are the connection
// options (seed brokers, TLS, SASL); the processor adds the consumer-group,
// commit and partitioning options itself. reg receives the metrics (nil: a
// private registry).
func New(cfg Config, prov Providers, kgoOpts []kgo.Opt, log *slog.Logger, reg prometheus.Registerer) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	chain := prov.Chain
	if chain == nil {
		if prov.Details == nil {
			return nil, errors.New("processor: the order details provider is required")
		}
		chain = BuiltinChain(prov)
	}
	if err := ValidateChain(chain); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("processor: register metrics: %w", err)
	}
	p := &Processor{
		cfg:      cfg,
		prov:     prov,
		chain:    slices.Clone(chain),
		steps:    map[string]Step{},
		log:      log,
		m:        m,
		kgoOpts:  append([]kgo.Opt(nil), kgoOpts...),
		breakers: map[string]*breaker{},
		parts:    map[int32]*partition{},
		room:     make(chan struct{}, 1),
	}
	if err := p.openStateRoot(); err != nil {
		return nil, err
	}
	p.ioCtx, p.ioCancel = context.WithCancel(context.Background())
	for _, s := range chain {
		p.steps[s.Name()] = s
		p.names = append(p.names, s.Name())
	}
	for _, name := range Chain {
		if _, in := p.steps[name]; !in {
			p.absent = append(p.absent, name)
			p.names = append(p.names, name)
		}
	}
	for _, s := range chain {
		if s.Name() == StepProductionLog {
			break
		}
		if isGate(s) {
			p.progressGates = append(p.progressGates, s.Name())
		}
	}
	for _, step := range p.names {
		p.breakers[step] = newBreaker(step, cfg.Breaker, p.circuitChanged)
		m.circuit.WithLabelValues(step).Set(circuitClosed)
	}
	p.holds = newHolds(p)
	opts := append(append([]kgo.Opt(nil), kgoOpts...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics.Orders),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(cfg.SessionTimeout/3), // a third of it, as Kafka advises
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		kgo.DisableAutoCommit(),
		// Rebalances are blocked only between a poll and the hand-off of its
		// records to the partition schedulers (microseconds, never across a
		// step), so a revoked partition never receives records of a poll
		// made before the revocation.
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// A partition resumed after an in-flight pause joins the next fetch
		// only when the current one returns; a short wait keeps that quick.
		kgo.FetchMaxWait(250*time.Millisecond),
		// What waits in the client's buffer while the poll loop is at the
		// in-flight bound: at most one fetch per broker of this size.
		kgo.FetchMaxBytes(maxFetchBytes),
		kgo.OnPartitionsAssigned(p.onAssigned),
		kgo.OnPartitionsRevoked(p.onRevoked),
		kgo.OnPartitionsLost(p.onLost),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// State and dead-letter writes leave in groups (topics.GroupProducer):
		// one produce request per broker while the next group forms.
		kgo.ManualFlushing(),
	)
	// Receive spans only: the state and dead-letter writes have spans of
	// their own (trace.go), and their records keep the headers they have.
	opts = append(opts, cfg.Tracing.KafkaConsumerOpts(cfg.Group)...)
	p.clSet = make(chan struct{})
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		p.closeStateRoot()
		return nil, fmt.Errorf("processor: kafka client: %w", err)
	}
	p.cl = cl
	p.member = newMembership(groupHeartbeat(cl, cfg.Group), cfg.SessionTimeout)
	p.gp = topics.NewGroupProducer(cl, cfg.ProduceTimeout)
	close(p.clSet)
	return p, nil
}

// Run consumes until ctx is cancelled, then stops fetching, gives in-flight
// steps RevokeDeadline to finish, persists and commits what finished, leaves
// the group and returns nil. It returns an error only when the processor
// cannot run at all.
func (p *Processor) Run(ctx context.Context) error {
	if !p.ran.CompareAndSwap(false, true) {
		return errors.New("processor: Run called twice")
	}
	defer p.closeStateRoot()
	if err := p.checkTopics(ctx); err != nil {
		p.closeProducer()
		p.cl.Close()
		if ctx.Err() != nil {
			return nil // stopped before it started: not a failure
		}
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	p.runCancelMu.Lock()
	p.runCancel = cancel
	p.runCancelMu.Unlock()
	defer cancel()

	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		p.commitLoop(runCtx)
	}()
	bg.Add(1)
	go func() {
		defer bg.Done()
		p.holds.loop(runCtx)
	}()

	p.log.Info("processor started", "group", p.cfg.Group, "topic", p.cfg.Topics.Orders)
	if p.cfg.OnStarted != nil {
		p.cfg.OnStarted()
	}
	for {
		// Never take more records than the global bound leaves room for.
		// At the bound the loop waits instead of pausing the topic: franz-go
		// holds at most one fetch per broker until it is polled, so the
		// fetched records wait decoded in its buffer (a pause would drop
		// them, to be fetched and decoded again on resume).
		room := int64(p.cfg.MaxInflight) - p.inflight.Load()
		if room <= 0 {
			select {
			case <-p.room:
			case <-runCtx.Done():
			}
			if runCtx.Err() == nil {
				continue
			}
		}
		fetches := p.cl.PollRecords(runCtx, int(min(max(room, 1), 10000)))
		if runCtx.Err() != nil || fetches.IsClientClosed() {
			p.cl.AllowRebalance()
			break
		}
		failed := false
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) {
				failed = true
				p.log.Warn("fetch failed", "topic", topic, "partition", partition, "err", err)
			}
		})
		p.dispatch(fetches)
		p.cl.AllowRebalance()
		if failed && fetches.NumRecords() == 0 {
			select { // do not spin on a persistent fetch error
			case <-runCtx.Done():
			case <-time.After(time.Second):
			}
		}
	}

	bg.Wait()
	if p.killed.Load() {
		p.stopAll(0, false)
	} else {
		p.stopAll(p.cfg.RevokeDeadline, true)
	}
	p.closeProducer()
	p.cl.CloseAllowingRebalance()
	p.waitAlerts(p.cfg.AlertTimeout)
	p.ioCancel()
	p.log.Info("processor stopped")
	p.runCancelMu.Lock()
	defer p.runCancelMu.Unlock()
	return p.stopErr
}

// stopFor stops the processor as a SIGTERM would (in-flight steps get the
// revoke deadline, the offsets are committed) and makes Run return err:
// for what only a restart mends.
func (p *Processor) stopFor(err error) {
	p.runCancelMu.Lock()
	defer p.runCancelMu.Unlock()
	if p.stopErr == nil {
		p.stopErr = err
	}
	if p.runCancel != nil {
		p.runCancel()
	}
}

// closeProducer stops the group producer once nothing writes any more; what
// it still holds gets ProduceTimeout to be acknowledged.
func (p *Processor) closeProducer() {
	ctx, cancel := context.WithTimeout(p.ioCtx, p.cfg.ProduceTimeout)
	defer cancel()
	_ = p.gp.Close(ctx)
}

// checkTopics verifies that the three topics exist with one partition
// count: state and dead letters go to the partition number of their record.
func (p *Processor) checkTopics(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	names := []string{p.cfg.Topics.Orders, p.cfg.Topics.State, p.cfg.Topics.DLQ}
	details, err := kadm.NewClient(p.cl).ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("processor: list topics: %w", err)
	}
	want := -1
	for _, name := range names {
		d, ok := details[name]
		if !ok || d.Err != nil {
			return fmt.Errorf("processor: topic %s is missing (run 'orderflow topics create')", name)
		}
		if want < 0 {
			want = len(d.Partitions)
		} else if len(d.Partitions) != want {
			return fmt.Errorf("processor: %s has %d partitions, %s has %d: they must be co-partitioned (run 'orderflow topics check')",
				name, len(d.Partitions), p.cfg.Topics.Orders, want)
		}
	}
	return nil
}

// kill stops the processor as a crash would: no deadline for in-flight
// steps, no state writes after it, no commit. It exists for tests.
func (p *Processor) kill() {
	p.killed.Store(true)
	p.ioCancel()
	p.mu.Lock()
	for _, part := range p.parts {
		part.beginStop()
		part.stepCancel()
	}
	p.mu.Unlock()
	p.runCancelMu.Lock()
	if p.runCancel != nil {
		p.runCancel()
	}
	p.runCancelMu.Unlock()
}

// dispatch hands fetched records to their partition schedulers and pauses
// a partition's fetching at the per-partition bound.
func (p *Processor) dispatch(fetches kgo.Fetches) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pause []int32
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		part := p.parts[fp.Partition]
		if part == nil || fp.Topic != p.cfg.Topics.Orders {
			return
		}
		part.highWatermark.Store(fp.HighWatermark)
		added := 0
		for _, r := range fp.Records {
			if part.sched.add(r) {
				added++
			}
		}
		n := p.inflight.Add(int64(added))
		p.m.inflight.Set(float64(n))
		if !part.paused.Load() && part.sched.pending() >= p.cfg.MaxInflightPerPartition {
			part.paused.Store(true)
			pause = append(pause, part.num)
		}
	})
	if len(pause) > 0 {
		p.cl.PauseFetchPartitions(map[string][]int32{p.cfg.Topics.Orders: pause})
	}
}

// released lowers the in-flight count by n and wakes a poll loop waiting
// for room.
func (p *Processor) released(n int64) {
	v := p.inflight.Add(-n)
	p.m.inflight.Set(float64(v))
	select {
	case p.room <- struct{}{}:
	default:
	}
}

// recordFinished updates the in-flight count and resumes a partition
// paused at its bound once below it.
func (p *Processor) recordFinished(part *partition) {
	p.released(1)
	if !part.paused.Load() {
		return // fast path; the flag is re-checked under the lock
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if part.paused.Load() && part.sched.pending() < p.cfg.MaxInflightPerPartition && p.parts[part.num] == part {
		part.paused.Store(false)
		p.cl.ResumeFetchPartitions(map[string][]int32{p.cfg.Topics.Orders: {part.num}})
	}
}

func (p *Processor) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	<-p.clSet
	nums := assigned[p.cfg.Topics.Orders]
	if len(nums) == 0 || p.killed.Load() {
		return
	}
	p.mu.Lock()
	for _, n := range nums {
		if p.parts[n] != nil {
			continue
		}
		part := p.newPartition(n)
		p.parts[n] = part
		go p.restore(part)
		go p.holds.scan(part)
	}
	p.mu.Unlock()
	p.log.Info("partitions assigned", "partitions", nums)
}

func (p *Processor) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	<-p.clSet
	nums := revoked[p.cfg.Topics.Orders]
	if len(nums) == 0 {
		return
	}
	p.log.Info("partitions revoked", "partitions", nums)
	if p.killed.Load() {
		p.stop(p.take(nums), 0, false)
		return
	}
	p.stop(p.take(nums), p.cfg.RevokeDeadline, true)
}

func (p *Processor) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	<-p.clSet
	nums := lost[p.cfg.Topics.Orders]
	if len(nums) == 0 {
		return
	}
	// Another member may own these already: stop at once, commit nothing.
	p.member.lose()
	p.log.Warn("partitions lost", "partitions", nums)
	p.stop(p.take(nums), 0, false)
}

// take removes partitions from the assignment and resumes any paused
// fetching of them (a pause outlives a revocation otherwise).
func (p *Processor) take(nums []int32) []*partition {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*partition
	var resume []int32
	for _, n := range nums {
		if part := p.parts[n]; part != nil {
			delete(p.parts, n)
			p.holds.dropPartition(n)
			out = append(out, part)
			if part.paused.Load() {
				resume = append(resume, n)
			}
		}
	}
	if len(resume) > 0 {
		p.cl.ResumeFetchPartitions(map[string][]int32{p.cfg.Topics.Orders: resume})
	}
	return out
}

func (p *Processor) stopAll(deadline time.Duration, commit bool) {
	p.mu.Lock()
	nums := make([]int32, 0, len(p.parts))
	for n := range p.parts {
		nums = append(nums, n)
	}
	p.mu.Unlock()
	p.stop(p.take(nums), deadline, commit)
}

// stop stops partitions: no new step starts, in-flight steps get deadline,
// then what finished is committed (when commit is true).
func (p *Processor) stop(parts []*partition, deadline time.Duration, commit bool) {
	if len(parts) == 0 {
		return
	}
	for _, part := range parts {
		part.beginStop()
		part.sched.stop()
	}
	timer := time.AfterFunc(deadline, func() {
		for _, part := range parts {
			part.stepCancel()
		}
	})
	for _, part := range parts {
		part.sched.wait()
	}
	timer.Stop()
	for _, part := range parts {
		part.stepCancel()
		p.released(int64(part.sched.pending()))
		p.m.lag.DeleteLabelValues(partitionLabel(part.num))
	}
	if commit && !p.killed.Load() {
		ctx, cancel := context.WithTimeout(p.ioCtx, p.cfg.ProduceTimeout)
		defer cancel()
		if err := p.commit(ctx, parts); err != nil {
			p.log.Error("commit on revocation failed; the next owner redoes the uncommitted records", "err", err)
		}
	}
	p.closeStores(parts)
}

func (p *Processor) commitLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		parts := make([]*partition, 0, len(p.parts))
		for _, part := range p.parts {
			parts = append(parts, part)
		}
		p.mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, p.cfg.ProduceTimeout)
		if err := p.commit(cctx, parts); err != nil && ctx.Err() == nil {
			p.log.Warn("commit failed; retrying at the next interval", "err", err)
		}
		cancel()
		if n := pruneUnpersisted(&p.unpersisted, time.Now().Add(-unpersistedTTL)); n > 0 {
			p.log.Info("dropped results kept for orders that did not return", "count", n)
		}
		p.stateGauges(parts)
		p.housekeeping(ctx, parts)
	}
}

// commit commits the watermark of every partition whose watermark moved.
func (p *Processor) commit(ctx context.Context, parts []*partition) error {
	p.commitMu.Lock()
	defer p.commitMu.Unlock()
	offsets := map[int32]kgo.EpochOffset{}
	for _, part := range parts {
		mark, epoch := part.sched.watermark()
		if hw := part.highWatermark.Load(); hw > 0 && mark >= 0 {
			p.m.lag.WithLabelValues(partitionLabel(part.num)).Set(float64(max(hw-mark, 0)))
		}
		if mark > part.committed {
			offsets[part.num] = kgo.EpochOffset{Epoch: epoch, Offset: mark}
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	var reqErr, partErr error
	p.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{p.cfg.Topics.Orders: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				reqErr = err
				return
			}
			for _, t := range resp.Topics {
				for _, pr := range t.Partitions {
					if e := kerr.ErrorForCode(pr.ErrorCode); e != nil {
						partErr = fmt.Errorf("partition %d: %w", pr.Partition, e)
						delete(offsets, pr.Partition)
					}
				}
			}
		})
	if reqErr != nil {
		return reqErr
	}
	for _, part := range parts {
		if o, ok := offsets[part.num]; ok {
			part.committed = o.Offset
		}
	}
	return partErr
}

// alertQueueSize bounds the alerts waiting for the Alerter. A burst beyond
// it (thousands of dead letters while the alerter is slow) is logged and
// counted in orderflow_alerts_dropped_total, not held in memory.
const alertQueueSize = 1024

// alert tells a human, without blocking the caller: it is logged once, then
// queued for one sending goroutine. The order is named by its OF- number.
func (p *Processor) alert(a integrations.Alert) {
	p.m.alerts.Inc()
	attrs := []any{"step", a.Step, "text", a.Text}
	if a.OrderID != "" {
		attrs = append([]any{"order", integrations.OrderNumber(a.OrderID), "order_id", a.OrderID}, attrs...)
	}
	p.log.Warn("alert", attrs...)
	if p.prov.Alerter == nil {
		return
	}
	p.alertMu.Lock()
	defer p.alertMu.Unlock()
	if p.alertClosed {
		p.m.alertsDropped.Inc()
		return
	}
	if p.alertQ == nil {
		p.alertQ, p.alertDone = make(chan integrations.Alert, alertQueueSize), make(chan struct{})
		go p.sendAlerts(p.alertQ, p.alertDone)
	}
	select {
	case p.alertQ <- a:
	default:
		p.m.alertsDropped.Inc()
	}
}

// sendAlerts hands queued alerts to the Alerter one at a time.
func (p *Processor) sendAlerts(q <-chan integrations.Alert, done chan<- struct{}) {
	defer close(done)
	for a := range q {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.AlertTimeout)
		if err := p.prov.Alerter.Alert(ctx, a); err != nil {
			p.log.Error("alert failed", "order", integrations.OrderNumber(a.OrderID), "order_id", a.OrderID, "step", a.Step, "err", err)
		}
		cancel()
	}
}

// waitAlerts stops taking alerts and waits up to d for the queued ones.
func (p *Processor) waitAlerts(d time.Duration) {
	p.alertMu.Lock()
	p.alertClosed = true
	q, done := p.alertQ, p.alertDone
	if q != nil {
		close(q)
	}
	p.alertMu.Unlock()
	if q == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(d):
		p.log.Warn("alerts still being sent at shutdown", "queued", len(q))
	}
}

// attempts is "1 attempt", "3 attempts".
func attempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return strconv.Itoa(n) + " attempts"
}

func (p *Processor) circuitChanged(step string, from, to int) {
	p.m.circuit.WithLabelValues(step).Set(float64(to))
	p.log.Warn("circuit changed", "step", step, "from", circuitNames[from], "to", circuitNames[to])
	switch to {
	case circuitOpen:
		if from == circuitClosed {
			p.alert(integrations.Alert{Step: step, Text: "provider of step " + step + " is failing for every order: circuit open, orders wait"})
		}
	case circuitClosed:
		p.alert(integrations.Alert{Step: step, Text: "provider of step " + step + " recovered: circuit closed, orders resume"})
	}
}

// Ready reports whether the processor can reach Kafka: a readiness probe
// for load balancers and orchestrators (the process itself is alive as long
// as it answers at all).
func (p *Processor) Ready(ctx context.Context) error {
	return p.cl.Ping(ctx)
}
