package console

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/dlq"
	"github.com/orderflow/orderflow/topics"
)

//go:embed web/templates/*.html
var templateFS embed.FS

//go:embed web/static
var staticFS embed.FS

// Replayer runs a replay; *dlq.Client is one, and `orderflow dlq replay`
// runs the same Run.
type Replayer interface {
	Run(ctx context.Context, req dlq.ReplayRequest) (dlq.ReplayResult, error)
}

// StateReader reads an order's state record from orders.state, where the
// index says it is; *dlq.Client is one.
type StateReader interface {
	StateAt(ctx context.Context, orderID string, partition int32, offset int64) (*processor.State, error)
}

// Eraser erases an order's state; *dlq.Client is one, and `orderflow
// orders erase` runs the same Erase.
type Eraser interface {
	Erase(ctx context.Context, orderID string, st *processor.State, partition int32, wait time.Duration) (dlq.Erasure, error)
}

// Auditor writes an audit record and returns once it is acknowledged.
type Auditor interface {
	Audit(ctx context.Context, a topics.AuditRecord) error
}

// Config is what a console server needs.
type Config struct {
	Index    *Index
	Follower *Follower // nil in tests that fill the index by hand
	Observer *Observer
	Replayer Replayer
	States   StateReader
	Eraser   Eraser
	Auditor  Auditor
	Names    topics.Names
	// Accounts are the users and tokens; ignored with NoLogin.
	Accounts *Accounts
	// NoLogin serves every page without login, as operator "dev": only
	// for a console listening on loopback (dev mode). The caller checks
	// the address; CSRF protection stays on (but for the JSON API's
	// cookieless search, see jsonAPICall), and a request for a host name
	// that is not loopback is refused (421), against DNS rebinding.
	NoLogin bool
	// SecureCookies marks the session cookie Secure (set it when the
	// console is reached over TLS, directly or through a proxy).
	SecureCookies bool
	// LabelDir is the folder of the shipping labels (the processors'
	// --label-dir); empty: no label download.
	LabelDir string
	// SessionTTL bounds a session (default 12h); SessionIdle logs out
	// after that long without a request (default 1h).
	SessionTTL, SessionIdle time.Duration
	// LoginFailures within LoginWindow from one address or for one name
	// block further logins from it until the window passes (5 in 15m).
	LoginFailures int
	LoginWindow   time.Duration
	// CreateTopics is the command the pages name to create a missing
	// topic, with the console's connection flags (default "orderflow
	// topics create").
	CreateTopics string
	// DefaultRate is the replay rate the pages offer (dlq.DefaultRate).
	DefaultRate float64
	Logger      *slog.Logger
	Now         func() time.Time
}

// Server is the console's HTTP handler.
type Server struct {
	cfg      Config
	pages    map[string]*template.Template
	sessions *sessions
	limit    *limiter
	log      *slog.Logger
	mux      *http.ServeMux

	jobsMu sync.Mutex
	jobs   map[string]*job
}

const cookieName = "orderflow_console"

// New returns the console's handler.
func New(cfg Config) (*Server, error) {
	if cfg.Index == nil {
		return nil, errors.New("console: an index is required")
	}
	if !cfg.NoLogin && cfg.Accounts.Empty() {
		return nil, errors.New("console: no users or tokens: give a users file or a tokens file (or run in loopback dev mode)")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = time.Hour
	}
	if cfg.LoginFailures <= 0 {
		cfg.LoginFailures = 5
	}
	if cfg.LoginWindow <= 0 {
		cfg.LoginWindow = 15 * time.Minute
	}
	if cfg.DefaultRate <= 0 {
		cfg.DefaultRate = dlq.DefaultRate
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, pages: map[string]*template.Template{}, log: cfg.Logger, jobs: map[string]*job{},
		sessions: newSessions(cfg.SessionTTL, cfg.SessionIdle, cfg.Now),
		limit:    newLimiter(cfg.LoginFailures, cfg.LoginWindow, cfg.Now)}
	base, err := template.New("base").Funcs(funcs).ParseFS(templateFS, "web/templates/base.html")
	if err != nil {
		return nil, err
	}
	for _, p := range []string{"login", "error", "overview", "orders", "order", "dlq", "preview", "job", "audit"} {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "web/templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", p, err)
		}
		s.pages[p] = t
	}
	s.routes()
	return s, nil
}

var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		case *time.Time:
			if v == nil || v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		}
		return ""
	},
	"money": func(amount int64, currency string) string {
		if currency == "" {
			return ""
		}
		return integrations.FormatMoney(amount, currency)
	},
	"pct":            func(f float64) string { return fmt.Sprintf("%.1f %%", f*100) },
	"cut":            dlq.Cut,
	"statuses":       func() []string { return FilterStatuses },
	"statusCount":    StatusCount,
	"steps":          func() []string { return processor.Chain },
	"classes":        func() []string { return topics.Classes },
	"letterStatuses": func() []string { return dlq.LetterStatuses },
}

// view is what every page template gets.
type view struct {
	Title, Nav string
	User       *User
	CSRF       string
	NoLogin    bool
	Catching   int64
	Masked     bool
	Error      string
	Page       any
}

func (s *Server) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "web/static")
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("POST /logout", s.authed(s.logout))
	m.HandleFunc("GET /{$}", s.authed(s.overview))
	m.HandleFunc("GET /orders", s.authed(s.orders))
	m.HandleFunc("POST /orders/search", s.authed(s.search))
	m.HandleFunc("GET /orders/{id}", s.authed(s.order))
	m.HandleFunc("GET /orders/{id}/label", s.authed(s.operator(s.label)))
	m.HandleFunc("GET /orders/{id}/customs", s.authed(s.operator(s.customs)))
	m.HandleFunc("POST /orders/{id}/erase", s.authed(s.operator(s.erase)))
	m.HandleFunc("GET /dlq", s.authed(s.letters))
	m.HandleFunc("POST /dlq/replay", s.authed(s.operator(s.replay)))
	m.HandleFunc("GET /dlq/jobs/{id}", s.authed(s.jobPage))
	m.HandleFunc("GET /audit", s.authed(s.audit))
	m.HandleFunc("GET /api/overview", s.authed(s.apiOverview))
	m.HandleFunc("GET /api/index", s.authed(s.apiIndex))
	m.HandleFunc("GET /api/orders", s.authed(s.apiOrders))
	m.HandleFunc("POST /api/orders/search", s.authed(s.apiSearch))
	m.HandleFunc("GET /api/orders/{id}", s.authed(s.apiOrder))
	m.HandleFunc("/", s.authed(func(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
		s.fail(w, r, rc, http.StatusNotFound, "Not found", "There is no page at this address.")
	}))
	s.mux = m
}

// ServeHTTP adds the security headers and serves.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		h.Set("Cache-Control", "no-store")
	}
	start := s.cfg.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	if s.cfg.NoLogin && !loopbackHost(r.Host) {
		// Without login only a loopback name may be asked for: a page of
		// another site whose name was made to resolve to 127.0.0.1 (DNS
		// rebinding) would otherwise be same-origin with the console.
		http.Error(sw, "this console serves without login and answers only to a loopback host name (127.0.0.1, [::1] or localhost)", http.StatusMisdirectedRequest)
	} else {
		s.mux.ServeHTTP(sw, r)
	}
	// The path holds ids only (searches are kept out of URLs); the query
	// string is not logged.
	s.log.Debug("console request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "ms", s.cfg.Now().Sub(start).Milliseconds())
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// reqCtx is who a request is from.
type reqCtx struct {
	user    *User
	sess    *session
	bearer  bool
	remote  string
	catchup int64
}

func (rc *reqCtx) masked() bool { return rc.user == nil || !rc.user.Operator() }

// authed resolves the request's user (a bearer token, a session, or dev
// mode's "dev"), sends everyone else to the login page, and checks the
// CSRF token of every POST that comes with a cookie.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, *reqCtx)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rc := &reqCtx{remote: remoteAddr(r)}
		if s.cfg.Follower != nil {
			if p := s.cfg.Follower.Progress(); p.Known {
				rc.catchup = p.Behind
			}
		}
		// The scheme's name is case-insensitive (RFC 7235): "bearer" is Bearer.
		if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") && !s.cfg.NoLogin {
			u, ok := s.cfg.Accounts.Token(strings.TrimSpace(tok))
			if !ok {
				s.audit1(r.Context(), topics.AuditRecord{Actor: "(bearer token)", Action: topics.AuditLoginFailed, Outcome: topics.AuditDenied, Result: "unknown bearer token", Remote: rc.remote})
				w.Header().Set("WWW-Authenticate", `Bearer realm="orderflow console"`)
				http.Error(w, "unknown bearer token", http.StatusUnauthorized)
				return
			}
			rc.user, rc.bearer = &u, true
			s.serve(h, w, r, rc)
			return
		}
		rc.sess = s.session(r)
		if rc.sess == nil && s.cfg.NoLogin {
			if r.Method == http.MethodPost && jsonAPICall(r) {
				// The CLI's search (orders search --console): no
				// cookie, so no session and no CSRF token to send. A
				// page of another site cannot make a browser send it
				// (a JSON body needs a CORS preflight the console never
				// answers), so it is the dev user's without a token.
				rc.user = &User{Name: "dev", Role: RoleOperator}
				s.serve(h, w, r, rc)
				return
			}
			rc.sess = s.newSession(w, &User{Name: "dev", Role: RoleOperator})
		}
		if rc.sess != nil {
			rc.user = rc.sess.user
		}
		if r.Method == http.MethodPost && !s.csrfOK(r, rc.sess) {
			s.fail(w, r, rc, http.StatusForbidden, "Forbidden", "The form's CSRF token is missing or wrong: reload the page and try again.")
			return
		}
		if rc.user == nil {
			if strings.HasPrefix(r.URL.Path, "/api/") || r.Header.Get("X-Fragment") != "" {
				http.Error(w, "log in first", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		s.serve(h, w, r, rc)
	}
}

// serve runs h for an authenticated request, unless its query string does
// not parse: r.URL.Query() would drop the bad pairs without a word, and a
// filter left out would widen the answer.
func (s *Server) serve(h func(http.ResponseWriter, *http.Request, *reqCtx), w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
		s.fail(w, r, rc, http.StatusBadRequest, "Bad query", "The query string does not parse: "+err.Error())
		return
	}
	h(w, r, rc)
}

// operator refuses viewers.
func (s *Server) operator(h func(http.ResponseWriter, *http.Request, *reqCtx)) func(http.ResponseWriter, *http.Request, *reqCtx) {
	return func(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
		if !rc.user.Operator() {
			s.fail(w, r, rc, http.StatusForbidden, "Forbidden", "Only an operator may do this; you are logged in as a viewer.")
			return
		}
		h(w, r, rc)
	}
}

// loopbackHost reports whether a request's Host names this machine's
// loopback: an IP literal in 127.0.0.0/8 or ::1, or localhost.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// jsonAPICall is a POST to the JSON API that no browser sends for a page
// of another origin: a JSON body (not a CORS-safelisted type, so a
// cross-origin fetch needs a preflight), no Origin but the console's own,
// and no Sec-Fetch-Site saying another site.
func jsonAPICall(r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		return false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

func (s *Server) csrfOK(r *http.Request, sess *session) bool {
	if sess == nil {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	tok := r.PostFormValue("csrf")
	if tok == "" {
		tok = r.Header.Get("X-CSRF-Token")
	}
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(sess.csrf)) == 1
}

func (s *Server) session(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return nil
	}
	return s.sessions.get(c.Value)
}

func (s *Server) newSession(w http.ResponseWriter, u *User) *session {
	ss := s.sessions.create(u)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: ss.id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.cfg.SecureCookies})
	return ss
}

func remoteAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, rc *reqCtx, status int, page, title, nav string, data any) {
	v := view{Title: title, Nav: nav, Page: data, NoLogin: s.cfg.NoLogin}
	if rc != nil {
		v.User, v.Masked = rc.user, rc.masked()
		if rc.sess != nil {
			v.CSRF = rc.sess.csrf
		}
		v.Catching = rc.catchup
	}
	t := s.pages[page]
	name := "base"
	if r.URL.Query().Get("fragment") == "1" {
		switch page {
		case "overview":
			name = "overview-body"
		case "job":
			name = "job-body"
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, name, v); err != nil {
		s.log.Error("console: render failed", "page", page, "err", err)
	}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, rc *reqCtx, status int, title, reason string) {
	if rc != nil && rc.bearer || strings.HasPrefix(r.URL.Path, "/api/") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": reason})
		return
	}
	v := view{Title: title, Error: reason, NoLogin: s.cfg.NoLogin}
	if rc != nil {
		v.User = rc.user
		if rc.sess != nil {
			v.CSRF = rc.sess.csrf
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = s.pages["error"].ExecuteTemplate(w, "base", v)
}

// --- login ---

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.cfg.NoLogin {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	sess := s.session(r)
	if sess != nil && sess.user != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if sess == nil {
		sess = s.newSession(w, nil)
	}
	s.render(w, r, &reqCtx{sess: sess}, http.StatusOK, "login", "Log in", "", nil)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	rc := &reqCtx{remote: remoteAddr(r), sess: s.session(r)}
	if s.cfg.NoLogin {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if !s.csrfOK(r, rc.sess) {
		s.fail(w, r, nil, http.StatusForbidden, "Forbidden", "The login form's CSRF token is missing or wrong: reload the page and try again.")
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if len(name) > 100 {
		name = name[:100]
	}
	ctx := r.Context()
	for _, key := range []string{"addr:" + rc.remote, "name:" + name} {
		if wait := s.limit.blocked(key); wait > 0 {
			s.audit1(ctx, topics.AuditRecord{Actor: name, Action: topics.AuditLoginFailed, Outcome: topics.AuditDenied, Result: "too many failed logins", Remote: rc.remote})
			w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
			s.loginError(w, rc, http.StatusTooManyRequests, fmt.Sprintf("Too many failed logins: try again in %d minute(s).", int(wait.Minutes())+1))
			return
		}
	}
	u, ok := s.cfg.Accounts.Check(name, r.PostFormValue("password"))
	if !ok {
		s.limit.fail("addr:" + rc.remote)
		s.limit.fail("name:" + name)
		s.audit1(ctx, topics.AuditRecord{Actor: name, Action: topics.AuditLoginFailed, Outcome: topics.AuditDenied, Result: "wrong name or password", Remote: rc.remote})
		s.loginError(w, rc, http.StatusUnauthorized, "Wrong name or password.")
		return
	}
	// A new session id at login, so an id planted before it is worthless.
	s.sessions.drop(rc.sess.id)
	s.newSession(w, &u)
	s.audit1(ctx, topics.AuditRecord{Actor: u.Name, Role: u.Role, Action: topics.AuditLogin, Outcome: topics.AuditOK, Remote: rc.remote})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) loginError(w http.ResponseWriter, rc *reqCtx, status int, msg string) {
	v := view{Title: "Log in", Error: msg, CSRF: rc.sess.csrf}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = s.pages["login"].ExecuteTemplate(w, "base", v)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	if rc.sess != nil {
		s.sessions.drop(rc.sess.id)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.cfg.SecureCookies})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// audit1 writes one audit record; a failure is logged (a failed login is
// refused whether or not its record could be written).
func (s *Server) audit1(ctx context.Context, a topics.AuditRecord) {
	if err := s.writeAudit(ctx, a); err != nil {
		s.log.Error("console: audit record not written", "action", a.Action, "err", err)
	}
}

func (s *Server) writeAudit(ctx context.Context, a topics.AuditRecord) error {
	if s.cfg.Auditor == nil {
		return errors.New("no audit log configured")
	}
	if a.ID == "" {
		a.ID = randomString(9)
	}
	if a.At.IsZero() {
		a.At = s.cfg.Now().UTC()
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return s.cfg.Auditor.Audit(actx, a)
}
