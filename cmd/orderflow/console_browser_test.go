package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stripe/stripe-go/v76/webhook"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/crypto/bcrypt"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/console"
	"github.com/orderflow/orderflow/processor/dlq"
	"github.com/orderflow/orderflow/test/testenv"
)

// chromiumPath is the browser the infrastructure installed
// (ORDERFLOW_TEST_CHROMIUM), else one on PATH; without one the test skips,
// or fails under CI=true.
func chromiumPath(t *testing.T) string {
	if p := os.Getenv("ORDERFLOW_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium: run the tests through test/infra (make test), which installs Debian's chromium")
	}
	t.Skip("no Chromium (ORDERFLOW_TEST_CHROMIUM unset and none on PATH): run 'make test'")
	return ""
}

// TestConsoleInBrowser drives the console in headless Chromium against the
// real pipeline (Kafka, gateway, processor, simulator): log in, search an
// order by email, open it, make the simulator reject shipping, see the dead
// letter, replay it once the fault is cleared, see it resolved and the
// audit row. Screenshots go to $ORDERFLOW_SCREENSHOTS (else a temporary
// folder).
func TestConsoleInBrowser(t *testing.T) {
	chrome := chromiumPath(t)
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers, 3)
	dir := t.TempDir()
	shots := os.Getenv("ORDERFLOW_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(dir, "screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	kopts := []kgo.Opt{kgo.SeedBrokers(brokers)}

	// The simulator, a processor and a gateway, as in production.
	simSrv, err := sim.New(sim.Config{DataDir: filepath.Join(dir, "sim"), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	simHTTP := httptest.NewServer(simSrv.Handler())
	defer simHTTP.Close()
	defer simSrv.Close()
	prov, cleanup, err := devProviders(devConfig{DataDir: dir}, strings.TrimPrefix(simHTTP.URL, "http://")).build(ctx, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	pcfg := processor.DefaultConfig(names)
	pcfg.Group = names.Prefix + "processors"
	pcfg.CommitInterval = 100 * time.Millisecond
	pcfg.Retry.BaseDelay, pcfg.Retry.MaxDelay = 50*time.Millisecond, time.Second
	proc, err := processor.New(pcfg, prov, kopts, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	pctx, stopProc := context.WithCancel(ctx)
	procDone := make(chan error, 1)
	go func() { procDone <- proc.Run(pctx) }()
	defer func() { stopProc(); <-procDone }()
	secret := "whsec_console_browser_test"
	gcfg := gateway.Config{Topic: names.Orders, Secrets: []string{secret}}
	producer, err := gateway.NewKafkaProducer(gcfg, kopts...)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close(context.Background())
	gw, err := gateway.New(gcfg, producer, gateway.NewMemoryDeduper(0), logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	gwHTTP := httptest.NewServer(gw.Handler())
	defer gwHTTP.Close()

	// The console, with one operator.
	hash, _ := bcrypt.GenerateFromPassword([]byte("open sesame"), bcrypt.MinCost)
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte("ops:operator:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cs, err := startConsole(ctx, consoleConfig{Addr: "127.0.0.1:0", IndexDir: filepath.Join(dir, "index"), CacheMiB: 8, Group: pcfg.Group,
		LabelDir: filepath.Join(dir, "labels"), UsersFile: users, Names: names, Kafka: kopts}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()

	states, err := dlq.New(names, kopts)
	if err != nil {
		t.Fatal(err)
	}
	defer states.Close()
	sendOrder := func() string {
		t.Helper()
		code, out, errs := orderflow(t, "send-test-event", "--url", gwHTTP.URL+gateway.WebhookPath, "--secret", secret, "--type", "payment_intent.succeeded")
		m := regexp.MustCompile(`orders show (pi_\S+)`).FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("send-test-event: exit %d\n%s%s", code, out, errs)
		}
		return m[1]
	}
	// waitUntil waits until the order's state on orders.state is what
	// cond says (what names it for a failure).
	waitUntil := func(id, what string, cond func(*processor.State) bool) *processor.State {
		t.Helper()
		for {
			st, err := states.OrderState(ctx, id)
			if err == nil && cond(st) {
				return st
			}
			select {
			case <-ctx.Done():
				t.Fatalf("order %s never %s (last %+v, %v)", id, what, st, err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// waitState waits until the order's state on orders.state has status.
	waitState := func(id string, status processor.Status) *processor.State {
		t.Helper()
		return waitUntil(id, "reached "+string(status), func(st *processor.State) bool { return st.Status == status })
	}
	// waitIndexed waits until the console's index read every record
	// written so far.
	waitIndexed := func() {
		t.Helper()
		if err := cs.follower.WaitCaughtUp(ctx, kadm.NewClient(cs.admCl)); err != nil {
			t.Fatalf("console index not caught up: %v", err)
		}
	}

	first := sendOrder()
	st := waitState(first, processor.StatusCompleted)
	email := st.Order.Customer.Email
	if email == "" {
		t.Fatalf("order %s has no email: %+v", first, st.Order)
	}
	waitIndexed()

	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(chrome),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(dir, "chromium")), chromedp.WindowSize(1280, 900))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	// The browser starts with the first action on bctx itself: started on
	// a context derived from it, it would end with that context.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	base := cs.URL()
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644)
		}
	}
	// The page is read and driven through JavaScript evaluated in its
	// current document, each call bounded, rather than through chromedp's
	// node queries: a query begun on a page that a click is replacing can
	// wait for good, while a bounded evaluation that fails is just tried
	// again on the new page.
	eval := func(js string) (bool, error) {
		actx, cancel := context.WithTimeout(bctx, 5*time.Second)
		defer cancel()
		return chromedp.Run(actx, chromedp.Evaluate[bool](js))
	}
	// page describes the page for a failure message: its path and the
	// beginning of its text.
	page := func() string {
		actx, cancel := context.WithTimeout(bctx, 5*time.Second)
		defer cancel()
		s, err := chromedp.Run(actx, chromedp.Evaluate[string](`location.pathname + location.search + "\n" + document.body.innerText.slice(0, 600)`))
		if err != nil {
			return "(page unreadable: " + err.Error() + ")"
		}
		return s
	}
	// waitFor waits until cond (a JavaScript expression) is true on the
	// page, for at most a minute.
	waitFor := func(what, cond string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			ok, err := eval("!!(" + cond + ")")
			if err == nil && ok {
				return
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				t.Fatalf("browser: %s: %s still false (%v); the page:\n%s", what, cond, err, page())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	visible := func(sel string) string {
		return fmt.Sprintf(`(function(){var e=document.querySelector(%q);return e!==null&&e.getClientRects().length>0})()`, sel)
	}
	click := func(what, sel string) {
		t.Helper()
		waitFor(what, visible(sel))
		if _, err := eval(fmt.Sprintf(`(document.querySelector(%q).click(), true)`, sel)); err != nil {
			t.Fatalf("browser: %s: click %s: %v", what, sel, err)
		}
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		actx, cancel := context.WithTimeout(bctx, time.Minute)
		defer cancel()
		if err := chromedp.Do(actx, actions...); err != nil {
			t.Fatalf("browser: %s: %v; the page:\n%s", what, err, page())
		}
	}
	// open navigates to path and waits for sel on it.
	open := func(what, path, sel string) {
		t.Helper()
		run(what, chromedp.Navigate(base+path))
		waitFor(what, visible(sel))
	}
	// typeIn types s into the input sel.
	typeIn := func(what, sel, s string) {
		t.Helper()
		waitFor(what, visible(sel))
		run(what, chromedp.SendKeys(chromedp.CSS(sel), s))
	}
	text := func(sel string) string {
		t.Helper()
		actx, cancel := context.WithTimeout(bctx, 5*time.Second)
		defer cancel()
		s, err := chromedp.Run(actx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{innerText:""}).innerText`, sel)))
		if err != nil {
			t.Fatalf("browser: read %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}

	// Log in: a wrong password first, then the right one.
	open("wrong password", "/orders", "#login")
	typeIn("wrong password", "#name", "ops")
	typeIn("wrong password", "#password", "not it")
	click("wrong password", "#login")
	waitFor("wrong password", visible("#login-error"))
	typeIn("log in", "#name", "ops")
	typeIn("log in", "#password", "open sesame")
	click("log in", "#login")
	waitFor("log in", visible("#overview"))
	if who := text("#who"); who != "ops (operator)" {
		t.Fatalf("logged in as %q", who)
	}

	// Search the order by its customer's email and open it. The index
	// finds it (so a failure below is the page's, not the index's).
	if found, err := cs.index.Search(console.Query{Term: email}, 10); err != nil || len(found) != 1 || found[0].ID != first {
		t.Fatalf("index search for the first order's email: %v, %v", found, err)
	}
	open("search by email", "/orders", "#term")
	typeIn("search by email", "#term", email)
	click("search by email", "#search")
	// The result page names the search by a handle; the plain list before
	// it shows the order too, so wait for the handle first.
	waitFor("search by email", `location.search.indexOf("s=") >= 0 && `+visible("#orders"))
	waitFor("search by email", visible(`a[href="/orders/`+first+`"]`))
	run("search screenshot", shot("search"))
	loc, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(loc, email) || strings.Contains(loc, "@") {
		t.Fatalf("the search put the email in the URL: %s", loc)
	}
	if n := text("#orders"); strings.Count(n, "pi_") != 1 {
		t.Fatalf("the search lists other orders than %s:\n%s", first, n)
	}
	click("open the order", `a[href="/orders/`+first+`"]`)
	waitFor("open the order", visible("#order-id"))
	run("order screenshot", shot("order"))
	if s := text("#status"); s != "completed" {
		t.Fatalf("order page status %q", s)
	}
	if s := text("#customer"); !strings.Contains(s, email) {
		t.Fatalf("order page customer %q lacks %s", s, email)
	}

	// Shipping rejects: the next order becomes a dead letter.
	simFault(t, simHTTP.URL, http.MethodPut, `{"step":"shipping","mode":"reject","rate":1}`)
	second := sendOrder()
	dead := waitState(second, processor.StatusDeadLettered)
	src := fmt.Sprintf("%d/%d", dead.DeadLetter.Partition, dead.DeadLetter.Offset)
	waitIndexed()
	open("see the dead letter", "/dlq?status=open", `input[name="source"][value="`+src+`"]`)
	run("dead letter screenshot", shot("dlq-open"))
	if s := text(`span[data-source="` + src + `"]`); s != "open" {
		t.Fatalf("dead letter %s shows %q, want open", src, s)
	}

	// Clear the fault, then replay it from the page.
	simFault(t, simHTTP.URL, http.MethodDelete, "")
	click("replay", `input[name="source"][value="`+src+`"]`)
	click("replay", "#replay")
	waitFor("replay", visible("#job-result"))
	run("replay screenshot", shot("replay"))
	if s := text("#job-result"); !strings.Contains(s, "replayed 1, skipped 0") {
		t.Fatalf("replay result %q", s)
	}
	waitState(second, processor.StatusCompleted)
	waitIndexed()
	open("see it resolved", "/dlq?status=resolved", `span[data-source="`+src+`"]`)
	run("resolved screenshot", shot("dlq-resolved"))
	if s := text(`span[data-source="` + src + `"]`); s != "resolved" {
		t.Fatalf("dead letter %s shows %q after the replay, want resolved", src, s)
	}

	// Erase the first order from its page: the processor replaces its
	// state with the marker, and the page says what is left.
	open("erase", "/orders/"+first, "#erase-form")
	typeIn("erase", `#erase-form input[name="confirm"]`, first)
	click("erase", "#erase")
	waitState(first, processor.StatusErased)
	waitIndexed()
	open("erased order", "/orders/"+first, "#erased")
	run("erased screenshot", shot("erased"))
	if s := text("#status"); s != "erased" {
		t.Fatalf("erased order page status %q", s)
	}
	if s := text("main"); strings.Contains(s, email) {
		t.Fatalf("erased order page shows the customer:\n%s", s)
	}
	if form, err := eval(visible("#erase-form")); err != nil || form {
		t.Fatalf("erased order page offers the erase form (%v)", err)
	}

	// A SEPA debit refused: the order is listed under payment_failed and
	// its page says nothing was sent. A dispute of the second order: its
	// page says to answer it.
	post := func(body string) {
		t.Helper()
		sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(body), Secret: secret})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gwHTTP.URL+gateway.WebhookPath, strings.NewReader(body))
		req.Header.Set("Stripe-Signature", sig.Header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("gateway answered %d to %s", resp.StatusCode, body)
		}
	}
	const sepa = "pi_3QBrowserSepaFail01"
	session := `{"id":"cs_test_browser_sepa","object":"checkout.session","mode":"payment","payment_intent":"` + sepa + `","payment_status":"unpaid"}`
	post(`{"id":"evt_browser_sepa_1","object":"event","type":"checkout.session.completed","data":{"object":` + session + `}}`)
	post(`{"id":"evt_browser_sepa_2","object":"event","type":"checkout.session.async_payment_failed","data":{"object":` + session + `}}`)
	post(`{"id":"evt_browser_dispute","object":"event","type":"charge.dispute.created","data":{"object":{"id":"dp_browser","object":"dispute","amount":4990,"currency":"eur","reason":"fraudulent","payment_intent":"` + second + `"}}}`)
	waitState(sepa, processor.StatusPaymentFailed)
	waitUntil(second, "flagged disputed", func(st *processor.State) bool { return st.HasFlag(processor.FlagDisputed) })
	waitIndexed()
	open("payment failed", "/orders?status=payment_failed", `a[href="/orders/`+sepa+`"]`)
	if n := text("#orders"); strings.Count(n, "pi_") != 1 {
		t.Fatalf("the payment_failed filter lists other orders than %s:\n%s", sepa, n)
	}
	click("open the failed payment", `a[href="/orders/`+sepa+`"]`)
	waitFor("open the failed payment", visible("#next-step"))
	run("payment failed screenshot", shot("payment-failed"))
	if s := text("#status"); s != "payment_failed" {
		t.Fatalf("failed payment's page status %q", s)
	}
	if s := text("#next-step"); !strings.Contains(s, "Nothing to undo: the payment awaited failed") {
		t.Fatalf("failed payment's next step %q", s)
	}
	if s := text("#customer"); s != "not read from Stripe yet: no step has run" {
		t.Fatalf("failed payment's customer %q, want that nothing was read", s)
	}
	open("disputed order", "/orders/"+second, "#next-step")
	if s := text("#next-step"); !strings.Contains(s, "The customer disputed the payment (a chargeback") {
		t.Fatalf("disputed order's next step %q", s)
	}

	// The audit page lists the failed login, the replay and the erasure.
	open("audit", "/audit", "#audit")
	audit := text("#audit")
	for _, want := range []string{"login_failed", "dead letters " + src, "replayed 1, skipped 0", "erase"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit page lacks %q:\n%s", want, audit)
		}
	}
	run("audit screenshot", shot("audit"))
	open("overview", "/", "#steps")
	run("overview screenshot", shot("overview"))
	// Its counts are what each status filter lists: the second order
	// completed, the first erased, no dead letter left, one payment failed.
	for sel, want := range map[string]string{"#count-completed": "1", "#count-erased": "1", "#count-dead_lettered": "0", "#count-payment_failed": "1"} {
		if got := text(sel); got != want {
			t.Errorf("overview %s = %q, want %s", sel, got, want)
		}
	}
	t.Logf("screenshots in %s", shots)
}

func simFault(t *testing.T, simURL, method, body string) {
	t.Helper()
	req, _ := http.NewRequest(method, simURL+"/_sim/faults", bytes.NewReader([]byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s /_sim/faults: %d", method, resp.StatusCode)
	}
}
