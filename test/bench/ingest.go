package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/test/harness"
	"github.com/orderflow/orderflow/test/infra"
	"github.com/orderflow/orderflow/test/loadgen"
	"github.com/orderflow/orderflow/topics"
)

const benchSecret = "whsec_bench"

// createTopics makes a fresh prefixed topic set.
func (b *bench) createTopics(ctx context.Context, name string, partitions int32) (topics.Names, error) {
	names := topics.New(fmt.Sprintf("bench-%s-%d.", name, time.Now().UnixNano()))
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...))
	if err != nil {
		return names, err
	}
	defer cl.Close()
	_, err = topics.Create(ctx, kadm.NewClient(cl), names.Specs(partitions), 1)
	return names, err
}

func freeAddr() (string, error) {
	p, err := infra.FreePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}

// startGateway runs `orderflow gateway` and waits until it is ready.
func (b *bench) startGateway(ctx context.Context, names topics.Names) (*harness.Proc, string, error) {
	p, url, _, err := b.startGatewayBin(ctx, b.bin, "gateway", names)
	return p, url, err
}

// startGatewayBin runs the gateway of the orderflow binary bin and returns
// its webhook URL and its metrics listener's base URL.
func (b *bench) startGatewayBin(ctx context.Context, bin, name string, names topics.Names) (*harness.Proc, string, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", "", err
	}
	maddr, err := freeAddr()
	if err != nil {
		return nil, "", "", err
	}
	args := append([]string{bin, "gateway", "--http-addr", addr, "--metrics-addr", maddr,
		"--brokers", b.brokers[0], "--topic-prefix", names.Prefix, "--webhook-secret", benchSecret,
		"--redis-addr", b.redis, "--log-level", "warn", "--pprof"}, strings.Fields(b.o.gatewayFlags)...)
	p, err := b.start(name, nil, args...)
	if err != nil {
		return nil, "", "", err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := harness.WaitHTTP(wctx, "http://"+addr+"/readyz"); err != nil {
		return nil, "", "", fmt.Errorf("gateway: %w\n%s", err, p.LogTail(20))
	}
	return p, "http://" + addr + "/webhooks/stripe", "http://" + maddr, nil
}

type target struct {
	name string
	url  string
	proc *harness.Proc
}

// pids are the processes whose CPU time is measured for a target.
func (b *bench) ingestPIDs(t target) map[string]int {
	kafka, redis := infraPIDs()
	return map[string]int{"server": t.proc.PID(), "kafka": kafka, "redis": redis, "load generator": os.Getpid()}
}

func (b *bench) ingest(ctx context.Context) error {
	names, err := b.createTopics(ctx, "ingest", 12)
	if err != nil {
		return err
	}
	gw, gwURL, gwMetrics, err := b.startGatewayBin(ctx, b.bin, "gateway", names)
	if err != nil {
		return err
	}
	defer b.stop(gw)
	targets := []target{{"orderflow gateway", gwURL, gw}}
	if b.o.baselineBin != "" {
		base, baseURL, _, err := b.startGatewayBin(ctx, b.o.baselineBin, "gateway-baseline", names)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		defer b.stop(base)
		targets = append(targets, target{"orderflow gateway (baseline)", baseURL, base})
	}

	bareAddr, err := freeAddr()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bare, err := b.start("bare", nil, self, "bare-handler", bareAddr)
	if err != nil {
		return err
	}
	defer b.stop(bare)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := harness.WaitHTTP(wctx, "http://"+bareAddr+"/"); err != nil {
		return err
	}
	targets = append(targets, target{"bare net/http", "http://" + bareAddr + "/", bare})

	if b.peer != "" {
		port, err := infra.FreePort()
		if err != nil {
			return err
		}
		peer, err := b.start("peer-gateway", []string{
			"PORT=" + strconv.Itoa(port), "STRIPE_WEBHOOK_SECRET=" + benchSecret, "REDIS_URL=redis://" + b.redis + "/2",
		}, "node", b.peer+"/gateway.js")
		if err != nil {
			return err
		}
		defer b.stop(peer)
		if err := waitPOST(wctx, fmt.Sprintf("http://127.0.0.1:%d/", port)); err != nil {
			return fmt.Errorf("peer gateway: %w\n%s", err, peer.LogTail(20))
		}
		targets = append(targets, target{"peer gateway.js", fmt.Sprintf("http://127.0.0.1:%d/", port), peer})
	}

	b.cpuProfile(gwMetrics, "gateway-ingest")
	// A short first run per target measures its rate, from which every
	// later round is sized to last at least --ingest-round.
	rate := map[string]float64{}
	var gatewayOK int64
	for _, t := range targets {
		rep, err := loadgen.Run(ctx, loadgen.Config{URL: t.url, Secrets: []string{benchSecret}, Orders: b.o.ingestOrders, Connections: 64})
		if err != nil {
			return fmt.Errorf("sizing run %s: %w", t.name, err)
		}
		rate[t.name] = rep.OKPerSec
		if strings.HasPrefix(t.name, "orderflow gateway") {
			gatewayOK += rep.OK
		}
	}
	seed := uint64(0)
	// round runs one round of at least --ingest-round against t (up to
	// three tries, each sized from the rate last measured) and returns
	// its report and the CPU time per request of each process.
	var tried int64 // deliveries of the last round's tries, all of them
	round := func(t target, conns int) (*loadgen.Report, map[string]float64, error) {
		tried = 0
		for try := 0; ; try++ {
			seed++
			n := max(1000, int(math.Ceil(rate[t.name]*b.o.ingestRound.Seconds()*1.2)))
			meter := newCPUMeter(b.ingestPIDs(t))
			rep, err := loadgen.Run(ctx, loadgen.Config{URL: t.url, Secrets: []string{benchSecret},
				Orders: n, Connections: conns, Seed: seed})
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", t.name, err)
			}
			tried += int64(rep.Deliveries)
			perReq := map[string]float64{}
			for proc, secs := range meter.stop() {
				perReq[proc] = secs * 1e6 / float64(max(rep.Deliveries, 1))
			}
			if strings.HasPrefix(t.name, "orderflow gateway") {
				gatewayOK += rep.OK
			}
			if rep.OKPerSec > 0 {
				rate[t.name] = rep.OKPerSec
			}
			if rep.Duration >= b.o.ingestRound || try == 2 {
				return rep, perReq, nil
			}
		}
	}
	for _, conns := range []int{64, 256} {
		for _, t := range targets {
			rep, _, err := round(t, conns)
			if err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
			fmt.Fprintf(os.Stderr, "bench: ingest %d conns, warm-up, %s: %s\n", conns, t.name, rep)
		}
		runs := map[string][]*loadgen.Report{}
		cpu := map[string]map[string][]float64{} // target → process → µs per request, per round
		for r := 0; r < b.o.rounds; r++ {
			for _, t := range targets {
				var rec *brokerRecording
				profiled := r == 0 && conns == 64 && t.proc == gw
				if profiled {
					rec = b.startBrokerRecording("ingest-64")
				}
				rep, perReq, err := round(t, conns)
				if err != nil {
					rec.abandon()
					return err
				}
				if profiled {
					b.stopBrokerRecording(rec, "ingest, 64 connections", tried, "webhook")
				}
				if cpu[t.name] == nil {
					cpu[t.name] = map[string][]float64{}
				}
				for proc, us := range perReq {
					cpu[t.name][proc] = append(cpu[t.name][proc], us)
				}
				fmt.Fprintf(os.Stderr, "bench: ingest %d conns, round %d, %s: %s\n", conns, r+1, t.name, rep)
				runs[t.name] = append(runs[t.name], rep)
			}
		}
		for _, t := range targets {
			var rps, p99, secs []float64
			var non2xx int64
			for _, rep := range runs[t.name] {
				rps = append(rps, rep.OKPerSec)
				p99 = append(p99, float64(rep.P99)/float64(time.Millisecond))
				secs = append(secs, rep.Duration.Seconds())
				non2xx += int64(rep.Deliveries) - rep.OK
			}
			perReq := map[string]float64{}
			for proc, xs := range cpu[t.name] {
				perReq[proc] = median(xs)
			}
			b.res.Ingest = append(b.res.Ingest, IngestRow{Target: t.name, Connections: conns,
				ReqPerSec: median(rps), P99Ms: median(p99), Rounds: rps, RoundsP99Ms: p99, RoundSeconds: secs,
				Non2xx: non2xx, CPUMicrosPerReq: perReq})
		}
	}
	// Every 200 is durable: the topic holds at least as many records as the
	// gateway acknowledged (Redis dedup turns nothing away here: ids are new).
	n, err := b.endOffsets(ctx, names.Orders)
	if err != nil {
		return err
	}
	b.res.IngestDurable = IngestDurability{Acknowledged: gatewayOK, InKafka: n}
	b.res.PeakRSS = append(b.res.PeakRSS, RSS{Process: "gateway (ingest)", Bytes: gw.PeakRSS()})
	if n < gatewayOK {
		return fmt.Errorf("gateway acknowledged %d events but %s holds %d records", gatewayOK, names.Orders, n)
	}
	return nil
}

// endOffsets sums a topic's end offsets.
func (b *bench) endOffsets(ctx context.Context, topic string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	offs.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
