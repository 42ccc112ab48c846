package dhl

import "encoding/json"

// The wire format of the Parcel DE Shipping API v2 (OpenAPI
// "Parcel DE Shipping API (Post & Parcel Germany)" 2.1.x), the parts this
// client sends and reads.

// shipmentOrderRequest is the body of POST /orders.
type shipmentOrderRequest struct {
	Profile   string     `json:"profile"`
	Shipments []shipment `json:"shipments"`
}

type shipment struct {
	Product       string         `json:"product"`
	BillingNumber string         `json:"billingNumber"`
	RefNo         string         `json:"refNo,omitempty"`
	ShipDate      string         `json:"shipDate,omitempty"`
	Shipper       contactAddress `json:"shipper"`
	Consignee     contactAddress `json:"consignee"`
	Details       details        `json:"details"`
	// Customs is the declaration of a parcel leaving the EU VAT area.
	Customs *customsDetails `json:"customs,omitempty"`
}

// customsDetails is the CustomsDetails schema.
type customsDetails struct {
	ExportType        string      `json:"exportType"`
	ExportDescription string      `json:"exportDescription,omitempty"`
	ShipperCustomsRef string      `json:"shipperCustomsRef,omitempty"`
	PostalCharges     value       `json:"postalCharges"`
	Items             []commodity `json:"items"`
}

// commodity is the Commodity schema: one kind of goods, packagedQuantity
// units at itemValue and itemWeight each.
type commodity struct {
	ItemDescription  string `json:"itemDescription"`
	CountryOfOrigin  string `json:"countryOfOrigin,omitempty"` // ISO 3166-1 alpha-3
	HSCode           string `json:"hsCode,omitempty"`
	PackagedQuantity int64  `json:"packagedQuantity"`
	ItemValue        value  `json:"itemValue"`
	ItemWeight       weight `json:"itemWeight"`
}

// value is the Value schema: an amount in major units.
type value struct {
	Currency string      `json:"currency"`
	Value    json.Number `json:"value"`
}

// contactAddress is the ContactAddress (consignee) and Shipper schemas:
// countries are ISO 3166-1 alpha-3.
type contactAddress struct {
	Name1                         string `json:"name1"`
	Name2                         string `json:"name2,omitempty"`
	Name3                         string `json:"name3,omitempty"`
	AddressStreet                 string `json:"addressStreet"`
	AdditionalAddressInformation1 string `json:"additionalAddressInformation1,omitempty"`
	PostalCode                    string `json:"postalCode,omitempty"`
	City                          string `json:"city"`
	State                         string `json:"state,omitempty"`
	Country                       string `json:"country"`
	Email                         string `json:"email,omitempty"`
	Phone                         string `json:"phone,omitempty"`
}

type details struct {
	Weight weight `json:"weight"`
}

type weight struct {
	UOM   string `json:"uom"`
	Value int    `json:"value"`
}

// labelDataResponse is the answer of POST /orders (200, 207, 400).
type labelDataResponse struct {
	Status *requestStatus `json:"status"`
	Items  []responseItem `json:"items"`
}

// requestStatus is RequestStatus, also the whole problem+json body of a
// 401, 429 or 500. statusCode is deprecated in favour of status; both are
// read.
type requestStatus struct {
	Title      string `json:"title"`
	StatusCode int    `json:"statusCode"`
	StatusNew  int    `json:"status"`
	Detail     string `json:"detail"`
}

func (s *requestStatus) code() int {
	if s == nil {
		return 0
	}
	if s.StatusNew != 0 {
		return s.StatusNew
	}
	return s.StatusCode
}

// responseItem is one shipment's ResponseItem; a schema error (400) has
// propertyPath and message instead.
type responseItem struct {
	ShipmentNo         string              `json:"shipmentNo"`
	ShipmentRefNo      string              `json:"shipmentRefNo"`
	Status             *requestStatus      `json:"sstatus"`
	Label              *document           `json:"label"`
	CustomsDoc         *document           `json:"customsDoc"`
	ValidationMessages []validationMessage `json:"validationMessages"`
	PropertyPath       string              `json:"propertyPath"`
	Message            string              `json:"message"`
}

type document struct {
	B64         string `json:"b64"`
	URL         string `json:"url"`
	FileFormat  string `json:"fileFormat"`
	PrintFormat string `json:"printFormat"`
}

type validationMessage struct {
	Property          string `json:"property"`
	ValidationMessage string `json:"validationMessage"`
	ValidationState   string `json:"validationState"`
}
