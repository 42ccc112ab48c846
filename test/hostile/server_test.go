package hostile

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/test/harness"
	"github.com/orderflow/orderflow/test/testenv"
)

// The `orderflow gateway` server's limits (cmd/orderflow/gateway.go).
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	maxHeaderBytes    = 64 << 10
)

// TestServer runs the real `orderflow gateway` process against Kafka and
// checks the limits its HTTP server enforces — slow-loris clients and an
// oversized header block — and that an event with hostile strings crosses
// the real producer unchanged. At the end, the orders topic holds exactly
// the records of the requests answered "queued".
func TestServer(t *testing.T) {
	brokers := testenv.Kafka(t)
	names := testenv.Topics(t, brokers, 1)
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := harness.Binary(ctx, root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	logFile := filepath.Join(t.TempDir(), "gateway.log")
	// The secret comes from the environment, as in production, never from
	// the command line.
	gw := harness.NewProc("gateway", logFile, []string{"ORDERFLOW_WEBHOOK_SECRET=" + primarySecret},
		bin, "gateway", "--http-addr", addr, "--metrics-addr", metricsAddr, "--brokers", brokers,
		"--topic-prefix", names.Prefix, "--produce-timeout", "5s", "--shutdown-timeout", "5s", "--log-level", "debug")
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		gw.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("gateway log:\n%s", gw.LogTail(40))
		}
	})
	if err := harness.WaitHTTP(ctx, "http://"+addr+"/readyz"); err != nil {
		t.Fatalf("%v\n%s", err, gw.LogTail(20))
	}
	url := "http://" + addr + gateway.WebhookPath

	hostile := piEvent(person{`Aino\u0000 \ud800\u202e`, "H\xc0\xafmeenkatu 👩‍👩‍👧‍👦 10", "Tam\xff\xfepere\u2028"})
	t.Run("group", func(t *testing.T) {
		t.Run("hostile strings through Kafka", func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(hostile))
			req.Header.Set(gateway.SignatureHeader, signedAt(primarySecret, 0)(hostile, time.Now()))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "queued\n" {
				t.Fatalf("answer %d %q, want 200 queued", resp.StatusCode, b)
			}
		})
		t.Run("headers trickled slower than the read-header timeout", func(t *testing.T) {
			t.Parallel()
			slowHeaders(t, addr)
		})
		t.Run("body trickled slower than the read timeout", func(t *testing.T) {
			t.Parallel()
			slowBody(t, addr)
		})
		t.Run("header block over the limit", func(t *testing.T) {
			t.Parallel()
			body := piEvent(aino)
			raw := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: g\r\nStripe-Signature: %s\r\nX-Pad: %s\r\nContent-Length: %d\r\n\r\n%s",
				gateway.WebhookPath, signedAt(primarySecret, 0)(body, time.Now()), strings.Repeat("p", maxHeaderBytes+8<<10), len(body), body)
			status, _, _, err := roundTrip(addr, raw, false, 10*time.Second)
			if err != nil || status != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("answer %d (%v), want 431", status, err)
			}
		})
		t.Run("header block just under the limit", func(t *testing.T) {
			t.Parallel()
			body := piEvent(person{"Aino Virtanen", "Hämeenkatu 10", "Tampere-under-limit"})
			body = bytes.Replace(body, []byte(eventID), []byte(eventID+"_big_headers"), 1)
			raw := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: g\r\nStripe-Signature: %s\r\nX-Pad: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
				gateway.WebhookPath, signedAt(primarySecret, 0)(body, time.Now()), strings.Repeat("p", maxHeaderBytes-1<<10), len(body), body)
			status, text, _, err := roundTrip(addr, raw, false, 10*time.Second)
			if err != nil || status != 200 || text != "queued\n" {
				t.Fatalf("answer %d %q (%v), want 200 queued", status, text, err)
			}
		})
	})

	// Metrics are served on their own listener only, and carry no secret.
	if status, _ := get(t, "http://"+addr+"/metrics"); status != http.StatusNotFound {
		t.Errorf("GET /metrics on the webhook listener: %d, want 404", status)
	}
	if resp, err := http.Post("http://"+metricsAddr+gateway.WebhookPath, "application/json", strings.NewReader("{}")); err != nil {
		t.Errorf("POST to the metrics listener: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s on the metrics listener: %d, want 404 (the webhook is served only on its own listener)", gateway.WebhookPath, resp.StatusCode)
		}
	}
	status, metrics := get(t, "http://"+metricsAddr+"/metrics")
	if status != 200 || !strings.Contains(metrics, "orderflow_") {
		t.Errorf("GET /metrics on the metrics listener: %d", status)
	}
	checkLogs(t, metrics)

	// Exactly two records: the hostile strings and the large-header event.
	recs := readAll(t, brokers, names.Orders)
	if len(recs) != 2 {
		t.Fatalf("%d records on %s, want 2", len(recs), names.Orders)
	}
	for _, r := range recs {
		if bytes.Contains(r.Value, []byte("_big_headers")) {
			continue
		}
		checkRecord(t, r, names.Orders, hostile, piID)
	}
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	checkLogs(t, string(logs), "Tam\xff\xfepere", "ppppppppppppppppp")
}

// slowHeaders trickles header lines one a second: the server must close
// the connection once the read-header timeout passes, without an answer
// (or with an error status), and long before the headers would be done.
func slowHeaders(t *testing.T, addr string) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	limit := readHeaderTimeout + 5*time.Second
	_ = conn.SetDeadline(start.Add(limit))
	closed := make(chan error, 1)
	go func() {
		_, text, err := readAnswer(bufio.NewReader(conn))
		if err == nil {
			err = fmt.Errorf("answered %q", text)
		}
		closed <- err
	}()
	if _, err := io.WriteString(conn, "POST "+gateway.WebhookPath+" HTTP/1.1\r\nHost: g\r\n"); err != nil {
		t.Fatal(err)
	}
	lines := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-closed:
			switch {
			case errors.Is(err, errNoAnswer):
			case isTimeout(err):
				t.Fatalf("the connection was still open after %s of trickled headers", limit)
			case strings.HasPrefix(err.Error(), "answered"):
				if strings.Contains(err.Error(), "queued") {
					t.Fatalf("slow headers %v", err)
				}
			default:
				if !isReset(err) {
					t.Fatalf("reading the answer: %v", err)
				}
			}
			if lines < 2 {
				t.Fatalf("closed after only %d header lines: not a timeout", lines)
			}
			t.Logf("closed after %d trickled header lines (%.1fs)", lines, time.Since(start).Seconds())
			return
		case <-tick.C:
			if _, err := fmt.Fprintf(conn, "X-Slow-%d: 1\r\n", lines); err != nil {
				if isReset(err) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "broken pipe") {
					continue // closed: the reader reports it
				}
				t.Fatalf("write: %v", err)
			}
			lines++
		}
	}
}

// slowBody sends a signed event's headers at once and its body a byte a
// second: the server must end the request once its read timeout passes,
// with an error answer or a closed connection, and queue nothing.
func slowBody(t *testing.T, addr string) {
	body := bytes.Replace(piEvent(aino), []byte(eventID), []byte(eventID+"_slow_body"), 1)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	limit := readTimeout + 10*time.Second
	_ = conn.SetDeadline(start.Add(limit))
	answered := make(chan error, 1)
	var status int
	var text string
	go func() {
		var err error
		status, text, err = readAnswer(bufio.NewReader(conn))
		answered <- err
	}()
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: g\r\nStripe-Signature: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		gateway.WebhookPath, signedAt(primarySecret, 0)(body, time.Now()), len(body))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	sent := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-answered:
			switch {
			case err == nil && status == 200:
				t.Fatalf("a body trickled for %.0fs was answered 200 %q", time.Since(start).Seconds(), text)
			case err == nil:
				t.Logf("answered %d %q after %d body bytes (%.1fs)", status, text, sent, time.Since(start).Seconds())
			case isTimeout(err):
				t.Fatalf("the request was still open after %s of trickled body", limit)
			case errors.Is(err, errNoAnswer) || isReset(err):
				t.Logf("connection closed after %d body bytes (%.1fs)", sent, time.Since(start).Seconds())
			default:
				t.Fatalf("reading the answer: %v", err)
			}
			if sent >= len(body) {
				t.Fatalf("the whole body was sent (%d bytes): the trickle was too fast to test the timeout", sent)
			}
			return
		case <-tick.C:
			if sent < len(body) {
				if _, err := conn.Write(body[sent : sent+1]); err == nil {
					sent++
				}
			}
		}
	}
}

// get returns the status and body of a GET.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// readAll returns every record of topic, up to its end offsets now.
func readAll(t *testing.T, brokers, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	var recs []*kgo.Record
	for int64(len(recs)) < total {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s: %d of %d records: %v", topic, len(recs), total, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		recs = append(recs, fs.Records()...)
	}
	return recs
}
