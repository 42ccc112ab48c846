package postnord

import (
	"encoding/json"
	"testing"
)

func TestFaultTextSaysEachTextOnce(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"message":"service temporarily unavailable","compositeFault":{"faults":[{"faultCode":"API-503","explanationText":"service temporarily unavailable"}]}}`,
			"service temporarily unavailable [API-503]"},
		{`{"message":"Bad request","compositeFault":{"faults":[{"faultCode":"API-005","explanationText":"postalCode is invalid"}]}}`,
			"Bad request [API-005] postalCode is invalid"},
		{`{"message":"Bad request"}`, "Bad request"},
	} {
		var e errorResponse
		if err := json.Unmarshal([]byte(tc.body), &e); err != nil {
			t.Fatal(err)
		}
		if got := faultText(&e); got != tc.want {
			t.Errorf("faultText(%s) = %q, want %q", tc.body, got, tc.want)
		}
	}
}
