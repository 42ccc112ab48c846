package sim

import (
	"encoding/json"
	"errors"
	"net/http"
)

// The control of Zoho CRM's daily API credits (with EnforceLimits): tests
// exhaust them mid-run and start a new day without waiting 24 hours.
//
//	GET    /_sim/zoho/credits              {"daily":N,"spent":N,"remaining":N}
//	PUT    /_sim/zoho/credits {"daily":N}  a new allowance (0: not enforced); the credits spent are kept
//	DELETE /_sim/zoho/credits              a new day: the credits spent are forgotten

// ErrLimitsOff is returned by the credit controls of a simulator that does
// not enforce limits.
var ErrLimitsOff = errors.New("sim: limits are not enforced (start it with --enforce-limits)")

// ZohoCreditsNow reports the simulated organisation's API credits.
func (s *Server) ZohoCreditsNow() (ZohoCredits, error) {
	c, ok := s.limits.zohoCreditsNow()
	if !ok {
		return ZohoCredits{}, ErrLimitsOff
	}
	return c, nil
}

// SetZohoDailyCredits sets the allowance per rolling 24 hours (0: not
// enforced), keeping the credits spent.
func (s *Server) SetZohoDailyCredits(daily int) error {
	if s.limits == nil {
		return ErrLimitsOff
	}
	s.limits.setZohoDaily(daily, false)
	return nil
}

// ResetZohoCredits starts a new day: the credits spent are forgotten.
func (s *Server) ResetZohoCredits() error {
	c, ok := s.limits.zohoCreditsNow()
	if !ok {
		return ErrLimitsOff
	}
	s.limits.setZohoDaily(c.Daily, true)
	return nil
}

func (s *Server) zohoCreditsControl(w http.ResponseWriter, r *http.Request) {
	if s.limits == nil {
		writeJSON(w, http.StatusConflict, obj{"error": ErrLimitsOff.Error()})
		return
	}
	switch r.Method {
	case http.MethodPut:
		raw, err := readBody(w, r)
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, obj{"error": err.Error()})
			return
		}
		var b struct {
			Daily *int `json:"daily"`
		}
		if err := json.Unmarshal(raw, &b); err != nil || b.Daily == nil || *b.Daily < 0 {
			writeJSON(w, http.StatusBadRequest, obj{"error": `want {"daily":N} with N >= 0 (0: not enforced)`})
			return
		}
		s.limits.setZohoDaily(*b.Daily, false)
	case http.MethodDelete:
		_ = s.ResetZohoCredits()
	}
	c, _ := s.ZohoCreditsNow()
	writeJSON(w, http.StatusOK, c)
}
