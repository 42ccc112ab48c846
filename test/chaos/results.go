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
	Lost         int   // accepted, neither completed nor dead-lettered
	DupCreates   int64 // crm, production_log, invoice, email
	ShippingDups int64
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
	r.Drain = o.Drain
}

const tableHeader = "| scenario | faults | sent | accepted | completed | dead-lettered | lost | duplicate creations | shipping duplicates | time to drain | result |\n" +
	"|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"

func (r Row) markdown() string {
	res := "pass"
	if !r.Pass {
		res = "FAIL"
	}
	return fmt.Sprintf("| %s | %s | %d | %d | %d | %d | %d | %d | %d | %.1f s | %s |\n", r.Scenario, r.Faults, r.Sent,
		r.Accepted, r.Completed, r.DeadLettered, r.Lost, r.DupCreates, r.ShippingDups, r.Drain.Seconds(), res)
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
	fmt.Fprintf(&b, "# orderflow reliability suite (%s)\n\nRun at %s. Each scenario runs one gateway, three processors, the provider simulator, Kafka and Redis against a continuous stream of orders; \"lost\" counts orders whose payment event was answered 2xx but that are neither completed nor dead-lettered; duplicate creations are counted by the simulator at crm, production_log, invoice and email; time to drain runs from the end of the load to quiescence (every accepted order final, nothing in progress, offsets committed to the end of `orders`).\n\n",
		mode, at.UTC().Format(time.RFC3339))
	b.WriteString(Table(rows))
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
