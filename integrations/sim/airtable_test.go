package sim

import (
	"fmt"
	"strings"
	"testing"
)

func TestAirtableUpsert(t *testing.T) {
	s, ts := newTest(t, Config{})
	url := ts.URL + "/v0/appSIM123/tblOrders"
	auth := map[string]string{"Authorization": "Bearer patSIM.x", "Content-Type": "application/json"}
	body := func(status string) string {
		return `{"performUpsert":{"fieldsToMergeOn":["Order ID"]},"records":[{"fields":{"Order ID":"pi_1","Status":"` + status + `","Customer":"Åsa Lindström"}}],"typecast":true}`
	}
	r1 := call(t, "PATCH", url, auth, body("crm"))
	wantStatus(t, r1, 200)
	m1 := r1.json(t)
	id, _ := path(m1, "records", 0, "id").(string)
	if !strings.HasPrefix(id, "rec") || path(m1, "createdRecords", 0) != id || len(m1["updatedRecords"].([]any)) != 0 ||
		path(m1, "records", 0, "fields", "Customer") != "Åsa Lindström" || path(m1, "records", 0, "createdTime") == nil {
		t.Fatalf("create: %s", r1.body)
	}
	r2 := call(t, "PATCH", url, auth, body("crm,shipping"))
	m2 := r2.json(t)
	if path(m2, "updatedRecords", 0) != id || len(m2["createdRecords"].([]any)) != 0 || path(m2, "records", 0, "id") != id {
		t.Fatalf("second upsert should update %s: %s", id, r2.body)
	}
	// Another table in the same base is separate.
	r3 := call(t, "PATCH", ts.URL+"/v0/appSIM123/tblOther", auth, body("crm"))
	if path(r3.json(t), "createdRecords", 0) == nil {
		t.Fatalf("other table: %s", r3.body)
	}
	// Update by record id, without performUpsert.
	r4 := call(t, "PATCH", url, auth, `{"records":[{"id":"`+id+`","fields":{"Status":"done"}}]}`)
	wantStatus(t, r4, 200)
	if path(r4.json(t), "records", 0, "id") != id {
		t.Fatalf("update by id: %s", r4.body)
	}
	wantStats(t, s, StepProductionLog, StepStats{Requests: 4, Created: 2, Records: 4})
}

func TestAirtableErrors(t *testing.T) {
	s, ts := newTest(t, Config{})
	url := ts.URL + "/v0/appSIM123/tblOrders"
	auth := map[string]string{"Authorization": "Bearer patSIM.x"}
	eleven := make([]string, 11)
	for i := range eleven {
		eleven[i] = fmt.Sprintf(`{"fields":{"Order ID":"pi_%d"}}`, i)
	}
	for _, tc := range []struct {
		name   string
		hdr    map[string]string
		body   string
		status int
		typ    string
	}{
		{"no auth", nil, `{"records":[]}`, 401, "AUTHENTICATION_REQUIRED"},
		{"bad json", auth, `{"records":`, 400, "INVALID_REQUEST_BODY"},
		{"no records", auth, `{"performUpsert":{"fieldsToMergeOn":["Order ID"]},"records":[]}`, 422, "INVALID_RECORDS"},
		{"eleven records", auth, `{"performUpsert":{"fieldsToMergeOn":["Order ID"]},"records":[` + strings.Join(eleven, ",") + `]}`, 422, "INVALID_RECORDS"},
		{"merge field missing", auth, `{"performUpsert":{"fieldsToMergeOn":["Order ID"]},"records":[{"fields":{"Status":"x"}}]}`, 422, "INVALID_VALUE_FOR_COLUMN"},
		{"four merge fields", auth, `{"performUpsert":{"fieldsToMergeOn":["a","b","c","d"]},"records":[{"fields":{"a":"x"}}]}`, 422, "INVALID_REQUEST_UNKNOWN"},
		{"no id and no upsert", auth, `{"records":[{"fields":{"Order ID":"pi_1"}}]}`, 422, "INVALID_RECORDS"},
		{"unknown id", auth, `{"records":[{"id":"recNOPE","fields":{"Status":"x"}}]}`, 404, "NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, "PATCH", url, tc.hdr, tc.body)
			wantStatus(t, r, tc.status)
			if got := path(r.json(t), "error", "type"); got != tc.typ {
				t.Fatalf("error type %v, want %s: %s", got, tc.typ, r.body)
			}
		})
	}
	if got := s.Stats().Steps[StepProductionLog].Created; got != 0 {
		t.Fatalf("failed requests created %d rows", got)
	}
}

func TestAirtableBatchOfTen(t *testing.T) {
	s, ts := newTest(t, Config{})
	url := ts.URL + "/v0/appSIM123/tblOrders"
	auth := map[string]string{"Authorization": "Bearer patSIM.x", "Content-Type": "application/json"}
	body := func(status string) string {
		recs := make([]string, 10)
		for i := range recs {
			recs[i] = fmt.Sprintf(`{"fields":{"Order ID":"pi_batch%d","Status":%q}}`, i, status)
		}
		return `{"performUpsert":{"fieldsToMergeOn":["Order ID"]},"records":[` + strings.Join(recs, ",") + `],"typecast":true}`
	}
	r1 := call(t, "PATCH", url, auth, body("crm"))
	wantStatus(t, r1, 200)
	m1 := r1.json(t)
	ids := make([]string, 10)
	for i := range ids {
		ids[i], _ = path(m1, "records", i, "id").(string)
		if ids[i] == "" || path(m1, "records", i, "fields", "Order ID") != fmt.Sprintf("pi_batch%d", i) || path(m1, "createdRecords", i) != ids[i] {
			t.Fatalf("record %d of the first batch: %s", i, r1.body)
		}
	}
	r2 := call(t, "PATCH", url, auth, body("crm, shipping"))
	wantStatus(t, r2, 200)
	m2 := r2.json(t)
	if len(m2["createdRecords"].([]any)) != 0 || len(m2["updatedRecords"].([]any)) != 10 {
		t.Fatalf("repeat should update all 10: %s", r2.body)
	}
	for i, id := range ids {
		if path(m2, "records", i, "id") != id {
			t.Fatalf("record %d: id %v, want %s", i, path(m2, "records", i, "id"), id)
		}
	}
	wantStats(t, s, StepProductionLog, StepStats{Requests: 2, Created: 10, Records: 20})
}
