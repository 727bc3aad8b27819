// Package store is the Caddy app "webhook" (global option `webhook`): it
// owns the state that webhook handlers share across a config and, with
// Redis, across a fleet.
package store

import (
	"sync"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(new(App))
}

// App is the webhook app. Handlers reach it with ctx.App("webhook"); a
// config without a `webhook` global option gets one with defaults, so
// handlers never need to check.
type App struct {
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
var _ caddy.App = (*App)(nil)
