package caddyfile

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
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
	httpcaddyfile.RegisterHandlerDirective("webhook_rate_limit", parseRateLimit)
	httpcaddyfile.RegisterDirectiveOrder("webhook_rate_limit", httpcaddyfile.Before, "basic_auth")

	httpcaddyfile.RegisterHandlerDirective("webhook_auth", parseWebhookAuth)
	httpcaddyfile.RegisterDirectiveOrder("webhook_auth", httpcaddyfile.Before, "basic_auth")
}
