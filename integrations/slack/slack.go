// Package slack sends operator alerts to a Slack channel through an
// incoming webhook (POST {"text": ...} to https://hooks.slack.com/services/…).
//
// Alerts are batched as for Telegram (package alertbatch): Alert only
// records the alert, and one summary message goes out per batch, at least
// MinInterval (default 1s, Slack's documented rate for incoming webhooks)
// after the previous one, so a burst of a thousand dead letters is a few
// messages, not a thousand 429s.
//
// Slack answers 200 with the body "ok". A 429 carries Retry-After (seconds),
// which the retry waits; 5xx and network errors are retried with backoff up
// to MaxAttempts. Its other errors are plain strings (invalid_payload,
// channel_not_found, channel_is_archived, no_service, action_prohibited,
// invalid_token, ...): 400, 403, 404 and 410 are permanent, are not retried,
// and are logged as an error saying the webhook must be fixed.
//
// Text is Slack mrkdwn: &, < and > in alert texts are escaped (&amp; &lt;
// &gt;), so an alert cannot mention @channel or inject a link, and a message
// is cut to MaxMessageLen (40,000) characters without splitting an entity.
//
// The webhook URL is the credential: it is never logged or put in an error.
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/alertbatch"
	"github.com/orderflow/orderflow/topics/tracing"
)

const provider = "slack"

// MaxMessageLen is the length, in characters, beyond which Slack truncates
// a message's text.
const MaxMessageLen = 40000

// ErrClosed is returned by Alert after Close.
var ErrClosed = alertbatch.ErrClosed

// Config configures a Client.
type Config struct {
	// WebhookURL is the channel's incoming-webhook URL. It is a secret.
	WebhookURL string
	// Timeout bounds one POST; default 10s.
	Timeout time.Duration
	// HTTPClient is used for requests; default a client with Timeout.
	HTTPClient *http.Client
	// Logger receives send failures (counts and ids only); default discards.
	Logger *slog.Logger

	// BatchWindow is how long a batch collects after its first alert;
	// default 10s.
	BatchWindow time.Duration
	// BatchMax sends the batch early once this many alerts are pending;
	// default 200.
	BatchMax int
	// MinInterval is the least time between two messages; default 1s.
	MinInterval time.Duration
	// MaxAttempts bounds tries per message on transient failures (429, 5xx,
	// network); default 5.
	MaxAttempts int
	// FlushTimeout bounds Close's final flush; default 30s.
	FlushTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.BatchWindow == 0 {
		c.BatchWindow = 10 * time.Second
	}
	if c.BatchMax == 0 {
		c.BatchMax = 200
	}
	if c.MinInterval == 0 {
		c.MinInterval = time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.FlushTimeout == 0 {
		c.FlushTimeout = 30 * time.Second
	}
}

// Validate reports a missing or malformed setting, never showing the URL.
func (c Config) Validate() error {
	c.setDefaults()
	if c.WebhookURL == "" {
		return errors.New("slack: WebhookURL is required")
	}
	if !integrations.IsHTTPURL(c.WebhookURL) {
		return errors.New("slack: WebhookURL must be an absolute http(s) URL (https://hooks.slack.com/services/…)")
	}
	if c.Timeout < 0 || c.BatchWindow < 0 || c.MinInterval < 0 || c.FlushTimeout < 0 {
		return errors.New("slack: durations must not be negative")
	}
	if c.BatchMax < 0 || c.MaxAttempts < 0 {
		return errors.New("slack: BatchMax and MaxAttempts must not be negative")
	}
	return nil
}

// Client is a batching Alerter. Create it with New and stop it with Close.
type Client struct {
	cfg   Config
	http  *http.Client
	log   *slog.Logger
	batch *alertbatch.Batcher
}

// New validates cfg, applies defaults and starts the batching goroutine.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c := &Client{
		cfg:  cfg,
		http: integrations.HTTPClient(cfg.HTTPClient, cfg.Timeout),
		log:  integrations.Logger(cfg.Logger).With("provider", provider),
	}
	b, err := alertbatch.New(alertbatch.Config{
		Window: cfg.BatchWindow, Max: cfg.BatchMax, MinInterval: cfg.MinInterval,
		FlushTimeout: cfg.FlushTimeout, Logger: c.log,
	}, func(ctx context.Context, s *alertbatch.Summary) error {
		return c.sendWithRetry(ctx, Render(s))
	})
	if err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	c.batch = b
	return c, nil
}

// Alert records a for the next batch and returns at once; sending happens
// in the background. It fails only after Close.
func (c *Client) Alert(ctx context.Context, a integrations.Alert) error {
	return c.batch.Add(ctx, a)
}

// Close stops accepting alerts, sends what is pending and stops the
// goroutine. Sends still running after FlushTimeout are abandoned (and
// logged). It is safe to call more than once.
func (c *Client) Close() error { return c.batch.Close() }

// sendWithRetry sends text, retrying transient failures up to MaxAttempts
// times, waiting Retry-After on 429 and an exponential backoff otherwise.
func (c *Client) sendWithRetry(ctx context.Context, text string) error {
	err := alertbatch.SendWithRetry(ctx, c.log, c.cfg.MaxAttempts, func(ctx context.Context) error { return c.Send(ctx, text) })
	if err != nil && integrations.IsPermanent(err) {
		c.log.Error("slack refuses the incoming webhook; alerts are not delivered until it is fixed (new webhook URL, or unarchive the channel)", "error", err)
	}
	return err
}

// Send posts one message of mrkdwn text (already escaped, at most
// MaxMessageLen characters) once, without batching or retry. Errors are
// *integrations.Error: 429 (with RetryAfter), 5xx and network errors
// transient; 4xx permanent, with Slack's error string as the message.
func (c *Client) Send(ctx context.Context, text string) error {
	const op = "post message"
	body, err := json.Marshal(struct {
		Text string `json:"text"`
	}{text})
	if err != nil {
		return integrations.Permanentf(provider, op, "encode request: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(tracing.WithSecretURL(ctx), http.MethodPost, c.cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return integrations.Permanentf(provider, op, "build request: invalid webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text holds the URL
		}
		return integrations.NetError(provider, op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return integrations.NetError(provider, op, err)
	}
	reason := strings.Join(strings.Fields(string(raw)), " ")
	if resp.StatusCode == http.StatusOK && reason == "ok" {
		return nil
	}
	if reason == "" {
		reason = http.StatusText(resp.StatusCode)
	}
	// The URL is the credential: an answer quoting it loses it.
	reason = integrations.RedactValues(reason, integrations.SecretURLParts(c.cfg.WebhookURL), integrations.Redacted)
	e := integrations.HTTPError(provider, op, resp, alertbatch.Truncate(reason, 100))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Class = integrations.Transient
		if e.RetryAfter == 0 {
			e.RetryAfter = time.Second // Slack always sends one; never spin
		}
	case resp.StatusCode >= 500:
		e.Class = integrations.Transient
	case resp.StatusCode >= 400:
		e.Class = integrations.Permanent // 408/409 included: Slack documents none as retriable
	case resp.StatusCode/100 == 2 || resp.StatusCode/100 == 3:
		// Slack answers a posted message with 200 and the body "ok";
		// anything else (a proxy's page, an empty body) is not a delivery:
		// the message is sent again.
		e.Class = integrations.Transient
		e.Msg = "unexpected answer " + strconv.Itoa(resp.StatusCode) + " (not Slack's ok)"
	}
	return e
}
