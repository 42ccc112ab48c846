package hostile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/gateway"
)

// wireCase is a request written byte for byte on a TCP connection, for
// framing a well-behaved HTTP client cannot produce. closeWrite half-closes
// the connection after writing, as a client that gives up mid-body.
type wireCase struct {
	name       string
	raw        func(body []byte, sig string) string
	closeWrite bool
	// status is the expected answer; 0 means the server may answer with
	// any status but 200, or close the connection without answering.
	status int
	text   string
	queued bool // the event must be queued (otherwise nothing may be)
	// closes: the server must close the connection after its first answer
	// (RFC 9112 §6.1 for a request carrying both Content-Length and
	// Transfer-Encoding), so nothing smuggled behind it is read.
	closes bool
}

func wireCases() []wireCase {
	head := func(extra string) string {
		return "POST " + gateway.WebhookPath + " HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n" + extra
	}
	return []wireCase{
		{name: "well-formed baseline", raw: func(b []byte, sig string) string {
			return head(fmt.Sprintf("Stripe-Signature: %s\r\nContent-Length: %d\r\n\r\n%s", sig, len(b), b))
		}, status: 200, text: "queued", queued: true},
		{name: "Content-Length longer than the body, client hangs up", raw: func(b []byte, sig string) string {
			return head(fmt.Sprintf("Stripe-Signature: %s\r\nContent-Length: %d\r\n\r\n%s", sig, len(b)+100, b))
		}, closeWrite: true, status: 400, text: "cannot read body"},
		{name: "body cut in half, client hangs up", raw: func(b []byte, sig string) string {
			return head(fmt.Sprintf("Stripe-Signature: %s\r\nContent-Length: %d\r\n\r\n%s", sig, len(b), b[:len(b)/2]))
		}, closeWrite: true, status: 400, text: "cannot read body"},
		{name: "chunked body cut mid-chunk", raw: func(b []byte, sig string) string {
			return head(fmt.Sprintf("Stripe-Signature: %s\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s", sig, len(b), b[:len(b)/2]))
		}, closeWrite: true, status: 400, text: "cannot read body"},
		{name: "malformed chunk size", raw: func(b []byte, sig string) string {
			return head(fmt.Sprintf("Stripe-Signature: %s\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n%s\r\n0\r\n\r\n", sig, b))
		}, status: 400, text: "cannot read body"},
		{name: "two different Content-Length headers", raw: func(b []byte, sig string) string {
			return head(fmt.Sprintf("Stripe-Signature: %s\r\nContent-Length: %d\r\nContent-Length: 5\r\n\r\n%s", sig, len(b), b))
		}, status: 400},
		// RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, and the
		// server reads the chunked body, here the signed event. RFC 9112
		// §6.1 also wants the connection closed after the answer: Go's
		// server would keep it open, the gateway asks it to close.
		{name: "Content-Length and Transfer-Encoding together", raw: func(b []byte, sig string) string {
			return head(fmt.Sprintf("Stripe-Signature: %s\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", sig, len(b), b))
		}, status: 200, text: "queued", queued: true, closes: true},
		// A proxy that framed by Content-Length would forward the second
		// request as the first one's body; the gateway closes the connection
		// after the first answer, so the second is never read.
		{name: "request smuggled behind a Content-Length/Transfer-Encoding conflict", raw: func(b []byte, _ string) string {
			smuggled := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: g\r\nStripe-Signature: t=%d,v1=%s\r\nContent-Length: %d\r\n\r\n%s",
				gateway.WebhookPath, time.Now().Unix(), strings.Repeat("0", 64), len(b), b)
			return head(fmt.Sprintf("Stripe-Signature: t=1,v1=00\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s", len(smuggled)+5, smuggled))
		}, closeWrite: true, status: 400, text: reasonStale, closes: true},
		{name: "unsupported Transfer-Encoding", raw: func(b []byte, sig string) string {
			return head(fmt.Sprintf("Stripe-Signature: %s\r\nTransfer-Encoding: gzip\r\n\r\n%s", sig, b))
		}, status: 501},
		{name: "negative Content-Length", raw: func(b []byte, sig string) string {
			return head(fmt.Sprintf("Stripe-Signature: %s\r\nContent-Length: -1\r\n\r\n%s", sig, b))
		}, status: 400},
		{name: "NUL in the signature header", raw: func(b []byte, sig string) string {
			return head(fmt.Sprintf("Stripe-Signature: %s\x00\r\nContent-Length: %d\r\n\r\n%s", sig, len(b), b))
		}, status: 400},
		{name: "bare CR in the signature header", raw: func(b []byte, sig string) string {
			return head(fmt.Sprintf("Stripe-Signature: t=1\rv1=00,%s\r\nContent-Length: %d\r\n\r\n%s", sig, len(b), b))
		}, status: 400},
		{name: "signature folded onto a continuation line", raw: func(b []byte, sig string) string {
			t, v1, _ := strings.Cut(sig, ",")
			return head(fmt.Sprintf("Stripe-Signature: %s,\r\n %s\r\nContent-Length: %d\r\n\r\n%s", t, v1, len(b), b))
		}, status: 400},
		{name: "space before the colon of the signature header", raw: func(b []byte, sig string) string {
			return head(fmt.Sprintf("Stripe-Signature : %s\r\nContent-Length: %d\r\n\r\n%s", sig, len(b), b))
		}, status: 400},
		{name: "two Stripe-Signature headers, forged one first", raw: func(b []byte, sig string) string {
			return head(fmt.Sprintf("Stripe-Signature: t=1,v1=%s\r\nStripe-Signature: %s\r\nContent-Length: %d\r\n\r\n%s",
				strings.Repeat("0", 64), sig, len(b), b))
		}, status: 400, text: reasonStale},
		{name: "HTTP/0.9 style request line", raw: func([]byte, string) string {
			return "POST " + gateway.WebhookPath + "\r\n\r\n"
		}, status: 400},
		{name: "absurd HTTP version", raw: func(b []byte, sig string) string {
			return fmt.Sprintf("POST %s HTTP/9.9\r\nHost: g\r\nStripe-Signature: %s\r\nContent-Length: %d\r\n\r\n%s", gateway.WebhookPath, sig, len(b), b)
		}, status: 505},
	}
}

// TestWire sends requests with broken HTTP framing to the gateway behind a
// real HTTP server: none may queue anything, and each gets the answer the
// HTTP server or the gateway gives it.
func TestWire(t *testing.T) {
	for _, c := range wireCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			body := piEvent(aino)
			status, text, next, err := roundTrip(e.srv.Listener.Addr().String(), c.raw(body, signedAt(primarySecret, 0)(body, time.Now())), c.closeWrite, 10*time.Second)
			switch {
			case c.status == 0:
				if err == nil && status == 200 {
					t.Fatalf("answered 200 %q", text)
				}
			case err != nil:
				t.Fatalf("no answer (%v), want %d", err, c.status)
			case status != c.status || !strings.Contains(text, c.text):
				t.Fatalf("answer %d %q, want %d %q", status, text, c.status, c.text)
			}
			if c.closes {
				if status, text, err := next(); !errors.Is(err, errNoAnswer) {
					t.Fatalf("connection still open after the first answer: next answer %d %q, err %v", status, text, err)
				}
			}
			recs := e.prod.produced()
			switch {
			case c.queued && len(recs) != 1:
				t.Fatalf("%d records, want 1", len(recs))
			case c.queued:
				checkRecord(t, recs[0], ordersTopic, body, piID)
			case len(recs) != 0:
				t.Fatalf("%d records queued, want none", len(recs))
			}
			checkLogs(t, e.logs.String())
		})
	}
}

// errNoAnswer is returned by roundTrip when the server closed the
// connection without an HTTP answer.
var errNoAnswer = errors.New("connection closed without an answer")

// roundTrip writes raw on a new connection to addr and reads one answer;
// next reads another one from the same connection (until the timeout).
func roundTrip(addr, raw string, closeWrite bool, timeout time.Duration) (status int, text string, next func() (int, string, error), err error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return 0, "", nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, raw); err != nil {
		conn.Close()
		return 0, "", nil, err
	}
	if closeWrite {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(conn)
	next = func() (int, string, error) {
		status, text, err := readAnswer(br)
		if err != nil {
			conn.Close()
		}
		return status, text, err
	}
	status, text, err = next()
	if err == nil {
		// Close unless the caller reads on; the test's cleanup order
		// closes the server (and so the connection) anyway.
		time.AfterFunc(timeout, func() { conn.Close() })
	}
	return status, text, next, err
}

func readAnswer(br *bufio.Reader) (int, string, error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, "", errNoAnswer
		}
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}
