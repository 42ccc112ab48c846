// Package hostile is orderflow's hostile-input suite for the webhook
// gateway: a corpus of malicious, malformed and merely unusual requests —
// forged, downgraded and replayed signatures, stale and future timestamps,
// truncated, oversized and deeply nested bodies, wrong JSON types, Unicode
// edge cases, missing headers, wrong methods, broken HTTP framing and
// slow-loris clients — each with the status the gateway must answer.
//
// Every case asserts what reached the event log as well as the answer:
// an accepted event is queued as exactly one record carrying the body byte
// for byte, and a rejected request queues nothing. The corpus runs against
// the gateway's handler behind a real HTTP server with an in-process
// producer; the server-level limits (header timeout, read timeout, header
// size) run against the real `orderflow gateway` process and Kafka.
//
// To add a case, append a row to the table in corpus_test.go (or to
// wireCases in wire_test.go for requests that need raw HTTP framing).
package hostile
