package netvisor

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"strings"

	"github.com/orderflow/orderflow/integrations"
)

// invoiceXML builds the salesinvoice.nv document. Elements follow the order
// of Netvisor's DTD (as in its documented examples); optional elements are
// left out when empty, since an empty element is not "no value" to Netvisor.
//
// Amounts: unit prices are the order lines' UnitAmount (before tax, so
// type="net"), the total is what the customer paid (tax and shipping
// included). The shipping line is net as well (Stripe's amount_shipping is
// before tax) and carries the highest VAT rate of the order's lines, as
// Finnish VAT treats delivery as part of the main supply.
func (c *Client) invoiceXML(o integrations.Order, s integrations.Shipment, number string) ([]byte, error) {
	const op = "add sales invoice"
	cur := strings.ToUpper(o.Currency)
	if len(cur) != 3 {
		return nil, integrations.Permanentf(provider, op, "order %s has no currency", o.ID)
	}
	if len(o.Items) == 0 {
		return nil, integrations.Permanentf(provider, op, "order %s has no lines", o.ID)
	}
	cfg := c.cfg
	date := o.CreatedAt
	if date.IsZero() {
		date = c.now()
	}

	var b bytes.Buffer
	w := func(name, value string, attrs ...string) {
		if value == "" {
			return
		}
		b.WriteString("<" + name)
		for i := 0; i+1 < len(attrs); i += 2 {
			b.WriteString(" " + attrs[i] + `="`)
			_ = xml.EscapeText(&b, []byte(attrs[i+1]))
			b.WriteString(`"`)
		}
		b.WriteString(">")
		_ = xml.EscapeText(&b, []byte(value))
		b.WriteString("</" + name + ">")
	}

	addr := o.Shipping
	name := o.Customer.Name
	if name == "" {
		name = addr.Name
	}
	b.WriteString("<Root><SalesInvoice>")
	w("SalesInvoiceNumber", number)
	w("SalesInvoiceDate", date.In(cfg.Location).Format("2006-01-02"))
	w("SalesInvoiceAmount", Amount(o.AmountTotal, o.Currency), "iso4217currencycode", cur)
	w("SalesInvoiceStatus", cfg.InvoiceStatus, "type", "netvisor")
	w("InvoicingCustomerIdentifier", cfg.CustomerIdentifier, "type", cfg.CustomerIdentifierType)
	w("InvoicingCustomerName", cut(name, 250))
	w("InvoicingCustomerAddressLine", cut(addr.Line1, 80))
	w("InvoicingCustomerAdditionalAddressLine", cut(addr.Line2, 80))
	w("InvoicingCustomerPostNumber", addr.PostalCode)
	w("InvoicingCustomerTown", addr.City)
	w("InvoicingCustomerCountryCode", strings.ToUpper(addr.Country))
	w("DeliveryAddressName", cut(addr.Name, 250))
	w("DeliveryAddressLine", cut(addr.Line1, 80))
	w("DeliveryAddressPostNumber", addr.PostalCode)
	w("DeliveryAddressTown", addr.City)
	w("DeliveryAddressCountryCode", strings.ToUpper(addr.Country))
	w("PaymentTermNetDays", strconv.Itoa(cfg.PaymentTermNetDays))
	b.WriteString("<InvoiceLines>")

	var maxRate int64
	line := func(product, productType, name string, unit, rate, qty int64, freeText string) {
		b.WriteString("<InvoiceLine><SalesInvoiceProductLine>")
		w("ProductIdentifier", product, "type", productType)
		w("ProductName", cut(name, 200))
		w("ProductUnitPrice", Amount(unit, o.Currency), "type", "net")
		w("ProductVatPercentage", VATPercent(rate), "vatcode", cfg.VATCode)
		w("SalesInvoiceProductLineQuantity", strconv.FormatInt(qty, 10))
		w("SalesInvoiceProductLineFreeText", cut(freeText, 500))
		b.WriteString("</SalesInvoiceProductLine></InvoiceLine>")
	}
	for i, it := range o.Items {
		if it.Quantity <= 0 || it.TaxRateBasisPoints < 0 || it.TaxRateBasisPoints > 10000 {
			return nil, integrations.Permanentf(provider, op, "order %s line %d: quantity %d or VAT rate %d bp out of range", o.ID, i+1, it.Quantity, it.TaxRateBasisPoints)
		}
		product, productType := cfg.ProductIdentifier, cfg.ProductIdentifierType
		if cfg.UseSKUAsProduct && it.SKU != "" {
			product, productType = it.SKU, "customer"
		}
		desc := it.Description
		if desc == "" {
			desc = it.SKU
		}
		line(product, productType, desc, it.UnitAmount, it.TaxRateBasisPoints, it.Quantity, "")
		maxRate = max(maxRate, it.TaxRateBasisPoints)
	}
	if o.AmountShipping > 0 {
		var free string
		if s.TrackingNumber != "" {
			free = "Tracking " + s.TrackingNumber
		}
		line(cfg.ShippingProductIdentifier, cfg.ProductIdentifierType, cfg.ShippingProductName, o.AmountShipping, maxRate, 1, free)
	}
	b.WriteString("</InvoiceLines></SalesInvoice></Root>")
	return b.Bytes(), nil
}

// Amount formats minor units the Finnish way Netvisor expects: the
// currency's decimals, a decimal comma, no thousands separator, integers
// only: (123456, "eur") → "1234,56", (500, "jpy") → "500",
// (1234, "kwd") → "1,234".
func Amount(minor int64, currency string) string {
	return strings.Replace(integrations.FormatAmount(minor, currency), ".", ",", 1)
}

// VATPercent formats a rate in basis points as Netvisor's percentage:
// 2550 → "25,5", 2400 → "24", 1405 → "14,05", 0 → "0".
func VATPercent(bp int64) string {
	s := strconv.FormatInt(bp/100, 10)
	if frac := bp % 100; frac != 0 {
		f := strconv.FormatInt(frac+100, 10)[1:] // two digits
		s += "," + strings.TrimRight(f, "0")
	}
	return s
}

func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}
