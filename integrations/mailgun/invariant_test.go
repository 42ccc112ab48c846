package mailgun

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/test/ordergen"
)

// minor reads "12.345 KWD" back into minor units, exactly.
func minor(t *testing.T, s, currency string) int64 {
	t.Helper()
	num, cur, ok := strings.Cut(s, " ")
	if !ok || cur != strings.ToUpper(currency) {
		t.Fatalf("amount %q is not in %s", s, currency)
	}
	if integrations.Exponent(currency) > 0 && strings.Count(num, ".") != 1 {
		t.Fatalf("amount %q lacks its decimals", s)
	}
	v, err := strconv.ParseInt(strings.Replace(num, ".", "", 1), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The email invariant over generated orders: every line and the shipping
// shown as priced (Stripe's amount_subtotal, gross when inclusive of tax,
// net when exclusive), and subtotal (Σ item totals) − discount + shipping +
// tax_added = total = what was paid; tax_added is the tax of the lines and
// shipping priced exclusive of tax, and vat_included + tax_added is the tax
// charged; each item's unit price × quantity is its total when given.
func TestEmailAddsUpGenerated(t *testing.T) {
	c, _, _ := newTest(t, reply{})
	rng := rand.New(rand.NewPCG(13, 2026))
	for n := range 2000 {
		o := ordergen.Order(rng, n)
		v, err := c.TemplateVariables(o, testShipment, testInvoice)
		if err != nil {
			t.Fatalf("order %d: %v", n, err)
		}
		cur := o.Currency
		var items, discounts, exclusiveTax int64
		for i, it := range v.Items {
			total := minor(t, it.Total, cur)
			if line := o.Items[i]; total != line.AmountSubtotal {
				t.Fatalf("order %d item %d: total %s, Stripe's subtotal %d", n, i+1, it.Total, line.AmountSubtotal)
			} else if line.TaxBehavior == integrations.TaxExclusive {
				exclusiveTax += line.AmountTax
			}
			items += total
			if it.Discount != "" {
				discounts += minor(t, it.Discount, cur)
			}
			if it.UnitPrice != "" && minor(t, it.UnitPrice, cur)*it.Quantity != total {
				t.Fatalf("order %d item %d: %d × %s ≠ %s", n, i+1, it.Quantity, it.UnitPrice, it.Total)
			}
		}
		if sc := o.ShippingCost; sc != nil && sc.TaxBehavior == integrations.TaxExclusive {
			exclusiveTax += sc.AmountTax
		}
		sub, disc, ship, tot := minor(t, v.Subtotal, cur), minor(t, v.Discount, cur), minor(t, v.Shipping, cur), minor(t, v.Total, cur)
		added, incl := minor(t, v.TaxAdded, cur), minor(t, v.VATIncluded, cur)
		if sub != items || disc != discounts || sub-disc+ship+added != tot || tot != o.AmountTotal {
			t.Fatalf("order %d: %s − %s + %s + %s = %s does not add up to the %d paid", n, v.Subtotal, v.Discount, v.Shipping, v.TaxAdded, v.Total, o.AmountTotal)
		}
		if added != exclusiveTax || incl+added != o.AmountTax {
			t.Fatalf("order %d: tax %s added + %s included, want %d added of the %d charged", n, v.TaxAdded, v.VATIncluded, exclusiveTax, o.AmountTax)
		}
	}
}
