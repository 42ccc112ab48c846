// Package webhook delivers an order to any HTTP endpoint as a signed JSON
// webhook, so a shop can plug in a system orderflow has no client for (an
// ERP, a warehouse, a marketing tool, its own service) without code.
//
// # Wire format
//
// Each delivery is one POST of a Payload (version 1, see PayloadVersion):
//
//	{"type":"order.erp","version":1,"timestamp":"2026-01-02T03:04:05Z",
//	 "data":{"order":{...integrations.Order...},
//	         "results":{"shipping":{...},"invoice":{"number":"...",...}}}}
//
// type is "order." plus the webhook's name unless Config.EventType says
// otherwise; data.results holds the results of the steps done so far, by
// step name, as the order state records them. The details step's result is
// data.order itself, so results has no "details" (it is {} for a webhook
// right after details). A body over Config.MaxPayloadBytes (64 KiB by
// default) is not sent: the delivery fails permanently.
//
// # Signature (Standard Webhooks v1)
//
// Requests carry the three headers of the Standard Webhooks specification:
// webhook-id, webhook-timestamp (unix seconds of this attempt) and
// webhook-signature, "v1,<base64 HMAC-SHA256>" of "<id>.<timestamp>.<body>"
// with the secret's key. With several secrets (a key rotation) the header
// holds one signature per secret, separated by spaces, and a receiver that
// knows any of them accepts. Secrets are "whsec_" plus the base64 of 24 to
// 64 bytes. The id is MessageID(name, order id): the same for every attempt
// of one order at one webhook step, so the receiver deduplicates on it.
//
// # Outcomes
//
// Deliver returns nil for any 2xx. Every failure is an *integrations.Error,
// so the processor's retries, circuit breaker and dead letters apply:
//
//   - 3xx: permanent; redirects are never followed (a redirect is a
//     misconfigured URL, and following one would let the receiver point
//     the signed order somewhere else).
//   - 410 Gone: permanent, "endpoint gone": the receiver disabled this
//     webhook, per the specification.
//   - 408, 429 and 5xx: transient, with RetryAfter from a Retry-After
//     header (seconds or HTTP date).
//   - any other 4xx: permanent.
//   - timeouts and network errors: transient.
//   - a payload over Config.MaxPayloadBytes: permanent, nothing is sent.
//
// The URL may hold a secret (many receivers put a token in it, some in the
// host name): no part of it, host included, is logged or put in an error, and neither are request or response bodies
// beyond a short, single-line excerpt of a 4xx reply.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics/tracing"
)

const provider = "webhook"

// PayloadVersion is the version of Payload this package sends. A change
// that could break a receiver (a renamed or retyped field) gets a new
// version; adding fields does not.
const PayloadVersion = 1

// Header names of the Standard Webhooks specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret's text form.
const SecretPrefix = "whsec_"

// Defaults.
const (
	// DefaultTimeout bounds one delivery; the specification advises 15–30 s.
	DefaultTimeout = 15 * time.Second
	// DefaultMaxPayloadBytes bounds the JSON body. The specification advises
	// keeping payloads small (about 20 KB); an order with many lines and
	// every result fits well within 64 KiB.
	DefaultMaxPayloadBytes = 64 << 10
)

// Payload is the body of a delivery. Its JSON field names and types are the
// contract with receivers (see PayloadVersion).
type Payload struct {
	// Type is the event type, "order.<name>" by default.
	Type string `json:"type"`
	// Version is PayloadVersion.
	Version int `json:"version"`
	// Timestamp is when this delivery was built (RFC 3339, UTC). Unlike the
	// webhook-timestamp header it is not signed on its own; the whole body is.
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is what the delivery is about.
type Data struct {
	// Order is the order as the details step read it; amounts in minor units.
	Order integrations.Order `json:"order"`
	// Results are the results of the steps done so far, by step name, in the
	// JSON the order state records (e.g. "invoice": {"number","provider_id"}).
	Results map[string]json.RawMessage `json:"results"`
}

// Result is what a successful delivery records in the order state.
type Result struct {
	// MessageID is the webhook-id sent, the receiver's deduplication key.
	MessageID string `json:"message_id"`
	// Status is the receiver's 2xx status.
	Status int `json:"status"`
}

// Config configures a Client.
type Config struct {
	// Name names this webhook step ("erp", "warehouse"): letters, digits,
	// '_' and '-'. It is part of every message id and of the default Type.
	Name string
	// URL is the receiver's endpoint, http or https. It may contain a
	// secret, so it is never logged or put in an error.
	URL string
	// Secrets sign every request: "whsec_" + base64 of 24–64 bytes. The
	// first is the current one; list the next secret too during a rotation,
	// and each request carries one signature per secret.
	Secrets []string
	// EventType is Payload.Type; default "order." + Name.
	EventType string
	// Timeout bounds one delivery, connection to response; default 15s.
	Timeout time.Duration
	// MaxPayloadBytes refuses (permanently) to send a larger body; default
	// 64 KiB.
	MaxPayloadBytes int
	// DenyPrivateNetworks refuses to connect to loopback, private,
	// link-local and unspecified addresses (checked on the address actually
	// dialled, so a DNS name that resolves to one is refused as well). Off by
	// default: the URL is set by whoever runs orderflow, and a shop's own
	// service on its network is the common receiver. Turn it on when the URL
	// comes from someone less trusted. It is ignored when HTTPClient is set.
	DenyPrivateNetworks bool
	// HTTPClient is used for requests; default a client with Timeout. Its
	// redirect policy is replaced: redirects are never followed.
	HTTPClient *http.Client
	// Now is the clock for webhook-timestamp and Payload.Timestamp; default
	// time.Now.
	Now func() time.Time
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (c *Config) setDefaults() {
	if c.EventType == "" {
		c.EventType = "order." + c.Name
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports a missing or malformed setting, naming the webhook but
// never showing the URL or a secret.
func (c Config) Validate() error {
	c.setDefaults()
	if !nameRE.MatchString(c.Name) {
		return fmt.Errorf("webhook: name %q must be 1–64 letters, digits, '_' or '-'", c.Name)
	}
	if !integrations.IsHTTPURL(c.URL) {
		return fmt.Errorf("webhook %s: URL must be an absolute http(s) URL", c.Name)
	}
	if u, _ := url.Parse(c.URL); u.User != nil {
		return fmt.Errorf("webhook %s: URL must not carry user:password (use the signature)", c.Name)
	}
	if len(c.Secrets) == 0 {
		return fmt.Errorf("webhook %s: at least one secret is required", c.Name)
	}
	for i, s := range c.Secrets {
		if _, err := ParseSecret(s); err != nil {
			return fmt.Errorf("webhook %s: secret %d: %w", c.Name, i+1, err)
		}
	}
	if c.Timeout < 0 {
		return fmt.Errorf("webhook %s: timeout must not be negative", c.Name)
	}
	if c.MaxPayloadBytes < 0 {
		return fmt.Errorf("webhook %s: MaxPayloadBytes must not be negative", c.Name)
	}
	return nil
}

// ParseSecret decodes a "whsec_<base64>" secret (the prefix may be left
// out) into its key, which must be 24 to 64 bytes as the specification
// requires. The error never contains the secret.
func ParseSecret(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), SecretPrefix))
	if err != nil {
		return nil, errors.New("not whsec_ followed by standard base64")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("key is %d bytes; Standard Webhooks secrets are 24 to 64 bytes", len(key))
	}
	return key, nil
}

// Sign returns the v1 signature, "v1,<base64 HMAC-SHA256>", of id,
// timestamp and body with key. It is exported so that receivers and tests
// can build a signed request exactly as Deliver does.
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// MessageID is the webhook-id of the delivery of orderID at the webhook
// step name: "msg_" and 32 hex digits of a SHA-256 of both. It is the same
// on every attempt, after a restart and on another processor.
func MessageID(name, orderID string) string {
	sum := sha256.Sum256([]byte(name + "\x00" + orderID))
	return "msg_" + hex.EncodeToString(sum[:16])
}

// Client delivers to one endpoint. It is safe for concurrent use.
type Client struct {
	cfg  Config
	keys [][]byte
	http *http.Client
}

// New validates cfg and builds a Client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c := &Client{cfg: cfg}
	for _, s := range cfg.Secrets {
		k, _ := ParseSecret(s) // validated
		c.keys = append(c.keys, k)
	}
	var hc http.Client
	switch {
	case cfg.HTTPClient != nil:
		hc = *cfg.HTTPClient
	case cfg.DenyPrivateNetworks:
		hc = http.Client{Timeout: cfg.Timeout, Transport: guardedTransport()}
	default:
		hc = *integrations.HTTPClient(nil, cfg.Timeout)
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &hc
	return c, nil
}

// Name is the webhook step's name.
func (c *Client) Name() string { return c.cfg.Name }

// Deliver posts the order and the results so far, signed, and returns what
// to record once the receiver answered 2xx. Failures are
// *integrations.Error as described in the package comment.
func (c *Client) Deliver(ctx context.Context, o integrations.Order, results map[string]json.RawMessage) (Result, error) {
	const op = "deliver"
	if o.ID == "" {
		return Result{}, c.permanent(op, "order without an id")
	}
	if results == nil {
		results = map[string]json.RawMessage{}
	}
	now := c.cfg.Now()
	body, err := json.Marshal(Payload{
		Type:      c.cfg.EventType,
		Version:   PayloadVersion,
		Timestamp: now.UTC().Truncate(time.Second),
		Data:      Data{Order: o, Results: results},
	})
	if err != nil {
		return Result{}, c.permanent(op, "encode payload: "+err.Error())
	}
	if len(body) > c.cfg.MaxPayloadBytes {
		return Result{}, c.permanent(op, fmt.Sprintf("payload is %d bytes, over the limit of %d (MaxPayloadBytes)", len(body), c.cfg.MaxPayloadBytes))
	}
	id := MessageID(c.cfg.Name, o.ID)
	ts := now.Unix()
	sigs := make([]string, len(c.keys))
	for i, k := range c.keys {
		sigs[i] = Sign(k, id, ts, body)
	}

	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(tracing.WithSecretURL(ctx), http.MethodPost, c.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return Result{}, c.permanent(op, "build request: invalid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "orderflow-webhook/1")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, strings.Join(sigs, " "))
	resp, err := c.http.Do(req)
	if err != nil {
		return Result{}, c.netError(op, err)
	}
	defer resp.Body.Close()
	// Read a little of the body so the connection can be reused; a receiver
	// has nothing to tell us beyond its status.
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return Result{MessageID: id, Status: resp.StatusCode}, nil
	}
	return Result{}, c.statusError(op, resp, excerpt)
}

// statusError classifies a non-2xx answer.
func (c *Client) statusError(op string, resp *http.Response, body []byte) error {
	e := &integrations.Error{Provider: provider, Op: c.cfg.Name + ": " + op, Status: resp.StatusCode, Class: integrations.Permanent}
	s := resp.StatusCode
	switch {
	case s/100 == 3:
		e.Msg = "the receiver redirects; redirects are not followed: configure the final URL"
	case s == http.StatusGone:
		e.Msg = "endpoint gone: the receiver disabled this webhook; fix or remove the webhook's URL"
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		e.Class = integrations.Transient
		e.RetryAfter = integrations.ParseRetryAfter(resp.Header.Get("Retry-After"), c.cfg.Now())
		e.Msg = excerptOf(body)
	case s/100 == 4:
		e.Msg = excerptOf(body)
	default: // 1xx after the request, or a status outside 100–599
		e.Class = integrations.Transient
		e.Msg = "unexpected status"
	}
	e.Msg = integrations.RedactRequest(e.Msg, resp.Request)
	// The URL is a credential: an answer quoting it loses it.
	e.Msg = integrations.RedactValues(e.Msg, integrations.SecretURLParts(c.cfg.URL), integrations.Redacted)
	return e
}

// excerptOf is a single line of at most 120 characters of a reply body.
func excerptOf(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if r := []rune(s); len(r) > 120 {
		s = string(r[:120]) + "…"
	}
	return s
}

func (c *Client) permanent(op, msg string) error {
	return &integrations.Error{Provider: provider, Op: c.cfg.Name + ": " + op, Class: integrations.Permanent, Msg: msg}
}

// netError wraps a transport failure as transient without the URL, which
// *url.Error would otherwise print.
func (c *Client) netError(op string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, errPrivate) {
		return c.permanent(op, "the URL resolves to a private or loopback address, refused by DenyPrivateNetworks")
	}
	return integrations.NetError(provider, c.cfg.Name+": "+op, withoutAddress(err))
}

// withoutAddress drops the receiver's host name and address from a
// transport error (a *net.OpError prints "dial tcp <host>:<port>: ...", a
// *net.DNSError "lookup <host> on <server>: ...", a certificate for another
// host names both), keeping what went wrong: the webhook's name in the
// error's Op says where.
func withoutAddress(err error) error {
	var hn x509.HostnameError
	if errors.As(err, &hn) {
		return hostless{msg: "tls: the receiver's certificate is not valid for the URL's host", err: err}
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return hostless{msg: "lookup of the URL's host: " + dns.Err, timeout: dns.Timeout(), err: err}
	}
	var op *net.OpError
	if errors.As(err, &op) {
		msg := op.Op
		if op.Err != nil {
			msg += ": " + op.Err.Error()
		}
		return hostless{msg: msg, timeout: op.Timeout(), err: err}
	}
	return err
}

// hostless is a transport error printed without its address. Unwrap keeps
// errors.Is and errors.As working (a deadline, a refused connection); its
// text is msg only.
type hostless struct {
	msg     string
	timeout bool
	err     error
}

func (h hostless) Error() string   { return h.msg }
func (h hostless) Unwrap() error   { return h.err }
func (h hostless) Timeout() bool   { return h.timeout }
func (h hostless) Temporary() bool { return h.timeout }

var errPrivate = errors.New("private or loopback address refused")

// guardedTransport is integrations.Transport's settings with a dialer that
// refuses private destinations after name resolution.
func guardedTransport() *http.Transport {
	base, _ := integrations.Transport.(*http.Transport)
	var t *http.Transport
	if base != nil {
		t = base.Clone()
	} else {
		t = &http.Transport{}
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip := net.ParseIP(host)
			if ip == nil || isPrivate(ip) {
				return errPrivate
			}
			return nil
		}}
	t.DialContext = d.DialContext
	t.Proxy = nil // a proxy would be dialled instead of the receiver
	return t
}

func isPrivate(ip net.IP) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast()
}
