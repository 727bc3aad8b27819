package caddyfile

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// FuzzAdaptWebhookAuth feeds arbitrary block bodies to the directive: the
// adapter must answer with a config or an error, never panic.
func FuzzAdaptWebhookAuth(f *testing.F) {
	for _, s := range []string{"secret s", "secret s\nmax_body 1MB", "secret s\ndedup", "secret s\ndedup 0", "secret\n", "signed_payload \"{x\"", "methods"} {
		f.Add(s)
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	f.Fuzz(func(t *testing.T, block string) {
		adapter.Adapt([]byte(":8080 {\n\twebhook_auth github {\n"+block+"\n\t}\n\twebhook_rate_limit {\n"+block+"\n\t}\n}\n"), nil)
	})
}
