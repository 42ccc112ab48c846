package sim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// postnordSim serves PostNord's v3 EDI booking with PDF labels in one call.
// Like the real API it has no idempotency: every call books new shipments
// with new item ids, so a retried booking for the same order reference (the
// CU reference) is a duplicate shipment.
//
// It also serves Track & Trace v7's look-up by customer number and
// reference, which shows a booking only once its visibility delay has
// passed (PostNord documents none; EDI is "preliminary shipping
// information"), so a client reconciling an interrupted booking meets "not
// yet visible" as it would there.
type postnordSim struct {
	s *Server

	mu         sync.Mutex
	visibility time.Duration
	// booked holds every shipment by "<customer number>/<reference>".
	booked map[string][]pnBooked
}

// DefaultPostNordVisibility is the simulator's default delay between a
// booking and its appearance in the look-up by reference.
const DefaultPostNordVisibility = time.Second

type pnBooked struct {
	at         time.Time
	shipmentID string
	itemIDs    []string
	refs       []obj
}

func newPostnordSim(s *Server) *postnordSim {
	v := s.cfg.PostNordVisibility
	switch {
	case v == 0:
		v = DefaultPostNordVisibility
	case v < 0:
		v = 0
	}
	return &postnordSim{s: s, visibility: v, booked: map[string][]pnBooked{}}
}

func (pn *postnordSim) remember(customer string, b pnBooked) {
	pn.mu.Lock()
	defer pn.mu.Unlock()
	for _, r := range b.refs {
		k := customer + "/" + fmt.Sprint(r["value"])
		pn.booked[k] = append(pn.booked[k], b)
	}
}

// findByReference serves GET /rest/shipment/v7/trackandtrace/customernumber/
// {customer}/reference/{reference}/public: the shipments booked with that
// reference (any type) for that consignor, visible ones only, in the
// ResponseDto shape; none is an empty list.
func (pn *postnordSim) findByReference(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("apikey") == "" {
		postnordError(w, http.StatusUnauthorized, "apikey query parameter is missing or invalid",
			pnFault{FaultCode: "API-001", ExplanationText: "apikey is mandatory"})
		return
	}
	customer, ref := r.PathValue("customer"), r.PathValue("reference")
	now := time.Now()
	pn.mu.Lock()
	var found []pnBooked
	for _, b := range pn.booked[customer+"/"+ref] {
		if !now.Before(b.at.Add(pn.visibility)) {
			found = append(found, b)
		}
	}
	pn.mu.Unlock()
	shipments := make([]any, 0, len(found))
	for _, b := range found {
		items := make([]any, 0, len(b.itemIDs))
		for _, id := range b.itemIDs {
			items = append(items, obj{"itemId": id, "status": "INFORMED", "events": []any{}})
		}
		shipments = append(shipments, obj{"shipmentId": b.shipmentID, "customerNumber": customer, "status": "INFORMED",
			"shipmentReferences": b.refs, "items": items})
	}
	writeJSON(w, http.StatusOK, obj{"TrackingInformationResponse": obj{"shipments": shipments}})
}

type pnSettings struct {
	Visibility string `json:"visibility"`
}

func (pn *postnordSim) getSettings(w http.ResponseWriter, r *http.Request) {
	pn.mu.Lock()
	v := pn.visibility
	pn.mu.Unlock()
	writeJSON(w, http.StatusOK, pnSettings{Visibility: v.String()})
}

// putSettings sets the look-up's visibility delay: {"visibility": "2s"}.
func (pn *postnordSim) putSettings(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	var in pnSettings
	if err == nil {
		err = json.Unmarshal(body, &in)
	}
	var d time.Duration
	if err == nil {
		d, err = time.ParseDuration(in.Visibility)
	}
	if err == nil && d < 0 {
		err = fmt.Errorf("visibility %s is negative", d)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {\"visibility\": \"<duration>\"}: " + err.Error()})
		return
	}
	pn.mu.Lock()
	pn.visibility = d
	pn.mu.Unlock()
	pn.getSettings(w, r)
}

type pnFault struct {
	FaultCode       string `json:"faultCode"`
	ExplanationText string `json:"explanationText"`
	ParamValues     []obj  `json:"paramValues,omitempty"`
}

func postnordError(w http.ResponseWriter, status int, msg string, faults ...pnFault) {
	if faults == nil {
		faults = []pnFault{}
	}
	writeJSON(w, status, obj{"message": msg, "compositeFault": obj{"faults": faults}})
}

func postnordErrors(w http.ResponseWriter, r *http.Request, status int, msg string) {
	code := "API-005"
	if status >= 500 {
		code = "API-503"
	}
	postnordError(w, status, msg, pnFault{FaultCode: code, ExplanationText: msg})
}

type pnInstruction struct {
	MessageDate     string `json:"messageDate"`
	MessageID       string `json:"messageId"`
	UpdateIndicator string `json:"updateIndicator"`
	TestIndicator   bool   `json:"testIndicator"`
	Application     *struct {
		ApplicationID json.RawMessage `json:"applicationId"`
		Name          string          `json:"name"`
	} `json:"application"`
	Shipment []pnShipment `json:"shipment"`
}

type pnShipment struct {
	ShipmentIdentification *struct {
		ShipmentID string `json:"shipmentId"`
	} `json:"shipmentIdentification"`
	Service *struct {
		BasicServiceCode string `json:"basicServiceCode"`
	} `json:"service"`
	References []struct {
		ReferenceNo   string `json:"referenceNo"`
		ReferenceType string `json:"referenceType"`
	} `json:"references"`
	Parties *struct {
		Consignor *pnParty `json:"consignor"`
		Consignee *pnParty `json:"consignee"`
	} `json:"parties"`
	GoodsItem []struct {
		PackageTypeCode string `json:"packageTypeCode"`
		Items           []struct {
			ItemIdentification *struct {
				ItemID     string `json:"itemId"`
				ItemIDType string `json:"itemIdType"`
			} `json:"itemIdentification"`
		} `json:"items"`
	} `json:"goodsItem"`
}

type pnParty struct {
	IssuerCode          string `json:"issuerCode"`
	PartyIdentification *struct {
		PartyID     string `json:"partyId"`
		PartyIDType string `json:"partyIdType"`
	} `json:"partyIdentification"`
	Party *struct {
		NameIdentification *struct {
			Name        string `json:"name"`
			CompanyName string `json:"companyName"`
		} `json:"nameIdentification"`
		Address *struct {
			Streets     []string `json:"streets"`
			PostalCode  string   `json:"postalCode"`
			City        string   `json:"city"`
			CountryCode string   `json:"countryCode"`
		} `json:"address"`
	} `json:"party"`
}

// validate returns the business-rule faults of one instruction.
func (in pnInstruction) validate() []pnFault {
	var fs []pnFault
	miss := func(param string) {
		fs = append(fs, pnFault{FaultCode: "API-005", ExplanationText: param + " is mandatory", ParamValues: []obj{{"param": param, "value": ""}}})
	}
	if in.MessageDate == "" {
		miss("messageDate")
	}
	switch in.UpdateIndicator {
	case "Original", "Update", "Deletion":
	case "":
		miss("updateIndicator")
	default:
		fs = append(fs, pnFault{FaultCode: "API-005", ExplanationText: "updateIndicator must be Original, Update or Deletion", ParamValues: []obj{{"param": "updateIndicator", "value": in.UpdateIndicator}}})
	}
	if in.Application != nil && len(in.Application.ApplicationID) > 0 {
		if _, err := strconv.ParseInt(string(in.Application.ApplicationID), 10, 64); err != nil {
			fs = append(fs, pnFault{FaultCode: "API-005", ExplanationText: "application.applicationId must be an integer", ParamValues: []obj{{"param": "application.applicationId", "value": string(in.Application.ApplicationID)}}})
		}
	}
	if len(in.Shipment) == 0 {
		miss("shipment")
	}
	if len(in.Shipment) > 200 {
		fs = append(fs, pnFault{FaultCode: "API-005", ExplanationText: "at most 200 shipments per instruction"})
	}
	for i, sh := range in.Shipment {
		p := fmt.Sprintf("shipment[%d]", i)
		if sh.Service == nil || sh.Service.BasicServiceCode == "" {
			miss(p + ".service.basicServiceCode")
		}
		for j, ref := range sh.References {
			if ref.ReferenceNo == "" || len(ref.ReferenceNo) > 35 {
				miss(fmt.Sprintf("%s.references[%d].referenceNo", p, j))
			}
			if ref.ReferenceType == "" || len(ref.ReferenceType) > 3 {
				miss(fmt.Sprintf("%s.references[%d].referenceType", p, j))
			}
		}
		if sh.Parties == nil || sh.Parties.Consignor == nil {
			miss(p + ".parties.consignor")
		} else {
			c := sh.Parties.Consignor
			if c.IssuerCode == "" {
				miss(p + ".parties.consignor.issuerCode")
			}
			if c.PartyIdentification == nil || c.PartyIdentification.PartyID == "" {
				miss(p + ".parties.consignor.partyIdentification.partyId")
			}
			fs = append(fs, c.validateParty(p+".parties.consignor")...)
		}
		if sh.Parties == nil || sh.Parties.Consignee == nil {
			miss(p + ".parties.consignee")
		} else {
			fs = append(fs, sh.Parties.Consignee.validateParty(p+".parties.consignee")...)
		}
		if len(sh.GoodsItem) == 0 {
			miss(p + ".goodsItem")
		}
		for j, g := range sh.GoodsItem {
			if len(g.Items) == 0 {
				miss(fmt.Sprintf("%s.goodsItem[%d].items", p, j))
			}
			for k, it := range g.Items {
				if it.ItemIdentification == nil || it.ItemIdentification.ItemID == "" {
					miss(fmt.Sprintf("%s.goodsItem[%d].items[%d].itemIdentification.itemId", p, j, k))
				}
			}
		}
	}
	return fs
}

func (pt *pnParty) validateParty(p string) []pnFault {
	var fs []pnFault
	miss := func(param string) {
		fs = append(fs, pnFault{FaultCode: "API-005", ExplanationText: param + " is mandatory", ParamValues: []obj{{"param": param, "value": ""}}})
	}
	if pt.Party == nil {
		miss(p + ".party")
		return fs
	}
	if pt.Party.NameIdentification == nil || pt.Party.NameIdentification.Name == "" {
		miss(p + ".party.nameIdentification.name")
	}
	a := pt.Party.Address
	if a == nil {
		miss(p + ".party.address")
		return fs
	}
	if a.PostalCode == "" {
		miss(p + ".party.address.postalCode")
	}
	if a.City == "" {
		miss(p + ".party.address.city")
	}
	if len(a.CountryCode) != 2 {
		miss(p + ".party.address.countryCode")
	}
	return fs
}

func (pn *postnordSim) book(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("apikey") == "" {
		postnordError(w, http.StatusUnauthorized, "apikey query parameter is missing or invalid",
			pnFault{FaultCode: "API-001", ExplanationText: "apikey is mandatory"})
		return
	}
	raw, err := readBody(w, r)
	if err != nil {
		postnordError(w, http.StatusBadRequest, "request body could not be read")
		return
	}
	var in pnInstruction
	if err := json.Unmarshal(raw, &in); err != nil {
		postnordError(w, http.StatusBadRequest, "Invalid JSON in request body",
			pnFault{FaultCode: "API-004", ExplanationText: err.Error()})
		return
	}
	if fs := in.validate(); len(fs) > 0 {
		postnordError(w, http.StatusBadRequest, "Validation of the request failed", fs...)
		return
	}

	now := nowUTC()
	bookingID := fmt.Sprintf("%016x%016x", hash64(string(raw)), nextID())
	idInfo := make([]any, 0, len(in.Shipment))
	printouts := make([]any, 0, len(in.Shipment))
	for _, sh := range in.Shipment {
		shipmentID := ""
		if sh.ShipmentIdentification != nil {
			shipmentID = sh.ShipmentIdentification.ShipmentID
		}
		if shipmentID == "" {
			shipmentID = fmt.Sprintf("%018d", 700000000000000000+nextID())
		}
		var itemIDs []string
		var ids, itemRefs []any
		for _, g := range sh.GoodsItem {
			for _, it := range g.Items {
				id := it.ItemIdentification.ItemID
				if id == "0" {
					id = fmt.Sprintf("00373500%012d", nextID())
				}
				itemIDs = append(itemIDs, id)
				ids = append(ids, obj{"idType": "itemId", "value": id, "printId": fmt.Sprintf("%x", hash64("print/"+id))})
				itemRefs = append(itemRefs, obj{"itemId": id})
			}
		}
		ids = append(ids, obj{"idType": "shipmentId", "value": shipmentID, "printId": fmt.Sprintf("%x", hash64("print/"+shipmentID))})
		country := strings.ToLower(sh.Parties.Consignee.Party.Address.CountryCode)
		refs := make([]any, 0, len(sh.References))
		order := ""
		for _, ref := range sh.References {
			refs = append(refs, obj{"referenceNo": ref.ReferenceNo, "referenceType": ref.ReferenceType})
			if ref.ReferenceType == "CU" && order == "" {
				order = ref.ReferenceNo
			}
		}
		if order == "" && sh.ShipmentIdentification != nil {
			order = sh.ShipmentIdentification.ShipmentID
		}
		trackingURL := fmt.Sprintf("https://tracking.postnord.com/%s/?id=%s", trackingSite(sh.Parties.Consignor), itemIDs[0])
		idInfo = append(idInfo, obj{
			"status": "OK", "references": obj{"shipment": refs}, "ids": ids,
			"urls":          []any{obj{"type": "TRACKING", "url": trackingURL}},
			"errorResponse": nil,
		})
		pdf := labelPDF(pn.labelLines(sh, itemIDs[0], order, in.TestIndicator), strings.ToUpper(country))
		printouts = append(printouts, obj{
			"itemIds": itemRefs,
			"printout": obj{
				"id": nextID(), "type": "LABEL", "labelFormat": "PDF", "encoding": "base64",
				"data": base64.StdEncoding.EncodeToString(pdf), "uriResource": "",
			},
		})
		file := pn.s.outbox.write(StepShipping, itemIDs[0]+".pdf", pdf)
		pn.remember(sh.Parties.Consignor.PartyIdentification.PartyID, pnBooked{at: time.Now(), shipmentID: shipmentID, itemIDs: itemIDs, refs: pnShipmentRefs(sh)})
		dup := pn.s.stats.created(StepShipping, "shipment", order)
		pn.s.outbox.record(entry{Time: now, Step: StepShipping, Order: order, Kind: "shipment", ID: itemIDs[0], Action: "create", Duplicate: dup, File: file})
	}
	writeJSON(w, http.StatusOK, obj{
		"bookingResponse": obj{"bookingId": bookingID, "idInformation": idInfo},
		"labelPrintout":   printouts,
	})
}

func (pn *postnordSim) labelLines(sh pnShipment, itemID, order string, test bool) []string {
	c := sh.Parties.Consignee.Party
	lines := []string{"PostNord  " + itemID}
	if test {
		lines[0] += "  TEST"
	}
	lines = append(lines, "Service "+sh.Service.BasicServiceCode+"   Ref "+order, "", "To: "+c.NameIdentification.Name)
	if c.Address != nil {
		lines = append(lines, c.Address.Streets...)
		lines = append(lines, c.Address.PostalCode+" "+c.Address.City, c.Address.CountryCode)
	}
	if f := sh.Parties.Consignor.Party; f != nil && f.NameIdentification != nil {
		lines = append(lines, "", "From: "+f.NameIdentification.Name)
	}
	return lines
}

// pnShipmentRefs lists a shipment's references as Track & Trace shows them.
func pnShipmentRefs(sh pnShipment) []obj {
	refs := make([]obj, 0, len(sh.References))
	for _, r := range sh.References {
		refs = append(refs, obj{"type": r.ReferenceType, "value": r.ReferenceNo})
	}
	return refs
}

// trackingSite is the country of PostNord's tracking site a booking's URL
// points at: the sender's when PostNord has a site there (Sweden, Denmark,
// Norway, Finland), else the Swedish one of the documented example. The
// receiver's country is not it: there is no tracking.postnord.com/jp/.
func trackingSite(consignor *pnParty) string {
	if consignor != nil && consignor.Party != nil && consignor.Party.Address != nil {
		switch c := strings.ToLower(consignor.Party.Address.CountryCode); c {
		case "se", "dk", "no", "fi":
			return c
		}
	}
	return "se"
}
