package queue

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookauth/caddy-webhookauth/internal/cfparse"
)

// ParseCaddyfile sets up the handler from Caddyfile tokens. The deliver
// block is parsed like handle's (any handlers, in directive order), so
// it takes the Helper, not only a Dispenser.
//
// Syntax:
//
//	webhook_queue <name> {
//		store        local                    # default
//		path         <dir>                    # default: <data dir>/webhook-queues
//		deliver {
//			reverse_proxy <upstreams…>
//		}
//		respond      <status> [<body>]        # default 200 {"status":"queued","id":…}
//		retry        <delay>…                 # default 10s 1m 5m 30m 2h 6h 12h 24h
//		max_attempts <n>                      # default: the delays + 1
//		max_age      <duration>               # default 72h
//		retry_on     <status|class|transport>… # default transport 408 425 429 5xx
//		concurrency  <n>                      # default 4
//		rate         <n>/<duration>
//		max_pending  <n>                      # default 1000000
//		max_bytes    <size>                   # default 10GB
//		retain       <duration>               # default 0
//		timeout      <duration>               # one attempt, default 60s
//	}
func ParseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	const name = "webhook_queue"
	q := new(Handler)
	d := h.Dispenser
	d.Next()
	if !d.NextArg() {
		return nil, d.Errf("%s: a name is required: webhook_queue <name> { deliver { … } }", name)
	}
	q.Name = d.Val()
	if d.NextArg() {
		return nil, d.Errf("%s: unexpected argument '%s' (the name is the only argument; settings go in the block)", name, d.Val())
	}
	b := cfparse.NewBlock(d, name)
	b.Known = subdirectives
	err := b.Each(0, func(sub string) error {
		var err error
		switch sub {
		case "store":
			q.Store, err = b.Choice("local", "redis")
		case "path":
			q.Path, err = b.OneArg()
		case "deliver":
			if d.NextArg() {
				return d.Errf("%s: 'deliver' takes a block of handlers, no argument", name)
			}
			route, perr := httpcaddyfile.ParseSegmentAsSubroute(h.WithDispenser(d.NewFromNextSegment()))
			if perr != nil {
				return perr
			}
			sr, ok := route.(*caddyhttp.Subroute)
			if !ok || len(sr.Routes) == 0 {
				return d.Errf("%s: 'deliver' needs at least one handler, such as reverse_proxy", name)
			}
			q.DeliverRaw = caddyconfig.JSONModuleObject(sr, "handler", "subroute", nil)
		case "respond":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Errf("%s: 'respond' takes a status and an optional body", name)
			}
			n, perr := strconv.Atoi(args[0])
			if perr != nil || n < 200 || n > 299 {
				return d.Errf("%s: 'respond %s': the answer to a stored delivery is a 2xx status", name, args[0])
			}
			q.RespondStatus = n
			if len(args) == 2 {
				q.RespondBody = args[1]
			}
		case "retry":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("%s: 'retry' takes one or more delays, such as 10s 1m 5m", name)
			}
			for _, a := range args {
				dur, perr := caddy.ParseDuration(a)
				if perr != nil || dur <= 0 {
					return d.Errf("%s: 'retry %s' is not a positive duration (e.g. 10s, 5m, 2h)", name, a)
				}
				q.Retry = append(q.Retry, caddy.Duration(dur))
			}
		case "max_attempts", "concurrency":
			var v string
			if v, err = b.OneArg(); err == nil {
				n, perr := strconv.Atoi(v)
				if perr != nil || n < 1 {
					return d.Errf("%s: '%s %s' must be a whole number of at least 1", name, sub, v)
				}
				if sub == "max_attempts" {
					q.MaxAttempts = n
				} else {
					q.Concurrency = n
				}
			}
		case "max_pending":
			var v string
			if v, err = b.OneArg(); err == nil {
				n, perr := strconv.ParseInt(strings.ReplaceAll(v, "_", ""), 10, 64)
				if perr != nil || n < 1 {
					return d.Errf("%s: 'max_pending %s' must be a whole number of at least 1", name, v)
				}
				q.MaxPending = n
			}
		case "max_bytes":
			q.MaxBytes, err = b.Size()
		case "min_replicas":
			var v string
			if v, err = b.OneArg(); err == nil {
				n, perr := strconv.Atoi(v)
				if perr != nil || n < 0 {
					return d.Errf("%s: 'min_replicas %s' must be a whole number (0: do not wait for replicas)", name, v)
				}
				q.MinReplicas = n
			}
		case "shards":
			var v string
			if v, err = b.OneArg(); err == nil {
				n, perr := strconv.Atoi(v)
				if perr != nil || n < 1 || n > maxShards {
					return d.Errf("%s: 'shards %s' must be a whole number from 1 to %d", name, v, maxShards)
				}
				q.Shards = n
			}
		case "max_age", "retain", "timeout", "visibility_timeout":
			var dur caddy.Duration
			v, derr := b.Duration()
			if derr != nil {
				return derr
			}
			dur = caddy.Duration(v)
			switch sub {
			case "max_age":
				q.MaxAge = dur
			case "retain":
				q.Retain = dur
			case "visibility_timeout":
				q.VisibilityTimeout = dur
			default:
				q.Timeout = dur
			}
		case "retry_on":
			q.RetryOn = d.RemainingArgs()
			if len(q.RetryOn) == 0 {
				return d.Errf("%s: 'retry_on' takes statuses (503), classes (5xx) or transport", name)
			}
			if _, perr := ParseRetryOn(q.RetryOn); perr != nil {
				return d.Errf("%s: %v", name, perr)
			}
		case "rate":
			var v string
			if v, err = b.OneArg(); err == nil {
				n, window, perr := cfparse.ParseRate(v)
				if perr != nil {
					return d.Errf("%s: %v", name, perr)
				}
				q.RateCount, q.RateWindow = int(n), caddy.Duration(window)
			}
		default:
			return b.Unknown(sub)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(q.DeliverRaw) == 0 {
		return nil, d.Errf("%s %s: a 'deliver' block is required: the route each attempt runs, such as deliver { reverse_proxy app:8080 }", name, q.Name)
	}
	return q, nil
}

// subdirectives are the subdirectives, for the suggestion an unknown one gets.
var subdirectives = []string{"store", "path", "deliver", "respond", "retry", "max_attempts", "max_age", "retry_on", "concurrency", "rate", "max_pending", "max_bytes", "retain", "timeout", "visibility_timeout", "min_replicas", "shards"}
