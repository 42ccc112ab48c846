// Package zoho records the customer and the sale in Zoho CRM (API v3): the
// contact is upserted by email, the deal by a deterministic order key held in
// a unique custom field, so calling it twice for one order changes nothing.
//
// Authentication is Zoho's OAuth refresh-token grant. The access token is
// cached until shortly before it expires, refreshed by one goroutine at a
// time, refreshed once more when the CRM answers 401 INVALID_TOKEN, and a
// throttled token endpoint (10 token requests per 10 minutes) makes the
// client wait instead of hammering it.
//
// Requests (EU data centre by default):
//
//	POST https://accounts.zoho.eu/oauth/v2/token?refresh_token=…&client_id=…&client_secret=…&grant_type=refresh_token
//	POST https://www.zohoapis.eu/crm/v3/Contacts/upsert   {"data":[{…}],"duplicate_check_fields":["Email"]}
//	POST https://www.zohoapis.eu/crm/v3/Deals/upsert      {"data":[{…,"Order_ID":"pi_…","Amount":33.88,"Currency":"EUR"}],"duplicate_check_fields":["Order_ID"]}
//	GET  https://www.zohoapis.eu/crm/v3/org/currencies    (currency mode auto, at most once per CurrencyTTL; again once a deal's Currency is refused)
//	GET  https://www.zohoapis.eu/crm/v3/org               (the same, when multi-currency is off)
//
// CRM calls carry "Authorization: Zoho-oauthtoken <access token>". The token
// response's api_domain is not followed: the configured API base is used, so
// a simulator or proxy stays in the path.
package zoho

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
	"unicode/utf8"

	"github.com/orderflow/orderflow/integrations"
)

const provider = "zoho"

// Defaults: Zoho's EU data centre. Other centres: zohoapis.com /
// accounts.zoho.com, .com.au, .in, .jp, .com.cn, zohocloud.ca, .sa.
const (
	DefaultAPIBaseURL      = "https://www.zohoapis.eu"
	DefaultAccountsURL     = "https://accounts.zoho.eu"
	DefaultDealKeyField    = "Order_ID"
	DefaultDealStage       = "Closed Won"
	defaultTimeout         = 15 * time.Second
	defaultRefreshMargin   = 2 * time.Minute
	defaultThrottleBackoff = time.Minute
	// DefaultQuotaRecheck is Config.QuotaRecheck's default.
	DefaultQuotaRecheck = time.Hour
	maxBody             = 1 << 20
)

// Config configures a Client.
type Config struct {
	// APIBaseURL is the CRM API host; default https://www.zohoapis.eu.
	APIBaseURL string
	// AccountsURL is the OAuth server; default https://accounts.zoho.eu.
	AccountsURL string
	// ClientID, ClientSecret and RefreshToken are the self-client's OAuth
	// credentials; the refresh token needs the ZohoCRM.modules.contacts
	// and ZohoCRM.modules.deals CREATE/WRITE scopes.
	ClientID     string
	ClientSecret string
	RefreshToken string
	// DealKeyField is the API name of the Deals field holding the order id,
	// set to "Do not allow duplicate values" in the CRM; default Order_ID.
	DealKeyField string
	// DealStage is the Stage of a new or updated deal; default "Closed Won".
	DealStage string
	// DealPipeline is sent as Pipeline when set (orgs with pipelines).
	DealPipeline string
	// Location decides the deal's Closing_Date from the order time, the
	// day in the shop's zone (the invoice's date); default UTC.
	Location *time.Location
	// Triggers is sent as "trigger" when not nil: an empty, non-nil slice
	// suppresses workflow, approval and blueprint rules; nil lets Zoho run
	// its defaults.
	Triggers []string
	// CurrencyMode says how a deal's currency is booked:
	//   - "auto" (default): the org's currencies are read from the CRM
	//     (GET /crm/v3/org/currencies, and /crm/v3/org for the home
	//     currency when multi-currency is off) and kept for CurrencyTTL;
	//     a deal whose Currency the CRM refuses (INVALID_DATA) has them
	//     read again, once, and is booked as they then say.
	//     With multi-currency on, a deal in an active currency gets Amount
	//     and Currency; with it off, a deal in the home currency gets
	//     Amount only. The token needs ZohoCRM.settings.currencies.READ
	//     and ZohoCRM.org.READ; without them HomeCurrency decides.
	//   - "multi": always send Currency (the org has multi-currency and
	//     every currency the shop sells in is active).
	//   - "home": the org books only HomeCurrency; Currency is never sent.
	// A deal in a currency the CRM cannot book gets no Amount (its
	// description names the amount paid): a number in the wrong currency
	// is worse than none.
	CurrencyMode string
	// HomeCurrency is the org's home currency (ISO code, e.g. "EUR");
	// required by "home", and used by "auto" when the CRM does not say.
	HomeCurrency string
	// CurrencyTTL is how long "auto" keeps what it read; default 1 hour.
	CurrencyTTL time.Duration
	// Timeout bounds each HTTP request; default 15 s. Ignored when
	// HTTPClient is set.
	Timeout time.Duration
	// TokenRefreshMargin is how long before expiry the access token is
	// renewed; default 2 minutes.
	TokenRefreshMargin time.Duration
	// TokenThrottleBackoff is how long no token request is made after the
	// token endpoint said "too many requests", and the RetryAfter given to
	// the caller; default 1 minute. Zoho blocks for the rest of its
	// 10-minute window, which is not reported.
	TokenThrottleBackoff time.Duration
	// QuotaRecheck is when a call refused because the organisation's API
	// credits for the rolling 24 hours are used up is tried again, from
	// the refusal, when the answer does not say (Zoho documents no reset
	// time: credits spent 24 hours ago come back continuously); default
	// 1 hour. See creditsExhausted for how the refusal is told apart from
	// the concurrency limit's.
	QuotaRecheck time.Duration
	HTTPClient   *http.Client
	// Logger is optional; only order ids and outcomes are logged.
	Logger *slog.Logger
}

// Validate reports a missing or malformed setting.
func (c Config) Validate() error {
	var errs []error
	if c.ClientID == "" || c.ClientSecret == "" || c.RefreshToken == "" {
		errs = append(errs, errors.New("zoho: client id, client secret and refresh token are required"))
	}
	for name, v := range map[string]string{"API base URL": c.APIBaseURL, "accounts URL": c.AccountsURL} {
		if v == "" {
			continue
		}
		if !integrations.IsHTTPURL(v) {
			errs = append(errs, fmt.Errorf("zoho: %s %q is not an http(s) URL", name, v))
		}
	}
	if c.Timeout < 0 || c.TokenRefreshMargin < 0 || c.TokenThrottleBackoff < 0 || c.QuotaRecheck < 0 {
		errs = append(errs, errors.New("zoho: durations must not be negative"))
	}
	switch c.CurrencyMode {
	case "", CurrencyAuto, CurrencyMulti:
	case CurrencyHome:
		if c.HomeCurrency == "" {
			errs = append(errs, errors.New(`zoho: currency mode "home" needs the home currency`))
		}
	default:
		errs = append(errs, fmt.Errorf("zoho: currency mode %q: want auto, multi or home", c.CurrencyMode))
	}
	if h := c.HomeCurrency; h != "" && !isCurrencyCode(h) {
		errs = append(errs, fmt.Errorf("zoho: home currency %q is not a three-letter ISO code", h))
	}
	if c.CurrencyTTL < 0 {
		errs = append(errs, errors.New("zoho: currency TTL must not be negative"))
	}
	if c.TokenRefreshMargin >= 30*time.Minute {
		errs = append(errs, errors.New("zoho: token refresh margin must be under 30 minutes (tokens live 1 hour)"))
	}
	return errors.Join(errs...)
}

// Client is a Zoho CRM client. It is safe for concurrent use.
type Client struct {
	cfg      Config
	api      string
	accounts string
	hc       *http.Client
	tokens   *tokenSource
	log      *slog.Logger
	cur      currencyCache
	now      func() time.Time
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.APIBaseURL == "" {
		cfg.APIBaseURL = DefaultAPIBaseURL
	}
	if cfg.AccountsURL == "" {
		cfg.AccountsURL = DefaultAccountsURL
	}
	if cfg.DealKeyField == "" {
		cfg.DealKeyField = DefaultDealKeyField
	}
	if cfg.DealStage == "" {
		cfg.DealStage = DefaultDealStage
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.CurrencyMode == "" {
		cfg.CurrencyMode = CurrencyAuto
	}
	if cfg.CurrencyTTL == 0 {
		cfg.CurrencyTTL = time.Hour
	}
	cfg.HomeCurrency = strings.ToUpper(cfg.HomeCurrency)
	if cfg.TokenRefreshMargin == 0 {
		cfg.TokenRefreshMargin = defaultRefreshMargin
	}
	if cfg.TokenThrottleBackoff == 0 {
		cfg.TokenThrottleBackoff = defaultThrottleBackoff
	}
	if cfg.QuotaRecheck == 0 {
		cfg.QuotaRecheck = DefaultQuotaRecheck
	}
	c := &Client{
		cfg:      cfg,
		api:      strings.TrimRight(cfg.APIBaseURL, "/"),
		accounts: strings.TrimRight(cfg.AccountsURL, "/"),
		hc:       cfg.HTTPClient,
		log:      cfg.Logger,
		now:      time.Now,
	}
	c.hc = integrations.HTTPClient(c.hc, cfg.Timeout)
	c.log = integrations.Logger(c.log)
	c.tokens = &tokenSource{
		fetch:    c.fetchToken,
		now:      time.Now,
		margin:   cfg.TokenRefreshMargin,
		timeout:  cfg.Timeout,
		cooldown: cfg.TokenThrottleBackoff,
	}
	return c, nil
}

// UpsertContactAndDeal upserts the contact by email, then the deal by the
// order key, linked to the contact.
func (c *Client) UpsertContactAndDeal(ctx context.Context, o integrations.Order) (integrations.CRMResult, error) {
	if o.Customer.Email == "" {
		return integrations.CRMResult{}, integrations.Permanentf(provider, "upsert contact", "order has no customer email")
	}
	if n := utf8.RuneCountInString(o.Customer.Email); n > maxLen["Email"] {
		// Cutting an address would make it another's: the CRM cannot
		// hold this buyer, which a person decides about.
		return integrations.CRMResult{}, integrations.NotSentf(provider, "upsert contact", "the customer's email is %d characters, more than Zoho's Email field holds (%d)", n, maxLen["Email"])
	}
	contactID, contactAction, err := c.upsert(ctx, "upsert contact", "Contacts", contactRecord(o), "Email")
	if err != nil {
		return integrations.CRMResult{}, err
	}
	b, err := c.booking(ctx, o.Currency)
	if err != nil {
		return integrations.CRMResult{}, err
	}
	dealID, dealAction, err := c.upsert(ctx, "upsert deal", "Deals", c.dealRecord(o, contactID, b), c.cfg.DealKeyField)
	if r := currencyRefusal(err); r != nil && b.currency && !b.read.IsZero() {
		// The currencies read earlier may be stale: read them again,
		// once, and book the deal as they now say.
		if b, err = c.rebook(ctx, o, b, r.err); err != nil {
			return integrations.CRMResult{}, err
		}
		dealID, dealAction, err = c.upsert(ctx, "upsert deal", "Deals", c.dealRecord(o, contactID, b), c.cfg.DealKeyField)
	}
	if err != nil {
		return integrations.CRMResult{}, err
	}
	c.log.InfoContext(ctx, "zoho: contact and deal upserted", "order_id", o.ID,
		"contact_action", contactAction, "deal_action", dealAction)
	return integrations.CRMResult{ContactID: contactID, DealID: dealID}, nil
}

// contactRecord is the buyer: name, email and phone from Checkout's
// customer details and the billing address as the mailing address (for a
// gift, not the recipient's): every part of it that is known, so a billing
// address Checkout collected in part (a country, perhaps a postal code)
// gives that part, as the invoice has it.
func contactRecord(o integrations.Order) map[string]any {
	first, last := splitName(o.BuyerName(), o.Customer.VATID() != "" || o.ReverseCharge())
	if last == "" {
		// Last_Name is mandatory; fall back to the mailbox name.
		last, _, _ = strings.Cut(o.Customer.Email, "@")
	}
	r := map[string]any{"Email": o.Customer.Email, "Last_Name": last}
	if first != "" {
		r["First_Name"] = first
	}
	if o.Customer.Phone != "" {
		r["Phone"] = o.Customer.Phone
	}
	a := o.BillingAddress()
	for f, v := range map[string]string{"Mailing_Street": a.Street(), "Mailing_City": a.City, "Mailing_Zip": a.PostalCode,
		"Mailing_Country": a.Country, "Mailing_State": a.State} {
		// Only what is known: an upsert by Email must not blank what an
		// earlier order stored.
		if strings.TrimSpace(v) != "" {
			r[f] = v
		}
	}
	clipFields(r)
	return r
}

// maxLen are the most characters Zoho's standard fields hold (Zoho CRM
// help, "Standard Modules & Fields" and "Standard Fields in Deals": First
// Name 40, Last Name 80, Phone 30, Email 100, the address fields 250, Deal
// Name 120). Zoho refuses a longer value (INVALID_DATA), which would
// dead-letter an order over a long business name.
var maxLen = map[string]int{
	"First_Name": 40, "Last_Name": 80, "Phone": 30, "Email": 100, "Deal_Name": 120,
	"Mailing_Street": 250, "Mailing_City": 250, "Mailing_Zip": 250, "Mailing_Country": 250, "Mailing_State": 250,
}

// clipFields cuts each text field of r to what Zoho holds (maxLen), at a
// character, not a byte. A phone number is not cut, since part of one is
// another number: one too long is left out. Email is never cut
// (UpsertContactAndDeal refuses an order whose email is too long).
func clipFields(r map[string]any) {
	for f, v := range r {
		s, ok := v.(string)
		n := maxLen[f]
		if !ok || n == 0 || f == "Email" || utf8.RuneCountInString(s) <= n {
			continue
		}
		if f == "Phone" {
			delete(r, f)
			continue
		}
		r[f] = strings.TrimSpace(string([]rune(s)[:n]))
	}
}

// splitName splits a buyer's name into Zoho's First_Name and Last_Name.
// A business (a buyer who gave a VAT number or is reverse charged:
// "Keramik Müller GmbH") has no first name: the whole name is the last
// name. A name written in Han, kana or Hangul puts the family name first
// ("山田 花子": 山田 is the family name), any other the last word ("Åsa
// Öberg-Järvinen": Öberg-Järvinen). A single word is the last name. Names
// in Latin script that put the family name first (Hungarian) cannot be
// told apart and are split as any other. A name that ends in a company's
// legal form ("Keramiikkapaja Savi Oy", "Fjord Handel AS", "Acme Ltd.") is
// a business too, VAT number or not: many small businesses give none.
func splitName(name string, business bool) (first, last string) {
	name = strings.Join(strings.Fields(name), " ")
	if business || hasLegalForm(name) {
		return "", name
	}
	if integrations.LargestFirst(name) {
		family, given, ok := strings.Cut(name, " ")
		if !ok {
			return "", name
		}
		return given, family
	}
	i := strings.LastIndexByte(name, ' ')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

// legalForms are the endings of company names: the short ones only as a
// company writes them ("AS" is a company, "As" may be a family name),
// legalFormsAnyCase the longer ones, in lower case.
var (
	legalForms = map[string]bool{
		"Oy": true, "OY": true, "Ab": true, "AB": true, "Abp": true, "AS": true, "ASA": true, "A/S": true,
		"AG": true, "KG": true, "UG": true, "GbR": true, "SA": true, "SAS": true, "SRL": true, "SpA": true,
		"BV": true, "NV": true, "OÜ": true, "SIA": true, "UAB": true, "a.s.": true, "e.K.": true, "Pty": true,
	}
	legalFormsAnyCase = map[string]bool{
		"oyj": true, "aps": true, "gmbh": true, "ltd": true, "ltd.": true, "limited": true, "llc": true, "llp": true,
		"inc": true, "inc.": true, "corp": true, "corp.": true, "plc": true, "sarl": true, "s.a.": true,
		"s.r.l.": true, "s.p.a.": true, "b.v.": true, "n.v.": true, "s.r.o.": true, "d.o.o.": true, "o.o.": true,
		"kft.": true, "zrt.": true,
	}
)

// hasLegalForm reports whether name ends in a company's legal form, but
// for a trailing "(publ)" ("Nordic Tools AB (publ)").
func hasLegalForm(name string) bool {
	words := strings.Fields(name)
	if n := len(words); n > 2 && strings.EqualFold(words[n-1], "(publ)") {
		words = words[:n-1]
	}
	if len(words) < 2 {
		return false
	}
	w := strings.TrimRight(words[len(words)-1], ",")
	return legalForms[w] || legalFormsAnyCase[strings.ToLower(w)]
}

// location is the zone of the deal's Closing_Date.
func (c *Client) location() *time.Location {
	if c.cfg.Location != nil {
		return c.cfg.Location
	}
	return time.UTC
}

// dealRecord is the sale. Amount is the amount paid in major units, built
// from Stripe's integer exactly, and Currency its ISO code, when the CRM
// can book that currency (see booking); otherwise Amount is left out and
// the description says what was paid, rather than booking the number in
// the CRM's home currency.
func (c *Client) dealRecord(o integrations.Order, contactID string, b booking) map[string]any {
	closing := o.CreatedAt
	if closing.IsZero() {
		closing = time.Now()
	}
	name := o.Number
	if n := o.BuyerName(); n != "" {
		name += " " + n
	}
	desc := fmt.Sprintf("Order %s (%s), %d line(s), %s", o.Number, o.ID, len(o.Items), integrations.FormatMoney(o.AmountTotal, o.Currency))
	r := map[string]any{
		"Deal_Name":        name,
		c.cfg.DealKeyField: o.ID,
		"Stage":            c.cfg.DealStage,
		"Closing_Date":     closing.In(c.location()).Format(time.DateOnly),
		"Contact_Name":     map[string]string{"id": contactID},
	}
	if b.amount {
		r["Amount"] = json.Number(integrations.FormatAmount(o.AmountTotal, o.Currency))
	} else {
		desc += "; amount not booked: " + b.reason
	}
	if b.currency {
		r["Currency"] = strings.ToUpper(o.Currency)
	}
	r["Description"] = desc
	if c.cfg.DealPipeline != "" {
		r["Pipeline"] = c.cfg.DealPipeline
	}
	clipFields(r)
	return r
}

// recordResult is one element of a response's data array.
type recordResult struct {
	Code    string `json:"code"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Action  string `json:"action"`
	Details struct {
		ID      string `json:"id"`
		APIName string `json:"api_name"`
	} `json:"details"`
}

// apiError is the top-level error body: {"code","details","message","status":"error"}.
type apiError struct {
	Code    string `json:"code"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Details struct {
		APIName string `json:"api_name"`
		// The 429 sample of Zoho's OpenAPI description (v8) carries
		// retry_after and window (seconds) and limit; whether the real
		// credit refusal fills them is not documented.
		RetryAfter json.Number `json:"retry_after"`
		Window     json.Number `json:"window"`
	} `json:"details"`
}

// upsert posts one record to /crm/v3/{module}/upsert and returns its id and
// action (insert or update).
func (c *Client) upsert(ctx context.Context, op, module string, record map[string]any, dupField string) (id, action string, err error) {
	payload := map[string]any{
		"data":                   []map[string]any{record},
		"duplicate_check_fields": []string{dupField},
	}
	if c.cfg.Triggers != nil {
		payload["trigger"] = c.cfg.Triggers
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return "", "", integrations.Permanentf(provider, op, "encode request: %v", err)
	}
	resp, respBody, err := c.call(ctx, op, http.MethodPost, "/crm/v3/"+module+"/upsert", body)
	if err != nil {
		return "", "", err
	}
	var out struct {
		Data []recordResult `json:"data"`
	}
	if err := json.Unmarshal(respBody, &out); err != nil || len(out.Data) == 0 {
		return "", "", &integrations.Error{Provider: provider, Op: op, Status: resp.StatusCode, Class: integrations.Transient,
			Msg: "response without a record result"}
	}
	r := out.Data[0]
	if !strings.EqualFold(r.Status, "success") {
		re := recordError(op, resp.StatusCode, r)
		re.err.Msg = integrations.RedactRequest(re.err.Msg, resp.Request)
		return "", "", re
	}
	if r.Details.ID == "" {
		return "", "", &integrations.Error{Provider: provider, Op: op, Status: resp.StatusCode, Class: integrations.Transient,
			Msg: "success without a record id"}
	}
	return r.Details.ID, r.Action, nil
}

// transientCodes are Zoho error codes that may succeed later.
var transientCodes = map[string]bool{
	"TOO_MANY_REQUESTS": true,
	"INTERNAL_ERROR":    true,
	"LIMIT_EXCEEDED":    true,
}

// recordError turns a per-record error (inside a 2xx body, or a 4xx body
// with a data array) into an Error: MANDATORY_NOT_FOUND, INVALID_DATA,
// DUPLICATE_DATA, ... are permanent.
func recordError(op string, status int, r recordResult) *refusal {
	class := integrations.Permanent
	if transientCodes[r.Code] {
		class = integrations.Transient
	}
	return &refusal{err: &integrations.Error{Provider: provider, Op: op, Status: status, Class: class, Msg: codeMsg(r.Code, r.Details.APIName, r.Message)},
		code: r.Code, field: r.Details.APIName}
}

// refusal is a per-record error: the *integrations.Error the processor
// classifies (errors.As finds it) with Zoho's code and the field it named,
// which the client reads instead of the message.
type refusal struct {
	err         *integrations.Error
	code, field string
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// currencyRefusal is err when it is the CRM refusing a record's Currency
// (or its Exchange_Rate) as invalid data, else nil.
func currencyRefusal(err error) *refusal {
	var r *refusal
	if errors.As(err, &r) && r.code == "INVALID_DATA" && (r.field == "Currency" || r.field == "Exchange_Rate") {
		return r
	}
	return nil
}

func codeMsg(code, field, message string) string {
	s := code
	if field != "" {
		s += " (field " + field + ")"
	}
	if message != "" {
		s += ": " + short(message)
	}
	return s
}

// call sends an authorised request to the CRM. On 401 INVALID_TOKEN it
// refreshes the token once and repeats the call. It returns the response
// only for 200, 201, 202 and 207; anything else is an error.
func (c *Client) call(ctx context.Context, op, method, path string, body []byte) (*http.Response, []byte, error) {
	tok, err := c.tokens.get(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, c.api+path, rd)
		if err != nil {
			return nil, nil, integrations.Permanentf(provider, op, "bad API URL")
		}
		req.Header.Set("Authorization", "Zoho-oauthtoken "+tok)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		resp, respBody, err := c.roundTrip(req)
		if err != nil {
			return nil, nil, netError(op, err)
		}
		switch resp.StatusCode {
		case http.StatusOK, http.StatusCreated, http.StatusAccepted, http.StatusMultiStatus:
			return resp, respBody, nil
		}
		var ae apiError
		_ = json.Unmarshal(respBody, &ae)
		if resp.StatusCode == http.StatusUnauthorized && ae.Code == "INVALID_TOKEN" && attempt == 0 {
			c.log.DebugContext(ctx, "zoho: access token rejected, refreshing", "op", op)
			if tok, err = c.tokens.get(ctx, tok); err != nil {
				return nil, nil, err
			}
			continue
		}
		if reset, ok := c.creditsExhausted(resp, ae); ok {
			c.log.WarnContext(ctx, "zoho: API credits for the rolling 24 hours are used up", "op", op, "retry_at", reset)
			return nil, nil, integrations.QuotaExhausted(provider, op, resp.StatusCode, reset,
				codeMsg(ae.Code, "", ae.Message)+"; API credits used up until "+reset.UTC().Format(time.RFC3339))
		}
		return nil, nil, statusError(op, resp, respBody, ae)
	}
}

// HeaderCreditsRemaining is the header in which Zoho reports the
// organisation's API credits left in the rolling 24 hours, once half of
// them are used.
const HeaderCreditsRemaining = "X-API-CREDITS-REMAINING"

// creditsExhausted tells a refusal for used-up daily API credits from one
// for the concurrency limit: Zoho answers both with TOO_MANY_REQUESTS
// (HTTP 429) and documents no field that says which. The refusal is taken
// for used-up credits when
//   - X-API-CREDITS-REMAINING says 0 (the header Zoho sends once half the
//     credits are used), or
//   - its details give a window of an hour or more (the v8 OpenAPI sample
//     has details.window and details.retry_after in seconds), or
//   - its message speaks of credits.
//
// Anything else (the concurrency refusal with details.allowed_limit) stays
// a transient error with its Retry-After. The credits come back at
// details.retry_after, else Retry-After, else after QuotaRecheck.
func (c *Client) creditsExhausted(resp *http.Response, ae apiError) (time.Time, bool) {
	if resp.StatusCode != http.StatusTooManyRequests && ae.Code != "TOO_MANY_REQUESTS" {
		return time.Time{}, false
	}
	exhausted := false
	if v := strings.TrimSpace(resp.Header.Get(HeaderCreditsRemaining)); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n <= 0 {
			exhausted = true
		}
	}
	window, _ := ae.Details.Window.Int64()
	if window >= 3600 || strings.Contains(strings.ToLower(ae.Message), "credit") {
		exhausted = true
	}
	if !exhausted {
		return time.Time{}, false
	}
	now := c.now()
	if secs, err := ae.Details.RetryAfter.Int64(); err == nil && secs > 0 {
		return now.Add(time.Duration(secs) * time.Second), true
	}
	if d := integrations.ParseRetryAfter(resp.Header.Get("Retry-After"), now); d > 0 {
		return now.Add(d), true
	}
	return now.Add(c.cfg.QuotaRecheck), true
}

// statusError builds the Error for a non-2xx CRM answer.
func statusError(op string, resp *http.Response, body []byte, ae apiError) error {
	if ae.Code == "" {
		// Some errors come as {"data":[{record error}]}.
		var out struct {
			Data []recordResult `json:"data"`
		}
		if json.Unmarshal(body, &out) == nil && len(out.Data) > 0 && out.Data[0].Code != "" {
			r := recordError(op, resp.StatusCode, out.Data[0])
			r.err.Msg = integrations.RedactRequest(r.err.Msg, resp.Request)
			if transientCodes[out.Data[0].Code] || integrations.ClassifyStatus(resp.StatusCode) == integrations.Transient {
				r.err.Class = integrations.Transient
			}
			r.err.RetryAfter = integrations.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			return r
		}
	}
	e := integrations.HTTPError(provider, op, resp, codeMsg(ae.Code, ae.Details.APIName, ae.Message))
	if transientCodes[ae.Code] {
		e.Class = integrations.Transient
	}
	return e
}

func (c *Client) roundTrip(req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, nil, err
	}
	return resp, body, nil
}

// netError wraps a transport error without its URL (the token URL holds
// the client secret and refresh token).
func netError(op string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return integrations.NetError(provider, op, err)
}

// short cuts a provider message to a length fit for an error string.
func short(s string) string {
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}
