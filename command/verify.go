package command

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/webhookauth/caddy-webhookauth/store"
	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

func verifyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify (--provider <name> --secret-env <var> | --config-file <file>) (--request-file <file> | [--header 'Name: value']... [--body-file <file>] --url <url>)",
		Short: "Runs the gate's checks on a captured request and explains the result",
		Long: `
Runs exactly webhook_auth's checks on one captured request and explains
each step: the header read, what was parsed, the timestamp's distance from
now, the shape of the signed payload (lengths and separators, never the
body), which configured secret matched, and, for a failure, the step that
failed and its usual causes. No secret or expected signature is ever
printed. Exits 0 when the request verifies, 1 otherwise.

The handler is a provider preset with secrets from the environment
(--secret-env, repeatable for a rotation), or a webhook_auth block as
written in a Caddyfile (--config-file; {env.*} placeholders resolve).
For sns, paypal and pubsub the keys are fetched from the provider's own
hosts, as the gate fetches them (--topic-arn, --webhook-id, --audience
give what the endpoint is configured with); an SNS subscription is never
confirmed.

The request is a raw HTTP/1.1 request (--request-file, "-" for standard
input; https is assumed for its URL unless --url says otherwise), or its
parts: --url, --method, --header and --body-file.`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringP("provider", "p", "", "provider preset")
	f.StringArray("secret-env", nil, "name of an environment variable holding a secret (repeatable, in the order configured)")
	f.StringArray("public-key-env", nil, "name of an environment variable holding a public key (repeatable)")
	f.String("config-file", "", "a file holding a webhook_auth block as written in the Caddyfile, instead of --provider")
	f.String("request-file", "", `a captured raw HTTP/1.1 request ("-": standard input)`)
	f.StringArrayP("header", "H", nil, "a request header field, 'Name: value' (repeatable)")
	f.StringP("body-file", "f", "", "file holding the body (default: empty)")
	f.String("method", http.MethodPost, "the request's method")
	f.String("url", "", "the URL the sender addressed (default with --request-file: https:// and its Host and target)")
	f.String("at", "", "verify as if it were this time, Unix seconds or RFC 3339 (default: now), for a capture older than the replay window")
	f.StringArray("topic-arn", nil, "sns: a topic ARN the endpoint accepts (repeatable; default *, any topic)")
	f.String("webhook-id", "", "paypal: the webhook id the endpoint is configured with")
	f.String("audience", "", "pubsub, monday: the audience the endpoint is configured with")
	f.String("service-account", "", "pubsub: the only service account accepted (default *, any account)")
	f.StringArray("keys-host", nil, "sns, paypal, pubsub: sender=host, a host the sender's keys may come from instead of the provider's (repeatable; testing with a key server of your own)")
	f.StringArray("keys-root-ca", nil, "sns, paypal, pubsub: a PEM file of roots replacing the system's for the key servers and certificates (testing)")
	f.String("keys-jwks-url", "", "pubsub: the key set's URL instead of Google's (testing)")
	runCheck(cmd, "the request does not verify", func(c *cobra.Command, fl caddycmd.Flags, _ []string) (bool, error) {
		return verify(fl, c.InOrStdin(), c.OutOrStdout())
	})
	return cmd
}

// verify explains the gate's verdict on a captured request; true when
// it verifies.
func verify(fl caddycmd.Flags, stdin io.Reader, out io.Writer) (bool, error) {
	h, err := verifyHandler(fl)
	if err != nil {
		return false, err
	}
	// verify only checks: confirming an SNS subscription would visit
	// its SubscribeURL.
	h.ConfirmSubscription = false
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := useKeys(ctx, fl, h); err != nil {
		return false, err
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.TimeKey, enc.CallerKey, enc.StacktraceKey, enc.NameKey = "", "", "", ""
	h.UseLogger(zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(out), zap.WarnLevel)))
	if err := h.Provision(ctx); err != nil {
		return false, err
	}
	r, notes, err := capturedRequest(fl, stdin, h.RedactURL)
	if err != nil {
		return false, err
	}
	now := time.Now()
	if at := fl.String("at"); at != "" {
		if now, err = parseAt(at); err != nil {
			return false, err
		}
	}
	e, err := h.Explain(r, now)
	if err != nil {
		return false, err
	}
	// A URL may carry a secret (Meta's hub.verify_token): printed
	// with its value replaced.
	fmt.Fprintf(out, "verifying %s %s at %s\n", r.Method, h.RedactURL(requestTarget(r)), now.UTC().Format(time.RFC3339))
	for _, n := range notes {
		fmt.Fprintf(out, "  note: %s\n", n)
	}
	for _, s := range e.Steps {
		mark := "  "
		if s.Failed {
			mark = "✗ "
		}
		fmt.Fprintf(out, "%s%-10s %s\n", mark, s.Name, s.Text)
	}
	if e.Verified() {
		if e.SecretIndex >= 0 {
			fmt.Fprintf(out, "result: %s, by configured key #%d (secret_index %d)\n", e.Result, e.SecretIndex+1, e.SecretIndex)
		} else {
			fmt.Fprintf(out, "result: %s\n", e.Result)
		}
		return true, nil
	}
	fmt.Fprintf(out, "result: %s (%d): %s\n", e.Result, e.Status, e.Detail)
	if len(e.Causes) > 0 {
		fmt.Fprintln(out, "usual causes:")
		for _, c := range e.Causes {
			fmt.Fprintf(out, "  - %s\n", c)
		}
	}
	return false, nil
}

// verifyHandler builds the handler from --config-file, or from
// --provider and the key flags.
func verifyHandler(fl caddycmd.Flags) (*webhookauth.Handler, error) {
	h := new(webhookauth.Handler)
	file := fl.String("config-file")
	provider := fl.String("provider")
	secrets, _ := fl.GetStringArray("secret-env")
	pubs, _ := fl.GetStringArray("public-key-env")
	if file != "" {
		if provider != "" || len(secrets) > 0 || len(pubs) > 0 {
			return nil, errors.New("--config-file holds the whole handler: give no --provider, --secret-env or --public-key-env with it")
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		tokens, err := caddyfile.Tokenize(data, file)
		if err != nil {
			return nil, err
		}
		if len(tokens) == 0 || tokens[0].Text != "webhook_auth" {
			return nil, fmt.Errorf("%s: want a webhook_auth block, as in the Caddyfile", file)
		}
		if len(tokens) > 1 && tokens[1].Line == tokens[0].Line && strings.ContainsAny(tokens[1].Text[:1], "@/*") {
			tokens = append(tokens[:1], tokens[2:]...) // a matcher: not the handler's
		}
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return nil, err
		}
		return h, nil
	}
	if provider == "" {
		return nil, errors.New("--provider or --config-file is required")
	}
	h.Provider = provider
	for _, env := range secrets {
		if os.Getenv(env) == "" {
			return nil, fmt.Errorf("--secret-env %s: the variable is not set or empty", env)
		}
		h.Secrets = append(h.Secrets, "{env."+env+"}")
	}
	for _, env := range pubs {
		if os.Getenv(env) == "" {
			return nil, fmt.Errorf("--public-key-env %s: the variable is not set or empty", env)
		}
		h.PublicKeys = append(h.PublicKeys, "{env."+env+"}")
	}
	h.TopicARNs, _ = fl.GetStringArray("topic-arn")
	h.WebhookID, h.Audience, h.ServiceAccount = fl.String("webhook-id"), fl.String("audience"), fl.String("service-account")
	p, err := webhookauth.LookupPreset(provider)
	if err != nil {
		return nil, err
	}
	// Checking a capture, the account binding is asked for only when
	// given: '*' (which a Caddyfile must say) otherwise.
	if p.Name == "sns" && len(h.TopicARNs) == 0 {
		h.TopicARNs = []string{"*"}
	}
	if p.Name == "pubsub" && h.ServiceAccount == "" {
		h.ServiceAccount = "*"
	}
	if p.JWT != nil && h.Audience == "" {
		h.Audience = "*"
	}
	if len(h.Secrets)+len(h.PublicKeys) == 0 && p.Key != webhookauth.KeyFetched {
		return nil, errors.New("--secret-env or --public-key-env is required with --provider")
	}
	return h, nil
}

// useKeys gives the handler a key source of its own, for the senders
// whose keys are fetched: the webhook app's, set up from the keys flags.
func useKeys(ctx caddy.Context, fl caddycmd.Flags, h *webhookauth.Handler) error {
	hosts, _ := fl.GetStringArray("keys-host")
	roots, _ := fl.GetStringArray("keys-root-ca")
	cfg := &store.KeysConfig{RootCA: roots, JWKSURL: fl.String("keys-jwks-url")}
	for _, hs := range hosts {
		sender, host, ok := strings.Cut(hs, "=")
		if !ok || sender == "" || host == "" {
			return fmt.Errorf("--keys-host %q: want sender=host, such as sns=keys.example.com:8443", hs)
		}
		if cfg.Hosts == nil {
			cfg.Hosts = map[string][]string{}
		}
		cfg.Hosts[sender] = append(cfg.Hosts[sender], host)
	}
	app := &store.App{Keys: cfg}
	if err := app.Provision(ctx); err != nil {
		return err
	}
	h.UseKeySource(app)
	return nil
}

// capturedRequest reads the request from --request-file or the parts'
// flags, with notes on what was assumed.
func capturedRequest(fl caddycmd.Flags, stdin io.Reader, redact func(string) string) (*http.Request, []string, error) {
	var notes []string
	rawURL := fl.String("url")
	file := fl.String("request-file")
	fields, _ := fl.GetStringArray("header")
	if file != "" {
		if len(fields) > 0 || fl.String("body-file") != "" {
			return nil, nil, errors.New("--request-file holds the whole request: give no --header or --body-file with it")
		}
		var data []byte
		var err error
		if file == "-" {
			data, err = io.ReadAll(io.LimitReader(stdin, 64<<20))
		} else {
			data, err = os.ReadFile(file)
		}
		if err != nil {
			return nil, nil, err
		}
		br := bufio.NewReader(bytes.NewReader(data))
		r, err := http.ReadRequest(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%s is not an HTTP/1.1 request: %w", file, err)
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: reading the body: %w", file, err)
		}
		rest, _ := io.ReadAll(br)
		switch {
		case len(body) == 0 && len(rest) > 0 && r.Header.Get("Content-Length") == "" && len(r.TransferEncoding) == 0:
			body = rest
			notes = append(notes, "no Content-Length: the rest of the file, "+strconv.Itoa(len(rest))+" bytes, is the body")
		case len(rest) > 0:
			notes = append(notes, strconv.Itoa(len(rest))+" byte(s) after the body (its Content-Length) are not part of the request")
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		if rawURL == "" {
			rawURL = "https://" + r.Host + r.RequestURI
			notes = append(notes, "the sender is assumed to have addressed "+redact(rawURL)+" (--url to change)")
		}
		return r, notes, setURL(r, rawURL)
	}
	if rawURL == "" {
		return nil, nil, errors.New("--request-file, or --url with the request's parts, is required")
	}
	h, err := parseHeaders(fields)
	if err != nil {
		return nil, nil, err
	}
	var body []byte
	if bf := fl.String("body-file"); bf != "" {
		if body, err = os.ReadFile(bf); err != nil {
			return nil, nil, err
		}
	}
	r, err := http.NewRequest(strings.ToUpper(fl.String("method")), rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	r.Header = h
	if v := h.Get("Host"); v != "" {
		return nil, nil, errors.New("--header Host: give the host in --url")
	}
	return r, notes, setURL(r, rawURL)
}

// setURL makes r look as it does to Caddy when the sender addressed
// rawURL: its Host, request target and TLS state.
func setURL(r *http.Request, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("--url %q: want an absolute http or https URL", rawURL)
	}
	r.URL = &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
	r.Host = u.Host
	r.RequestURI = u.RequestURI()
	r.TLS = nil
	if u.Scheme == "https" {
		r.TLS = &tls.ConnectionState{}
	}
	return nil
}

func requestTarget(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.RequestURI
}

func parseAt(at string) (time.Time, error) {
	if n, err := strconv.ParseInt(at, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return time.Time{}, fmt.Errorf("--at %q: want Unix seconds or an RFC 3339 time", at)
	}
	return t, nil
}
