package sim

import (
	"testing"
)

func zohoToken(t *testing.T, url string) string {
	t.Helper()
	r := call(t, "POST", url+"/oauth/v2/token?grant_type=refresh_token&client_id=c&client_secret=s&refresh_token=1000.r", nil, nil)
	wantStatus(t, r, 200)
	m := r.json(t)
	tok, _ := m["access_token"].(string)
	if tok == "" || m["expires_in"] != float64(3600) || m["api_domain"] != url {
		t.Fatalf("token response: %s", r.body)
	}
	return tok
}

func TestZohoToken(t *testing.T) {
	_, ts := newTest(t, Config{})
	zohoToken(t, ts.URL)
	// The grant also works with a form body, as some clients send it.
	r := call(t, "POST", ts.URL+"/oauth/v2/token", map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		"grant_type=refresh_token&client_id=c&client_secret=s&refresh_token=r")
	if r.json(t)["access_token"] == nil {
		t.Fatalf("form body grant: %s", r.body)
	}
	for _, tc := range []struct{ q, wantErr string }{
		{"grant_type=authorization_code&client_id=c&client_secret=s&refresh_token=r", "unsupported_grant_type"},
		{"grant_type=refresh_token&client_secret=s&refresh_token=r", "invalid_client"},
		{"grant_type=refresh_token&client_id=c&client_secret=s", "invalid_code"},
	} {
		r := call(t, "POST", ts.URL+"/oauth/v2/token?"+tc.q, nil, nil)
		// Zoho reports token errors inside HTTP 200.
		wantStatus(t, r, 200)
		if got := r.json(t)["error"]; got != tc.wantErr {
			t.Errorf("%s: error %v, want %s", tc.q, got, tc.wantErr)
		}
	}
}

func TestZohoUpsert(t *testing.T) {
	s, ts := newTest(t, Config{})
	tok := zohoToken(t, ts.URL)
	auth := map[string]string{"Authorization": "Zoho-oauthtoken " + tok, "Content-Type": "application/json"}

	// Contact: insert, then the same email updates the same record.
	c1 := call(t, "POST", ts.URL+"/crm/v3/Contacts/upsert", auth, `{"data":[{"Last_Name":"Mäkinen","First_Name":"Aino","Email":"aino@example.fi"}],"duplicate_check_fields":["Email"],"trigger":[]}`)
	wantStatus(t, c1, 200)
	m1 := c1.json(t)
	contactID, _ := path(m1, "data", 0, "details", "id").(string)
	if path(m1, "data", 0, "action") != "insert" || path(m1, "data", 0, "code") != "SUCCESS" || contactID == "" {
		t.Fatalf("first upsert: %s", c1.body)
	}
	c2 := call(t, "POST", ts.URL+"/crm/v3/Contacts/upsert", auth, `{"data":[{"Last_Name":"Mäkinen","Email":"AINO@example.fi"}]}`)
	m2 := c2.json(t)
	if path(m2, "data", 0, "action") != "update" || path(m2, "data", 0, "details", "id") != contactID || path(m2, "data", 0, "duplicate_field") != "Email" {
		t.Fatalf("second upsert should update %s: %s", contactID, c2.body)
	}

	// Deal keyed on its name, linked to the contact.
	deal := `{"data":[{"Deal_Name":"OF-123","Stage":"Closed Won","Amount":12.5,"Contact_Name":{"id":"` + contactID + `"}}],"duplicate_check_fields":["Deal_Name"]}`
	d1 := call(t, "POST", ts.URL+"/crm/v3/Deals/upsert", auth, deal)
	d2 := call(t, "POST", ts.URL+"/crm/v3/Deals/upsert", auth, deal)
	if path(d1.json(t), "data", 0, "action") != "insert" || path(d2.json(t), "data", 0, "action") != "update" ||
		path(d1.json(t), "data", 0, "details", "id") != path(d2.json(t), "data", 0, "details", "id") {
		t.Fatalf("deal upserts: %s / %s", d1.body, d2.body)
	}
	wantStats(t, s, StepCRM, StepStats{Requests: 4, Created: 2})

	// Mixed batch: one good record, one missing its mandatory field → 207.
	mixed := call(t, "POST", ts.URL+"/crm/v3/Contacts/upsert", auth, `{"data":[{"Last_Name":"A","Email":"a@x.fi"},{"Email":"b@x.fi"}]}`)
	wantStatus(t, mixed, 207)
	if path(mixed.json(t), "data", 1, "code") != "MANDATORY_NOT_FOUND" || path(mixed.json(t), "data", 1, "details", "api_name") != "Last_Name" {
		t.Fatalf("mixed batch: %s", mixed.body)
	}
}

func TestZohoErrors(t *testing.T) {
	s, ts := newTest(t, Config{})
	tok := zohoToken(t, ts.URL)
	auth := map[string]string{"Authorization": "Zoho-oauthtoken " + tok}
	for _, tc := range []struct {
		name       string
		path       string
		hdr        map[string]string
		body       string
		status     int
		code       string // top-level code, or per-record code when perRecord
		perRecord  bool
		recordAPIn string
	}{
		{"no auth", "/crm/v3/Contacts/upsert", nil, `{"data":[{"Last_Name":"x"}]}`, 401, "AUTHENTICATION_FAILURE", false, ""},
		{"bearer is not zoho's scheme", "/crm/v3/Contacts/upsert", map[string]string{"Authorization": "Bearer " + tok}, `{"data":[{"Last_Name":"x"}]}`, 401, "AUTHENTICATION_FAILURE", false, ""},
		{"unknown token", "/crm/v3/Contacts/upsert", map[string]string{"Authorization": "Zoho-oauthtoken 1000.nope"}, `{"data":[{"Last_Name":"x"}]}`, 401, "INVALID_TOKEN", false, ""},
		{"bad module", "/crm/v3/Potions/upsert", auth, `{"data":[{"Last_Name":"x"}]}`, 400, "INVALID_MODULE", false, ""},
		{"bad json", "/crm/v3/Contacts/upsert", auth, `{"data":`, 400, "INVALID_DATA", false, ""},
		{"no data", "/crm/v3/Contacts/upsert", auth, `{"data":[]}`, 400, "MANDATORY_NOT_FOUND", false, ""},
		{"missing last name", "/crm/v3/Contacts/upsert", auth, `{"data":[{"Email":"a@b.c"}]}`, 400, "MANDATORY_NOT_FOUND", true, "Last_Name"},
		{"bad email", "/crm/v3/Contacts/upsert", auth, `{"data":[{"Last_Name":"x","Email":"nope"}]}`, 400, "INVALID_DATA", true, "Email"},
		{"unknown contact lookup", "/crm/v3/Deals/upsert", auth, `{"data":[{"Deal_Name":"OF-1","Contact_Name":{"id":"42"}}]}`, 400, "INVALID_DATA", true, "Contact_Name"},
		{"amount as text", "/crm/v3/Deals/upsert", auth, `{"data":[{"Deal_Name":"OF-1","Amount":"12,50"}]}`, 400, "INVALID_DATA", true, "Amount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, "POST", ts.URL+tc.path, tc.hdr, tc.body)
			wantStatus(t, r, tc.status)
			m := r.json(t)
			if tc.perRecord {
				if path(m, "data", 0, "code") != tc.code || path(m, "data", 0, "status") != "error" || path(m, "data", 0, "details", "api_name") != tc.recordAPIn {
					t.Fatalf("per-record error: %s", r.body)
				}
				return
			}
			if m["code"] != tc.code || m["status"] != "error" {
				t.Fatalf("top-level error: %s", r.body)
			}
		})
	}
	if got := s.Stats().Steps[StepCRM].Created; got != 0 {
		t.Fatalf("failed upserts created %d objects", got)
	}

	// A token the server forgot (restart, revocation) is refused; a fresh
	// one works.
	s.InvalidateZohoTokens()
	r := call(t, "POST", ts.URL+"/crm/v3/Contacts/upsert", auth, `{"data":[{"Last_Name":"x"}]}`)
	wantStatus(t, r, 401)
	fresh := zohoToken(t, ts.URL)
	r = call(t, "POST", ts.URL+"/crm/v3/Contacts/upsert", map[string]string{"Authorization": "Zoho-oauthtoken " + fresh}, `{"data":[{"Last_Name":"x"}]}`)
	wantStatus(t, r, 200)
}
