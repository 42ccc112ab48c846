package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
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
