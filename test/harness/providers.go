package harness

import (
	"testing"

	"github.com/orderflow/orderflow/integrations/airtable"
	"github.com/orderflow/orderflow/integrations/labelstore"
	"github.com/orderflow/orderflow/integrations/mailgun"
	"github.com/orderflow/orderflow/integrations/netvisor"
	"github.com/orderflow/orderflow/integrations/postnord"
	"github.com/orderflow/orderflow/integrations/stripe"
	"github.com/orderflow/orderflow/integrations/zoho"
	"github.com/orderflow/orderflow/processor"
)

// Settings of the clients Providers builds, for tests that look at what a
// provider received.
const (
	AirtableBase  = "appTest"
	AirtableTable = "Orders"
	MailgunDomain = "mg.shop.example"
)

// Providers are the real clients of every step, all pointed at base (the
// provider simulator, or a recorder in front of it), with the test
// credentials the simulator accepts. nvCustomerKey and nvPartnerKey are the
// Netvisor keys the simulator verifies MACs with. Airtable is unthrottled
// and closed at the end of the test.
func Providers(t testing.TB, base, nvCustomerKey, nvPartnerKey string) processor.Providers {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := stripe.New(stripe.Config{BaseURL: base, SecretKey: "sk_test_harness"})
	must(err)
	z, err := zoho.New(zoho.Config{APIBaseURL: base, AccountsURL: base, ClientID: "1000.HARNESS", ClientSecret: "harness", RefreshToken: "1000.harness"})
	must(err)
	at, err := airtable.New(airtable.Config{BaseURL: base, Token: "patHarness.0", BaseID: AirtableBase, Table: AirtableTable, NoRateLimit: true})
	must(err)
	t.Cleanup(func() { _ = at.Close() })
	labels, err := labelstore.NewDir(t.TempDir())
	must(err)
	pn, err := postnord.New(postnord.Config{BaseURL: base, APIKey: "00000000000000000000000000000000", CustomerNumber: "1234567890",
		Labels: labels, Consignor: postnord.Party{Name: "Test Shop", Streets: []string{"Testgatan 1"}, PostalCode: "11122", City: "Stockholm", CountryCode: "SE"}})
	must(err)
	nv, err := netvisor.New(netvisor.Config{BaseURL: base, Sender: "orderflow", CustomerID: "HARNESS", CustomerKey: nvCustomerKey,
		PartnerID: "PARTNER", PartnerKey: nvPartnerKey, OrganisationID: "1234567-8", CustomerIdentifier: "1", ProductIdentifier: "1", MaxConcurrent: -1})
	must(err)
	mg, err := mailgun.New(mailgun.Config{BaseURL: base, APIKey: "key-harness", Domain: MailgunDomain, From: "Test Shop <orders@" + MailgunDomain + ">"})
	must(err)
	return processor.Providers{Details: st, CRM: z, ProductionLog: at, Shipping: pn, Invoicing: nv, Mailer: mg}
}
