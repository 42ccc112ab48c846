package main

import (
	"context"
	"flag"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/quota"
)

// Provider limits shared by every processor (package quota). With
// --redis-addr, each provider's limits (its --<provider>-… limit flags) hold
// for the whole fleet and a 429 or Retry-After seen by one processor pauses
// that provider for all; with Redis down each processor keeps to its share
// (limit ÷ live members of the consumer group), logs it and sets
// orderflow_quota_fallback. Without --redis-addr, the limits that have no
// client-side bound of their own hold per processor.

// quotaFlags are the fleet settings of the provider limits.
type quotaFlags struct {
	redisAddr     string
	redisUser     string
	redisPassFile string
	redisTLS      bool
	redisTLSCA    string

	// group and kafka tell the live processors (the consumer group's
	// members), for the fallback share; empty group: one processor.
	group string
	kafka []kgo.Opt
}

func (q *quotaFlags) register(fs *flag.FlagSet) {
	fs.Var(checkedString{&q.redisAddr, checkRedisAddr}, "redis-addr", "Redis `host:port` holding the provider limits shared by every processor: a limit then holds for the fleet, and a 429 seen by one processor pauses all (empty: each processor keeps to the limits by itself)")
	fs.StringVar(&q.redisUser, "redis-username", "", "Redis ACL user name (empty: the default user)")
	fs.StringVar(&q.redisPassFile, "redis-password-file", "", "file holding the Redis password (or set ORDERFLOW_REDIS_PASSWORD)")
	fs.BoolVar(&q.redisTLS, "redis-tls", false, "connect to Redis over TLS")
	fs.StringVar(&q.redisTLSCA, "redis-tls-ca", "", "PEM file of CAs to trust for Redis TLS (default: system roots)")
}

// quotaMetrics are the limits' metrics, registered by the command.
type quotaMetrics struct {
	fallback *prometheus.GaugeVec
	pauses   *prometheus.CounterVec
}

func newQuotaMetrics() *quotaMetrics {
	return &quotaMetrics{
		fallback: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderflow_quota_fallback",
			Help: "1 while a provider limit is kept by this processor alone (its share: limit ÷ live processors) because Redis is unreachable; 0 while shared through Redis.",
		}, []string{"limit"}),
		pauses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_quota_pauses_total",
			Help: "Pauses of a provider limit this processor started after a 429 or Retry-After (every processor waits them out).",
		}, []string{"limit"}),
	}
}

// quotaSet is the running part: the Quotas, the Redis client and the
// watcher of the group's members.
type quotaSet struct {
	q      *quota.Quotas
	shared bool
	m      *quotaMetrics
	stop   func()
}

// start connects the limits. It does not fail when Redis is down: the
// limits then start in their fallback share.
func (f *quotaFlags) start(ctx context.Context, m *quotaMetrics, log *slog.Logger) (*quotaSet, error) {
	set := &quotaSet{m: m, stop: func() {}}
	cfg := quota.Config{
		Logger: log,
		OnModeChange: func(limit string, mode quota.Mode) {
			v := 0.0
			if mode == quota.Fallback {
				v = 1
			}
			m.fallback.WithLabelValues(limit).Set(v)
		},
	}
	var stops []func()
	if f.redisAddr != "" {
		pass, err := secretFromFileOrEnv(f.redisPassFile, "ORDERFLOW_REDIS_PASSWORD")
		if err != nil {
			return nil, usagef("--redis-password-file: %v", err)
		}
		ropts := gateway.RedisOptions(f.redisAddr, pass)
		ropts.Username = f.redisUser
		if f.redisTLS || f.redisTLSCA != "" {
			tc, err := tlsConfig(f.redisTLSCA)
			if err != nil {
				return nil, usagef("--redis-tls-ca: %v", err)
			}
			ropts.TLSConfig = tc
		}
		rdb := redis.NewClient(ropts)
		stops = append(stops, func() { _ = rdb.Close() })
		cfg.Redis = rdb
		set.shared = true
		if f.group != "" {
			peers, stop, err := watchGroupMembers(ctx, f.kafka, f.group, log)
			if err != nil {
				return nil, err
			}
			cfg.Peers = peers
			stops = append(stops, stop)
		}
	}
	q, err := quota.New(cfg)
	if err != nil {
		for _, s := range stops {
			s()
		}
		return nil, err
	}
	set.q = q
	set.stop = func() {
		for _, s := range stops {
			s()
		}
	}
	return set, nil
}

// maxFleetPause caps the pause of a provider for the fleet after a 429 or
// Retry-After: a longer wait is a quota (Zoho's daily credits), for which
// the processor holds the step; blocking every call that long would make
// the hold's probe time out.
const maxFleetPause = time.Minute

// limitedClient returns an HTTP client whose requests keep to l (for the
// fleet with Redis), pausing every processor after a 429 or Retry-After;
// nil when there is nothing to enforce (no Redis and no limit), so the
// provider client keeps its own. timeout is the client's per-request
// timeout, applied once a request's turn has come.
func (set *quotaSet) limitedClient(l quota.Limit, timeout, pauseOn429 time.Duration, match func(*http.Request) bool) (*http.Client, *quota.Limiter, error) {
	if set == nil || (!set.shared && l.Rate == 0 && l.Concurrency == 0) {
		return nil, nil, nil
	}
	lim, err := set.q.Limiter(l)
	if err != nil {
		return nil, nil, err
	}
	if set.shared {
		set.m.fallback.WithLabelValues(l.Name).Set(0)
	}
	t := &quota.Transport{
		Limiter: lim, Base: integrations.Transport, Match: match, Timeout: timeout, PauseOn429: pauseOn429,
		MaxPause: maxFleetPause,
		OnPause:  func(time.Duration) { set.m.pauses.WithLabelValues(l.Name).Inc() },
	}
	return &http.Client{Transport: t}, lim, nil
}

// orDefault is d, or def when d is 0 (a client's default timeout).
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// perSecond is a limit of r requests a second (r may be fractional, as
// --airtable-requests-per-second 2.5), evenly spaced: no bursts.
func perSecond(name string, r float64) quota.Limit {
	if r <= 0 {
		return quota.Limit{Name: name}
	}
	if r == math.Trunc(r) {
		return quota.Limit{Name: name, Rate: int(r), Period: time.Second, Burst: 1}
	}
	return quota.Limit{Name: name, Rate: int(math.Round(r * 1000)), Period: 1000 * time.Second, Burst: 1}
}

// watchGroupMembers reports the live members of the consumer group, asked
// every 10 s; until the first answer, and while Kafka does not answer, the
// last count (at least 1).
func watchGroupMembers(ctx context.Context, kopts []kgo.Opt, group string, log *slog.Logger) (func() int, func(), error) {
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, nil, err
	}
	adm := kadm.NewClient(cl)
	var n atomic.Int64
	n.Store(1)
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	ask := func() {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		defer acancel()
		groups, err := adm.DescribeGroups(actx, group)
		if err != nil {
			if ctx.Err() == nil {
				log.Debug("quota: consumer group members unknown, keeping the last count", "group", group, "error", err)
			}
			return
		}
		if g, ok := groups[group]; ok && g.Err == nil && len(g.Members) > 0 {
			n.Store(int64(len(g.Members)))
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			ask()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	stop := func() {
		cancel()
		wg.Wait()
		cl.Close()
	}
	return func() int { return int(n.Load()) }, stop, nil
}
