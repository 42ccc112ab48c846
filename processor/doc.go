// Package processor runs the order step chain as a Kafka consumer-group
// stream processor: records of one order run strictly in order, records of
// different orders concurrently; each step's result is persisted to
// `orders.state` before the next starts, and an offset is committed only
// below the lowest record not yet finished (or dead-lettered).
package processor
