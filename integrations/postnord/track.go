package postnord

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/labelstore"
)

// FindByReferencePath is Track & Trace v7's look-up by the consignor's
// customer number and the shipment's reference (swagger "PostNord Track &
// Trace API v7 - FindByReference - Public" 1.0.0,
// findByReferencePublicRecipientView); %s are the two path segments.
const FindByReferencePath = "/rest/shipment/v7/trackandtrace/customernumber/%s/reference/%s/public"

// trackingResponse is the part of Track & Trace's ResponseDto read here.
// Its top-level key starts with a capital T.
type trackingResponse struct {
	TrackingInformationResponse struct {
		Shipments []trackedShipment `json:"shipments"`
	} `json:"TrackingInformationResponse"`
}

type trackedShipment struct {
	ShipmentID         string `json:"shipmentId"`
	Status             string `json:"status"`
	ShipmentReferences []struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"shipmentReferences"`
	Items []struct {
		ItemID string `json:"itemId"`
	} `json:"items"`
}

// FindShipment looks the order's shipment up in Track & Trace by the CU
// reference CreateShipment sends (CustomerReference) and the consignor's
// customer number; found is false when PostNord shows none.
//
// PostNord documents neither how soon a booking becomes visible there nor
// how "no match" is answered: an empty list, a 404 and a 200 whose only
// content is a compositeFault all mean not found. When several shipments
// carry the reference (the order was booked twice already), the first one
// is returned. The label is not part of the answer: when the label store
// still holds the label CreateShipment stored for the item (the process
// stopped after storing it, before the shipment was recorded), the
// Shipment gets its location; else it has none and the label is printed
// from PostNord's portal by its item id.
func (c *Client) FindShipment(ctx context.Context, o integrations.Order) (integrations.Shipment, bool, error) {
	const op = "find shipment"
	ref := CustomerReference(o)
	q := url.Values{}
	q.Set("apikey", c.cfg.APIKey)
	q.Set("locale", "en")
	endpoint := strings.TrimRight(c.cfg.BaseURL, "/") +
		pathf(FindByReferencePath, c.cfg.CustomerNumber, ref) + "?" + q.Encode()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return integrations.Shipment{}, false, integrations.Permanentf(provider, op, "build request: %s", c.redact(err.Error()))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return integrations.Shipment{}, false, integrations.NetError(provider, op, c.redactErr(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return integrations.Shipment{}, false, integrations.NetError(provider, op, c.redactErr(err))
	}
	if resp.StatusCode == http.StatusNotFound {
		return integrations.Shipment{}, false, nil
	}
	if resp.StatusCode/100 != 2 {
		return integrations.Shipment{}, false, integrations.HTTPError(provider, op, resp, c.redact(errorMessage(raw)))
	}
	var tr trackingResponse
	if err := json.Unmarshal(raw, &tr); err != nil {
		return integrations.Shipment{}, false, integrations.Transientf(provider, op, "answer is not a Track & Trace response: %v", err)
	}
	var match []trackedShipment
	for _, s := range tr.TrackingInformationResponse.Shipments {
		if hasReference(s, ref) {
			match = append(match, s)
		}
	}
	if len(match) == 0 {
		return integrations.Shipment{}, false, nil
	}
	s := match[0]
	itemID := ""
	if len(s.Items) > 0 {
		itemID = s.Items[0].ItemID
	}
	if len(match) > 1 {
		c.log.WarnContext(ctx, "several shipments carry the order's reference", "order_id", o.ID, "shipments", len(match))
	}
	c.log.InfoContext(ctx, "shipment found by reference", "order_id", o.ID, "item_id", itemID, "shipment_id", s.ShipmentID)
	sh := integrations.Shipment{ShipmentID: s.ShipmentID, TrackingNumber: itemID}
	if itemID != "" {
		sh.TrackingURL = strings.ReplaceAll(c.cfg.TrackingURLTemplate, "{id}", itemID)
		if f, ok := c.cfg.Labels.(labelstore.Finder); ok {
			if loc, ok := f.Find(o.ID, "label-"+itemID+".pdf"); ok {
				sh.LabelLocation = loc
				c.log.InfoContext(ctx, "label of the shipment found in the label store", "order_id", o.ID, "item_id", itemID)
			}
		}
	}
	return sh, true, nil
}

// hasReference reports whether a shipment carries ref. A shipment listed
// without any references is taken as matching: the look-up was by ref.
func hasReference(s trackedShipment, ref string) bool {
	if len(s.ShipmentReferences) == 0 {
		return true
	}
	for _, r := range s.ShipmentReferences {
		if r.Value == ref {
			return true
		}
	}
	return false
}

// pathf fills a path template with escaped segments.
func pathf(tmpl string, segs ...string) string {
	args := make([]any, len(segs))
	for i, s := range segs {
		args[i] = url.PathEscape(s)
	}
	return fmt.Sprintf(tmpl, args...)
}
