package netvisor

import (
	"strings"

	"github.com/orderflow/orderflow/integrations"
)

// APIError is Netvisor's FAILED reply: the code before " :: " and the
// message after it. It is the Err of the *integrations.Error returned.
type APIError struct {
	Code    string // AUTHENTICATION_FAILED, INVALID_DATA, ...; "" if the reply had none
	Message string // Netvisor's text, cut to 200 characters
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return e.Message
	}
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Netvisor error codes (controlling-errors page, and Heltti's client for the
// last five).
const (
	CodeAuthenticationFailed = "AUTHENTICATION_FAILED"
	CodeInvalidData          = "INVALID_DATA"
	CodeInvalidDataSize      = "INVALID_DATA_SIZE"
	CodeDuplicateData        = "DUPLICATE_DATA"
	CodeRequestNotUnique     = "REQUEST_NOT_UNIQUE"
	CodePeriodLock           = "PERIOD_LOCK"
	CodeServiceAccessError   = "SERVICE_ACCESS_ERROR"
	CodeSystemMaintenance    = "SYSTEM_MAINTANANCE" // sic, as Netvisor spells it
	CodeTechnicalError       = "TECHNICAL_ERROR"
)

// permanentCodes fail the same way on every retry: bad keys, bad or too
// large data, data that already exists, a locked accounting period, a
// service the company has no access to. Everything else, including
// REQUEST_NOT_UNIQUE (a new attempt gets a new TransactionId), maintenance,
// technical errors and codes not listed here, is transient; the processor's
// attempt limit bounds retries of an unknown code.
var permanentCodes = map[string]bool{
	CodeAuthenticationFailed: true,
	CodeInvalidData:          true,
	CodeInvalidDataSize:      true,
	CodeDuplicateData:        true,
	CodePeriodLock:           true,
	CodeServiceAccessError:   true,
}

// classify turns a FAILED reply into a typed error.
func classify(a *APIError) *integrations.Error {
	class := integrations.Transient
	if permanentCodes[a.Code] {
		class = integrations.Permanent
	}
	return &integrations.Error{Provider: provider, Class: class, Err: a}
}

// responseStatus is <Root><ResponseStatus><Status>...</Status>...</Root>.
type responseStatus struct {
	Statuses []string `xml:"ResponseStatus>Status"`
}

func parseStatus(raw []byte) (responseStatus, error) {
	var st responseStatus
	err := unmarshal(raw, &st)
	return st, err
}

func (s responseStatus) first() string {
	if len(s.Statuses) == 0 {
		return ""
	}
	return strings.TrimSpace(s.Statuses[0])
}

func (s responseStatus) ok() bool     { return strings.EqualFold(s.first(), "OK") }
func (s responseStatus) failed() bool { return strings.EqualFold(s.first(), "FAILED") }

// apiError reads "CODE :: message" from the Status elements after FAILED.
func (s responseStatus) apiError() *APIError {
	var parts []string
	for _, st := range s.Statuses[1:] {
		if st = strings.TrimSpace(st); st != "" {
			parts = append(parts, st)
		}
	}
	text := strings.Join(parts, "; ")
	a := &APIError{Message: text}
	if code, msg, ok := strings.Cut(text, "::"); ok {
		code = strings.TrimSpace(code)
		if code != "" && strings.ToUpper(code) == code && !strings.ContainsAny(code, " \t") {
			a.Code, a.Message = code, strings.TrimSpace(msg)
		}
	}
	a.Message = truncate(a.Message, 200)
	return a
}
