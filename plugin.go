// Package caddywebhookauth registers every module of caddy-webhookauth, so
// that building Caddy with
//
//	xcaddy build --with github.com/webhookauth/caddy-webhookauth
//
// brings the webhook_auth, webhook_rate_limit and webhook_queue handlers,
// the queues' admin API, the webhook app,
// their Caddyfile directives and the `caddy webhook sign|send` commands.
package caddywebhookauth

import (
	// The Caddyfile surface imports and registers every module.
	_ "github.com/webhookauth/caddy-webhookauth/caddyfile"
	// caddy webhook sign|send.
	_ "github.com/webhookauth/caddy-webhookauth/command"
	_ "github.com/webhookauth/caddy-webhookauth/queue"
	_ "github.com/webhookauth/caddy-webhookauth/ratelimit"
	_ "github.com/webhookauth/caddy-webhookauth/store"
	_ "github.com/webhookauth/caddy-webhookauth/webhookauth"
)
