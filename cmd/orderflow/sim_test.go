package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startSim runs `orderflow sim` with args on a free port and returns its URL.
func startSim(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runSim(ctx, append([]string{"--addr", "127.0.0.1:0"}, args...), pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sim: %v", err)
		}
	})
	sc := bufio.NewScanner(pr)
	re := regexp.MustCompile(`listening on (http://\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, pr) }()
			return m[1]
		}
	}
	t.Fatalf("sim did not start: %v", sc.Err())
	return ""
}

func airtablePatch(t *testing.T, base string, i int) (int, string) {
	t.Helper()
	body := fmt.Sprintf(`{"performUpsert":{"fieldsToMergeOn":["Order ID"]},"records":[{"fields":{"Order ID":"pi_%d"}}]}`, i)
	req, _ := http.NewRequest(http.MethodPatch, base+"/v0/appShop/tblOrders", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer patX")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// --enforce-limits: the sixth Airtable request within a second to one base
// is refused as Airtable does; without it all pass.
func TestSimEnforceLimitsFlag(t *testing.T) {
	for _, tt := range []struct {
		args  []string
		sixth int
	}{{nil, 200}, {[]string{"--enforce-limits"}, 429}} {
		url := startSim(t, tt.args...)
		start := time.Now()
		for i := range 5 {
			if st, body := airtablePatch(t, url, i); st != 200 {
				t.Fatalf("%v: request %d: %d %s", tt.args, i+1, st, body)
			}
		}
		st, body := airtablePatch(t, url, 5)
		if time.Since(start) >= time.Second {
			t.Skip("six requests took a second or more: the window passed")
		}
		if st != tt.sixth {
			t.Fatalf("%v: sixth request %d %s, want %d", tt.args, st, body, tt.sixth)
		}
		if st == 429 && !strings.Contains(body, "RATE_LIMIT_REACHED") {
			t.Errorf("429 body %q", body)
		}
	}
}

func TestSimLimitFlagsRefuseNegative(t *testing.T) {
	err := runSim(context.Background(), []string{"--enforce-limits", "--postnord-per-second", "-1"}, io.Discard, io.Discard)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--postnord-per-second") {
		t.Fatalf("err = %v, want a usage error naming --postnord-per-second", err)
	}
}

// --zoho-daily-credits sets the allowance /_sim/zoho/credits reports;
// a negative one is a usage error.
func TestSimZohoDailyCreditsFlag(t *testing.T) {
	url := startSim(t, "--enforce-limits", "--zoho-daily-credits", "7")
	resp, err := http.Get(url + "/_sim/zoho/credits")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != `{"daily":7,"spent":0,"remaining":7}`+"\n" {
		t.Errorf("credits: %d %s", resp.StatusCode, b)
	}
	err = runSim(context.Background(), []string{"--enforce-limits", "--zoho-daily-credits", "-1"}, io.Discard, io.Discard)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--zoho-daily-credits") {
		t.Fatalf("err = %v, want a usage error naming --zoho-daily-credits", err)
	}
}

// postWebhook posts a delivery to the simulator's receiver name, signed with
// secret (HMAC-SHA256 of "<id>.<timestamp>.<body>", computed here).
func postWebhook(t *testing.T, base, name, id, secret string) int {
	t.Helper()
	body := `{"type":"order.` + name + `","version":1,"data":{"order":{"id":"pi_1"},"results":{}}}`
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "." + body))
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/"+name, strings.NewReader(body))
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// orderflow sim --webhook-step-secret-file <name>=<file> verifies that
// receiver's deliveries (the processor's own value, rotation included);
// other names are accepted unverified.
func TestSimVerifiesWebhookSecrets(t *testing.T) {
	f := writeFile(t, "erp", hookSecretA+"\n"+hookSecretB+"\n")
	base := startSim(t, "--webhook-step-secret-file", "erp="+f)
	const wrong = "whsec_MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0"
	for _, tt := range []struct {
		name, id, secret string
		want             int
	}{
		{"erp", "msg_1", hookSecretA, 200},
		{"erp", "msg_2", hookSecretB, 200},
		{"erp", "msg_3", wrong, 401},
		{"wms", "msg_4", wrong, 200},
	} {
		if got := postWebhook(t, base, tt.name, tt.id, tt.secret); got != tt.want {
			t.Errorf("%s signed with %s…: %d, want %d", tt.name, tt.secret[:10], got, tt.want)
		}
	}
	resp, err := http.Get(base + "/_sim/webhooks")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`"id":"msg_1","type":"order.erp","order":"pi_1","attempts":1,"verified":true`, `"id":"msg_4","type":"order.wms","order":"pi_1","attempts":1,"verified":false`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("GET /_sim/webhooks %s: no %s", b, want)
		}
	}

	empty := writeFile(t, "empty", "\n")
	err = runSim(context.Background(), []string{"--addr", "127.0.0.1:0", "--webhook-step-secret-file", "erp=" + empty}, io.Discard, io.Discard)
	if want := "--webhook-step-secret-file erp: " + empty + " is empty"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("empty secret file: %v, want %q", err, want)
	}
}

// sim --help lists every fault mode, step and control endpoint.
func TestSimHelpComplete(t *testing.T) {
	var out bytes.Buffer
	_ = runSim(context.Background(), []string{"--help"}, &out, &out)
	for _, want := range []string{`"late-answer"`, `"max_latency"`, `"answers_lost"`, "GET    /_sim/webhooks", "PUT    /_sim/postnord",
		"Steps: crm, production_log, shipping, invoice, email, webhook, alert, slack, stripe", "-webhook-step-secret-file"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("sim --help has no %q", want)
		}
	}
}
