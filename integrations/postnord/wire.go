package postnord

import (
	"encoding/json"
	"net/url"
	"strings"

	"github.com/orderflow/orderflow/integrations"
)

// The request body (swagger "ediInstruction"), with only the fields this
// client sends.

type ediInstruction struct {
	MessageDate     string       `json:"messageDate"`
	MessageFunction string       `json:"messageFunction"`
	MessageID       string       `json:"messageId"`
	Application     *application `json:"application,omitempty"`
	UpdateIndicator string       `json:"updateIndicator"`
	TestIndicator   bool         `json:"testIndicator"`
	Shipment        []shipment   `json:"shipment"`
}

type application struct {
	ApplicationID int    `json:"applicationId"`
	Name          string `json:"name"`
	Version       string `json:"version,omitempty"`
}

type shipment struct {
	Service          service     `json:"service"`
	References       []reference `json:"references"`
	NumberOfPackages *value      `json:"numberOfPackages,omitempty"`
	TotalGrossWeight *weight     `json:"totalGrossWeight,omitempty"`
	Parties          parties     `json:"parties"`
	GoodsItem        []goodsItem `json:"goodsItem"`
}

type service struct {
	BasicServiceCode      string   `json:"basicServiceCode"`
	AdditionalServiceCode []string `json:"additionalServiceCode,omitempty"`
}

type reference struct {
	ReferenceNo   string `json:"referenceNo"`
	ReferenceType string `json:"referenceType"`
}

type value struct {
	Value int `json:"value"`
}

type weight struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

type parties struct {
	Consignor consignor `json:"consignor"`
	Consignee consignee `json:"consignee"`
}

type consignor struct {
	IssuerCode          string              `json:"issuerCode"`
	PartyIdentification partyIdentification `json:"partyIdentification"`
	Party               party               `json:"party"`
}

type partyIdentification struct {
	PartyID     string `json:"partyId"`
	PartyIDType string `json:"partyIdType"`
}

type consignee struct {
	Party party `json:"party"`
}

type party struct {
	NameIdentification nameIdentification `json:"nameIdentification"`
	Address            address            `json:"address"`
	Contact            *contact           `json:"contact,omitempty"`
}

type nameIdentification struct {
	Name        string `json:"name"`
	CompanyName string `json:"companyName,omitempty"`
}

type address struct {
	Streets     []string `json:"streets,omitempty"`
	PostalCode  string   `json:"postalCode"`
	City        string   `json:"city"`
	CountryCode string   `json:"countryCode"`
}

type contact struct {
	ContactName  string `json:"contactName,omitempty"`
	EmailAddress string `json:"emailAddress,omitempty"`
	PhoneNo      string `json:"phoneNo,omitempty"`
	SMSNo        string `json:"smsNo,omitempty"`
}

type goodsItem struct {
	PackageTypeCode string `json:"packageTypeCode,omitempty"`
	Items           []item `json:"items"`
}

type item struct {
	ItemIdentification itemIdentification `json:"itemIdentification"`
	GrossWeight        *weight            `json:"grossWeight,omitempty"`
}

type itemIdentification struct {
	ItemID string `json:"itemId"`
}

// The 200 response ("ediLabelResponse").

type labelResponse struct {
	BookingResponse struct {
		BookingID     string          `json:"bookingId"`
		IDInformation []idInformation `json:"idInformation"`
	} `json:"bookingResponse"`
	LabelPrintout []labelPrintout `json:"labelPrintout"`
}

type idInformation struct {
	Status string `json:"status"`
	IDs    []struct {
		IDType  string `json:"idType"`
		Value   string `json:"value"`
		PrintID string `json:"printId"`
	} `json:"ids"`
	URLs []struct {
		Type string `json:"type"`
		URL  string `json:"url"`
	} `json:"urls"`
	ErrorResponse *errorResponse `json:"errorResponse"`
}

type labelPrintout struct {
	ItemIDs  []json.RawMessage `json:"itemIds"`
	Printout struct {
		LabelFormat string `json:"labelFormat"`
		Encoding    string `json:"encoding"`
		Data        string `json:"data"`
	} `json:"printout"`
}

// errorResponse is the documented error body (and the per-item error in a
// 200).
type errorResponse struct {
	Message        string `json:"message"`
	CompositeFault *struct {
		Faults []struct {
			FaultCode       string `json:"faultCode"`
			ExplanationText string `json:"explanationText"`
		} `json:"faults"`
	} `json:"compositeFault"`
}

// bookingRequest builds the EDI instruction for one parcel to the order's
// shipping address. A missing address field is a permanent error: PostNord
// would reject it, and so would every retry.
func (c *Client) bookingRequest(o integrations.Order) (*ediInstruction, error) {
	const op = "book shipment"
	a := o.Shipping
	name := a.Name
	if name == "" {
		name = o.Customer.Name
	}
	var missing []string
	if name == "" {
		missing = append(missing, "name")
	}
	if a.PostalCode == "" {
		missing = append(missing, "postal code")
	}
	if a.City == "" {
		missing = append(missing, "city")
	}
	if len(a.Country) != 2 {
		missing = append(missing, "country")
	}
	if len(missing) > 0 {
		return nil, integrations.NotSentf(provider, op, "order %s: shipping address lacks %s", o.ID, strings.Join(missing, ", "))
	}
	var streets []string
	for _, s := range []string{a.Line1, a.Line2} {
		if s != "" {
			streets = append(streets, s)
		}
	}
	// The carrier's notifications go to the recipient's phone when the
	// shipping address has one (a gift's recipient picks the parcel up),
	// else to the buyer's; the buyer's email is the only one Stripe has.
	phone := a.Phone
	if phone == "" {
		phone = o.Customer.Phone
	}
	var ct *contact
	if o.Customer.Email != "" || phone != "" {
		ct = &contact{ContactName: name, EmailAddress: o.Customer.Email, PhoneNo: phone, SMSNo: phone}
	}

	cfg := c.cfg
	cons := cfg.Consignor
	var consContact *contact
	if cons.ContactName != "" || cons.Email != "" || cons.Phone != "" {
		consContact = &contact{ContactName: cons.ContactName, EmailAddress: cons.Email, PhoneNo: cons.Phone}
	}
	it := item{ItemIdentification: itemIdentification{ItemID: "0"}} // "0": PostNord assigns the item id
	s := shipment{
		Service:          service{BasicServiceCode: cfg.BasicServiceCode, AdditionalServiceCode: cfg.AdditionalServiceCodes},
		References:       []reference{{ReferenceNo: CustomerReference(o), ReferenceType: "CU"}},
		NumberOfPackages: &value{Value: 1},
		Parties: parties{
			Consignor: consignor{
				IssuerCode:          cfg.IssuerCode,
				PartyIdentification: partyIdentification{PartyID: cfg.CustomerNumber, PartyIDType: "160"},
				Party: party{
					NameIdentification: nameIdentification{Name: cons.Name, CompanyName: cons.CompanyName},
					Address:            address{Streets: cons.Streets, PostalCode: cons.PostalCode, City: cons.City, CountryCode: strings.ToUpper(cons.CountryCode)},
					Contact:            consContact,
				},
			},
			Consignee: consignee{Party: party{
				NameIdentification: nameIdentification{Name: name},
				Address:            address{Streets: streets, PostalCode: a.PostalCode, City: cityLine(a), CountryCode: strings.ToUpper(a.Country)},
				Contact:            ct,
			}},
		},
	}
	if cfg.GrossWeightGrams > 0 {
		w := &weight{Value: float64(cfg.GrossWeightGrams) / 1000, Unit: "KGM"}
		s.TotalGrossWeight = w
		it.GrossWeight = w
	}
	s.GoodsItem = []goodsItem{{PackageTypeCode: cfg.PackageTypeCode, Items: []item{it}}}

	in := &ediInstruction{
		MessageDate:     c.now().UTC().Format("2006-01-02T15:04:05Z"),
		MessageFunction: "Instruction",
		MessageID:       newMessageID(),
		UpdateIndicator: "Original",
		TestIndicator:   cfg.TestIndicator,
		Shipment:        []shipment{s},
	}
	if cfg.ApplicationID != 0 {
		in.Application = &application{ApplicationID: cfg.ApplicationID, Name: cfg.ApplicationName}
	}
	return in, nil
}

// cityLine is the consignee's city as the label prints it: with the state,
// province or prefecture after it where the address has one (Austin TX,
// Vancouver BC, Milano MI), since the booking's address has no field of
// its own for it and a parcel to the United States or Canada needs it; in
// Han, kana or Hangul the larger place first, as those scripts write an
// address (東京都千代田区). A Nordic address keeps its city alone: PostNord
// checks it against the postal code there, and Stripe gives none a state.
func cityLine(a integrations.Address) string {
	st := strings.TrimSpace(a.State)
	if st == "" || a.City == st || strings.HasSuffix(a.City, " "+st) {
		return a.City // none, or written in the city already
	}
	switch strings.ToUpper(a.Country) {
	case "SE", "NO", "DK", "FI", "AX", "IS", "FO", "GL":
		return a.City
	}
	if integrations.LargestFirst(st + a.City) {
		if strings.HasPrefix(a.City, st) {
			return a.City
		}
		return st + a.City
	}
	return a.City + " " + st
}

// NotificationLocale is the booking's locale for the customer's language
// tag (metadata locale, else the Checkout locale): PostNord's sv, da, no,
// fi or en; Norwegian Bokmål and Nynorsk are no, any other language en.
// Without a tag it is def (the configured locale, possibly empty).
func NotificationLocale(tag, def string) string {
	tag = strings.ToLower(strings.TrimSpace(tag))
	if tag == "" || tag == "auto" {
		return def
	}
	lang, _, _ := strings.Cut(strings.ReplaceAll(tag, "_", "-"), "-")
	switch lang {
	case "sv", "da", "fi", "en":
		return lang
	case "no", "nb", "nn":
		return "no"
	}
	return "en"
}

// trackingURL is the item's TRACKING url from the booking response, else
// the template's.
func trackingURL(infos []idInformation, itemID, template string) string {
	for _, info := range infos {
		has := false
		for _, id := range info.IDs {
			if strings.EqualFold(id.IDType, "itemId") && id.Value == itemID {
				has = true
			}
		}
		if !has {
			continue
		}
		for _, u := range info.URLs {
			if strings.EqualFold(u.Type, "TRACKING") && u.URL != "" {
				return u.URL
			}
		}
	}
	return strings.ReplaceAll(template, "{id}", url.QueryEscape(itemID))
}
