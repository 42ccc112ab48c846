package topics

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// AuditPartitions is the partition count of `orders.audit`: one, so the
// log reads in the order the actions happened.
const AuditPartitions = 1

// AuditRetentionDays is how long `orders.audit` keeps a record.
const AuditRetentionDays = 365

// AuditVersion is the current version of AuditRecord.
const AuditVersion = 1

// Audit actions (AuditRecord.Action).
const (
	AuditReplay      = "replay"
	AuditErase       = "erase"
	AuditLogin       = "login"
	AuditLoginFailed = "login_failed"
)

// Audit outcomes (AuditRecord.Outcome).
const (
	// AuditStarted is written, and acknowledged, before an action changes
	// anything; its result follows in a record with the same ID.
	AuditStarted = "started"
	AuditOK      = "ok"
	AuditFailed  = "failed"
	// AuditDenied: refused before anything was done (a failed login, a
	// rate limit).
	AuditDenied = "denied"
)

// AuditRecord is one operator action on `orders.audit`, keyed by the actor.
// It names what was acted on by ids only (dead letters as partition/offset,
// order ids), never customer data.
type AuditRecord struct {
	Version int       `json:"v"`
	ID      string    `json:"id"` // links a started record to its result
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"` // user or token name; for a failed login the name tried
	Role    string    `json:"role,omitempty"`
	Action  string    `json:"action"`
	DryRun  bool      `json:"dry_run"`
	Target  string    `json:"target,omitempty"` // what the action was on
	Outcome string    `json:"outcome"`
	Result  string    `json:"result,omitempty"` // a summary or the error
	Remote  string    `json:"remote,omitempty"` // the client's address
}

// ErrAuditInvalid is returned by DecodeAudit for a record it cannot read.
var ErrAuditInvalid = errors.New("topics: invalid audit record")

// Encode returns the record's wire form.
func (a AuditRecord) Encode() ([]byte, error) {
	if a.Version == 0 {
		a.Version = AuditVersion
	}
	if a.ID == "" || a.Action == "" || a.Outcome == "" || a.At.IsZero() {
		return nil, fmt.Errorf("%w: id, action, outcome and time are required", ErrAuditInvalid)
	}
	return json.Marshal(a)
}

// DecodeAudit parses an `orders.audit` record value.
func DecodeAudit(b []byte) (AuditRecord, error) {
	var a AuditRecord
	if err := json.Unmarshal(b, &a); err != nil {
		return AuditRecord{}, fmt.Errorf("%w: %v", ErrAuditInvalid, err)
	}
	if a.Version <= 0 || a.Version > AuditVersion {
		return AuditRecord{}, fmt.Errorf("%w: version %d (this build reads up to %d)", ErrAuditInvalid, a.Version, AuditVersion)
	}
	if a.ID == "" || a.Action == "" || a.Outcome == "" {
		return AuditRecord{}, fmt.Errorf("%w: id, action and outcome are required", ErrAuditInvalid)
	}
	return a, nil
}
