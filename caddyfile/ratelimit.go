package caddyfile

import (
	"github.com/webhookauth/caddy-webhookauth/internal/gate"

	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookauth/caddy-webhookauth/ratelimit"
)

// parseRateLimit sets up the webhook_rate_limit handler.
//
// Syntax:
//
//	webhook_rate_limit [<matcher>] [<name>] {
//		key            <template>      # default {client_ip}
//		rate           <events>/<window>
//		burst          <events>        # default: the rate's events
//		max_keys       <n>             # memory store bound, default 1000000
//		store          memory|<name>
//		on_store_error reject|allow
//		headers        on|off
//		on_reject      respond|error
//		count          all|rejected    # default all
//	}
func parseRateLimit(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	const name = "webhook_rate_limit"
	h.Next()
	handler := new(ratelimit.Handler)
	if h.NextArg() {
		handler.Name = h.Val()
	}
	if h.NextArg() {
		return nil, h.Errf("%s: unexpected argument '%s' (the name is the only argument; settings go in the block)", name, h.Val())
	}
	b := newBlock(h.Dispenser, name)
	err := b.each(0, func(sub string) error {
		var err error
		switch sub {
		case "key":
			handler.Key, err = b.oneArg()
		case "rate":
			var v string
			if v, err = b.oneArg(); err == nil {
				var events int64
				var window time.Duration
				if events, window, err = parseRate(v); err != nil {
					return h.Errf("%s: %v", name, err)
				}
				handler.Rate, handler.Window = events, caddy.Duration(window)
			}
		case "burst":
			var v string
			if v, err = b.oneArg(); err == nil {
				n, perr := strconv.ParseInt(v, 10, 64)
				if perr != nil || n < 1 {
					return h.Errf("%s: 'burst %s' must be a whole number of at least 1", name, v)
				}
				handler.Burst = n
			}
		case "max_keys":
			var v string
			if v, err = b.oneArg(); err == nil {
				n, perr := strconv.Atoi(v)
				if perr != nil || n < 1 {
					return h.Errf("%s: 'max_keys %s' must be a whole number of at least 1", name, v)
				}
				handler.MaxKeys = n
			}
		case "store":
			handler.Store, err = b.oneArg()
		case "on_store_error":
			handler.OnStoreError, err = b.choice(gate.OnStoreErrorReject, gate.OnStoreErrorAllow)
		case "count":
			handler.Count, err = b.choice(ratelimit.CountAll, ratelimit.CountRejected)
		case "headers":
			var v string
			if v, err = b.choice("on", "off"); err == nil {
				handler.Headers = v == "on"
			}
		case "on_reject":
			handler.OnReject, err = b.choice(gate.OnRejectRespond, gate.OnRejectError)
		default:
			return b.unknown(sub)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if handler.Rate == 0 {
		return nil, h.Errf("%s: 'rate' is required (e.g. rate 60/1m)", name)
	}
	return handler, nil
}

// parseRate reads a rate such as 100/1m, 7/1s or 1/1h: a whole number of
// events, a slash, and a window that Caddy's duration syntax accepts (a
// bare unit such as "m" means one of it).
func parseRate(v string) (int64, time.Duration, error) {
	evs, win, ok := strings.Cut(v, "/")
	if !ok {
		return 0, 0, errorf("rate %q must be <events>/<window>, e.g. 60/1m", v)
	}
	events, err := strconv.ParseInt(evs, 10, 64)
	if err != nil {
		return 0, 0, errorf("rate %q: %q is not a whole number of events", v, evs)
	}
	if events < 1 {
		return 0, 0, errorf("rate %q: the number of events must be at least 1", v)
	}
	if win != "" && strings.Trim(win, "smhdµun") == "" {
		win = "1" + win // "10/m" reads as "10/1m"
	}
	window, err := caddy.ParseDuration(win)
	if err != nil {
		return 0, 0, errorf("rate %q: %q is not a duration", v, win)
	}
	if window <= 0 {
		return 0, 0, errorf("rate %q: the window must be longer than 0", v)
	}
	l := ratelimit.Limit{Rate: events, Window: window}
	if err := l.Validate(); err != nil {
		return 0, 0, errorf("rate %q: %v", v, err)
	}
	return events, window, nil
}
