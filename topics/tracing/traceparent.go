package tracing

import (
	"encoding/hex"
	"math/rand/v2"
)

// NewTraceParent returns a new sampled W3C traceparent with a random trace
// id and parent id: what the gateway writes when tracing is off and the
// request brought none.
func NewTraceParent() string {
	var b [55]byte
	copy(b[:], "00-")
	var id [24]byte
	for i := 0; i < 24; i += 8 {
		v := rand.Uint64()
		for j := range 8 {
			id[i+j] = byte(v >> (8 * j))
		}
	}
	hex.Encode(b[3:35], id[:16])
	b[35] = '-'
	hex.Encode(b[36:52], id[16:])
	copy(b[52:], "-01")
	return string(b[:])
}

// ValidTraceParent checks version-traceid-parentid-flags as W3C Trace
// Context level 1 defines it: lower-case hex, version ff invalid, all-zero
// ids invalid, and for version 00 nothing after the flags. Later versions
// may append fields after a dash.
func ValidTraceParent(s string) bool {
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	if len(s) > 55 && (s[:2] == "00" || s[55] != '-') {
		return false
	}
	if s[:2] == "ff" {
		return false
	}
	for _, f := range [][2]int{{0, 2}, {3, 35}, {36, 52}, {53, 55}} {
		if !lowerHex(s[f[0]:f[1]]) {
			return false
		}
	}
	return !allZero(s[3:35]) && !allZero(s[36:52])
}

// TraceID is the trace id (32 hex digits) of a valid traceparent, else "".
func TraceID(traceparent string) string {
	if !ValidTraceParent(traceparent) {
		return ""
	}
	return traceparent[3:35]
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
