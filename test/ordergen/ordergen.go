// Package ordergen generates random orders whose amounts are computed the
// way Stripe computes them (integer minor units, each tax rounded half up
// from an exact rational), for property tests of the invariants every
// provider keeps: an invoice or an email built from such an order must add
// up to what the customer paid, whatever its lines, rates, discounts,
// shipping and currency. The generator plays Stripe; the code under test
// never computes the expected amounts.
package ordergen

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// Currencies are the generator's currencies: zero-, two- and
// three-decimal ones.
var Currencies = []string{"eur", "sek", "dkk", "nok", "gbp", "usd", "chf", "jpy", "krw", "kwd", "bhd"}

// rateSets are the taxes of one line: one VAT rate, US state + city +
// district, or none.
var rateSets = [][]string{{"25.5"}, {"24"}, {"14"}, {"13.5"}, {"10"}, {"25"}, {"19"}, {"7"}, {"0"}, {"4", "4.5", "0.375"}, {"6.25", "1"}, {}}

// roundRat is r rounded half up to an integer (r ≥ 0).
func roundRat(r *big.Rat) int64 {
	q := new(big.Int)
	m := new(big.Int)
	q.QuoRem(r.Num(), r.Denom(), m)
	if new(big.Int).Mul(m, big.NewInt(2)).Cmp(r.Denom()) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	return q.Int64()
}

func pct(s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		panic("ordergen: bad rate " + s)
	}
	return r
}

// taxes computes the taxes of an amount: for exclusive, each rate on the
// net; for inclusive, the total tax inside the gross, split by rate with
// the remainder on the last.
func taxes(amount int64, rates []string, inclusive bool, reason string) []integrations.Tax {
	out := make([]integrations.Tax, 0, len(rates))
	if len(rates) == 0 {
		return out
	}
	if !inclusive {
		for _, p := range rates {
			t := new(big.Rat).Mul(new(big.Rat).SetInt64(amount), pct(p))
			t.Quo(t, big.NewRat(100, 1))
			out = append(out, integrations.Tax{Amount: roundRat(t), TaxableAmount: amount, Percentage: p, TaxabilityReason: reason})
		}
		return out
	}
	sum := new(big.Rat)
	for _, p := range rates {
		sum.Add(sum, pct(p))
	}
	den := new(big.Rat).Add(sum, big.NewRat(100, 1))
	total := roundRat(new(big.Rat).Quo(new(big.Rat).Mul(new(big.Rat).SetInt64(amount), sum), den))
	var used int64
	for i, p := range rates {
		a := total - used
		if i < len(rates)-1 {
			a = roundRat(new(big.Rat).Quo(new(big.Rat).Mul(new(big.Rat).SetInt64(amount), pct(p)), den))
		}
		used += a
		out = append(out, integrations.Tax{Amount: a, TaxableAmount: amount - total, Percentage: p, Inclusive: true, TaxabilityReason: reason})
	}
	return out
}

func sumTax(ts []integrations.Tax) int64 {
	var s int64
	for _, t := range ts {
		s += t.Amount
	}
	return s
}

// Order returns a random order. About one in six is a B2B reverse-charge
// sale with a VAT id, one in eight a PaymentIntent without Checkout.
func Order(rng *rand.Rand, n int) integrations.Order {
	cur := Currencies[rng.IntN(len(Currencies))]
	id := fmt.Sprintf("pi_3Gen%020d", n)
	o := integrations.Order{
		Model: integrations.OrderModel, ID: id, PaymentIntentID: id, Number: integrations.OrderNumber(id), Currency: cur,
		Customer:  integrations.Customer{Name: "Åsa Öberg & <Söner>", Email: fmt.Sprintf("buyer%d@example.com", n), TaxExempt: "none"},
		Shipping:  integrations.Address{Name: "Recipient", Line1: "Street 1", Line2: "B 2", PostalCode: "00100", City: "Helsinki", Country: "FI"},
		CreatedAt: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
	}
	const unit = 1
	if rng.IntN(8) == 0 {
		amount := (1 + rng.Int64N(500000)) * unit
		o.Items = []integrations.LineItem{{Description: "Payment", Quantity: 1, UnitAmount: amount, AmountSubtotal: amount, AmountTotal: amount, TaxBehavior: integrations.TaxUnspecified}}
		o.AmountTotal, o.AmountSubtotal = amount, amount
		return o
	}
	o.CheckoutSessionID = "cs_test_" + id[3:]
	rc := rng.IntN(6) == 0
	if rc {
		o.Customer.TaxIDs = []integrations.TaxID{{Type: "eu_vat", Value: "DE123456789"}}
		o.Shipping.Country = "DE"
	}
	lines := 1 + rng.IntN(12)
	for i := range lines {
		qty := 1 + rng.Int64N(5)
		price := (1 + rng.Int64N(200000)) * unit
		inclusive := rng.IntN(2) == 0
		it := integrations.LineItem{ID: fmt.Sprintf("li_%d", i+1), Description: fmt.Sprintf("Item %d", i+1), Quantity: qty, UnitAmount: price, AmountSubtotal: price * qty}
		it.TaxBehavior = integrations.TaxExclusive
		if inclusive {
			it.TaxBehavior = integrations.TaxInclusive
		}
		if off := []int64{0, 0, 10, 15, 50}[rng.IntN(5)]; off > 0 {
			it.AmountDiscount = roundRat(big.NewRat(it.AmountSubtotal*off, 100))
			it.Discounts = []integrations.Discount{{Amount: it.AmountDiscount, CouponID: "C", PercentOff: fmt.Sprint(off)}}
		}
		after := it.AmountSubtotal - it.AmountDiscount
		rates := rateSets[rng.IntN(len(rateSets))]
		reason := "standard_rated"
		if rc {
			rates, reason = []string{"0"}, integrations.ReasonReverseCharge
		}
		it.Taxes = taxes(after, rates, inclusive, reason)
		if !rc && after >= 2 && rng.IntN(6) == 0 {
			// A price taxed in two parts at two rates (a gift basket of
			// food and other goods): each part's tax on its own net.
			part := 1 + rng.Int64N(after-1)
			reduced := taxes(part, []string{"14"}, inclusive, "portion_reduced_rated")
			standard := taxes(after-part, []string{"25.5"}, inclusive, "portion_standard_rated")
			it.Taxes = append(reduced, standard...)
		}
		it.AmountTax = sumTax(it.Taxes)
		it.AmountTotal = after
		if !inclusive {
			it.AmountTotal += it.AmountTax
		}
		o.Items = append(o.Items, it)
		o.AmountSubtotal += it.AmountSubtotal
		o.AmountDiscount += it.AmountDiscount
		o.AmountTax += it.AmountTax
		o.AmountTotal += it.AmountTotal
	}
	switch rng.IntN(5) {
	case 0: // no shipping
	case 1: // free
		o.ShippingCost = &integrations.ShippingCost{TaxBehavior: integrations.TaxExclusive}
	case 2, 3: // taxed, inclusive or exclusive
		inclusive := rng.IntN(2) == 0
		amount := (100 + rng.Int64N(5000)) * unit
		rates, reason := []string{"25.5"}, "standard_rated"
		if rc {
			rates, reason = []string{"0"}, integrations.ReasonReverseCharge
		}
		sc := &integrations.ShippingCost{AmountSubtotal: amount, Taxes: taxes(amount, rates, inclusive, reason), TaxBehavior: integrations.TaxExclusive}
		sc.AmountTax = sumTax(sc.Taxes)
		sc.AmountTotal = amount
		if inclusive {
			sc.TaxBehavior = integrations.TaxInclusive
		} else {
			sc.AmountTotal += sc.AmountTax
		}
		o.ShippingCost = sc
	case 4: // untaxed
		amount := (100 + rng.Int64N(5000)) * unit
		o.ShippingCost = &integrations.ShippingCost{AmountSubtotal: amount, AmountTotal: amount, TaxBehavior: integrations.TaxUnspecified}
	}
	if o.ShippingCost != nil {
		o.AmountShipping = o.ShippingCost.AmountSubtotal
		o.AmountTax += o.ShippingCost.AmountTax
		o.AmountTotal += o.ShippingCost.AmountTotal
	}
	return o
}
