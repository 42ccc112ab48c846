package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/console"
	"github.com/orderflow/orderflow/processor/dlq"
)

const ordersListUsage = `orders list [--status s] [--step s] [--since t] [--until t] [--limit n] [--json] [--console URL]
       orders search <term> [the same flags]

  list    orders newest first by creation, filtered by status (completed,
          in_progress, waiting, dead_lettered, parked, refunded,
          possible_duplicate, awaiting_payment, payment_failed, erased;
          in_progress includes waiting, dead_lettered includes parked,
          refunded includes the orders refunded after shipping or in part,
          which went on: flagged refunded_after_shipping or
          partially_refunded),
          by current step and by creation time (--since/--until: 2h, 7d or
          RFC 3339)
  search  the orders whose id, OF- number, customer email, tracking number,
          invoice number or event id is <term>, with the same filters

With --console (or ORDERFLOW_CONSOLE) they ask a running console's index
(fast, with --console-token-file for its bearer token). Without it they read
the whole orders.state topic and filter in memory: the same filters, slower
on a large topic, and no event ids but those the states list. The table
holds no customer data; --json masks it unless --reveal.`

// consoleFlags name a running console for the commands that can use its
// index.
type consoleFlags struct {
	url, tokenFile string
}

func (c *consoleFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "console", "", "URL of a running console (http://127.0.0.1:8070): use its index instead of reading orders.state")
	fs.StringVar(&c.tokenFile, "console-token-file", "", "file holding the console's bearer token (or set ORDERFLOW_CONSOLE_TOKEN)")
}

func runOrdersList(ctx context.Context, search bool, args []string, stdout, stderr io.Writer) (err error) {
	name := "orders list"
	if search {
		name = "orders search"
	}
	fs := newFlagSet(name, ordersListUsage, stderr)
	var kf kafkaFlags
	defer func() { err = kf.explain(err) }()
	kf.register(fs)
	kf.registerTimeout(fs)
	fs.Lookup("timeout").Usage = "give up when Kafka, or the --console, has not answered within this long (a `duration` above 0)"
	var cf consoleFlags
	cf.register(fs)
	status := fs.String("status", "", "only orders of these statuses (comma-separated)")
	step := fs.String("step", "", "only orders at these steps (comma-separated)")
	since := fs.String("since", "", "only orders created at or after this time (2h, 7d or RFC 3339)")
	until := fs.String("until", "", "only orders created before this time")
	limit := fs.Int("limit", 50, "most orders printed (1 to 1000)")
	asJSON := fs.Bool("json", false, "print the orders as JSON (customer data masked unless --reveal)")
	reveal := fs.Bool("reveal", false, "with --json, show customer data (a console shows it to operator tokens only)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	term := ""
	switch {
	case search && len(pos) != 1:
		return usagef("orders search: want one search term")
	case search:
		term = strings.TrimSpace(pos[0])
		if term == "" {
			return usagef("orders search: the search term is empty")
		}
	case len(pos) > 0:
		return usagef("orders list: unexpected argument %q", pos[0])
	}
	if *limit < 1 || *limit > 1000 {
		return usagef("--limit must be from 1 to 1000")
	}
	steps, err := stepFilter(*step)
	if err != nil {
		return err
	}
	v := url.Values{"status": splitList(*status), "step": steps}
	v.Set("since", *since)
	v.Set("until", *until)
	q, err := console.ParseQuery(v, time.Now())
	if err != nil {
		return usagef("%s", strings.TrimPrefix(err.Error(), console.ErrBadQuery.Error()+": "))
	}
	q.Term = term
	var orders []console.Summary
	matched := -1 // unknown from a console
	if cf.url != "" {
		orders, err = consoleOrders(ctx, cf, q, v, *limit, kf.timeout)
	} else {
		wctx, stop := kf.wait(ctx, &stderr, "reading "+kf.names().State)
		orders, matched, err = scanOrders(wctx, &kf, q, *limit, stderr)
		stop()
	}
	if err == nil && len(orders) == *limit && matched != len(orders) {
		// More may match: say so, and how to see the older ones.
		more := "more may match"
		if matched > 0 {
			more = fmt.Sprintf("%d match", matched)
		}
		fmt.Fprintf(stderr, "the newest %d shown (--limit, at most 1000); %s: for older ones add --until %s (orders created before the last one shown)\n",
			len(orders), more, orders[len(orders)-1].Created.UTC().Format(time.RFC3339Nano))
	}
	if err != nil {
		return err
	}
	if *asJSON {
		if !*reveal {
			for i := range orders {
				if orders[i].Email != "" {
					orders[i].Email = dlq.Masked
				}
				if orders[i].Name != "" {
					orders[i].Name = dlq.Masked
				}
			}
		}
		if orders == nil {
			orders = []console.Summary{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(orders)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER\tNUMBER\tSTATUS\tSTEP\tCREATED\tAMOUNT\tFLAGS")
	for _, o := range orders {
		amount := "-"
		if o.Currency != "" {
			amount = integrations.FormatMoney(o.Amount, o.Currency)
		}
		flags := strings.Join(o.Flags, ",")
		if flags == "" {
			flags = "-"
		}
		step := o.Step
		if step == "" {
			step = "-" // none current (a console's JSON leaves it out)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.ID, o.Number, o.Status, step, o.Created.UTC().Format(time.RFC3339), amount, flags)
	}
	_ = tw.Flush()
	fmt.Fprintf(stdout, "%d order(s)\n", len(orders))
	return nil
}

// consoleOrders asks a console's JSON API; a search term goes in the body,
// never in the URL.
func consoleOrders(ctx context.Context, cf consoleFlags, q console.Query, v url.Values, limit int, timeout time.Duration) ([]console.Summary, error) {
	base, err := url.Parse(strings.TrimRight(cf.url, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, usagef("--console %q: want http://host:port or https://host:port", cf.url)
	}
	token, err := secretFromFileOrEnv(cf.tokenFile, "ORDERFLOW_CONSOLE_TOKEN")
	if err != nil {
		return nil, usagef("--console-token-file: %v", err)
	}
	var req *http.Request
	if q.Term != "" {
		body, _ := json.Marshal(console.SearchRequest{Term: q.Term, Statuses: v["status"], Steps: v["step"], Since: v.Get("since"), Until: v.Get("until"), Limit: limit})
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, base.String()+"/api/orders/search", bytes.NewReader(body))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	} else {
		v.Set("limit", strconv.Itoa(limit))
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, base.String()+"/api/orders?"+v.Encode(), nil)
	}
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
		return nil, fmt.Errorf("no answer from the console at %s within --timeout %s", base.Host, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("console %s: %w", base.Host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(b, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		if resp.StatusCode == http.StatusUnauthorized {
			return nil, fmt.Errorf("console %s: %s (give its bearer token with --console-token-file)", base.Host, e.Error)
		}
		return nil, fmt.Errorf("console %s answered %d: %s", base.Host, resp.StatusCode, e.Error)
	}
	var page console.APIPage
	if err := json.Unmarshal(b, &page); err != nil {
		return nil, fmt.Errorf("console %s: unreadable answer: %w", base.Host, err)
	}
	return page.Orders, nil
}

// scanOrders reads the whole orders.state topic and filters in memory, with
// the console's own filter and search matching.
func scanOrders(ctx context.Context, kf *kafkaFlags, q console.Query, limit int, stderr io.Writer) ([]console.Summary, int, error) {
	c, err := dlqClient(kf)
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	latest := map[string]*console.Summary{}
	records := 0
	skipped, err := c.EachDigest(ctx, func(key string, d *processor.Digest) {
		records++
		if d == nil {
			delete(latest, key)
			return
		}
		s := console.SummaryFromDigest(d)
		latest[key] = &s
	})
	if err != nil {
		return nil, 0, err
	}
	var out []console.Summary
	for _, s := range latest {
		if q.Match(s) && console.MatchTerm(q.Term, s) {
			out = append(out, *s)
		}
	}
	slices.SortFunc(out, func(a, b console.Summary) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	matched := len(out)
	if len(out) > limit {
		out = out[:limit]
	}
	note := fmt.Sprintf("(no --console: read %d record(s) of %s, %d order(s)", records, c.Names().State, len(latest))
	if skipped > 0 {
		note += fmt.Sprintf(", %d unreadable skipped", skipped)
	}
	fmt.Fprintln(stderr, note+")")
	return out, matched, nil
}

// resolveOrderRefs replaces OF- numbers among refs with the order ids they
// name, reading the keys of orders.state.
func resolveOrderRefs(ctx context.Context, c *dlq.Client, refs []string) ([]string, error) {
	var numbers []string
	for _, r := range refs {
		if dlq.IsOrderNumber(r) {
			numbers = append(numbers, r)
		}
	}
	if len(numbers) == 0 {
		return refs, nil
	}
	ids, err := c.ResolveNumbers(ctx, numbers)
	if errors.Is(err, dlq.ErrBadOrderRef) {
		return nil, errors.New(strings.TrimPrefix(err.Error(), dlq.ErrBadOrderRef.Error()+": "))
	}
	if err != nil {
		return nil, err
	}
	out := make([]string, len(refs))
	for i, r := range refs {
		if id, ok := ids[r]; ok {
			out[i] = id
		} else {
			out[i] = r
		}
	}
	return out, nil
}
