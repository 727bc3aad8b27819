// Command caddy is Caddy with the standard modules and caddy-webhookauth,
// for running the examples straight from a checkout:
//
//	go run ./cmd/caddy run --config examples/quickstart/Caddyfile
//
// For production, build your own Caddy with xcaddy (see the README).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/webhookauth/caddy-webhookauth"
)

func main() {
	caddycmd.Main()
}
