// Package caddywebhookauth registers every module of caddy-webhookauth, so
// that building Caddy with
//
//	xcaddy build --with github.com/webhookauth/caddy-webhookauth
//
// brings the webhook_auth handler and its Caddyfile directive.
package caddywebhookauth

import (
	// The Caddyfile surface imports and registers every module.
	_ "github.com/webhookauth/caddy-webhookauth/caddyfile"
)
