package airtable

import (
	"testing"

	"github.com/orderflow/orderflow/integrations"
)

// A progress report's failure is logged with the row's text values masked
// (Airtable quotes what it refused): the customer's name, whole or a word
// of it, does not reach the log.
func TestProgressFailureLogMasksTheRow(t *testing.T) {
	row := map[string]any{"Customer": "Zanthia Quorvex6", "Country": "DE", "Total": 12.5, "Order": "OF-PRV0000006"}
	for in, want := range map[string]string{
		"airtable: upsert order: HTTP 400: INVALID_REQUEST: echo | Quorvex6":                         "airtable: upsert order: HTTP 400: INVALID_REQUEST: echo | ***",
		`airtable: upsert order: HTTP 422: Cannot parse value "Zanthia Quorvex6" for field Customer`: `airtable: upsert order: HTTP 422: Cannot parse value "***" for field Customer`,
	} {
		if got := integrations.RedactValues(in, rowValues(row), integrations.MaskedPersonal); got != want {
			t.Errorf("got  %q\nwant %q", got, want)
		}
	}
}
