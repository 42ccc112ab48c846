package topics

import (
	"encoding/json"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// v1Options make the JSON v2 decoder read as encoding/json does (names
// matched without regard to case, duplicate names and invalid UTF-8
// accepted, ...).
var v1Options = jsonv1.DefaultOptionsV1()

// Unmarshal is json.Unmarshal with the JSON v2 decoder in its v1 mode: the
// same result, two to three times faster with a fraction of the
// allocations on the processor's records and results (measured by
// BenchmarkUnmarshal). On an error, encoding/json decodes again so the
// error reads as before.
func Unmarshal(b []byte, v any) error {
	if err := jsonv2.Unmarshal(b, v, v1Options); err != nil {
		return json.Unmarshal(b, v)
	}
	return nil
}
