package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config says what to send.
type Config struct {
	URL         string   // the webhook endpoint
	Secrets     []string // signing secrets (all are used, as during rotation)
	Orders      int      // orders to send
	Connections int      // concurrent connections (default 64)
	// Rate is the target deliveries per second; 0 sends as fast as the
	// connections allow.
	Rate float64
	// Checkout sends both Checkout event types per order.
	Checkout bool
	// Duplicates is the share of orders whose event is delivered a second
	// time (same event id, re-signed), as Stripe sometimes does.
	Duplicates float64
	// Redeliver is how often an event that got no 2xx is delivered again
	// (after RedeliverDelay), as Stripe retries; 0 never.
	Redeliver      int
	RedeliverDelay time.Duration
	Timeout        time.Duration // per request (default 10s)
	Factory        *Factory      // nil: a new random run
	Seed           uint64
}

// Report is what happened.
type Report struct {
	Orders     int                  `json:"orders"`
	Deliveries int64                `json:"deliveries"`
	Status     map[int]int64        `json:"status"`      // HTTP status → count
	Bodies     map[string]int       `json:"bodies"`      // 2xx body ("queued", "duplicate", ...) → count
	NetErrors  int64                `json:"net_errors"`  // no response at all
	Duration   time.Duration        `json:"duration_ns"` //
	OK         int64                `json:"ok"`          // 2xx responses
	OKPerSec   float64              `json:"ok_per_sec"`  //
	P50        time.Duration        `json:"p50_ns"`      //
	P99        time.Duration        `json:"p99_ns"`      //
	Max        time.Duration        `json:"max_ns"`      //
	Unanswered []string             `json:"-"`           // event ids that never got a 2xx
	Accepted   map[string]bool      `json:"-"`           // event ids answered 2xx
	OrderIDs   []string             `json:"-"`           // every order sent
	AcceptedAt map[string]time.Time `json:"-"`           // order id → first 2xx of any of its events
}

func (r *Report) String() string {
	codes := make([]int, 0, len(r.Status))
	for c := range r.Status {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var st []string
	for _, c := range codes {
		st = append(st, fmt.Sprintf("%d×%d", r.Status[c], c))
	}
	if r.NetErrors > 0 {
		st = append(st, fmt.Sprintf("%d×no answer", r.NetErrors))
	}
	return fmt.Sprintf("%d orders, %d deliveries in %s: %.0f ok/s, p50 %s, p99 %s, max %s; %s",
		r.Orders, r.Deliveries, r.Duration.Round(time.Millisecond), r.OKPerSec,
		r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond), strings.Join(st, ", "))
}

type delivery struct {
	ev      Event
	attempt int
}

// Run sends the load and waits for every answer (and redelivery).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.URL == "" || len(cfg.Secrets) == 0 || cfg.Orders <= 0 {
		return nil, errors.New("loadgen: URL, secrets and a positive order count are required")
	}
	if cfg.Connections <= 0 {
		cfg.Connections = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.RedeliverDelay <= 0 {
		cfg.RedeliverDelay = time.Second
	}
	f := cfg.Factory
	if f == nil {
		f = NewFactory(cfg.Checkout)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))

	var plan []delivery
	rep := &Report{Orders: cfg.Orders, Status: map[int]int64{}, Bodies: map[string]int{},
		Accepted: map[string]bool{}, AcceptedAt: map[string]time.Time{}}
	var dups []delivery
	for n := 0; n < cfg.Orders; n++ {
		evs := f.Order(n, rng)
		rep.OrderIDs = append(rep.OrderIDs, f.OrderID(n))
		for _, e := range evs {
			plan = append(plan, delivery{ev: e})
		}
		if cfg.Duplicates > 0 && rng.Float64() < cfg.Duplicates {
			dups = append(dups, delivery{ev: evs[rng.IntN(len(evs))]})
		}
	}
	// Duplicates arrive a little later than their original, mixed in.
	for i, d := range dups {
		at := min(len(plan), (i+1)*len(plan)/(len(dups)+1)+rng.IntN(8))
		plan = slices.Insert(plan, at, d)
	}

	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.Connections,
		MaxIdleConnsPerHost: cfg.Connections,
		MaxConnsPerHost:     cfg.Connections,
		IdleConnTimeout:     90 * time.Second,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout}

	work := make(chan delivery, cfg.Connections)
	var (
		mu        sync.Mutex
		lat       = make([]time.Duration, 0, len(plan))
		pending   sync.WaitGroup
		sent      atomic.Int64
		okCount   atomic.Int64
		netErrs   atomic.Int64
		failedIDs = map[string]bool{}
	)
	var pace func() bool
	if cfg.Rate > 0 {
		interval := time.Duration(float64(time.Second) / cfg.Rate)
		var pmu sync.Mutex
		next := time.Now()
		pace = func() bool {
			pmu.Lock()
			at := next
			next = next.Add(interval)
			if now := time.Now(); next.Before(now.Add(-time.Second)) {
				next = now // do not build up a burst after a stall
			}
			pmu.Unlock()
			if d := time.Until(at); d > 0 {
				select {
				case <-ctx.Done():
					return false
				case <-time.After(d):
				}
			}
			return true
		}
	}

	start := time.Now()
	var workers sync.WaitGroup
	for i := 0; i < cfg.Connections; i++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for d := range work {
				if pace != nil && !pace() {
					pending.Done()
					continue
				}
				status, body, dur, err := post(ctx, client, cfg.URL, d.ev.Body, cfg.Secrets)
				sent.Add(1)
				mu.Lock()
				lat = append(lat, dur)
				if err != nil {
					netErrs.Add(1)
				} else {
					rep.Status[status]++
				}
				ok := err == nil && status >= 200 && status < 300
				if ok {
					okCount.Add(1)
					rep.Bodies[body]++
					rep.Accepted[d.ev.ID] = true
					delete(failedIDs, d.ev.ID)
					if _, seen := rep.AcceptedAt[d.ev.OrderID]; !seen {
						rep.AcceptedAt[d.ev.OrderID] = time.Now()
					}
				} else if !rep.Accepted[d.ev.ID] {
					failedIDs[d.ev.ID] = true
				}
				mu.Unlock()
				if !ok && d.attempt < cfg.Redeliver && ctx.Err() == nil {
					d.attempt++
					time.AfterFunc(cfg.RedeliverDelay, func() {
						select {
						case work <- d:
						case <-ctx.Done():
							pending.Done()
						}
					})
					continue
				}
				pending.Done()
			}
		}()
	}
	pending.Add(len(plan))
	go func() {
		for _, d := range plan {
			select {
			case work <- d:
			case <-ctx.Done():
				pending.Done()
			}
		}
	}()
	pending.Wait()
	close(work)
	workers.Wait()

	rep.Duration = time.Since(start)
	rep.Deliveries = sent.Load()
	rep.OK = okCount.Load()
	rep.NetErrors = netErrs.Load()
	if s := rep.Duration.Seconds(); s > 0 {
		rep.OKPerSec = float64(rep.OK) / s
	}
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		rep.P50 = lat[n*50/100]
		rep.P99 = lat[min(n-1, n*99/100)]
		rep.Max = lat[n-1]
	}
	for id := range failedIDs {
		rep.Unanswered = append(rep.Unanswered, id)
	}
	sort.Strings(rep.Unanswered)
	return rep, ctx.Err()
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func post(ctx context.Context, c *http.Client, url string, body []byte, secrets []string) (int, string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", Sign(body, secrets...))
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", time.Since(t0), err
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	_, _ = io.Copy(buf, io.LimitReader(resp.Body, 256))
	resp.Body.Close()
	dur := time.Since(t0)
	b := strings.ToLower(strings.TrimSpace(buf.String()))
	bufPool.Put(buf)
	return resp.StatusCode, b, dur, nil
}
