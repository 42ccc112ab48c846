package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/test/testenv"
	"github.com/orderflow/orderflow/topics"
)

// kafkaGateway is a gateway on a real broker and, optionally, a real Redis,
// served over HTTP like in production.
type kafkaGateway struct {
	g      *Gateway
	srv    *httptest.Server
	reg    *prometheus.Registry
	client *KafkaProducer
	rdb    *redis.Client
	dedup  *RedisDeduper
	names  topics.Names
	http   *http.Client
}

var quietRedis sync.Once

func newKafkaGateway(t *testing.T, brokers string, names topics.Names, redisAddr string, mod func(*Config)) *kafkaGateway {
	t.Helper()
	quietRedis.Do(func() { redis.SetLogger(RedisLogger{Logger: slog.New(slog.DiscardHandler)}) })
	cfg := Config{Topic: names.Orders, Secrets: []string{testSecret}, ProduceTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	client, err := NewKafkaProducer(cfg, kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Close(ctx)
	})
	kg := &kafkaGateway{reg: prometheus.NewRegistry(), client: client, names: names}
	var dd Deduper
	if redisAddr != "" {
		kg.rdb = redis.NewClient(RedisOptions(redisAddr, ""))
		prefix := "orderflow-test:" + names.Prefix
		t.Cleanup(func() {
			// Leave the shared Redis as found; errors only mean it is gone.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			iter := kg.rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				kg.rdb.Del(ctx, iter.Val())
			}
			kg.rdb.Close()
		})
		kg.dedup = NewRedisDeduper(kg.rdb, prefix)
		dd = kg.dedup
	}
	kg.g, err = New(cfg, client, dd, slog.New(slog.NewTextHandler(io.Discard, nil)), kg.reg)
	if err != nil {
		t.Fatal(err)
	}
	kg.srv = httptest.NewServer(kg.g.Handler())
	t.Cleanup(kg.srv.Close)
	kg.http = &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096},
	}
	return kg
}

// deliver posts a freshly signed delivery of body and returns status and body.
func (kg *kafkaGateway) deliver(t testing.TB, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, kg.srv.URL+WebhookPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(SignatureHeader, sign(body, testSecret, time.Now()))
	resp, err := kg.http.Do(req)
	if err != nil {
		t.Errorf("deliver: %v", err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// marked reports whether eventID is in Redis once the marks the gateway
// left to it were written.
func (kg *kafkaGateway) marked(t testing.TB, eventID string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := kg.g.Flush(ctx); err != nil {
		t.Fatalf("flush marks: %v", err)
	}
	n, err := kg.rdb.Exists(context.Background(), kg.dedup.Key(eventID)).Result()
	if err != nil {
		t.Fatalf("redis: %v", err)
	}
	return n == 1
}

// consumeAll reads orders from the start until want records arrived or
// within passed, then keeps reading for extra to catch records beyond want.
func consumeAll(t testing.TB, brokers, topic string, want int, within, extra time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var recs []*kgo.Record
	extended := false
	for {
		if len(recs) >= want && !extended {
			cancel()
			ctx, cancel = context.WithTimeout(context.Background(), extra)
			defer cancel()
			extended = true
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return recs
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		recs = append(recs, fs.Records()...)
	}
}

// countConsumed reads the whole topic, expecting want records.
func countConsumed(t testing.TB, brokers, topic string, want int) []*kgo.Record {
	t.Helper()
	return consumeAll(t, brokers, topic, want, 30*time.Second, 2*time.Second)
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func eventBody(t testing.TB, name, eventID, objectID string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(fixture(t, name), &m); err != nil {
		t.Fatal(err)
	}
	m["id"] = eventID
	if objectID != "" {
		m["data"].(map[string]any)["object"].(map[string]any)["id"] = objectID
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIntegrationRecordOnKeyPartition(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t)
	redisAddr := testenv.Redis(t)
	names := testenv.Topics(t, brokers, 6)
	kg := newKafkaGateway(t, brokers, names, redisAddr, nil)

	deliveries := []struct{ fixture, eventID, key string }{
		{"payment_intent.succeeded", "evt_3OKpiLJZ4cn2Yx0b1c2Ld9Xa", "pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t"},
		{"checkout.session.completed", "evt_1OKpjAJZ4cn2Yx0bT6vWn2Ke", "pi_3OKpjAJZ4cn2Yx0b0Hk2Lm4N"},
		{"checkout.session.completed.no_payment_intent", "evt_1OKpkBJZ4cn2Yx0bR2s4T6uV", "cs_test_b9Z8y7X6w5V4u3T2s1R0qPoNmLkJiHgFeDcB"},
		{"charge.refunded", "evt_3OKpiLJZ4cn2Yx0b1W9xYz0A", "pi_3OKpiLJZ4cn2Yx0b1Q8sGz7t"},
	}
	for _, d := range deliveries {
		if code, body := kg.deliver(t, fixture(t, d.fixture)); code != 200 || body != "queued\n" {
			t.Fatalf("%s: got %d %q", d.fixture, code, body)
		}
		// The gateway does not wait for its mark, but a redelivery after
		// the 200 is looked up after the mark was written.
		if code, body := kg.deliver(t, fixture(t, d.fixture)); code != 200 || body != "duplicate\n" {
			t.Fatalf("%s redelivered: got %d %q, want 200 duplicate", d.fixture, code, body)
		}
		if !kg.marked(t, d.eventID) {
			t.Errorf("%s: event id not in Redis after the ack", d.fixture)
		}
	}
	if code, body := kg.deliver(t, fixture(t, "customer.created")); code != 200 || body != "ignored\n" {
		t.Fatalf("unhandled type: got %d %q", code, body)
	}

	recs := countConsumed(t, brokers, names.Orders, len(deliveries))
	if len(recs) != len(deliveries) {
		t.Fatalf("consumed %d records, want %d", len(recs), len(deliveries))
	}
	byID := map[string]*kgo.Record{}
	for _, r := range recs {
		byID[header(r, topics.HeaderEventID)] = r
	}
	partitioner := kgo.StickyKeyPartitioner(nil).ForTopic(names.Orders)
	for _, d := range deliveries {
		r := byID[d.eventID]
		if r == nil {
			t.Errorf("%s: no record", d.eventID)
			continue
		}
		if string(r.Key) != d.key {
			t.Errorf("%s: key %q, want %q", d.eventID, r.Key, d.key)
		}
		if want := int32(partitioner.Partition(&kgo.Record{Key: []byte(d.key)}, 6)); r.Partition != want {
			t.Errorf("%s: partition %d, the murmur2 partition of its key is %d", d.eventID, r.Partition, want)
		}
		env, err := topics.DecodeEnvelope(r.Value)
		if err != nil {
			t.Errorf("%s: %v", d.eventID, err)
			continue
		}
		var ev struct {
			ID string `json:"id"`
		}
		if env.EventID != d.eventID || env.Key != d.key || env.APIVersion != "2023-10-16" || json.Unmarshal(env.Event, &ev) != nil || ev.ID != d.eventID {
			t.Errorf("%s: envelope %+v", d.eventID, env)
		}
		if header(r, topics.HeaderEventType) != env.EventType || !validTraceParent(header(r, topics.HeaderTraceParent)) {
			t.Errorf("%s: headers %v", d.eventID, r.Headers)
		}
	}
	// The PaymentIntent and the refund of its charge share a key, so a
	// partition and an order.
	if a, b := byID[deliveries[0].eventID], byID[deliveries[3].eventID]; a != nil && b != nil && (a.Partition != b.Partition || a.Offset > b.Offset) {
		t.Errorf("payment and refund on partitions %d/%d offsets %d/%d", a.Partition, b.Partition, a.Offset, b.Offset)
	}
}

func TestIntegrationSameEventTwice(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers)
	kg := newKafkaGateway(t, brokers, names, testenv.Redis(t), nil)
	body := fixture(t, "payment_intent.succeeded")
	for i, want := range []string{"queued\n", "duplicate\n"} {
		if code, got := kg.deliver(t, body); code != 200 || got != want {
			t.Fatalf("delivery %d: got %d %q, want %q", i+1, code, got, want)
		}
	}
	if recs := countConsumed(t, brokers, names.Orders, 1); len(recs) != 1 {
		t.Errorf("consumed %d records, want 1", len(recs))
	}
}

func TestIntegrationConcurrentDistinctEvents(t *testing.T) {
	t.Parallel()
	const n = 2000
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers)
	kg := newKafkaGateway(t, brokers, names, testenv.Redis(t), func(c *Config) { c.ProduceTimeout = 20 * time.Second })

	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = eventBody(t, "payment_intent.succeeded", fmt.Sprintf("evt_burst_%04d", i), fmt.Sprintf("pi_burst_%04d", i))
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[string]int{}
		start    = make(chan struct{})
	)
	for _, b := range bodies {
		wg.Go(func() {
			<-start
			code, body := kg.deliver(t, b)
			mu.Lock()
			statuses[fmt.Sprintf("%d %s", code, strings.TrimSpace(body))]++
			mu.Unlock()
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d concurrent deliveries answered in %v", n, time.Since(began))
	if statuses["200 queued"] != n {
		t.Fatalf("answers %v, want %d × 200 queued", statuses, n)
	}
	recs := countConsumed(t, brokers, names.Orders, n)
	ids := map[string]bool{}
	for _, r := range recs {
		ids[header(r, topics.HeaderEventID)] = true
	}
	if len(recs) != n || len(ids) != n {
		t.Errorf("consumed %d records with %d distinct event ids, want %d", len(recs), len(ids), n)
	}
}

func TestIntegrationBrokerStopped(t *testing.T) {
	t.Parallel()
	began := time.Now()
	broker := testenv.NewKafka(t)
	t.Logf("private broker started in %v", time.Since(began))
	names := testenv.Topics(t, broker.Addr())
	const timeout = 2 * time.Second
	kg := newKafkaGateway(t, broker.Addr(), names, testenv.Redis(t), func(c *Config) { c.ProduceTimeout = timeout })

	// A broker just started on a loaded machine may answer slower than the
	// produce timeout at first: the delivery is retried on 503, as Stripe
	// does, until it is accepted.
	before := eventBody(t, "payment_intent.succeeded", "evt_before_outage", "pi_before_outage")
	for attempt := 1; ; attempt++ {
		code, body := kg.deliver(t, before)
		if code == 200 {
			break
		}
		if code != 503 || attempt == 10 {
			t.Fatalf("before the outage, attempt %d: got %d %q", attempt, code, body)
		}
		t.Logf("before the outage, attempt %d: %d %q; retrying", attempt, code, body)
	}

	stopAt := time.Now()
	broker.Stop()
	t.Logf("broker stopped in %v", time.Since(stopAt))
	during := eventBody(t, "payment_intent.succeeded", "evt_during_outage", "pi_during_outage")
	start := time.Now()
	code, body := kg.deliver(t, during)
	elapsed := time.Since(start)
	if code != 503 {
		t.Fatalf("broker stopped: got %d %q, want 503", code, body)
	}
	if elapsed > timeout+2*time.Second {
		t.Errorf("503 after %v, want within the %v produce timeout", elapsed, timeout)
	}
	if kg.marked(t, "evt_during_outage") {
		t.Error("event marked in Redis although Kafka never acknowledged it")
	}
	if code, body := (&harnessGet{kg}).get(t, ReadyPath); code != 503 {
		t.Errorf("readyz with the broker stopped: %d %q", code, body)
	}

	startAt := time.Now()
	broker.Start(t)
	t.Logf("broker restarted in %v", time.Since(startAt))
	// Stripe retries; the client reconnects within a few attempts.
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body = kg.deliver(t, during)
		if code == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("accepted %v after the restart", time.Since(startAt))
	if code != 200 || body != "queued\n" {
		t.Fatalf("broker back: got %d %q, want 200 queued", code, body)
	}
	if !kg.marked(t, "evt_during_outage") {
		t.Error("event not marked after it was queued")
	}
	found := false
	for _, r := range consumeAll(t, broker.Addr(), names.Orders, 2, 30*time.Second, 0) {
		found = found || header(r, topics.HeaderEventID) == "evt_during_outage"
	}
	if !found {
		t.Error("the retried event is not on the topic")
	}
}

func TestIntegrationRedisStopped(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers)
	rs := testenv.NewRedis(t)
	kg := newKafkaGateway(t, brokers, names, rs.Addr(), nil)

	first := eventBody(t, "payment_intent.succeeded", "evt_redis_1", "pi_redis_1")
	if code, body := kg.deliver(t, first); code != 200 || body != "queued\n" {
		t.Fatalf("redis up: got %d %q", code, body)
	}
	rs.Stop()
	second := eventBody(t, "payment_intent.succeeded", "evt_redis_2", "pi_redis_2")
	if code, body := kg.deliver(t, second); code != 200 || body != "queued\n" {
		t.Fatalf("redis stopped: got %d %q, want 200 queued", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := kg.g.Flush(ctx); err != nil { // the failed mark is counted
		t.Fatal(err)
	}
	if got := metricValue(t, kg.reg, "orderflow_gateway_redis_errors_total", nil); got < 2 {
		t.Errorf("redis errors %v, want at least 2 (lookup and mark)", got)
	}
	recs := countConsumed(t, brokers, names.Orders, 2)
	if len(recs) != 2 || header(recs[1], topics.HeaderEventID) != "evt_redis_2" && header(recs[0], topics.HeaderEventID) != "evt_redis_2" {
		t.Errorf("consumed %d records, want both events", len(recs))
	}

	rs.Start(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := kg.deliver(t, first)
		if body == "duplicate\n" {
			break
		}
		if code != 200 || time.Now().After(deadline) {
			t.Fatalf("redis back: got %d %q, want 200 duplicate for the event marked before the outage", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type harnessGet struct{ kg *kafkaGateway }

func (h *harnessGet) get(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := h.kg.http.Get(h.kg.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// BenchmarkIntegrationHandler measures whole deliveries (HTTP handler,
// produce with acks=all to the real broker, ack) through the group-commit
// KafkaProducer, with its default linger and without one, and, for
// comparison, through a plain franz-go client (its own flushing, 1 ms
// linger), under 64 and 256 concurrent requests. It reports records per
// produce request.
func BenchmarkIntegrationHandler(b *testing.B) {
	brokers := testenv.Kafka(b)
	names := testenv.Topics(b, brokers, 12)
	base := fixture(b, "payment_intent.succeeded")
	seed := kgo.SeedBrokers(strings.Split(brokers, ",")...)
	for _, conc := range []int{64, 256} {
		for _, kind := range []string{"group-commit", "group-commit-no-linger", "franz-go-flushing"} {
			b.Run(fmt.Sprintf("%s/concurrency=%d", kind, conc), func(b *testing.B) {
				cfg := Config{Topic: names.Orders, Secrets: []string{testSecret}}
				var requests atomic.Int64
				count := kgo.WithHooks(produceRequestCounter{&requests})
				var prod Producer
				if kind != "franz-go-flushing" {
					if kind == "group-commit-no-linger" {
						cfg.ProduceLinger = -1
					}
					kp, err := NewKafkaProducer(cfg, seed, count)
					if err != nil {
						b.Fatal(err)
					}
					defer kp.Close(context.Background())
					prod = kp
				} else {
					cl, err := kgo.NewClient(seed, count, kgo.DefaultProduceTopic(cfg.Topic), kgo.RequiredAcks(kgo.AllISRAcks()),
						kgo.ProducerLinger(time.Millisecond))
					if err != nil {
						b.Fatal(err)
					}
					defer cl.Close()
					prod = cl
				}
				g, err := New(cfg, prod, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
				if err != nil {
					b.Fatal(err)
				}
				h := g.Handler()
				header := sign(base, testSecret, time.Now())
				b.SetParallelism(max(conc/runtime.GOMAXPROCS(0), 1))
				b.ReportAllocs()
				requests.Store(0)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						req := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(base))
						req.Header.Set(SignatureHeader, header)
						rec := httptest.NewRecorder()
						h.ServeHTTP(rec, req)
						if rec.Code != 200 {
							b.Fatalf("status %d %q", rec.Code, rec.Body.String())
						}
					}
				})
				b.StopTimer()
				if n := requests.Load(); n > 0 {
					b.ReportMetric(float64(b.N)/float64(n), "records/request")
				}
			})
		}
	}
}

// produceRequestCounter counts produce requests written to brokers.
type produceRequestCounter struct{ n *atomic.Int64 }

func (c produceRequestCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	if key == 0 { // Produce
		c.n.Add(1)
	}
}

func TestIntegrationRedisDeduper(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(RedisOptions(testenv.Redis(t), ""))
	defer rdb.Close()
	d := NewRedisDeduper(rdb, "orderflow-test:"+testenv.Prefix(t))
	ctx := context.Background()
	t.Cleanup(func() { rdb.Del(context.Background(), d.Key("evt_a"), d.Key("evt_short")) })

	if seen, err := d.Seen(ctx, "evt_a"); err != nil || seen {
		t.Fatalf("unmarked: seen %v err %v", seen, err)
	}
	if err := d.Mark(ctx, "evt_a", time.Hour); err != nil {
		t.Fatal(err)
	}
	if seen, err := d.Seen(ctx, "evt_a"); err != nil || !seen {
		t.Fatalf("marked: seen %v err %v", seen, err)
	}
	// SET NX: a second mark keeps the first expiry.
	if err := d.Mark(ctx, "evt_a", 96*time.Hour); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.TTL(ctx, d.Key("evt_a")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("ttl %v, want at most the first mark's hour", ttl)
	}
	if err := d.Mark(ctx, "evt_short", time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if seen, _ := d.Seen(ctx, "evt_short"); seen {
		t.Error("id still seen after its ttl")
	}
	if NewRedisDeduper(rdb, "").Key("evt_x") != DefaultRedisKeyPrefix+"evt_x" {
		t.Error("default prefix not applied")
	}
}

// TestRedisKeysOfTwoPipelines: gateways of two topic prefixes sharing a
// Redis keep separate marks (Stripe sends an event to every endpoint with
// one id); the default topic keeps the keys it always had.
func TestRedisKeysOfTwoPipelines(t *testing.T) {
	t.Parallel()
	for topic, want := range map[string]string{
		"orders":       "orderflow:gateway:event:",
		"":             "orderflow:gateway:event:",
		"shop1.orders": "orderflow:gateway:shop1.orders:event:",
	} {
		if got := RedisKeyPrefix(topic); got != want {
			t.Errorf("RedisKeyPrefix(%q) = %q, want %q", topic, got, want)
		}
	}
	rdb := redis.NewClient(RedisOptions(testenv.Redis(t), ""))
	defer rdb.Close()
	p := testenv.Prefix(t)
	a := NewRedisDeduper(rdb, RedisKeyPrefix(p+"a.orders"))
	b := NewRedisDeduper(rdb, RedisKeyPrefix(p+"b.orders"))
	ctx := context.Background()
	t.Cleanup(func() { rdb.Del(context.Background(), a.Key("evt_both"), b.Key("evt_both")) })
	if err := a.Mark(ctx, "evt_both", time.Hour); err != nil {
		t.Fatal(err)
	}
	if seen, err := b.Seen(ctx, "evt_both"); err != nil || seen {
		t.Errorf("the other pipeline's gateway: seen %v err %v, want not seen", seen, err)
	}
	if seen, err := a.Seen(ctx, "evt_both"); err != nil || !seen {
		t.Errorf("its own gateway: seen %v err %v, want seen", seen, err)
	}
}

// pipelineCounter counts the pipelines go-redis sends.
type pipelineCounter struct{ n atomic.Int64 }

func (c *pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (c *pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// countedDeduper is a RedisDeduper on the shared Redis, with its test's
// key prefix, counting the pipelines it sends.
func countedDeduper(t *testing.T) (*RedisDeduper, *redis.Client, *pipelineCounter) {
	t.Helper()
	rdb := redis.NewClient(RedisOptions(testenv.Redis(t), ""))
	t.Cleanup(func() { rdb.Close() })
	pc := &pipelineCounter{}
	rdb.AddHook(pc)
	return NewRedisDeduper(rdb, "orderflow-test:"+testenv.Prefix(t)), rdb, pc
}

// Concurrent requests share pipelines, and each still gets its own answer.
func TestIntegrationRedisDeduperPipelines(t *testing.T) {
	t.Parallel()
	d, rdb, pc := countedDeduper(t)
	ctx := context.Background()
	const n = 400
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("evt_p%d", i)
			if i%2 == 0 {
				if err := d.Mark(ctx, id, time.Minute); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen, err := d.Seen(ctx, fmt.Sprintf("evt_p%d", i))
			if err != nil {
				errs <- err
			} else if seen != (i%2 == 0) {
				errs <- fmt.Errorf("evt_p%d: seen %v", i, seen)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := pc.n.Load(); got >= 3*n/2 {
		t.Errorf("%d pipelines for %d concurrent commands: not shared", got, 3*n/2)
	}
	t.Logf("%d commands in %d pipelines", 3*n/2, pc.n.Load())
	keys := make([]string, 0, n)
	for i := range n {
		keys = append(keys, d.Key(fmt.Sprintf("evt_p%d", i)))
	}
	rdb.Del(context.Background(), keys...)
}

// A mark left to the deduper is written before any lookup that follows
// it, and Flush waits for it.
func TestIntegrationRedisDeduperMarkLater(t *testing.T) {
	t.Parallel()
	d, rdb, pc := countedDeduper(t)
	ctx := context.Background()
	const n = 300
	var failures atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("evt_l%d", i)
			d.MarkLater(id, time.Minute, func(error) { failures.Add(1) })
			if seen, err := d.Seen(ctx, id); err != nil || !seen {
				errs <- fmt.Errorf("%s looked up after its mark: seen %v, err %v", id, seen, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, n)
	for i := range n {
		keys = append(keys, d.Key(fmt.Sprintf("evt_l%d", i)))
	}
	defer rdb.Del(context.Background(), keys...)
	if got := rdb.Exists(ctx, keys...).Val(); got != n {
		t.Errorf("%d of %d marks in Redis after Flush", got, n)
	}
	if got := failures.Load(); got != 0 {
		t.Errorf("%d marks reported failed", got)
	}
	if got := pc.n.Load(); got >= 2*n {
		t.Errorf("%d pipelines for %d commands: not shared", got, 2*n)
	}
	if ttl := rdb.TTL(ctx, keys[0]).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("ttl %v, want at most a minute", ttl)
	}
}

// A lookup whose caller gave up before its pipeline left is not sent.
func TestIntegrationRedisDeduperDropsGivenUpLookup(t *testing.T) {
	t.Parallel()
	d, _, pc := countedDeduper(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Seen(ctx, "evt_gone"); !errors.Is(err, context.Canceled) {
		t.Fatalf("lookup of a caller gone: err %v, want context.Canceled", err)
	}
	if got := pc.n.Load(); got != 0 {
		t.Errorf("%d pipelines sent for a lookup nobody waits for", got)
	}
}

// While Redis hangs, commands beyond the queue's bound fail at once instead
// of piling up; the queued marks still end, failed, and Flush returns.
func TestRedisDeduperBacklogIsBounded(t *testing.T) {
	t.Parallel()
	quietRedis.Do(func() { redis.SetLogger(RedisLogger{Logger: slog.New(slog.DiscardHandler)}) })
	silent := testenv.NewSilent(t) // a Redis that hangs
	rdb := redis.NewClient(&redis.Options{Addr: silent.Addr, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1, PoolSize: 4})
	defer rdb.Close()
	d := NewRedisDeduper(rdb, "orderflow-test:")
	d.maxQueued = 3

	var mu sync.Mutex
	var failed []error
	fail := func(err error) { mu.Lock(); failed = append(failed, err); mu.Unlock() }
	d.MarkLater("evt_first", time.Minute, fail) // its pipeline hangs
	select {
	case <-silent.Received:
	case <-time.After(10 * time.Second):
		t.Fatal("the first pipeline never reached the server")
	}
	for i := range 3 {
		d.MarkLater(fmt.Sprintf("evt_q%d", i), time.Minute, fail)
	}
	mu.Lock()
	if len(failed) != 0 {
		t.Fatalf("marks within the bound failed at once: %v", failed)
	}
	mu.Unlock()
	d.MarkLater("evt_over", time.Minute, fail)
	mu.Lock()
	if len(failed) != 1 || !errors.Is(failed[0], errBacklog) {
		t.Fatalf("mark beyond the bound: failures %v, want one errBacklog at once", failed)
	}
	mu.Unlock()
	if _, err := d.Seen(context.Background(), "evt_over"); !errors.Is(err, errBacklog) {
		t.Fatalf("lookup beyond the bound: err %v, want errBacklog", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Flush(ctx); err != nil {
		t.Fatalf("flush with Redis hanging: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failed) != 5 {
		t.Errorf("%d failures after the flush, want 5 (every mark)", len(failed))
	}
}
