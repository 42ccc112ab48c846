// Package gateway is orderflow's ingest edge: it receives Stripe webhooks on
// POST /webhooks/stripe, verifies their signature against one or more signing
// secrets, drops event types the pipeline does not handle and duplicates it
// has already queued, and produces each remaining event, wrapped in a
// topics.Envelope and keyed by its PaymentIntent id, to the `orders` topic.
//
// The gateway answers 200 only after Kafka acknowledged the record (the
// producer is idempotent, acks=all). When Kafka is slow or down it answers
// 503 well inside Stripe's timeout so Stripe retries, and nothing is written
// to the dedup store: an event is marked as seen only after its record is on
// the log. The dedup store (Redis in production) is a fast path, never a
// gate: when it fails the event is accepted anyway and the processor's
// durable dedup drops the duplicate.
//
// Request path, in order: method (405) → declared size (413) → in-flight byte
// budget (503 + Retry-After) → Stripe-Signature present (400) → body read
// under the size limit (413) → signature and timestamp (400) → event shape
// (400) → event type (200 ignored) → dedup lookup (200 duplicate) → produce
// and await the ack (503) → dedup mark → 200 queued.
package gateway
