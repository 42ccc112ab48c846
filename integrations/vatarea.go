package integrations

import "strings"

// euVAT lists the member states of the EU VAT area (Stripe writes Greece
// as GR), and Monaco, which the VAT Directive (Art. 7) treats as part of
// France: Checkout lists it as a country of its own (MC). Åland (AX) is
// outside the area, as are the territories outsideVATArea lists.
var euVAT = map[string]bool{
	"AT": true, "BE": true, "BG": true, "HR": true, "CY": true, "CZ": true, "DK": true,
	"EE": true, "FI": true, "FR": true, "DE": true, "GR": true, "EL": true, "HU": true,
	"IE": true, "IT": true, "LV": true, "LT": true, "LU": true, "MT": true, "NL": true,
	"PL": true, "PT": true, "RO": true, "SK": true, "SI": true, "ES": true, "SE": true,
	"MC": true,
}

// insideVATArea are the parts of countries outside the EU VAT area where
// its rules for goods apply, by the beginnings of their postal codes:
// Northern Ireland (BT…, written as GB or XI), under the Windsor
// Framework. Goods sent there do not leave the area.
var insideVATArea = map[string][]string{
	"GB": {"BT"},
	"XI": {""},
}

// outsideVATArea are the territories of member states outside the EU VAT
// area (VAT Directive 2006/112/EC, Art. 6) by the beginnings of their
// postal codes: goods sent there leave the area as an export does.
var outsideVATArea = map[string][]string{
	"ES": {"35", "38", "51", "52"}, // Canary Islands (Las Palmas, Santa Cruz de Tenerife), Ceuta, Melilla
	"FI": {"22"},                   // Åland (22100–22999), when written as Finland
	"FR": {"97"},                   // the overseas departments: Guadeloupe (with Saint-Barthélemy and Saint-Martin), Martinique, French Guiana, Réunion, Mayotte
	"DE": {"27498", "78266"},       // Heligoland, Büsingen am Hochrhein
	"IT": {"23041", "22061"},       // Livigno, Campione d'Italia
	"GR": {"63086"},                // Mount Athos
	"EL": {"63086"},
}

// LeavesEUVATArea reports whether goods sent to a (the destination's
// country and postal code) leave the EU VAT area: a country outside it
// but for the parts insideVATArea lists, or a territory of a member state
// outside it (outsideVATArea). An address with no country says nothing.
func LeavesEUVATArea(a Address) bool {
	country := strings.ToUpper(a.Country)
	if country == "" {
		return false
	}
	if !euVAT[country] {
		pc := strings.ToUpper(strings.TrimSpace(a.PostalCode))
		for _, p := range insideVATArea[country] {
			if strings.HasPrefix(pc, p) {
				return false
			}
		}
		return true
	}
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, a.PostalCode)
	for _, p := range outsideVATArea[country] {
		if strings.HasPrefix(digits, p) {
			return true
		}
	}
	return false
}
