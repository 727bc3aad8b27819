package ratelimit

import (
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookauth/caddy-webhookauth/internal/cfparse"
	"github.com/webhookauth/caddy-webhookauth/internal/gate"
)

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
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
func (handler *Handler) UnmarshalCaddyfile(h *caddyfile.Dispenser) error {
	const name = "webhook_rate_limit"
	h.Next()
	if h.NextArg() {
		handler.Name = h.Val()
	}
	if h.NextArg() {
		return h.Errf("%s: unexpected argument '%s' (the name is the only argument; settings go in the block)", name, h.Val())
	}
	b := cfparse.NewBlock(h, name)
	b.Known = subdirectives
	err := b.Each(0, func(sub string) error {
		var err error
		switch sub {
		case "key":
			handler.Key, err = b.OneArg()
		case "rate":
			var v string
			if v, err = b.OneArg(); err == nil {
				var events int64
				var window time.Duration
				if events, window, err = parseRate(v); err != nil {
					return h.Errf("%s: %v", name, err)
				}
				handler.Rate, handler.Window = events, caddy.Duration(window)
			}
		case "burst":
			var v string
			if v, err = b.OneArg(); err == nil {
				n, perr := strconv.ParseInt(v, 10, 64)
				if perr != nil || n < 1 {
					return h.Errf("%s: 'burst %s' must be a whole number of at least 1", name, v)
				}
				handler.Burst = n
			}
		case "max_keys":
			var v string
			if v, err = b.OneArg(); err == nil {
				n, perr := strconv.Atoi(v)
				if perr != nil || n < 1 {
					return h.Errf("%s: 'max_keys %s' must be a whole number of at least 1", name, v)
				}
				handler.MaxKeys = n
			}
		case "store":
			handler.Store, err = b.OneArg()
		case "on_store_error":
			handler.OnStoreError, err = b.Choice(gate.OnStoreErrorReject, gate.OnStoreErrorAllow)
		case "count":
			handler.Count, err = b.Choice(CountAll, CountRejected)
		case "headers":
			var v string
			if v, err = b.Choice("on", "off"); err == nil {
				handler.Headers = v == "on"
			}
		case "on_reject":
			handler.OnReject, err = b.Choice(gate.OnRejectRespond, gate.OnRejectError)
		default:
			return b.Unknown(sub)
		}
		return err
	})
	if err != nil {
		return err
	}
	// What can be told from the Caddyfile alone is told here, with its
	// line; Validate checks the same for JSON configs.
	if err := handler.Validate(); err != nil {
		return h.Err(err.Error())
	}
	return nil
}

// parseRate reads a rate such as 100/1m, 7/1s or 1/1h: a whole number of
// events, a slash, and a window that Caddy's duration syntax accepts (a
// bare unit such as "m" means one of it).
func parseRate(v string) (int64, time.Duration, error) {
	events, window, err := cfparse.ParseRate(v)
	if err != nil {
		return 0, 0, err
	}
	l := Limit{Rate: events, Window: window}
	if err := l.Validate(); err != nil {
		return 0, 0, fmt.Errorf("rate %q: %v", v, err)
	}
	return events, window, nil
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)

// subdirectives are the subdirectives, for the suggestion an unknown one gets.
var subdirectives = []string{"key", "rate", "burst", "max_keys", "store", "on_store_error", "count", "headers", "on_reject"}
