package chaos

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Row is one scenario's line in the results table.
type Row struct {
	Scenario     string
	Faults       string // what was injected, e.g. "12 × kill -9"
	Sent         int    // orders sent by the load generator
	Accepted     int    // orders with an event answered 2xx
	Completed    int
	DeadLettered int
	Lost         int           // accepted, neither completed nor dead-lettered
	DupCreates   int64         // at every provider, shipping included
	ShippingDups int64         // of which shipments
	AnswersLost  int64         // calls the provider acted on whose answer a fault cut off
	Drain        time.Duration // end of load to quiescence
	Pass         bool
}

// Fill copies an outcome's counts into the row.
func (r *Row) Fill(sent int, o *Outcome) {
	r.Sent = sent
	r.Accepted = len(o.Accepted)
	r.Completed = o.Completed
	r.DeadLettered = o.DeadLettered
	r.Lost = len(o.Lost)
	r.DupCreates = o.DupCreates()
	r.ShippingDups = o.ShippingDups()
	r.AnswersLost = o.AnswersLost()
	r.Drain = o.Drain
}

const tableHeader = "| scenario | faults | sent | accepted | completed | dead-lettered | lost | duplicate creations (all providers) | of which shipments | answers lost mid-call | time to drain | result |\n" +
	"|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"

func (r Row) markdown() string {
	res := "pass"
	if !r.Pass {
		res = "FAIL"
	}
	return fmt.Sprintf("| %s | %s | %d | %d | %d | %d | %d | %d | %d | %d | %.1f s | %s |\n", r.Scenario, r.Faults, r.Sent,
		r.Accepted, r.Completed, r.DeadLettered, r.Lost, r.DupCreates, r.ShippingDups, r.AnswersLost, r.Drain.Seconds(), res)
}

// Table renders rows as a Markdown table.
func Table(rows []Row) string {
	var b strings.Builder
	b.WriteString(tableHeader)
	for _, r := range rows {
		b.WriteString(r.markdown())
	}
	return b.String()
}

// WriteResults writes the table, with a heading naming the mode and the
// time, to path.
func WriteResults(path, mode string, rows []Row, at time.Time) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# orderflow reliability suite (%s)\n\nRun at %s. %s\n\n", mode, at.UTC().Format(time.RFC3339), Asserted)
	b.WriteString(Table(rows))
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// Asserted says what every scenario asserts, as the results file and the
// README state it.
const Asserted = "Each scenario runs one gateway, three processors, the provider simulator, Kafka and Redis " +
	"against a continuous stream of orders, then waits for quiescence (every accepted order final, nothing in " +
	"progress, the group's offsets committed to the end of `orders`) and fails on any of: an accepted order " +
	"(payment event answered 2xx) not completed (\"lost\"; only 8-provider-rejects may dead-letter, and must " +
	"complete every order after `dlq replay --all`); one duplicate creation at any provider, counted by the " +
	"simulator per order (contact and deal, production-log row, PostNord shipment, Netvisor invoice, Mailgun " +
	"email); an order flagged `possible_duplicate`; an order left in progress; offsets not committed. \"Answers " +
	"lost mid-call\" counts calls the simulator served whose answer never reached the processor because it was " +
	"killed or frozen in the call (late-answer fault: the object is created half-way through a 200-500 ms call): " +
	"each is a call that had to be reconciled, not repeated; 10-kill-storm fails if there is none, and " +
	"11-processor-freeze if the frozen processor never reported its partitions lost. Time to drain runs from the end of the load to quiescence."
