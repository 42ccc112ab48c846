package integrations

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Redacted replaces a credential in an error text.
const Redacted = "<redacted>"

// credentialHeader reports whether a request header carries a credential:
// Authorization, and any header named for a key, token, secret, password
// or signature (DHL's Dhl-Api-Key, an X-Api-Token).
func credentialHeader(name string) bool {
	n := strings.ToLower(name)
	if n == "authorization" || n == "proxy-authorization" || n == "cookie" {
		return true
	}
	if strings.Contains(n, "idempotency") {
		return false // an order's or event's id, which the error may name
	}
	for _, w := range []string{"key", "token", "secret", "password", "signature", "auth"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// credentialParam reports whether a query parameter carries a credential
// (PostNord's apikey, Zoho's client_secret and refresh_token).
func credentialParam(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"key", "token", "secret", "password", "signature", "auth", "sig"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// requestCredentials are the credential values req carried, in every form
// a provider may echo them: a header's value, the part after its scheme
// ("Bearer <token>"), for HTTP Basic the encoded pair, the decoded
// "user:password" and the password; and the credential query values.
func requestCredentials(req *http.Request) []string {
	if req == nil {
		return nil
	}
	var out []string
	add := func(v string) {
		// Short values would mask ordinary words; no credential is
		// that short.
		if utf8.RuneCountInString(v) >= 6 {
			out = append(out, v)
		}
	}
	for name, vs := range req.Header {
		if !credentialHeader(name) {
			continue
		}
		for _, v := range vs {
			add(v)
			scheme, rest, ok := strings.Cut(v, " ")
			if !ok {
				continue
			}
			rest = strings.TrimSpace(rest)
			add(rest)
			if strings.EqualFold(scheme, "basic") {
				if dec, err := base64.StdEncoding.DecodeString(rest); err == nil {
					add(string(dec))
					if _, pw, ok := strings.Cut(string(dec), ":"); ok {
						add(pw)
					}
				}
			}
		}
	}
	if req.URL != nil {
		if pw, ok := req.URL.User.Password(); ok {
			add(pw)
		}
		for k, vs := range req.URL.Query() {
			if credentialParam(k) {
				for _, v := range vs {
					add(v)
					add(url.QueryEscape(v))
				}
			}
		}
	}
	return out
}

// RedactValues returns s with every occurrence of each value (ignoring
// case) replaced by with. Values are tried longest first, so a value that
// contains another is replaced whole.
func RedactValues(s string, values []string, with string) string {
	if s == "" || len(values) == 0 {
		return s
	}
	vs := slices.Clone(values)
	slices.SortFunc(vs, func(a, b string) int { return len(b) - len(a) })
	vs = slices.Compact(vs)
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		if v != "" {
			parts = append(parts, regexp.QuoteMeta(v))
		}
	}
	if len(parts) == 0 {
		return s
	}
	re, err := regexp.Compile("(?i)" + strings.Join(parts, "|"))
	if err != nil {
		return s
	}
	return redactCutTail(re.ReplaceAllLiteralString(s, with), vs, with)
}

// redactCutTail replaces the end of s when it is the start of one of the
// values (four characters or more of it after an ellipsis, twelve without
// one): a provider's message cut to a length before it reached here ends
// in part of a value, which a whole-value match does not find.
func redactCutTail(s string, values []string, with string) string {
	body, tail := s, ""
	for _, e := range []string{"…", "..."} {
		if strings.HasSuffix(body, e) {
			body, tail = strings.TrimSuffix(body, e), e
			break
		}
	}
	// Without an ellipsis saying the text was cut, only a long part
	// counts: a message ending in an ordinary word ("no_service") may
	// begin a value (a Slack URL's "services" segment).
	least := 12
	if tail != "" {
		least = 4
	}
	lower := strings.ToLower(body)
	for _, v := range values {
		lv := strings.ToLower(v)
		for k := len(lv) - 1; k >= least; k-- {
			if !utf8.RuneStart(lv[k]) && k < len(lv) {
				continue // not at a character boundary
			}
			if strings.HasSuffix(lower, lv[:k]) {
				return body[:len(body)-k] + with + tail
			}
		}
	}
	return s
}

// RedactRequest returns s without the credentials req carried (see
// requestCredentials): a provider's error message may echo the request.
func RedactRequest(s string, req *http.Request) string {
	return RedactValues(s, requestCredentials(req), Redacted)
}

// RedactURLError returns err with the URL of a *url.Error (what net/http
// returns for a transport failure: `Post "<url>": dial tcp …`) shown with
// every query value replaced, as a credential or customer data may be
// there. Any other error is returned as it is.
func RedactURLError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil {
		return &redactedURLError{err: err, text: strings.ReplaceAll(err.Error(), ue.URL, Redacted)}
	}
	changed := false
	if u.User != nil {
		u.User = nil
		changed = true
	}
	if u.RawQuery != "" {
		q := strings.Split(u.RawQuery, "&")
		for i, p := range q {
			k, _, _ := strings.Cut(p, "=")
			q[i] = k + "=REDACTED"
		}
		u.RawQuery = strings.Join(q, "&")
		changed = true
	}
	if !changed {
		return err
	}
	return &redactedURLError{err: err, text: strings.ReplaceAll(err.Error(), ue.URL, u.String())}
}

// redactedURLError is an error with a redacted text that still unwraps to
// the original (timeouts and cancellation are told from it).
type redactedURLError struct {
	err  error
	text string
}

func (e *redactedURLError) Error() string { return e.text }
func (e *redactedURLError) Unwrap() error { return e.err }

// MaskedPersonal replaces customer data in an error text.
const MaskedPersonal = "***"

// PersonalValues are the order's customer data as a provider's error may
// quote it: the buyer's and the recipient's names, email, phone, street
// lines and postal code, each whole and each word of a name or street
// line of four letters or more, and the tax ids as given and as a
// register writes them (capitals, no separators).
func (o *Order) PersonalValues() []string {
	if o == nil {
		return nil
	}
	var out []string
	add := func(v string, words bool) {
		v = strings.TrimSpace(v)
		if utf8.RuneCountInString(v) < 3 {
			return
		}
		out = append(out, v)
		if !words {
			return
		}
		for _, w := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
			letters := 0
			for _, r := range w {
				if unicode.IsLetter(r) {
					letters++
				}
			}
			if letters >= 4 {
				out = append(out, w)
			}
		}
	}
	for _, a := range []Address{o.Customer.Address, o.Shipping} {
		add(a.Name, true)
		add(a.Line1, true)
		add(a.Line2, true)
		add(a.Phone, false)
		if utf8.RuneCountInString(a.PostalCode) >= 4 {
			add(a.PostalCode, false)
		}
	}
	add(o.Customer.Name, true)
	add(o.Customer.Email, false)
	add(o.Customer.Phone, false)
	for _, id := range o.Customer.TaxIDs {
		add(id.Value, false)
		add(strings.Map(func(r rune) rune {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				return unicode.ToUpper(r)
			}
			return -1
		}, id.Value), false)
	}
	return out
}

// MaskPersonal returns s with the order's customer data (PersonalValues)
// replaced by MaskedPersonal: an error text goes to logs and chat alerts,
// which carry ids only.
func MaskPersonal(s string, o *Order) string {
	return RedactValues(s, o.PersonalValues(), MaskedPersonal)
}

// SecretURLParts are the parts of a URL that is itself a credential (a
// Slack incoming webhook, an outbound webhook's receiver) as an error
// text may quote them: the URL, its host, its path, each path segment and
// query value of six characters or more.
func SecretURLParts(raw string) []string {
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil {
		return out
	}
	for _, v := range []string{u.Host, u.Hostname(), u.EscapedPath(), u.Path} {
		if len(v) > 1 {
			out = append(out, v)
		}
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if utf8.RuneCountInString(seg) >= 6 {
			out = append(out, seg)
		}
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			if utf8.RuneCountInString(v) >= 6 {
				out = append(out, v)
			}
		}
	}
	return out
}
