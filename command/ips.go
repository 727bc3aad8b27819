package command

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/webhookauth/caddy-webhookauth/internal/ipranges"
	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// ipsCommand prints a provider's current webhook address list, fetched
// as the gate fetches it: HTTPS only, no redirect, bounded, checked.
func ipsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ips <provider> [--url <https url>]",
		Short: "Prints the addresses a provider's webhooks come from, as allow_ips published sees them",
		Args:  cobra.ExactArgs(1),
	}
	cmd.Flags().String("url", "", "fetch the list from this address instead of the provider's (a mirror)")
	cmd.Flags().String("root-ca", "", "a PEM file whose certificates replace the system's roots (as ip_ranges' root_ca)")
	cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
		name := fl.Arg(0)
		p, err := webhookauth.LookupPreset(name)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		src := webhookauth.LookupIPSource(p.Name)
		if src == nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("%s publishes no list of the addresses its webhooks come from", p.Name)
		}
		out := cmd.OutOrStdout()
		if src.Published == nil {
			fmt.Fprintf(out, "# %s: %s\n", p.Name, src.Describe())
			for _, c := range src.Static {
				fmt.Fprintln(out, c)
			}
			return caddy.ExitCodeSuccess, nil
		}
		pub := *src.Published
		if u := fl.String("url"); u != "" {
			pub.URL = u
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		var roots *x509.CertPool
		if f := fl.String("root-ca"); f != "" {
			pem, err := os.ReadFile(f)
			if err != nil {
				return caddy.ExitCodeFailedStartup, err
			}
			roots = x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return caddy.ExitCodeFailedStartup, fmt.Errorf("%s holds no certificate", f)
			}
		}
		list, err := ipranges.New(ipranges.Config{Roots: roots}).Fetch(ctx, pub)
		if err == nil {
			err = ipranges.Sane(list, nil)
		}
		if err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("%s: %v", p.Name, err)
		}
		fmt.Fprintf(out, "# %s: %d ranges from %s (%s)\n", p.Name, len(list), pub.URL, src.How)
		for _, pr := range list {
			fmt.Fprintln(out, pr)
		}
		return caddy.ExitCodeSuccess, nil
	})
	return cmd
}
