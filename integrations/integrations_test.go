package integrations

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestFormatAmount(t *testing.T) {
	for _, tc := range []struct {
		minor    int64
		currency string
		want     string
	}{
		{1999, "eur", "19.99"}, {5, "EUR", "0.05"}, {-5, "eur", "-0.05"}, {0, "eur", "0.00"},
		{500, "jpy", "500"}, {1234, "kwd", "1.234"}, {7, "kwd", "0.007"}, {100000, "sek", "1000.00"},
	} {
		if got := FormatAmount(tc.minor, tc.currency); got != tc.want {
			t.Errorf("FormatAmount(%d, %s) = %q, want %q", tc.minor, tc.currency, got, tc.want)
		}
	}
	if got := FormatMoney(2400, "jpy"); got != "2400 JPY" {
		t.Errorf("FormatMoney = %q", got)
	}
}

func TestClassifyStatus(t *testing.T) {
	for status, want := range map[int]Class{
		400: Permanent, 401: Permanent, 404: Permanent, 422: Permanent,
		408: Transient, 409: Transient, 425: Transient, 429: Transient, 500: Transient, 503: Transient,
	} {
		if got := ClassifyStatus(status); got != want {
			t.Errorf("ClassifyStatus(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "7": 7 * time.Second, "-1": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := ParseRetryAfter(v, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestErrorHelpers(t *testing.T) {
	perm := fmt.Errorf("step: %w", Permanentf("zoho", "upsert", "bad field %s", "Email"))
	if !IsPermanent(perm) || ProviderOf(perm) != "zoho" {
		t.Errorf("wrapped permanent error not recognised: %v", perm)
	}
	ra := &Error{Provider: "airtable", Op: "upsert", Status: 429, Class: Transient, RetryAfter: 30 * time.Second}
	if d, ok := RetryAfterOf(ra); !ok || d != 30*time.Second || IsPermanent(ra) {
		t.Errorf("RetryAfterOf = %v %v", d, ok)
	}
	if IsPermanent(errors.New("plain")) {
		t.Error("an unclassified error counts as permanent")
	}
	if err := NetError("x", "op", context.Canceled); !errors.Is(err, context.Canceled) || IsPermanent(err) {
		t.Errorf("NetError(canceled) = %v", err)
	}
	if got := (&Error{Provider: "p", Op: "op", Status: 503, Msg: "down"}).Error(); got != "p: op: HTTP 503: down" {
		t.Errorf("Error() = %q", got)
	}
}

func TestOrderNumberAndURL(t *testing.T) {
	if got := OrderNumber("pi_3QzW0OZVyBJIXq0JNdylE8Cg"); got != "OF-0JNDYLE8CG" {
		t.Errorf("OrderNumber = %q", got)
	}
	if OrderNumber("pi_x") != OrderNumber("pi_x") || OrderNumber("pi_a") == OrderNumber("pi_b") {
		t.Error("OrderNumber is not a stable function of the id")
	}
	for raw, want := range map[string]bool{
		"https://api.stripe.com": true, "http://127.0.0.1:8090": true,
		"api.stripe.com": false, "ftp://x": false, "https://": false, "": false,
	} {
		if IsHTTPURL(raw) != want {
			t.Errorf("IsHTTPURL(%q) = %v, want %v", raw, !want, want)
		}
	}
}

func TestFormatMinorDecimal(t *testing.T) {
	for _, tt := range []struct{ minor, cur, want string }{
		{"624.75", "eur", "6.2475"},
		{"1999", "eur", "19.99"},
		{"1999.500", "eur", "19.995"},
		{"5", "eur", "0.05"},
		{"0.5", "eur", "0.005"},
		{"12.5", "jpy", "12.5"},
		{"1234", "jpy", "1234"},
		{"1234.1", "kwd", "1.2341"},
		{"007.10", "eur", "0.071"},
	} {
		got, err := FormatMinorDecimal(tt.minor, tt.cur)
		if err != nil || got != tt.want {
			t.Errorf("FormatMinorDecimal(%q, %q) = %q, %v; want %q", tt.minor, tt.cur, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "-5", "1e3", "1.2.3", ".5", "abc"} {
		if got, err := FormatMinorDecimal(bad, "eur"); err == nil {
			t.Errorf("FormatMinorDecimal(%q) = %q, want an error", bad, got)
		}
	}
}

// TestBillingAddress: a billing address Stripe collected in part (Checkout's
// default collects a country, perhaps a postal code) is completed by the
// shipping address only when that address agrees with it and goes to the
// buyer.
func TestBillingAddress(t *testing.T) {
	home := Address{Name: "Sanna Öhman", Line1: "Kauppakatu 21", PostalCode: "40100", City: "Jyväskylä", Country: "FI", Phone: "+358401234567"}
	homeBilled := Address{Name: "Sanna Öhman", Line1: "Kauppakatu 21", PostalCode: "40100", City: "Jyväskylä", Country: "FI"}
	stockholm := Address{Name: "Åsa Berg", Line1: "Kungsgatan 21", PostalCode: "111 56", City: "Stockholm", Country: "SE"}
	for _, tc := range []struct {
		name     string
		buyer    string
		billing  Address
		shipping Address
		want     Address
	}{
		{"full billing address kept", "Sanna Öhman",
			Address{Line1: "Hämeenkatu 10", PostalCode: "33100", City: "Tampere", Country: "FI"}, home,
			Address{Name: "Sanna Öhman", Line1: "Hämeenkatu 10", PostalCode: "33100", City: "Tampere", Country: "FI"}},
		{"country only, same person", "Sanna Öhman", Address{Country: "FI"}, home, homeBilled},
		{"country and postal code, card name in capitals without accents", "SANNA OHMAN",
			Address{Country: "FI", PostalCode: "40100"}, home,
			Address{Name: "SANNA OHMAN", Line1: "Kauppakatu 21", PostalCode: "40100", City: "Jyväskylä", Country: "FI"}},
		{"postal code written apart", "Åsa Berg", Address{Country: "SE", PostalCode: "11156"}, stockholm, stockholm},
		{"ø written as o", "Soren Kjaer", Address{Country: "DK"},
			Address{Name: "Søren Kjær", Line1: "Vesterbrogade 1", PostalCode: "1620", City: "København V", Country: "DK"},
			Address{Name: "Soren Kjaer", Line1: "Vesterbrogade 1", PostalCode: "1620", City: "København V", Country: "DK"}},
		{"another postal code: the buyer lives elsewhere", "Sanna Öhman",
			Address{Country: "FI", PostalCode: "00100"}, home, Address{Name: "Sanna Öhman", Country: "FI", PostalCode: "00100"}},
		{"another country", "Sanna Öhman", Address{Country: "SE"}, home, Address{Name: "Sanna Öhman", Country: "SE"}},
		{"a gift: the parcel goes to someone else", "Liisa Korhonen", Address{Country: "FI"}, home,
			Address{Name: "Liisa Korhonen", Country: "FI"}},
		{"no name given: the shipping name", "", Address{Country: "FI"}, home, homeBilled},
		{"no billing details: the shipping address", "", Address{}, home, home},
		{"no billing address, the buyer's own parcel", "SANNA ÖHMAN", Address{}, home, home},
		{"no billing address, a gift: only the buyer's name", "Väinö Virtanen", Address{}, home, Address{Name: "Väinö Virtanen"}},
		{"shipping without a street: the part kept", "Sanna Öhman", Address{Country: "FI"},
			Address{Name: "Sanna Öhman", Country: "FI", PostalCode: "40100"}, Address{Name: "Sanna Öhman", Country: "FI"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Order{Customer: Customer{Name: tc.buyer, Address: tc.billing}, Shipping: tc.shipping}
			if got := o.BillingAddress(); got != tc.want {
				t.Errorf("BillingAddress() =\n  %+v\nwant\n  %+v", got, tc.want)
			}
		})
	}
}

// The goods go to the shipping address when it has a country, else to the
// buyer: an order of no shipping address (goods collected, or none
// collected) goes where the billing address is.
func TestDestination(t *testing.T) {
	o := Order{
		Customer: Customer{Name: "Åsa Öberg", Address: Address{Line1: "Storgatan 1", PostalCode: "41138", City: "Göteborg", Country: "SE"}},
		Shipping: Address{Name: "Mikko Virtanen", Line1: "Mannerheimintie 12", PostalCode: "00100", City: "Helsinki", Country: "FI"},
	}
	if got := o.Destination(); got.Country != "FI" || got.City != "Helsinki" {
		t.Errorf("with a shipping address: %+v, want Helsinki, FI", got)
	}
	o.Shipping = Address{}
	if got := o.Destination(); got.Country != "SE" || got.City != "Göteborg" || got.Name != "Åsa Öberg" {
		t.Errorf("without one: %+v, want the buyer in Göteborg, SE", got)
	}
}
