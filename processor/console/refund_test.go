package console

import (
	"slices"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/processor"
)

// A refund flag on a finished order is an alert once, and its page says
// what a person still has to do instead of "Nothing".
func TestRefundFlags(t *testing.T) {
	ts := newTestServer(t, nil)
	st := order("pi_refd0000001", "anna@example.com", processor.StatusCompleted, t0, 6)
	part := *st
	part.Flags = []string{processor.FlagPartiallyRefunded}
	full := part
	full.Flags = []string{processor.FlagPartiallyRefunded, processor.FlagRefundedAfterShipping}
	apply(t, ts.ix, stateRecord(t, st, 0, 0))
	c := newClient(t, ts.URL)
	c.login("ops")
	if _, body, _ := c.get("/orders/pi_refd0000001"); !strings.Contains(body, "Nothing: every step is done.") {
		t.Fatalf("order page before the refund lacks the all-done note:\n%s", body)
	}

	apply(t, ts.ix, stateRecord(t, &part, 0, 1))
	_, body, _ := c.get("/orders/pi_refd0000001")
	if !strings.Contains(body, "Every step is done. Part of it was refunded (see the alerts for how much): credit that on the invoice by hand; the order went on.") {
		t.Errorf("partially refunded order page lacks the note:\n%s", body)
	}
	apply(t, ts.ix, stateRecord(t, &part, 0, 2)) // the same flags again: no second alert
	apply(t, ts.ix, stateRecord(t, &full, 0, 3))
	_, body, _ = c.get("/orders/pi_refd0000001")
	if !strings.Contains(body, "Every step is done. It was refunded in full after it shipped: stop or recall the shipment and credit the invoice by hand.") ||
		strings.Contains(body, "Nothing: every step is done.") {
		t.Errorf("order refunded after shipping: page lacks the note:\n%s", body)
	}

	texts := orderAlerts(t, ts.ix, "pi_refd0000001")
	want := []string{ // newest first
		"order refunded after it shipped: stop or recall the shipment and credit the invoice by hand",
		"order partially refunded: credit the refund on the invoice by hand",
	}
	if strings.Join(texts, "|") != strings.Join(want, "|") {
		t.Errorf("alerts %q, want %q", texts, want)
	}
}

// A refund that did not go through at Stripe is an alert once, and the
// order page says the customer was not paid back.
func TestRefundFailedFlag(t *testing.T) {
	flagOnce(t, "pi_refd0000002", []string{processor.FlagPartiallyRefunded}, processor.FlagRefundFailed,
		"Every step is done. A refund of it did not go through at Stripe (failed or canceled): the customer was not paid back; pay back another way.",
		[]string{ // newest first
			"a refund of the order did not go through at Stripe: the customer was not paid back; pay back another way",
			"order partially refunded: credit the refund on the invoice by hand",
		})
}

// A disputed order is an alert once, and its page says to answer the
// dispute.
func TestDisputedFlag(t *testing.T) {
	flagOnce(t, "pi_disp0000001", nil, processor.FlagDisputed,
		"Every step is done. The customer disputed the payment (a chargeback; see the alerts for the reason and the date the evidence is due): answer it in Stripe&#39;s Dashboard with the order&#39;s invoice and tracking.",
		[]string{"the order's payment was disputed (a chargeback): answer the dispute in Stripe before its evidence is due"})
}

// flagOnce indexes a completed order with the flags before, then twice
// with flag added, and checks that its page has the note and that the
// order's alerts, newest first, are want: the flag's once.
func flagOnce(t *testing.T, id string, before []string, flag, note string, want []string) {
	t.Helper()
	ts := newTestServer(t, nil)
	st := order(id, "anna@example.com", processor.StatusCompleted, t0, 6)
	st.Flags = before
	flagged := *st
	flagged.Flags = append(slices.Clone(before), flag)
	apply(t, ts.ix, stateRecord(t, st, 0, 0))
	apply(t, ts.ix, stateRecord(t, &flagged, 0, 1))
	apply(t, ts.ix, stateRecord(t, &flagged, 0, 2)) // the same flags again: no second alert
	c := newClient(t, ts.URL)
	c.login("ops")
	if _, body, _ := c.get("/orders/" + id); !strings.Contains(body, note) {
		t.Errorf("order page lacks the %s note:\n%s", flag, body)
	}
	if texts := orderAlerts(t, ts.ix, id); strings.Join(texts, "|") != strings.Join(want, "|") {
		t.Errorf("alerts %q, want %q", texts, want)
	}
}

// orderAlerts are the texts of the index's alerts about order, newest
// first.
func orderAlerts(t *testing.T, ix *Index, order string) []string {
	t.Helper()
	alerts, err := ix.Alerts(10)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, a := range alerts {
		if a.Order == order {
			texts = append(texts, a.Text)
		}
	}
	return texts
}

// An order whose delayed payment failed is listed under payment_failed,
// counted, and its page says nothing was sent.
func TestPaymentFailedPage(t *testing.T) {
	ts := newTestServer(t, nil)
	st := order("pi_sepa00000001", "anna@example.com", processor.StatusPaymentFailed, t0, 0)
	st.Order = nil // the details step never ran
	apply(t, ts.ix, stateRecord(t, st, 0, 0))
	c := newClient(t, ts.URL)
	c.login("ops")
	if _, body, _ := c.get("/orders/pi_sepa00000001"); !strings.Contains(body, "Nothing to undo: the payment awaited failed (a debit refused or returned) or was canceled (an authorization canceled or expired before capture), so nothing was sent to any provider.") {
		t.Errorf("order page lacks the payment-failed note:\n%s", body)
	}
	if code, body, _ := c.get("/orders?status=payment_failed"); code != 200 || !strings.Contains(body, "pi_sepa00000001") {
		t.Errorf("payment_failed filter: %d, order not listed:\n%s", code, body)
	}
	if code, body, _ := c.get("/orders?status=completed"); code != 200 || strings.Contains(body, "pi_sepa00000001") {
		t.Errorf("completed filter: %d, lists the failed payment", code)
	}
}
