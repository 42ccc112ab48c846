package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor/console"
	"github.com/orderflow/orderflow/processor/dlq"
	"github.com/orderflow/orderflow/topics"
	"github.com/orderflow/orderflow/topics/tracing"
)

const consoleUsage = `console [flags]
       console hash-password            read a password, print a users-file line
       console token <name> <role>      make a bearer token, print it and its tokens-file line

Serves the operator console: an overview (orders/s, in flight, the
processors' consumer lag per partition, each step's circuit and error rate,
open dead letters, recent alerts), the orders (newest first, filters by
status, step and time, search by order id, OF- number, email, tracking
number, invoice number or event id), each order's page, the dead letters
(open, replayed, resolved, erased; preview and replay at a rate) and the audit log.

It follows orders, orders.state, orders.dlq and orders.audit as a plain
consumer (no consumer group) and keeps its own index in --index-dir,
resuming from its checkpoints after a restart.

Every page needs a login: --users-file holds name:role:bcrypt-hash lines
(role viewer or operator; viewers see customer data masked and change
nothing), --tokens-file name:role:sha256 lines for automation
("Authorization: Bearer <token>"). --dev-no-login serves without login, on a
loopback address only.`

// consoleConfig configures a console.
type consoleConfig struct {
	Addr             string
	IndexDir         string
	CacheMiB         int
	Group            string
	ProcessorMetrics []string
	LabelDir         string
	UsersFile        string
	TokensFile       string
	TLSCert, TLSKey  string
	SecureCookies    bool
	NoLogin          bool
	PprofAddr        string
	Names            topics.Names
	Kafka            []kgo.Opt
	// Listener, when set, is listened on instead of Addr (dev mode opens
	// it with its other ports, before anything is started).
	Listener net.Listener
	// kafka, when set, bounds the start's wait for Kafka by its --timeout
	// (a notice on stderr meanwhile) and explains a failure as the CLI's
	// reads do; unset (dev mode), the wait is 30 s.
	kafka  *kafkaFlags
	stderr io.Writer
}

// consoleGCPercent is the console's GOGC unless the variable is set.
const consoleGCPercent = 50

func runConsole(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "hash-password":
			return runConsoleHash(args[1:], stdout, stderr)
		case "token":
			return runConsoleToken(args[1:], stdout)
		}
	}
	fs := newFlagSet("console", consoleUsage, stderr)
	var kf kafkaFlags
	kf.register(fs)
	kf.registerTimeout(fs)
	fs.Lookup("timeout").Usage = "give up at start when Kafka has not answered within this long (a `duration` above 0)"
	var c consoleConfig
	var metrics, logFormat, logLevel string
	fs.StringVar(&c.Addr, "http-addr", "127.0.0.1:8070", "listen address of the console")
	fs.StringVar(&c.IndexDir, "index-dir", "console-index", "folder of the console's index (created when missing; rebuilt from the topics when foreign, of an older format or unreadable)")
	fs.IntVar(&c.CacheMiB, "cache-size", 64, "MiB of the index's block cache")
	memLimit := fs.Int("memory-limit", 192, "soft memory limit of the Go runtime in MiB (GOMEMLIMIT wins when set; 0: none): the garbage collector works harder near it")
	fs.StringVar(&c.Group, "group", "orderflow-processor", "the processors' consumer group, for the lag per partition")
	fs.StringVar(&metrics, "processor-metrics", "", "the processors' metrics URLs, comma-separated (http://proc-1:9091): circuit state and call error rates come from them")
	fs.StringVar(&c.LabelDir, "label-dir", "", "the processors' label folder, when this machine can read it: operators download labels (and customs declarations) from order pages")
	fs.StringVar(&c.UsersFile, "users-file", "", "file of name:role:bcrypt-hash lines (make one with 'orderflow console hash-password')")
	fs.StringVar(&c.TokensFile, "tokens-file", "", "file of name:role:sha256-hex lines for bearer tokens (make one with 'orderflow console token')")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate: serve HTTPS (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.BoolVar(&c.SecureCookies, "secure-cookies", false, "mark the session cookie Secure (behind a TLS proxy; implied by --tls-cert)")
	fs.BoolVar(&c.NoLogin, "dev-no-login", false, "serve without login as operator \"dev\" (only on a loopback --http-addr)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "also serve Go's profiler at /debug/pprof/ on this loopback address (127.0.0.1:port), without login; off when empty")
	fs.StringVar(&logFormat, "log-format", "json", "log format: text or json")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("console: unexpected argument %q", fs.Arg(0))
	}
	c.ProcessorMetrics = splitList(metrics)
	c.Names = kf.names()
	opts, err := kf.opts()
	if err != nil {
		return err
	}
	c.Kafka = opts
	c.kafka, c.stderr = &kf, stderr
	if err := c.validate(); err != nil {
		return err
	}
	logger, err := gatewayLogger(stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	if *memLimit < 0 {
		return usagef("--memory-limit must be 0 or more MiB")
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && *memLimit > 0 {
		debug.SetMemoryLimit(int64(*memLimit) << 20)
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		// Most of the console's heap is the index's table of search
		// terms, which holds no pointers: collecting at half the live
		// heap's size again, not all of it, costs the collector little
		// and keeps the peak RSS in bounds (make bench).
		debug.SetGCPercent(consoleGCPercent)
	}
	cs, err := startConsole(ctx, c, logger)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "console at %s (index in %s)\n", cs.URL(), c.IndexDir)
	select {
	case <-ctx.Done():
		return cs.Stop()
	case err := <-cs.Failed():
		// Stopped, not serving a copy that no longer follows: a
		// supervisor restarts it (and a corrupt index is rebuilt then).
		logger.Error("console: stopping", "err", err)
		if serr := cs.Stop(); serr != nil {
			logger.Error("console: stop", "err", serr)
		}
		return fmt.Errorf("console: %w", err)
	}
}

func (c *consoleConfig) validate() error {
	if c.CacheMiB < 1 {
		return usagef("--cache-size must be at least 1 MiB")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	if c.PprofAddr != "" && !isLoopbackAddr(c.PprofAddr) {
		return usagef("--pprof-addr needs a loopback address (127.0.0.1:port), not %q: the profiler has no login", c.PprofAddr)
	}
	for _, m := range c.ProcessorMetrics {
		if u, err := url.Parse(m); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("--processor-metrics: %q is not an http(s) URL with a host (http://proc-1:9091)", m)
		}
	}
	if c.NoLogin {
		if c.UsersFile != "" || c.TokensFile != "" {
			return usagef("--dev-no-login serves without login: it cannot be combined with --users-file or --tokens-file")
		}
		host, _, err := net.SplitHostPort(c.Addr)
		ip := net.ParseIP(host)
		if err != nil || !(host == "localhost" || ip != nil && ip.IsLoopback()) {
			return usagef("--dev-no-login needs a loopback --http-addr (127.0.0.1:port), not %q: outside dev mode every page needs a login", c.Addr)
		}
		return nil
	}
	if c.UsersFile == "" && c.TokensFile == "" {
		return usagef("console: give --users-file or --tokens-file (every page needs a login), or --dev-no-login on loopback")
	}
	return nil
}

func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && (host == "localhost" || ip != nil && ip.IsLoopback())
}

// consoleServer is a running console.
type consoleServer struct {
	log *slog.Logger
	// stopTracing flushes the replay spans still queued.
	stopTracing func()
	ln          net.Listener
	srv         *http.Server
	pprof       *http.Server // --pprof-addr
	tls         bool
	index       *console.Index
	dlq         *dlq.Client
	auditor     *console.KafkaAuditor
	admCl       *kgo.Client
	cancel      context.CancelFunc
	followed    chan error
	failed      chan error // the first failure that leaves the console unable to go on
	follower    *console.Follower
}

// Failed is sent why the console cannot go on, once: its follower stopped
// on an error (the index could not be written), or the index found corrupt
// data while running (marked to be rebuilt at the next start). The pages
// would show a copy that no longer follows the topics.
func (cs *consoleServer) Failed() <-chan error { return cs.failed }

func (cs *consoleServer) fail(err error) {
	select {
	case cs.failed <- err:
	default:
	}
}

// URL is where the console answers.
func (cs *consoleServer) URL() string {
	scheme := "http"
	if cs.tls {
		scheme = "https"
	}
	return scheme + "://" + cs.ln.Addr().String()
}

// startConsole opens the index, starts following the topics and serves.
// Stop it with Stop.
func startConsole(ctx context.Context, c consoleConfig, logger *slog.Logger) (_ *consoleServer, err error) {
	accounts := &console.Accounts{}
	if !c.NoLogin {
		if c.UsersFile != "" {
			if err := accounts.LoadFile(c.UsersFile, accounts.ParseUsers); err != nil {
				return nil, usagef("--users-file: %v", err)
			}
		}
		if c.TokensFile != "" {
			if err := accounts.LoadFile(c.TokensFile, accounts.ParseTokens); err != nil {
				return nil, usagef("--tokens-file: %v", err)
			}
		}
	}
	cs := &consoleServer{log: logger, followed: make(chan error, 1), failed: make(chan error, 1), tls: c.TLSCert != ""}
	defer func() {
		if err != nil {
			cs.Stop()
		}
	}()
	if cs.ln = c.Listener; cs.ln == nil {
		if cs.ln, err = net.Listen("tcp", c.Addr); err != nil {
			return nil, fmt.Errorf("--http-addr: %w", err)
		}
	}
	cs.admCl, err = kgo.NewClient(c.Kafka...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	adm := kadm.NewClient(cs.admCl)
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if c.kafka != nil {
		cancel()
		dctx, cancel = c.kafka.wait(ctx, &c.stderr, "the console's start: the topics' metadata")
	}
	layout, err := console.Discover(dctx, adm, c.Names)
	cancel()
	if err != nil {
		if c.kafka != nil {
			err = c.kafka.explain(err)
		}
		return nil, err
	}
	createTopics := "orderflow topics create"
	if c.kafka != nil {
		createTopics = c.kafka.topicsCommand("create")
	}
	for _, m := range layout.Missing {
		logger.Warn("console: topic missing; run '"+createTopics+"' (no audit log, replays refused until then)", "topic", m)
	}
	var rebuilt string
	cs.index, rebuilt, err = console.OpenIndex(c.IndexDir, layout.Identity, int64(c.CacheMiB)<<20)
	if err != nil {
		return nil, err
	}
	if rebuilt != "" {
		logger.Warn("console: index rebuilt from the topics", "dir", c.IndexDir, "reason", rebuilt)
	}
	cs.follower = console.NewFollower(c.Names, c.Kafka, cs.index, layout, logger)
	fctx, fcancel := context.WithCancel(context.WithoutCancel(ctx))
	cs.cancel = fcancel
	go func() {
		err := cs.follower.Run(fctx)
		if err != nil && fctx.Err() == nil {
			cs.fail(fmt.Errorf("following the topics stopped: %w", err))
		}
		cs.followed <- err
	}()
	go func() {
		select {
		case err := <-cs.index.Corrupt():
			cs.fail(fmt.Errorf("the index in %s is corrupt (%v); it is rebuilt from the topics at the next start", c.IndexDir, err))
		case <-fctx.Done():
		}
	}()

	if cs.dlq, err = dlq.New(c.Names, c.Kafka); err == nil {
		// Replays from the console are traced as the CLI's.
		var tr *tracing.Tracing
		tr, cs.stopTracing, err = startTracing(ctx, "orderflow-console", logger)
		cs.dlq.SetTracing(tr)
	}
	if err != nil {
		return nil, err
	}
	cfg := console.Config{Index: cs.index, Follower: cs.follower, Replayer: cs.dlq, States: cs.dlq, Eraser: cs.dlq, Names: c.Names, Accounts: accounts,
		NoLogin: c.NoLogin, SecureCookies: c.SecureCookies || cs.tls, LabelDir: c.LabelDir, Logger: logger, CreateTopics: createTopics,
		Observer: console.NewObserver(cs.index, cs.follower, adm, c.Names, c.Group, c.ProcessorMetrics)}
	if len(layout.Missing) == 0 {
		if cs.auditor, err = console.NewKafkaAuditor(c.Kafka, c.Names.Audit); err != nil {
			return nil, err
		}
		cfg.Auditor = cs.auditor
	}
	h, err := console.New(cfg)
	if err != nil {
		return nil, usagef("%v", err)
	}
	cs.srv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second, WriteTimeout: 60 * time.Second,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go func() {
		var err error
		if cs.tls {
			err = cs.srv.ServeTLS(cs.ln, c.TLSCert, c.TLSKey)
		} else {
			err = cs.srv.Serve(cs.ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("console: http server failed", "err", err)
		}
	}()
	if c.PprofAddr != "" {
		pln, err := net.Listen("tcp", c.PprofAddr)
		if err != nil {
			return nil, fmt.Errorf("--pprof-addr: %w", err)
		}
		mux := http.NewServeMux()
		servePprof(mux)
		cs.pprof = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = cs.pprof.Serve(pln) }()
	}
	logger.Info("console started", "addr", cs.ln.Addr().String(), "index_dir", c.IndexDir)
	return cs, nil
}

// Stop stops serving, stops following and closes the index (its data and
// checkpoints flushed, so the next start resumes there).
func (cs *consoleServer) Stop() error {
	var errs []error
	if cs.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = cs.srv.Shutdown(ctx)
		cancel()
	} else if cs.ln != nil {
		cs.ln.Close()
	}
	if cs.pprof != nil {
		cs.pprof.Close()
	}
	if cs.cancel != nil {
		cs.cancel()
		if err := <-cs.followed; err != nil {
			errs = append(errs, fmt.Errorf("console follower: %w", err))
		}
	}
	if cs.index != nil {
		if err := cs.index.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if cs.dlq != nil {
		cs.dlq.Close()
	}
	if cs.stopTracing != nil {
		cs.stopTracing()
	}
	if cs.auditor != nil {
		cs.auditor.Close()
	}
	if cs.admCl != nil {
		cs.admCl.Close()
	}
	return errors.Join(errs...)
}

const consoleHashUsage = `console hash-password [flags]

Reads a password from standard input (at least 8 characters) and prints
the users-file line of --name and --role with its bcrypt hash.`

const consoleTokenUsage = `console token <name> <role>

Makes a bearer token for automation (role viewer or operator) and prints it
once, with its tokens-file line (name:role:sha256).`

func runConsoleHash(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("console hash-password", consoleHashUsage, stdout) // --help on stdout
	name := fs.String("name", "", "user name for the printed line")
	role := fs.String("role", console.RoleViewer, "role for the printed line: viewer or operator")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("console hash-password: unexpected argument %q", fs.Arg(0))
	}
	if *role != console.RoleViewer && *role != console.RoleOperator {
		return usagef("--role %q: want viewer or operator", *role)
	}
	if *name == "" || strings.ContainsAny(*name, ": \t") {
		return usagef("--name: want a user name without ':' or spaces")
	}
	if stdinIsTerminal() {
		fmt.Fprint(stderr, "Password (shown as you type; or pipe it in): ")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return usagef("console hash-password: no password on standard input")
	}
	h, err := console.HashPassword(strings.TrimRight(line, "\r\n"))
	if err != nil {
		return usagef("console hash-password: %v", err)
	}
	fmt.Fprintf(stdout, "%s:%s:%s\n", *name, *role, h)
	return nil
}

func runConsoleToken(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("orderflow console token", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintf(stdout, "Usage: orderflow %s\n", consoleTokenUsage) }
	if err := parseQuiet(fs, args); err != nil {
		return err
	}
	args = fs.Args()
	if len(args) != 2 {
		return usagef("console token: want <name> <role>")
	}
	if args[1] != console.RoleViewer && args[1] != console.RoleOperator {
		return usagef("console token: role %q: want viewer or operator", args[1])
	}
	if args[0] == "" || strings.ContainsAny(args[0], ": \t") {
		return usagef("console token: want a name without ':' or spaces")
	}
	tok, hash := console.NewToken()
	fmt.Fprintf(stdout, "token (give it as Authorization: Bearer; shown once): %s\ntokens-file line: %s:%s:%s\n", tok, args[0], args[1], hash)
	return nil
}
