package processor

import (
	"context"
	"strings"
	"testing"
	"time"

	"log/slog"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/topics"
)

// personalDetails is the fakes' details provider with a buyer whose data
// a provider's error quotes.
type personalDetails struct{ *fakes }

func (d personalDetails) OrderDetails(ctx context.Context, id string) (integrations.Order, error) {
	o, err := d.fakes.OrderDetails(ctx, id)
	o.Customer = integrations.Customer{Name: "Zanthia Quorvex", Email: "zqx.privmail@privtest.example", Phone: "+49309980006",
		Address: integrations.Address{Line1: "Quorvexweg 69", PostalCode: "10115", City: "Berlin", Country: "DE"},
		TaxIDs:  []integrations.TaxID{{Type: "eu_vat", Value: "de 987 650 002"}}}
	o.Shipping = integrations.Address{Name: "Liisa Virtanen", Line1: "Aurakatu 1", PostalCode: "20100", City: "Turku", Country: "FI"}
	return o, err
}

// TestProviderErrorsLoseTheCustomersData: a provider's error quoting what
// it was sent (the buyer's name, email, phone, street, postal code, VAT
// number; the recipient's name and street) reaches the log, the order's
// state, the dead letter and the alert with those values masked, the rest
// of the reason kept.
func TestProviderErrorsLoseTheCustomersData(t *testing.T) {
	t.Parallel()
	h := newLogicHarness(t, 1)
	var logs syncBuffer
	h.logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFakes()
	f.setFail(func(step, _ string, attempt int) error {
		switch step {
		case StepCRM:
			return integrations.Permanentf("zoho", "upsert contact",
				"INVALID_DATA Mailing_Zip: value 10115 for ZANTHIA quorvex (zqx.privmail@PRIVTEST.example, +49309980006, Quorvexweg 69, DE987650002) not valid")
		case StepShipping:
			if attempt == 1 {
				return integrations.Transientf("postnord", "book shipment", "consignee Liisa Virtanen at Aurakatu 1, 20100 Turku: busy")
			}
		}
		return nil
	})
	prov := f.providers()
	prov.Details = personalDetails{f}
	h.start(h.config(), prov)
	h.send(paid("pi_masked"))
	st := h.waitStates("dead-lettered", 30*time.Second, allStatus([]string{"pi_masked"}, StatusDeadLettered))["pi_masked"]
	wantCRM := "zoho: upsert contact: INVALID_DATA Mailing_Zip: value *** for *** (***, ***, ***, ***) not valid"
	if got := st.Step(StepCRM).LastError; got != wantCRM {
		t.Errorf("crm last error %q\nwant %q", got, wantCRM)
	}
	dl := h.readAll(h.names.DLQ)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	if got, _ := header(dl[0], topics.HeaderDLQError); got != wantCRM {
		t.Errorf("dead letter error %q\nwant %q", got, wantCRM)
	}
	eventually(t, "the alert", 10*time.Second, func() bool { return f.alertCount() == 1 })
	f.mu.Lock()
	alert := f.alerts[0].Text
	f.mu.Unlock()
	if !strings.Contains(alert, wantCRM) {
		t.Errorf("alert %q does not give the masked reason", alert)
	}
	out := logs.String()
	if !strings.Contains(out, "consignee *** at ***, *** Turku: busy") || !strings.Contains(out, "value *** for ***") {
		t.Errorf("the log does not give the masked reasons:\n%s", out)
	}
	for _, v := range []string{"Zanthia", "ZANTHIA", "quorvex", "privmail", "49309980006", "10115", "987650002", "Liisa", "Virtanen", "Aurakatu", "20100"} {
		for what, text := range map[string]string{"log": out, "alert": alert, "state": st.LastError + st.Step(StepShipping).LastError} {
			if strings.Contains(strings.ToLower(text), strings.ToLower(v)) {
				t.Errorf("%s names %q", what, v)
			}
		}
	}
}
