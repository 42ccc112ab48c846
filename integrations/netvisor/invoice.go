package netvisor

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/orderflow/orderflow/integrations"
)

// An invoice line carries one Stripe line item, or the shipping, exactly as
// Stripe charged it: quantity 1 at the line's total, with the VAT sum and
// the line sum (gross) given, so Netvisor computes nothing. The unit price
// is gross for a price inclusive of tax and net otherwise, as the shop
// priced it; the real quantity, unit price and discount are in the line's
// free text. (A real quantity would need a unit price that cannot always
// represent Stripe's rounded total, e.g. 3 × 12.55 with 10 % off: 33.885
// where Stripe charged 33.88.)
//
// After building, the invoice is checked: Σ line sums = the amount paid
// (amount_total) and Σ VAT sums = the tax charged (total_details.amount_tax)
// to the minor unit, and the unit price of every line with its VAT is its
// sum. A violation is a permanent error: the order is dead-lettered, never
// invoiced wrongly.
//
// Netvisor keeps two decimals. Zero- and two-decimal currencies are
// carried exactly. A three-decimal currency (KWD, BHD, ...) is carried in
// hundredths: each line's gross and VAT are rounded half up on their
// running totals (cumulative rounding), so every line is within half a
// hundredth of Stripe's amount and the invoice totals are exactly the
// rounded totals; an order whose amount paid or tax is not a whole number
// of hundredths cannot be invoiced exactly and is a permanent error.

// invoiceLine is one line as it will be written, in invoice units
// (hundredths for a three-decimal currency, else the currency's minor unit).
type invoiceLine struct {
	product, productType, name string
	priceType                  string // net or gross
	gross, vat                 int64  // invoice units
	percent                    string // exact decimal, "25.5"
	vatCode                    string
	freeText                   string
	// foreignTax marks a line that carries a foreign tax collected on
	// goods leaving the EU VAT area (see isForeignTax): its sum is tax
	// charged, at no Finnish VAT.
	foreignTax bool
}

// unitPrice is the line's unit price at quantity 1.
func (l invoiceLine) unitPrice() int64 {
	if l.priceType == "gross" {
		return l.gross
	}
	return l.gross - l.vat
}

// carrier converts Stripe amounts into invoice units with cumulative
// rounding: the units sent so far are always the running total rounded
// half up.
type carrier struct {
	div       int64 // Stripe minor units per invoice unit: 1 or 10
	cum, sent int64
}

func (c *carrier) next(v int64) int64 {
	c.cum += v
	target := roundDiv(c.cum, c.div)
	out := target - c.sent
	c.sent = target
	return out
}

// roundDiv is v/d rounded half away from zero.
func roundDiv(v, d int64) int64 {
	if d == 1 {
		return v
	}
	if v < 0 {
		return -roundDiv(-v, d)
	}
	return (v + d/2) / d
}

// vatCode chooses a line's vatcode: the export code for an untaxed line
// to a destination outside the EU VAT area (a business buyer's too: goods
// leaving the area are an export, not an EU sale reverse-charged, which
// would go into the EC sales list), the reverse-charge code when Stripe
// said the buyer accounts for the VAT, else the configured code (domestic
// sales, KOMY by default).
func (c *Client) vatCode(o integrations.Order, taxes []integrations.Tax, vat int64) string {
	rc := o.Customer.TaxExempt == "reverse"
	for _, t := range taxes {
		if t.TaxabilityReason == integrations.ReasonReverseCharge {
			rc = true
		}
	}
	switch {
	case vat == 0 && integrations.LeavesEUVATArea(o.Destination()):
		return c.cfg.ExportVATCode
	case rc:
		return c.cfg.ReverseChargeVATCode
	}
	return c.cfg.VATCode
}

// isForeignTax reports whether a line's taxes are a foreign tax collected
// on goods that leave the EU VAT area: a sales tax or VAT of another
// country than Finland (a US state's, Norway's, the United Kingdom's),
// which is no Finnish output VAT. Such a line is an export (the export
// code, no VAT) and its tax a line of its own. A tax of Finland or Åland,
// and a tax whose country Stripe did not say (a manual tax rate without
// one), is Finnish VAT.
func isForeignTax(o integrations.Order, taxes []integrations.Tax, v int64) bool {
	if v == 0 || len(taxes) == 0 || !integrations.LeavesEUVATArea(o.Destination()) {
		return false
	}
	for _, t := range taxes {
		if !othersVAT(t) {
			return false
		}
	}
	return o.Customer.TaxExempt != "reverse"
}

// othersVAT reports whether t is a tax Stripe collected for a country
// other than Finland (with Åland), and not a reverse charge: no Finnish
// output VAT. A tax whose country Stripe did not say (a manual tax rate
// without one) is taken as Finnish.
func othersVAT(t integrations.Tax) bool {
	switch strings.ToUpper(t.Country) {
	case "", "FI", "AX":
		return false
	}
	return t.TaxabilityReason != integrations.ReasonReverseCharge
}

// lines builds the invoice lines of the order in invoice units.
func (c *Client) lines(o integrations.Order, s integrations.Shipment, div int64) ([]invoiceLine, error) {
	cfg := c.cfg
	gross := carrier{div: div}
	vat := carrier{div: div}
	foreign := carrier{div: div} // the foreign-tax lines' sums, a part of gross
	var out []invoiceLine
	add := func(l invoiceLine, g, v int64, taxes []integrations.Tax, behavior string) error {
		pct := make([]string, 0, len(taxes))
		for _, t := range taxes {
			pct = append(pct, t.Percentage)
		}
		p, err := integrations.SumPercent(pct...)
		if err != nil {
			return err
		}
		l.percent = p
		l.vatCode = c.vatCode(o, taxes, v)
		l.priceType = "net"
		if behavior == integrations.TaxInclusive {
			l.priceType = "gross"
		}
		l.gross, l.vat = gross.next(g), vat.next(v)
		out = append(out, l)
		return nil
	}
	// A line of goods leaving the EU VAT area that carries a foreign tax
	// is two: the goods at the export code without VAT, and the tax, at
	// ForeignTaxVATCode without VAT. Together they are the line's gross;
	// the tax line's sum is carried apart so that the foreign taxes add
	// up exactly, and the goods line gets the rest.
	addForeign := func(l invoiceLine, g, v int64, taxes []integrations.Tax) error {
		pct := make([]string, 0, len(taxes))
		for _, t := range taxes {
			pct = append(pct, t.Percentage)
		}
		p, err := integrations.SumPercent(pct...)
		if err != nil {
			return err
		}
		taxSum := foreign.next(v)
		goods := l
		goods.freeText = joinText(l.freeText, "its foreign tax on the next line")
		goods.percent, goods.vatCode, goods.priceType = "0", cfg.ExportVATCode, "net"
		goods.gross, goods.vat = gross.next(g)-taxSum, vat.next(0)
		t := invoiceLine{
			product: cfg.ForeignTaxProductIdentifier, productType: cfg.ProductIdentifierType,
			name:     fmt.Sprintf("%s %s %% (%s): %s", foreignTaxName(taxes), p, strings.ToUpper(taxes[0].Country), l.name),
			freeText: foreignTaxText(o, taxes), priceType: "net", percent: "0", vatCode: cfg.ForeignTaxVATCode,
			gross: taxSum, foreignTax: true,
		}
		out = append(out, goods, t)
		return nil
	}
	// A line whose taxes are each on a part of it (a price taxed partly
	// at one rate and partly at another) becomes a line per part, so that
	// each part is at its own rate; taxes on the whole of it (a state's,
	// a county's and a city's) are one line at their rates added.
	addTaxed := func(l invoiceLine, g, v int64, taxes []integrations.Tax, behavior string) error {
		if isForeignTax(o, taxes, v) {
			return addForeign(l, g, v, taxes)
		}
		parts := taxParts(g, v, taxes)
		if parts == nil {
			return add(l, g, v, taxes, behavior)
		}
		for k, t := range parts {
			pl := l
			pl.freeText = joinText(l.freeText, fmt.Sprintf("part %d of %d, at %s %%", k+1, len(parts), t.Percentage))
			if err := add(pl, t.TaxableAmount+t.Amount, t.Amount, []integrations.Tax{t}, behavior); err != nil {
				return err
			}
		}
		return nil
	}
	for i, it := range o.Items {
		product, productType := cfg.ProductIdentifier, cfg.ProductIdentifierType
		if cfg.UseSKUAsProduct && it.SKU != "" {
			product, productType = it.SKU, "customer"
		}
		name := it.Description
		if name == "" {
			name = it.SKU
		}
		behavior := taxBehavior(it.TaxBehavior, it.AmountSubtotal-it.AmountDiscount, it.AmountTax, it.AmountTotal)
		l := invoiceLine{product: product, productType: productType, name: name, freeText: lineText(o, it, behavior, !isForeignTax(o, it.Taxes, it.AmountTax))}
		if err := addTaxed(l, it.AmountTotal, it.AmountTax, it.Taxes, behavior); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
	}
	if sc := o.ShippingCost; sc != nil && (sc.AmountTotal != 0 || sc.AmountTax != 0) {
		name := cfg.ShippingProductName
		if sc.Name != "" {
			name += ": " + sc.Name
		}
		var free []string
		if t := taxText(o, sc.Taxes); t != "" && !isForeignTax(o, sc.Taxes, sc.AmountTax) {
			free = append(free, t)
		}
		if s.TrackingNumber != "" {
			free = append(free, "Tracking "+s.TrackingNumber)
		}
		behavior := taxBehavior(sc.TaxBehavior, sc.AmountSubtotal, sc.AmountTax, sc.AmountTotal)
		l := invoiceLine{product: cfg.ShippingProductIdentifier, productType: cfg.ProductIdentifierType, name: name, freeText: strings.Join(free, "; ")}
		if err := addTaxed(l, sc.AmountTotal, sc.AmountTax, sc.Taxes, behavior); err != nil {
			return nil, fmt.Errorf("shipping: %w", err)
		}
	}
	return out, nil
}

// taxParts returns the taxes of a line of gross g and tax v when each is
// on a part of it: two or more, each on a taxable amount above zero and
// below the line's net, which together make the net and whose amounts
// make its tax (Stripe's portion_standard_rated, portion_reduced_rated and
// portion_product_exempt). Each part's gross is then its taxable amount
// plus its tax, and the parts add up to the line exactly. Otherwise nil:
// the taxes are on the whole line.
func taxParts(g, v int64, taxes []integrations.Tax) []integrations.Tax {
	if len(taxes) < 2 {
		return nil
	}
	net := g - v
	var taxable, tax int64
	for _, t := range taxes {
		if t.TaxableAmount <= 0 || t.TaxableAmount >= net {
			return nil
		}
		taxable += t.TaxableAmount
		tax += t.Amount
	}
	if taxable != net || tax != v {
		return nil
	}
	return taxes
}

// joinText joins the non-empty texts with "; ".
func joinText(texts ...string) string {
	var out []string
	for _, t := range texts {
		if t != "" {
			out = append(out, t)
		}
	}
	return strings.Join(out, "; ")
}

// taxBehavior is a line's (or the shipping's) tax behaviour: the price's,
// and when the price does not say (unspecified: a manual tax rate, or the
// rate not expanded) what Stripe's amounts tell: a tax inside the total
// (the total is the subtotal after discounts) is inclusive, one on top of
// it exclusive. Without a tax there is nothing to tell.
func taxBehavior(behavior string, afterDiscount, tax, total int64) string {
	if behavior != "" && behavior != integrations.TaxUnspecified || tax == 0 {
		return behavior
	}
	switch total {
	case afterDiscount:
		return integrations.TaxInclusive
	case afterDiscount + tax:
		return integrations.TaxExclusive
	}
	return behavior
}

// lineText describes a line for a person: quantity and unit price,
// discounts, and with withTaxes the taxes when there are several or they
// are special (a foreign tax is described on its own line).
func lineText(o integrations.Order, it integrations.LineItem, behavior string, withTaxes bool) string {
	cur := o.Currency
	var parts []string
	if it.UnitAmount != 0 || it.UnitAmountDecimal != "" || it.Quantity != 1 {
		unit := integrations.FormatMoney(it.UnitAmount, cur)
		if it.UnitAmountDecimal != "" {
			if u, err := integrations.FormatMinorDecimal(it.UnitAmountDecimal, cur); err == nil {
				unit = u + " " + strings.ToUpper(cur)
			}
		}
		p := fmt.Sprintf("%d × %s", it.Quantity, unit)
		if it.UnitAmount == 0 && it.UnitAmountDecimal == "" && it.AmountSubtotal != 0 {
			// A price with no unit amount (tiered): the quantity and
			// what the units came to.
			p = fmt.Sprintf("%d for %s", it.Quantity, integrations.FormatMoney(it.AmountSubtotal, cur))
		}
		switch behavior {
		case integrations.TaxInclusive:
			p += " incl. VAT"
		case integrations.TaxExclusive:
			p += " excl. VAT"
		}
		parts = append(parts, p)
	}
	if it.AmountDiscount != 0 {
		d := "discount " + integrations.FormatMoney(it.AmountDiscount, cur)
		var names []string
		for _, x := range it.Discounts {
			if n := discountName(x); n != "" {
				names = append(names, n)
			}
		}
		if len(names) > 0 {
			d += " (" + strings.Join(names, ", ") + ")"
		}
		parts = append(parts, d)
	}
	if t := taxText(o, it.Taxes); t != "" && withTaxes {
		parts = append(parts, t)
	}
	return strings.Join(parts, "; ")
}

func discountName(d integrations.Discount) string {
	switch {
	case d.PromotionCode != "":
		return d.PromotionCode
	case d.Name != "":
		return d.Name
	}
	return d.CouponID
}

// foreignTaxName names a foreign-tax line by its taxes' display names
// ("Sales Tax", "VAT"), else "Foreign tax".
func foreignTaxName(taxes []integrations.Tax) string {
	var names []string
	for _, t := range taxes {
		if t.DisplayName != "" && !slices.Contains(names, t.DisplayName) {
			names = append(names, t.DisplayName)
		}
	}
	if len(names) == 0 {
		return "Foreign tax"
	}
	return strings.Join(names, ", ")
}

// foreignTaxText lists every tax of a foreign-tax line: name,
// jurisdiction, rate and amount.
func foreignTaxText(o integrations.Order, taxes []integrations.Tax) string {
	parts := make([]string, 0, len(taxes))
	for _, t := range taxes {
		name := t.DisplayName
		if name == "" {
			name = "tax"
		}
		if t.Jurisdiction != "" {
			name += " " + t.Jurisdiction
		}
		parts = append(parts, fmt.Sprintf("%s %s %% %s", name, t.Percentage, integrations.FormatMoney(t.Amount, o.Currency)))
	}
	return "collected for " + strings.ToUpper(taxes[0].Country) + ", not Finnish VAT: " + strings.Join(parts, ", ")
}

// taxText lists the taxes of a line when a person needs them: several
// rates (the invoice's percentage is their sum) or a taxability reason
// other than a standard or reduced rate.
func taxText(o integrations.Order, taxes []integrations.Tax) string {
	special := len(taxes) > 1
	for _, t := range taxes {
		switch t.TaxabilityReason {
		case "", "standard_rated", "reduced_rated":
		default:
			special = true
		}
	}
	if !special {
		return ""
	}
	parts := make([]string, 0, len(taxes))
	for _, t := range taxes {
		name := t.DisplayName
		if name == "" {
			name = "tax"
		}
		if t.Jurisdiction != "" {
			name += " " + t.Jurisdiction
		}
		p := fmt.Sprintf("%s %s %% %s", name, t.Percentage, integrations.FormatMoney(t.Amount, o.Currency))
		if t.TaxabilityReason != "" && t.TaxabilityReason != "standard_rated" && t.TaxabilityReason != "reduced_rated" {
			p += " (" + strings.ReplaceAll(t.TaxabilityReason, "_", " ") + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// ossText is the invoice's note for VAT of another member state charged
// on goods staying in the EU VAT area (a sale to a consumer under the
// One-Stop Shop, Stripe taxing at the destination's rate): it names the
// countries and rates, and says that the lines are booked under the
// configured code, for the accountant to report them in the OSS return
// (Netvisor's vatcodes have none for it). Empty when there is none.
func ossText(o integrations.Order) string {
	if integrations.LeavesEUVATArea(o.Destination()) || o.Customer.TaxExempt == "reverse" {
		return ""
	}
	var seen []string
	note := func(taxes []integrations.Tax) {
		for _, t := range taxes {
			if t.Amount == 0 || !othersVAT(t) {
				continue
			}
			if s := strings.ToUpper(t.Country) + " " + t.Percentage + " %"; !slices.Contains(seen, s) {
				seen = append(seen, s)
			}
		}
	}
	for _, it := range o.Items {
		note(it.Taxes)
	}
	if sc := o.ShippingCost; sc != nil {
		note(sc.Taxes)
	}
	if len(seen) == 0 {
		return ""
	}
	return "VAT of " + strings.Join(seen, ", ") + " charged for the country the goods go to (EU One-Stop Shop): not Finnish VAT; report it in the OSS return"
}

// invoiceXML builds the salesinvoice.nv document. Elements follow the order
// of Netvisor's DTD; optional elements are left out when empty, since an
// empty element is not "no value" to Netvisor. The invoice goes to the
// buyer (name and billing address), the delivery address is the
// recipient's (its two street lines joined: the DTD has one delivery line).
func (c *Client) invoiceXML(o integrations.Order, s integrations.Shipment, number, custID, custType string) ([]byte, error) {
	const op = "add sales invoice"
	cur := strings.ToUpper(o.Currency)
	if len(cur) != 3 {
		return nil, integrations.NotSentf(provider, op, "order %s has no currency", o.ID)
	}
	if o.Model < integrations.OrderModel {
		return nil, integrations.NotSentf(provider, op, "order %s was recorded without Stripe's line amounts (an earlier version); its details must be read again", o.ID)
	}
	if len(o.Items) == 0 {
		return nil, integrations.NotSentf(provider, op, "order %s has no lines", o.ID)
	}
	if err := o.Check(); err != nil {
		return nil, integrations.NotSentf(provider, op, "order %s: %v", o.ID, err)
	}
	cfg := c.cfg
	exp := integrations.Exponent(o.Currency)
	div, invExp := int64(1), exp
	if exp > 2 {
		div, invExp = 10, 2
	}
	lines, err := c.lines(o, s, div)
	if err != nil {
		return nil, integrations.NotSentf(provider, op, "order %s %v", o.ID, err)
	}
	if err := checkInvoice(o, lines, div); err != nil {
		return nil, integrations.NotSentf(provider, op, "order %s: the invoice would not add up to what was paid: %v", o.ID, err)
	}
	rc := false
	for _, l := range lines {
		if l.vatCode == cfg.ReverseChargeVATCode {
			rc = true
		}
	}
	vatID := o.Customer.VATID()
	if rc && vatID == "" {
		return nil, integrations.NotSentf(provider, op, "order %s is a reverse-charge sale but the buyer gave no VAT number (customer_details.tax_ids is empty)", o.ID)
	}
	var after []string
	if vatID != "" {
		// As the register has it (the customer code): the number as the
		// buyer typed it may carry spaces, dots or lower case.
		after = append(after, "Buyer's VAT number: "+CustomerCode(vatID))
	}
	if rc {
		after = append(after, cfg.ReverseChargeText)
	}
	if t := ossText(o); t != "" {
		after = append(after, t)
	}
	if o.Items[0].TaxBehavior == integrations.TaxUnspecified && o.CheckoutSessionID == "" && o.AmountTax == 0 {
		after = append(after, "Paid without Stripe Checkout: Stripe computed no tax for this payment.")
	}

	date := o.CreatedAt
	if date.IsZero() {
		date = c.now()
	}
	amount := func(units int64) string { return strings.Replace(integrations.FormatMinor(units, invExp), ".", ",", 1) }

	var b bytes.Buffer
	w := elementWriter(&b)

	bill := o.BillingAddress()
	ship := o.Shipping
	b.WriteString("<Root><SalesInvoice>")
	w("SalesInvoiceNumber", number)
	w("SalesInvoiceDate", date.In(cfg.Location).Format("2006-01-02"))
	w("SalesInvoiceAmount", amount(o.AmountTotal/div), "iso4217currencycode", cur)
	w("SalesInvoiceStatus", cfg.InvoiceStatus, "type", "netvisor")
	w("SalesInvoiceFreeTextAfterLines", cut(strings.Join(after, "\n"), 500))
	w("SalesInvoiceOurReference", o.Number)
	w("InvoicingCustomerIdentifier", custID, "type", custType)
	w("InvoicingCustomerName", cut(o.BuyerName(), 250))
	w("InvoicingCustomerAddressLine", cut(bill.Line1, 80))
	w("InvoicingCustomerAdditionalAddressLine", cut(bill.Line2, 80))
	w("InvoicingCustomerPostNumber", bill.PostalCode)
	w("InvoicingCustomerTown", bill.City)
	w("InvoicingCustomerCountryCode", strings.ToUpper(bill.Country))
	w("DeliveryAddressName", cut(ship.Name, 250))
	w("DeliveryAddressLine", cut(ship.Street(), 80))
	w("DeliveryAddressPostNumber", ship.PostalCode)
	w("DeliveryAddressTown", ship.City)
	w("DeliveryAddressCountryCode", strings.ToUpper(ship.Country))
	w("PaymentTermNetDays", strconv.Itoa(cfg.PaymentTermNetDays))
	b.WriteString("<InvoiceLines>")
	for _, l := range lines {
		b.WriteString("<InvoiceLine><SalesInvoiceProductLine>")
		w("ProductIdentifier", l.product, "type", l.productType)
		w("ProductName", cut(l.name, 200))
		w("ProductUnitPrice", amount(l.unitPrice()), "type", l.priceType)
		w("ProductVatPercentage", strings.Replace(l.percent, ".", ",", 1), "vatcode", l.vatCode)
		w("SalesInvoiceProductLineQuantity", "1")
		w("SalesInvoiceProductLineFreeText", cut(l.freeText, 500))
		w("SalesInvoiceProductLineVatSum", amount(l.vat))
		w("SalesInvoiceProductLineSum", amount(l.gross))
		b.WriteString("</SalesInvoiceProductLine></InvoiceLine>")
	}
	b.WriteString("</InvoiceLines></SalesInvoice></Root>")
	return b.Bytes(), nil
}

// checkInvoice asserts the invoice invariant on the lines as they will be
// written: their sums are the amount paid, their VAT with the sums of the
// foreign-tax lines the tax charged, and every line's unit price with its
// VAT is its sum.
func checkInvoice(o integrations.Order, lines []invoiceLine, div int64) error {
	var gross, vat, foreign int64
	for i, l := range lines {
		if l.gross < 0 || l.vat < 0 || l.vat > l.gross {
			return fmt.Errorf("line %d: sum %d and VAT %d are not a valid pair", i+1, l.gross, l.vat)
		}
		u := l.unitPrice()
		if l.priceType == "net" {
			u += l.vat
		}
		if u != l.gross {
			return fmt.Errorf("line %d: unit price %d does not give its sum %d", i+1, l.unitPrice(), l.gross)
		}
		if l.foreignTax && l.vat != 0 {
			return fmt.Errorf("line %d: a foreign tax with Finnish VAT %d", i+1, l.vat)
		}
		gross += l.gross
		vat += l.vat
		if l.foreignTax {
			foreign += l.gross
		}
	}
	cur := o.Currency
	if gross*div != o.AmountTotal {
		return fmt.Errorf("lines add up to %s, the amount paid is %s (Netvisor keeps two decimals)",
			integrations.FormatMoney(gross*div, cur), integrations.FormatMoney(o.AmountTotal, cur))
	}
	if (vat+foreign)*div != o.AmountTax {
		return fmt.Errorf("the lines' VAT and foreign tax add up to %s, the tax charged is %s (Netvisor keeps two decimals)",
			integrations.FormatMoney((vat+foreign)*div, cur), integrations.FormatMoney(o.AmountTax, cur))
	}
	return nil
}

// Amount formats minor units the Finnish way Netvisor expects: the
// currency's decimals, a decimal comma, no thousands separator, integers
// only: (123456, "eur") → "1234,56", (500, "jpy") → "500",
// (1234, "kwd") → "1,234".
func Amount(minor int64, currency string) string {
	return strings.Replace(integrations.FormatAmount(minor, currency), ".", ",", 1)
}

func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}
