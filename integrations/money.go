package integrations

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// zeroDecimal and threeDecimal list the currencies whose minor unit is not a
// hundredth, from Stripe's currency table. ISK and UGX are not here: Stripe
// represents them as two-decimal amounts ending in 00 (5 ISK = 500), so
// their API integers are hundredths like EUR's.
var (
	zeroDecimal = map[string]bool{
		"bif": true, "clp": true, "djf": true, "gnf": true, "jpy": true,
		"kmf": true, "krw": true, "mga": true, "pyg": true, "rwf": true,
		"vnd": true, "vuv": true, "xaf": true, "xof": true, "xpf": true,
	}
	threeDecimal = map[string]bool{"bhd": true, "jod": true, "kwd": true, "omr": true, "tnd": true}
)

// Exponent is the number of decimal places of a currency's minor unit as
// Stripe's API integers count them: 0 for JPY, 3 for KWD, 2 for EUR and
// most others.
func Exponent(currency string) int {
	c := strings.ToLower(currency)
	switch {
	case zeroDecimal[c]:
		return 0
	case threeDecimal[c]:
		return 3
	}
	return 2
}

// FormatAmount renders minor units as a plain decimal string with the
// currency's exponent and a dot separator: (1999,"eur") → "19.99",
// (500,"jpy") → "500", (1234,"kwd") → "1.234", (-5,"eur") → "-0.05".
// It is exact: no floating point is involved.
func FormatAmount(minor int64, currency string) string {
	return FormatMinor(minor, Exponent(currency))
}

// FormatMinor renders an integer count of 10^-exp units as a decimal
// string with exp decimals: (1234, 2) → "12.34", (5, 3) → "0.005".
func FormatMinor(minor int64, exp int) string {
	neg := minor < 0
	u := uint64(minor)
	if neg {
		u = uint64(-minor)
	}
	s := strconv.FormatUint(u, 10)
	if exp > 0 {
		if len(s) <= exp {
			s = strings.Repeat("0", exp-len(s)+1) + s
		}
		s = s[:len(s)-exp] + "." + s[len(s)-exp:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// FormatMinorDecimal renders a non-negative plain decimal count of minor
// units (Stripe's unit_amount_decimal) in major units, exactly, with at
// least the currency's decimals: ("624.75","eur") → "6.2475",
// ("1999","eur") → "19.99", ("12.5","jpy") → "12.5".
func FormatMinorDecimal(minor, currency string) (string, error) {
	whole, frac, _ := strings.Cut(strings.TrimSpace(minor), ".")
	frac = strings.TrimRight(frac, "0")
	digits := whole + frac
	if whole == "" || strings.Trim(digits, "0123456789") != "" {
		return "", fmt.Errorf("amount %q is not a plain decimal", minor)
	}
	exp := Exponent(currency)
	// digits × 10^-(len(frac)+exp), with at least exp decimals.
	scale := len(frac) + exp
	digits = strings.TrimLeft(digits, "0")
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	if scale == 0 {
		return digits, nil
	}
	return digits[:len(digits)-scale] + "." + digits[len(digits)-scale:], nil
}

// FormatMoney is FormatAmount followed by the upper-case currency code:
// "19.99 EUR".
func FormatMoney(minor int64, currency string) string {
	return FormatAmount(minor, currency) + " " + strings.ToUpper(currency)
}

// ParsePercent reads a tax percentage written as a decimal ("25.5",
// "8.875", "0") exactly.
func ParsePercent(s string) (*big.Rat, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty percentage")
	}
	for i, c := range s {
		if !(c >= '0' && c <= '9' || c == '.' && i > 0) {
			return nil, fmt.Errorf("percentage %q is not a plain decimal", s)
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("percentage %q is not a plain decimal", s)
	}
	return r, nil
}

// FormatPercent writes r as the shortest plain decimal that is exactly r
// ("25.5", "8.875", "24"). r must have a terminating decimal expansion
// (every sum of decimals has); otherwise it is written with 6 decimals.
func FormatPercent(r *big.Rat) string {
	for prec := 0; prec <= 12; prec++ {
		s := r.FloatString(prec)
		if back, ok := new(big.Rat).SetString(s); ok && back.Cmp(r) == 0 {
			return s
		}
	}
	return r.FloatString(6)
}

// SumPercent adds decimal percentages exactly: ("4", "4.5", "0.375") →
// "8.875". An empty list is "0".
func SumPercent(ps ...string) (string, error) {
	sum := new(big.Rat)
	for _, p := range ps {
		r, err := ParsePercent(p)
		if err != nil {
			return "", err
		}
		sum.Add(sum, r)
	}
	return FormatPercent(sum), nil
}

// Check verifies the identities of Stripe's amounts that every provider
// relies on: the lines and the shipping add up to the amount paid and to
// the tax charged, and every line's gross is its net plus its tax. It
// returns a description of the first violation, or nil.
func (o Order) Check() error {
	var gross, tax int64
	for i, it := range o.Items {
		if it.Quantity <= 0 {
			return fmt.Errorf("line %d has quantity %d", i+1, it.Quantity)
		}
		if it.AmountTax < 0 || it.AmountTotal < 0 || it.AmountDiscount < 0 {
			return fmt.Errorf("line %d has a negative amount", i+1)
		}
		var lineTax int64
		for _, t := range it.Taxes {
			lineTax += t.Amount
			if _, err := ParsePercent(t.Percentage); err != nil {
				return fmt.Errorf("line %d: %v", i+1, err)
			}
		}
		if len(it.Taxes) > 0 && lineTax != it.AmountTax {
			return fmt.Errorf("line %d: its taxes add up to %s, its tax is %s", i+1,
				FormatMoney(lineTax, o.Currency), FormatMoney(it.AmountTax, o.Currency))
		}
		if len(it.Taxes) == 0 && it.AmountTax != 0 {
			return fmt.Errorf("line %d has tax %s but no tax rate", i+1, FormatMoney(it.AmountTax, o.Currency))
		}
		gross += it.AmountTotal
		tax += it.AmountTax
	}
	if s := o.ShippingCost; s != nil {
		if s.AmountTax < 0 || s.AmountTotal < 0 {
			return fmt.Errorf("shipping has a negative amount")
		}
		var shipTax int64
		for _, t := range s.Taxes {
			shipTax += t.Amount
			if _, err := ParsePercent(t.Percentage); err != nil {
				return fmt.Errorf("shipping: %v", err)
			}
		}
		if len(s.Taxes) > 0 && shipTax != s.AmountTax {
			return fmt.Errorf("shipping: its taxes add up to %s, its tax is %s",
				FormatMoney(shipTax, o.Currency), FormatMoney(s.AmountTax, o.Currency))
		}
		if len(s.Taxes) == 0 && s.AmountTax != 0 {
			return fmt.Errorf("shipping has tax %s but no tax rate", FormatMoney(s.AmountTax, o.Currency))
		}
		gross += s.AmountTotal
		tax += s.AmountTax
	}
	if gross != o.AmountTotal {
		return fmt.Errorf("lines and shipping add up to %s, the amount paid is %s",
			FormatMoney(gross, o.Currency), FormatMoney(o.AmountTotal, o.Currency))
	}
	if tax != o.AmountTax {
		return fmt.Errorf("the taxes of lines and shipping add up to %s, the tax charged is %s",
			FormatMoney(tax, o.Currency), FormatMoney(o.AmountTax, o.Currency))
	}
	return nil
}
