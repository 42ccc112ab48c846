package integrations

import (
	"strconv"
	"strings"
)

// zeroDecimal and threeDecimal list the currencies whose minor unit is not a
// hundredth (Stripe's list of zero-decimal and three-decimal currencies).
var (
	zeroDecimal = map[string]bool{
		"bif": true, "clp": true, "djf": true, "gnf": true, "jpy": true,
		"kmf": true, "krw": true, "mga": true, "pyg": true, "rwf": true,
		"ugx": true, "vnd": true, "vuv": true, "xaf": true, "xof": true, "xpf": true,
	}
	threeDecimal = map[string]bool{"bhd": true, "jod": true, "kwd": true, "omr": true, "tnd": true}
)

// Exponent is the number of decimal places of a currency's minor unit:
// 0 for JPY, 3 for KWD, 2 for EUR and most others.
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
	exp := Exponent(currency)
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

// FormatMoney is FormatAmount followed by the upper-case currency code:
// "19.99 EUR".
func FormatMoney(minor int64, currency string) string {
	return FormatAmount(minor, currency) + " " + strings.ToUpper(currency)
}
