package console

import (
	jsonv2 "github.com/go-json-experiment/json"

	"github.com/orderflow/orderflow/processor"
)

// decodeState reads a state record as processor.DecodeState does, with
// the faster JSON v2 decoder (decoding is most of an index catch-up's
// cost: measured by make bench). A record v2 refuses (invalid UTF-8, which
// v1 replaces) goes to processor.DecodeState, so both accept the same
// records; TestDecodeStateAgrees checks they read them alike.
func decodeState(b []byte) (*processor.State, error) {
	var s processor.State
	if err := jsonv2.Unmarshal(b, &s); err != nil {
		return processor.DecodeState(b)
	}
	return processor.FinishDecode(&s)
}
