package sim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// zohoSim serves Zoho's refresh-token grant and CRM v3 upserts of Contacts
// and Deals. Upsert matches on duplicate_check_fields (default: the module's
// system field, Email for Contacts and Deal_Name for Deals): a match updates
// that record, otherwise one is inserted. Only the index needed to match and
// the record ids are kept in memory, not the records.
type zohoSim struct {
	s *Server

	mu     sync.Mutex
	tokens map[string]time.Time // access token → expiry
	index  map[string]string    // module \x00 field \x00 lower(value) → id
	ids    map[string]zohoRec   // id → record facts
	// cur is the org's currency set-up (PUT /_sim/zoho/currencies).
	cur ZohoCurrencies
}

// ZohoCurrencies is the simulated org's currency set-up: with Multi, the
// Active ISO codes can be booked (Home among them) and a deal's Currency
// must be one of them; without it, GET /crm/v3/org/currencies answers 403
// CURRENCIES_NOT_ENABLED, /crm/v3/org names Home, and a deal must not
// carry Currency (what Zoho does then is UNCONFIRMED; the simulator
// rejects it as INVALID_DATA, the stricter reading).
type ZohoCurrencies struct {
	Multi  bool     `json:"multi_currency"`
	Home   string   `json:"home"`
	Active []string `json:"active"`
}

// DefaultZohoCurrencies: multi-currency on, EUR home, and the currencies
// of the golden orders active; ISK is not, so a deal in it gets no amount.
var DefaultZohoCurrencies = ZohoCurrencies{Multi: true, Home: "EUR",
	Active: []string{"EUR", "SEK", "DKK", "NOK", "GBP", "USD", "CHF", "JPY", "KRW", "KWD", "BHD"}}

type zohoRec struct {
	module  string
	created time.Time
}

// zohoTokenTTL is what Zoho grants: one hour.
const zohoTokenTTL = time.Hour

// zohoSystemDupField is each module's system-defined duplicate-check field.
var zohoSystemDupField = map[string]string{"Contacts": "Email", "Deals": "Deal_Name"}

// zohoMaxLen are the most characters the standard fields written hold
// (Zoho CRM help, "Standard Modules & Fields", "Standard Fields in
// Deals"); a longer value is refused as INVALID_DATA.
var zohoMaxLen = map[string]int{
	"First_Name": 40, "Last_Name": 80, "Phone": 30, "Email": 100, "Deal_Name": 120,
	"Mailing_Street": 250, "Mailing_City": 250, "Mailing_Zip": 250, "Mailing_Country": 250, "Mailing_State": 250,
}

// zohoMandatory is the field each module cannot do without.
var zohoMandatory = map[string]string{"Contacts": "Last_Name", "Deals": "Deal_Name"}

func newZohoSim(s *Server) *zohoSim {
	return &zohoSim{s: s, tokens: map[string]time.Time{}, index: map[string]string{}, ids: map[string]zohoRec{}, cur: DefaultZohoCurrencies}
}

// token is POST /oauth/v2/token with grant_type=refresh_token, parameters in
// the query string (as Zoho documents) or a form body. Errors come back, as
// Zoho's do, with HTTP 200 and an "error" key.
func (z *zohoSim) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, obj{"error": "invalid_request"})
		return
	}
	if gt := r.Form.Get("grant_type"); gt != "refresh_token" {
		writeJSON(w, http.StatusOK, obj{"error": "unsupported_grant_type"})
		return
	}
	if r.Form.Get("client_id") == "" || r.Form.Get("client_secret") == "" {
		writeJSON(w, http.StatusOK, obj{"error": "invalid_client"})
		return
	}
	if r.Form.Get("refresh_token") == "" {
		writeJSON(w, http.StatusOK, obj{"error": "invalid_code"})
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := "1000.sim." + hex.EncodeToString(b[:])
	now := time.Now()
	z.mu.Lock()
	if len(z.tokens) > 10000 {
		for t, exp := range z.tokens {
			if now.After(exp) {
				delete(z.tokens, t)
			}
		}
	}
	z.tokens[tok] = now.Add(zohoTokenTTL)
	z.mu.Unlock()
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	writeJSON(w, http.StatusOK, obj{
		"access_token": tok,
		"api_domain":   scheme + "://" + r.Host,
		"token_type":   "Bearer",
		"expires_in":   int(zohoTokenTTL / time.Second),
		"scope":        "ZohoCRM.modules.ALL",
	})
}

// InvalidateZohoTokens forgets every issued access token, so the next CRM
// call gets 401 INVALID_TOKEN and the client must refresh.
func (s *Server) InvalidateZohoTokens() {
	s.zoho.mu.Lock()
	clear(s.zoho.tokens)
	s.zoho.mu.Unlock()
}

func zohoTopError(w http.ResponseWriter, status int, code, msg string, details obj) {
	if details == nil {
		details = obj{}
	}
	writeJSON(w, status, obj{"code": code, "details": details, "message": msg, "status": "error"})
}

// zohoErrors: 503 gets Zoho's top-level error; a rejection gets the
// per-record error of an upsert.
func zohoErrors(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if status >= 500 {
		zohoTopError(w, status, "INTERNAL_ERROR", msg, nil)
		return
	}
	writeJSON(w, status, obj{"data": []any{obj{"code": "INVALID_DATA", "details": obj{}, "message": msg, "status": "error"}}})
}

func (z *zohoSim) authorized(w http.ResponseWriter, r *http.Request) bool {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Zoho-oauthtoken ")
	if !ok || strings.TrimSpace(v) == "" {
		zohoTopError(w, http.StatusUnauthorized, "AUTHENTICATION_FAILURE", "Authentication failed", nil)
		return false
	}
	z.mu.Lock()
	exp, known := z.tokens[strings.TrimSpace(v)]
	z.mu.Unlock()
	if !known || time.Now().After(exp) {
		zohoTopError(w, http.StatusUnauthorized, "INVALID_TOKEN", "invalid oauth token", nil)
		return false
	}
	return true
}

type zohoUpsertBody struct {
	Data                 []map[string]any `json:"data"`
	DuplicateCheckFields []string         `json:"duplicate_check_fields"`
	Trigger              []string         `json:"trigger"`
}

func (z *zohoSim) upsert(w http.ResponseWriter, r *http.Request) {
	if !z.authorized(w, r) {
		return
	}
	module := r.PathValue("module")
	if _, ok := zohoSystemDupField[module]; !ok {
		zohoTopError(w, http.StatusBadRequest, "INVALID_MODULE", "the module name given seems to be invalid", obj{"resource_path_index": 0})
		return
	}
	raw, err := readBody(w, r)
	if err != nil {
		zohoTopError(w, http.StatusBadRequest, "INVALID_DATA", "the request body could not be read", nil)
		return
	}
	var body zohoUpsertBody
	if err := json.Unmarshal(raw, &body); err != nil {
		zohoTopError(w, http.StatusBadRequest, "INVALID_DATA", "body is not a valid JSON", nil)
		return
	}
	if len(body.Data) == 0 {
		zohoTopError(w, http.StatusBadRequest, "MANDATORY_NOT_FOUND", "required field not found", obj{"api_name": "data", "json_path": "$.data"})
		return
	}
	if len(body.Data) > 100 {
		zohoTopError(w, http.StatusBadRequest, "LIMIT_EXCEEDED", "the number of records exceeds 100", obj{"limit": 100})
		return
	}
	dupFields := body.DuplicateCheckFields
	if len(dupFields) == 0 {
		dupFields = []string{zohoSystemDupField[module]}
	}
	out := make([]any, 0, len(body.Data))
	ok, failed := 0, 0
	for i, rec := range body.Data {
		res := z.upsertOne(module, i, rec, dupFields)
		if res["status"] == "success" {
			ok++
		} else {
			failed++
		}
		out = append(out, res)
	}
	status := http.StatusOK
	switch {
	case ok == 0:
		status = http.StatusBadRequest
	case failed > 0:
		status = http.StatusMultiStatus
	}
	writeJSON(w, status, obj{"data": out})
}

func zohoRecordError(code, msg string, details obj) obj {
	return obj{"code": code, "details": details, "message": msg, "status": "error"}
}

func strField(rec map[string]any, f string) string {
	switch v := rec[f].(type) {
	case string:
		return strings.TrimSpace(v)
	case json.Number:
		return v.String()
	case float64:
		return fmt.Sprint(v)
	}
	return ""
}

func (z *zohoSim) upsertOne(module string, i int, rec map[string]any, dupFields []string) obj {
	path := func(f string) string { return fmt.Sprintf("$.data[%d].%s", i, f) }
	if m := zohoMandatory[module]; strField(rec, m) == "" {
		return zohoRecordError("MANDATORY_NOT_FOUND", "required field not found", obj{"api_name": m, "json_path": path(m)})
	}
	for f, n := range zohoMaxLen {
		if s, ok := rec[f].(string); ok && utf8.RuneCountInString(s) > n {
			return zohoRecordError("INVALID_DATA", "invalid data", obj{"api_name": f, "json_path": path(f), "maximum_length": n})
		}
	}
	if e, has := rec["Email"]; has {
		if s, _ := e.(string); !strings.Contains(s, "@") {
			return zohoRecordError("INVALID_DATA", "invalid data", obj{"api_name": "Email", "json_path": path("Email"), "expected_data_type": "email"})
		}
	}
	if a, has := rec["Amount"]; has {
		if _, isNum := a.(float64); !isNum && a != nil {
			return zohoRecordError("INVALID_DATA", "invalid data", obj{"api_name": "Amount", "json_path": path("Amount"), "expected_data_type": "currency"})
		}
	}
	if c, has := rec["Currency"]; has {
		code, _ := c.(string)
		z.mu.Lock()
		cur := z.cur
		z.mu.Unlock()
		if !cur.Multi || !contains(cur.Active, code) {
			return zohoRecordError("INVALID_DATA", "invalid data", obj{"api_name": "Currency", "json_path": path("Currency"), "expected_data_type": "picklist"})
		}
	}
	if c, has := rec["Contact_Name"]; has && c != nil {
		m, _ := c.(map[string]any)
		id, _ := m["id"].(string)
		z.mu.Lock()
		known := z.ids[id].module == "Contacts"
		z.mu.Unlock()
		if !known {
			return zohoRecordError("INVALID_DATA", "invalid data", obj{"api_name": "Contact_Name", "json_path": path("Contact_Name"), "expected_data_type": "lookup"})
		}
	}

	now := nowUTC()
	key := func(f, v string) string { return module + "\x00" + f + "\x00" + strings.ToLower(v) }
	fields := append([]string(nil), dupFields...)
	if sys := zohoSystemDupField[module]; !contains(fields, sys) {
		fields = append(fields, sys)
	}

	z.mu.Lock()
	var id, matchedField string
	for _, f := range dupFields {
		if v := strField(rec, f); v != "" {
			if found, ok := z.index[key(f, v)]; ok {
				id, matchedField = found, f
				break
			}
		}
	}
	action := "update"
	if id == "" {
		action = "insert"
		id = fmt.Sprintf("%d", 4150868000000000000+nextID())
		z.ids[id] = zohoRec{module: module, created: now}
		z.s.records.add(jrec{K: recZohoID, A: id, B: module, T: now})
	}
	created := z.ids[id].created
	for _, f := range fields {
		if v := strField(rec, f); v != "" {
			k := key(f, v)
			if z.index[k] != id {
				z.index[k] = id
				z.s.records.add(jrec{K: recZohoIndex, A: k, B: id})
			}
		}
	}
	z.mu.Unlock()

	// The order key: the first duplicate-check value the record carries.
	order := ""
	for _, f := range dupFields {
		if v := strField(rec, f); v != "" {
			order = v
			break
		}
	}
	kind := strings.ToLower(strings.TrimSuffix(module, "s"))
	// The record as last sent, for a person to open; an update overwrites it.
	pretty, _ := json.MarshalIndent(rec, "", "  ")
	file := z.s.outbox.write(StepCRM, kind+"-"+id+".json", pretty)
	e := entry{Time: now, Step: StepCRM, Order: order, Kind: kind, ID: id, Action: "update", File: file}
	if action == "insert" {
		e.Action = "create"
		e.Duplicate = z.s.stats.created(StepCRM, kind, order)
	}
	z.s.outbox.record(e)

	user := obj{"name": "Orderflow Sim", "id": "4150868000000225013"}
	res := obj{
		"code": "SUCCESS", "action": action, "status": "success",
		"details": obj{
			"Modified_Time": now.Format("2006-01-02T15:04:05-07:00"), "Modified_By": user,
			"Created_Time": created.Format("2006-01-02T15:04:05-07:00"), "Created_By": user, "id": id,
		},
	}
	if action == "insert" {
		res["message"], res["duplicate_field"] = "record added", nil
	} else {
		res["message"], res["duplicate_field"] = "record updated", matchedField
	}
	return res
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// SetZohoCurrencies changes the simulated org's currency set-up.
func (s *Server) SetZohoCurrencies(c ZohoCurrencies) {
	for i, a := range c.Active {
		c.Active[i] = strings.ToUpper(a)
	}
	c.Home = strings.ToUpper(c.Home)
	s.zoho.mu.Lock()
	s.zoho.cur = c
	s.zoho.mu.Unlock()
}

// currencies is GET /crm/v3/org/currencies.
func (z *zohoSim) currencies(w http.ResponseWriter, r *http.Request) {
	if !z.authorized(w, r) {
		return
	}
	z.mu.Lock()
	cur := z.cur
	z.mu.Unlock()
	if !cur.Multi {
		zohoTopError(w, http.StatusForbidden, "CURRENCIES_NOT_ENABLED", "Multi currency is not enabled", nil)
		return
	}
	list := make([]any, 0, len(cur.Active))
	for i, code := range cur.Active {
		list = append(list, obj{
			"id": fmt.Sprintf("41508680000000%05d", i+1), "iso_code": code, "name": code, "symbol": code,
			"is_active": true, "is_base": code == cur.Home, "exchange_rate": "1.000000000",
			"format": obj{"decimal_places": "2", "decimal_separator": "Period", "thousand_separator": "Comma"},
		})
	}
	writeJSON(w, http.StatusOK, obj{"currencies": list})
}

// org is GET /crm/v3/org.
func (z *zohoSim) org(w http.ResponseWriter, r *http.Request) {
	if !z.authorized(w, r) {
		return
	}
	z.mu.Lock()
	cur := z.cur
	z.mu.Unlock()
	writeJSON(w, http.StatusOK, obj{"org": []any{obj{
		"id": "4150868000000000001", "company_name": "Orderflow Sim", "mc_status": cur.Multi,
		"currency": "Home currency - " + cur.Home, "currency_locale": cur.Home, "country_code": "FI",
	}}})
}

// putCurrencies is PUT /_sim/zoho/currencies with a ZohoCurrencies body.
func (s *Server) putCurrencies(w http.ResponseWriter, r *http.Request) {
	raw, err := readBody(w, r)
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, obj{"error": err.Error()})
		return
	}
	var c ZohoCurrencies
	if err := json.Unmarshal(raw, &c); err != nil || len(c.Home) != 3 {
		writeJSON(w, http.StatusBadRequest, obj{"error": `want {"multi_currency":true,"home":"EUR","active":["EUR","SEK"]}`})
		return
	}
	s.SetZohoCurrencies(c)
	writeJSON(w, http.StatusOK, c)
}
