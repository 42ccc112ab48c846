package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// webhookSim is a receiver of the outbound webhook step: POST
// /webhooks/{name} with a Standard Webhooks request. It checks the three
// headers and, when Config.WebhookSecrets or the receiver's
// Config.WebhookSecretsByName are set, the v1 signature and the timestamp's
// tolerance (±5 minutes, as the specification's libraries).
// Every accepted delivery is recorded; a delivery whose webhook-id was seen
// before is a duplicate (the receiver would deduplicate it), so the stats
// count Created per accepted delivery and DuplicateCreates per repeat.
//
// The verification is written from the specification here, independently
// of integrations/webhook, so a test of the client against the simulator
// checks one implementation against another.
type webhookSim struct {
	s      *Server
	keys   [][]byte
	byName map[string][][]byte

	mu   sync.Mutex
	byID map[string]*WebhookDelivery
}

// WebhookDelivery is what the simulator recorded of one webhook-id.
type WebhookDelivery struct {
	Name      string    `json:"name"`  // the {name} of the URL
	ID        string    `json:"id"`    // webhook-id
	Type      string    `json:"type"`  // the payload's type
	Order     string    `json:"order"` // data.order.id
	Attempts  int       `json:"attempts"`
	Verified  bool      `json:"verified"`  // the signature was checked against a configured secret
	Timestamp time.Time `json:"timestamp"` // webhook-timestamp of the last attempt
}

// maxWebhookIDs bounds the remembered webhook-ids; past it the oldest
// half is forgotten (a long load test keeps running, with duplicates
// counted over the recent deliveries only).
const maxWebhookIDs = 200000

// webhookTolerance is how far webhook-timestamp may be from the clock.
const webhookTolerance = 5 * time.Minute

var webhookName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func newWebhookSim(s *Server, secrets []string, byName map[string][]string) *webhookSim {
	ws := &webhookSim{s: s, byID: map[string]*WebhookDelivery{}, byName: map[string][][]byte{}}
	for _, sec := range secrets {
		k, _ := decodeWebhookSecret(sec) // Config.Validate checked them
		ws.keys = append(ws.keys, k)
	}
	for name, secs := range byName {
		for _, sec := range secs {
			k, _ := decodeWebhookSecret(sec)
			ws.byName[name] = append(ws.byName[name], k)
		}
	}
	return ws
}

// keysFor returns the keys that verify the receiver name's deliveries.
func (ws *webhookSim) keysFor(name string) [][]byte {
	if k, ok := ws.byName[name]; ok {
		return k
	}
	return ws.keys
}

// decodeWebhookSecret reads "whsec_<base64>" (the prefix is optional).
func decodeWebhookSecret(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
	if err != nil || len(k) == 0 {
		return nil, fmt.Errorf("webhook secret is not whsec_ followed by base64")
	}
	return k, nil
}

func webhookErrors(w http.ResponseWriter, r *http.Request, status int, msg string) {
	plainError(w, status, msg)
}

func plainError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintln(w, msg)
}

func (ws *webhookSim) receive(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !webhookName.MatchString(name) {
		plainError(w, http.StatusNotFound, "no such webhook endpoint")
		return
	}
	id := r.Header.Get("webhook-id")
	tsText := r.Header.Get("webhook-timestamp")
	sigs := r.Header.Get("webhook-signature")
	if id == "" || tsText == "" || sigs == "" || strings.Contains(id, ".") {
		plainError(w, http.StatusBadRequest, "missing or malformed webhook-id, webhook-timestamp or webhook-signature")
		return
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		plainError(w, http.StatusBadRequest, "webhook-timestamp is not unix seconds")
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		plainError(w, http.StatusRequestEntityTooLarge, "body too large")
		return
	}
	verified := false
	keys := ws.keysFor(name)
	if len(keys) > 0 {
		if d := nowUTC().Sub(time.Unix(ts, 0)); d > webhookTolerance || d < -webhookTolerance {
			plainError(w, http.StatusUnauthorized, "webhook-timestamp outside the tolerance of 5 minutes")
			return
		}
		if !signatureMatches(keys, id, tsText, body, sigs) {
			plainError(w, http.StatusUnauthorized, "no matching signature")
			return
		}
		verified = true
	} else if !strings.Contains(sigs, "v1,") {
		plainError(w, http.StatusBadRequest, "no v1 signature")
		return
	}
	var p struct {
		Type string `json:"type"`
		Data struct {
			Order struct {
				ID string `json:"id"`
			} `json:"order"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Type == "" {
		plainError(w, http.StatusBadRequest, "body is not a webhook payload with a type")
		return
	}

	ws.mu.Lock()
	d := ws.byID[id]
	if d == nil {
		if len(ws.byID) >= maxWebhookIDs {
			ws.forgetOldest()
		}
		d = &WebhookDelivery{Name: name, ID: id}
		ws.byID[id] = d
	}
	d.Type, d.Order, d.Verified, d.Timestamp = p.Type, p.Data.Order.ID, verified, time.Unix(ts, 0).UTC()
	d.Attempts++
	first := d.Attempts == 1
	ws.mu.Unlock()

	e := entry{Time: nowUTC(), Step: StepWebhook, Order: p.Data.Order.ID, Kind: "delivery:" + name, ID: id, Action: "create"}
	e.Duplicate = ws.s.stats.created(StepWebhook, "delivery", id)
	if first {
		var pretty []byte
		var v any
		if json.Unmarshal(body, &v) == nil {
			pretty, _ = json.MarshalIndent(v, "", "  ")
		}
		e.File = ws.s.outbox.write(StepWebhook, name+"-"+id+".json", pretty)
	}
	ws.s.outbox.record(e)
	writeJSON(w, http.StatusOK, obj{"ok": true, "duplicate": !first})
}

// signatureMatches checks each space-separated "v1,<base64>" against
// HMAC-SHA256("<id>.<timestamp>.<body>") with each known key.
func signatureMatches(keys [][]byte, id, ts string, body []byte, header string) bool {
	for _, sig := range strings.Fields(header) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		for _, k := range keys {
			m := hmac.New(sha256.New, k)
			m.Write([]byte(id + "." + ts + "."))
			m.Write(body)
			if hmac.Equal(got, m.Sum(nil)) {
				return true
			}
		}
	}
	return false
}

// forgetOldest drops the older half of the remembered ids; ws.mu is held.
func (ws *webhookSim) forgetOldest() {
	all := make([]*WebhookDelivery, 0, len(ws.byID))
	for _, d := range ws.byID {
		all = append(all, d)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Timestamp.Before(all[j].Timestamp) })
	for _, d := range all[:len(all)/2] {
		delete(ws.byID, d.ID)
	}
}

// WebhookDeliveries lists what the webhook receiver accepted, one entry per
// webhook-id, ordered by name and id.
func (s *Server) WebhookDeliveries() []WebhookDelivery {
	s.wh.mu.Lock()
	out := make([]WebhookDelivery, 0, len(s.wh.byID))
	for _, d := range s.wh.byID {
		out = append(out, *d)
	}
	s.wh.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (s *Server) getWebhookDeliveries(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, obj{"deliveries": s.WebhookDeliveries()})
}

// validateAdditions checks the settings of the webhook receiver and the
// limits (called by Config.Validate).
func (c Config) validateAdditions() []error {
	var errs []error
	for i, sec := range c.WebhookSecrets {
		if _, err := decodeWebhookSecret(sec); err != nil {
			errs = append(errs, fmt.Errorf("webhook secret %d: %w", i+1, err))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.WebhookSecretsByName)) {
		if !webhookName.MatchString(name) {
			errs = append(errs, fmt.Errorf("webhook %q: a name is 1–64 letters, digits, '_' or '-'", name))
		}
		secs := c.WebhookSecretsByName[name]
		if len(secs) == 0 {
			errs = append(errs, fmt.Errorf("webhook %s: no secret", name))
		}
		for i, sec := range secs {
			if _, err := decodeWebhookSecret(sec); err != nil {
				errs = append(errs, fmt.Errorf("webhook %s: secret %d: %w", name, i+1, err))
			}
		}
	}
	if err := c.Limits.validate(); err != nil {
		errs = append(errs, err)
	}
	return errs
}
