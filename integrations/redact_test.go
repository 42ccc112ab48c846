package integrations

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestHTTPErrorRedactsTheRequestsCredentials: a provider answering with
// an error that echoes the request (its headers, its query) leaves no
// credential in the error's text, in any form it was sent in.
func TestHTTPErrorRedactsTheRequestsCredentials(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "https://api.example/v0/base?apikey=PNKEY-0001&client_secret=zs%2Fsecret%2B01&labelType=standard", nil)
	req.Header.Set("Authorization", "Basic cHJpdmRobHVzZXI6UFJJVkRITFBBU1NXT1JE") // privdhluser:PRIVDHLPASSWORD
	req.Header.Set("Dhl-Api-Key", "DHLKEY-77")
	req.Header.Set("X-Netvisor-Authentication-Sender", "orderflow")
	req.Header.Set("Idempotency-Key", "pi_3Qidem0001")
	cases := []struct{ name, msg, want string }{
		{"basic, encoded", "got Authorization=Basic cHJpdmRobHVzZXI6UFJJVkRITFBBU1NXT1JE", "got Authorization=<redacted>"},
		{"basic, decoded pair", "user privdhluser:PRIVDHLPASSWORD refused", "user <redacted> refused"},
		{"basic, password alone, other case", "password prIVDHLpassword is wrong", "password <redacted> is wrong"},
		{"api key header", "key DHLKEY-77 unknown", "key <redacted> unknown"},
		{"query key", "GET /v0/base?apikey=PNKEY-0001 denied", "GET /v0/base?apikey=<redacted> denied"},
		{"query secret, decoded and escaped", "secret zs/secret+01 or zs%2Fsecret%2B01", "secret <redacted> or <redacted>"},
		{"idempotency key and other values stay", "pi_3Qidem0001 labelType standard sender orderflow", "pi_3Qidem0001 labelType standard sender <redacted>"},
	}
	for _, c := range cases {
		e := HTTPError("dhl", "create shipment", &http.Response{StatusCode: 400, Header: http.Header{}, Request: req}, c.msg)
		if e.Msg != c.want {
			t.Errorf("%s: Msg %q, want %q", c.name, e.Msg, c.want)
		}
	}
	bearer, _ := http.NewRequest(http.MethodGet, "https://api.airtable.example/v0/app", nil)
	bearer.Header.Set("Authorization", "Bearer patAIRTABLE0001")
	e := HTTPError("airtable", "create records", &http.Response{StatusCode: 422, Header: http.Header{}, Request: bearer}, "token patAIRTABLE0001 (Bearer patAIRTABLE0001) invalid")
	if e.Msg != "token <redacted> (<redacted>) invalid" {
		t.Errorf("bearer: %q", e.Msg)
	}
	// No request (a response made in a test): the message as it is.
	if e := HTTPError("x", "y", &http.Response{StatusCode: 500, Header: http.Header{}}, "as is"); e.Msg != "as is" {
		t.Errorf("no request: %q", e.Msg)
	}
}

// TestNetErrorRedactsTheURL: a transport failure's text names the URL;
// its query values (a key, a refresh token, a VAT number) are not shown,
// and the error is still a timeout when it was one.
func TestNetErrorRedactsTheURL(t *testing.T) {
	cause := &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}
	ue := &url.Error{Op: "Post", URL: "https://accounts.zoho.example/oauth/v2/token?client_id=1000.ID&client_secret=ZSECRET&refresh_token=1000.REFRESH", Err: cause}
	err := NetError("zoho", "refresh token", ue)
	want := `zoho: refresh token: Post "https://accounts.zoho.example/oauth/v2/token?client_id=REDACTED&client_secret=REDACTED&refresh_token=REDACTED": dial tcp: i/o timeout`
	if err.Error() != want {
		t.Errorf("text %q\nwant %q", err.Error(), want)
	}
	if !IsTimeout(err) {
		t.Error("no longer a timeout")
	}
	var got *url.Error
	if !errors.As(err, &got) || got != ue {
		t.Error("does not unwrap to the url.Error")
	}
	plain := &url.Error{Op: "Get", URL: "https://api.example/v1/x", Err: errors.New("connection refused")}
	if err := NetError("p", "op", plain); !strings.HasSuffix(err.Error(), `Get "https://api.example/v1/x": connection refused`) {
		t.Errorf("no query: %q", err)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestRedactValuesOfACutText: a message cut to a length before it is
// masked ends in part of a value; that part goes too.
func TestRedactValuesOfACutText(t *testing.T) {
	values := []string{"zqx6.privmail@privtest.example", "1000.sim.22d8f26f0e66457778b8d384be8ca1d9", "services"}
	for in, want := range map[string]string{
		"refused for zqx6.privmail@pri…":                             "refused for ***…",
		"Authorization=Zoho-oauthtoken 1000.sim.22d8f26f0e66457778b": "Authorization=Zoho-oauthtoken ***",
		"email zqx6.privmail@privtest.example refused":               "email *** refused",
		"ends with zqx":       "ends with zqx", // too short a part to tell
		"ends with zqx6…":     "ends with ***…",
		"ends with zqx6.priv": "ends with zqx6.priv", // not cut, and short: a word
		"no_service":          "no_service",
	} {
		if got := RedactValues(in, values, "***"); got != want {
			t.Errorf("RedactValues(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHTTPErrorOfACallNotSent: the 429 made on this side for a call held
// back by the limit (HeaderNotSent) is a throttled error of a call never
// sent, with its Retry-After.
func TestHTTPErrorOfACallNotSent(t *testing.T) {
	h := http.Header{"Retry-After": {"7"}, HeaderNotSent: {"limit"}}
	e := HTTPError("postnord", "book shipment", &http.Response{StatusCode: 429, Header: h}, "wait of 7s outlasts the deadline")
	if !e.NotSent || !errors.Is(e, ErrThrottled) || !IsThrottled(e) || e.RetryAfter != 7*time.Second {
		t.Errorf("%+v: want not sent, throttled, Retry-After 7s", e)
	}
	real := HTTPError("postnord", "book shipment", &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"7"}}}, "slow down")
	if real.NotSent || errors.Is(real, ErrThrottled) || !IsThrottled(real) {
		t.Errorf("the provider's own 429 %+v: want sent, a 429, not held back", real)
	}
}
