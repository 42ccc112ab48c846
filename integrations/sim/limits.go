package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits are the provider limits the simulator enforces when
// Config.EnforceLimits is set. A zero field takes the default given with
// it; a negative one turns that limit off. Fields marked UNCONFIRMED have
// no published number and are off unless set.
type Limits struct {
	// AirtablePerBase: requests per second to one base (all tokens
	// together); default 5. Over it: 429 and AirtablePenalty during which
	// every request to that base is refused; default 30s.
	AirtablePerBase int
	AirtablePenalty time.Duration

	// ZohoConcurrency: CRM calls in flight for the organisation (the
	// simulator serves one); default 10, the Standard edition's. Over it:
	// 429 TOO_MANY_REQUESTS.
	ZohoConcurrency int
	// ZohoDailyCredits: API credits per rolling 24 hours; an upsert costs
	// one per 10 records (at least one); default 100,000, the Standard
	// edition's cap. Over it: 429 TOO_MANY_REQUESTS saying the credits are
	// used up, with details.retry_after.
	ZohoDailyCredits int

	// TelegramPerChat: messages per second to one chat; default 1.
	// TelegramPerGroupPerMinute: messages per minute to one group or
	// channel (a negative chat id or @name); default 20.
	// TelegramPerBot: messages per second from one bot; default 30.
	// Over any: 429 with parameters.retry_after.
	TelegramPerChat           int
	TelegramPerGroupPerMinute int
	TelegramPerBot            int

	// SlackPerWebhook: messages per second to one incoming webhook;
	// default 1. Over it: 429 with Retry-After.
	SlackPerWebhook int

	// PostNordPerSecond, NetvisorPerSecond, MailgunPerSecond: requests per
	// second to each provider. UNCONFIRMED: none publishes a number, so
	// they are off (0) unless set. Over them: 429 with Retry-After
	// (Mailgun also X-RateLimit-Reset).
	PostNordPerSecond int
	NetvisorPerSecond int
	MailgunPerSecond  int

	// Now is the clock; default time.Now. Tests inject one.
	Now func() time.Time
}

// withDefaults applies the documented defaults; negative values mean off
// and become 0.
func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = 0
		}
	}
	def(&l.AirtablePerBase, 5)
	def(&l.ZohoConcurrency, 10)
	def(&l.ZohoDailyCredits, 100000)
	def(&l.TelegramPerChat, 1)
	def(&l.TelegramPerGroupPerMinute, 20)
	def(&l.TelegramPerBot, 30)
	def(&l.SlackPerWebhook, 1)
	for _, v := range []*int{&l.PostNordPerSecond, &l.NetvisorPerSecond, &l.MailgunPerSecond} {
		*v = max(*v, 0)
	}
	if l.AirtablePenalty == 0 {
		l.AirtablePenalty = 30 * time.Second
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	return l
}

func (l Limits) validate() error {
	if l.AirtablePenalty < 0 {
		return errors.New("limits: AirtablePenalty must not be negative")
	}
	return nil
}

// The kinds of refusal counted in StepStats.
const (
	rejectRate        = "rate"
	rejectConcurrency = "concurrency"
	rejectQuota       = "quota"
)

func (st *stats) rejected(step, kind string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	ss := st.steps[step]
	switch kind {
	case rejectRate:
		ss.RejectedRateLimited++
	case rejectConcurrency:
		ss.RejectedConcurrency++
	case rejectQuota:
		ss.RejectedQuota++
	}
}

// window admits at most max events in any span of per (a sliding log).
type window struct {
	max   int
	per   time.Duration
	times []time.Time
}

// check says whether an event at now fits, or how long until one would.
func (w *window) check(now time.Time) (bool, time.Duration) {
	i := 0
	for i < len(w.times) && !w.times[i].After(now.Add(-w.per)) {
		i++
	}
	w.times = w.times[i:]
	if len(w.times) >= w.max {
		return false, w.times[0].Add(w.per).Sub(now)
	}
	return true, 0
}

// keyed holds one window per key, forgotten in bulk past maxKeys.
type keyed struct {
	max     int
	per     time.Duration
	windows map[string]*window
}

const maxLimitKeys = 10000

func newKeyed(max int, per time.Duration) *keyed {
	return &keyed{max: max, per: per, windows: map[string]*window{}}
}

// check says whether an event for key fits at now, without counting it.
func (k *keyed) check(key string, now time.Time) (bool, time.Duration) {
	if k == nil || k.max <= 0 {
		return true, 0
	}
	if w := k.windows[key]; w != nil {
		return w.check(now)
	}
	return true, 0
}

// add counts an event for key at now.
func (k *keyed) add(key string, now time.Time) {
	if k == nil || k.max <= 0 {
		return
	}
	w := k.windows[key]
	if w == nil {
		if len(k.windows) >= maxLimitKeys {
			clear(k.windows)
		}
		w = &window{max: k.max, per: k.per}
		k.windows[key] = w
	}
	w.times = append(w.times, now)
}

// allow checks and, when the event fits, counts it.
func (k *keyed) allow(key string, now time.Time) (bool, time.Duration) {
	ok, wait := k.check(key, now)
	if ok {
		k.add(key, now)
	}
	return ok, wait
}

// limiter enforces Limits in front of the provider handlers (see
// Server.step). A nil *limiter enforces nothing.
type limiter struct {
	cfg   Limits
	stats *stats

	mu              sync.Mutex
	airtable        *keyed
	airtablePenalty map[string]time.Time // base → refused until
	zohoInFlight    int
	zohoCredits     map[int64]int // unix minute → credits spent
	zohoSpent       int
	tgChat          *keyed
	tgGroup         *keyed
	tgBot           *keyed
	slack           *keyed
	perStep         map[string]*keyed // PostNord, Netvisor, Mailgun
}

func newLimiter(cfg Limits, st *stats) *limiter {
	cfg = cfg.withDefaults()
	return &limiter{
		cfg: cfg, stats: st,
		airtable: newKeyed(cfg.AirtablePerBase, time.Second), airtablePenalty: map[string]time.Time{},
		zohoCredits: map[int64]int{},
		tgChat:      newKeyed(cfg.TelegramPerChat, time.Second),
		tgGroup:     newKeyed(cfg.TelegramPerGroupPerMinute, time.Minute),
		tgBot:       newKeyed(cfg.TelegramPerBot, time.Second),
		slack:       newKeyed(cfg.SlackPerWebhook, time.Second),
		perStep: map[string]*keyed{
			StepShipping: newKeyed(cfg.PostNordPerSecond, time.Second),
			StepInvoice:  newKeyed(cfg.NetvisorPerSecond, time.Second),
			StepEmail:    newKeyed(cfg.MailgunPerSecond, time.Second),
		},
	}
}

func noRelease() {}

// admit decides whether the request may go on to its handler. When it may
// not, it has answered in the provider's 429 shape and counted the
// refusal; when it may, release must be called once the handler is done.
func (l *limiter) admit(step string, w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	if l == nil {
		return noRelease, true
	}
	now := l.cfg.Now()
	switch step {
	case StepProductionLog:
		return noRelease, l.airtableAdmit(w, r, now)
	case StepCRM:
		return l.zohoAdmit(w, r, now)
	case StepAlert:
		return noRelease, l.telegramAdmit(w, r, now)
	case StepSlack:
		l.mu.Lock()
		okRate, wait := l.slack.allow(r.PathValue("team")+"/"+r.PathValue("channel")+"/"+r.PathValue("token"), now)
		l.mu.Unlock()
		if !okRate {
			l.stats.rejected(step, rejectRate)
			w.Header().Set("Retry-After", strconv.Itoa(ceilSeconds(wait)))
			slackText(w, http.StatusTooManyRequests, "rate_limited")
			return nil, false
		}
	case StepShipping, StepInvoice, StepEmail:
		if step == StepShipping && !strings.HasPrefix(r.URL.Path, "/rest/shipment/") {
			break // PostNordPerSecond is PostNord's: another shipping provider (DHL) is not limited by it
		}
		l.mu.Lock()
		okRate, wait := l.perStep[step].allow("", now)
		l.mu.Unlock()
		if !okRate {
			l.stats.rejected(step, rejectRate)
			secs := ceilSeconds(wait)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			switch step {
			case StepShipping:
				postnordError(w, http.StatusTooManyRequests, "Too Many Requests", pnFault{FaultCode: "API-429", ExplanationText: "rate limit exceeded (simulated)"})
			case StepEmail:
				w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(now.Add(time.Duration(secs)*time.Second).Unix(), 10))
				writeJSON(w, http.StatusTooManyRequests, obj{"message": "Too many requests"})
			default:
				plainError(w, http.StatusTooManyRequests, "Too Many Requests")
			}
			return nil, false
		}
	}
	return noRelease, true
}

// airtableAdmit: 5 requests a second per base; the request over it gets
// 429 and starts the penalty, during which every request is refused.
func (l *limiter) airtableAdmit(w http.ResponseWriter, r *http.Request, now time.Time) bool {
	base := r.PathValue("base")
	l.mu.Lock()
	refused := now.Before(l.airtablePenalty[base])
	if !refused {
		if ok, _ := l.airtable.allow(base, now); !ok {
			refused = true
			if len(l.airtablePenalty) >= maxLimitKeys {
				clear(l.airtablePenalty)
			}
			l.airtablePenalty[base] = now.Add(l.cfg.AirtablePenalty)
		}
	}
	l.mu.Unlock()
	if refused {
		l.stats.rejected(StepProductionLog, rejectRate)
		writeJSON(w, http.StatusTooManyRequests, obj{"errors": []any{obj{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}}})
	}
	return !refused
}

// zohoAdmit charges the rolling 24-hour credits and takes a concurrency
// slot, released when the handler is done.
func (l *limiter) zohoAdmit(w http.ResponseWriter, r *http.Request, now time.Time) (func(), bool) {
	cost := 1
	if l.cfg.ZohoDailyCredits > 0 {
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		r.Body = io.NopCloser(bytes.NewReader(raw))
		var b struct {
			Data []json.RawMessage `json:"data"`
		}
		if err == nil && json.Unmarshal(raw, &b) == nil {
			cost = max(1, (len(b.Data)+9)/10)
		}
	}
	l.mu.Lock()
	if lim := l.cfg.ZohoDailyCredits; lim > 0 {
		retry := l.zohoExpire(now, lim-cost)
		if l.zohoSpent+cost > lim {
			l.mu.Unlock()
			l.stats.rejected(StepCRM, rejectQuota)
			w.Header().Set(HeaderZohoCreditsRemaining, "0")
			zohoTopError(w, http.StatusTooManyRequests, "TOO_MANY_REQUESTS",
				"API credits for the last 24 hours are used up",
				obj{"limit": lim, "window": 86400, "retry_after": ceilSeconds(retry)})
			return nil, false
		}
	}
	if lim := l.cfg.ZohoConcurrency; lim > 0 && l.zohoInFlight >= lim {
		l.mu.Unlock()
		l.stats.rejected(StepCRM, rejectConcurrency)
		zohoTopError(w, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "concurrency limit exceeded",
			obj{"allowed_limit": strconv.Itoa(lim)})
		return nil, false
	}
	if lim := l.cfg.ZohoDailyCredits; lim > 0 {
		l.zohoCredits[now.Unix()/60] += cost
		l.zohoSpent += cost
		if 2*l.zohoSpent >= lim {
			// Zoho reports what is left once half the credits are used.
			w.Header().Set(HeaderZohoCreditsRemaining, strconv.Itoa(lim-l.zohoSpent))
		}
	}
	l.zohoInFlight++
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.zohoInFlight--
			l.mu.Unlock()
		})
	}, true
}

// HeaderZohoCreditsRemaining is the header in which Zoho CRM reports the
// API credits left in the rolling 24 hours once half of them are used; the
// simulator also sends it, as 0, with the refusal.
const HeaderZohoCreditsRemaining = "X-API-CREDITS-REMAINING"

// ZohoCredits is the simulated organisation's daily API credits.
type ZohoCredits struct {
	// Daily is the allowance per rolling 24 hours; 0 when not enforced.
	Daily int `json:"daily"`
	// Spent is what the last 24 hours used; Remaining what is left.
	Spent     int `json:"spent"`
	Remaining int `json:"remaining"`
}

// zohoCreditsNow reports the credits; ok is false without enforced limits.
func (l *limiter) zohoCreditsNow() (ZohoCredits, bool) {
	if l == nil {
		return ZohoCredits{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.cfg.ZohoDailyCredits
	if lim > 0 {
		l.zohoExpire(l.cfg.Now(), lim)
	}
	return ZohoCredits{Daily: lim, Spent: l.zohoSpent, Remaining: max(lim-l.zohoSpent, 0)}, true
}

// setZohoDaily changes the daily allowance (0 or less: not enforced) and,
// with reset, forgets the credits spent: a new day.
func (l *limiter) setZohoDaily(daily int, reset bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg.ZohoDailyCredits = max(daily, 0)
	if reset {
		clear(l.zohoCredits)
		l.zohoSpent = 0
	}
}

// zohoExpire drops the credits spent more than 24 hours ago and returns how
// long until the spent total falls to at most target. l.mu is held.
func (l *limiter) zohoExpire(now time.Time, target int) time.Duration {
	const day = 24 * time.Hour
	// A minute's credits leave the window once the whole minute is more
	// than 24 hours old.
	cutoff := now.Add(-day).Unix()
	minutes := make([]int64, 0, len(l.zohoCredits))
	for m, c := range l.zohoCredits {
		if (m+1)*60 <= cutoff {
			l.zohoSpent -= c
			delete(l.zohoCredits, m)
			continue
		}
		minutes = append(minutes, m)
	}
	if l.zohoSpent <= target {
		return 0
	}
	// Oldest minutes first, until enough would have left the window.
	slices.Sort(minutes)
	left := l.zohoSpent
	for _, m := range minutes {
		left -= l.zohoCredits[m]
		if left <= target {
			return time.Unix((m+1)*60, 0).Add(day).Sub(now)
		}
	}
	return day
}

// telegramAdmit applies the per-bot, per-chat and per-group rates.
func (l *limiter) telegramAdmit(w http.ResponseWriter, r *http.Request, now time.Time) bool {
	bot := r.PathValue("bot")
	chat := telegramChat(r)
	group := strings.HasPrefix(chat, "-") || strings.HasPrefix(chat, "@")
	l.mu.Lock()
	// Check every limit before counting, so a refused message uses none.
	ok, wait := l.tgBot.check(bot, now)
	if ok && chat != "" {
		ok, wait = l.tgChat.check(bot+"/"+chat, now)
		if ok && group {
			ok, wait = l.tgGroup.check(bot+"/"+chat, now)
		}
	}
	if ok {
		l.tgBot.add(bot, now)
		if chat != "" {
			l.tgChat.add(bot+"/"+chat, now)
			if group {
				l.tgGroup.add(bot+"/"+chat, now)
			}
		}
	}
	l.mu.Unlock()
	if !ok {
		l.stats.rejected(StepAlert, rejectRate)
		secs := ceilSeconds(wait)
		writeJSON(w, http.StatusTooManyRequests, obj{"ok": false, "error_code": 429,
			"description": fmt.Sprintf("Too Many Requests: retry after %d", secs), "parameters": obj{"retry_after": secs}})
	}
	return ok
}

// telegramChat reads chat_id from a JSON or urlencoded body and puts the
// body back for the handler.
func telegramChat(r *http.Request) string {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	r.Body = io.NopCloser(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	switch ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct {
	case "application/json":
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var b struct {
			ChatID any `json:"chat_id"`
		}
		if d.Decode(&b) == nil && b.ChatID != nil {
			return fmt.Sprint(b.ChatID)
		}
	case "application/x-www-form-urlencoded":
		if v, err := url.ParseQuery(string(raw)); err == nil {
			return v.Get("chat_id")
		}
	}
	return ""
}

// ceilSeconds rounds d up to whole seconds, at least one.
func ceilSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}
