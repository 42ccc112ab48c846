package dhl

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/orderflow/orderflow/integrations"
)

// A parcel whose goods leave the EU VAT area (integrations.LeavesEUVATArea:
// Switzerland, Norway, the United Kingdom but Northern Ireland, the Canary
// Islands, Büsingen, ...) carries a customs declaration, the shipment's
// customs object, which DHL answers with a CN23 (customsDoc) beside the
// label; DHL refuses such a parcel without one. Each line of the order is declared at
// what was paid for it less its tax, its units sharing that exactly (see
// declareLine), and the shipping's net is the postal charges, so the
// declaration adds up to the amount paid less the tax charged, to the
// minor unit. The tariff number, the country of origin and a unit's weight
// are the line's (its price's or product's metadata), else the
// configured ones; a weight not known is the parcel's weight shared out
// over the units whose weight is not known.

// Export types of the CustomsDetails schema.
var exportTypes = map[string]bool{
	"OTHER": true, "PRESENT": true, "COMMERCIAL_SAMPLE": true, "DOCUMENT": true, "RETURN_OF_GOODS": true, "COMMERCIAL_GOODS": true,
}

// DefaultExportType is the category of goods a shop sells.
const DefaultExportType = "COMMERCIAL_GOODS"

// Limits of the CustomsDetails and Commodity schemas.
const (
	maxCustomsItems       = 99     // commodities in one declaration
	maxCustomsValue       = 100000 // one unit's value, in major units
	maxItemDescription    = 256    // characters; the CN23 prints the first 50
	maxExportDescription  = 80
	maxCustomsRef         = 35
	maxParcelWeightGrams  = 31500
	minHSCode, maxHSCode  = 6, 11
	defaultItemWeightGram = 1
)

// Customs is what a declaration takes from the shop rather than the order.
type Customs struct {
	// ExportType is the category of the goods: COMMERCIAL_GOODS (the
	// default), PRESENT, COMMERCIAL_SAMPLE, DOCUMENT, RETURN_OF_GOODS or
	// OTHER.
	ExportType string
	// ExportDescription says what goods of ExportType OTHER are (required
	// then; at most 80 characters).
	ExportDescription string
	// HSCode is the tariff number of a line whose price and product name
	// none, OriginCountry (ISO 3166-1 alpha-2) its country of origin; both
	// optional.
	HSCode        string
	OriginCountry string
	// ShipperCustomsRef is the shop's EORI number, printed on the
	// declaration; optional, at most 35 characters.
	ShipperCustomsRef string
}

func (c *Customs) setDefaults() {
	if c.ExportType == "" {
		c.ExportType = DefaultExportType
	}
}

// problems lists what is wrong with the settings.
func (c Customs) problems() []string {
	c.setDefaults()
	var out []string
	if !exportTypes[c.ExportType] {
		out = append(out, "Customs.ExportType must be one of COMMERCIAL_GOODS, PRESENT, COMMERCIAL_SAMPLE, DOCUMENT, RETURN_OF_GOODS, OTHER")
	}
	if c.ExportType == "OTHER" && strings.TrimSpace(c.ExportDescription) == "" {
		out = append(out, "Customs.ExportDescription is required for ExportType OTHER")
	}
	if utf8.RuneCountInString(c.ExportDescription) > maxExportDescription {
		out = append(out, "Customs.ExportDescription must be at most 80 characters")
	}
	if c.HSCode != "" {
		if _, ok := hsCode(c.HSCode); !ok {
			out = append(out, "Customs.HSCode must be a tariff number of 6 to 11 digits")
		}
	}
	if c.OriginCountry != "" {
		if _, ok := alpha3(c.OriginCountry); !ok {
			out = append(out, "Customs.OriginCountry must be an ISO 3166-1 alpha-2 country code")
		}
	}
	if utf8.RuneCountInString(c.ShipperCustomsRef) > maxCustomsRef {
		out = append(out, "Customs.ShipperCustomsRef must be at most 35 characters")
	}
	return out
}

// hsCode is a tariff number as DHL takes it, 6 to 11 digits: the spaces
// and dots it is often written with ("6109 10 00", "6109.10.00") left out.
func hsCode(s string) (string, bool) {
	d := strings.NewReplacer(" ", "", ".", "").Replace(strings.TrimSpace(s))
	if len(d) < minHSCode || len(d) > maxHSCode || strings.Trim(d, "0123456789") != "" {
		return "", false
	}
	return d, true
}

// needsCustoms reports whether a parcel to the order's destination leaves
// the EU VAT area, and so needs a customs declaration.
func needsCustoms(o integrations.Order) bool {
	return integrations.LeavesEUVATArea(o.Destination())
}

// customs builds the declaration of the order's parcel and returns the
// parcel's weight: the configured one, or the goods' when the weights
// their products give add up to more.
func (c *Client) customs(o integrations.Order) (*customsDetails, int, error) {
	const op = "create shipment"
	cfg := c.cfg.Customs
	cur := strings.ToUpper(o.Currency)
	if len(cur) != 3 {
		return nil, 0, integrations.NotSentf(provider, op, "order %s has no currency for its customs declaration", o.ID)
	}
	// Weights: the lines' own, and the rest of the parcel's shared out
	// over the units without one (at least a gram each).
	var known, unknownUnits int64
	for _, li := range o.Items {
		if li.Quantity <= 0 {
			continue
		}
		if li.WeightGrams > 0 {
			known += li.Quantity * li.WeightGrams
		} else {
			unknownUnits += li.Quantity
		}
	}
	share := int64(defaultItemWeightGram)
	if unknownUnits > 0 {
		share = max(share, (int64(c.cfg.WeightGrams)-known)/unknownUnits)
	}
	parcel := max(int64(c.cfg.WeightGrams), known+share*unknownUnits)
	if parcel > maxParcelWeightGrams {
		return nil, 0, integrations.NotSentf(provider, op, "order %s: its goods weigh %d g, more than a DHL parcel takes (%d g)", o.ID, parcel, maxParcelWeightGrams)
	}

	money := func(minor int64) value {
		return value{Currency: cur, Value: json.Number(integrations.FormatAmount(minor, o.Currency))}
	}
	limit := int64(maxCustomsValue)
	for range integrations.Exponent(o.Currency) {
		limit *= 10
	}
	d := &customsDetails{ExportType: cfg.ExportType, ExportDescription: cfg.ExportDescription, ShipperCustomsRef: cfg.ShipperCustomsRef}
	var declared int64
	for i, li := range o.Items {
		if li.Quantity <= 0 {
			continue
		}
		net := li.AmountTotal - li.AmountTax
		if net < 0 {
			return nil, 0, integrations.NotSentf(provider, op, "order %s: line %d has a negative value (%d) for its customs declaration", o.ID, i+1, net)
		}
		desc := strings.TrimSpace(li.Description)
		if desc == "" {
			return nil, 0, integrations.NotSentf(provider, op, "order %s: line %d has no description for its customs declaration", o.ID, i+1)
		}
		item := commodity{ItemDescription: clip(desc, maxItemDescription), ItemWeight: weight{UOM: "g", Value: int(share)}}
		if li.WeightGrams > 0 {
			item.ItemWeight.Value = int(li.WeightGrams)
		}
		// The line's own tariff number and origin, else the configured
		// ones (checked at start-up); a malformed one of the line's is
		// left out.
		code, ok := hsCode(li.HSCode)
		if !ok {
			if li.HSCode != "" {
				c.log.Warn("customs: tariff number of a line not 6 to 11 digits, left out", "order_id", o.ID, "line", i+1)
			}
			code, _ = hsCode(cfg.HSCode)
		}
		item.HSCode = code
		origin, ok := alpha3(li.OriginCountry)
		if !ok {
			if li.OriginCountry != "" {
				c.log.Warn("customs: country of origin of a line not an ISO 3166-1 alpha-2 code, left out", "order_id", o.ID, "line", i+1)
			}
			origin, _ = alpha3(cfg.OriginCountry)
		}
		item.CountryOfOrigin = origin
		for _, part := range declareLine(net, li.Quantity) {
			if part.unit > limit {
				return nil, 0, integrations.NotSentf(provider, op, "order %s: line %d declares %s a unit, more than DHL takes (%d %s)",
					o.ID, i+1, integrations.FormatMoney(part.unit, o.Currency), maxCustomsValue, cur)
			}
			it := item
			it.PackagedQuantity = part.units
			it.ItemValue = money(part.unit)
			d.Items = append(d.Items, it)
			declared += part.units * part.unit
		}
	}
	if len(d.Items) == 0 {
		return nil, 0, integrations.NotSentf(provider, op, "order %s has no goods to declare to customs", o.ID)
	}
	if len(d.Items) > maxCustomsItems {
		return nil, 0, integrations.NotSentf(provider, op, "order %s declares %d kinds of goods, more than a DHL customs declaration holds (%d)", o.ID, len(d.Items), maxCustomsItems)
	}
	var postal int64
	if sc := o.ShippingCost; sc != nil {
		postal = sc.AmountTotal - sc.AmountTax
	}
	d.PostalCharges = money(postal)
	// The declaration adds up to what was paid less the tax.
	if got, want := declared+postal, o.AmountTotal-o.AmountTax; got != want {
		return nil, 0, integrations.Permanentf(provider, op, "order %s: the customs declaration adds up to %s, not the %s paid less tax",
			o.ID, integrations.FormatMoney(got, o.Currency), integrations.FormatMoney(want, o.Currency))
	}
	return d, int(parcel), nil
}

// linePart is units declared at unit minor units each.
type linePart struct{ units, unit int64 }

// declareLine shares a line's net over its quantity exactly: a value that
// does not divide evenly is declared as two commodities, one at the unit
// value rounded down and one, of as many units as the remainder, at a
// minor unit more (10.00 for 3: 2 at 3.33 and 1 at 3.34).
func declareLine(net, qty int64) []linePart {
	unit, rest := net/qty, net%qty
	if rest == 0 {
		return []linePart{{qty, unit}}
	}
	return []linePart{{qty - rest, unit}, {rest, unit + 1}}
}

// clip cuts s to at most n characters.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n]))
}
