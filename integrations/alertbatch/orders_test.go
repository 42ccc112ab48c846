package alertbatch

import (
	"fmt"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/integrations"
)

// A dead letter and the event parked behind it are two alerts of one
// order: the summary names the order once, by its OF- number.
func TestSummaryNamesEachOrderOnceByNumber(t *testing.T) {
	s := NewSummary()
	s.Add(integrations.Alert{OrderID: "pi_3QBpzb3EiYC4YQ7NwXuOfIyK", Step: "shipping", Text: "order dead-lettered at step shipping (permanent) after 1 attempt: x"})
	s.Add(integrations.Alert{OrderID: "pi_3QBpzb3EiYC4YQ7NwXuOfIyK", Step: "shipping", Text: "event checkout.session.completed parked behind the order's dead letter"})
	s.Add(integrations.Alert{OrderID: "pi_3QBpzb3EiYC4YQ7NwXuOfIyL", Step: "shipping", Text: "x"})
	if len(s.Groups) != 1 {
		t.Fatalf("groups %d, want 1", len(s.Groups))
	}
	g := s.Groups[0]
	if got := fmt.Sprint(g.Orders); got != "[OF-7NWXUOFIYK OF-7NWXUOFIYL]" || g.Count != 3 || g.MoreOrders != 0 {
		t.Errorf("orders %s, count %d, more %d; want [OF-7NWXUOFIYK OF-7NWXUOFIYL], 3, 0", got, g.Count, g.MoreOrders)
	}
	// Beyond MaxOrders, an order seen again is not counted as one more.
	s = NewSummary()
	for i := range MaxOrders + 2 {
		s.Add(integrations.Alert{OrderID: fmt.Sprintf("pi_%d", i), Step: "crm"})
		s.Add(integrations.Alert{OrderID: fmt.Sprintf("pi_%d", i), Step: "crm"})
	}
	if g := s.Groups[0]; len(g.Orders) != MaxOrders || g.MoreOrders != 2 {
		t.Errorf("listed %d, more %d; want %d and 2", len(g.Orders), g.MoreOrders, MaxOrders)
	}
}

// An order that failed at two steps of one batch is named once, at the
// first, with the other step; the second step's line counts it as named
// above.
func TestSummaryNamesAnOrderOfTwoStepsOnce(t *testing.T) {
	s := NewSummary()
	s.Add(integrations.Alert{OrderID: "pi_3QBpzb3EiYC4YQ7NwL90RGOPLU", Step: "crm", Text: "zoho: upsert contact: HTTP 400"})
	s.Add(integrations.Alert{OrderID: "pi_3QBpzb3EiYC4YQ7NwL90RGOPLU", Step: "invoice", Text: "netvisor: add sales invoice: HTTP 400"})
	s.Add(integrations.Alert{OrderID: "pi_3QBpzb3EiYC4YQ7NwXuOfIyL", Step: "invoice", Text: "netvisor: add sales invoice: HTTP 400"})
	got := Render(s, Markup{Bold: func(m string) string { return "*" + m + "*" }}, 4000)
	want := "*orderflow: 3 alerts*\n\n" +
		"*1 at step crm*: OF-WL90RGOPLU (also at step invoice)\n" +
		"• zoho: upsert contact: HTTP 400\n\n" +
		"*2 at step invoice*: OF-7NWXUOFIYL; 1 order named above\n" +
		"• netvisor: add sales invoice: HTTP 400 (×2)"
	if got != want {
		t.Errorf("message\n%s\nwant\n%s", got, want)
	}
	if n := strings.Count(got, "OF-WL90RGOPLU"); n != 1 {
		t.Errorf("OF-WL90RGOPLU named %d times, want once", n)
	}
}
