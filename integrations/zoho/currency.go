package zoho

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// Currency modes (Config.CurrencyMode).
const (
	CurrencyAuto  = "auto"
	CurrencyMulti = "multi"
	CurrencyHome  = "home"
)

// booking says what a deal in one currency carries.
type booking struct {
	amount   bool   // send Amount
	currency bool   // send Currency
	reason   string // why Amount is left out
	// read is when the org's currencies it was decided from were read
	// (mode auto), zero when the configuration decided.
	read time.Time
}

// orgCurrencies is what the CRM said about its currencies.
type orgCurrencies struct {
	multi  bool            // multi-currency is on
	active map[string]bool // active ISO codes (multi only)
	home   string          // the home (base) currency, "" when unknown
	read   time.Time       // when it was read
}

// currencyCache keeps the org's currencies for Config.CurrencyTTL; one
// look-up at a time.
type currencyCache struct {
	mu     sync.Mutex
	val    orgCurrencies // val.read zero: nothing kept
	warned bool
}

// forget drops the currencies read at read, unless they were read again
// since (for another order the CRM refused at the same time).
func (cc *currencyCache) forget(read time.Time) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.val.read.Equal(read) {
		cc.val = orgCurrencies{}
	}
}

// booking decides for an order's currency (lower case, as Stripe sends it).
func (c *Client) booking(ctx context.Context, currency string) (booking, error) {
	cur := strings.ToUpper(currency)
	switch c.cfg.CurrencyMode {
	case CurrencyMulti:
		return booking{amount: true, currency: true}, nil
	case CurrencyHome:
		if cur == c.cfg.HomeCurrency {
			return booking{amount: true}, nil
		}
		return booking{reason: "the CRM books " + c.cfg.HomeCurrency + " only, the order is in " + cur}, nil
	}
	org, err := c.orgCurrencies(ctx)
	if err != nil {
		return booking{}, err
	}
	b := booking{read: org.read}
	switch {
	case org.multi && org.active[cur]:
		b.amount, b.currency = true, true
	case org.multi:
		b.reason = cur + " is not an active currency of the CRM"
	case org.home == "":
		b.reason = "the CRM's home currency is unknown (set the home currency, or allow the token ZohoCRM.org.READ)"
	case org.home == cur:
		b.amount = true
	default:
		b.reason = "the CRM books " + org.home + " only (multi-currency is off), the order is in " + cur
	}
	return b, nil
}

// rebook decides a deal's booking again after the CRM refused its
// currency (refused), which the currencies read at stale.read list as
// active: they are read anew, once. If they still list it, the CRM
// contradicts itself and a person must look: a permanent error.
func (c *Client) rebook(ctx context.Context, o integrations.Order, stale booking, refused *integrations.Error) (booking, error) {
	cur := strings.ToUpper(o.Currency)
	c.cur.forget(stale.read)
	b, err := c.booking(ctx, o.Currency)
	if err != nil {
		return booking{}, err
	}
	if b.currency {
		return booking{}, &integrations.Error{Provider: provider, Op: refused.Op, Status: refused.Status, Class: integrations.Permanent,
			Msg: "the CRM refused the order's currency " + cur + " although its currencies list it as active: " + refused.Msg}
	}
	c.log.WarnContext(ctx, "zoho: the cached currencies were stale (the CRM refused the deal's currency); the deal is booked as they now say",
		"order_id", o.ID, "currency", cur, "amount_booked", b.amount)
	return b, nil
}

// orgCurrencies returns the cached answer, or reads it: the currencies
// (multi-currency on), else the org's home currency. A look-up the token
// may not make (401/403 other than "not enabled") is logged once and
// answered with the configured home currency; a transient failure fails
// the step, to be retried.
func (c *Client) orgCurrencies(ctx context.Context) (orgCurrencies, error) {
	cc := &c.cur
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !cc.val.read.IsZero() && time.Since(cc.val.read) < c.cfg.CurrencyTTL {
		return cc.val, nil
	}
	val, err := c.readCurrencies(ctx)
	if err != nil {
		var e *integrations.Error
		if errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden || e.Status == http.StatusBadRequest) {
			if !cc.warned {
				c.log.WarnContext(ctx, "zoho: cannot read the org's currencies; deals in other currencies than the configured home currency get no amount",
					"home_currency", c.cfg.HomeCurrency, "err", err)
				cc.warned = true
			}
			val = orgCurrencies{home: c.cfg.HomeCurrency}
		} else {
			return orgCurrencies{}, err
		}
	}
	if val.home == "" {
		val.home = c.cfg.HomeCurrency
	}
	val.read = time.Now()
	cc.val = val
	return val, nil
}

func (c *Client) readCurrencies(ctx context.Context) (orgCurrencies, error) {
	const op = "read currencies"
	resp, body, err := c.call(ctx, op, http.MethodGet, "/crm/v3/org/currencies", nil)
	if err != nil {
		var e *integrations.Error
		if errors.As(err, &e) && e.Status == http.StatusForbidden && strings.Contains(e.Msg, "CURRENCIES_NOT_ENABLED") {
			home, herr := c.readHomeCurrency(ctx)
			return orgCurrencies{home: home}, herr
		}
		return orgCurrencies{}, err
	}
	var out struct {
		Currencies []struct {
			ISOCode  string `json:"iso_code"`
			IsActive bool   `json:"is_active"`
			IsBase   bool   `json:"is_base"`
		} `json:"currencies"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return orgCurrencies{}, &integrations.Error{Provider: provider, Op: op, Status: resp.StatusCode, Class: integrations.Transient, Msg: "unreadable currencies answer"}
	}
	val := orgCurrencies{multi: true, active: map[string]bool{}}
	for _, cu := range out.Currencies {
		code := strings.ToUpper(cu.ISOCode)
		if cu.IsActive {
			val.active[code] = true
		}
		if cu.IsBase {
			val.home = code
		}
	}
	return val, nil
}

// readHomeCurrency reads the org's currency from GET /crm/v3/org: its
// "currency" field reads "Euro - EUR" (the ISO code last).
func (c *Client) readHomeCurrency(ctx context.Context) (string, error) {
	const op = "read org"
	resp, body, err := c.call(ctx, op, http.MethodGet, "/crm/v3/org", nil)
	if err != nil {
		return "", err
	}
	var out struct {
		Org []struct {
			Currency       string `json:"currency"`
			CurrencyLocale string `json:"currency_locale"`
		} `json:"org"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return "", &integrations.Error{Provider: provider, Op: op, Status: resp.StatusCode, Class: integrations.Transient, Msg: "unreadable org answer"}
	}
	if len(out.Org) == 0 {
		return "", nil
	}
	o := out.Org[0]
	if i := strings.LastIndex(o.Currency, " - "); i >= 0 && isCurrencyCode(o.Currency[i+3:]) {
		return strings.ToUpper(o.Currency[i+3:]), nil
	}
	if isCurrencyCode(o.CurrencyLocale) {
		return strings.ToUpper(o.CurrencyLocale), nil
	}
	return "", nil
}

func isCurrencyCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') {
			return false
		}
	}
	return true
}
