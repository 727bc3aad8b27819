// Package store is the Caddy app "webhook" (global option `webhook`): it
// owns the state that webhook handlers share across a config and, with
// Redis, across a fleet of Caddy servers.
package store

import (
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/webhookauth/caddy-webhookauth/internal/ipranges"
	"github.com/webhookauth/caddy-webhookauth/internal/keyfetch"
	"github.com/webhookauth/caddy-webhookauth/ratelimit"
	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

func init() {
	caddy.RegisterModule(new(App))
}

// App is the webhook app. Handlers reach it with ctx.App("webhook"); a
// config without a `webhook` global option gets one with defaults (no
// Redis), so handlers never need to check.
type App struct {
	// Redis configures the shared store used by handlers with
	// `store redis`. One connection pool per process serves every handler
	// and survives config reloads.
	Redis *RedisConfig `json:"redis,omitempty"`

	// Keys bounds the fetching of the keys some senders sign with (SNS,
	// PayPal, Pub/Sub); see KeysConfig.
	Keys *KeysConfig `json:"keys,omitempty"`

	// IPRanges configures how providers' published IP ranges are kept
	// (allow_ips published); see IPRangesConfig.
	Ranges *IPRangesConfig `json:"ip_ranges,omitempty"`

	client  *pooledClient
	poolKey string
	keys    *keyfetch.Source
	keysKey string
	ipm     *ipranges.Manager
	ipmKey  string

	mu  sync.Mutex
	seq map[string]int
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "webhook",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision connects to Redis when it is configured. The connection is
// lazy: a Redis that is down at startup does not stop Caddy; requests that
// need it get the handlers' on_store_error answer until it is back.
func (a *App) Provision(ctx caddy.Context) error {
	if err := a.Keys.validate(); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	keys, keysKey, err := a.openKeys()
	if err != nil {
		return fmt.Errorf("webhook: keys: %w", err)
	}
	a.keys, a.keysKey = keys, keysKey
	if err := registerIPMetrics(ctx); err != nil {
		return fmt.Errorf("webhook: registering metrics: %w", err)
	}
	if a.ipm, a.ipmKey, err = a.openIPRanges(ctx); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	if a.Redis == nil {
		return nil
	}
	client, key, err := a.Redis.open()
	if err != nil {
		return fmt.Errorf("webhook: redis: %w", err)
	}
	a.client, a.poolKey = client, key
	return nil
}

// Cleanup releases this config's hold on the Redis pool; it is closed
// when no config uses it any more.
func (a *App) Cleanup() error {
	if a.keysKey != "" {
		sources.Delete(a.keysKey)
	}
	if a.ipmKey != "" {
		ipManagers.Delete(a.ipmKey)
	}
	if a.poolKey != "" {
		_, err := clients.Delete(a.poolKey)
		return err
	}
	return nil
}

// RateLimitStore implements ratelimit.StoreProvider.
func (a *App) RateLimitStore(name string) (ratelimit.Store, error) {
	if err := a.needRedis(name); err != nil {
		return nil, err
	}
	return &RedisRateLimit{pipe: a.client.pipe, prefix: a.Redis.keyPrefix() + "r:", timeout: a.Redis.timeout()}, nil
}

// DedupStore implements webhookauth.DedupProvider.
func (a *App) DedupStore(name string) (webhookauth.DedupStore, error) {
	if err := a.needRedis(name); err != nil {
		return nil, err
	}
	return &RedisDedup{pipe: a.client.pipe, prefix: a.Redis.keyPrefix() + "d:", timeout: a.Redis.timeout()}, nil
}

func (a *App) needRedis(name string) error {
	if name != "redis" {
		return fmt.Errorf("unknown store %q (want memory or redis)", name)
	}
	if a.client == nil {
		return fmt.Errorf("store redis needs a redis block in the global webhook option: { webhook { redis { address redis://127.0.0.1:6379 } } }")
	}
	return nil
}

// Sequence returns 0, 1, 2, … on successive calls with the same kind
// within one config. Handlers without a name use it, with their settings,
// as a stable identity for state that must survive a reload of the same
// config without being shared with another handler by accident.
func (a *App) Sequence(kind string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seq == nil {
		a.seq = make(map[string]int)
	}
	n := a.seq[kind]
	a.seq[kind] = n + 1
	return n
}

// Start implements caddy.App.
func (*App) Start() error { return nil }

// Stop implements caddy.App.
func (*App) Stop() error { return nil }

// Interface guards
var (
	_ caddy.App                  = (*App)(nil)
	_ caddy.Provisioner          = (*App)(nil)
	_ caddy.CleanerUpper         = (*App)(nil)
	_ ratelimit.StoreProvider    = (*App)(nil)
	_ webhookauth.DedupProvider  = (*App)(nil)
	_ webhookauth.KeySource      = (*App)(nil)
	_ webhookauth.IPRangesSource = (*App)(nil)
)

// QueueRedis gives webhook_queue's `store redis` the process's Redis
// client, the key prefix and the call timeout.
func (a *App) QueueRedis() (redis.UniversalClient, string, time.Duration, error) {
	if err := a.needRedis("redis"); err != nil {
		return nil, "", 0, err
	}
	return a.client.UniversalClient, a.Redis.keyPrefix() + "q:", a.Redis.timeout(), nil
}
