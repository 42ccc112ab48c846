// Package alertbatch turns a burst of operator alerts into a few summary
// messages, for alert channels with tight rate limits (Slack's incoming
// webhooks allow about one message a second, Telegram about twenty a minute
// to a group).
//
// Add only records an alert; a background goroutine hands each closed
// batch, as a Summary, to the channel's send function. A batch closes
// Window after its first alert or when Max alerts are pending, and sends are
// spaced at least MinInterval apart. A Summary keeps counts, the first order
// ids and the distinct reasons per step, so its memory is bounded whatever
// the burst. Close sends what is pending, still MinInterval after the
// previous send (a channel's rate limit holds during a shutdown too), and
// abandons a send still waiting or running FlushTimeout later.
//
// The channel renders the Summary in its own markup and does its own
// retries inside send; a send that fails is logged with counts and the
// first order id only.
package alertbatch

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// Bounds of one Summary; beyond them alerts are only counted.
const (
	MaxSteps   = 10 // distinct steps listed; the rest are grouped as "other"
	MaxOrders  = 10 // order ids listed per step
	MaxReasons = 3  // distinct reasons listed per step
	// MaxOrderReasons: distinct reasons listed of the alerts about orders
	// at no step (refunds, refund failures, disputes): each says what a
	// person must do for its order (an amount to credit, a dispute's due
	// date), so more are listed than of a step's failures.
	MaxOrderReasons = MaxOrders
	MaxReasonLen    = 300 // characters kept of one reason
)

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("alerts: closed")

// Summary is one batch of alerts.
type Summary struct {
	Total      int      // alerts in the batch
	FirstOrder string   // order id of the first alert that had one
	Groups     []*Group // by step, in order of first appearance
	byStep     map[string]*Group
	// first is the group that first counted each order: an order is
	// named there only, with the steps it failed at later in the batch.
	first map[string]*Group
}

// Group is one step's alerts in a batch.
type Group struct {
	Step       string   // the step; "" for alerts about an order at no step (a refund after shipping), "other" past MaxSteps
	Count      int      // alerts at this step
	Orders     []string // the first MaxOrders orders, by OF- number, each once in the whole Summary
	MoreOrders int      // orders beyond Orders
	// Also are the later steps of this batch at which a listed order
	// (by OF- number) failed too.
	Also map[string][]string
	// Earlier counts the orders of this step counted at an earlier step
	// of the batch (named there, or among its MoreOrders).
	Earlier      int
	seen         map[string]bool
	Reasons      []Reason // the first MaxReasons (MaxOrderReasons at no step) distinct reasons
	OtherReasons int      // alerts whose reason is not in Reasons
}

// Reason is one distinct alert text and how many alerts had it.
type Reason struct {
	Text  string // trimmed, at most MaxReasonLen characters (then "…")
	Count int
}

// NewSummary returns an empty Summary.
func NewSummary() *Summary {
	return &Summary{byStep: map[string]*Group{}, first: map[string]*Group{}}
}

// Add counts a in the summary.
func (s *Summary) Add(a integrations.Alert) {
	s.Total++
	if s.FirstOrder == "" {
		s.FirstOrder = a.OrderID
	}
	step := a.Step
	g := s.byStep[step]
	if g == nil {
		if len(s.Groups) >= MaxSteps {
			step = "other"
			g = s.byStep[step]
		}
		if g == nil {
			g = &Group{Step: step}
			s.byStep[step] = g
			s.Groups = append(s.Groups, g)
		}
	}
	g.Count++
	// Each order once in the message, by its OF- number (what a person
	// searches for): at the first step it failed at, with the later ones.
	if a.OrderID != "" && !g.seen[a.OrderID] {
		if g.seen == nil {
			g.seen = map[string]bool{}
		}
		g.seen[a.OrderID] = true
		number := integrations.OrderNumber(a.OrderID)
		switch first := s.first[a.OrderID]; {
		case first != nil:
			g.Earlier++
			if slices.Contains(first.Orders, number) {
				if first.Also == nil {
					first.Also = map[string][]string{}
				}
				first.Also[number] = append(first.Also[number], g.Step)
			}
		case len(g.Orders) < MaxOrders:
			s.first[a.OrderID] = g
			g.Orders = append(g.Orders, number)
		default:
			s.first[a.OrderID] = g
			g.MoreOrders++
		}
	}
	text := Truncate(strings.TrimSpace(a.Text), MaxReasonLen)
	if text == "" {
		return
	}
	for i := range g.Reasons {
		if g.Reasons[i].Text == text {
			g.Reasons[i].Count++
			return
		}
	}
	max := MaxReasons
	if g.Step == "" {
		max = MaxOrderReasons
	}
	if len(g.Reasons) < max {
		g.Reasons = append(g.Reasons, Reason{Text: text, Count: 1})
	} else {
		g.OtherReasons++
	}
}

// Truncate cuts s to n characters, ending in "…" when cut.
func Truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// Config configures a Batcher. Zero values take the defaults.
type Config struct {
	// Window is how long a batch collects after its first alert; default 10s.
	Window time.Duration
	// Max sends the batch early once this many alerts are pending; default 200.
	Max int
	// MinInterval is the least time between two sends; default 1s.
	MinInterval time.Duration
	// FlushTimeout bounds Close's final send; default 30s.
	FlushTimeout time.Duration
	// Logger receives failed sends; default discards.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Window == 0 {
		c.Window = 10 * time.Second
	}
	if c.Max == 0 {
		c.Max = 200
	}
	if c.MinInterval == 0 {
		c.MinInterval = time.Second
	}
	if c.FlushTimeout == 0 {
		c.FlushTimeout = 30 * time.Second
	}
}

// Validate reports a negative setting.
func (c Config) Validate() error {
	if c.Window < 0 || c.MinInterval < 0 || c.FlushTimeout < 0 {
		return errors.New("durations must not be negative")
	}
	if c.Max < 0 {
		return errors.New("batch max must not be negative")
	}
	return nil
}

// Batcher collects alerts and sends them in batches. Create it with New and
// stop it with Close.
type Batcher struct {
	cfg  Config
	send func(context.Context, *Summary) error
	log  *slog.Logger

	mu      sync.Mutex
	pending *Summary
	closed  bool

	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	ctx      context.Context // sends; cancelled FlushTimeout after Close
	cancel   context.CancelFunc
	lastSent time.Time // used by the run goroutine only
}

// New starts a Batcher that calls send with each closed batch, from one
// goroutine, never concurrently.
func New(cfg Config, send func(context.Context, *Summary) error) (*Batcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	b := &Batcher{
		cfg:     cfg,
		send:    send,
		log:     integrations.Logger(cfg.Logger),
		pending: NewSummary(),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	go b.run()
	return b, nil
}

// Add records a for the next batch and returns at once. It fails only after
// Close.
func (b *Batcher) Add(ctx context.Context, a integrations.Alert) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.pending.Add(a)
	n := b.pending.Total
	b.mu.Unlock()
	if n == 1 || n >= b.cfg.Max {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Close stops accepting alerts, sends what is pending and stops the
// goroutine. It is safe to call more than once.
func (b *Batcher) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.stop)
		time.AfterFunc(b.cfg.FlushTimeout, b.cancel)
	}
	b.mu.Unlock()
	<-b.done
	b.cancel()
	return nil
}

func (b *Batcher) run() {
	defer close(b.done)
	for {
		select {
		case <-b.stop:
			b.flush()
			return
		case <-b.wake:
		}
		timer := time.NewTimer(b.cfg.Window)
	collect:
		for !b.full() {
			select {
			case <-timer.C:
				break collect
			case <-b.wake:
			case <-b.stop:
				break collect
			}
		}
		timer.Stop()
		b.flush()
	}
}

func (b *Batcher) full() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pending.Total >= b.cfg.Max
}

func (b *Batcher) flush() {
	b.mu.Lock()
	s := b.pending
	b.pending = NewSummary()
	b.mu.Unlock()
	if s.Total == 0 {
		return
	}
	if wait := time.Until(b.lastSent.Add(b.cfg.MinInterval)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-b.ctx.Done(): // FlushTimeout after Close
		}
		t.Stop()
	}
	err := b.send(b.ctx, s)
	b.lastSent = time.Now()
	if err != nil {
		b.log.Error("alert message not sent", "alerts", s.Total, "first_order_id", s.FirstOrder, "error", err)
	}
}
