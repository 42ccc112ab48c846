package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/orderflow/orderflow/topics"
)

// defaultBrokers is --brokers when not given: the broker 'orderflow dev'
// starts.
const defaultBrokers = "127.0.0.1:9092"

// kafkaFlags are the connection flags every Kafka-using command shares.
type kafkaFlags struct {
	brokers      string
	prefix       string
	tls          bool
	tlsCA        string
	saslMech     string
	saslUser     string
	saslPassFile string
	// timeout bounds a command that reads and ends (registerTimeout);
	// deadline is the context wait made, release ends its bound.
	timeout  time.Duration
	deadline context.Context
	release  func()
}

func (k *kafkaFlags) register(fs *flag.FlagSet) {
	k.brokers = defaultBrokers
	fs.Var(checkedString{&k.brokers, checkBrokers}, "brokers", "Kafka bootstrap brokers, comma-separated `host:port` (port 1 to 65535)")
	fs.Var(checkedString{&k.prefix, checkTopicPrefix}, "topic-prefix", "`prefix` of every topic name (\"shop1.\" gives shop1.orders): letters, digits, '.', '_' and '-', short enough for the longest name to fit Kafka's 249 characters")
	fs.BoolVar(&k.tls, "kafka-tls", false, "connect to Kafka over TLS")
	fs.StringVar(&k.tlsCA, "kafka-tls-ca", "", "PEM file of CAs to trust for Kafka TLS (default: system roots)")
	fs.StringVar(&k.saslMech, "kafka-sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)")
	fs.StringVar(&k.saslUser, "kafka-sasl-user", "", "SASL user name")
	fs.StringVar(&k.saslPassFile, "kafka-sasl-password-file", "", "file holding the SASL password (or set ORDERFLOW_KAFKA_SASL_PASSWORD)")
}

func (k *kafkaFlags) names() topics.Names { return topics.New(k.prefix) }

func (k *kafkaFlags) seeds() ([]string, error) {
	if err := checkBrokers(k.brokers); err != nil {
		return nil, usagef("--brokers %q: %v", k.brokers, err)
	}
	return splitList(k.brokers), nil
}

// checkedString is a string flag whose value check refuses before it is
// set, so a bad value, on the command line or in the environment, is a
// usage error naming the flag, whatever command takes it.
type checkedString struct {
	s     *string
	check func(string) error
}

func (c checkedString) String() string {
	if c.s == nil {
		return ""
	}
	return *c.s
}

func (c checkedString) Set(v string) error {
	if err := c.check(v); err != nil {
		return err
	}
	*c.s = v
	return nil
}

// checkBrokers checks a --brokers list: at least one broker, each
// host:port with a host name or IP address and a port from 1 to 65535.
func checkBrokers(list string) error {
	seeds := splitList(list)
	if len(seeds) == 0 {
		return errors.New("no broker: want host:port, comma-separated")
	}
	for _, b := range seeds {
		if err := checkHostPort("broker", b); err != nil {
			return err
		}
	}
	return nil
}

// checkHostPort checks one host:port address; what names it in the error
// ("broker").
func checkHostPort(what, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q is not host:port", what, addr)
	}
	if !validHost(host) {
		return fmt.Errorf("%s %q: %q is not a host name or IP address", what, addr, host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%s %q: port %q is not a number from 1 to 65535", what, addr, port)
	}
	return nil
}

// checkRedisAddr checks a --redis-addr: empty (no Redis) or host:port.
// Without the check an address lacking its port would be taken, and every
// connection to it fail for as long as the command runs.
func checkRedisAddr(addr string) error {
	if addr == "" {
		return nil
	}
	return checkHostPort("Redis address", addr)
}

// validHost reports whether h is an IP address or a host name (letters,
// digits, '-', '_' and '.').
func validHost(h string) bool {
	if h == "" {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// maxTopicName is the longest topic name Kafka accepts.
const maxTopicName = 249

// checkTopicPrefix checks a --topic-prefix: only the characters Kafka
// allows in a topic name, and short enough that every topic name made from
// it (the longest suffix included) fits Kafka's limit.
func checkTopicPrefix(p string) error {
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q is not allowed in a topic name (letters, digits, '.', '_' and '-')", r)
		}
	}
	n := topics.New(p)
	for _, name := range []string{n.Orders, n.State, n.DLQ, n.Audit} {
		if len(name) > maxTopicName {
			return fmt.Errorf("%d characters is too long: with the suffix %s a topic name would be %d characters, Kafka allows %d", len(p), strings.TrimPrefix(name, p), len(name), maxTopicName)
		}
	}
	return nil
}

// opts returns the client options for the connection flags.
func (k *kafkaFlags) opts() ([]kgo.Opt, error) {
	seeds, err := k.seeds()
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	if k.tls || k.tlsCA != "" {
		cfg, err := tlsConfig(k.tlsCA)
		if err != nil {
			return nil, usagef("--kafka-tls-ca: %v", err)
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if k.saslMech != "" {
		pass, err := secretFromFileOrEnv(k.saslPassFile, "ORDERFLOW_KAFKA_SASL_PASSWORD")
		if err != nil {
			return nil, usagef("--kafka-sasl-password-file: %v", err)
		}
		switch strings.ToUpper(k.saslMech) {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return nil, usagef("--kafka-sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.saslMech)
		}
		var missing []string
		if k.saslUser == "" {
			missing = append(missing, "--kafka-sasl-user")
		}
		if pass == "" {
			missing = append(missing, "a password (--kafka-sasl-password-file or ORDERFLOW_KAFKA_SASL_PASSWORD)")
		}
		if len(missing) > 0 {
			return nil, usagef("--kafka-sasl-mechanism %s needs %s", k.saslMech, strings.Join(missing, " and "))
		}
		switch strings.ToUpper(k.saslMech) {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: k.saslUser, Pass: pass}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: k.saslUser, Pass: pass}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: k.saslUser, Pass: pass}.AsSha512Mechanism()))
		default:
			return nil, usagef("--kafka-sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.saslMech)
		}
	}
	return opts, nil
}

// tlsConfig is a TLS 1.2+ client configuration trusting the CAs in caFile,
// or the system roots when caFile is empty.
func tlsConfig(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// secretFromFileOrEnv reads a secret from a file (trailing newline removed)
// or, when no file is named, from an environment variable.
func secretFromFileOrEnv(file, env string) (string, error) {
	if file == "" {
		return os.Getenv(env), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// servePprof adds Go's profiler to a metrics listener (--pprof): never on
// the webhook listener. Not /debug/pprof/cmdline: the command line may
// hold a secret (--webhook-secret), and the listener has no login.
func servePprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/debug/pprof/cmdline" {
			http.NotFound(w, r)
			return
		}
		pprof.Index(w, r)
	})
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// defaultKafkaTimeout bounds a command that reads from Kafka and ends.
const defaultKafkaTimeout = 15 * time.Second

// registerTimeout adds --timeout to a command that reads from Kafka and
// ends (dlq list|show, orders show|list|search, topics), or to the reads
// before a command acts (orders erase, dlq replay).
func (k *kafkaFlags) registerTimeout(fs *flag.FlagSet) {
	positiveDurationVar(fs, &k.timeout, "timeout", defaultKafkaTimeout, "give up when Kafka has not answered within this long (a `duration` above 0)")
}

// positiveDuration is a duration flag that refuses 0 and negative values.
type positiveDuration struct{ d *time.Duration }

func (p positiveDuration) String() string {
	if p.d == nil {
		return ""
	}
	return p.d.String()
}

func (p positiveDuration) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("parse error")
	}
	if d <= 0 {
		return errors.New("must be positive")
	}
	*p.d = d
	return nil
}

// positiveDurationVar adds a duration flag that must be more than 0.
func positiveDurationVar(fs *flag.FlagSet, d *time.Duration, name string, value time.Duration, usage string) {
	*d = value
	fs.Var(positiveDuration{d}, name, usage)
}

// wait bounds ctx by --timeout and, when Kafka is slow to answer, says on
// *stderr what the command waits for. It replaces *stderr with a writer
// that shares the notice's lock, so the command's own messages and the
// notice never write at once. Call stop when done, and pass the command's
// error through explain. A command that reads and then acts for as long
// as it takes (a replay at its rate) calls k.release once the reads are
// done: ctx is then no longer bounded.
func (k *kafkaFlags) wait(ctx context.Context, stderr *io.Writer, what string) (context.Context, func()) {
	if k.timeout <= 0 { // a command without --timeout (registerTimeout refuses 0)
		k.timeout = defaultKafkaTimeout
	}
	ctx, cancel := context.WithCancelCause(ctx)
	bound := time.AfterFunc(k.timeout, func() { cancel(context.DeadlineExceeded) })
	k.deadline = ctx
	notice := min(time.Second, k.timeout/2)
	lw := &lockedWriter{w: *stderr}
	*stderr = lw
	stopped := false // the notice is never written after stop returns
	t := time.AfterFunc(notice, func() {
		lw.mu.Lock()
		defer lw.mu.Unlock()
		if !stopped {
			fmt.Fprintf(lw.w, "orderflow: waiting for Kafka at %s to answer (%s); giving up after --timeout %s\n", k.brokers, what, k.timeout)
		}
	})
	k.release = func() {
		bound.Stop()
		lw.mu.Lock()
		stopped = true
		lw.mu.Unlock()
		t.Stop()
	}
	return ctx, func() {
		k.release()
		cancel(context.Canceled)
	}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// topicsCommand is the topics command (create or check) to run with the
// connection flags this command was given, so that it works as printed:
// --brokers when not the default, --topic-prefix when set, and the TLS and
// SASL settings (never a secret: the password stays in its file or
// variable).
func (k *kafkaFlags) topicsCommand(sub string) string {
	cmd := "orderflow topics " + sub
	if k.brokers != "" && k.brokers != defaultBrokers {
		cmd += " --brokers " + k.brokers
	}
	if k.prefix != "" {
		cmd += " --topic-prefix " + k.prefix
	}
	if k.tls {
		cmd += " --kafka-tls"
	}
	for _, f := range []struct{ name, value string }{
		{"kafka-tls-ca", k.tlsCA}, {"kafka-sasl-mechanism", k.saslMech},
		{"kafka-sasl-user", k.saslUser}, {"kafka-sasl-password-file", k.saslPassFile},
	} {
		if f.value != "" {
			cmd += " --" + f.name + " " + shellWord(f.value)
		}
	}
	return cmd
}

// shellWord is s as one word of a shell command: as it is when it has
// only characters no shell treats specially, else double-quoted.
func shellWord(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@,+=", r)) {
			return strconv.Quote(s)
		}
	}
	return s
}

// topicsHint is the "(run 'orderflow topics create')" (or check) that the
// packages put in an error about a missing or misshapen topic.
var topicsHint = regexp.MustCompile(`\(run 'orderflow topics (create|check)'\)`)

// hintedError is an error whose message names the command to run with
// this command's connection flags; it unwraps to the original.
type hintedError struct {
	msg string
	err error
}

func (e hintedError) Error() string { return e.msg }
func (e hintedError) Unwrap() error { return e.err }

// withTopicsHint gives the topics command an error suggests the
// connection flags this command was given (topicsCommand): a topic found
// missing under --topic-prefix shop1. is created by a topics create with
// that prefix, not without.
func (k *kafkaFlags) withTopicsHint(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	out := topicsHint.ReplaceAllStringFunc(msg, func(m string) string {
		return "(run '" + k.topicsCommand(topicsHint.FindStringSubmatch(m)[1]) + "')"
	})
	if out == msg {
		return err
	}
	return hintedError{msg: out, err: err}
}

// explain turns the error of a command bounded by wait into one that says
// what went wrong at Kafka and what to check.
func (k *kafkaFlags) explain(err error) error {
	err = k.withTopicsHint(err)
	if err == nil || k.deadline == nil {
		return err
	}
	var ue usageError
	if errors.As(err, &ue) {
		return err
	}
	if errors.Is(err, kerr.IllegalSaslState) || errors.Is(err, kerr.UnsupportedSaslMechanism) {
		return fmt.Errorf("%w: Kafka at %s does not take this SASL login; is SASL misconfigured? Check --kafka-sasl-mechanism against the listener's (a broker without SASL wants none) and --kafka-tls", err, k.brokers)
	}
	if de := (*net.DNSError)(nil); errors.As(err, &de) && de.IsNotFound {
		return fmt.Errorf("Kafka at %s: the host %s is not known (no such host). Check --brokers: a name such as kafka resolves only where it is defined (inside its compose network or cluster); from this machine use an address it can resolve, e.g. 127.0.0.1:9092 for make run", k.brokers, de.Name)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("Kafka at %s refused the connection: nothing listens there. Start it (make run starts one at %s) or point --brokers at it", k.brokers, devDefaultKafkaAddr)
	}
	if errors.Is(context.Cause(k.deadline), context.DeadlineExceeded) {
		return fmt.Errorf("no answer from Kafka at %s within --timeout %s: something accepts connections there but does not answer as a Kafka broker. Check --brokers (the broker's port, not another service's), whether the broker is still starting, and TLS or SASL (--kafka-tls, --kafka-sasl-mechanism) if the cluster needs them", k.brokers, k.timeout)
	}
	return err
}
