// Package airtable keeps the production log: one Airtable row per order,
// upserted on the order-id field (performUpsert), with a status field that
// lists the steps the order has completed.
//
// Request (shared by up to 10 concurrent calls):
//
//	PATCH https://api.airtable.com/v0/{baseId}/{tableIdOrName}
//	Authorization: Bearer <personal access token>
//	Content-Type: application/json
//
//	{"performUpsert":{"fieldsToMergeOn":["Order ID"]},
//	 "records":[{"fields":{"Order ID":"pi_…","Order Number":"OF-…","Status":"details, crm", …}}, …],
//	 "typecast":true}
//
// Airtable allows 5 requests per second per base and up to 10 records per
// request, so a Client queues concurrent UpsertOrder calls and sends them
// in batches: whenever the client-side limiter grants a turn, up to 10
// queued records go in one request (at most one per order, and none for an
// order whose previous write is still under way), and each caller gets the
// record id matched to its order id in the response. One Client per base,
// then, holds about 50 orders per second. A call waits for its turn as
// long as its context allows and fails transiently when the context ends.
//
// A request-level failure (network, 5xx, 401/403/404) fails every record
// of the batch with the same typed error. Airtable rejects a whole request
// with 422 even when only one record is invalid, so the records of a
// rejected batch are retried one per request and only the invalid one gets
// the permanent error. A 429 means "wait 30 seconds": every record of the
// batch gets a transient error with that RetryAfter, and the client sends
// nothing to the base (failing calls at once) until the 30 s are over.
//
// The client runs a sender goroutine only while records are queued; Close
// stops it and fails what is still queued.
package airtable

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
	"strings"
	"sync"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

const (
	provider = "airtable"
	opUpsert = "upsert order"
	// DefaultBaseURL is Airtable's API host.
	DefaultBaseURL = "https://api.airtable.com"
	// DefaultRequestsPerSecond is Airtable's limit per base.
	DefaultRequestsPerSecond = 5
	// RateLimitPenalty is how long Airtable refuses requests after a 429.
	RateLimitPenalty = 30 * time.Second
	maxBody          = 1 << 20
)

// Fields names the table's fields. A field set to "-" is not written.
type Fields struct {
	OrderID     string // the merge key; default "Order ID"
	OrderNumber string // default "Order Number"
	Status      string // completed steps; default "Status"
	Customer    string // customer name; default "Customer"
	Items       string // one line per item; default "Items"
	Total       string // formatted total; default "Total"
	Country     string // shipping country; default "Country"
	OrderDate   string // YYYY-MM-DD; default "Order Date"
	// Failure gets "<step>: <reason>" while the order is dead-lettered;
	// default "-" (not written: the reason is then in the status text).
	Failure string
}

func (f *Fields) defaults() {
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	set(&f.OrderID, "Order ID")
	set(&f.OrderNumber, "Order Number")
	set(&f.Status, "Status")
	set(&f.Customer, "Customer")
	set(&f.Items, "Items")
	set(&f.Total, "Total")
	set(&f.Country, "Country")
	set(&f.OrderDate, "Order Date")
	set(&f.Failure, "-")
}

// Config configures a Client.
type Config struct {
	// BaseURL is the API host; default https://api.airtable.com.
	BaseURL string
	// Token is a personal access token (pat…) with data.records:write on
	// the base.
	Token string
	// BaseID is the base (app…).
	BaseID string
	// Table is the table id (tbl…, recommended) or name.
	Table string
	// Fields names the fields written; empty names take the defaults.
	Fields Fields
	// Location decides the Order Date from the order time, the day in the
	// shop's zone (the invoice's date); default UTC.
	Location *time.Location
	// NoTypecast turns off "typecast": by default it is on, so Airtable
	// converts values (for example creates a select option for a new step
	// name) instead of rejecting them.
	NoTypecast bool
	// StatusAsList sends the completed steps as a list, for a multiple
	// select Status field; by default they are one comma-separated string.
	StatusAsList bool
	// RequestsPerSecond is the client-side limit for the base; default 5,
	// Airtable's limit per base. Each request carries up to MaxBatch
	// records.
	RequestsPerSecond float64
	// NoRateLimit turns the client-side limit off, for an endpoint that
	// does not enforce Airtable's limit (the provider simulator), and allows
	// 8 requests in flight instead of 4. The pause after a 429 still
	// applies.
	NoRateLimit bool
	// Turn, when set, is a further turn the sender waits for before it
	// takes a batch, after the client-side limit: a rate shared by every
	// processor of the fleet (package quota), so that records arriving
	// during that wait still go in the request. It returns an error only
	// when the client is closing.
	Turn func(ctx context.Context) error
	// MaxProgress bounds the orders whose progress reports wait to be sent
	// (ReportProgress); default DefaultMaxProgress.
	MaxProgress int
	// Timeout bounds each HTTP request; default 10 s. Ignored when
	// HTTPClient is set.
	Timeout    time.Duration
	HTTPClient *http.Client
	// Logger is optional; only order ids and record ids are logged.
	Logger *slog.Logger
}

// Validate reports a missing or malformed setting.
func (c Config) Validate() error {
	var errs []error
	if c.Token == "" {
		errs = append(errs, errors.New("airtable: token is required"))
	}
	if c.BaseID == "" || strings.ContainsAny(c.BaseID, "/?# ") {
		errs = append(errs, errors.New("airtable: base id (app…) is required"))
	}
	if c.Table == "" {
		errs = append(errs, errors.New("airtable: table id or name is required"))
	}
	if c.BaseURL != "" {
		if !integrations.IsHTTPURL(c.BaseURL) {
			errs = append(errs, fmt.Errorf("airtable: base URL %q is not an http(s) URL", c.BaseURL))
		}
	}
	if c.RequestsPerSecond < 0 || c.Timeout < 0 || c.MaxProgress < 0 {
		errs = append(errs, errors.New("airtable: rate and timeout must not be negative"))
	}
	if c.Fields.OrderID == "-" {
		errs = append(errs, errors.New("airtable: the order id field is the merge key and cannot be left out"))
	}
	return errors.Join(errs...)
}

// Client writes production-log rows. It is safe for concurrent use.
type Client struct {
	cfg         Config
	url         string
	hc          *http.Client
	limiter     *limiter
	log         *slog.Logger
	maxInFlight int

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the sender and the requests under way
	wake   chan struct{}  // a request finished or a record was queued

	maxProgress int

	mu         sync.Mutex
	pending    []*call // queued, not yet sent, in arrival order
	progress   []*call // queued progress reports, in arrival order
	progressBy map[string]*call
	// progressDropped and progressFailed count reports dropped at the
	// bound and reports Airtable refused; the Warned times limit logging.
	progressDropped, progressFailed    int64
	progressWarned, progressFailWarned time.Time
	sending                            map[string]bool // order ids in a request under way
	inFlight                           int             // requests under way
	senderRunning                      bool
	closed                             bool
}

// New returns a client for cfg. Call Close when done with it.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Fields.defaults()
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.RequestsPerSecond == 0 {
		cfg.RequestsPerSecond = DefaultRequestsPerSecond
	}
	rate := cfg.RequestsPerSecond
	if cfg.NoRateLimit {
		rate = 0
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	c := &Client{
		cfg:     cfg,
		url:     strings.TrimRight(cfg.BaseURL, "/") + "/v0/" + url.PathEscape(cfg.BaseID) + "/" + url.PathEscape(cfg.Table),
		hc:      cfg.HTTPClient,
		limiter: newLimiter(rate),
		log:     cfg.Logger,

		maxInFlight: defaultMaxInFlight,
		wake:        make(chan struct{}, 1),
		sending:     map[string]bool{},
		progressBy:  map[string]*call{},
		maxProgress: cfg.MaxProgress,
	}
	if c.maxProgress == 0 {
		c.maxProgress = DefaultMaxProgress
	}
	if cfg.NoRateLimit {
		c.maxInFlight = unlimitedMaxInFlight
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.hc = integrations.HTTPClient(c.hc, cfg.Timeout)
	c.log = integrations.Logger(c.log)
	return c, nil
}

type upsertRequest struct {
	PerformUpsert struct {
		FieldsToMergeOn []string `json:"fieldsToMergeOn"`
	} `json:"performUpsert"`
	Records  []record `json:"records"`
	Typecast bool     `json:"typecast"`
}

type record struct {
	ID     string         `json:"id,omitempty"`
	Fields map[string]any `json:"fields"`
}

type upsertResponse struct {
	Records        []record `json:"records"`
	CreatedRecords []string `json:"createdRecords"`
	UpdatedRecords []string `json:"updatedRecords"`
}

// UpsertOrder creates or updates the order's row; completedSteps goes to
// the status field. Concurrent calls share requests (up to MaxBatch records
// each); the call returns when its own record is written or failed, or
// when ctx ends.
func (c *Client) UpsertOrder(ctx context.Context, o integrations.Order, completedSteps []string) (integrations.ProductionLogResult, error) {
	if o.ID == "" {
		return integrations.ProductionLogResult{}, integrations.Permanentf(provider, opUpsert, "order has no id")
	}
	cl := &call{orderID: o.ID, fields: c.fields(o, completedSteps), done: make(chan callResult, 1)}
	if dl, ok := ctx.Deadline(); ok {
		cl.deadline = dl
	}
	if err := ctx.Err(); err != nil {
		return integrations.ProductionLogResult{}, &integrations.Error{Provider: provider, Op: opUpsert, Class: integrations.Transient, Err: err}
	}
	if err := c.enqueue(cl); err != nil {
		return integrations.ProductionLogResult{}, err
	}
	r, err := c.await(ctx, cl)
	if err != nil {
		return integrations.ProductionLogResult{}, err
	}
	if r.err != nil {
		return integrations.ProductionLogResult{}, r.err
	}
	c.log.InfoContext(ctx, "airtable: order row upserted", "order_id", o.ID, "record_id", r.res.RecordID, "created", r.created)
	return r.res, nil
}

// sendResult is one record's outcome of a request. split means Airtable
// rejected the whole request as invalid and the record should be tried in
// a request of its own, so that only an invalid record fails.
type sendResult struct {
	callResult
	split bool
}

// send makes one upsert request for batch and returns each record's result
// in batch order.
func (c *Client) send(batch []*call) []sendResult {
	results := make([]sendResult, len(batch))
	failAll := func(err error) []sendResult {
		for i := range results {
			results[i].err = err
		}
		return results
	}
	var req upsertRequest
	req.PerformUpsert.FieldsToMergeOn = []string{c.cfg.Fields.OrderID}
	req.Typecast = !c.cfg.NoTypecast
	req.Records = make([]record, len(batch))
	for i, cl := range batch {
		req.Records[i] = record{Fields: cl.fields}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return failAll(integrations.Permanentf(provider, opUpsert, "encode request: %v", err))
	}
	ctx, cancel := c.batchContext(batch)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPatch, c.url, bytes.NewReader(body))
	if err != nil {
		return failAll(integrations.Permanentf(provider, opUpsert, "bad URL"))
	}
	hreq.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(hreq)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return failAll(&integrations.Error{Provider: provider, Op: opUpsert, Class: integrations.Transient, Err: err})
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return failAll(integrations.NetError(provider, opUpsert, err))
	}
	if resp.StatusCode/100 != 2 {
		err := c.statusError(opUpsert, resp, respBody)
		failAll(err)
		// A 422 (or 413) rejects the whole request for what may be one
		// record: retry each record alone so the others are written.
		if len(batch) > 1 && (resp.StatusCode == http.StatusUnprocessableEntity || resp.StatusCode == http.StatusRequestEntityTooLarge) {
			for i := range results {
				results[i].split = true
			}
		}
		return results
	}
	var out upsertResponse
	if err := json.Unmarshal(respBody, &out); err != nil {
		out.Records = nil
	}
	// Match records by the merge field; Airtable returns them in request
	// order, which is the fallback when a record does not echo the field.
	byOrder := make(map[string]string, len(out.Records))
	for _, r := range out.Records {
		if id, ok := r.Fields[c.cfg.Fields.OrderID].(string); ok && r.ID != "" {
			byOrder[id] = r.ID
		}
	}
	created := make(map[string]bool, len(out.CreatedRecords))
	for _, id := range out.CreatedRecords {
		created[id] = true
	}
	inBatch := make(map[string]bool, len(batch))
	for _, cl := range batch {
		inBatch[cl.orderID] = true
	}
	for i, cl := range batch {
		id := byOrder[cl.orderID]
		if id == "" && len(out.Records) == len(batch) {
			// No record names this order: take the one at its position,
			// unless that one names another order of the batch.
			if v, _ := out.Records[i].Fields[c.cfg.Fields.OrderID].(string); !inBatch[v] {
				id = out.Records[i].ID
			}
		}
		if id == "" {
			results[i].err = &integrations.Error{Provider: provider, Op: opUpsert, Status: resp.StatusCode,
				Class: integrations.Transient, Msg: "response without a record"}
			continue
		}
		results[i].res = integrations.ProductionLogResult{RecordID: id}
		results[i].created = created[id]
	}
	c.log.Debug("airtable: upsert request done", "records", len(batch), "created", len(out.CreatedRecords))
	return results
}

// fields is the row the production-log step writes: the order and the
// steps completed before this one.
func (c *Client) fields(o integrations.Order, steps []string) map[string]any {
	return c.rowFields(o, integrations.Progress{OrderID: o.ID, Status: "in_progress", CompletedSteps: steps})
}

// rowFields is the order's row with the status of p.
func (c *Client) rowFields(o integrations.Order, p integrations.Progress) map[string]any {
	f := c.cfg.Fields
	m := map[string]any{}
	put := func(name string, v any) {
		if name != "-" {
			m[name] = v
		}
	}
	put(f.OrderID, o.ID)
	put(f.OrderNumber, o.Number)
	c.putStatus(m, p)
	put(f.Customer, o.BuyerName())
	put(f.Items, itemsText(o))
	put(f.Total, integrations.FormatMoney(o.AmountTotal, o.Currency))
	if o.Shipping.Country != "" {
		put(f.Country, o.Shipping.Country)
	}
	if !o.CreatedAt.IsZero() {
		loc := c.cfg.Location
		if loc == nil {
			loc = time.UTC
		}
		put(f.OrderDate, o.CreatedAt.In(loc).Format(time.DateOnly))
	}
	return m
}

// itemsText renders one line per item with the line's total as charged:
// "2 × Villasukat (30.00 EUR)".
func itemsText(o integrations.Order) string {
	var b strings.Builder
	for i, it := range o.Items {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%d × %s (%s)", it.Quantity, it.Description, integrations.FormatMoney(it.AmountTotal, o.Currency))
		if it.SKU != "" {
			fmt.Fprintf(&b, " [%s]", it.SKU)
		}
	}
	return b.String()
}

// apiError reads {"error":{"type","message"}} and the bare {"error":"NOT_FOUND"}.
func apiError(body []byte) (typ, msg string) {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Error) == 0 {
		return "", ""
	}
	var s string
	if json.Unmarshal(e.Error, &s) == nil {
		return s, ""
	}
	var o struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(e.Error, &o)
	return o.Type, o.Message
}

func (c *Client) statusError(op string, resp *http.Response, body []byte) *integrations.Error {
	typ, msg := apiError(body)
	if resp.StatusCode == http.StatusUnprocessableEntity {
		// Validation messages may quote the rejected value (a name, an
		// address); the type says enough.
		msg = ""
	}
	if len(msg) > 160 {
		msg = msg[:160] + "…"
	}
	text := typ
	if msg != "" {
		text += ": " + msg
	}
	e := integrations.HTTPError(provider, op, resp, text)
	if resp.StatusCode == http.StatusTooManyRequests {
		if e.RetryAfter < RateLimitPenalty {
			e.RetryAfter = RateLimitPenalty
		}
		c.limiter.pause(e.RetryAfter)
		c.log.Warn("airtable: rate limited, pausing requests to the base", "retry_after", e.RetryAfter)
	}
	return e
}
