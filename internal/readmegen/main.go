// Command readmegen writes the provider catalogue's table into README.md,
// between the "providers:begin" and "providers:end" markers. Run it with
// `go generate ./webhookauth`; TestReadmeProviderTable fails when the
// README's copy is stale.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

func main() {
	readme := flag.String("readme", "README.md", "the README to update")
	flag.Parse()
	raw, err := os.ReadFile(*readme)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := webhookauth.SpliceProviderTable(string(raw))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", *readme, err)
		os.Exit(1)
	}
	if out == string(raw) {
		return
	}
	if err := os.WriteFile(*readme, []byte(out), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
