package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// airtableSim serves Airtable's update-multiple-records call with
// performUpsert: records are matched on fieldsToMergeOn; no match creates,
// one match updates. Records with an id update that record. The simulator
// remembers ids and merge keys, not field values, so responses echo the
// fields sent.
type airtableSim struct {
	s *Server

	mu      sync.Mutex
	byMerge map[string]string    // base/table \x00 merge key → record id
	records map[string]time.Time // base/table \x00 record id → created time
}

func newAirtableSim(s *Server) *airtableSim {
	return &airtableSim{s: s, byMerge: map[string]string{}, records: map[string]time.Time{}}
}

func airtableError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, obj{"error": obj{"type": typ, "message": msg}})
}

func airtableErrors(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if status >= 500 {
		airtableError(w, status, "SERVICE_UNAVAILABLE", msg)
		return
	}
	airtableError(w, http.StatusUnprocessableEntity, "INVALID_REQUEST_UNKNOWN", msg)
}

type airtableBody struct {
	PerformUpsert *struct {
		FieldsToMergeOn []string `json:"fieldsToMergeOn"`
	} `json:"performUpsert"`
	Records  []airtableRecord `json:"records"`
	Typecast bool             `json:"typecast"`
}

type airtableRecord struct {
	ID     string         `json:"id,omitempty"`
	Fields map[string]any `json:"fields"`
}

func (a *airtableSim) upsert(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		airtableError(w, http.StatusUnauthorized, "AUTHENTICATION_REQUIRED", "Authentication required")
		return
	}
	table := r.PathValue("base") + "/" + r.PathValue("table")
	raw, err := readBody(w, r)
	if err != nil {
		airtableError(w, http.StatusRequestEntityTooLarge, "INVALID_REQUEST_BODY", "Request body too large")
		return
	}
	var body airtableBody
	if err := json.Unmarshal(raw, &body); err != nil {
		airtableError(w, http.StatusBadRequest, "INVALID_REQUEST_BODY", "Could not parse request body")
		return
	}
	if len(body.Records) == 0 || len(body.Records) > 10 {
		airtableError(w, http.StatusUnprocessableEntity, "INVALID_RECORDS", fmt.Sprintf("You must provide an array of up to 10 record objects, got %d", len(body.Records)))
		return
	}
	var merge []string
	if body.PerformUpsert != nil {
		merge = body.PerformUpsert.FieldsToMergeOn
		if len(merge) == 0 || len(merge) > 3 {
			airtableError(w, http.StatusUnprocessableEntity, "INVALID_REQUEST_UNKNOWN", "performUpsert.fieldsToMergeOn must list 1 to 3 fields")
			return
		}
	}
	// Validate every record before changing anything: Airtable applies a
	// request all or nothing.
	keys := make([]string, len(body.Records))
	for i, rec := range body.Records {
		if rec.Fields == nil {
			airtableError(w, http.StatusUnprocessableEntity, "INVALID_RECORDS", fmt.Sprintf("records[%d] has no fields", i))
			return
		}
		if rec.ID != "" {
			continue
		}
		if merge == nil {
			airtableError(w, http.StatusUnprocessableEntity, "INVALID_RECORDS", fmt.Sprintf("records[%d] needs an id, or the request performUpsert", i))
			return
		}
		parts := make([]string, len(merge))
		for j, f := range merge {
			v, has := rec.Fields[f]
			if !has || v == nil || v == "" {
				airtableError(w, http.StatusUnprocessableEntity, "INVALID_VALUE_FOR_COLUMN", fmt.Sprintf("records[%d] has no value for merge field %q", i, f))
				return
			}
			b, _ := json.Marshal(v)
			parts[j] = string(b)
		}
		keys[i] = strings.Join(parts, "\x1f")
	}

	now := nowUTC()
	a.mu.Lock()
	for _, rec := range body.Records {
		if rec.ID != "" {
			if _, ok := a.records[table+"\x00"+rec.ID]; !ok {
				a.mu.Unlock()
				airtableError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("Record %s not found", rec.ID))
				return
			}
		}
	}
	var created, updated []string
	out := make([]any, 0, len(body.Records))
	type rowEvent struct {
		id, key string
		create  bool
		fields  map[string]any
		table   string
	}
	var events []rowEvent
	for i, rec := range body.Records {
		id, create := rec.ID, false
		if id == "" {
			mk := table + "\x00" + keys[i]
			if found, ok := a.byMerge[mk]; ok {
				id = found
			} else {
				id = fmt.Sprintf("rec%014X", nextID())
				a.byMerge[mk] = id
				a.records[table+"\x00"+id] = now
				a.s.records.add(jrec{K: recAirtable, A: mk, B: id, T: now})
				create = true
			}
		}
		if create {
			created = append(created, id)
		} else {
			updated = append(updated, id)
		}
		events = append(events, rowEvent{id: id, key: keys[i], create: create, fields: rec.Fields, table: table})
		out = append(out, obj{
			"id": id, "fields": rec.Fields,
			"createdTime": a.records[table+"\x00"+id].Format("2006-01-02T15:04:05.000Z"),
		})
	}
	a.mu.Unlock()
	a.s.stats.records(StepProductionLog, len(body.Records))

	for _, ev := range events {
		order := strings.Trim(strings.ReplaceAll(ev.key, "\x1f", "/"), `"`)
		pretty, _ := json.MarshalIndent(ev.fields, "", "  ")
		file := a.s.outbox.write(StepProductionLog, ev.id+".json", pretty)
		e := entry{Time: now, Step: StepProductionLog, Order: order, Kind: "row", ID: ev.id, Action: "update", File: file}
		if ev.create {
			e.Action = "create"
			e.Duplicate = a.s.stats.created(StepProductionLog, "row:"+ev.table, order)
		}
		a.s.outbox.record(e)
	}
	resp := obj{"records": out}
	if merge != nil {
		if created == nil {
			created = []string{}
		}
		if updated == nil {
			updated = []string{}
		}
		resp["createdRecords"], resp["updatedRecords"] = created, updated
	}
	writeJSON(w, http.StatusOK, resp)
}
