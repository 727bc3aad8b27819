package caddyfile

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// FuzzParseRate: any accepted rate is a valid, enforceable limit.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"60/1m", "7/1s", "1/1h", "10/m", "0/1m", "10/0s", "ten/1m", "-1/1m", "10/-1m", "1/1µs", "99999999999999999999/1s", "/", "1/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		events, window, err := parseRate(v)
		if err != nil {
			return
		}
		if events < 1 || window <= 0 || window/time.Duration(events) < time.Microsecond {
			t.Fatalf("%q accepted as %d/%v", v, events, window)
		}
	})
}

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
