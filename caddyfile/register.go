// Package caddyfile is the Caddyfile surface of caddy-webhookauth: it
// registers the directives and their order and the global webhook option;
// each module parses its own directive (UnmarshalCaddyfile beside it).
package caddyfile

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookauth/caddy-webhookauth/queue"
	"github.com/webhookauth/caddy-webhookauth/ratelimit"
	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// The resulting order is … rewrite, uri, try_files, webhook_rate_limit,
// webhook_auth, basic_auth, forward_auth, request_header, … handle, route,
// respond, reverse_proxy …: rate limiting (cheap) before verification
// (hashing), both before the auth and routing directives, so that neither
// handle, route nor reverse_proxy sees an unverified request, and after
// rewrite and uri, which only change where a request goes. Caddy only lets
// plugins order themselves relative to standard directives, so both are
// placed before basic_auth, rate limiting first.
func init() {
	httpcaddyfile.RegisterHandlerDirective("webhook_rate_limit", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		m := new(ratelimit.Handler)
		return m, m.UnmarshalCaddyfile(h.Dispenser)
	})
	httpcaddyfile.RegisterDirectiveOrder("webhook_rate_limit", httpcaddyfile.Before, "basic_auth")

	httpcaddyfile.RegisterHandlerDirective("webhook_auth", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		m := new(webhookauth.Handler)
		return m, m.UnmarshalCaddyfile(h.Dispenser)
	})
	httpcaddyfile.RegisterDirectiveOrder("webhook_auth", httpcaddyfile.Before, "basic_auth")

	// webhook_queue answers the sender itself and hands the delivery to
	// its own deliver route later: it runs where reverse_proxy would,
	// just before it, after webhook_auth and the routing directives.
	httpcaddyfile.RegisterHandlerDirective("webhook_queue", queue.ParseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("webhook_queue", httpcaddyfile.Before, "reverse_proxy")
}
