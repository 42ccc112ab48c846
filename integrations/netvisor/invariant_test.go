package netvisor

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/test/ordergen"
)

// units reads a Netvisor amount ("1234,56", "1500") as an integer count
// of its smallest unit.
func units(t *testing.T, s string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(strings.Replace(s, ",", "", 1), 10, 64)
	if err != nil {
		t.Fatalf("amount %q: %v", s, err)
	}
	return v
}

// The invoice invariant over generated orders (played by ordergen as
// Stripe computes them: inclusive and exclusive prices, discounts, one to
// three rates per line, a line taxed in two parts at two rates, free,
// taxed, untaxed and inclusive shipping,
// reverse charge, PaymentIntents without Checkout, in 0-, 2- and
// 3-decimal currencies; every fourth one sent to the United States with
// its taxes made a US sales tax): Σ line sums = SalesInvoiceAmount =
// amount paid and Σ VAT sums + Σ foreign-tax line sums = tax charged, to
// the minor unit; every line's unit price (with its VAT when net) is its
// sum; a line taxed in parts is a line per part at its rate; a line with
// a foreign tax is two, the goods at the export code and the tax at the
// foreign-tax code, neither with VAT. An order a three-decimal currency
// cannot carry in two decimals is refused, and only such an order.
func TestInvoiceInvariantGenerated(t *testing.T) {
	c := newTest(t, &fakeNetvisor{status: 200, body: "file:created.xml"}, nil)
	rng := rand.New(rand.NewPCG(14, 2026))
	refused, foreignLines := 0, 0
	for n := range 1000 {
		o := ordergen.Order(rng, n)
		export := n%4 == 3 && !o.ReverseCharge()
		if export {
			o.Shipping.Country, o.Shipping.PostalCode = "US", "10118"
			for i := range o.Items {
				for j := range o.Items[i].Taxes {
					o.Items[i].Taxes[j].Country = "US"
				}
			}
			if sc := o.ShippingCost; sc != nil {
				for j := range sc.Taxes {
					sc.Taxes[j].Country = "US"
				}
			}
		}
		div := int64(1)
		if integrations.Exponent(o.Currency) == 3 {
			div = 10
		}
		doc, err := c.invoiceXML(o, integrations.Shipment{}, "1", "1", "netvisor")
		representable := o.AmountTotal%div == 0 && o.AmountTax%div == 0
		if !representable {
			if !integrations.IsPermanent(err) {
				t.Fatalf("order %d (%s %d, tax %d): want a permanent error, got %v", n, o.Currency, o.AmountTotal, o.AmountTax, err)
			}
			refused++
			continue
		}
		if err != nil {
			t.Fatalf("order %d: %v\n%+v", n, err, o)
		}
		inv := parseInvoice(t, []byte(latin9ToUTF8(encodeISO885915(doc))))
		var sum, vat, foreign int64
		for i, l := range inv.Lines {
			s, v, u := units(t, l.Sum), units(t, l.VatSum), units(t, l.UnitPrice.Value)
			if l.UnitPrice.Type == "net" {
				u += v
			}
			if u != s || l.Quantity != "1" {
				t.Fatalf("order %d line %d: unit price %s (%s) + VAT %s does not give its sum %s", n, i+1, l.UnitPrice.Value, l.UnitPrice.Type, l.VatSum, l.Sum)
			}
			sum += s
			vat += v
			if l.VAT.VATCode == "NONE" {
				foreign += s
				foreignLines++
			}
			if export && v != 0 {
				t.Fatalf("order %d line %d: VAT %s on an export", n, i+1, l.VatSum)
			}
		}
		if sum*div != o.AmountTotal || units(t, inv.Amount.Value)*div != o.AmountTotal {
			t.Fatalf("order %d (%s): lines %d, SalesInvoiceAmount %s, paid %d", n, o.Currency, sum*div, inv.Amount.Value, o.AmountTotal)
		}
		if (vat+foreign)*div != o.AmountTax {
			t.Fatalf("order %d (%s): VAT %d and foreign tax %d, tax charged %d", n, o.Currency, vat*div, foreign*div, o.AmountTax)
		}
		// A line Stripe taxed in parts is a line per part, each at its
		// part's rate; any other is one line.
		wantLines := 0
		for _, it := range o.Items {
			wantLines++
			switch {
			case export && it.AmountTax != 0:
				wantLines++ // its tax
			case !export && len(it.Taxes) == 2 && it.Taxes[0].TaxabilityReason == "portion_reduced_rated":
				wantLines++
			}
		}
		if sc := o.ShippingCost; sc != nil && (sc.AmountTotal != 0 || sc.AmountTax != 0) {
			wantLines++
			if export && sc.AmountTax != 0 && len(sc.Taxes) > 0 {
				wantLines++
			}
		}
		if len(inv.Lines) != wantLines {
			t.Fatalf("order %d: %d invoice lines, want %d", n, len(inv.Lines), wantLines)
		}
		for i, l := range inv.Lines {
			if strings.Contains(l.FreeText, "; part ") && l.VAT.Value != "14" && l.VAT.Value != "25,5" {
				t.Fatalf("order %d line %d: a part at %s %%, want 14 or 25,5", n, i+1, l.VAT.Value)
			}
		}
		if o.ReverseCharge() && !strings.Contains(inv.After, o.Customer.VATID()) {
			t.Fatalf("order %d: reverse charge without the VAT number", n)
		}
	}
	if refused == 0 {
		t.Error("no generated order was unrepresentable: the refusal path went untested")
	}
	if foreignLines == 0 {
		t.Error("no foreign-tax line was written: the export path went untested")
	}
}
