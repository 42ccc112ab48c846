package sim_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/airtable"
	"github.com/orderflow/orderflow/integrations/labelstore"
	"github.com/orderflow/orderflow/integrations/mailgun"
	"github.com/orderflow/orderflow/integrations/netvisor"
	"github.com/orderflow/orderflow/integrations/postnord"
	"github.com/orderflow/orderflow/integrations/sim"
	"github.com/orderflow/orderflow/integrations/stripe"
	"github.com/orderflow/orderflow/integrations/telegram"
	"github.com/orderflow/orderflow/integrations/zoho"
	"github.com/orderflow/orderflow/processor"
)

// These tests run each real provider client against the simulator, end to
// end over HTTP: what passes here is what `orderflow dev` and the benchmarks
// exercise.

func startSim(t *testing.T, cfg sim.Config) (*sim.Server, string) {
	t.Helper()
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		_ = s.Close()
	})
	return s, ts.URL
}

// simOrder reads an order through the real Stripe client, so the other
// clients get exactly what the processor would hand them.
func simOrder(t *testing.T, url, id string) integrations.Order {
	t.Helper()
	c, err := stripe.New(stripe.Config{BaseURL: url, SecretKey: "sk_test_sim"})
	if err != nil {
		t.Fatal(err)
	}
	var _ processor.OrderDetails = c
	o, err := c.OrderDetails(context.Background(), id)
	if err != nil {
		t.Fatalf("OrderDetails(%s): %v", id, err)
	}
	return o
}

func TestStripeClientAgainstSim(t *testing.T) {
	s, url := startSim(t, sim.Config{})
	seen := map[string]bool{}
	for _, id := range []string{"pi_a", "pi_b", "pi_c", "pi_d", "pi_e", "pi_f", "cs_test_g", "cs_test_h"} {
		o := simOrder(t, url, id)
		if o.ID != id || o.Currency == "" || len(o.Items) == 0 || o.Customer.Email == "" || o.Shipping.Country == "" || o.Locale == "" {
			t.Fatalf("%s: incomplete order %+v", id, o)
		}
		var sum int64
		for _, it := range o.Items {
			if it.AmountTotal != it.UnitAmount*it.Quantity+it.AmountTax || len(it.Taxes) != 1 || it.Taxes[0].Amount != it.AmountTax || it.Taxes[0].Percentage == "0" {
				t.Fatalf("%s: line %+v", id, it)
			}
			sum += it.AmountTotal
		}
		if o.ShippingCost == nil || sum+o.ShippingCost.AmountTotal != o.AmountTotal || o.ShippingCost.Name == "" {
			t.Fatalf("%s: lines %d + shipping %+v != total %d", id, sum, o.ShippingCost, o.AmountTotal)
		}
		seen[o.Currency] = true
	}
	if !seen["jpy"] || !seen["eur"] || !seen["sek"] {
		t.Fatalf("currencies seen: %v", seen)
	}
	// The session and the PaymentIntent describe the same order.
	a, b := simOrder(t, url, "pi_same"), simOrder(t, url, "cs_test_same")
	if a.AmountTotal != b.AmountTotal || !reflect.DeepEqual(a.Customer, b.Customer) || !reflect.DeepEqual(a.Items, b.Items) {
		t.Fatalf("pi_same and cs_test_same differ:\n%+v\n%+v", a, b)
	}

	if err := s.SetFault(sim.Fault{Step: sim.StepStripe, Mode: sim.ModeUnavailable, Rate: 1}); err != nil {
		t.Fatal(err)
	}
	c, _ := stripe.New(stripe.Config{BaseURL: url, SecretKey: "sk_test_sim"})
	if _, err := c.OrderDetails(context.Background(), "pi_a"); err == nil || integrations.IsPermanent(err) {
		t.Fatalf("unavailable Stripe: want a transient error, got %v", err)
	}
	if err := s.SetFault(sim.Fault{Step: sim.StepStripe, Mode: sim.ModeReject, Rate: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OrderDetails(context.Background(), "pi_a"); err == nil || !integrations.IsPermanent(err) {
		t.Fatalf("rejecting Stripe: want a permanent error, got %v", err)
	}
	s.ClearFaults("")
	if _, err := c.OrderDetails(context.Background(), "pi_"); err == nil || !integrations.IsPermanent(err) {
		t.Fatalf("unknown id: want a permanent error, got %v", err)
	}
}

func TestZohoClientAgainstSim(t *testing.T) {
	s, url := startSim(t, sim.Config{})
	c, err := zoho.New(zoho.Config{APIBaseURL: url, AccountsURL: url, ClientID: "id", ClientSecret: "secret", RefreshToken: "1000.refresh", Triggers: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	var crm processor.CRM = c
	o := simOrder(t, url, "pi_zoho1")
	r1, err := crm.UpsertContactAndDeal(context.Background(), o)
	if err != nil {
		t.Fatalf("first upsert: %v", err)
	}
	r2, err := crm.UpsertContactAndDeal(context.Background(), o)
	if err != nil {
		t.Fatalf("second upsert: %v", err)
	}
	if r1.ContactID == "" || r1.DealID == "" || r1 != r2 {
		t.Fatalf("upserting twice must return the same records: %+v %+v", r1, r2)
	}
	st := s.Stats().Steps[sim.StepCRM]
	// Four upserts and one look-up of the org's currencies (then cached).
	if st.Created != 2 || st.DuplicateCreates != 0 || st.Requests != 5 {
		t.Fatalf("crm stats %+v, want one contact and one deal created in 5 calls", st)
	}

	// A forgotten token is refreshed on 401 and the call succeeds.
	s.InvalidateZohoTokens()
	if _, err := crm.UpsertContactAndDeal(context.Background(), simOrder(t, url, "pi_zoho2")); err != nil {
		t.Fatalf("after token invalidation: %v", err)
	}

	for _, tc := range []struct {
		mode      sim.Mode
		permanent bool
	}{{sim.ModeUnavailable, false}, {sim.ModeReject, true}} {
		if err := s.SetFault(sim.Fault{Step: sim.StepCRM, Mode: tc.mode, Rate: 1}); err != nil {
			t.Fatal(err)
		}
		_, err := crm.UpsertContactAndDeal(context.Background(), o)
		if err == nil || integrations.IsPermanent(err) != tc.permanent {
			t.Fatalf("%s: got %v, want permanent=%v", tc.mode, err, tc.permanent)
		}
	}
}

func postnordClient(t *testing.T, url string) *postnord.Client {
	t.Helper()
	labels, err := labelstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := postnord.New(postnord.Config{
		BaseURL: url, APIKey: "0123456789abcdef0123456789abcdef", Labels: labels,
		ApplicationID: 1438, CustomerNumber: "1234567890",
		Consignor: postnord.Party{Name: "Verkstad AB", Streets: []string{"Fabriksgatan 1"}, PostalCode: "41250", City: "Göteborg", CountryCode: "SE"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPostNordClientAgainstSim(t *testing.T) {
	s, url := startSim(t, sim.Config{DataDir: t.TempDir()})
	var ship processor.Shipping = postnordClient(t, url)
	o := simOrder(t, url, "pi_ship1")
	sh1, err := ship.CreateShipment(context.Background(), o)
	if err != nil {
		t.Fatalf("CreateShipment: %v", err)
	}
	if sh1.TrackingNumber == "" || sh1.LabelLocation == "" || !strings.Contains(sh1.TrackingURL, sh1.TrackingNumber) {
		t.Fatalf("shipment %+v", sh1)
	}
	// PostNord books again on a second call: a new item, a duplicate.
	sh2, err := ship.CreateShipment(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sh2.TrackingNumber == sh1.TrackingNumber {
		t.Fatalf("second booking reused %s", sh1.TrackingNumber)
	}
	if st := s.Stats().Steps[sim.StepShipping]; st.Created != 2 || st.DuplicateCreates != 1 {
		t.Fatalf("shipping stats %+v, want 2 created, 1 duplicate", st)
	}
	for _, tc := range []struct {
		mode      sim.Mode
		permanent bool
	}{{sim.ModeUnavailable, false}, {sim.ModeReject, true}} {
		if err := s.SetFault(sim.Fault{Step: sim.StepShipping, Mode: tc.mode, Rate: 1}); err != nil {
			t.Fatal(err)
		}
		_, err := ship.CreateShipment(context.Background(), o)
		if err == nil || integrations.IsPermanent(err) != tc.permanent {
			t.Fatalf("%s: got %v, want permanent=%v", tc.mode, err, tc.permanent)
		}
	}
}

func TestNetvisorClientAgainstSim(t *testing.T) {
	for _, alg := range []string{netvisor.AlgorithmSHA256, netvisor.AlgorithmHMACSHA256} {
		for _, enc := range []string{netvisor.EncodingISO885915, netvisor.EncodingUTF8} {
			t.Run(alg+"/"+enc, func(t *testing.T) {
				// With the keys configured the simulator verifies the MAC,
				// so this also checks both sides compute it the same way.
				s, url := startSim(t, sim.Config{NetvisorCustomerKey: "customer-key", NetvisorPartnerKey: "partner-key"})
				c, err := netvisor.New(netvisor.Config{
					BaseURL: url, Sender: "orderflow", CustomerID: "CUST1", CustomerKey: "customer-key",
					PartnerID: "PART1", PartnerKey: "partner-key", OrganisationID: "1967543-8",
					Algorithm: alg, Encoding: enc, CustomerIdentifier: "1", ProductIdentifier: "1697",
				})
				if err != nil {
					t.Fatal(err)
				}
				var inv processor.Invoicing = c
				o := simOrder(t, url, "pi_inv1")
				number := inv.InvoiceNumber(o)
				if _, found, err := inv.FindInvoice(context.Background(), number); err != nil || found {
					t.Fatalf("FindInvoice before create: found=%v err=%v", found, err)
				}
				created, err := inv.CreateInvoice(context.Background(), o, integrations.Shipment{TrackingNumber: "00373500000000000001"})
				if err != nil {
					t.Fatalf("CreateInvoice: %v", err)
				}
				if created.Number != number || created.ProviderID == "" {
					t.Fatalf("invoice %+v", created)
				}
				found, ok, err := inv.FindInvoice(context.Background(), number)
				if err != nil || !ok || found.ProviderID != created.ProviderID {
					t.Fatalf("FindInvoice after create: %+v %v %v", found, ok, err)
				}
				if st := s.Stats().Steps[sim.StepInvoice]; st.Created != 1 || st.DuplicateCreates != 0 {
					t.Fatalf("invoice stats %+v", st)
				}
				if err := s.SetFault(sim.Fault{Step: sim.StepInvoice, Mode: sim.ModeReject, Rate: 1}); err != nil {
					t.Fatal(err)
				}
				if _, err := inv.CreateInvoice(context.Background(), o, integrations.Shipment{}); err == nil || !integrations.IsPermanent(err) {
					t.Fatalf("reject: want a permanent error, got %v", err)
				}
				if err := s.SetFault(sim.Fault{Step: sim.StepInvoice, Mode: sim.ModeUnavailable, Rate: 1}); err != nil {
					t.Fatal(err)
				}
				if _, err := inv.CreateInvoice(context.Background(), o, integrations.Shipment{}); err == nil || integrations.IsPermanent(err) {
					t.Fatalf("unavailable: want a transient error, got %v", err)
				}
			})
		}
	}
}

func TestTelegramClientAgainstSim(t *testing.T) {
	s, url := startSim(t, sim.Config{})
	c, err := telegram.New(telegram.Config{BaseURL: url, Token: "123456:ABC-sim", ChatID: "-100123",
		BatchWindow: 10 * time.Millisecond, MinInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var al processor.Alerter = c
	for i := range 50 {
		if err := al.Alert(context.Background(), integrations.Alert{OrderID: "pi_" + strings.Repeat("x", i%3+1), Step: "shipping", Text: "PostNord <503> & co"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats().Steps[sim.StepAlert]
	// Batched: a burst of 50 alerts is a handful of messages, all accepted.
	if st.Created < 1 || st.Created > 5 || st.Requests != st.Created {
		t.Fatalf("alert stats %+v", st)
	}
}

func TestAirtableClientAgainstSim(t *testing.T) {
	s, url := startSim(t, sim.Config{})
	c, err := airtable.New(airtable.Config{BaseURL: url, Token: "patSIM.secret", BaseID: "appSIM", Table: "tblOrders", RequestsPerSecond: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var pl processor.ProductionLog = c
	o := simOrder(t, url, "pi_row1")
	r1, err := pl.UpsertOrder(context.Background(), o, []string{processor.StepDetails, processor.StepCRM})
	if err != nil {
		t.Fatalf("UpsertOrder: %v", err)
	}
	r2, err := pl.UpsertOrder(context.Background(), o, []string{processor.StepDetails, processor.StepCRM, processor.StepProductionLog})
	if err != nil {
		t.Fatal(err)
	}
	if r1.RecordID == "" || r1 != r2 {
		t.Fatalf("upserting twice must keep the row: %+v %+v", r1, r2)
	}
	if st := s.Stats().Steps[sim.StepProductionLog]; st.Created != 1 || st.DuplicateCreates != 0 || st.Requests != 2 {
		t.Fatalf("production_log stats %+v", st)
	}
	for _, tc := range []struct {
		mode      sim.Mode
		permanent bool
	}{{sim.ModeUnavailable, false}, {sim.ModeReject, true}} {
		if err := s.SetFault(sim.Fault{Step: sim.StepProductionLog, Mode: tc.mode, Rate: 1}); err != nil {
			t.Fatal(err)
		}
		_, err := pl.UpsertOrder(context.Background(), o, nil)
		if err == nil || integrations.IsPermanent(err) != tc.permanent {
			t.Fatalf("%s: got %v, want permanent=%v", tc.mode, err, tc.permanent)
		}
	}
}

func TestAirtableClientBatchesAgainstSim(t *testing.T) {
	s, url := startSim(t, sim.Config{})
	c, err := airtable.New(airtable.Config{BaseURL: url, Token: "patSIM.secret", BaseID: "appSIM", Table: "tblOrders", NoRateLimit: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	const n = 25
	orders := make([]integrations.Order, n)
	for i := range orders {
		orders[i] = simOrder(t, url, fmt.Sprintf("pi_batch%02d", i))
	}
	upsertAll := func(steps []string) []string {
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i := range orders {
			wg.Go(func() {
				r, err := c.UpsertOrder(context.Background(), orders[i], steps)
				if err != nil {
					t.Errorf("%s: %v", orders[i].ID, err)
				}
				ids[i] = r.RecordID
			})
		}
		wg.Wait()
		return ids
	}
	first := upsertAll([]string{processor.StepDetails})
	second := upsertAll([]string{processor.StepDetails, processor.StepProductionLog})
	seen := map[string]bool{}
	for i := range first {
		if first[i] == "" || first[i] != second[i] || seen[first[i]] {
			t.Fatalf("order %d: record %q then %q (each order needs its own row, kept)", i, first[i], second[i])
		}
		seen[first[i]] = true
	}
	st := s.Stats().Steps[sim.StepProductionLog]
	t.Logf("%d requests for %d upserts", st.Requests, 2*n)
	if st.Created != n || st.DuplicateCreates != 0 || st.Requests > 2*n {
		t.Fatalf("production_log stats %+v, want %d created, no duplicates", st, n)
	}
}

func TestMailgunClientAgainstSim(t *testing.T) {
	dir := t.TempDir()
	s, url := startSim(t, sim.Config{DataDir: dir})
	c, err := mailgun.New(mailgun.Config{BaseURL: url, APIKey: "key-sim", Domain: "mg.example.com", From: "Shop <orders@mg.example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	var m processor.Mailer = c
	o := simOrder(t, url, "pi_mail1")
	sh := integrations.Shipment{TrackingNumber: "00373500000000000001", TrackingURL: "https://tracking.postnord.com/se/?id=00373500000000000001"}
	inv := integrations.Invoice{Number: "OF-MAIL1", ProviderID: "1801"}
	msg, err := m.SendConfirmation(context.Background(), o, sh, inv)
	if err != nil {
		t.Fatalf("SendConfirmation: %v", err)
	}
	if msg.MessageID == "" {
		t.Fatalf("message %+v", msg)
	}
	// Mailgun has no idempotency: a second send is a duplicate email.
	if _, err := m.SendConfirmation(context.Background(), o, sh, inv); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats().Steps[sim.StepEmail]; st.Created != 2 || st.DuplicateCreates != 1 {
		t.Fatalf("email stats %+v, want 2 created, 1 duplicate (same Message-Id)", st)
	}
	for _, tc := range []struct {
		mode      sim.Mode
		permanent bool
	}{{sim.ModeUnavailable, false}, {sim.ModeReject, true}} {
		if err := s.SetFault(sim.Fault{Step: sim.StepEmail, Mode: tc.mode, Rate: 1}); err != nil {
			t.Fatal(err)
		}
		_, err := m.SendConfirmation(context.Background(), o, sh, inv)
		if err == nil || integrations.IsPermanent(err) != tc.permanent {
			t.Fatalf("%s: got %v, want permanent=%v", tc.mode, err, tc.permanent)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	emls, _ := filepath.Glob(filepath.Join(dir, "outbox", "email", "*.eml"))
	if len(emls) != 2 {
		t.Fatalf("%d emails in the outbox, want 2", len(emls))
	}
	b, _ := os.ReadFile(emls[0])
	if !strings.Contains(string(b), sh.TrackingNumber) {
		t.Fatalf("email does not show the tracking number:\n%s", b)
	}
}

func TestMailgunFindMessageAgainstSim(t *testing.T) {
	_, url := startSim(t, sim.Config{})
	c, err := mailgun.New(mailgun.Config{BaseURL: url, APIKey: "key-sim", Domain: "mg.example.com", From: "Shop <orders@mg.example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	var f processor.MessageFinder = c
	o := simOrder(t, url, "pi_find1")
	if _, found, err := f.FindMessage(context.Background(), o); err != nil || found {
		t.Fatalf("before sending: found %v, err %v; want not found", found, err)
	}
	if _, err := c.SendConfirmation(context.Background(), o, integrations.Shipment{}, integrations.Invoice{}); err != nil {
		t.Fatal(err)
	}
	msg, found, err := f.FindMessage(context.Background(), o)
	if err != nil || !found || msg.MessageID != c.MessageID(o) {
		t.Fatalf("after sending: %+v found %v err %v; want the order's Message-Id", msg, found, err)
	}
	other := simOrder(t, url, "pi_find2")
	if _, found, _ := f.FindMessage(context.Background(), other); found {
		t.Fatal("another order's message found")
	}
}
