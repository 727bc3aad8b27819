package gate

import (
	"errors"
	"strconv"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// The metrics every webhook handler reports, in Caddy's own Prometheus
// registry (Caddy's metrics handler and the admin /metrics endpoint).
// The collectors live as long as the process, so counts carry across
// config reloads, and each new config's registry gets them again when a
// handler is provisioned. Labels are bounded: provider, result (verified,
// duplicate or a rejection reason), limiter name, decision, store,
// operation, secret index. Never a key, an id or an address.
type metricSet struct {
	requests      *prometheus.CounterVec
	verify        *prometheus.HistogramVec
	rateDecisions *prometheus.CounterVec
	storeErrors   *prometheus.CounterVec
	secretMatches *prometheus.CounterVec
	keyLookups    *prometheus.CounterVec
}

var metrics = sync.OnceValue(func() *metricSet {
	const ns, sub = "caddy", "webhook"
	return &metricSet{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "Requests seen by webhook_auth, by provider and result (verified, duplicate or the rejection reason).",
		}, []string{"provider", "result"}),
		verify: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "verify_duration_seconds",
			Help: "Time to compute and compare a delivery's signature over its body.",
			// 1µs to about 0.26s: HMAC of 1 KiB is about 1µs, of 10 MB about 6ms.
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
		}, []string{"provider"}),
		rateDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "rate_limit_decisions_total",
			Help: "webhook_rate_limit decisions, by limiter name and decision (allowed, denied, store_error).",
		}, []string{"name", "decision"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "store_errors_total",
			Help: "Failed calls to a state store, by store (memory, redis) and operation (rate_limit, claim, finish).",
		}, []string{"store", "op"}),
		secretMatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "secret_matches_total",
			Help: "Verified deliveries by provider and the index of the configured secret that matched; an old secret is safe to retire when its count stops growing.",
		}, []string{"provider", "secret_index"}),
		keyLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "key_lookups_total",
			Help: "Lookups of fetched signing keys (SNS, PayPal, Pub/Sub), by result: hit (cached), fetched, stale (a refresh failed; the cached key was used), error (no key), refused (a key URL off the allowlist).",
		}, []string{"result"}),
	}
})

// RegisterMetrics adds the webhook metrics to the registry of the config
// being loaded. Handlers call it from Provision; registering again in the
// same registry is a no-op.
func RegisterMetrics(ctx caddy.Context) error {
	m := metrics()
	return RegisterCollectors(ctx, m.requests, m.verify, m.rateDecisions, m.storeErrors, m.secretMatches, m.keyLookups)
}

// RegisterCollectors registers collectors in ctx's metrics registry,
// once per registry: a collector already registered there (by an earlier
// handler, or the config before a reload) is fine, another one under the
// same name is an error.
func RegisterCollectors(ctx caddy.Context, cs ...prometheus.Collector) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) || are.ExistingCollector != c {
				return err
			}
		}
	}
	return nil
}

// RateLimitCounters returns the decision counters of the limiter name:
// allowed, denied and store_error.
func RateLimitCounters(name string) (allowed, denied, storeError prometheus.Counter) {
	v := metrics().rateDecisions
	return v.WithLabelValues(name, "allowed"), v.WithLabelValues(name, "denied"), v.WithLabelValues(name, "store_error")
}

// StoreErrorCounter returns the counter of failed op calls to store.
func StoreErrorCounter(store, op string) prometheus.Counter {
	return metrics().storeErrors.WithLabelValues(store, op)
}

// Requests returns the counter of webhook_auth requests of provider with
// this result.
func Requests(provider, result string) prometheus.Counter {
	return metrics().requests.WithLabelValues(provider, result)
}

// VerifyDuration returns the verify-time histogram of provider.
func VerifyDuration(provider string) prometheus.Observer {
	return metrics().verify.WithLabelValues(provider)
}

// SecretMatches returns the counter of deliveries of provider verified
// by the secret at index.
func SecretMatches(provider string, index int) prometheus.Counter {
	return metrics().secretMatches.WithLabelValues(provider, strconv.Itoa(index))
}

// KeyEvent counts one lookup of a fetched key with its result.
func KeyEvent(result string) {
	metrics().keyLookups.WithLabelValues(result).Inc()
}

// KeyLookups returns the counter of key lookups with this result.
func KeyLookups(result string) prometheus.Counter {
	return metrics().keyLookups.WithLabelValues(result)
}
