package caddymodule

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/voipnow-pce/caddy-voipnow-pce/caddymodule/pce"
)

// The gateway's metrics. Label values come from small fixed sets (an error
// code, a tier, an outcome), never a token, a user or an address.
var metrics = struct {
	once          sync.Once
	decisions     *prometheus.CounterVec
	lookups       *prometheus.CounterVec
	introspection *prometheus.HistogramVec
	redisErrors   *prometheus.CounterVec
	breakerOpen   prometheus.Gauge
	feedDown      prometheus.Gauge
}{}

func initMetrics() {
	metrics.once.Do(func() {
		const ns, sub = "caddy", "voipnow_pce"
		metrics.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "Requests the gateway owned, by operation (list, create, update, delete; none for a method the resource has not) and decision: forwarded, or the error code answered.",
		}, []string{"operation", "code"})
		metrics.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "cache_lookups_total",
			Help: "Token cache lookups by tier (memory, redis) and result (hit, miss, negative, stale, coalesced).",
		}, []string{"tier", "result"})
		metrics.introspection = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "introspection_duration_seconds",
			Help:    "Calls to the introspection endpoint by outcome (active, inactive, error); the count is the number of calls.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"outcome"})
		metrics.redisErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "redis_errors_total",
			Help: "Failed Redis operations by operation.",
		}, []string{"op"})
		metrics.feedDown = prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "revocation_feed_down",
			Help: "How many token caches cannot hear the revocation record in Redis right now; 0 when all is well.",
		})
		metrics.breakerOpen = prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "redis_breaker_open",
			Help: "How many token caches have their Redis circuit breaker open (Redis skipped); 0 when all is well.",
		})
		// Every series exists from the start, at zero, so dashboards and
		// rate() see the first event.
		for _, op := range append(pce.AllOperations(), pce.OpNone) {
			metrics.decisions.WithLabelValues(opLabel(op), "forwarded")
			for _, e := range pce.Codes() {
				metrics.decisions.WithLabelValues(opLabel(op), e.Code)
			}
		}
		for _, tier := range []string{"memory", "redis"} {
			for _, result := range []string{"hit", "miss", "negative", "stale", "coalesced"} {
				metrics.lookups.WithLabelValues(tier, result)
			}
		}
		for _, outcome := range []string{"active", "inactive", "error"} {
			metrics.introspection.WithLabelValues(outcome)
		}
		for _, op := range []string{"get", "set", "lock", "del", "publish"} {
			metrics.redisErrors.WithLabelValues(op)
		}
	})
}

// registerMetrics adds the gateway's collectors to a config's registry;
// Caddy makes a new registry on each reload, and several handlers may
// register into one.
func registerMetrics(reg *prometheus.Registry) {
	initMetrics()
	if reg == nil {
		return
	}
	for _, c := range []prometheus.Collector{metrics.decisions, metrics.lookups, metrics.introspection, metrics.redisErrors, metrics.breakerOpen, metrics.feedDown} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
		}
	}
}

func countDecision(op pce.Operation, code string) {
	metrics.decisions.WithLabelValues(opLabel(op), code).Inc()
}

// opLabel is an operation's label value: its name, or "none".
func opLabel(op pce.Operation) string {
	if op == pce.OpNone {
		return "none"
	}
	return op.String()
}

// metricsObserver feeds the token cache's events into the metrics.
type metricsObserver struct{}

func (metricsObserver) Lookup(tier, result string) {
	metrics.lookups.WithLabelValues(tier, result).Inc()
}

func (metricsObserver) RedisError(op string) {
	metrics.redisErrors.WithLabelValues(op).Inc()
}

// BreakerState counts open breakers: each cache reports its own
// transitions, open then closed, so the gauge is how many caches are
// skipping their Redis right now.
func (metricsObserver) BreakerState(open bool) {
	if open {
		metrics.breakerOpen.Inc()
	} else {
		metrics.breakerOpen.Dec()
	}
}

// Feed counts the caches that cannot hear the revocation record, as
// BreakerState counts open breakers.
func (metricsObserver) Feed(up bool) {
	if up {
		metrics.feedDown.Dec()
	} else {
		metrics.feedDown.Inc()
	}
}

func (metricsObserver) Introspection(outcome string, d time.Duration) {
	metrics.introspection.WithLabelValues(outcome).Observe(d.Seconds())
}
