package processor

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Step outcomes, the outcome label of orderflow_step_duration_seconds.
const (
	outcomeOK        = "ok"
	outcomeTransient = "transient"
	outcomePermanent = "permanent"
	outcomeSkipped   = "skipped"
	outcomeHeld      = "held"
)

// metrics are the processor's Prometheus collectors.
type metrics struct {
	stepDuration  *prometheus.HistogramVec
	stepAttempts  *prometheus.CounterVec
	orders        *prometheus.CounterVec
	inflight      prometheus.Gauge
	lag           *prometheus.GaugeVec
	restore       prometheus.Histogram
	circuit       *prometheus.GaugeVec
	dlqWrites     *prometheus.CounterVec
	alerts        prometheus.Counter
	alertsDropped prometheus.Counter
	notOrders     prometheus.Counter
	corruptStates prometheus.Counter
	// The local state stores.
	states         *prometheus.GaugeVec
	restoredStates prometheus.Counter
	storeRebuilds  prometheus.Counter
	storeFailures  prometheus.Counter
	erased         *prometheus.CounterVec
	reconciles     *prometheus.CounterVec
	// Steps held for their provider's quota (hold.go).
	held           *prometheus.GaugeVec
	heldUntil      *prometheus.GaugeVec
	quotaExhausted *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderflow_step_duration_seconds",
			Help:    "Duration of one step call by step and outcome (ok, transient, permanent, skipped, held: refused for the provider's quota).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"step", "outcome"}),
		stepAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_step_attempts_total",
			Help: "Provider calls made by step, retries included.",
		}, []string{"step"}),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_orders_total",
			Help: "Orders reaching a final status (completed, dead_lettered, parked, refunded, payment_failed).",
		}, []string{"status"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderflow_orders_inflight",
			Help: "Records fetched and not yet finished.",
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderflow_consumer_lag",
			Help: "Records between the partition's high watermark and its finished watermark.",
		}, []string{"partition"}),
		restore: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderflow_state_restore_seconds",
			Help:    "Time to restore the order states of newly assigned partitions.",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 10),
		}),
		circuit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderflow_circuit_state",
			Help: "Circuit state by step: 0 closed, 1 half-open, 2 open.",
		}, []string{"step"}),
		dlqWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_dlq_writes_total",
			Help: "Dead letters written by class.",
		}, []string{"class"}),
		alerts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_alerts_total",
			Help: "Alerts raised (each is logged, then queued for the alerter).",
		}),
		notOrders: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_events_not_orders_total",
			Help: "Events of no order, ignored: Checkout Sessions in setup or subscription mode, PaymentIntents of a Stripe invoice, refunds of charges without a PaymentIntent.",
		}),
		alertsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_alerts_dropped_total",
			Help: "Alerts logged but not sent because the alerter's queue was full or the processor was stopping.",
		}),
		corruptStates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_state_corrupt_total",
			Help: "Unreadable orders.state records skipped during restore.",
		}),
		states: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderflow_order_states",
			Help: "Order states of the assigned partitions held in memory (the cache) and on disk (the local stores).",
		}, []string{"where"}),
		restoredStates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_state_restore_records_total",
			Help: "orders.state records read to bring local stores up to date.",
		}),
		storeRebuilds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_state_store_rebuilds_total",
			Help: "Local state stores rebuilt from orders.state because they were missing, foreign, corrupt or stale.",
		}),
		storeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_state_store_failures_total",
			Help: "Local state stores that failed a read or write while in use (their partition reads orders.state instead).",
		}),
		erased: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_orders_erased_total",
			Help: "Order states replaced by an erasure marker (reason request) or removed by --state-retention (reason retention).",
		}, []string{"reason"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_reconcile_lookups_total",
			Help: "Look-ups at the provider of calls interrupted after their intent, by step and outcome (found, not_found, error).",
		}, []string{"step", "outcome"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderflow_steps_held",
			Help: "Orders of the assigned partitions whose step is held because its provider's quota is used up (the one probing whether it is back included), by step.",
		}, []string{"step"}),
		heldUntil: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderflow_step_held_until_seconds",
			Help: "When a held step's provider quota resets (Unix seconds; 0 when the step is not held), by step.",
		}, []string{"step"}),
		quotaExhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_step_quota_exhaustions_total",
			Help: "Holds started because a step's provider said its quota is used up (one alert each), by step.",
		}, []string{"step"}),
	}
	for _, c := range []prometheus.Collector{m.stepDuration, m.stepAttempts, m.orders, m.inflight, m.lag,
		m.restore, m.circuit, m.dlqWrites, m.alerts, m.alertsDropped, m.notOrders, m.corruptStates, m.states, m.restoredStates,
		m.storeRebuilds, m.storeFailures, m.erased, m.reconciles, m.held, m.heldUntil, m.quotaExhausted} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func partitionLabel(p int32) string { return strconv.Itoa(int(p)) }
