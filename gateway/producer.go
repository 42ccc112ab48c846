package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrProducerClosed is a record's error when it was handed to a closed
// KafkaProducer.
var ErrProducerClosed = errors.New("gateway: producer closed")

// KafkaProducer produces the gateway's records in groups (a group commit):
// records handed to Produce wait in a queue while the previous group is on
// its way; then the whole queue goes to the broker together, as one produce
// request per broker, and the next group forms while that one is
// acknowledged.
//
// franz-go on its own (idempotent, up to five requests in flight per
// broker) sends whatever arrived since the last request as soon as a slot
// frees, so under a few dozen concurrent webhooks each request carried two
// or three records across the twelve partitions, and the broker's cost per
// request made it the largest CPU user of the ingest path (150–200 µs of
// broker CPU per webhook at 64 connections; a group commit brings requests
// to tens of records). At low load a group is one record and waits for
// nothing: there is no linger.
//
// Delivery is unchanged: acks from all in-sync replicas, idempotent, and a
// record's promise is called when the broker acknowledged it or it failed.
// A record whose context ended before its group left (the webhook already
// answered 503) is failed with that error and never produced.
type KafkaProducer struct {
	cl           *kgo.Client
	flushTimeout time.Duration

	mu     sync.Mutex
	queue  []queued
	closed bool
	wake   chan struct{} // buffered 1
	quit   chan struct{} // closed when Close gives up waiting
	done   chan struct{} // closed when the loop returns

	groups  atomic.Int64
	records atomic.Int64
}

type queued struct {
	ctx     context.Context
	rec     *kgo.Record
	promise func(*kgo.Record, error)
}

var _ Producer = (*KafkaProducer)(nil)

// NewKafkaProducer connects a producer for cfg.Topic with the connection
// options connOpts (seed brokers, TLS, SASL) and starts its loop. Close it
// when done.
func NewKafkaProducer(cfg Config, connOpts ...kgo.Opt) (*KafkaProducer, error) {
	cfg = cfg.withDefaults()
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), connOpts...), producerOpts(cfg)...)...)
	if err != nil {
		return nil, err
	}
	p := &KafkaProducer{
		cl:           cl,
		flushTimeout: cfg.ProduceTimeout,
		wake:         make(chan struct{}, 1),
		quit:         make(chan struct{}),
		done:         make(chan struct{}),
	}
	go p.loop()
	return p, nil
}

// producerOpts are the producer options on top of the connection options:
// acks from all in-sync replicas with idempotence (franz-go's default,
// stated here so it cannot drift), manual flushing (the group commit decides
// when records leave), and a record buffer large enough that a burst filling
// the in-flight byte budget with small events never fails in Produce.
// Records keep franz-go's default partitioner, which maps a key to a
// partition with murmur2 exactly as the Java client does.
func producerOpts(cfg Config) []kgo.Opt {
	maxRecords := int(cfg.MaxInflightBytes / 512)
	if maxRecords < 50_000 {
		maxRecords = 50_000
	}
	return []kgo.Opt{
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ManualFlushing(),
		kgo.MaxBufferedRecords(maxRecords),
	}
}

// Produce queues r for the next group; promise is called once with the
// outcome.
func (p *KafkaProducer) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		promise(r, ErrProducerClosed)
		return
	}
	p.queue = append(p.queue, queued{ctx: ctx, rec: r, promise: promise})
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Ping checks that a broker answers.
func (p *KafkaProducer) Ping(ctx context.Context) error { return p.cl.Ping(ctx) }

// Groups returns how many groups were sent and how many records they held.
func (p *KafkaProducer) Groups() (groups, records int64) {
	return p.groups.Load(), p.records.Load()
}

// Close stops taking records, sends what is queued and waits for it until
// ctx ends; records still unacknowledged then are failed. It closes the
// client.
func (p *KafkaProducer) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	select {
	case <-p.done:
		p.cl.Close()
		return nil
	case <-ctx.Done():
		close(p.quit)
		p.cl.Close() // fails what is still buffered, which ends a running flush
		<-p.done
		return ctx.Err()
	}
}

func (p *KafkaProducer) loop() {
	defer close(p.done)
	for {
		p.mu.Lock()
		for len(p.queue) == 0 && !p.closed && p.cl.BufferedProduceRecords() == 0 {
			p.mu.Unlock()
			select {
			case <-p.wake:
			case <-p.quit:
				return
			}
			p.mu.Lock()
		}
		group := p.queue
		p.queue = nil
		closed := p.closed
		p.mu.Unlock()

		if len(group) == 0 && p.cl.BufferedProduceRecords() == 0 && closed {
			return
		}
		p.send(group)
		select {
		case <-p.quit:
			return
		default:
		}
	}
}

// send hands a group to the client and flushes it: one produce request per
// broker, then the acknowledgements. Records left over by a flush that timed
// out (the broker is unreachable) go with the next flush.
func (p *KafkaProducer) send(group []queued) {
	n := 0
	for _, q := range group {
		if err := q.ctx.Err(); err != nil {
			q.promise(q.rec, err) // its webhook already answered
			continue
		}
		p.cl.Produce(q.ctx, q.rec, q.promise)
		n++
	}
	if n > 0 {
		p.groups.Add(1)
		p.records.Add(int64(n))
	}
	if p.cl.BufferedProduceRecords() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.flushTimeout)
	defer cancel()
	_ = p.cl.Flush(ctx)
}
