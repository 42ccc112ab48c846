package netvisor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/integrations"
)

func tax(amount int64, pct, reason string) []integrations.Tax {
	return []integrations.Tax{{Amount: amount, Percentage: pct, TaxabilityReason: reason}}
}

func invoiceFor(t *testing.T, o integrations.Order, mod func(*Config)) (xmlInvoice, error) {
	t.Helper()
	f := &fakeNetvisor{status: 200, body: "file:created.xml"}
	c := newTest(t, f, mod)
	_, err := c.CreateInvoice(context.Background(), o, integrations.Shipment{})
	if err != nil {
		if len(f.reqs) != 0 {
			t.Fatal("an invoice was sent although CreateInvoice failed")
		}
		return xmlInvoice{}, err
	}
	for _, r := range f.reqs {
		if r.path == "/salesinvoice.nv" {
			return parseInvoice(t, r.body), nil
		}
	}
	t.Fatal("CreateInvoice succeeded without sending salesinvoice.nv")
	return xmlInvoice{}, nil
}

// The example: 107.40 EUR paid with VAT-inclusive prices must be
// an invoice of 107.40, not 131.82: gross unit prices, VAT inside.
func TestInvoiceVATInclusive(t *testing.T) {
	o := testOrder()
	o.Items = []integrations.LineItem{
		{Description: "Villasukat", Quantity: 4, UnitAmount: 2490, AmountSubtotal: 9960, AmountTax: 2024, AmountTotal: 9960, TaxBehavior: "inclusive", Taxes: tax(2024, "25.5", "standard_rated")},
	}
	o.ShippingCost = &integrations.ShippingCost{AmountSubtotal: 780, AmountTax: 159, AmountTotal: 780, TaxBehavior: "inclusive", Name: "Posti", Taxes: tax(159, "25.5", "standard_rated")}
	o.AmountTotal, o.AmountTax, o.AmountSubtotal = 10740, 2183, 9960
	inv, err := invoiceFor(t, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Amount.Value != "107,40" {
		t.Errorf("amount = %s, want 107,40", inv.Amount.Value)
	}
	want := []xmlLine{
		{Product: xmlValue{Value: "1697", Type: "netvisor"}, Name: "Villasukat", UnitPrice: xmlValue{Value: "99,60", Type: "gross"}, VAT: xmlValue{Value: "25,5", VATCode: "KOMY"},
			Quantity: "1", FreeText: "4 × 24.90 EUR incl. VAT", VatSum: "20,24", Sum: "99,60"},
		{Product: xmlValue{Value: "1697", Type: "netvisor"}, Name: "Shipping: Posti", UnitPrice: xmlValue{Value: "7,80", Type: "gross"}, VAT: xmlValue{Value: "25,5", VATCode: "KOMY"},
			Quantity: "1", VatSum: "1,59", Sum: "7,80"},
	}
	if len(inv.Lines) != 2 || inv.Lines[0] != want[0] || inv.Lines[1] != want[1] {
		t.Errorf("lines = %+v\nwant %+v", inv.Lines, want)
	}
}

// A price whose tax behaviour Stripe leaves unspecified (a manual tax
// rate on the line) is told by Stripe's amounts: a tax inside the total is
// inclusive, one on top of it exclusive, also after a discount.
func TestInvoiceUnspecifiedTaxBehaviour(t *testing.T) {
	o := testOrder()
	o.Items = []integrations.LineItem{
		{Description: "Muki", Quantity: 2, UnitAmount: 2490, AmountSubtotal: 4980, AmountTax: 1012, AmountTotal: 4980, TaxBehavior: "unspecified", Taxes: tax(1012, "25.5", "standard_rated")},
		{Description: "Lautanen", Quantity: 3, UnitAmount: 1000, AmountSubtotal: 3000, AmountDiscount: 300, AmountTax: 689, AmountTotal: 3389, TaxBehavior: "unspecified", Taxes: tax(689, "25.5", "standard_rated")},
	}
	o.ShippingCost = nil
	o.AmountTotal, o.AmountTax, o.AmountSubtotal = 8369, 1701, 7980
	inv, err := invoiceFor(t, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []xmlLine{
		{Product: xmlValue{Value: "1697", Type: "netvisor"}, Name: "Muki", UnitPrice: xmlValue{Value: "49,80", Type: "gross"}, VAT: xmlValue{Value: "25,5", VATCode: "KOMY"},
			Quantity: "1", FreeText: "2 × 24.90 EUR incl. VAT", VatSum: "10,12", Sum: "49,80"},
		{Product: xmlValue{Value: "1697", Type: "netvisor"}, Name: "Lautanen", UnitPrice: xmlValue{Value: "27,00", Type: "net"}, VAT: xmlValue{Value: "25,5", VATCode: "KOMY"},
			Quantity: "1", FreeText: "3 × 10.00 EUR excl. VAT; discount 3.00 EUR", VatSum: "6,89", Sum: "33,89"},
	}
	if !slices.Equal(inv.Lines, want) {
		t.Errorf("lines:\n got %+v\nwant %+v", inv.Lines, want)
	}
}

// Intra-EU B2B: Stripe marked the taxes reverse_charge; the invoice names
// the buyer's VAT number, uses the reverse-charge vatcode at 0 % and says
// "Reverse charge". It goes to the buyer's billing address; the delivery
// address is the recipient's, its second line kept.
func TestInvoiceReverseChargeAndAddresses(t *testing.T) {
	o := testOrder()
	o.Items = []integrations.LineItem{{Description: "Werkbank", Quantity: 1, UnitAmount: 50000, AmountSubtotal: 50000, AmountTotal: 50000, TaxBehavior: "exclusive", Taxes: tax(0, "0", "reverse_charge")}}
	o.ShippingCost = &integrations.ShippingCost{AmountSubtotal: 2000, AmountTotal: 2000, TaxBehavior: "exclusive", Taxes: tax(0, "0", "reverse_charge")}
	o.AmountTotal, o.AmountTax, o.AmountSubtotal = 52000, 0, 50000
	o.Customer = integrations.Customer{Name: "Müller & Söhne GmbH", Email: "einkauf@example.de", TaxExempt: "none",
		TaxIDs:  []integrations.TaxID{{Type: "eu_vat", Value: "DE123456789"}},
		Address: integrations.Address{Line1: "Hauptstraße 1", Line2: "Rechnungsstelle", PostalCode: "10115", City: "Berlin", Country: "DE"}}
	o.Shipping = integrations.Address{Name: "Lager Nord", Line1: "Hafenweg 7", Line2: "Tor 3", PostalCode: "20457", City: "Hamburg", Country: "DE"}
	inv, err := invoiceFor(t, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Customer != (xmlValue{Value: "DE123456789", Type: "customer"}) {
		t.Errorf("invoice links customer %+v, want the business customer DE123456789 by code", inv.Customer)
	}
	if inv.After != "Buyer's VAT number: DE123456789\nReverse charge / Käännetty verovelvollisuus" {
		t.Errorf("free text = %q", inv.After)
	}
	// The number as typed, with spaces and in lower case, is printed as
	// the register writes it.
	typed := o
	typed.Customer.TaxIDs = []integrations.TaxID{{Type: "eu_vat", Value: "de 123.456 789"}}
	if inv, err := invoiceFor(t, typed, nil); err != nil || inv.After != "Buyer's VAT number: DE123456789\nReverse charge / Käännetty verovelvollisuus" {
		t.Errorf("typed VAT number: free text = %q (%v)", inv.After, err)
	}
	for i, l := range inv.Lines {
		if l.VAT != (xmlValue{Value: "0", VATCode: "EUMY"}) || l.VatSum != "0,00" {
			t.Errorf("line %d VAT = %+v %s", i+1, l.VAT, l.VatSum)
		}
	}
	if inv.Lines[0].FreeText != "1 × 500.00 EUR excl. VAT; tax 0 % 0.00 EUR (reverse charge)" {
		t.Errorf("line text = %q", inv.Lines[0].FreeText)
	}
	got := []string{inv.Name, inv.Line1, inv.Line2, inv.PostNumber, inv.Town, inv.Country, inv.DeliveryName, inv.DeliveryLine, inv.DeliveryPost, inv.DeliveryTown, inv.DeliveryCtry}
	want := []string{"Müller & Söhne GmbH", "Hauptstraße 1", "Rechnungsstelle", "10115", "Berlin", "DE", "Lager Nord", "Hafenweg 7, Tor 3", "20457", "Hamburg", "DE"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("addresses = %q\nwant %q", got, want)
	}

	// A services shop sets its own code.
	inv, err = invoiceFor(t, o, func(c *Config) { c.ReverseChargeVATCode = "EUPM309" })
	if err != nil || inv.Lines[0].VAT.VATCode != "EUPM309" {
		t.Errorf("configured code: %+v %v", inv.Lines, err)
	}
	// Without the buyer's VAT number a reverse-charge invoice is not legal.
	o.Customer.TaxIDs = nil
	if _, err := invoiceFor(t, o, nil); !integrations.IsPermanent(err) || !integrations.IsNotSent(err) || !strings.Contains(err.Error(), "no VAT number") {
		t.Errorf("no VAT id: err = %v", err)
	}
	// tax_exempt "reverse" alone makes it a reverse-charge sale too.
	o.Customer.TaxIDs = []integrations.TaxID{{Type: "eu_vat", Value: "SE556677889901"}}
	o.Customer.TaxExempt = "reverse"
	o.Items[0].Taxes, o.ShippingCost.Taxes = nil, nil
	inv, err = invoiceFor(t, o, nil)
	if err != nil || inv.Lines[0].VAT.VATCode != "EUMY" || !strings.Contains(inv.After, "SE556677889901") {
		t.Errorf("tax_exempt reverse: %+v %v", inv, err)
	}

	// A business outside the EU VAT area marked reverse charge (Stripe's
	// tax_exempt reverse, a Norwegian VAT id) buys an export: the export
	// code, no reverse-charge text, no EC sales list. Its VAT number is
	// still printed and it is still a customer of its own; without one
	// the export is not refused.
	o.Customer = integrations.Customer{Name: "Fjord Handel AS", Email: "innkjop@example.no", TaxExempt: "reverse",
		TaxIDs:  []integrations.TaxID{{Type: "no_vat", Value: "923456789MVA"}},
		Address: integrations.Address{Line1: "Karl Johans gate 1", PostalCode: "0154", City: "Oslo", Country: "NO"}}
	o.Shipping = integrations.Address{Name: "Fjord Handel AS", Line1: "Karl Johans gate 1", PostalCode: "0154", City: "Oslo", Country: "NO"}
	inv, err = invoiceFor(t, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range inv.Lines {
		if l.VAT != (xmlValue{Value: "0", VATCode: "EUUM"}) {
			t.Errorf("export to a business: line %d VAT = %+v, want EUUM", i+1, l.VAT)
		}
	}
	if inv.After != "Buyer's VAT number: 923456789MVA" || inv.Customer != (xmlValue{Value: "923456789MVA", Type: "customer"}) {
		t.Errorf("export to a business: free text %q, customer %+v", inv.After, inv.Customer)
	}
	o.Customer.TaxIDs = nil
	if inv, err := invoiceFor(t, o, nil); err != nil || inv.Lines[0].VAT.VATCode != "EUUM" || inv.After != "" {
		t.Errorf("export to a business without a VAT number: %+v %v", inv, err)
	}
}

// An untaxed sale whose goods leave the EU gets the export code.
func TestInvoiceExport(t *testing.T) {
	o := testOrder()
	o.Items = []integrations.LineItem{{Description: "Sauna stones", Quantity: 2, UnitAmount: 2000, AmountSubtotal: 4000, AmountTotal: 4000, TaxBehavior: "exclusive", Taxes: tax(0, "0", "not_subject_to_tax")}}
	o.ShippingCost = &integrations.ShippingCost{AmountSubtotal: 0, AmountTotal: 0} // free shipping: no line
	o.AmountTotal, o.AmountTax, o.AmountSubtotal = 4000, 0, 4000
	o.Shipping.Country = "NO"
	inv, err := invoiceFor(t, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Lines) != 1 || inv.Lines[0].VAT != (xmlValue{Value: "0", VATCode: "EUUM"}) {
		t.Errorf("lines = %+v", inv.Lines)
	}
	o.Shipping.Country = "SE" // inside the EU: the configured code at 0 %
	inv, _ = invoiceFor(t, o, nil)
	if inv.Lines[0].VAT.VATCode != "KOMY" {
		t.Errorf("EU destination: %+v", inv.Lines[0].VAT)
	}
	// Territories of member states outside the EU VAT area, by postal
	// code, against the rest of the same country.
	for _, c := range []struct{ country, postal, want string }{
		{"ES", "35001", "EUUM"},    // Las Palmas de Gran Canaria
		{"ES", "38003", "EUUM"},    // Santa Cruz de Tenerife
		{"ES", "51001", "EUUM"},    // Ceuta
		{"ES", "28013", "KOMY"},    // Madrid
		{"FI", "22100", "EUUM"},    // Mariehamn, Åland, written as Finland
		{"FI", "AX-22100", "EUUM"}, // the same with Åland's prefix
		{"FI", "00100", "KOMY"},    // Helsinki
		{"FI", "21200", "KOMY"},    // Raisio, next to Åland's range
		{"AX", "22100", "EUUM"},
		{"FR", "97400", "EUUM"},    // Saint-Denis, Réunion
		{"FR", "97133", "EUUM"},    // Saint-Barthélemy
		{"FR", "98000", "KOMY"},    // Monaco, inside the area with France
		{"MC", "98000", "KOMY"},    // the same, as Checkout writes it
		{"GB", "BT1 5GS", "KOMY"},  // Belfast: EU rules for goods (Windsor Framework)
		{"GB", "bt48 6dq", "KOMY"}, // Derry, written in lower case
		{"XI", "BT1 5GS", "KOMY"},
		{"GB", "SW1A 1AA", "EUUM"}, // London
		{"GB", "B1 1AA", "EUUM"},   // Birmingham: B, not BT
		{"SM", "47890", "EUUM"},    // San Marino, outside the area
		{"AD", "AD500", "EUUM"},    // Andorra
		{"FR", "75001", "KOMY"},
		{"DE", "27498", "EUUM"}, // Heligoland
		{"DE", "27499", "KOMY"},
		{"IT", "23041", "EUUM"},  // Livigno
		{"GR", "630 86", "EUUM"}, // Mount Athos, written with Greece's space
		{"GR", "10557", "KOMY"},  // Athens
	} {
		o.Shipping.Country, o.Shipping.PostalCode = c.country, c.postal
		inv, err := invoiceFor(t, o, nil)
		if err != nil || inv.Lines[0].VAT.VATCode != c.want {
			t.Errorf("%s %s: vatcode %+v (%v), want %s", c.country, c.postal, inv.Lines, err, c.want)
		}
	}
	// A taxed line keeps the configured code wherever it goes: Stripe
	// charged VAT, and the invoice says what was charged.
	o.Shipping.Country, o.Shipping.PostalCode = "ES", "35001"
	o.Items[0].Taxes, o.Items[0].AmountTax = tax(841, "21", "standard_rated"), 841
	o.Items[0].AmountTotal, o.AmountTotal, o.AmountTax = 4841, 4841, 841
	if inv, err := invoiceFor(t, o, nil); err != nil || inv.Lines[0].VAT.VATCode != "KOMY" {
		t.Errorf("taxed line to the Canary Islands: %+v %v", inv.Lines, err)
	}
}

// Goods leaving the EU VAT area that carry a foreign tax (a US state's
// sales tax, Norway's VAT) are an export: the goods at the export code
// without VAT, and the tax a line of its own at the foreign-tax code, so
// the tax is not reported as Finnish output VAT at a rate Finland does not
// have. The lines still add up to what was paid.
func TestInvoiceForeignTaxOnExport(t *testing.T) {
	us := func(a, b, c int64) []integrations.Tax {
		return []integrations.Tax{{Amount: a, Percentage: "4", DisplayName: "Sales Tax", Jurisdiction: "NEW YORK", Country: "US", State: "NY"},
			{Amount: b, Percentage: "4.5", DisplayName: "Sales Tax", Jurisdiction: "NEW YORK CITY", Country: "US", State: "NY"},
			{Amount: c, Percentage: "0.375", DisplayName: "Sales Tax", Jurisdiction: "MCTD", Country: "US", State: "NY"}}
	}
	o := testOrder()
	o.Currency = "usd"
	o.Items = []integrations.LineItem{{Description: "Desk lamp", Quantity: 1, UnitAmount: 10000, AmountSubtotal: 10000, AmountTax: 888, AmountTotal: 10888, TaxBehavior: "exclusive", Taxes: us(400, 450, 38)}}
	o.ShippingCost = &integrations.ShippingCost{AmountSubtotal: 995, AmountTax: 89, AmountTotal: 1084, TaxBehavior: "exclusive", Name: "UPS Ground", Taxes: us(40, 45, 4)}
	o.AmountTotal, o.AmountTax, o.AmountSubtotal = 11972, 977, 10000
	o.Shipping = integrations.Address{Name: "Jordan Miller", Line1: "350 5th Ave", PostalCode: "10118", City: "New York", State: "NY", Country: "US"}
	inv, err := invoiceFor(t, o, func(c *Config) { c.ForeignTaxProductIdentifier = "1700" })
	if err != nil {
		t.Fatal(err)
	}
	if inv.Amount.Value != "119,72" {
		t.Errorf("amount = %s, want 119,72", inv.Amount.Value)
	}
	taxText := "collected for US, not Finnish VAT: Sales Tax NEW YORK 4 %% %s USD, Sales Tax NEW YORK CITY 4.5 %% %s USD, Sales Tax MCTD 0.375 %% %s USD"
	want := []xmlLine{
		{Product: xmlValue{Value: "1697", Type: "netvisor"}, Name: "Desk lamp", UnitPrice: xmlValue{Value: "100,00", Type: "net"}, VAT: xmlValue{Value: "0", VATCode: "EUUM"},
			Quantity: "1", FreeText: "1 × 100.00 USD excl. VAT; its foreign tax on the next line", VatSum: "0,00", Sum: "100,00"},
		{Product: xmlValue{Value: "1700", Type: "netvisor"}, Name: "Sales Tax 8.875 % (US): Desk lamp", UnitPrice: xmlValue{Value: "8,88", Type: "net"}, VAT: xmlValue{Value: "0", VATCode: "NONE"},
			Quantity: "1", FreeText: fmt.Sprintf(taxText, "4.00", "4.50", "0.38"), VatSum: "0,00", Sum: "8,88"},
		{Product: xmlValue{Value: "1697", Type: "netvisor"}, Name: "Shipping: UPS Ground", UnitPrice: xmlValue{Value: "9,95", Type: "net"}, VAT: xmlValue{Value: "0", VATCode: "EUUM"},
			Quantity: "1", FreeText: "its foreign tax on the next line", VatSum: "0,00", Sum: "9,95"},
		{Product: xmlValue{Value: "1700", Type: "netvisor"}, Name: "Sales Tax 8.875 % (US): Shipping: UPS Ground", UnitPrice: xmlValue{Value: "0,89", Type: "net"}, VAT: xmlValue{Value: "0", VATCode: "NONE"},
			Quantity: "1", FreeText: fmt.Sprintf(taxText, "0.40", "0.45", "0.04"), VatSum: "0,00", Sum: "0,89"},
	}
	if !slices.Equal(inv.Lines, want) {
		t.Errorf("lines:\n got %+v\nwant %+v", inv.Lines, want)
	}

	// Norway's VAT on a price that includes it: the goods at their net.
	no := []integrations.Tax{{Amount: 6980, Percentage: "25", DisplayName: "MVA", Country: "NO", TaxabilityReason: "standard_rated"}}
	o = testOrder()
	o.Currency = "nok"
	o.Items = []integrations.LineItem{{Description: "Ullgenser", Quantity: 1, UnitAmount: 34900, AmountSubtotal: 34900, AmountTax: 6980, AmountTotal: 34900, TaxBehavior: "inclusive", Taxes: no}}
	o.ShippingCost = nil
	o.AmountTotal, o.AmountTax, o.AmountSubtotal = 34900, 6980, 34900
	o.Shipping = integrations.Address{Name: "Kari Nordmann", Line1: "Karl Johans gate 1", PostalCode: "0154", City: "Oslo", Country: "NO"}
	inv, err = invoiceFor(t, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = []xmlLine{
		{Product: xmlValue{Value: "1697", Type: "netvisor"}, Name: "Ullgenser", UnitPrice: xmlValue{Value: "279,20", Type: "net"}, VAT: xmlValue{Value: "0", VATCode: "EUUM"},
			Quantity: "1", FreeText: "1 × 349.00 NOK incl. VAT; its foreign tax on the next line", VatSum: "0,00", Sum: "279,20"},
		{Product: xmlValue{Value: "1697", Type: "netvisor"}, Name: "MVA 25 % (NO): Ullgenser", UnitPrice: xmlValue{Value: "69,80", Type: "net"}, VAT: xmlValue{Value: "0", VATCode: "NONE"},
			Quantity: "1", FreeText: "collected for NO, not Finnish VAT: MVA 25 % 69.80 NOK", VatSum: "0,00", Sum: "69,80"},
	}
	if !slices.Equal(inv.Lines, want) {
		t.Errorf("Norway:\n got %+v\nwant %+v", inv.Lines, want)
	}

	// Finnish VAT charged on goods to Åland, and a tax whose country
	// Stripe did not say, stay Finnish VAT at the configured code.
	for _, country := range []string{"FI", "AX", ""} {
		o = testOrder()
		o.Items[0].Taxes[0].Country, o.Items[1].Taxes[0].Country, o.ShippingCost.Taxes[0].Country = country, country, country
		o.Shipping = integrations.Address{Name: "Anna Eriksson", Line1: "Torggatan 1", PostalCode: "22100", City: "Mariehamn", Country: "AX"}
		inv, err = invoiceFor(t, o, nil)
		if err != nil || len(inv.Lines) != 3 || inv.Lines[0].VAT != (xmlValue{Value: "25,5", VATCode: "KOMY"}) || inv.Lines[0].VatSum != "6,38" {
			t.Errorf("Åland, tax country %q: %+v %v", country, inv.Lines, err)
		}
	}

	// A three-decimal currency: the foreign taxes are rounded as a
	// running total of their own, the goods get the rest of each line,
	// and both add up exactly.
	kw := func(a int64) []integrations.Tax {
		return []integrations.Tax{{Amount: a, Percentage: "5", DisplayName: "VAT", Country: "KW"}}
	}
	o = testOrder()
	o.Currency = "kwd"
	o.Items = []integrations.LineItem{
		{Description: "Dallah", Quantity: 1, UnitAmount: 1230, AmountSubtotal: 1230, AmountTax: 65, AmountTotal: 1295, TaxBehavior: "exclusive", Taxes: kw(65)},
		{Description: "Finjan", Quantity: 1, UnitAmount: 1240, AmountSubtotal: 1240, AmountTax: 65, AmountTotal: 1305, TaxBehavior: "exclusive", Taxes: kw(65)},
	}
	o.ShippingCost = nil
	o.AmountTotal, o.AmountTax, o.AmountSubtotal = 2600, 130, 2470
	o.Shipping = integrations.Address{Name: "Fatima Al-Sabah", Line1: "Gulf Road 1", PostalCode: "13001", City: "Kuwait City", Country: "KW"}
	inv, err = invoiceFor(t, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sums []string
	for _, l := range inv.Lines {
		sums = append(sums, l.VAT.VATCode+" "+l.Sum+"/"+l.VatSum)
	}
	if want := []string{"EUUM 1,23/0,00", "NONE 0,07/0,00", "EUUM 1,24/0,00", "NONE 0,06/0,00"}; !slices.Equal(sums, want) || inv.Amount.Value != "2,60" {
		t.Errorf("KWD: %v, amount %s; want %v, 2,60", sums, inv.Amount.Value, want)
	}

	// Stripe's reverse charge on goods leaving the area is an export all
	// the same: EUUM, not the EU sales code.
	o = testOrder()
	o.Customer.TaxExempt = "reverse"
	o.Customer.TaxIDs = []integrations.TaxID{{Type: "no_vat", Value: "NO123456789MVA"}}
	o.Items = []integrations.LineItem{{Description: "Sauna stones", Quantity: 1, UnitAmount: 4000, AmountSubtotal: 4000, AmountTotal: 4000, TaxBehavior: "exclusive",
		Taxes: []integrations.Tax{{Amount: 0, Percentage: "0", Country: "NO", TaxabilityReason: "reverse_charge"}}}}
	o.ShippingCost = nil
	o.AmountTotal, o.AmountTax, o.AmountSubtotal = 4000, 0, 4000
	o.Shipping.Country, o.Shipping.PostalCode = "NO", "0154"
	if inv, err := invoiceFor(t, o, nil); err != nil || len(inv.Lines) != 1 || inv.Lines[0].VAT.VATCode != "EUUM" || strings.Contains(inv.After, "Reverse charge") {
		t.Errorf("reverse charge on an export: %+v %q %v", inv.Lines, inv.After, err)
	}
}

// US sales tax: three rates on one line become one line at 8.875 % with
// Stripe's VAT sum, the rates listed in the line's text.
func TestInvoiceSeveralRatesPerLine(t *testing.T) {
	o := testOrder()
	o.Currency = "usd"
	o.Items = []integrations.LineItem{{Description: "Desk lamp", Quantity: 1, UnitAmount: 10000, AmountSubtotal: 10000, AmountTax: 888, AmountTotal: 10888, TaxBehavior: "exclusive",
		Taxes: []integrations.Tax{{Amount: 400, Percentage: "4", DisplayName: "Sales Tax", Jurisdiction: "NEW YORK"},
			{Amount: 450, Percentage: "4.5", DisplayName: "Sales Tax", Jurisdiction: "NEW YORK CITY"},
			{Amount: 38, Percentage: "0.375", DisplayName: "Sales Tax", Jurisdiction: "MCTD"}}}}
	o.ShippingCost = nil
	o.AmountTotal, o.AmountTax, o.AmountSubtotal = 10888, 888, 10000
	o.Shipping.Country = "US"
	inv, err := invoiceFor(t, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := inv.Lines[0]
	if l.VAT.Value != "8,875" || l.VatSum != "8,88" || l.Sum != "108,88" || l.UnitPrice.Value != "100,00" {
		t.Errorf("line = %+v", l)
	}
	if l.FreeText != "1 × 100.00 USD excl. VAT; Sales Tax NEW YORK 4 % 4.00 USD, Sales Tax NEW YORK CITY 4.5 % 4.50 USD, Sales Tax MCTD 0.375 % 0.38 USD" {
		t.Errorf("text = %q", l.FreeText)
	}
}

// A price taxed in parts at two rates (a gift basket of food and other
// goods: Stripe's portion_reduced_rated and portion_standard_rated, each
// tax on its part's net) is a line per part, each at its own rate, so the
// VAT report has each part under its rate; a line at 14 + 25.5 = 39.5 %
// would have none. Taxes whose taxable amounts do not make the net stay
// one line, as stacked rates do.
func TestInvoiceLineInParts(t *testing.T) {
	basket := func(taxableFood, taxableOther int64) integrations.Order {
		o := testOrder()
		o.Items = []integrations.LineItem{{Description: "Lahjakori", Quantity: 2, UnitAmount: 2000, AmountSubtotal: 4000, AmountTax: 752, AmountTotal: 4752, TaxBehavior: "exclusive",
			Taxes: []integrations.Tax{
				{Amount: 350, TaxableAmount: taxableFood, Percentage: "14", DisplayName: "ALV", TaxabilityReason: "portion_reduced_rated"},
				{Amount: 402, TaxableAmount: taxableOther, Percentage: "25.5", DisplayName: "ALV", TaxabilityReason: "portion_standard_rated"}}}}
		o.ShippingCost = nil
		o.AmountTotal, o.AmountTax, o.AmountSubtotal, o.AmountShipping = 4752, 752, 4000, 0
		return o
	}
	inv, err := invoiceFor(t, basket(2500, 1500), nil)
	if err != nil {
		t.Fatal(err)
	}
	type line struct{ vat, vatSum, sum, unit, text string }
	var got []line
	for _, l := range inv.Lines {
		got = append(got, line{l.VAT.Value, l.VatSum, l.Sum, l.UnitPrice.Value, l.FreeText})
	}
	text := "2 × 20.00 EUR excl. VAT; ALV 14 % 3.50 EUR (portion reduced rated), ALV 25.5 % 4.02 EUR (portion standard rated)"
	want := []line{
		{"14", "3,50", "28,50", "25,00", text + "; part 1 of 2, at 14 %"},
		{"25,5", "4,02", "19,02", "15,00", text + "; part 2 of 2, at 25.5 %"},
	}
	if !slices.Equal(got, want) || inv.Amount.Value != "47,52" {
		t.Errorf("lines =\n  %+v\nwant\n  %+v (amount %s)", got, want, inv.Amount.Value)
	}
	inv, err = invoiceFor(t, basket(4000, 4000), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Lines) != 1 || inv.Lines[0].VAT.Value != "39,5" || inv.Lines[0].Sum != "47,52" {
		t.Errorf("taxes on the whole line: lines = %+v", inv.Lines)
	}
}

// A PaymentIntent without Checkout is invoiced as one line of its amount.
func TestInvoicePaymentIntentOnly(t *testing.T) {
	o := integrations.Order{Model: 2, ID: "pi_3Only", Number: "OF-3ONLY", Currency: "sek", AmountTotal: 49900, AmountSubtotal: 49900,
		Items:    []integrations.LineItem{{Description: "Konsultation 1 h", Quantity: 1, UnitAmount: 49900, AmountSubtotal: 49900, AmountTotal: 49900, TaxBehavior: "unspecified"}},
		Customer: integrations.Customer{Name: "Åsa", Email: "a@example.se"}, Shipping: integrations.Address{Country: "SE"}}
	inv, err := invoiceFor(t, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Amount.Value != "499,00" || len(inv.Lines) != 1 || inv.Lines[0].Sum != "499,00" || inv.Lines[0].VAT.Value != "0" ||
		inv.After != "Paid without Stripe Checkout: Stripe computed no tax for this payment." {
		t.Errorf("invoice = %+v", inv)
	}
}

func TestConfigRejectsUnknownVATCode(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:1")
	cfg.ExportVATCode = "EUPM"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `ExportVATCode "EUPM"`) {
		t.Fatalf("Validate = %v", err)
	}
}

// A price in fractions of a cent (unit_amount_decimal) is written with
// every decimal it has; a price with no unit amount at all (tiered) by
// what its units came to. Neither is "0.00 EUR" a unit.
func TestInvoiceLineTextOfPricesWithoutAUnitAmount(t *testing.T) {
	o := testOrder()
	o.Items = []integrations.LineItem{
		{Description: "Seeds", Quantity: 2, UnitAmountDecimal: "624.75", AmountSubtotal: 1250, AmountTax: 250, AmountTotal: 1250, TaxBehavior: "inclusive",
			Taxes: []integrations.Tax{{Amount: 250, Percentage: "25"}}},
		{Description: "Bulk clay", Quantity: 30, AmountSubtotal: 4500, AmountTax: 900, AmountTotal: 4500, TaxBehavior: "inclusive",
			Taxes: []integrations.Tax{{Amount: 900, Percentage: "25"}}},
	}
	o.ShippingCost = nil
	o.AmountTotal, o.AmountTax, o.AmountSubtotal = 5750, 1150, 5750
	inv, err := invoiceFor(t, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"2 × 6.2475 EUR incl. VAT", "30 for 45.00 EUR incl. VAT"} {
		if got := inv.Lines[i].FreeText; got != want {
			t.Errorf("line %d text = %q, want %q", i, got, want)
		}
	}
	if inv.Lines[0].Sum != "12,50" || inv.Lines[1].Sum != "45,00" {
		t.Errorf("line sums %s, %s, want 12,50 and 45,00", inv.Lines[0].Sum, inv.Lines[1].Sum)
	}
}

// A sale to a consumer in another member state that Stripe taxed at that
// country's rate (the One-Stop Shop) is no Finnish VAT: the invoice says
// so, naming the countries and rates, for the accountant's OSS return.
// Finnish VAT, VAT of a country Stripe did not name, and a reverse-charge
// sale say nothing of it.
func TestInvoiceNotesOSSVAT(t *testing.T) {
	de := func(amount int64) []integrations.Tax {
		return []integrations.Tax{{Amount: amount, Percentage: "19", DisplayName: "MwSt.", Country: "DE", TaxabilityReason: "standard_rated"}}
	}
	o := testOrder()
	o.Items = []integrations.LineItem{{Description: "Wollsocken", Quantity: 2, UnitAmount: 2490, AmountSubtotal: 4980, AmountTax: 795, AmountTotal: 4980, TaxBehavior: "inclusive", Taxes: de(795)}}
	o.ShippingCost = &integrations.ShippingCost{AmountSubtotal: 990, AmountTax: 158, AmountTotal: 990, TaxBehavior: "inclusive", Taxes: de(158)}
	o.AmountTotal, o.AmountTax, o.AmountSubtotal = 5970, 953, 4980
	o.Customer = integrations.Customer{Name: "Jana Schmidt", Email: "jana@example.de", Address: integrations.Address{Line1: "Hauptstraße 1", PostalCode: "10115", City: "Berlin", Country: "DE"}}
	o.Shipping = integrations.Address{Name: "Jana Schmidt", Line1: "Hauptstraße 1", PostalCode: "10115", City: "Berlin", Country: "DE"}
	inv, err := invoiceFor(t, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "VAT of DE 19 % charged for the country the goods go to (EU One-Stop Shop): not Finnish VAT; report it in the OSS return"; inv.After != want {
		t.Errorf("free text %q, want %q", inv.After, want)
	}
	if inv.Lines[0].VAT != (xmlValue{Value: "19", VATCode: "KOMY"}) || inv.Lines[0].VatSum != "7,95" {
		t.Errorf("goods line VAT %+v %s, want 19 %% at KOMY, 7,95", inv.Lines[0].VAT, inv.Lines[0].VatSum)
	}
	for _, country := range []string{"FI", ""} {
		o.Items[0].Taxes[0].Country, o.ShippingCost.Taxes[0].Country = country, country
		if inv, err := invoiceFor(t, o, nil); err != nil || inv.After != "" {
			t.Errorf("tax of %q: free text %q (%v), want none", country, inv.After, err)
		}
	}
}
