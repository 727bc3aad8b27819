// Package command adds `caddy webhook sign` and `caddy webhook send` to
// Caddy's command line: sign a delivery exactly as a provider would, and
// send one to a staging endpoint without waiting for the provider.
package command

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "webhook",
		Usage: "sign|send|handshake|verify --provider <name> [flags] | providers [--provider <name>] | ips <provider> | queue <operation> | asana arm|list|forget",
		Short: "Signs and sends webhook deliveries as a provider would",
		Long: `
Signs webhook deliveries exactly as a provider does, to test an endpoint
guarded by webhook_auth without waiting for the provider.

  caddy webhook sign --provider github --secret-env GITHUB_WEBHOOK_SECRET --body-file event.json
      prints the headers the provider would send, one "Name: value" per line

  caddy webhook send --provider github --secret-env GITHUB_WEBHOOK_SECRET --body-file event.json https://hooks.example.com/github
      signs and POSTs; prints the status line and the response body, and
      exits non-zero unless the answer is 2xx

  caddy webhook handshake --provider zoom --secret-env ZOOM_SECRET_TOKEN https://hooks.example.com/zoom
      sends the provider's endpoint check (Zoom's url_validation, X's CRC,
      Meta's verification request, ...) with a fresh challenge and checks
      the answer, step by step; exits non-zero unless it is right

  caddy webhook verify --provider github --secret-env GITHUB_WEBHOOK_SECRET --request-file captured.http
      runs the gate's checks on a captured request and explains each step;
      exits non-zero unless it verifies

  caddy webhook providers [--provider <name>]
      lists every provider preset in one line each, or shows one in full

  caddy webhook ips <provider>
      prints the addresses the provider's webhooks come from, fetched as
      allow_ips published fetches them (or as its documentation lists them)

  caddy webhook queue list|pause|resume|items|retry|redrive|drop [<queue>] [<id>]
      operates the webhook_queue queues of a running Caddy (its admin API)

  caddy webhook asana arm|list|forget [<id>]
      arms the one-time token an Asana handshake needs to set its
      webhook's secret, and lists or forgets the enrolled webhooks

Providers: ` + strings.Join(webhookauth.PresetNames(), ", ") + `.
The body is read from --body-file, or from standard input. --secret-env
names an environment variable holding the secret, which keeps it out of
the shell history and the process list.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(signCommand(), sendCommand(), handshakeCommand(), verifyCommand(), providersCommand(), queueCommand(), ipsCommand(), asanaCommand())
			// Without this, cobra prints the help for a mistyped
			// subcommand and exits 0, so a script would carry on.
			cmd.Args = cobra.ArbitraryArgs
			cmd.RunE = func(c *cobra.Command, args []string) error {
				if len(args) == 0 {
					return c.Help()
				}
				var known []string
				for _, sub := range c.Commands() {
					if sub.IsAvailableCommand() {
						known = append(known, sub.Name())
					}
				}
				return fmt.Errorf("unknown subcommand %q of caddy webhook; the subcommands are %s", args[0], strings.Join(known, ", "))
			}
		},
	})
}

// providersCommand lists the catalogue, one provider a line, or shows
// one entry in full.
func providersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "providers [--provider <name> | --wide | --json]",
		Short: "Lists the provider presets webhook_auth knows, or shows one",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringP("provider", "p", "", "show this preset's full entry")
	cmd.Flags().Bool("wide", false, "one line a provider with every column (aliases, signature header, whole scheme)")
	cmd.Flags().Bool("json", false, "the catalogue as JSON, one object a provider")
	// Errors as Caddy's own subcommands print them (a log line on
	// standard error, exit 1), like every other webhook subcommand.
	cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
		err := func() error {
			if name := fl.String("provider"); name != "" {
				p, err := webhookauth.LookupPreset(name)
				if err != nil {
					return err
				}
				return writeProvider(cmd.OutOrStdout(), p)
			}
			if fl.Bool("json") {
				return writeProvidersJSON(cmd.OutOrStdout())
			}
			if fl.Bool("wide") {
				return writeProviders(cmd.OutOrStdout())
			}
			return writeProvidersNarrow(cmd.OutOrStdout())
		}()
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		return caddy.ExitCodeSuccess, nil
	})
	return cmd
}

// narrowWidth is the most columns the default listing takes: it fits an
// ordinary terminal without wrapping.
const narrowWidth = 100

// writeProvidersNarrow writes one line a provider, within narrowWidth
// columns: its name, key kind, whether the gate answers a handshake for
// it, and its scheme in short (cut with "…" when long; --wide and
// --provider show it whole).
func writeProvidersNarrow(w io.Writer) error {
	const nameW, keyW, hsW = 22, 11, 10
	var b strings.Builder
	line := func(name, key, hs, scheme string) {
		head := fmt.Sprintf("%-*s%-*s%-*s", nameW, name, keyW, key, hsW, hs)
		room := narrowWidth - len(head)
		if r := []rune(scheme); len(r) > room {
			scheme = string(r[:room-1]) + "…"
		}
		b.WriteString(strings.TrimRight(head+scheme, " ") + "\n")
	}
	line("PROVIDER", "KEY", "HANDSHAKE", "SCHEME (--wide or --provider <name> for all of it)")
	for _, p := range webhookauth.Catalogue() {
		hs := "-"
		if p.Handshake != nil {
			hs = "yes"
		}
		line(p.Name, string(p.Key), hs, schemeLine(p))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeProvidersJSON writes the catalogue as a JSON array, for scripts.
func writeProvidersJSON(w io.Writer) error {
	type entry struct {
		Name      string   `json:"name"`
		Aliases   []string `json:"aliases,omitempty"`
		Key       string   `json:"key"`
		Signature string   `json:"signature"`
		Scheme    string   `json:"scheme"`
		Tolerance string   `json:"tolerance,omitempty"`
		Handshake string   `json:"handshake,omitempty"`
		DedupKey  string   `json:"dedup_key"`
		Unsigned  string   `json:"unsigned,omitempty"`
		Docs      string   `json:"docs"`
	}
	var out []entry
	for _, p := range webhookauth.Catalogue() {
		e := entry{Name: p.Name, Aliases: p.Aliases, Key: string(p.Key), Signature: signatureWhere(p), Scheme: schemeLine(p),
			DedupKey: p.DedupKeyText(), Unsigned: strings.ReplaceAll(p.Unsigned, "`", ""), Docs: p.DocURL}
		if p.Tolerance > 0 {
			e.Tolerance = p.Tolerance.String()
		}
		if p.Handshake != nil {
			e.Handshake = strings.ReplaceAll(p.Handshake.Summary, "`", "")
		}
		out = append(out, e)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// writeProviders writes one line a provider (--wide): its name, aliases,
// key kind, where the signature is, and what is signed how.
func writeProviders(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tALIASES\tKEY\tSIGNATURE\tSCHEME")
	for _, p := range webhookauth.Catalogue() {
		aliases := strings.Join(p.Aliases, ",")
		if aliases == "" {
			aliases = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, aliases, p.Key, signatureWhere(p), schemeLine(p))
	}
	return tw.Flush()
}

// schemeLine is a preset's scheme in a few words: the algorithm, the
// encoding and the signed payload.
func schemeLine(p webhookauth.Preset) string {
	sc := p.Scheme
	if p.Key == webhookauth.KeyFetched {
		return "keys fetched from the provider (see --provider " + p.Name + ")"
	}
	if p.JWT != nil {
		return "a JWT (HS256) signed with the secret; the body is not signed"
	}
	alg := string(sc.Algorithm)
	if sc.Encoding != "" {
		alg += " " + string(sc.Encoding)
	}
	payload := sc.SignedPayload
	if payload == "" {
		payload = "{body}"
	}
	if sc.Algorithm == webhookauth.AlgorithmToken {
		return "token compared in constant time"
	}
	// Some payloads hold a newline (Zendesk's, say): shown escaped, so
	// each provider stays on one line.
	return alg + " of " + strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(payload)
}

// writeProvider writes a preset's whole entry: what it verifies, its
// documentation, and its scheme as the Caddyfile's generic fields.
func writeProvider(w io.Writer, p webhookauth.Preset) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", p.Name)
	if len(p.Aliases) > 0 {
		fmt.Fprintf(&b, "  aliases:     %s\n", strings.Join(p.Aliases, ", "))
	}
	fmt.Fprintf(&b, "  signature:   %s\n", strings.ReplaceAll(p.Summary, "`", ""))
	fmt.Fprintf(&b, "  docs:        %s\n", p.DocURL)
	fmt.Fprintf(&b, "  key:         %s\n", p.Key)
	if p.Tolerance > 0 {
		fmt.Fprintf(&b, "  tolerance:   %s\n", p.Tolerance)
	}
	if p.IDField != "" {
		fmt.Fprintf(&b, "  delivery id: the body's %s member\n", p.IDField)
	}
	if p.EventField != "" {
		fmt.Fprintf(&b, "  event:       the body's %s member\n", p.EventField)
	}
	// Generated from the scheme the gate runs, so it cannot disagree.
	if p.Key != webhookauth.KeyFetched {
		fmt.Fprintf(&b, "  signs:       %s\n", schemeLine(p))
	}
	fmt.Fprintf(&b, "  dedup key:   %s\n", p.DedupKeyText())
	if p.Unsigned != "" {
		fmt.Fprintf(&b, "  unsigned:    %s\n", strings.ReplaceAll(p.Unsigned, "`", ""))
	}
	if p.Handshake != nil {
		fmt.Fprintf(&b, "  handshake:   %s\n", strings.ReplaceAll(p.Handshake.Summary, "`", ""))
	}
	if src := webhookauth.LookupIPSource(p.Name); src != nil {
		fmt.Fprintf(&b, "  ip ranges:   %s\n", src.Describe())
	}
	raw, err := json.Marshal(p.Scheme)
	if err != nil {
		return err
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		return err
	}
	if len(fields) > 0 {
		b.WriteString("  as generic fields:\n")
		names := make([]string, 0, len(fields))
		for name := range fields {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			v := fields[name]
			if s, ok := v.(string); ok && (s == "" || strings.ContainsAny(s, " \t")) {
				v = strconv.Quote(s)
			}
			fmt.Fprintf(&b, "    %-19s %v\n", name, v)
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// signatureWhere is the header that carries a provider's signature, or
// body:PATH for one carried in the JSON body.
func signatureWhere(p webhookauth.Preset) string {
	if p.SignatureIn != "" {
		return p.SignatureIn
	}
	if p.Scheme.SignatureHeader != "" {
		return p.Scheme.SignatureHeader
	}
	where := p.Scheme.SignatureField
	if p.Scheme.SignatureItems != "" {
		where = p.Scheme.SignatureItems + "." + where
	}
	return "body:" + where
}

// deliveryFlags are the flags sign and send share.
func deliveryFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringP("provider", "p", "", "provider preset: "+strings.Join(webhookauth.PresetNames(), ", "))
	f.StringP("secret", "s", "", "the webhook secret (prefer --secret-env)")
	f.String("secret-env", "", "name of an environment variable holding the secret")
	f.String("private-key", "", "for providers that sign with a private key (discord, sendgrid): a private key of your own, PEM or a hex ed25519 seed (prefer --private-key-env)")
	f.String("private-key-env", "", "name of an environment variable holding the private key")
	f.StringP("body-file", "f", "", "file holding the body (default: standard input)")
	f.String("id", "", "delivery id, for providers that send one (default: a fresh id)")
	f.Int64("timestamp", 0, "Unix time to sign at, for providers that sign one (default: now)")
	f.String("content-type", "", "the body's Content-Type (default: application/json, or form-encoded for providers that sign form parameters)")
	f.String("cert-url", "", "sns, paypal: where your certificate is served (the endpoint fetches it; its host must be allowed in the webhook app's keys block)")
	f.String("key-id", "", "pubsub: your key's id in the key set you serve (the webhook app's keys jwks_url)")
	f.String("topic-arn", "", "sns: the topic ARN")
	f.String("webhook-id", "", "paypal: the webhook id the endpoint is configured with")
	f.String("audience", "", "pubsub, monday: the audience the endpoint is configured with")
	f.String("service-account", "", "pubsub: the service account email to put in the token")
}

func signCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sign --provider <name> --secret <secret> [--body-file <file>] [--id <id>] [--timestamp <unix>] [--url <url>]",
		Short: "Prints the headers a provider would send with a body",
		Args:  cobra.NoArgs,
	}
	deliveryFlags(cmd)
	cmd.Flags().String("url", "", "the URL the delivery goes to, for providers that sign it (twilio, square, hubspot, ...)")
	cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
		d, err := readDelivery(fl, cmd.InOrStdin(), fl.String("url"), nil)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		if err := d.writeHeaders(cmd.OutOrStdout()); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		return caddy.ExitCodeSuccess, nil
	})
	return cmd
}

func sendCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "send --provider <name> --secret <secret> [--body-file <file>] [--header 'Name: value']... <url>",
		Short: "Signs a body as a provider would and POSTs it",
		Args:  cobra.ExactArgs(1),
	}
	deliveryFlags(cmd)
	cmd.Flags().StringArrayP("header", "H", nil, "extra header field, 'Name: value' (repeatable)")
	cmd.Flags().Duration("timeout", 30*time.Second, "how long to wait for the answer")
	cmd.RunE = func(c *cobra.Command, args []string) error {
		return caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			fields, _ := fl.GetStringArray("header")
			extra, err := parseHeaders(fields)
			if err != nil {
				return caddy.ExitCodeFailedStartup, err
			}
			d, err := readDelivery(fl, c.InOrStdin(), args[0], extra)
			if err != nil {
				return caddy.ExitCodeFailedStartup, err
			}
			timeout, _ := c.Flags().GetDuration("timeout")
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if d.id != "" {
				// On standard error, so that standard output stays the
				// answer alone; send again with --id to make a copy.
				fmt.Fprintf(c.ErrOrStderr(), "delivery id: %s (%s)\n", d.id, d.idHeader)
			}
			status, err := d.send(ctx, noRedirects, args[0], extra, c.OutOrStdout())
			if err != nil {
				return caddy.ExitCodeFailedStartup, err
			}
			if status < 200 || status > 299 {
				return caddy.ExitCodeFailedStartup, fmt.Errorf("the endpoint answered %d", status)
			}
			return caddy.ExitCodeSuccess, nil
		})(c, args)
	}
	return cmd
}

func handshakeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "handshake --provider <name> [--secret-env <var>] [--verify-token-env <var>] <url>",
		Short: "Sends a provider's endpoint check and checks the answer",
		Args:  cobra.ExactArgs(1),
	}
	f := cmd.Flags()
	f.StringP("provider", "p", "", "provider preset with a handshake")
	f.StringP("secret", "s", "", "the webhook secret, for handshakes that are signed or answered with it (prefer --secret-env)")
	f.String("secret-env", "", "name of an environment variable holding the secret")
	f.String("private-key", "", "for discord: a private key of your own, whose public key the endpoint holds (prefer --private-key-env)")
	f.String("private-key-env", "", "name of an environment variable holding the private key")
	f.String("verify-token", "", "for meta: the verify token (prefer --verify-token-env)")
	f.String("verify-token-env", "", "name of an environment variable holding the verify token")
	f.Duration("timeout", 10*time.Second, "how long to wait for the answer")
	runCheck(cmd, "the endpoint did not answer the handshake as the provider expects", func(c *cobra.Command, fl caddycmd.Flags, args []string) (bool, error) {
		timeout, _ := c.Flags().GetDuration("timeout")
		return handshake(fl, args[0], timeout, c.OutOrStdout())
	})
	return cmd
}

// runCheck makes cmd run check, which reports whether what it checked
// passed: exit status 0 when it did, 1 with failure when it did not, 1
// with the error when it could not check at all.
func runCheck(cmd *cobra.Command, failure string, check func(c *cobra.Command, fl caddycmd.Flags, args []string) (bool, error)) {
	cmd.RunE = func(c *cobra.Command, args []string) error {
		return caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			ok, err := check(c, fl, args)
			if err != nil {
				return caddy.ExitCodeFailedStartup, err
			}
			if !ok {
				return caddy.ExitCodeFailedStartup, errors.New(failure)
			}
			return caddy.ExitCodeSuccess, nil
		})(c, args)
	}
}

// handshake sends the provider's handshake to target and reports, step by
// step, whether the answer is right. The secret never appears in what it
// writes.
func handshake(fl caddycmd.Flags, target string, timeout time.Duration, out io.Writer) (bool, error) {
	p, err := webhookauth.LookupPreset(fl.String("provider"))
	if err != nil {
		return false, err
	}
	if p.Handshake == nil {
		return false, fmt.Errorf("%s has no handshake", p.Name)
	}
	flag := "secret"
	if p.Key == webhookauth.KeyPublic {
		flag = "private-key"
	}
	secret, err := flagOrEnv(fl, flag)
	if err != nil {
		return false, err
	}
	needsKey := p.Handshake.Signed || p.Handshake.Answer == webhookauth.AnswerCRC || p.Handshake.Answer == webhookauth.AnswerZoom
	if needsKey && secret == "" {
		return false, fmt.Errorf("%s's handshake needs the %s: --%s or --%s-env", p.Name, flag, flag, flag)
	}
	token, err := flagOrEnv(fl, "verify-token")
	if err != nil {
		return false, err
	}
	probe, err := p.Probe(target, secret, token, time.Now())
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req := probe.Request.WithContext(ctx)
	req.Header.Set("User-Agent", "caddy-webhook-handshake")
	fmt.Fprintf(out, "sending %s's handshake: %s\n", p.Name, strings.ReplaceAll(p.Handshake.Summary, "`", ""))
	challenge := probe.Challenge
	if probe.SecretChallenge {
		challenge = "the secret itself, not shown"
	}
	fmt.Fprintf(out, "  %s %s (challenge: %s)\n", req.Method, redactQuery(req.URL, p.Handshake.TokenParam), challenge)
	resp, err := noRedirects.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return false, err
	}
	fmt.Fprintf(out, "answer: %s %s, %d bytes\n", resp.Proto, resp.Status, len(body))
	if err := probe.Check(resp.StatusCode, resp.Header.Get("Content-Type"), body); err != nil {
		msg := err.Error()
		if probe.SecretChallenge {
			msg = strings.ReplaceAll(msg, secret, "<secret>")
		}
		fmt.Fprintf(out, "wrong: %s\n", msg)
		return false, nil
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		fmt.Fprintln(out, "note: no X-Content-Type-Options: nosniff on the answer (webhook_auth sends it)")
	}
	fmt.Fprintf(out, "ok: %s would accept this endpoint\n", p.Name)
	return true, nil
}

// flagOrEnv reads --name or the variable --name-env names; "" when
// neither is given.
func flagOrEnv(fl caddycmd.Flags, name string) (string, error) {
	v := fl.String(name)
	if env := fl.String(name + "-env"); env != "" {
		if v != "" {
			return "", fmt.Errorf("use --%s or --%s-env, not both", name, name)
		}
		if v = os.Getenv(env); v == "" {
			return "", fmt.Errorf("--%s-env %s: the variable is not set or empty", name, env)
		}
	}
	return v, nil
}

// redactQuery shows a URL with the verify token's value hidden.
func redactQuery(u *url.URL, param string) string {
	if param == "" {
		return u.String()
	}
	c := *u
	q := c.Query()
	if q.Has(param) {
		q.Set(param, "REDACTED")
	}
	c.RawQuery = q.Encode()
	return c.String()
}

// delivery is a body signed for one provider.
type delivery struct {
	names  []string // header names as the provider spells them
	body   []byte
	header http.Header
	// id is the delivery id sent in idHeader, given or generated; empty
	// for providers that send none.
	id, idHeader string
	// contentType is the body's Content-Type.
	contentType string
	// wrapped: the body itself was rewritten to carry the signature
	// (SNS's JSON envelope), so sign prints it too.
	wrapped bool
}

// readDelivery reads and signs the delivery the flags describe, to be
// sent to target (signed by the providers that sign the URL) with the
// extra header fields.
func readDelivery(fl caddycmd.Flags, stdin io.Reader, target string, extra http.Header) (*delivery, error) {
	provider := fl.String("provider")
	if provider == "" {
		return nil, errors.New("--provider is required (one of " + strings.Join(webhookauth.PresetNames(), ", ") + ")")
	}
	p, err := webhookauth.LookupPreset(provider)
	if err != nil {
		return nil, err
	}
	// A provider that signs with a private key takes --private-key(-env);
	// the others take --secret(-env).
	flag, envFlag := "secret", "secret-env"
	if p.Key == webhookauth.KeyPublic {
		flag, envFlag = "private-key", "private-key-env"
		if fl.String("secret") != "" || fl.String("secret-env") != "" {
			return nil, fmt.Errorf("%s signs with a private key: use --private-key or --private-key-env", p.Name)
		}
	} else if p.Key != webhookauth.KeyFetched && (fl.String("private-key") != "" || fl.String("private-key-env") != "") {
		return nil, fmt.Errorf("%s signs with a shared secret: use --secret or --secret-env", p.Name)
	}
	if p.Key == webhookauth.KeyFetched {
		flag, envFlag = "private-key", "private-key-env"
		if fl.String("secret") != "" || fl.String("secret-env") != "" {
			return nil, fmt.Errorf("%s signs with keys the endpoint fetches: sign with your own RSA key, --private-key or --private-key-env", p.Name)
		}
	}
	secret := fl.String(flag)
	if env := fl.String(envFlag); env != "" {
		if secret != "" {
			return nil, fmt.Errorf("use --%s or --%s, not both", flag, envFlag)
		}
		secret = os.Getenv(env)
		if secret == "" {
			return nil, fmt.Errorf("--%s %s: the variable is not set or empty", envFlag, env)
		}
	}
	if secret == "" {
		return nil, fmt.Errorf("--%s or --%s is required", flag, envFlag)
	}
	var body []byte

	if file := fl.String("body-file"); file != "" {
		body, err = os.ReadFile(file)
	} else {
		body, err = io.ReadAll(stdin)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	ts := time.Now()
	if unix, _ := fl.GetInt64("timestamp"); unix != 0 {
		ts = time.Unix(unix, 0)
	}
	if p.Key == webhookauth.KeyFetched {
		return signFetched(p, secret, fl, body, ts)
	}
	if p.JWT != nil {
		return signJWT(p, secret, fl.String("audience"), body, ts)
	}
	ct := fl.String("content-type")
	if v := extra.Get("Content-Type"); v != "" {
		if ct != "" && ct != v {
			return nil, errors.New("--content-type and --header Content-Type differ")
		}
		ct = v
	}
	return signTo(provider, secret, body, fl.String("id"), ts, target, ct)
}

// sign signs body as provider would. An empty id gets a fresh one in the
// provider's style.
func sign(provider, secret string, body []byte, id string, ts time.Time) (*delivery, error) {
	return signTo(provider, secret, body, id, ts, "", "")
}

// signTo signs body as provider would for a delivery to target, sent
// with Content-Type ct ("" for the provider's usual one).
func signTo(provider, secret string, body []byte, id string, ts time.Time, target, ct string) (*delivery, error) {
	p, err := webhookauth.LookupPreset(provider)
	if err != nil {
		return nil, err
	}
	s, err := p.Scheme.Compile()
	if err != nil {
		return nil, err
	}
	signsURL := s.Payload.Uses(webhookauth.TokenURL) || s.Payload.Uses(webhookauth.TokenBaseURL) || s.Payload.Uses(webhookauth.TokenPath)
	if signsURL && target == "" {
		return nil, fmt.Errorf("%s signs the URL a delivery is sent to: give it with --url", p.Name)
	}
	if !signsURL {
		target = ""
	}
	if ct == "" {
		ct = "application/json"
		if s.Payload.Uses(webhookauth.TokenForm) {
			ct = "application/x-www-form-urlencoded"
		}
	}
	var header http.Header
	if s.Payload.Uses(webhookauth.TokenForm) {
		header = http.Header{"Content-Type": {ct}} // {form} reads it
	}
	if id != "" && s.IDHeader == "" {
		why := "a copy is recognised by its signature (the same body, signed at the same --timestamp)"
		if p.IDField != "" {
			why = "its deliveries are identified by the body's top-level " + p.IDField + " member: put the id there"
		}
		return nil, fmt.Errorf("--id: %s sends no delivery id header; %s", p.Name, why)
	}
	if id == "" && s.IDHeader != "" {
		id = freshID(p.Name)
	}
	h, err := s.SignHeaders(secret, webhookauth.Delivery{Body: body, ID: id, Timestamp: ts, URL: target, Header: header})
	if err != nil {
		// The secret's encoding is wrong (a whsec_ secret that is not
		// base64, say); the error never contains the secret.
		return nil, fmt.Errorf("signing for %s: %w", p.Name, err)
	}
	names := []string{p.Scheme.SignatureHeader, p.Scheme.TimestampHeader, p.Scheme.IDHeader}
	h.Del("Content-Type") // sent by send, not printed by sign
	return &delivery{names: names, body: body, header: h, id: id, idHeader: p.Scheme.IDHeader, contentType: ct}, nil
}

// signJWT writes the token a JWT sender (monday.com) sends: issued at
// ts, for five minutes, for audience (the endpoint's URL).
func signJWT(p webhookauth.Preset, secret, audience string, body []byte, ts time.Time) (*delivery, error) {
	if audience == "" {
		return nil, fmt.Errorf("%s: --audience is required: the endpoint URL the token is for (the handler's 'audience')", p.Name)
	}
	tok := webhookauth.SignJWT([]byte(secret), audience, ts, 5*time.Minute)
	h := http.Header{p.JWT.Header: {tok}}
	return &delivery{names: []string{p.JWT.Header}, body: body, header: h, contentType: "application/json"}, nil
}

// signFetched signs for a sender whose keys are fetched, with the user's
// own RSA key (PEM), served where the endpoint will look.
func signFetched(p webhookauth.Preset, keyText string, fl caddycmd.Flags, body []byte, ts time.Time) (*delivery, error) {
	key, err := webhookauth.ParsePrivateKey(webhookauth.AlgorithmRSAPKCS1, keyText)
	if err != nil {
		return nil, fmt.Errorf("--private-key: %w", err)
	}
	h, out, err := p.SignFetched(webhookauth.FetchedSigning{Key: key, CertURL: fl.String("cert-url"), KeyID: fl.String("key-id"),
		TopicARN: fl.String("topic-arn"), WebhookID: fl.String("webhook-id"), Audience: fl.String("audience"), Account: fl.String("service-account")},
		body, fl.String("id"), ts)
	if err != nil {
		return nil, err
	}
	names := []string{"PAYPAL-TRANSMISSION-ID", "PAYPAL-TRANSMISSION-TIME", "PAYPAL-TRANSMISSION-SIG", "PAYPAL-CERT-URL", "PAYPAL-AUTH-ALGO",
		"x-amz-sns-message-type", "x-amz-sns-message-id", "x-amz-sns-topic-arn"}
	d := &delivery{names: names, body: out, header: h, wrapped: p.Name == "sns"}
	if p.Name == "paypal" {
		d.id, d.idHeader = h.Get("Paypal-Transmission-Id"), "PAYPAL-TRANSMISSION-ID"
	}
	return d, nil
}

// freshID makes an id like the provider's own: a UUID for most, msg_…
// for Standard Webhooks senders.
func freshID(provider string) string {
	var b [16]byte
	rand.Read(b[:])
	if provider == "standard" || provider == "svix" {
		return "msg_" + hex.EncodeToString(b[:])
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b[:])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}

// lines returns the signed header fields as "Name: value", spelled as the
// provider spells them, in a stable order.
func (d *delivery) lines() []string {
	spelling := map[string]string{}
	for _, name := range d.names {
		if name != "" {
			spelling[http.CanonicalHeaderKey(name)] = name
		}
	}
	var out []string
	for name, vals := range d.header {
		if n, ok := spelling[name]; ok {
			name = n
		}
		for _, v := range vals {
			out = append(out, name+": "+v)
		}
	}
	sort.Strings(out)
	return out
}

func (d *delivery) writeHeaders(w io.Writer) error {
	var b strings.Builder
	for _, l := range d.lines() {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if d.wrapped {
		// The signature is in the body: a blank line, then the body.
		b.WriteByte('\n')
		b.Write(d.body)
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// noRedirects is the client of send and handshake: a redirect is
// reported, never followed. Following it would send the signature, a
// token (GitLab's, Vapi's) or a verify token to wherever the Location
// points, another host or plain http included; and providers do not
// follow redirects either, so a test that followed one would pass where
// the real sender fails.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// send POSTs the delivery with the extra header fields and writes the
// status line and the response body to out. It returns the status.
func (d *delivery) send(ctx context.Context, client *http.Client, url string, extra http.Header, out io.Writer) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(d.body))
	if err != nil {
		return 0, err
	}
	ct := d.contentType
	if ct == "" {
		ct = "application/json"
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("User-Agent", "caddy-webhook-send")
	for name, vals := range extra {
		req.Header[name] = vals
	}
	for name, vals := range d.header {
		req.Header[name] = vals
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := fmt.Fprintf(out, "%s %s\n", resp.Proto, resp.Status); err != nil {
		return 0, err
	}
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		fmt.Fprintf(out, "redirected to %s: not followed (a provider does not follow it either; send to that URL if it is right)\n", loc)
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// parseHeaders parses 'Name: value' flags.
func parseHeaders(fields []string) (http.Header, error) {
	h := make(http.Header)
	for _, f := range fields {
		name, value, ok := strings.Cut(f, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("--header %s: want 'Name: value'", strconv.Quote(f))
		}
		h.Add(name, strings.TrimSpace(value))
	}
	return h, nil
}
