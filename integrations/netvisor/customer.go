package netvisor

import (
	"bytes"
	"context"
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"

	"github.com/orderflow/orderflow/integrations"
)

// A business buyer (one who gave a VAT number at checkout) is invoiced as a
// customer of its own: Netvisor's sales invoice has no element for the
// buyer's VAT number, which lives on the customer record
// (CustomerBaseInformation/ExternalIdentifier: the business id, "in the
// case of a foreign customer … the customer's VAT number"; see
// BusinessID). The client finds the customer by its code
// (customerlist.nv?customercodelist=), adds it when missing
// (customer.nv?method=add) and links the invoice to it by that code
// (InvoicingCustomerIdentifier type="customer"). Orders without a VAT
// number go to the configured CustomerIdentifier, as before.

// CustomerCode is the Netvisor customer code of a business buyer: its VAT
// number in capitals with everything but letters and digits removed
// ("de 123.456.789" → "DE123456789"), so the same buyer is one customer
// whichever way it typed the number.
func CustomerCode(vatID string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(vatID) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// BusinessID is the customer's business id (ExternalIdentifier) for its
// code: a Finnish VAT number (FI and eight digits) is the Y-tunnus it is
// made of, written as Finnish registers write it ("FI23456789" →
// "2345678-9"); a foreign customer's is its VAT number, as Netvisor asks.
func BusinessID(code string) string {
	if d, ok := strings.CutPrefix(code, "FI"); ok && len(d) == 8 && strings.Trim(d, "0123456789") == "" {
		return d[:7] + "-" + d[7:]
	}
	return code
}

// invoiceCustomer returns the customer identifier and its type that the
// order's invoice links to, adding the business customer first when the
// buyer gave a VAT number.
func (c *Client) invoiceCustomer(ctx context.Context, o integrations.Order) (id, typ string, err error) {
	vat := o.Customer.VATID()
	code := CustomerCode(vat)
	if c.cfg.SharedCustomerOnly || code == "" {
		return c.cfg.CustomerIdentifier, c.cfg.CustomerIdentifierType, nil
	}
	found, err := c.findCustomer(ctx, code)
	if err != nil {
		return "", "", err
	}
	if !found {
		if err := c.addCustomer(ctx, o, code); err != nil {
			// Another processor may have added the same buyer a moment
			// ago (two orders of one business at once): look again
			// before giving up.
			if again, ferr := c.findCustomer(ctx, code); ferr != nil || !again {
				return "", "", err
			}
		}
	}
	return code, "customer", nil
}

// findCustomer reports whether a customer with the code exists.
func (c *Client) findCustomer(ctx context.Context, code string) (bool, error) {
	const op = "find customer"
	raw, err := c.do(ctx, op, http.MethodGet, "/customerlist.nv", url.Values{"customercodelist": {code}}, nil)
	if err != nil {
		return false, err
	}
	var r struct {
		Customers []struct {
			Code string `xml:"Code"`
		} `xml:"Customerlist>Customer"`
	}
	if err := unmarshal(raw, &r); err != nil {
		return false, integrations.Transientf(provider, op, "unreadable customer list")
	}
	for _, cu := range r.Customers {
		if strings.EqualFold(strings.TrimSpace(cu.Code), code) {
			return true, nil
		}
	}
	return false, nil
}

// addCustomer adds the order's buyer as a business customer: name, billing
// address, email and VAT number.
func (c *Client) addCustomer(ctx context.Context, o integrations.Order, code string) error {
	const op = "add customer"
	bill := o.BillingAddress()
	var b bytes.Buffer
	w := elementWriter(&b)
	b.WriteString("<Root><Customer><CustomerBaseInformation>")
	w("InternalIdentifier", code)
	w("ExternalIdentifier", BusinessID(code))
	w("Name", cut(o.BuyerName(), 250))
	w("StreetAddress", cut(bill.Line1, 80))
	w("AdditionalAddressLine", cut(bill.Line2, 80))
	w("City", bill.City)
	w("PostNumber", bill.PostalCode)
	w("Country", strings.ToUpper(bill.Country), "type", "ISO-3166")
	w("Email", o.Customer.Email)
	w("IsActive", "1")
	w("IsPrivateCustomer", "0")
	b.WriteString("</CustomerBaseInformation></Customer></Root>")
	body := b.Bytes()
	if c.cfg.Encoding == EncodingISO885915 {
		body = encodeISO885915(body)
	}
	if _, err := c.do(ctx, op, http.MethodPost, "/customer.nv", url.Values{"method": {"add"}}, body); err != nil {
		return err
	}
	// The code is the buyer's VAT number: customer data, not logged.
	c.log.InfoContext(ctx, "business customer added", "order_id", o.ID, "country", o.Customer.Address.Country)
	return nil
}

// elementWriter returns a function that appends <name attr="v">value</name>
// to b, escaped, and nothing for an empty value: an empty element is not
// "no value" to Netvisor.
func elementWriter(b *bytes.Buffer) func(name, value string, attrs ...string) {
	return func(name, value string, attrs ...string) {
		if value == "" {
			return
		}
		b.WriteByte('<')
		b.WriteString(name)
		for i := 0; i+1 < len(attrs); i += 2 {
			b.WriteByte(' ')
			b.WriteString(attrs[i])
			b.WriteString(`="`)
			escapeText(b, attrs[i+1])
			b.WriteByte('"')
		}
		b.WriteByte('>')
		escapeText(b, value)
		b.WriteString("</")
		b.WriteString(name)
		b.WriteByte('>')
	}
}

// escapeText appends s to b escaped as xml.EscapeText escapes it. Text of
// printable ASCII without the characters EscapeText replaces (< > & ' ")
// is appended as it is, which is what EscapeText writes for it, without
// its copy of s; anything else goes to EscapeText.
func escapeText(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c >= 0x7f, c == '<', c == '>', c == '&', c == '\'', c == '"':
			_ = xml.EscapeText(b, []byte(s))
			return
		}
	}
	b.WriteString(s)
}
