package caddywebhookauth_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webhookauth/caddy-webhookauth/internal/keyserver"
	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// runCLI runs the caddy binary built from this repository and returns its
// stdout, stderr and exit code.
func runCLI(t *testing.T, env []string, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	bin, err := buildCaddy()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// TestCLISign: `caddy webhook sign` prints exactly the header lines a
// sender would send, and nothing else, on stdout.
func TestCLISign(t *testing.T) {
	body := []byte(`{"action":"opened"}`)
	out, stderr, code := runCLI(t, []string{"CLI_SECRET=" + githubSecret}, body,
		"webhook", "sign", "--provider", "github", "--secret-env", "CLI_SECRET", "--id", "cli-1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	p, _ := webhookauth.LookupPreset("github")
	s, _ := p.Scheme.Compile()
	h, err := s.SignHeaders(githubSecret, webhookauth.Delivery{Body: body, ID: "cli-1"})
	if err != nil {
		t.Fatal(err)
	}
	want := "X-GitHub-Delivery: cli-1\nX-Hub-Signature-256: " + h.Get("X-Hub-Signature-256") + "\n"
	if out != want {
		t.Fatalf("stdout:\n%s\nwant:\n%s", out, want)
	}

	// Stripe at a fixed instant, body from a file.
	file := filepath.Join(t.TempDir(), "event.json")
	os.WriteFile(file, []byte(`{"id":"evt_1"}`), 0o600)
	out, stderr, code = runCLI(t, nil, nil, "webhook", "sign", "-p", "stripe", "-s", stripeSecret, "-f", file, "--timestamp", "1700000000")
	if code != 0 || !strings.HasPrefix(out, "Stripe-Signature: t=1700000000,v1=") || strings.Count(out, "\n") != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, out, stderr)
	}

	_, stderr, code = runCLI(t, nil, nil, "webhook", "sign", "-p", "github")
	if code == 0 || !strings.Contains(stderr, "--secret") {
		t.Fatalf("no secret: exit %d, stderr %s", code, stderr)
	}

	// Discord signs with a private key: --private-key-env, and the
	// signature verifies under its public key.
	seed := strings.Repeat("5a", 32)
	out, stderr, code = runCLI(t, []string{"CLI_DISCORD_KEY=" + seed}, body,
		"webhook", "sign", "-p", "discord", "--private-key-env", "CLI_DISCORD_KEY", "--timestamp", "1750000000")
	if code != 0 || !strings.Contains(out, "X-Signature-Ed25519: ") || !strings.Contains(out, "X-Signature-Timestamp: 1750000000") {
		t.Fatalf("discord: exit %d, stdout %q, stderr %s", code, out, stderr)
	}
	raw, _ := hex.DecodeString(seed)
	pub := ed25519.NewKeyFromSeed(raw).Public().(ed25519.PublicKey)
	var sig string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "X-Signature-Ed25519: "); ok {
			sig = v
		}
	}
	sigBytes, _ := hex.DecodeString(sig)
	if !ed25519.Verify(pub, append([]byte("1750000000"), body...), sigBytes) {
		t.Fatal("the discord signature does not verify under the key's public half")
	}
	_, stderr, code = runCLI(t, nil, body, "webhook", "sign", "-p", "discord", "--secret", "x")
	if code == 0 || !strings.Contains(stderr, "--private-key") {
		t.Fatalf("discord with --secret: exit %d, stderr %s", code, stderr)
	}
}

// TestCLISendThroughRealCaddy: `caddy webhook send` against a real Caddy
// with the plugin: a good delivery reaches the backend byte for byte with
// the extra header and exits 0; its copy is absorbed as a duplicate; one
// signed with the wrong secret prints the 401 answer and exits non-zero.
func TestCLISendThroughRealCaddy(t *testing.T) {
	be := newBackend(t)
	t.Setenv("WEBHOOKAUTH_IT_GITHUB", githubSecret)
	tester := newTester(t)
	tester.InitServer(caddyConfig("", fmt.Sprintf(`
	:9080 {
		route /github {
			webhook_auth github {
				secret {env.WEBHOOKAUTH_IT_GITHUB}
				dedup
			}
			reverse_proxy %s
		}
	}
	`, be.URL)), "caddyfile")

	body := []byte("{\"action\":\"closed\",\"n\":\"" + time.Now().Format(time.RFC3339Nano) + "\"}\n")
	file := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"CLI_SECRET=" + githubSecret, "CLI_WRONG=not-the-secret"}
	send := func(secretEnv, id string) (string, string, int) {
		args := []string{"webhook", "send", "--provider", "github", "--secret-env", secretEnv,
			"--body-file", file, "--header", "X-GitHub-Event: push", base + "/github"}
		if id != "" {
			args = append(args, "--id", id)
		}
		return runCLI(t, env, nil, args...)
	}

	id := fmt.Sprintf("cli-send-%d", time.Now().UnixNano())
	out, stderr, code := send("CLI_SECRET", id)
	if code != 0 || !strings.HasPrefix(out, "HTTP/1.1 200 OK\n") || !strings.Contains(out, fmt.Sprintf("backend got %d bytes", len(body))) {
		t.Fatalf("good delivery: exit %d, stdout %q, stderr %s", code, out, stderr)
	}
	got := be.take()
	if len(got) != 1 || !bytes.Equal(got[0].body, body) || got[0].header.Get("X-GitHub-Event") != "push" {
		t.Fatalf("backend got %+v", got)
	}

	out, stderr, code = send("CLI_SECRET", id)
	if code != 0 || !strings.Contains(out, `"status":"duplicate"`) || len(be.take()) != 0 {
		t.Fatalf("copy: exit %d, stdout %q", code, out)
	}
	if !strings.Contains(stderr, "delivery id: "+id+" (X-GitHub-Delivery)") {
		t.Fatalf("send does not say which id it sent: %q", stderr)
	}

	// Without --id, send makes one up and says which, so that a copy can
	// be sent on purpose.
	out, stderr, code = send("CLI_SECRET", "")
	_, fresh, ok := strings.Cut(strings.TrimSpace(stderr), "delivery id: ")
	fresh, _, _ = strings.Cut(fresh, " ")
	if code != 0 || !ok || len(fresh) != 36 || strings.Contains(out, "duplicate") {
		t.Fatalf("fresh id: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if out, _, _ = send("CLI_SECRET", fresh); !strings.Contains(out, `"status":"duplicate"`) {
		t.Fatalf("copy of the printed id: %q", out)
	}
	be.take()

	// --id where the provider sends no id header is an error, not
	// silently dropped.
	_, stderr, code = runCLI(t, env, body, "webhook", "send", "--provider", "stripe", "--secret-env", "CLI_SECRET", "--id", "evt_1", base+"/github")
	if code == 0 || !strings.Contains(stderr, "stripe sends no delivery id header") || !strings.Contains(stderr, "body's top-level id member") {
		t.Fatalf("--id for stripe: exit %d, %s", code, stderr)
	}

	out, stderr, code = send("CLI_WRONG", id+"-x")
	if code == 0 || !strings.HasPrefix(out, "HTTP/1.1 401 Unauthorized\n") || !strings.Contains(out, `"reason":"signature_invalid"`) {
		t.Fatalf("wrong secret: exit %d, stdout %q, stderr %s", code, out, stderr)
	}
	if !strings.Contains(stderr, "401") || len(be.take()) != 0 {
		t.Fatalf("wrong secret: stderr %s", stderr)
	}
}

// TestCLIHandshakeThroughRealCaddy: `caddy webhook handshake` sends each
// provider's endpoint check with a fresh challenge to a real Caddy that
// answers it at the edge, and exits 0; against a route that passes the
// handshake to a backend that does not answer it, it says what is wrong
// and exits non-zero. No secret ever appears in what it prints.
func TestCLIHandshakeThroughRealCaddy(t *testing.T) {
	be := newBackend(t)
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	secret := "cli-handshake-secret-0123456789"
	verifyToken := "cli-verify-token-9876543210"
	var routes strings.Builder
	var names []string
	for _, p := range webhookauth.Catalogue() {
		if p.Handshake == nil || p.Handshake.EnrollParam != "" {
			continue // Asana's sets the secret: the CLI refuses to probe it (TestAsanaThroughCaddy)
		}
		names = append(names, p.Name)
		key := "secret {env.CLI_HS_SECRET}"
		if p.Key == webhookauth.KeyPublic {
			key = "public_key " + hex.EncodeToString(pub)
		}
		if p.Handshake.TokenParam != "" {
			key += "\n\t\t\t\tverify_token {env.CLI_HS_TOKEN}"
		}
		if p.JWT != nil {
			key += "\n\t\t\t\taudience *"
		}
		fmt.Fprintf(&routes, `
		route /%s {
			webhook_auth %s {
				%s
			}
			reverse_proxy %s
		}`, p.Name, p.Name, key, be.URL)
	}
	fmt.Fprintf(&routes, `
		route /passed-on {
			webhook_auth x {
				secret {env.CLI_HS_SECRET}
				handshake off
			}
			reverse_proxy %s
		}`, be.URL)
	t.Setenv("CLI_HS_SECRET", secret)
	t.Setenv("CLI_HS_TOKEN", verifyToken)
	tester := newTester(t)
	tester.InitServer(caddyConfig("", ":9080 {"+routes.String()+"\n}\n"), "caddyfile")
	env := []string{"CLI_SECRET=" + secret, "CLI_KEY=" + hex.EncodeToString(priv.Seed()), "CLI_TOKEN=" + verifyToken, "CLI_WRONG=wrong-token-0123456789"}
	for _, name := range names {
		p, _ := webhookauth.LookupPreset(name)
		args := []string{"webhook", "handshake", "--provider", name, base + "/" + name}
		if p.Key == webhookauth.KeyPublic {
			args = append(args, "--private-key-env", "CLI_KEY")
		} else {
			args = append(args, "--secret-env", "CLI_SECRET")
		}
		if p.Handshake.TokenParam != "" {
			args = append(args, "--verify-token-env", "CLI_TOKEN")
		}
		out, stderr, code := runCLI(t, env, nil, args...)
		if code != 0 || !strings.Contains(out, "ok: "+name+" would accept this endpoint") || strings.Contains(out+stderr, secret) || strings.Contains(out+stderr, verifyToken) {
			t.Errorf("%s: exit %d\n%s%s", name, code, out, stderr)
		}
	}
	// Meta's check with the wrong verify token is refused, and the
	// command says so without printing the token.
	out, stderr, code := runCLI(t, env, nil, "webhook", "handshake", "--provider", "meta", "--secret-env", "CLI_SECRET", "--verify-token-env", "CLI_WRONG", base+"/meta")
	if code == 0 || !strings.Contains(out, "wrong: status 401, want 200") || strings.Contains(out+stderr, "wrong-token-0123456789") {
		t.Errorf("meta with the wrong verify token: exit %d\n%s%s", code, out, stderr)
	}
	if got := be.take(); len(got) != 0 {
		t.Fatalf("the backend got %d handshakes", len(got))
	}
	out, _, code = runCLI(t, env, nil, "webhook", "handshake", "--provider", "x", "--secret-env", "CLI_SECRET", base+"/passed-on")
	if code == 0 || !strings.Contains(out, "wrong: Content-Type \"text/plain\", want application/json") {
		t.Fatalf("a backend that does not answer the CRC: exit %d\n%s", code, out)
	}
	if got := be.take(); len(got) != 1 {
		t.Fatalf("handshake off: the backend got %d requests", len(got))
	}
}

// TestCLIFetchedKeysSend: `caddy webhook send` signs for SNS, PayPal and
// Pub/Sub with the user's own key, served by a local key server the
// webhook app is pointed at, and the deliveries pass a real Caddy.
func TestCLIFetchedKeysSend(t *testing.T) {
	const dir = "webhookauth/testdata/fetched"
	ks := keyserver.Start(t, dir)
	be := newBackend(t)
	tester := newTester(t)
	tester.InitServer(caddyConfig(keyServerGlobals(ks), fmt.Sprintf(`
	:9080 {
		route /sns {
			webhook_auth sns {
				topic_arn arn:aws:sns:us-east-1:123456789012:cli
			}
			reverse_proxy %[1]s
		}
		route /paypal {
			webhook_auth paypal {
				webhook_id 8PT597110X687430LKGECATA
			}
			reverse_proxy %[1]s
		}
		route /pubsub {
			webhook_auth pubsub {
				audience https://hooks.example.com/pubsub
				service_account *
			}
			reverse_proxy %[1]s
		}
	}
	`, be.URL)), "caddyfile")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	env := []string{"CLI_SNS_KEY=" + read("sns.key"), "CLI_PAYPAL_KEY=" + read("paypal.key"), "CLI_GOOGLE_KEY=" + read("google.key")}
	body := []byte(`{"event":"cli","n":1}`)
	for _, c := range []struct {
		provider string
		args     []string
	}{
		{"sns", []string{"--private-key-env", "CLI_SNS_KEY", "--cert-url", ks.URL + "/sns.pem", "--topic-arn", "arn:aws:sns:us-east-1:123456789012:cli"}},
		{"paypal", []string{"--private-key-env", "CLI_PAYPAL_KEY", "--cert-url", ks.URL + "/paypal.pem", "--webhook-id", "8PT597110X687430LKGECATA"}},
		{"pubsub", []string{"--private-key-env", "CLI_GOOGLE_KEY", "--key-id", keyserver.KID, "--audience", "https://hooks.example.com/pubsub"}},
	} {
		args := append([]string{"webhook", "send", "--provider", c.provider}, c.args...)
		out, stderr, code := runCLI(t, env, body, append(args, base+"/"+c.provider)...)
		got := be.take()
		if code != 0 || !strings.HasPrefix(out, "HTTP/1.1 200 OK") || len(got) != 1 {
			t.Errorf("%s: exit %d\n%s%s", c.provider, code, out, stderr)
			continue
		}
		if c.provider != "sns" && !bytes.Equal(got[0].body, body) {
			t.Errorf("%s: the backend got %q", c.provider, got[0].body)
		}
		if c.provider == "sns" && !strings.Contains(string(got[0].body), `"Message": "{\"event\":\"cli\",\"n\":1}"`) {
			t.Errorf("sns: the backend got %s", got[0].body)
		}
	}
	// sign prints SNS's signed envelope after the headers.
	out, stderr, code := runCLI(t, env, body, "webhook", "sign", "--provider", "sns", "--private-key-env", "CLI_SNS_KEY",
		"--cert-url", ks.URL+"/sns.pem", "--topic-arn", "arn:aws:sns:us-east-1:123456789012:cli")
	if code != 0 || !strings.Contains(out, "x-amz-sns-message-type: Notification\n") || !strings.Contains(out, "\n\n{") || !strings.Contains(out, `"SignatureVersion": "2"`) {
		t.Errorf("sign sns: exit %d\n%s%s", code, out, stderr)
	}
	// A shared secret is refused for these senders.
	_, stderr, code = runCLI(t, []string{"S=x"}, body, "webhook", "sign", "--provider", "paypal", "--secret-env", "S")
	if code == 0 || !strings.Contains(stderr, "sign with your own RSA key") {
		t.Errorf("paypal with a secret: exit %d %s", code, stderr)
	}
}

// TestCLIVerifyAndSubcommands: `caddy webhook verify` exits 0 for a
// delivery that verifies and 1 for one that does not, never printing the
// secret; `providers --provider` shows one entry; a mistyped subcommand
// is an error naming the real ones, not the help and exit 0.
func TestCLIVerifyAndSubcommands(t *testing.T) {
	body := []byte(`{"action":"opened","number":7}`)
	p, _ := webhookauth.LookupPreset("github")
	s, _ := p.Scheme.Compile()
	h, err := s.SignHeaders(githubSecret, webhookauth.Delivery{Body: body, ID: "verify-1"})
	if err != nil {
		t.Fatal(err)
	}
	raw := fmt.Sprintf("POST /github HTTP/1.1\r\nHost: hooks.example.com\r\nX-GitHub-Delivery: verify-1\r\nX-Hub-Signature-256: %s\r\nContent-Length: %d\r\n\r\n%s",
		h.Get("X-Hub-Signature-256"), len(body), body)
	env := []string{"CLI_GH_SECRET=" + githubSecret, "CLI_GH_WRONG=" + strings.Repeat("x", 32)}
	out, stderr, code := runCLI(t, env, []byte(raw), "webhook", "verify", "-p", "github", "--secret-env", "CLI_GH_SECRET", "--request-file", "-")
	if code != 0 || !strings.Contains(out, "result: verified, by configured key #1") {
		t.Fatalf("exit %d:\n%s%s", code, out, stderr)
	}
	out, stderr, code = runCLI(t, env, []byte(raw), "webhook", "verify", "-p", "github", "--secret-env", "CLI_GH_WRONG", "--request-file", "-")
	if code != 1 || !strings.Contains(out, "result: signature_invalid (401)") {
		t.Fatalf("wrong secret: exit %d:\n%s%s", code, out, stderr)
	}
	for _, s := range []string{githubSecret, h.Get("X-Hub-Signature-256")[7:], `"action"`} {
		if strings.Contains(out+stderr, s) {
			t.Fatalf("the output shows %q", s)
		}
	}

	out, stderr, code = runCLI(t, nil, nil, "webhook", "providers", "--provider", "stripe")
	if code != 0 || !strings.Contains(out, "docs:        https://docs.stripe.com/") || !strings.Contains(out, "signed_payload      {timestamp}.{body}") {
		t.Fatalf("providers --provider stripe: exit %d:\n%s%s", code, out, stderr)
	}
	out, _, _ = runCLI(t, nil, nil, "webhook", "providers")
	if n := strings.Count(out, "\n"); n != len(webhookauth.Catalogue())+1 {
		t.Fatalf("providers: %d lines for %d presets", n, len(webhookauth.Catalogue()))
	}

	_, stderr, code = runCLI(t, nil, nil, "webhook", "verfy")
	if code == 0 || !strings.Contains(stderr, `unknown subcommand "verfy"`) || !strings.Contains(stderr, "verify") {
		t.Fatalf("a mistyped subcommand: exit %d, stderr %s", code, stderr)
	}
}

// TestCLIVerifyFetched: `caddy webhook verify` on SNS and PayPal
// deliveries fetches their keys as the gate does, from a local HTTPS key
// server standing in for the provider (allowed with --keys-host, trusted
// with --keys-root-ca), and reaches every vector's verdict; a key URL off
// the allowlist is refused without a fetch, with its usual causes.
func TestCLIVerifyFetched(t *testing.T) {
	ks := keyserver.Start(t, "webhookauth/testdata/fetched")
	keys := []string{"--keys-host", "sns=" + ks.Host, "--keys-host", "paypal=" + ks.Host, "--keys-root-ca", ks.RootFile}
	n := 0
	for _, d := range fetchedDeliveries(t, ks) {
		v, body, headers := d.vector, d.body, d.headers
		headers["Content-Type"] = "text/plain; charset=UTF-8"
		args := append([]string{"webhook", "verify", "-p", v.Provider, "--request-file", "-", "--at", fmt.Sprint(v.VerifyAt)}, keys...)
		if v.Provider == "paypal" {
			args = append(args, "--webhook-id", "8PT597110X687430LKGECATA")
		}
		var raw strings.Builder
		fmt.Fprintf(&raw, "POST /hook HTTP/1.1\r\nHost: hooks.example.com\r\n")
		for k, val := range headers {
			fmt.Fprintf(&raw, "%s: %s\r\n", k, val)
		}
		fmt.Fprintf(&raw, "Content-Length: %d\r\n\r\n%s", len(body), body)
		out, stderr, code := runCLI(t, nil, []byte(raw.String()), args...)
		if (code == 0) != (v.Expect == "valid") || !strings.Contains(out, "keys       fetched over HTTPS") {
			t.Errorf("%s: expect %s, exit %d:\n%s%s", v.Name, v.Expect, code, out, stderr)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("only %d SNS and PayPal vectors", n)
	}

	// Off the allowlist: refused before any request, and explained.
	before := ks.Total()
	body, certURL := snsVector(t)
	evil := strings.Replace(body, certURL, "https://attacker.example.com/SimpleNotificationService-1.pem", 1)
	raw := fmt.Sprintf("POST /hook HTTP/1.1\r\nHost: hooks.example.com\r\nContent-Length: %d\r\n\r\n%s", len(evil), evil)
	out, _, code := runCLI(t, nil, []byte(raw), append([]string{"webhook", "verify", "-p", "sns", "--request-file", "-"}, keys...)...)
	if code != 1 || !strings.Contains(out, "result: signature_malformed") || !strings.Contains(out, "not one of the provider's hosts") || !strings.Contains(out, "✗ keys") {
		t.Fatalf("off the allowlist: exit %d\n%s", code, out)
	}
	if ks.Total() != before {
		t.Fatal("the key server was asked for a URL off the allowlist")
	}
}

// One error style: every webhook subcommand reports a user's error as
// Caddy's own subcommands do, one JSON log line on standard error and
// exit 1, with the nearest preset names for a typo.
func TestCLIErrorStyle(t *testing.T) {
	for _, args := range [][]string{
		{"webhook", "providers", "--provider", "githib"},
		{"webhook", "sign", "--provider", "githib", "--secret", "x"},
		{"webhook", "verify", "--provider", "githib", "--secret-env", "HOME", "--url", "https://x/", "--body-file", "/dev/null"},
		{"webhook", "queue", "list", "--address", "127.0.0.1:1"},
	} {
		stdout, stderr, code := runCLI(t, nil, nil, args...)
		var line struct{ Level, Msg string }
		if code != 1 || json.Unmarshal([]byte(strings.TrimSpace(stderr)), &line) != nil || line.Level != "error" || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
			continue
		}
		if args[1] != "queue" && !strings.Contains(line.Msg, "did you mean github?") {
			t.Errorf("%v: %q", args, line.Msg)
		}
	}
}
