package sim

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
)

// Netvisor's customer register, as far as the invoice step uses it: the
// customer list filtered by customer code (customerlist.nv?customercodelist=)
// and adding a customer (customer.nv?method=add). A second add with a code
// already in use is refused with INVALID_DATA (Netvisor's wording for it is
// UNCONFIRMED), so a client that adds without looking first is caught. An
// invoice linked with InvoicingCustomerIdentifier type="customer" must name
// a customer that exists.

type nvCustomer struct {
	key  uint64
	code string
	vat  string
	name string
}

type nvCustomerDoc struct {
	XMLName  xml.Name `xml:"Root"`
	Customer *struct {
		Base struct {
			Code    string  `xml:"InternalIdentifier"`
			VAT     string  `xml:"ExternalIdentifier"`
			Name    string  `xml:"Name"`
			Country nvValue `xml:"Country"`
		} `xml:"CustomerBaseInformation"`
	} `xml:"Customer"`
}

func (nv *netvisorSim) addCustomer(w http.ResponseWriter, r *http.Request) {
	text, ok := nv.readAdd(w, r)
	if !ok {
		return
	}
	var doc nvCustomerDoc
	if err := xml.Unmarshal([]byte(text), &doc); err != nil || doc.Customer == nil {
		nvFailed(w, nvHTTPStatus(r, nvInvalidData), nvInvalidData, "Customer element is missing or the XML could not be parsed")
		return
	}
	b := doc.Customer.Base
	code := strings.TrimSpace(b.Code)
	switch {
	case code == "":
		nvFailed(w, nvHTTPStatus(r, nvInvalidData), nvInvalidData, "InternalIdentifier is missing")
		return
	case strings.TrimSpace(b.Name) == "":
		nvFailed(w, nvHTTPStatus(r, nvInvalidData), nvInvalidData, "Name is missing")
		return
	case b.Country.Value != "" && b.Country.Type != "ISO-3166":
		nvFailed(w, nvHTTPStatus(r, nvInvalidData), nvInvalidData, `Country needs type="ISO-3166"`)
		return
	}
	nv.mu.Lock()
	if _, dup := nv.customers[strings.ToUpper(code)]; dup {
		nv.mu.Unlock()
		nvFailed(w, nvHTTPStatus(r, nvInvalidData), nvInvalidData, "customer code "+code+" is already in use")
		return
	}
	c := nvCustomer{key: 500 + nextID(), code: code, vat: strings.TrimSpace(b.VAT), name: strings.TrimSpace(b.Name)}
	nv.customers[strings.ToUpper(code)] = c
	nv.mu.Unlock()

	keyStr := fmt.Sprint(c.key)
	file := nv.s.outbox.write(StepInvoice, "customer-"+keyStr+".xml", []byte(text))
	nv.s.outbox.record(entry{Time: nowUTC(), Step: StepInvoice, Order: code, Kind: "customer", ID: keyStr, Action: "create", File: file})
	writeXML(w, http.StatusOK, fmt.Sprintf("<Root><ResponseStatus><Status>OK</Status><TimeStamp>%s</TimeStamp></ResponseStatus><Replies><InsertedDataIdentifier>%d</InsertedDataIdentifier></Replies></Root>",
		nvTimestamp(), c.key))
}

// listCustomers answers customerlist.nv; only the customercodelist filter
// (comma-separated codes) is supported. Without it the list is empty.
func (nv *netvisorSim) listCustomers(w http.ResponseWriter, r *http.Request) {
	if !nv.authenticate(w, r) {
		return
	}
	var found []nvCustomer
	nv.mu.Lock()
	for _, code := range strings.Split(queryGetFold(r, "customercodelist"), ",") {
		if c, ok := nv.customers[strings.ToUpper(strings.TrimSpace(code))]; ok {
			found = append(found, c)
		}
	}
	nv.mu.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "<Root><ResponseStatus><Status>OK</Status><TimeStamp>%s</TimeStamp></ResponseStatus><Customerlist>", nvTimestamp())
	for _, c := range found {
		fmt.Fprintf(&b, "<Customer><Netvisorkey>%d</Netvisorkey><Name>%s</Name><Code>%s</Code><OrganisationIdentifier>%s</OrganisationIdentifier><Uri>%s</Uri></Customer>",
			c.key, xmlEscape(c.name), xmlEscape(c.code), xmlEscape(c.vat), xmlEscape(fmt.Sprintf("http://%s/getcustomer.nv?id=%d", r.Host, c.key)))
	}
	b.WriteString("</Customerlist></Root>")
	writeXML(w, http.StatusOK, b.String())
}

// customerKnown reports whether an invoice's customer link names a customer
// the register holds; links by Netvisor key ("netvisor") are not checked.
func (nv *netvisorSim) customerKnown(id nvValue) bool {
	if id.Type != "customer" {
		return true
	}
	nv.mu.Lock()
	defer nv.mu.Unlock()
	_, ok := nv.customers[strings.ToUpper(strings.TrimSpace(id.Value))]
	return ok
}

// readAdd checks a method=add request's authentication and method and
// returns its body as text; on a problem it writes the FAILED reply and
// returns false.
func (nv *netvisorSim) readAdd(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !nv.authenticate(w, r) {
		return "", false
	}
	if m := queryGetFold(r, "method"); m != "add" {
		nvFailed(w, nvHTTPStatus(r, nvInvalidData), nvInvalidData, fmt.Sprintf("method %q is not supported (only add)", m))
		return "", false
	}
	raw, err := readBody(w, r)
	if err != nil {
		nvFailed(w, nvHTTPStatus(r, nvInvalidData), "INVALID_DATA_SIZE", "request body is too large")
		return "", false
	}
	return nvDecode(r, raw), true
}
