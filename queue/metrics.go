package queue

import (
	"sort"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
)

// The queues' metrics, in Caddy's registry. Labels are bounded: the
// queue's name (from the config), the state, the outcome, the reason.
type metricSet struct {
	accepted *prometheus.CounterVec
	refused  *prometheus.CounterVec
	attempts *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	state    *stateCollector
}

var metrics = sync.OnceValue(func() *metricSet {
	const ns, sub = "caddy", "webhook_queue"
	return &metricSet{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "accepted_total",
			Help: "Deliveries stored and answered 2xx, by queue.",
		}, []string{"queue"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "refused_total",
			Help: "Deliveries refused with 503 (queue_full, queue_unavailable), by queue and reason.",
		}, []string{"queue", "reason"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "attempts_total",
			Help: "Delivery attempts by queue and outcome (delivered, retry, dead).",
		}, []string{"queue", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "attempt_duration_seconds",
			Help:    "Time of one delivery attempt through the deliver route.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"queue"}),
		state: &stateCollector{
			// store is local or redis: a queue on Redis is the fleet's,
			// reported alike by every server (aggregate it with max, a
			// local one with sum).
			items: prometheus.NewDesc("caddy_webhook_queue_items", "Items in a queue by state (pending, in_flight, dead, retained); with store=\"redis\", the fleet's queue, reported by every server.", []string{"queue", "state", "store"}, nil),
			oldest: prometheus.NewDesc("caddy_webhook_queue_oldest_pending_seconds",
				"Age of the oldest pending item (0: none).", []string{"queue"}, nil),
			paused: prometheus.NewDesc("caddy_webhook_queue_paused", "1 while delivery is paused.", []string{"queue"}, nil),
		},
	}
})

// registerMetrics registers the queue metrics in ctx's registry, once.
func registerMetrics(ctx caddy.Context) error {
	m := metrics()
	return gate.RegisterCollectors(ctx, m.accepted, m.refused, m.attempts, m.latency, m.state)
}

// runtimeMetrics are one queue's series.
type runtimeMetrics struct {
	accepted, full, unavailable prometheus.Counter
	delivered, retried, dead    prometheus.Counter
	latency                     prometheus.Observer
}

func newRuntimeMetrics(name string) *runtimeMetrics {
	m := metrics()
	return &runtimeMetrics{
		accepted:    m.accepted.WithLabelValues(name),
		full:        m.refused.WithLabelValues(name, string(ReasonQueueFull)),
		unavailable: m.refused.WithLabelValues(name, string(ReasonQueueUnavailable)),
		delivered:   m.attempts.WithLabelValues(name, "delivered"),
		retried:     m.attempts.WithLabelValues(name, "retry"),
		dead:        m.attempts.WithLabelValues(name, "dead"),
		latency:     m.latency.WithLabelValues(name),
	}
}

// stateCollector reports each live queue's counts when scraped, read
// from its store, so they are right across restarts and reloads.
type stateCollector struct {
	items, oldest, paused *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.items
	ch <- c.oldest
	ch <- c.paused
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, rt := range runtimes() {
		st, err := rt.store.Stats()
		if err != nil {
			continue
		}
		inflight := rt.inFlight()
		if rt.shared {
			inflight = st.InFlight
		}
		store := "local"
		if rt.shared {
			store = "redis"
		}
		ch <- prometheus.MustNewConstMetric(c.items, prometheus.GaugeValue, float64(st.Pending-inflight), rt.name, "pending", store)
		ch <- prometheus.MustNewConstMetric(c.items, prometheus.GaugeValue, float64(inflight), rt.name, "in_flight", store)
		ch <- prometheus.MustNewConstMetric(c.items, prometheus.GaugeValue, float64(st.Dead), rt.name, "dead", store)
		ch <- prometheus.MustNewConstMetric(c.items, prometheus.GaugeValue, float64(st.Retained), rt.name, "retained", store)
		age := 0.0
		if !st.Oldest.IsZero() {
			age = max(rt.now().Sub(st.Oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, rt.name)
		paused := 0.0
		if rt.paused.Load() {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, paused, rt.name)
	}
}

// The live queues of the process, by name: the admin API and the
// metrics read them.
var (
	liveMu sync.Mutex
	live   = map[string]*runtime{}
)

func register(rt *runtime) {
	liveMu.Lock()
	defer liveMu.Unlock()
	live[rt.name] = rt
}

func unregister(rt *runtime) {
	liveMu.Lock()
	defer liveMu.Unlock()
	if live[rt.name] == rt {
		delete(live, rt.name)
	}
}

func lookup(name string) *runtime {
	liveMu.Lock()
	defer liveMu.Unlock()
	return live[name]
}

// runtimes returns the live queues, sorted by name.
func runtimes() []*runtime {
	liveMu.Lock()
	out := make([]*runtime, 0, len(live))
	for _, rt := range live {
		out = append(out, rt)
	}
	liveMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// age is how old the oldest pending item is.
func age(st Stats, now time.Time) time.Duration {
	if st.Oldest.IsZero() {
		return 0
	}
	return max(now.Sub(st.Oldest), 0)
}
