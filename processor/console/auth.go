package console

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Roles. A viewer sees everything with customer data masked and changes
// nothing; an operator also sees customer data, downloads labels and
// replays dead letters.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
)

// User is who a request acts as.
type User struct {
	Name string
	Role string
}

// Operator reports whether the user may act.
func (u User) Operator() bool { return u.Role == RoleOperator }

type account struct {
	role string
	hash []byte
}

// Accounts are the people and tokens that may log in.
type Accounts struct {
	users  map[string]account
	tokens map[[sha256.Size]byte]User
}

// Empty reports whether no user and no token is configured.
func (a *Accounts) Empty() bool { return a == nil || len(a.users) == 0 && len(a.tokens) == 0 }

// ErrBadAccounts wraps every error in a users or tokens file.
var ErrBadAccounts = errors.New("console: bad accounts file")

// ParseUsers reads a users file: one "name:role:bcrypt-hash" a line (role
// viewer or operator), blank lines and lines starting with # ignored.
// `orderflow console hash-password` prints such a line.
func (a *Accounts) ParseUsers(r io.Reader) error {
	if a.users == nil {
		a.users = map[string]account{}
	}
	return parseLines(r, func(n int, f []string) error {
		if len(f) != 3 {
			return fmt.Errorf("%w: line %d: want name:role:bcrypt-hash", ErrBadAccounts, n)
		}
		name, role, hash := f[0], f[1], f[2]
		if err := checkNameRole(name, role); err != nil {
			return fmt.Errorf("%w: line %d: %v", ErrBadAccounts, n, err)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return fmt.Errorf("%w: line %d: the hash of %s is not a bcrypt hash", ErrBadAccounts, n, name)
		}
		if _, dup := a.users[name]; dup {
			return fmt.Errorf("%w: line %d: user %s appears twice", ErrBadAccounts, n, name)
		}
		a.users[name] = account{role: role, hash: []byte(hash)}
		return nil
	})
}

// ParseTokens reads a tokens file for automation: one
// "name:role:sha256-hex-of-the-token" a line. `orderflow console token`
// makes a token and prints its line. A request shows the token as
// "Authorization: Bearer <token>".
func (a *Accounts) ParseTokens(r io.Reader) error {
	if a.tokens == nil {
		a.tokens = map[[sha256.Size]byte]User{}
	}
	return parseLines(r, func(n int, f []string) error {
		if len(f) != 3 {
			return fmt.Errorf("%w: line %d: want name:role:sha256-hex", ErrBadAccounts, n)
		}
		if err := checkNameRole(f[0], f[1]); err != nil {
			return fmt.Errorf("%w: line %d: %v", ErrBadAccounts, n, err)
		}
		raw, err := hex.DecodeString(f[2])
		if err != nil || len(raw) != sha256.Size {
			return fmt.Errorf("%w: line %d: the token hash of %s is not 64 hex digits", ErrBadAccounts, n, f[0])
		}
		a.tokens[[sha256.Size]byte(raw)] = User{Name: f[0], Role: f[1]}
		return nil
	})
}

// LoadFile parses a users or tokens file.
func (a *Accounts) LoadFile(path string, parse func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadAccounts, err)
	}
	defer f.Close()
	if err := parse(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func parseLines(r io.Reader, fn func(n int, fields []string) error) error {
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := fn(n, strings.SplitN(line, ":", 3)); err != nil {
			return err
		}
	}
	return sc.Err()
}

func checkNameRole(name, role string) error {
	if name == "" || strings.ContainsAny(name, " \t") {
		return errors.New("empty name or a name with spaces")
	}
	if role != RoleViewer && role != RoleOperator {
		return fmt.Errorf("role %q: want viewer or operator", role)
	}
	return nil
}

// dummyHash is compared against for an unknown user, so a login takes as
// long whether or not the user exists.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("orderflow-no-such-user"), bcrypt.DefaultCost)

// Check returns the user for a name and password.
func (a *Accounts) Check(name, password string) (User, bool) {
	acc, ok := a.users[name]
	hash := acc.hash
	if !ok {
		hash = dummyHash
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !ok {
		return User{}, false
	}
	return User{Name: name, Role: acc.role}, true
}

// Token returns the user of a bearer token.
func (a *Accounts) Token(token string) (User, bool) {
	if token == "" {
		return User{}, false
	}
	sum := sha256.Sum256([]byte(token))
	for h, u := range a.tokens {
		if subtle.ConstantTimeCompare(h[:], sum[:]) == 1 {
			return u, true
		}
	}
	return User{}, false
}

// HashPassword returns a users-file hash of password (bcrypt).
func HashPassword(password string) (string, error) {
	if len(password) < 8 {
		return "", errors.New("a password needs at least 8 characters")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(h), err
}

// NewToken returns a random bearer token and the hex SHA-256 a tokens file
// keeps of it.
func NewToken() (token, hash string) {
	token = "ofc_" + randomString(32)
	sum := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(sum[:])
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// session is one browser's: before login it only carries the CSRF token.
type session struct {
	id      string
	csrf    string
	user    *User
	created time.Time
	seen    time.Time
	// searches are search terms kept out of URLs: a search redirects to
	// /orders?s=<handle>.
	searches map[string]string
}

// sessions are kept in memory: a restart of the console logs everyone out.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
	ttl  time.Duration
	idle time.Duration
	now  func() time.Time
}

func newSessions(ttl, idle time.Duration, now func() time.Time) *sessions {
	return &sessions{byID: map[string]*session{}, ttl: ttl, idle: idle, now: now}
}

func (s *sessions) get(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byID[id]
	if !ok {
		return nil
	}
	now := s.now()
	if now.Sub(ss.created) > s.ttl || now.Sub(ss.seen) > s.idle {
		delete(s.byID, id)
		return nil
	}
	ss.seen = now
	return ss
}

func (s *sessions) create(u *User) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for id, ss := range s.byID { // drop expired ones as new ones come
		if now.Sub(ss.created) > s.ttl || now.Sub(ss.seen) > s.idle {
			delete(s.byID, id)
		}
	}
	ss := &session{id: randomString(32), csrf: randomString(32), user: u, created: now, seen: now, searches: map[string]string{}}
	s.byID[ss.id] = ss
	return ss
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

func (s *sessions) search(ss *session, term string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ss.searches) >= 100 {
		clear(ss.searches)
	}
	h := randomString(9)
	ss.searches[h] = term
	return h
}

func (s *sessions) term(ss *session, handle string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := ss.searches[handle]
	return t, ok
}

// limiter bounds failed logins per key (client address, user name) within
// a window.
type limiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	now    func() time.Time
	fails  map[string][]time.Time
}

func newLimiter(max int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{max: max, window: window, now: now, fails: map[string][]time.Time{}}
}

// blocked returns how long key must wait, 0 when it may try.
func (l *limiter) blocked(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	fs := l.recent(key, now)
	if len(fs) < l.max {
		return 0
	}
	return fs[0].Add(l.window).Sub(now)
}

func (l *limiter) fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.fails[key] = append(l.recent(key, now), now)
	if len(l.fails) > 10000 { // bound the memory an attacker can take
		for k := range l.fails {
			if len(l.recent(k, now)) == 0 {
				delete(l.fails, k)
			}
		}
	}
}

func (l *limiter) recent(key string, now time.Time) []time.Time {
	fs := l.fails[key]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) >= l.window {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(l.fails, key)
	} else {
		l.fails[key] = fs
	}
	return fs
}
