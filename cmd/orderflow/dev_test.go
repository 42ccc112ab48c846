package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/integrations/stripe"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/test/testenv"
)

// devTestConfig is dev mode on free ports in dir, with short processor
// intervals so the test does not wait on defaults made for production.
func devTestConfig(dir string) devConfig {
	return devConfig{
		HTTPAddr:   "127.0.0.1:0",
		KafkaAddr:  "127.0.0.1:0",
		SimAddr:    "127.0.0.1:0",
		DataDir:    dir,
		Partitions: 3,
		Command:    "orderflow",
		Processor: func(c *processor.Config) {
			c.CommitInterval = 100 * time.Millisecond
			c.Retry.BaseDelay = 50 * time.Millisecond
			c.Retry.MaxDelay = time.Second
		},
	}
}

func startDevT(t *testing.T, cfg devConfig) (*devServer, string) {
	t.Helper()
	var banner bytes.Buffer
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := startDev(context.Background(), cfg, &banner, logger)
	if err != nil {
		t.Fatalf("start dev mode: %v", err)
	}
	t.Cleanup(func() { d.Stop() })
	return d, banner.String()
}

// stateReader follows orders.state and keeps each order's latest state.
type stateReader struct {
	cl      *kgo.Client
	states  map[string]*processor.State
	records int // records read
}

func newStateReader(t *testing.T, brokers, topic string) *stateReader {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &stateReader{cl: cl, states: map[string]*processor.State{}}
}

func (r *stateReader) poll(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	fs := r.cl.PollFetches(ctx)
	fs.EachRecord(func(rec *kgo.Record) {
		r.records++
		if rec.Value == nil {
			delete(r.states, string(rec.Key))
			return
		}
		st, err := processor.DecodeState(rec.Value)
		if err != nil {
			t.Errorf("state of %s: %v", rec.Key, err)
			return
		}
		r.states[string(rec.Key)] = st
	})
}

// waitCompleted waits until every order is completed and returns the
// orders not completed (with their status) when the time is up.
func (r *stateReader) waitCompleted(t *testing.T, orders []string, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r.poll(t, 300*time.Millisecond)
		var pending []string
		for _, id := range orders {
			st := r.states[id]
			switch {
			case st == nil:
				pending = append(pending, id+": no state")
			case st.Status != processor.StatusCompleted:
				pending = append(pending, fmt.Sprintf("%s: %s (%s)", id, st.Status, st.LastError))
			}
		}
		if len(pending) == 0 || time.Now().After(deadline) {
			return pending
		}
	}
}

// waitCommitted waits until the processor's group has committed every
// record of orders: then nothing is left to redeliver.
func waitCommitted(t *testing.T, brokers, group, topic string, timeout time.Duration) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ends, err1 := adm.ListEndOffsets(ctx, topic)
		committed, err2 := adm.FetchOffsets(ctx, group)
		cancel()
		behind := -1
		if err1 == nil && err2 == nil {
			behind = 0
			ends.Each(func(o kadm.ListedOffset) {
				if c, ok := committed.Lookup(topic, o.Partition); !ok || c.At < o.Offset {
					behind++
				}
			})
		}
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s has not committed the end of %s after %s (partitions behind %d, errors %v %v)", group, topic, timeout, behind, err1, err2)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkPersistedOffsets opens the saved Kafka data alone, with no
// processor that could commit again, and checks that the dev group's
// committed offsets were restored at the end of every partition.
func checkPersistedOffsets(t *testing.T, dataDir, topic string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dataDir))
	if err != nil {
		t.Fatalf("reopen kafka data: %v", err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.FetchOffsets(ctx, "orderflow-dev")
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(topic, o.Partition)
		if o.Offset == 0 || !ok || c.At != o.Offset {
			t.Errorf("%s/%d: committed %v (found %v), end %d: offsets not restored from the data folder", topic, o.Partition, c.At, ok, o.Offset)
		}
	})
}

func countFiles(t *testing.T, pattern string) int {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestDevModeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	dir := t.TempDir()
	cfg := devTestConfig(dir)
	d, banner := startDevT(t, cfg)

	url := "http://" + d.httpAddr + gateway.WebhookPath
	for _, want := range []string{url, d.secret, "send-test-event --url " + url, "orders show <order id> --brokers " + d.kafkaAddr,
		"dlq list --brokers " + d.kafkaAddr, "--data-dir " + dir + " --brokers " + d.kafkaAddr, "stripe listen --forward-to " + url, filepath.Join(dir, "sim", "outbox")} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, webhookSecretFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("webhook secret file: %v, mode %v; want 0600", err, fi)
	}

	const orders = 50
	opts := testEventOptions{URL: url, Secret: d.secret, Type: typeCheckout, Count: orders, Duplicates: 0.3, Seed: 42, Quiet: true}
	var out bytes.Buffer
	sum, err := sendTestEvents(context.Background(), opts, &out)
	if err != nil || sum.Failed > 0 {
		t.Fatalf("send: %v, %d failed: %s", err, sum.Failed, out.String())
	}
	if sum.Duplicates == 0 {
		t.Fatalf("no duplicate was sent: %s", out.String())
	}

	states := newStateReader(t, d.kafkaAddr, d.names.State)
	if pending := states.waitCompleted(t, sum.Orders, 90*time.Second); len(pending) > 0 {
		t.Fatalf("%d orders not completed: %v", len(pending), pending)
	}
	waitCommitted(t, d.kafkaAddr, "orderflow-dev", d.names.Orders, 30*time.Second)

	st := d.sim.Stats().Steps
	for _, step := range []string{sim.StepShipping, sim.StepInvoice, sim.StepEmail} {
		if st[step].Created != orders {
			t.Errorf("%s: created %d, want %d", step, st[step].Created, orders)
		}
	}
	for step, s := range st {
		if s.DuplicateCreates != 0 {
			t.Errorf("%s: %d duplicate creates", step, s.DuplicateCreates)
		}
	}
	outbox := filepath.Join(dir, "sim", "outbox")
	for pattern, want := range map[string]int{
		"shipping/*.pdf": orders, "invoice/*.xml": orders, "email/*.eml": orders,
		"shipping.jsonl": 1, "invoice.jsonl": 1, "email.jsonl": 1,
	} {
		if got := countFiles(t, filepath.Join(outbox, pattern)); got != want {
			t.Errorf("outbox %s: %d files, want %d", pattern, got, want)
		}
	}
	if got := countFiles(t, filepath.Join(dir, "labels", "pi_*_label-*.pdf")); got != orders {
		t.Errorf("label store: %d label PDFs, want %d", got, orders)
	}

	// Compact orders.state (Kafka would, in its own time), stop, and start
	// again on the same folder.
	d.kafka.Compact()
	secret := d.secret
	if err := d.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	checkPersistedOffsets(t, filepath.Join(dir, "kafka"), d.names.Orders)
	d2, _ := startDevT(t, cfg)
	if d2.secret != secret {
		t.Errorf("webhook secret changed on restart")
	}
	// The group's offsets survived: nothing is redelivered.
	waitCommitted(t, d2.kafkaAddr, "orderflow-dev", d2.names.Orders, 5*time.Second)

	code, showOut, showErr := orderflow(t, "orders", "show", sum.Orders[0], "--brokers", d2.kafkaAddr)
	if code != 0 || !strings.Contains(showOut, "completed") {
		t.Fatalf("orders show after restart: exit %d\n%s%s", code, showOut, showErr)
	}
	states2 := newStateReader(t, d2.kafkaAddr, d2.names.State)
	if pending := states2.waitCompleted(t, sum.Orders, 10*time.Second); len(pending) > 0 {
		t.Fatalf("after restart, %d orders not completed: %v", len(pending), pending)
	}
	if states2.records >= states.records {
		t.Errorf("orders.state has %d records after compaction and restart, %d before; want fewer", states2.records, states.records)
	}
	t.Logf("orders.state: %d records before compaction, %d after the restart", states.records, states2.records)

	// Stripe delivers the first order's events again. The gateway's memory
	// dedup was lost with the restart, so they are queued; the processor
	// must recognise them and create nothing.
	again := opts
	again.Count = 1
	again.URL = "http://" + d2.httpAddr + gateway.WebhookPath
	sum2, err := sendTestEvents(context.Background(), again, &out)
	if err != nil || sum2.Failed > 0 || sum2.Orders[0] != sum.Orders[0] {
		t.Fatalf("resend: %v, %d failed, order %v (want %s)", err, sum2.Failed, sum2.Orders, sum.Orders[0])
	}
	if sum2.Answers["200 queued"] == 0 {
		t.Fatalf("the resent events were not queued (answers %v): the processor's dedup is not exercised", sum2.Answers)
	}
	waitCommitted(t, d2.kafkaAddr, "orderflow-dev", d2.names.Orders, 30*time.Second)
	for step, s := range d2.sim.Stats().Steps {
		if s.Created != 0 || s.DuplicateCreates != 0 {
			t.Errorf("after a resent event, %s: created %d, duplicate creates %d; want none", step, s.Created, s.DuplicateCreates)
		}
	}
}

// TestDevModeBadFlags: each bad value exits 2 before anything is written
// (not even the data folder).
func TestDevModeBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"live stripe key", []string{"--stripe-api-key", "sk_live_123"}, "test-mode key"},
		{"bad latency", []string{"--sim-latency", "fast"}, "--sim-latency"},
		{"bad kafka addr", []string{"--kafka-addr", "nowhere"}, "--kafka-addr"},
		{"bad partitions", []string{"--partitions", "0"}, "--partitions"},
		{"bad stripe base URL", []string{"--stripe-base-url", "localhost:12111"}, "--stripe-base-url"},
		{"extra argument", []string{"now"}, "unexpected argument"},
		{"secret without whsec_", []string{"--webhook-secret", "notasecret"}, "orderflow: --webhook-secret: the secret does not start with whsec_: Stripe endpoint signing secrets start with whsec_\n"},
		{"second secret without whsec_", []string{"--webhook-secret", "whsec_cli,notasecret"}, "orderflow: --webhook-secret: secret 2 of 2 does not start with whsec_: Stripe endpoint signing secrets start with whsec_\n"},
		{"console on all interfaces", []string{"--console-addr", "0.0.0.0:0"}, `orderflow: --console-addr needs a loopback address (127.0.0.1:port), not "0.0.0.0:0": dev mode's console has no login` + "\n"},
		{"console on a LAN address", []string{"--console-addr", "192.168.1.10:8070"}, `--console-addr needs a loopback address (127.0.0.1:port), not "192.168.1.10:8070"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "var")
			args := append([]string{"dev", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--sim-addr", "127.0.0.1:0", "--kafka-addr", "127.0.0.1:0", "--metrics-addr", ""}, tt.args...)
			code, _, errs := orderflow(t, args...)
			if code != 2 || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, want 2 with %q\n%s", code, tt.want, errs)
			}
			if strings.Contains(errs, "notasecret") || strings.Contains(errs, "ERROR") {
				t.Errorf("stderr: %s", errs)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the data folder was made (%v): a bad value must fail before anything is written", err)
			}
		})
	}
}

// TestDevModeKeptSecretChecked: a hand-edited <data-dir>/webhook-secret
// that is not a signing secret is refused, not served with every webhook
// answered 400.
func TestDevModeKeptSecretChecked(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, webhookSecretFile), []byte("notasecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := startDev(context.Background(), devTestConfig(dir), io.Discard, slog.New(slog.DiscardHandler))
	want := filepath.Join(dir, webhookSecretFile) + ": the secret does not start with whsec_"
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "notasecret") {
		t.Fatalf("err %v, want a usage error containing %q", err, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "kafka")); !os.IsNotExist(err) {
		t.Errorf("kafka data made before the secret was checked (%v)", err)
	}
}

// TestDevModeHelp: the help text's brackets pair up.
func TestDevModeHelp(t *testing.T) {
	code, out, errs := orderflow(t, "dev", "--help")
	help := out + errs
	if code != 0 || !strings.Contains(help, "one processor (order states under <data-dir>/state) and the\nprovider simulator (its outbox under <data-dir>/sim/outbox).") {
		t.Fatalf("exit %d, help:\n%s", code, help)
	}
	if n, m := strings.Count(devUsage, "("), strings.Count(devUsage, ")"); n != m {
		t.Errorf("dev usage has %d ( and %d ):\n%s", n, m, devUsage)
	}
}

func TestDevModeBusyPort(t *testing.T) {
	dir := t.TempDir()
	d, _ := startDevT(t, devTestConfig(dir))
	cfg := devTestConfig(t.TempDir())
	cfg.HTTPAddr = d.httpAddr
	_, err := startDev(context.Background(), cfg, &bytes.Buffer{}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "--http-addr") {
		t.Fatalf("err = %v, want a --http-addr error", err)
	}
}

func TestWebhookSecretKeptInDataDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), webhookSecretFile)
	s1, err := loadOrCreateWebhookSecret(path)
	if err != nil || !strings.HasPrefix(s1, "whsec_") || len(s1) < 40 {
		t.Fatalf("secret %q, %v", s1, err)
	}
	s2, err := loadOrCreateWebhookSecret(path)
	if err != nil || s2 != s1 {
		t.Fatalf("second load: %q, %v; want %q", s2, err, s1)
	}
	got, err := resolveWebhookSecret("", "", filepath.Dir(path))
	if err != nil || got != s1 {
		t.Fatalf("send-test-event reads %q, %v; want %q", got, err, s1)
	}
}

func TestDevProviders(t *testing.T) {
	tests := []struct {
		name       string
		key, base  string
		wantStripe string
		wantKey    string
	}{
		{"simulator only", "", "", "http://127.0.0.1:8090", simStripeKey},
		{"real stripe test key", "sk_test_abc", "", stripe.DefaultBaseURL, "sk_test_abc"},
		{"own fake or stripe-mock", "", "http://127.0.0.1:12111/", "http://127.0.0.1:12111", simStripeKey},
		{"own fake with a key", "sk_test_abc", "http://127.0.0.1:12111", "http://127.0.0.1:12111", "sk_test_abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envZohoClientSecret, "from-the-environment") // must not leak into dev mode
			pf := devProviders(devConfig{DataDir: "var", StripeAPIKey: tt.key, StripeBaseURL: tt.base}, "127.0.0.1:8090")
			c, err := view(pf.configs(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			if c.Stripe.BaseURL != tt.wantStripe || c.Stripe.SecretKey != tt.wantKey {
				t.Errorf("stripe %q %q, want %q %q", c.Stripe.BaseURL, c.Stripe.SecretKey, tt.wantStripe, tt.wantKey)
			}
			if c.Zoho.APIBaseURL != "http://127.0.0.1:8090" || c.Zoho.ClientSecret != simZohoClientSecret {
				t.Errorf("zoho %q %q, want the simulator and its test secret", c.Zoho.APIBaseURL, c.Zoho.ClientSecret)
			}
			if c.LabelDir != filepath.Join("var", "labels") {
				t.Errorf("label dir %q", c.LabelDir)
			}
		})
	}
}

// TestDevStripeMockTakesTheBuiltInKey: dev --stripe-base-url <stripe-mock>
// without --stripe-api-key reads order details with its built-in test key,
// which the real stripe-mock must accept (it refuses a key with a "_" after
// sk_test_ with a 401). stripe-mock's fixture amounts do not add up, so the
// order is refused as such, or read; never unauthorised.
func TestDevStripeMockTakesTheBuiltInKey(t *testing.T) {
	base := testenv.StripeMock(t)
	pf := devProviders(devConfig{DataDir: t.TempDir(), StripeBaseURL: base}, "127.0.0.1:8090")
	c, err := view(pf.configs(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Stripe.BaseURL != strings.TrimRight(base, "/") || c.Stripe.SecretKey != "sk_test_orderflowsimulator" {
		t.Fatalf("stripe %q %q, want stripe-mock and the built-in key", c.Stripe.BaseURL, c.Stripe.SecretKey)
	}
	cfg := c.Stripe
	cfg.Timeout = 10 * time.Second
	cl, err := stripe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o, err := cl.OrderDetails(ctx, "pi_123")
	if err != nil && !(integrations.IsPermanent(err) && strings.Contains(err.Error(), "Stripe's amounts do not add up")) {
		t.Fatalf("OrderDetails(pi_123) from stripe-mock with the built-in key: %v", err)
	}
	if err == nil && o.ID != "pi_123" {
		t.Fatalf("order %+v, want pi_123", o)
	}
}

// The processor's Stripe key variable is not dev mode's: set, it is
// warned about (never echoed), unless --stripe-api-key is given.
func TestDevWarnsOfTheProcessorsStripeKeyVariable(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "ORDERFLOW_STRIPE_SECRET_KEY" {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name string
		c    devConfig
		env  string
		want string
	}{
		{"set", devConfig{}, "sk_test_fromprocessor", "ORDERFLOW_STRIPE_SECRET_KEY is set but dev mode does not read it (it is the processor's): order details come from the simulator; for Stripe's own, give the key as --stripe-api-key or ORDERFLOW_STRIPE_API_KEY"},
		{"set, stripe-mock", devConfig{StripeBaseURL: "http://127.0.0.1:12111"}, "sk_test_fromprocessor", "ORDERFLOW_STRIPE_SECRET_KEY is set but dev mode does not read it (it is the processor's): order details come from --stripe-base-url with the built-in test key; for Stripe's own, give the key as --stripe-api-key or ORDERFLOW_STRIPE_API_KEY"},
		{"unset", devConfig{}, "", ""},
		{"dev's own key given", devConfig{StripeAPIKey: "sk_test_dev"}, "sk_test_fromprocessor", ""},
	} {
		got := devStripeKeyWarning(tc.c, env(tc.env))
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		if strings.Contains(got, "sk_test_fromprocessor") {
			t.Errorf("%s: the warning names the key", tc.name)
		}
	}
}

// TestDevModeRedisDedup: with --redis-addr the gateway's dedup is in Redis,
// so it outlives a restart.
func TestDevModeRedisDedup(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	cfg := devTestConfig(t.TempDir())
	cfg.RedisAddr = testenv.Redis(t)
	d, _ := startDevT(t, cfg)
	opts := testEventOptions{URL: "http://" + d.httpAddr + gateway.WebhookPath, Secret: d.secret, Type: typeCheckout, Count: 2, Seed: uint64(time.Now().UnixNano()), Quiet: true}
	sum, err := sendTestEvents(context.Background(), opts, io.Discard)
	if err != nil || sum.Answers["200 queued"] != 4 {
		t.Fatalf("send: %v, answers %v", err, sum.Answers)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	d2, _ := startDevT(t, cfg)
	opts.URL = "http://" + d2.httpAddr + gateway.WebhookPath
	sum, err = sendTestEvents(context.Background(), opts, io.Discard)
	if err != nil || sum.Answers["200 duplicate"] != 4 {
		t.Fatalf("resend after restart: %v, answers %v; want 4 duplicates from Redis", err, sum.Answers)
	}
}

// Stopping dev mode writes the dedup marks still queued for Redis before
// it closes its Redis client: the events answered just before are
// duplicates after a restart.
func TestDevModeStopWritesQueuedMarks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	redisAddr := testenv.Redis(t)
	holder := newMarkHolder(t, redisAddr)
	cfg := devTestConfig(t.TempDir())
	cfg.RedisAddr = holder.Addr
	d, _ := startDevT(t, cfg)
	opts := testEventOptions{URL: "http://" + d.httpAddr + gateway.WebhookPath, Secret: d.secret, Type: typeCheckout, Count: 1, Seed: uint64(time.Now().UnixNano()), Quiet: true}
	sum, err := sendTestEvents(context.Background(), opts, io.Discard)
	if err != nil || sum.Answers["200 queued"] != 2 {
		t.Fatalf("send: %v, answers %v", err, sum.Answers)
	}
	select {
	case <-holder.held:
	case <-time.After(10 * time.Second):
		t.Fatal("dev mode sent no mark after its 200s")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- d.Stop() }()
	// Let the marks through once the webhook listener is closed, when
	// Stop has gone on to the producer and the marks.
	waitFor(t, "the webhook listener to close", func() bool {
		c, err := net.Dial("tcp", d.httpAddr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	holder.Release()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("dev mode did not stop")
	}

	cfg.RedisAddr = redisAddr
	d2, _ := startDevT(t, cfg)
	opts.URL = "http://" + d2.httpAddr + gateway.WebhookPath
	sum, err = sendTestEvents(context.Background(), opts, io.Discard)
	if err != nil || sum.Answers["200 duplicate"] != 2 {
		t.Fatalf("resend after restart: %v, answers %v; want 2 duplicates (marks written at the stop)", err, sum.Answers)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDevCommandStopsOnCancel runs `orderflow dev` as the CLI does and
// stops it the way Ctrl-C does: by cancelling its context.
func TestDevCommandStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--kafka-addr", "127.0.0.1:0",
			"--sim-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--console-addr", "127.0.0.1:0", "--log-level", "warn"}, &out, &errb)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "Ctrl-C stops") {
		select {
		case code := <-done:
			t.Fatalf("dev exited %d before its banner:\n%s%s", code, out.String(), errb.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner after 30s:\n%s%s", out.String(), errb.String())
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after cancel:\n%s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30s of cancel")
	}
	if !strings.Contains(out.String(), "stopping:") {
		t.Errorf("no stopping line:\n%s", out.String())
	}
	// Kafka's state was saved in the data folder.
	if _, err := os.Stat(filepath.Join(dir, "kafka", "topics.json")); err != nil {
		t.Errorf("kafka data not saved: %v", err)
	}
}

// The order send-test-event sends is the order processed: dev mode keeps
// its simulator's address in the data folder, send-test-event seeds it
// with the events' objects, and the CRM contact, the invoice and the email
// name that customer, that total and today's date.
func TestDevModeProcessesTheOrderSent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	dir := t.TempDir()
	d, _ := startDevT(t, devTestConfig(dir))
	simURL, err := resolveSimURL("", dir)
	if err != nil || simURL != "http://"+d.simAddr {
		t.Fatalf("sim-url in the data folder: %q %v, want http://%s", simURL, err, d.simAddr)
	}
	const seed = 5
	opts := testEventOptions{URL: "http://" + d.httpAddr + gateway.WebhookPath, Secret: d.secret, Type: typeCheckout, Count: 1, Seed: seed, SimURL: simURL, Quiet: true}
	sum, err := sendTestEvents(context.Background(), opts, io.Discard)
	if err != nil || sum.Failed > 0 {
		t.Fatalf("send: %v", err)
	}
	// The order the events described (the same generator, the same seed).
	o := newTestOrder(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), time.Now())
	if o.PaymentIntentID != sum.Orders[0] {
		t.Fatalf("regenerated order %s, sent %s", o.PaymentIntentID, sum.Orders[0])
	}
	states := newStateReader(t, d.kafkaAddr, d.names.State)
	if pending := states.waitCompleted(t, sum.Orders, 60*time.Second); len(pending) > 0 {
		t.Fatalf("order not completed")
	}
	outbox := filepath.Join(dir, "sim", "outbox")
	read := func(pattern string) string {
		t.Helper()
		m, _ := filepath.Glob(filepath.Join(outbox, pattern))
		if len(m) != 1 {
			t.Fatalf("outbox %s: %d files", pattern, len(m))
		}
		b, err := os.ReadFile(m[0])
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	c := o.customer
	invoice := read("invoice/*.xml")
	helsinki, _ := time.LoadLocation("Europe/Helsinki")
	if helsinki == nil {
		helsinki = time.UTC
	}
	var inv struct {
		Name   string `xml:"SalesInvoice>InvoicingCustomerName"`
		Date   string `xml:"SalesInvoice>SalesInvoiceDate"`
		Amount struct {
			Value    string `xml:",chardata"`
			Currency string `xml:"iso4217currencycode,attr"`
		} `xml:"SalesInvoice>SalesInvoiceAmount"`
	}
	if err := xml.Unmarshal([]byte(invoice), &inv); err != nil {
		t.Fatal(err)
	}
	wantAmount := strings.Replace(integrations.FormatAmount(o.total, c.curr), ".", ",", 1)
	if inv.Name != c.name || inv.Amount.Value != wantAmount || inv.Amount.Currency != strings.ToUpper(c.curr) ||
		inv.Date != o.created.In(helsinki).Format("2006-01-02") {
		t.Errorf("invoice %+v, want %s %s %s dated %s", inv, c.name, wantAmount, c.curr, o.created.In(helsinki).Format("2006-01-02"))
	}
	if contact := read("crm/contact-*.json"); !strings.Contains(contact, `"Email": "`+c.email+`"`) {
		t.Errorf("CRM contact is not the customer sent:\n%s", contact)
	}
	eml := read("email/*.eml")
	if !strings.Contains(eml, "Subject: Your order "+integrations.OrderNumber(o.PaymentIntentID)) || !strings.Contains(eml, c.email) ||
		!strings.Contains(eml, `"total": "`+integrations.FormatMoney(o.total, c.curr)+`"`) {
		t.Errorf("email:\n%s", eml)
	}
}

// With --stripe-base-url the order details come from that Stripe (here a
// second simulator standing for the user's own fake), not the built-in one.
func TestDevModeStripeBaseURL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	own, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ownSrv := httptest.NewServer(own.Handler())
	t.Cleanup(func() { ownSrv.Close(); _ = own.Close() })
	cfg := devTestConfig(t.TempDir())
	cfg.StripeBaseURL = ownSrv.URL
	d, banner := startDevT(t, cfg)
	if !strings.Contains(banner, "order details from "+ownSrv.URL) {
		t.Errorf("banner does not name the Stripe URL:\n%s", banner)
	}
	opts := testEventOptions{URL: "http://" + d.httpAddr + gateway.WebhookPath, Secret: d.secret, Type: typeCheckout, Count: 2, Seed: 9, SimURL: ownSrv.URL, Quiet: true}
	sum, err := sendTestEvents(context.Background(), opts, io.Discard)
	if err != nil || sum.Failed > 0 {
		t.Fatalf("send: %v", err)
	}
	states := newStateReader(t, d.kafkaAddr, d.names.State)
	if pending := states.waitCompleted(t, sum.Orders, 60*time.Second); len(pending) > 0 {
		t.Fatalf("%d orders not completed", len(pending))
	}
	if n := own.Stats().Steps[sim.StepStripe].Requests; n == 0 {
		t.Error("the given Stripe was never asked")
	}
	if n := d.sim.Stats().Steps[sim.StepStripe].Requests; n != 0 {
		t.Errorf("the built-in simulator's Stripe got %d requests", n)
	}
}

func TestDevModeLocksTheDataFolder(t *testing.T) {
	dir := t.TempDir()
	d, _ := startDevT(t, devTestConfig(dir))
	// A second dev mode on the same folder, on other (free) ports, is refused
	// before it writes anything.
	_, err := startDev(context.Background(), devTestConfig(dir), &bytes.Buffer{}, slog.New(slog.DiscardHandler))
	want := fmt.Sprintf("%s/ is in use by process %d", dir, os.Getpid())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second dev mode on one folder: err = %v, want %q", err, want)
	}
	// Once the first stops, the folder is free again.
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	d2, err := startDev(context.Background(), devTestConfig(dir), &bytes.Buffer{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("dev mode after the first stopped: %v", err)
	}
	d2.Stop()
}

// topics check and create against the dev broker (3 partitions) pass
// without --partitions; the count is compared only when asked.
func TestTopicsAgainstTheDevBroker(t *testing.T) {
	d, _ := startDevT(t, devTestConfig(t.TempDir()))
	for _, tt := range []struct {
		args      []string
		code      int
		out, errs string
	}{
		{[]string{"topics", "check", "--brokers", d.kafkaAddr}, 0, "topics ok\n", ""},
		{[]string{"topics", "create", "--brokers", d.kafkaAddr}, 0, "all topics exist\ntopics ok\n", ""},
		{[]string{"topics", "check", "--brokers", d.kafkaAddr, "--partitions", "12"}, 1, "",
			"orders: has 3 partitions, want 12\norders.dlq: has 3 partitions, want 12\norders.state: has 3 partitions, want 12\norderflow: 3 topic difference(s)\n"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != tt.code || stdout.String() != tt.out || stderr.String() != tt.errs {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d, %q, %q", tt.args, code, stdout.String(), stderr.String(), tt.code, tt.out, tt.errs)
		}
	}
}

// At --log-level info dev mode logs one line per order: its outcome.
func TestDevModeLogsOneLinePerOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	dir := t.TempDir()
	var logs lockedBuffer
	logger, err := gatewayLogger(&logs, "text", "info")
	if err != nil {
		t.Fatal(err)
	}
	d, err := startDev(context.Background(), devTestConfig(dir), io.Discard, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	opts := testEventOptions{URL: "http://" + d.httpAddr + gateway.WebhookPath, Secret: d.secret, Type: typeCheckout, Count: 3, Seed: 7, SimURL: "http://" + d.simAddr, Quiet: true}
	sum, err := sendTestEvents(context.Background(), opts, io.Discard)
	if err != nil || sum.Failed > 0 {
		t.Fatalf("send: %v (%d failed)", err, sum.Failed)
	}
	states := newStateReader(t, d.kafkaAddr, d.names.State)
	if pending := states.waitCompleted(t, sum.Orders, 60*time.Second); len(pending) > 0 {
		t.Fatalf("orders not completed: %v", pending)
	}
	d.Stop()
	out := logs.String()
	for _, id := range sum.Orders {
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, id) {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 || !strings.Contains(lines[0], `level=INFO msg="order completed"`) {
			t.Errorf("order %s: %d log lines, want only its outcome:\n%s", id, len(lines), strings.Join(lines, "\n"))
		}
	}
}

// The banner says how to restart with the Stripe CLI's secret, through
// make run when make started it.
func TestDevBannerRestartLine(t *testing.T) {
	for _, tt := range []struct {
		underMake bool
		want      string
	}{
		{false, "  then restart with the whsec_… it prints and your test-mode key, for the events' real\n  customers and amounts (without it the simulator invents them): orderflow dev --webhook-secret whsec_… --stripe-api-key sk_test_…\n"},
		{true, "  then restart with the whsec_… it prints and your test-mode key, for the events' real\n  customers and amounts (without it the simulator invents them): make run ARGS=\"--webhook-secret whsec_… --stripe-api-key sk_test_…\"\n"},
	} {
		cfg := devTestConfig(t.TempDir())
		cfg.UnderMake = tt.underMake
		_, banner := startDevT(t, cfg)
		if !strings.Contains(banner, tt.want) {
			t.Errorf("under make %v: banner lacks %q:\n%s", tt.underMake, tt.want, banner)
		}
	}
}

// A --webhook-secret given (the Stripe CLI's) is acknowledged in the
// banner, masked, and the banner no longer asks for a restart with it.
func TestDevBannerAcknowledgesGivenSecret(t *testing.T) {
	cfg := devTestConfig(t.TempDir())
	cfg.WebhookSecrets = []string{"whsec_stripeclilike0123456789abcdef"}
	_, banner := startDevT(t, cfg)
	for _, want := range []string{
		"             also accepting 1 secret from --webhook-secret: whsec_…cdef\n",
		"  its events, signed with the --webhook-secret given (whsec_…cdef), are accepted: no restart needed\n",
		"  (their order details are invented by the simulator unless you also give --stripe-api-key sk_test_…)\n",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if strings.Contains(banner, "stripeclilike") || strings.Contains(banner, "then restart with") {
		t.Errorf("banner shows the given secret or asks for a restart:\n%s", banner)
	}
}

// The console's port taken: dev mode names --console-addr and stops
// before it starts the embedded Kafka or writes anything in its folder.
func TestDevConsolePortTaken(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	cfg := devTestConfig(dir)
	cfg.ConsoleAddr = busy.Addr().String()
	var logs bytes.Buffer
	_, err = startDev(context.Background(), cfg, &bytes.Buffer{}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	want := "--console-addr: listen tcp " + busy.Addr().String() + ": bind: address already in use"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	for _, name := range []string{"kafka", simURLFile, "sim"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was made before the ports were checked (%v)", name, err)
		}
	}
	if logs.Len() != 0 {
		t.Errorf("logged:\n%s", logs.String())
	}
}

// A start that fails after the simulator serves (the label folder cannot
// be made) stops it without logging the closed listener as a failure.
func TestDevFailedStartLogsNoServerFailure(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "labels"), []byte("a file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := devTestConfig(dir)
	var logs lockedBuffer
	_, err := startDev(context.Background(), cfg, &bytes.Buffer{}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err == nil || !strings.Contains(err.Error(), "labels") {
		t.Fatalf("err = %v, want the label folder's", err)
	}
	if strings.Contains(logs.String(), "http server failed") {
		t.Errorf("logged a server failure at the stop:\n%s", logs.String())
	}
}
