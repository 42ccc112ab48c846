package gateway

import "github.com/orderflow/orderflow/topics/tracing"

// traceParent returns in when it is a valid W3C traceparent header, so a
// trace started upstream continues through the pipeline; otherwise a new
// one with a random trace id and parent id, sampled. With tracing on, the
// record's header is then replaced by the context of the gateway's publish
// span (a child of its server span, which continues in).
func traceParent(in string) string {
	if validTraceParent(in) {
		return in
	}
	return tracing.NewTraceParent()
}

func validTraceParent(s string) bool { return tracing.ValidTraceParent(s) }
