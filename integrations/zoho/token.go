package zoho

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// tokenSource hands out the cached access token and refreshes it shortly
// before expiry, on demand when the CRM rejected it, one refresh at a time:
// concurrent callers that need a new token wait for the same refresh. Zoho
// allows only 10 token requests per 10 minutes, so a refresh per call, or per
// goroutine, would lock the shop out of its CRM.
type tokenSource struct {
	fetch    func(ctx context.Context) (token string, ttl time.Duration, err error)
	now      func() time.Time
	margin   time.Duration // refresh this long before expiry
	timeout  time.Duration // bound of one refresh
	cooldown time.Duration // wait after the token endpoint throttled us

	mu           sync.Mutex
	token        string
	refreshAt    time.Time // expiry less the margin
	blockedUntil time.Time // no token request before this (throttled)
	flight       *flight   // the refresh in progress, if any
}

type flight struct {
	done  chan struct{}
	token string
	err   error
}

// get returns a valid access token. stale is a token the caller saw
// rejected: if it is still the cached one, a refresh is forced.
func (ts *tokenSource) get(ctx context.Context, stale string) (string, error) {
	ts.mu.Lock()
	now := ts.now()
	if ts.token != "" && ts.token != stale && now.Before(ts.refreshAt) {
		tok := ts.token
		ts.mu.Unlock()
		return tok, nil
	}
	if now.Before(ts.blockedUntil) {
		wait := ts.blockedUntil.Sub(now)
		ts.mu.Unlock()
		return "", &integrations.Error{Provider: provider, Op: "refresh token", Class: integrations.Transient,
			RetryAfter: wait, Msg: "token endpoint throttled; waiting before the next token request"}
	}
	f := ts.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		ts.flight = f
		// The refresh runs on its own so that one caller giving up does
		// not fail the others waiting for the same token.
		go ts.refresh(context.WithoutCancel(ctx), f)
	}
	ts.mu.Unlock()
	select {
	case <-f.done:
		return f.token, f.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (ts *tokenSource) refresh(ctx context.Context, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, ts.timeout)
	defer cancel()
	tok, ttl, err := ts.fetch(ctx)

	ts.mu.Lock()
	if err == nil {
		// A token that lives shorter than twice the margin (a test
		// server's, say) is used for half its life, not refreshed on
		// every call.
		ts.token = tok
		ts.refreshAt = ts.now().Add(ttl - min(ts.margin, ttl/2))
	} else if isThrottled(err) {
		ts.blockedUntil = ts.now().Add(ts.cooldown)
	}
	ts.flight = nil
	ts.mu.Unlock()

	f.token, f.err = tok, err
	close(f.done)
}

// throttledMsg marks the error of a throttled token request.
const throttledMsg = "token endpoint throttled (too many requests)"

func isThrottled(err error) bool {
	var e *integrations.Error
	return errors.As(err, &e) && e.Op == "refresh token" && e.Msg == throttledMsg
}

// tokenResponse is the token endpoint's answer. Errors may come with HTTP
// 200 and an "error" key, so the key is checked whatever the status.
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	ExpiresIn        int64  `json:"expires_in"`
	ExpiresInSec     int64  `json:"expires_in_sec"` // older accounts servers: expires_in is then in ms
	APIDomain        string `json:"api_domain"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// fetchToken runs the refresh-token grant:
//
//	POST {accounts}/oauth/v2/token?refresh_token=…&client_id=…&client_secret=…&grant_type=refresh_token
//
// with the parameters in the query string as Zoho documents it. The URL
// holds secrets, so no error built here quotes it.
func (c *Client) fetchToken(ctx context.Context) (string, time.Duration, error) {
	const op = "refresh token"
	q := url.Values{
		"refresh_token": {c.cfg.RefreshToken},
		"client_id":     {c.cfg.ClientID},
		"client_secret": {c.cfg.ClientSecret},
		"grant_type":    {"refresh_token"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.accounts+"/oauth/v2/token?"+q.Encode(), nil)
	if err != nil {
		return "", 0, integrations.Permanentf(provider, op, "bad accounts URL")
	}
	req.Header.Set("Accept", "application/json")
	resp, body, err := c.roundTrip(req)
	if err != nil {
		return "", 0, netError(op, err)
	}
	var tr tokenResponse
	_ = json.Unmarshal(body, &tr) // a non-JSON body is judged by status below

	switch {
	case resp.StatusCode == http.StatusTooManyRequests || tokenThrottled(tr):
		e := &integrations.Error{Provider: provider, Op: op, Status: resp.StatusCode, Class: integrations.Transient,
			RetryAfter: c.cfg.TokenThrottleBackoff, Msg: throttledMsg}
		if ra := integrations.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ra > e.RetryAfter {
			e.RetryAfter = ra
		}
		c.log.Warn("zoho: token endpoint throttled", "retry_after", e.RetryAfter)
		return "", 0, e
	case resp.StatusCode >= 500:
		return "", 0, integrations.HTTPError(provider, op, resp, "accounts server error")
	case tr.Error != "":
		// invalid_client, invalid_code (revoked refresh token), ...:
		// retrying cannot help until someone fixes the credentials.
		return "", 0, &integrations.Error{Provider: provider, Op: op, Status: resp.StatusCode, Class: integrations.Permanent,
			Msg: "token request rejected: " + short(tr.Error)}
	case resp.StatusCode >= 400:
		return "", 0, integrations.HTTPError(provider, op, resp, "token request rejected")
	case tr.AccessToken == "":
		return "", 0, integrations.Transientf(provider, op, "no access_token in the token response")
	}
	ttl := time.Duration(tr.ExpiresIn) * time.Second
	switch {
	case tr.ExpiresInSec > 0:
		ttl = time.Duration(tr.ExpiresInSec) * time.Second
	case tr.ExpiresIn > 24*3600:
		ttl = time.Duration(tr.ExpiresIn) * time.Millisecond
	case tr.ExpiresIn <= 0:
		ttl = time.Hour // Zoho's documented lifetime
	}
	c.log.Debug("zoho: access token refreshed", "expires_in", ttl)
	return tr.AccessToken, ttl, nil
}

// tokenThrottled recognises Zoho's throttling answer:
// {"error":"Access Denied","error_description":"You have made too many
// requests continuously. Please try again after some time."}, seen with
// HTTP 400 and 200.
func tokenThrottled(tr tokenResponse) bool {
	return strings.Contains(strings.ToLower(tr.Error+" "+tr.ErrorDescription), "too many")
}
