// Package golden holds the golden-order corpus: realistic Stripe orders
// (testdata/*.json, one order per file, in the JSON shapes of the Stripe API
// version stripe-go v76 pins) with the values each provider must receive,
// written out in the file. The test runs every order through the real
// pipeline (the gateway, Kafka, the processor, the real provider clients)
// against the provider simulator seeded with the order's Stripe objects,
// records what every provider received and compares it field by field.
package golden
