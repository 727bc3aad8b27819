package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
	"github.com/webhookauth/caddy-webhookauth/internal/ipranges"
)

// IPRangesConfig is the ip_ranges block of the webhook app: how the
// providers' published address lists (allow_ips published) are kept.
type IPRangesConfig struct {
	// Refresh is how often each list is fetched again (±10%). Default 1h.
	Refresh caddy.Duration `json:"refresh,omitempty"`
	// URLs replaces, per provider, the address its list is fetched from
	// (a mirror, a private deployment, tests). HTTPS only.
	URLs map[string]string `json:"urls,omitempty"`
	// RootCA lists PEM files whose certificates replace the system's
	// trusted roots for these fetches.
	RootCA []string `json:"root_ca,omitempty"`
}

// ipManagers holds one manager per distinct configuration for the
// process: its lists survive reloads.
var ipManagers = caddy.NewUsagePool()

type pooledIPManager struct{ *ipranges.Manager }

func (p pooledIPManager) Destruct() error {
	p.Close()
	unregisterIPManager(p.Manager)
	return nil
}

// openIPRanges returns the process's manager for this configuration.
func (a *App) openIPRanges(ctx caddy.Context) (*ipranges.Manager, string, error) {
	cfg := a.Ranges
	if cfg == nil {
		cfg = &IPRangesConfig{}
	}
	for provider, u := range cfg.URLs {
		if len(u) < 9 || u[:8] != "https://" {
			return nil, "", fmt.Errorf("ip_ranges: url %s %q: lists are fetched over https only", provider, u)
		}
	}
	fp, _ := json.Marshal(cfg)
	sum := sha256.Sum256(fp)
	key := "ipranges:" + hex.EncodeToString(sum[:])
	val, _, err := ipManagers.LoadOrNew(key, func() (caddy.Destructor, error) {
		roots, err := readRoots(cfg.RootCA)
		if err != nil {
			return nil, fmt.Errorf("ip_ranges: %w", err)
		}
		m := ipranges.New(ipranges.Config{Refresh: time.Duration(cfg.Refresh), Roots: roots, Storage: storageOf(ctx),
			Observe: func(provider string, ok bool, why string, l *ipranges.List) {
				if !ok {
					ipMetrics.failures.WithLabelValues(provider).Inc()
					ctx.Logger().Warn("a provider's IP ranges could not be refreshed; the last good list stays in force",
						zap.String("provider", provider), zap.String("error", why), zap.Bool("have_list", l != nil))
				}
			}})
		registerIPManager(m)
		return pooledIPManager{m}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return val.(pooledIPManager).Manager, key, nil
}

// storageOf is Caddy's storage, or nil for a context without a config
// (the verify command provisions handlers outside a running Caddy).
func storageOf(ctx caddy.Context) (s ipranges.Storage) {
	defer func() {
		if recover() != nil {
			s = nil
		}
	}()
	if st := ctx.Storage(); st != nil {
		return st
	}
	return nil
}

// IPRanges implements webhookauth.IPRangesSource. It waits a moment for
// a list never obtained before, so a server that starts with the
// provider reachable serves its first request with the list.
func (a *App) IPRanges(provider string, def ipranges.Published) (*ipranges.Manager, error) {
	if a.ipm == nil {
		return nil, fmt.Errorf("the webhook app keeps no IP ranges")
	}
	src := def
	if a.Ranges != nil && a.Ranges.URLs[provider] != "" {
		src.URL = a.Ranges.URLs[provider]
	}
	a.ipm.Watch(provider, src)
	if a.ipm.Get(provider) == nil {
		a.ipm.Wait(provider, 5*time.Second)
	}
	return a.ipm, nil
}

// The IP ranges' metrics, in Caddy's registry.
var ipMetrics = struct {
	failures *prometheus.CounterVec
	state    *ipStateCollector
}{
	failures: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webhook", Name: "ip_ranges_refresh_failures_total",
		Help: "Refreshes of a provider's published IP ranges that failed or were refused (empty, absurd); the last good list stays.",
	}, []string{"provider"}),
	state: &ipStateCollector{
		ranges: prometheus.NewDesc("caddy_webhook_ip_ranges", "Ranges in force from a provider's published list.", []string{"provider"}, nil),
		age:    prometheus.NewDesc("caddy_webhook_ip_ranges_age_seconds", "Age of the last good list of a provider's IP ranges.", []string{"provider"}, nil),
	},
}

var (
	ipMu      sync.Mutex
	ipManaged = map[*ipranges.Manager]bool{}
)

func registerIPManager(m *ipranges.Manager) {
	ipMu.Lock()
	ipManaged[m] = true
	ipMu.Unlock()
}

func unregisterIPManager(m *ipranges.Manager) {
	ipMu.Lock()
	delete(ipManaged, m)
	ipMu.Unlock()
}

type ipStateCollector struct{ ranges, age *prometheus.Desc }

func (c *ipStateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.ranges
	ch <- c.age
}

func (c *ipStateCollector) Collect(ch chan<- prometheus.Metric) {
	ipMu.Lock()
	defer ipMu.Unlock()
	seen := map[string]bool{}
	for m := range ipManaged {
		for provider, l := range m.Lists() {
			if seen[provider] {
				continue
			}
			seen[provider] = true
			ch <- prometheus.MustNewConstMetric(c.ranges, prometheus.GaugeValue, float64(len(l.Prefixes)), provider)
			ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, time.Since(l.Fetched).Seconds(), provider)
		}
	}
}

func registerIPMetrics(ctx caddy.Context) error {
	return gate.RegisterCollectors(ctx, ipMetrics.failures, ipMetrics.state)
}
