// Package telegram sends operator alerts through the Telegram Bot API
// (sendMessage, HTML parse mode).
//
// Alerts are batched by package alertbatch, as for Slack: Alert only
// records the alert, and a background goroutine sends one summary message
// per batch ("12 alerts at step shipping: ..."). A batch closes BatchWindow
// after its first alert or when BatchMax alerts are pending, and messages
// are spaced at least MinInterval apart (also for Close's final flush), so
// a burst of a thousand dead letters produces a handful of messages instead
// of a thousand 429s. A batch keeps counts, the first order ids and the
// distinct reasons per step, so its memory is bounded whatever the burst.
// Close flushes what is pending.
package telegram

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
)

const provider = "telegram"

// DefaultBaseURL is the Bot API host.
const DefaultBaseURL = "https://api.telegram.org"

// MaxMessageLen is Telegram's limit for a message text, in characters after
// entity parsing. Texts are cut so that even the unparsed HTML (counted in
// UTF-16 units, as Telegram counts) stays within it.
const MaxMessageLen = 4096

// ErrClosed is returned by Alert after Close.
var ErrClosed = alertbatch.ErrClosed

// Config configures a Client.
type Config struct {
	// BaseURL is the Bot API host; default https://api.telegram.org.
	BaseURL string
	// Token is the bot token ("123456:ABC..."). It is part of the request
	// path and is never logged or put in an error.
	Token string
	// ChatID is the chat to alert: a numeric id (groups are negative) or
	// "@channelusername".
	ChatID string
	// Timeout bounds one sendMessage call; default 10s.
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
	// MinInterval is the least time between two messages; default 3s
	// (Telegram allows about 20 messages a minute to one group).
	MinInterval time.Duration
	// MaxAttempts bounds tries per message on transient failures (429, 5xx,
	// network); default 5. A 429 waits parameters.retry_after.
	MaxAttempts int
	// FlushTimeout bounds Close's final flush; default 30s.
	FlushTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
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
		c.MinInterval = 3 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.FlushTimeout == 0 {
		c.FlushTimeout = 30 * time.Second
	}
}

// Validate reports a missing or malformed setting. Defaults are applied
// first, so zero values are fine where a default exists.
func (c Config) Validate() error {
	c.setDefaults()
	if !integrations.IsHTTPURL(c.BaseURL) {
		return errors.New("telegram: BaseURL must be an http(s) URL")
	}
	if c.Token == "" {
		return errors.New("telegram: Token is required")
	}
	if strings.ContainsAny(c.Token, "/?#% ") {
		return errors.New("telegram: Token has characters a bot token cannot have")
	}
	if c.ChatID == "" {
		return errors.New("telegram: ChatID is required")
	}
	if _, err := strconv.ParseInt(c.ChatID, 10, 64); err != nil && !strings.HasPrefix(c.ChatID, "@") {
		return errors.New("telegram: ChatID must be a number or @channelusername")
	}
	if c.Timeout < 0 || c.BatchWindow < 0 || c.MinInterval < 0 || c.FlushTimeout < 0 {
		return errors.New("telegram: durations must not be negative")
	}
	if c.BatchMax < 0 || c.MaxAttempts < 0 {
		return errors.New("telegram: BatchMax and MaxAttempts must not be negative")
	}
	return nil
}

// Client is a batching Alerter. Create it with New and stop it with Close.
type Client struct {
	cfg      Config
	http     *http.Client
	log      *slog.Logger
	endpoint string // contains the token: never log it
	batch    *alertbatch.Batcher
}

// New validates cfg, applies defaults and starts the batching goroutine.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c := &Client{
		cfg:      cfg,
		http:     integrations.HTTPClient(cfg.HTTPClient, cfg.Timeout),
		log:      integrations.Logger(cfg.Logger).With("provider", provider),
		endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/bot" + cfg.Token + "/sendMessage",
	}
	b, err := alertbatch.New(alertbatch.Config{
		Window: cfg.BatchWindow, Max: cfg.BatchMax, MinInterval: cfg.MinInterval,
		FlushTimeout: cfg.FlushTimeout, Logger: c.log,
	}, func(ctx context.Context, s *alertbatch.Summary) error {
		return c.sendWithRetry(ctx, render(s))
	})
	if err != nil {
		return nil, fmt.Errorf("telegram: %w", err)
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
// times, waiting retry_after on 429 and an exponential backoff otherwise.
func (c *Client) sendWithRetry(ctx context.Context, text string) error {
	return alertbatch.SendWithRetry(ctx, c.log, c.cfg.MaxAttempts, func(ctx context.Context) error { return c.SendMessage(ctx, text) })
}

// sendRequest is the sendMessage body.
type sendRequest struct {
	ChatID    any    `json:"chat_id"` // int64 or "@channel"
	Text      string `json:"text"`
	ParseMode string `json:"parse_mode"`
}

// apiResponse is every Bot API reply.
type apiResponse struct {
	OK          bool   `json:"ok"`
	ErrorCode   int    `json:"error_code"`
	Description string `json:"description"`
	Parameters  *struct {
		RetryAfter      int   `json:"retry_after"`
		MigrateToChatID int64 `json:"migrate_to_chat_id"`
	} `json:"parameters"`
}

// SendMessage sends one HTML message (already escaped, at most
// MaxMessageLen) once, without batching or retry. Errors are
// *integrations.Error: 429 and 5xx transient with RetryAfter from
// parameters.retry_after, other 4xx (bad request, bad token, bot blocked)
// permanent.
func (c *Client) SendMessage(ctx context.Context, html string) error {
	const op = "send message"
	body, err := json.Marshal(sendRequest{ChatID: chatID(c.cfg.ChatID), Text: html, ParseMode: "HTML"})
	if err != nil {
		return integrations.Permanentf(provider, op, "encode request: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return integrations.Permanentf(provider, op, "build request: %s", c.redact(err.Error()))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return integrations.NetError(provider, op, c.redactErr(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return integrations.NetError(provider, op, c.redactErr(err))
	}
	var ar apiResponse
	jsonErr := json.Unmarshal(raw, &ar)
	if resp.StatusCode/100 == 2 && jsonErr == nil && ar.OK {
		return nil
	}
	if jsonErr != nil {
		if resp.StatusCode/100 == 2 {
			return integrations.Transientf(provider, op, "response is not Bot API JSON")
		}
		return integrations.HTTPError(provider, op, resp, "response is not Bot API JSON")
	}
	e := integrations.HTTPError(provider, op, resp, alertbatch.Truncate(c.redact(ar.Description), 200))
	if ar.ErrorCode != 0 && ar.ErrorCode != e.Status {
		e.Status = ar.ErrorCode
		e.Class = integrations.ClassifyStatus(ar.ErrorCode)
	}
	if e.Status/100 == 2 { // ok:false inside a 2xx without a code
		e.Class = integrations.Permanent
	}
	if ar.Parameters != nil {
		if ar.Parameters.RetryAfter > 0 {
			e.RetryAfter = time.Duration(ar.Parameters.RetryAfter) * time.Second
			e.Class = integrations.Transient
		}
		if ar.Parameters.MigrateToChatID != 0 {
			e.Msg += fmt.Sprintf(" (group moved: set ChatID to %d)", ar.Parameters.MigrateToChatID)
		}
	}
	return e
}

// chatID sends numeric ids as JSON numbers and usernames as strings.
func chatID(s string) any {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	return s
}

func (c *Client) redact(s string) string {
	return strings.ReplaceAll(s, c.cfg.Token, "<redacted>")
}

// redactErr removes the token from a transport error, whose text includes
// the request URL.
func (c *Client) redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: c.redact(ue.URL), Err: redactedErr{ue.Err, c.redact}}
	}
	return redactedErr{err, c.redact}
}

// redactedErr keeps the cause for errors.Is/As but redacts its text.
type redactedErr struct {
	err    error
	redact func(string) string
}

func (r redactedErr) Error() string { return r.redact(r.err.Error()) }
func (r redactedErr) Unwrap() error { return r.err }
