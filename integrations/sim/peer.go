package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// The peer endpoints are the generic provider calls of the benchmark peer
// (the original Node.js design): POST /<step> with {"order_id": ...}. They
// are counted with the same meaning as the real APIs of each step, so both
// systems are measured alike: crm and production_log are upserts (created
// once per order), shipping, invoice and email create on every call, and a
// second one for an order is a duplicate create.

// peerUpsert lists the peer steps whose real provider call is an upsert.
var peerUpsert = map[string]bool{StepCRM: true, StepProductionLog: true}

// peerState remembers which orders an upserting peer step already holds.
type peerState struct {
	mu   sync.Mutex
	rows map[string]struct{} // step \x00 order
}

// peerUpserted records the order for step and reports whether it was there.
func (s *Server) peerUpserted(step, order string) bool {
	s.peerRows.mu.Lock()
	defer s.peerRows.mu.Unlock()
	if s.peerRows.rows == nil {
		s.peerRows.rows = map[string]struct{}{}
	}
	k := step + "\x00" + order
	_, ok := s.peerRows.rows[k]
	s.peerRows.rows[k] = struct{}{}
	return ok
}

func (s *Server) peer(w http.ResponseWriter, r *http.Request) {
	h, ok := s.peerHandlers[r.PathValue("step")]
	if !s.cfg.Peer || !ok {
		writeJSON(w, http.StatusNotFound, obj{"error": "not found"})
		return
	}
	h.ServeHTTP(w, r)
}

func peerErrors(w http.ResponseWriter, r *http.Request, status int, msg string) {
	writeJSON(w, status, obj{"error": msg})
}

func (s *Server) peerCall(step string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, err := readBody(w, r)
		if err != nil {
			peerErrors(w, r, http.StatusBadRequest, err.Error())
			return
		}
		var body struct {
			OrderID any `json:"order_id"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			peerErrors(w, r, http.StatusBadRequest, "invalid JSON")
			return
		}
		order := ""
		switch v := body.OrderID.(type) {
		case string:
			order = strings.TrimSpace(v)
		case float64:
			order = fmt.Sprint(v)
		}
		if order == "" {
			peerErrors(w, r, http.StatusBadRequest, "order_id is required")
			return
		}
		id := fmt.Sprintf("%s_%d", step, nextID())
		action := "create"
		if peerUpsert[step] {
			if s.peerUpserted(step, order) {
				action = "update"
			}
		}
		e := entry{Time: nowUTC(), Step: step, Order: order, Kind: "peer_" + step, ID: id, Action: action}
		if action == "create" {
			e.Duplicate = s.stats.created(step, "peer_"+step, order)
		}
		s.outbox.record(e)
		writeJSON(w, http.StatusOK, obj{"ok": true, "id": id, "order_id": order, "action": action})
	}
}
