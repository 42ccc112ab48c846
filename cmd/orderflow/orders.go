package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/dlq"
)

const ordersUsage = `orders show <order-id | OF-number> [--json] [--reveal]
       orders erase <order-id | OF-number> [--yes] [--wait 1m]
       orders list|search: see 'orderflow orders list --help'

  show   the order's state from orders.state: status, each step with its
         result (deal id, tracking number, label, invoice number, message
         id) or its attempts and last error, flags such as
         possible_duplicate:<step>, replays and the dead letter; --json
         prints the state record (customer data masked unless --reveal).
         It reads the order's partition from its end backwards: the cost is
         what was written after the order last changed.
  erase  erase the order's data from orders.state: asks the processor that
         owns the order (an erase request on orders, run after the order's
         records in flight) to replace the state with an erasure marker
         holding only the order id and the time; compaction then removes
         every earlier value. Later events of the order are ignored with an
         alert. Asks for confirmation unless --yes; waits up to --wait for
         the processor to confirm. Not erased: the order's events on orders
         (kept 7 days), its dead letters (30 days), its shipping label file
         (and a customs declaration's) and what the providers hold.`

func runOrders(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("orders: want 'show <order-id>', 'erase <order-id>', 'list' or 'search <term>' (run 'orderflow orders --help')")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintf(stdout, "Usage: orderflow %s\n", ordersUsage)
		return nil
	case "show":
		return runOrdersShow(ctx, args[1:], stdout, stderr)
	case "erase":
		return runOrdersErase(ctx, args[1:], stdout, stderr)
	case "list", "search":
		return runOrdersList(ctx, args[0] == "search", args[1:], stdout, stderr)
	default:
		return usagef("orders: unknown subcommand %q: want 'show <order-id>', 'erase <order-id>', 'list' or 'search <term>'", args[0])
	}
}

func runOrdersShow(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	var kf kafkaFlags
	defer func() { err = kf.explain(err) }()
	fs := newFlagSet("orders show", ordersUsage, stderr)
	kf.register(fs)
	kf.registerTimeout(fs)
	asJSON := fs.Bool("json", false, "print the state record as JSON")
	reveal := fs.Bool("reveal", false, "with --json, show customer data instead of masking it")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		return usagef("orders show: want one order id")
	}
	if *reveal && !*asJSON {
		return usagef("orders show: --reveal needs --json (the text view shows no customer data)")
	}
	id := pos[0]
	ctx, stop := kf.wait(ctx, &stderr, "reading the order's state")
	defer stop()
	c, err := dlqClient(&kf)
	if err != nil {
		return err
	}
	defer c.Close()
	if ids, err := resolveOrderRefs(ctx, c, []string{id}); err != nil {
		return err
	} else {
		id = ids[0]
	}
	st, err := c.OrderState(ctx, id)
	if errors.Is(err, dlq.ErrOrderNotFound) {
		return fmt.Errorf("order %s not found on %s", id, c.Names().State)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := dlq.MaskState(st, *reveal)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", dlq.Indent(b))
		return err
	}
	dlq.WriteOrder(stdout, st)
	return nil
}

func runOrdersErase(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("orders erase", ordersUsage, stderr)
	var kf kafkaFlags
	defer func() { err = kf.explain(err) }()
	kf.register(fs)
	kf.registerTimeout(fs)
	yes := fs.Bool("yes", false, "erase without asking for confirmation")
	wait := fs.Duration("wait", time.Minute, "how long to wait for the processor to confirm the erasure (0: do not wait)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		return usagef("orders erase: want one order id")
	}
	if *wait < 0 {
		return usagef("orders erase: --wait must be >= 0")
	}
	if !*yes && !stdinIsTerminal() {
		return usagef("orders erase: not on a terminal, cannot ask for confirmation: pass --yes")
	}
	id := pos[0]
	c, err := dlqClient(&kf)
	if err != nil {
		return err
	}
	defer c.Close()
	// The look-up is bounded by --timeout; the confirmation is not.
	lctx, stop := kf.wait(ctx, &stderr, "reading the order's state")
	st, partition, err := func() (*processor.State, int32, error) {
		defer stop()
		ids, err := resolveOrderRefs(lctx, c, []string{id})
		if err != nil {
			return nil, 0, err
		}
		id = ids[0]
		return c.OrderStateAt(lctx, id)
	}()
	if errors.Is(err, dlq.ErrOrderNotFound) {
		return fmt.Errorf("order %s not found on %s: nothing to erase", id, c.Names().State)
	}
	if err != nil {
		return err
	}
	if st.Status == processor.StatusErased {
		at := ""
		if st.ErasedAt != nil {
			at = " at " + st.ErasedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "order %s was already erased%s\n", id, at)
		return nil
	}
	if !*yes {
		fmt.Fprintf(stderr, "Erase order %s (status %s)? Its state and step results leave %s; this cannot be undone. Type 'yes' to erase: ",
			id, st.Status, c.Names().State)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "yes" && a != "y" {
			return errors.New("erase not confirmed: nothing erased")
		}
	}
	// Writing the request is bounded by --timeout, the confirmation by --wait.
	ectx, cancel := context.WithTimeout(ctx, kf.timeout+*wait)
	defer cancel()
	e, err := c.Erase(ectx, id, st, partition, *wait)
	if errors.Is(err, dlq.ErrEraseUnconfirmed) {
		return fmt.Errorf("erase of order %s requested (%s %s), but no processor confirmed it: %w", id, c.Names().Orders, e.Request, err)
	}
	if err != nil {
		return err
	}
	if *wait == 0 {
		fmt.Fprintf(stdout, "erase of order %s requested (%s %s); the processor owning partition %d carries it out\n", id, c.Names().Orders, e.Request, partition)
		return nil
	}
	fmt.Fprintf(stdout, "order %s erased: erasure marker at %s %s; compaction removes its earlier values from %s\n", id, c.Names().State, e.Marker, c.Names().State)
	fmt.Fprintf(stdout, "not erased: %s\n", dlq.NotErased(st, c.Names()))
	return nil
}

// labelFiles names the shipping label and customs declaration files of
// an order (dlq.LabelFiles).
func labelFiles(st *processor.State) []string { return dlq.LabelFiles(st) }
