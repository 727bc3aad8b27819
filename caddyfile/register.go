package caddyfile

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("webhook_auth", parseWebhookAuth)
	// Verification goes before the auth and routing directives, so that
	// neither handle, route nor reverse_proxy sees an unverified request,
	// and after rewrite/uri, which only change where it goes.
	httpcaddyfile.RegisterDirectiveOrder("webhook_auth", httpcaddyfile.Before, "basic_auth")

	// Rate limiting is cheap and runs before any hashing.
	httpcaddyfile.RegisterHandlerDirective("webhook_rate_limit", parseRateLimit)
	httpcaddyfile.RegisterDirectiveOrder("webhook_rate_limit", httpcaddyfile.Before, "webhook_auth")
}
