package command

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// asanaCommand is `caddy webhook asana`: arming the one-time token that
// lets an Asana handshake set its webhook's secret, and the list of
// enrolled webhooks, through a running Caddy's admin API.
func asanaCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "asana arm|list|forget [<id>]",
		Short: "Arms and lists the enrollments of Asana webhooks on a running Caddy",
		Long: `
Asana sets each webhook's secret in its handshake. webhook_auth asana
learns a secret only from a handshake whose target URL carries a
one-time token armed here, and spends the token.

  caddy webhook asana arm [--ttl 10m] [--url https://hooks.example.com/asana]
      makes a token and prints the target URL to give Asana's
      POST /webhooks (create the webhook within --ttl)
  caddy webhook asana list
      the enrolled webhooks: id, path, when (never their secrets)
  caddy webhook asana forget <id>
      forgets one: its deliveries are refused from then on

--address is the admin endpoint, as for caddy reload (default localhost:2019).`,
		Args: cobra.RangeArgs(1, 2),
	}
	f := cmd.Flags()
	f.String("address", "localhost:2019", "the admin API's address")
	f.Duration("ttl", webhookauth.DefaultArmTTL, "arm: how long the token stays good")
	f.String("url", "", "arm: the endpoint's public URL, to print the target with the token")
	cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
		if err := runAsana(fl, cmd.OutOrStdout()); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		return caddy.ExitCodeSuccess, nil
	})
	return cmd
}

func runAsana(fl caddycmd.Flags, out io.Writer) error {
	args := fl.Args()
	op := args[0]
	want := map[string]int{"arm": 1, "list": 1, "forget": 2}[op]
	if want == 0 {
		return fmt.Errorf("unknown asana operation %q: want arm, list or forget", op)
	}
	if len(args) != want {
		return fmt.Errorf("asana %s takes %d argument(s) after it", op, want-1)
	}
	base := fl.String("address")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	base += "/webhook/asana"
	var method, path string
	switch op {
	case "arm":
		ttl, _ := fl.GetDuration("ttl")
		method, path = http.MethodPost, "/arm?ttl="+url.QueryEscape(ttl.String())
	case "list":
		method, path = http.MethodGet, "/enrolled"
	case "forget":
		method, path = http.MethodDelete, "/enrolled/"+url.PathEscape(args[1])
	}
	raw, err := adminCall(fl.String("address"), method, base+path)
	if err != nil {
		return err
	}
	switch op {
	case "arm":
		var tok webhookauth.ArmedToken
		if err := json.Unmarshal(raw, &tok); err != nil {
			return err
		}
		target := "<your endpoint URL>?" + tok.Param + "=" + tok.Token
		if u := fl.String("url"); u != "" {
			pu, err := url.Parse(u)
			if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
				return fmt.Errorf("--url %q is not an http or https URL", u)
			}
			q := pu.Query()
			q.Set(tok.Param, tok.Token)
			pu.RawQuery = q.Encode()
			target = pu.String()
		}
		fmt.Fprintf(out, "armed until %s (one handshake, once)\ntarget: %s\n", tok.Expires.UTC().Format(time.RFC3339), target)
	case "list":
		var list []webhookauth.EnrollmentInfo
		if err := json.Unmarshal(raw, &list); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPATH\tENROLLED")
		for _, e := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", e.ID, e.Path, e.Enrolled.UTC().Format(time.RFC3339))
		}
		tw.Flush()
	case "forget":
		fmt.Fprintf(out, "forgot %s\n", args[1])
	}
	return nil
}

// adminCall makes one request to the admin API and returns the body of a
// 200, or the API's error.
func adminCall(address, method, target string) ([]byte, error) {
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the admin API at %s: %w (is Caddy running? --address)", address, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s", e.Error)
		}
		return nil, fmt.Errorf("the admin API answered %s", resp.Status)
	}
	return raw, nil
}
