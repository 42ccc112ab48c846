package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/orderflow/orderflow/processor/dlq"
)

const ordersUsage = `orders show <order-id> [--json] [--reveal]

  show  the order's state from orders.state: status, each step with its result
        (deal id, tracking number, label, invoice number, message id) or its
        attempts and last error, flags such as possible_duplicate:<step>,
        replays and the dead letter; --json prints the state record (customer
        data masked unless --reveal)`

func runOrders(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("orders: want 'show <order-id>' (run 'orderflow orders --help')")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintf(stderr, "Usage: orderflow %s\n", ordersUsage)
		return nil
	case "show":
	default:
		return usagef("orders: unknown subcommand %q: want 'show <order-id>'", args[0])
	}
	fs := newFlagSet("orders show", ordersUsage, stderr)
	var kf kafkaFlags
	kf.register(fs)
	asJSON := fs.Bool("json", false, "print the state record as JSON")
	reveal := fs.Bool("reveal", false, "with --json, show customer data instead of masking it")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		return usagef("orders show: want one order id")
	}
	id := pos[0]
	c, err := dlqClient(&kf)
	if err != nil {
		return err
	}
	defer c.Close()
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
