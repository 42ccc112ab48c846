package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	stripego "github.com/stripe/stripe-go/v76"
)

// Seeded Stripe objects: a Checkout Session (with all its line items, their
// taxes and discounts, the tax breakdown, the shipping cost, the customer
// details) or a PaymentIntent, in the JSON Stripe's API sends (the shapes
// stripe-go v76 decodes), served instead of the derived order for that id.
// With a data folder each one is kept as <DataDir>/stripe/<id>.json and read
// again at start-up.

func newStripeSim(s *Server) (*stripeSim, error) {
	st := &stripeSim{s: s, sessions: map[string]obj{}, byPI: map[string]string{}, pis: map[string]obj{}, epoch: nowUTC().Unix()}
	if s.cfg.DataDir == "" {
		return st, nil
	}
	st.dir = filepath.Join(s.cfg.DataDir, "stripe")
	if err := os.MkdirAll(st.dir, 0o755); err != nil {
		return nil, fmt.Errorf("stripe objects: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(st.dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("stripe objects: %w", err)
		}
		m, err := decodeObject(raw)
		if err != nil {
			s.log.Warn("sim: unreadable seeded Stripe object skipped", "file", f, "err", err)
			continue
		}
		switch m["object"] {
		case "checkout.session":
			st.putSession(m)
		case "payment_intent":
			st.pis[idOf(m)] = m
		}
	}
	return st, nil
}

func decodeObject(raw []byte) (obj, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m obj
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// SeedCheckoutSession stores a Checkout Session (its JSON as the API sends
// it, line_items holding every line item) to be served for its id. An
// expanded payment_intent object is stored as that PaymentIntent too.
func (s *Server) SeedCheckoutSession(raw []byte) error {
	return s.stripe.seed("checkout.session", "", raw)
}

// SeedPaymentIntent stores a PaymentIntent to be served for its id; one
// no seeded session refers to is a payment made without Checkout.
func (s *Server) SeedPaymentIntent(raw []byte) error { return s.stripe.seed("payment_intent", "", raw) }

// errSeed is a seed the simulator refuses (400).
type errSeed struct{ msg string }

func (e errSeed) Error() string { return e.msg }

func (st *stripeSim) seed(kind, id string, raw []byte) error {
	m, err := decodeObject(raw)
	if err != nil {
		return errSeed{"body is not a JSON object: " + err.Error()}
	}
	if o, _ := m["object"].(string); o == "" {
		m["object"] = kind
	} else if o != kind {
		return errSeed{fmt.Sprintf("object is %q, want %q", o, kind)}
	}
	if got := idOf(m); id != "" && got == "" {
		m["id"] = id
	} else if id != "" && got != id {
		return errSeed{fmt.Sprintf("id %q differs from the path's %q", got, id)}
	} else if got == "" {
		return errSeed{"the object has no id"}
	}
	id = idOf(m)
	var pi obj
	switch kind {
	case "checkout.session":
		if !strings.HasPrefix(id, "cs_") {
			return errSeed{"a Checkout Session id starts with cs_"}
		}
		if err := st.normalizeItems(m); err != nil {
			return err
		}
		if p, ok := m["payment_intent"].(obj); ok {
			pi = p
			m["payment_intent"] = idOf(p)
		}
		if err := decodesAs(m, &stripego.CheckoutSession{}); err != nil {
			return err
		}
	case "payment_intent":
		if !strings.HasPrefix(id, "pi_") {
			return errSeed{"a PaymentIntent id starts with pi_"}
		}
		if err := decodesAs(m, &stripego.PaymentIntent{}); err != nil {
			return err
		}
	}
	if pi != nil {
		if err := decodesAs(pi, &stripego.PaymentIntent{}); err != nil {
			return err
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if kind == "checkout.session" {
		st.putSession(m)
	} else {
		st.pis[id] = m
	}
	if pi != nil {
		if _, seeded := st.pis[idOf(pi)]; !seeded {
			pi["object"] = "payment_intent"
			st.pis[idOf(pi)] = pi
			if err := st.save(idOf(pi), pi); err != nil {
				return err
			}
		}
	}
	return st.save(id, m)
}

// normalizeItems makes line_items a list object holding every item, each
// with an id (the list is paginated by id).
func (st *stripeSim) normalizeItems(m obj) error {
	items := allItems(m)
	if _, ok := m["line_items"]; ok && items == nil {
		if li, ok := m["line_items"].(obj); !ok || li["data"] == nil {
			return errSeed{"line_items must be a list object {\"data\":[…]} or an array of line items"}
		}
	}
	seen := map[string]bool{}
	for i, it := range items {
		item, ok := it.(obj)
		if !ok {
			return errSeed{fmt.Sprintf("line item %d is not an object", i+1)}
		}
		if idOf(item) == "" {
			item["id"] = fmt.Sprintf("li_%s_%d", strings.TrimPrefix(idOf(m), "cs_"), i+1)
		}
		if seen[idOf(item)] {
			return errSeed{fmt.Sprintf("line item id %q appears twice", idOf(item))}
		}
		seen[idOf(item)] = true
		if item["object"] == nil {
			item["object"] = "item"
		}
		if err := decodesAs(item, &stripego.LineItem{}); err != nil {
			return errSeed{fmt.Sprintf("line item %d: %v", i+1, err)}
		}
	}
	if items == nil {
		items = []any{}
	}
	m["line_items"] = obj{"object": "list", "data": items, "has_more": false}
	return nil
}

// decodesAs checks that stripe-go v76 decodes m into v.
func decodesAs(m obj, v any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return errSeed{err.Error()}
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errSeed{"stripe-go v76 cannot decode it: " + err.Error()}
	}
	return nil
}

// putSession stores a session; the caller holds mu or is the constructor.
func (st *stripeSim) putSession(m obj) {
	id := idOf(m)
	if old, ok := st.sessions[id]; ok {
		delete(st.byPI, idOf(old["payment_intent"]))
	}
	st.sessions[id] = m
	if pi := idOf(m["payment_intent"]); pi != "" {
		st.byPI[pi] = id
	}
}

func (st *stripeSim) save(id string, m obj) error {
	if st.dir == "" {
		return nil
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	final := filepath.Join(st.dir, safeName(id)+".json")
	tmp := final + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

func (st *stripeSim) seededSession(id string) obj {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.sessions[id]
}

// seededSessionFor returns the seeded session of a PaymentIntent, and
// whether that PaymentIntent was seeded at all.
func (st *stripeSim) seededSessionFor(pi string) (obj, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if cs, ok := st.byPI[pi]; ok {
		return st.sessions[cs], true
	}
	_, seeded := st.pis[pi]
	return nil, seeded
}

func (st *stripeSim) seededPaymentIntent(id string) obj {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.pis[id]
}

// putSeed is PUT /_sim/stripe/checkout/sessions/{id} and
// PUT /_sim/stripe/payment_intents/{id}.
func (s *Server) putSeed(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, err := readBody(w, r)
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, obj{"error": err.Error()})
			return
		}
		if err := s.stripe.seed(kind, r.PathValue("id"), raw); err != nil {
			var es errSeed
			if errors.As(err, &es) {
				writeJSON(w, http.StatusBadRequest, obj{"error": err.Error()})
				return
			}
			writeJSON(w, http.StatusInternalServerError, obj{"error": "storing the object: " + err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, obj{"id": r.PathValue("id"), "object": kind, "seeded": true})
	}
}

// getSeeds lists the seeded ids.
func (s *Server) getSeeds(w http.ResponseWriter, _ *http.Request) {
	st := s.stripe
	st.mu.Lock()
	cs := make([]string, 0, len(st.sessions))
	for id := range st.sessions {
		cs = append(cs, id)
	}
	pis := make([]string, 0, len(st.pis))
	for id := range st.pis {
		pis = append(pis, id)
	}
	st.mu.Unlock()
	sort.Strings(cs)
	sort.Strings(pis)
	writeJSON(w, http.StatusOK, obj{"checkout_sessions": cs, "payment_intents": pis})
}

// deleteSeeds forgets every seeded object (and its file).
func (s *Server) deleteSeeds(w http.ResponseWriter, _ *http.Request) {
	st := s.stripe
	st.mu.Lock()
	st.sessions, st.byPI, st.pis = map[string]obj{}, map[string]string{}, map[string]obj{}
	dir := st.dir
	st.mu.Unlock()
	if dir != "" {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, f := range files {
			_ = os.Remove(f)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
