// Package console is orderflow's operator console: a web UI, served from
// the binary, to find any order, see where it is stuck, and replay dead
// letters.
//
// It keeps its own index on disk (Index, a Pebble store) of what it
// follows as a plain consumer, without a consumer group: `orders.state`
// (each order's latest state, decoded into a Summary for lists and
// search), `orders` (the events, from their headers), `orders.dlq` (the
// dead letters, from their headers) and `orders.audit` (the operator
// actions). The Follower resumes from the offsets checkpointed in the
// index with the data, so it survives restarts and works with any number
// of processors.
//
// The Server renders the pages with html/template; the only script is the
// hand-written web/static/app.js. Outside loopback dev mode every page
// needs a login (users with bcrypt hashes, or a bearer token); viewers see
// customer data masked and change nothing; operators replay dead letters
// through dlq.Client.Run, the implementation behind `orderflow dlq replay`.
// Every POST carries a CSRF token, and every action is written to
// `orders.audit` before it runs.
package console
