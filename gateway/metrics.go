package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes, the value of the outcome label and the word a 200 answers with.
const (
	OutcomeQueued           = "queued"
	OutcomeDuplicate        = "duplicate"
	OutcomeIgnored          = "ignored"
	OutcomeBadRequest       = "bad_request"
	OutcomeTooLarge         = "too_large"
	OutcomeMethodNotAllowed = "method_not_allowed"
	OutcomeUnavailable      = "unavailable"
	OutcomeOverloaded       = "overloaded"
)

var outcomes = []string{
	OutcomeQueued, OutcomeDuplicate, OutcomeIgnored, OutcomeBadRequest,
	OutcomeTooLarge, OutcomeMethodNotAllowed, OutcomeUnavailable, OutcomeOverloaded,
}

type metrics struct {
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	produceDuration prometheus.Histogram
	dedupHits       prometheus.Counter
	redisErrors     prometheus.Counter
	inflightBytes   prometheus.GaugeFunc
}

// latencyBuckets span a sub-millisecond in-memory answer to a produce that
// runs into its timeout.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics(reg prometheus.Registerer, eventTypes []string, inflight func() float64) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_gateway_requests_total",
			Help: "Webhook requests by outcome and Stripe event type (empty when the event was not read).",
		}, []string{"outcome", "event_type"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderflow_gateway_request_duration_seconds",
			Help:    "Time from request start to response, by outcome.",
			Buckets: latencyBuckets,
		}, []string{"outcome"}),
		produceDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderflow_gateway_produce_duration_seconds",
			Help:    "Time from handing a record to the producer to its acknowledgement or failure.",
			Buckets: latencyBuckets,
		}),
		dedupHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_gateway_dedup_hits_total",
			Help: "Events answered as duplicates because the dedup store held their id.",
		}),
		redisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_gateway_redis_errors_total",
			Help: "Failed dedup store calls; the event was accepted anyway.",
		}),
		inflightBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "orderflow_gateway_inflight_bytes",
			Help: "Bytes of request bodies currently being handled (reserved at the declared or maximum size until read).",
		}, inflight),
	}
	for _, c := range []prometheus.Collector{m.requests, m.requestDuration, m.produceDuration, m.dedupHits, m.redisErrors, m.inflightBytes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Pre-create the common series so dashboards show zeros, not gaps.
	for _, o := range outcomes {
		m.requestDuration.WithLabelValues(o)
	}
	for _, t := range eventTypes {
		m.requests.WithLabelValues(OutcomeQueued, t)
		m.requests.WithLabelValues(OutcomeDuplicate, t)
	}
	return m, nil
}
