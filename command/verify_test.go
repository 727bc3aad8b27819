package command

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// vector is an outside signature vector (webhookauth/testdata): the
// provider's SDK or documentation made it, not our signer.
type vector struct {
	Provider  string            `json:"provider"`
	Variant   string            `json:"variant"`
	Name      string            `json:"name"`
	Kind      string            `json:"kind"`
	Expect    string            `json:"expect"`
	Secret    string            `json:"secret"`
	Secrets   []string          `json:"secrets"`
	PublicKey string            `json:"public_key"`
	VerifyAt  int64             `json:"verify_at"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Body      string            `json:"body"`
	Headers   map[string]string `json:"headers"`
	Params    map[string]string `json:"params"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	var all []vector
	for _, f := range []string{"providers-more.json", "providers-extra.json"} {
		raw, err := os.ReadFile(filepath.Join("..", "webhookauth", "testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		var vs []vector
		if err := json.Unmarshal(raw, &vs); err != nil {
			t.Fatal(err)
		}
		all = append(all, vs...)
	}
	return all
}

// rawRequest writes the vector as a captured HTTP/1.1 request and returns
// the URL the sender addressed.
func (v vector) rawRequest() ([]byte, string) {
	method, target, body := v.Method, v.URL, v.Body
	if method == "" {
		method = "POST"
	}
	if target == "" {
		target = "http://example.com/hook"
	}
	headers := map[string]string{}
	if body == "" && len(v.Params) > 0 {
		form := url.Values{}
		for k, val := range v.Params {
			form.Set(k, val)
		}
		body = form.Encode()
		headers["Content-Type"] = "application/x-www-form-urlencoded"
	}
	for k, val := range v.Headers {
		headers[k] = val
	}
	u, _ := url.Parse(target)
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, u.RequestURI(), u.Host)
	for k, val := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, val)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.Bytes(), target
}

func runVerify(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := verifyCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

// TestVerifyOutsideVectors: `caddy webhook verify` reaches the gate's
// verdict on every outside vector of every preset with configured keys,
// valid and invalid, and its explanation never shows a secret, a
// signature or the body.
func TestVerifyOutsideVectors(t *testing.T) {
	dir := t.TempDir()
	checked := map[string]bool{}
	n := 0
	for i, v := range loadVectors(t) {
		p, err := webhookauth.LookupPreset(presetOf(v))
		if err != nil || v.Kind != "delivery" || v.Variant == "v1a" || !p.Compiled() {
			continue
		}
		raw, target := v.rawRequest()
		file := filepath.Join(dir, strconv.Itoa(i)+".http")
		os.WriteFile(file, raw, 0o600)
		var keys []string
		keyFlag := "--secret-env"
		switch {
		case p.Key == webhookauth.KeyPublic:
			keys, keyFlag = []string{v.PublicKey}, "--public-key-env"
		case len(v.Secrets) > 0:
			keys = v.Secrets
		default:
			keys = []string{v.Secret}
		}
		args := []string{"--request-file", file, "--url", target}
		if v.VerifyAt != 0 {
			args = append(args, "--at", strconv.FormatInt(v.VerifyAt, 10))
		}
		var keyArgs []string
		var block strings.Builder
		fmt.Fprintf(&block, "webhook_auth %s {\n", presetOf(v))
		for j, k := range keys {
			env := fmt.Sprintf("VERIFY_TEST_KEY_%d_%d", i, j)
			t.Setenv(env, k)
			keyArgs = append(keyArgs, keyFlag, env)
			directive := "secret"
			if keyFlag == "--public-key-env" {
				directive = "public_key"
			}
			fmt.Fprintf(&block, "\t%s {env.%s}\n", directive, env)
		}
		if v.VerifyAt != 0 && (v.Method == "" || v.Method == "POST") {
			args = append(append(args, "--provider", presetOf(v)), keyArgs...)
		} else {
			// A vector without a time of its own: no replay window, as
			// the provider's SDK checked it; one sent with another
			// method: that method allowed. The handler comes from a
			// Caddyfile block, the other way in.
			if v.VerifyAt == 0 {
				block.WriteString("\ttolerance 0\n")
			}
			if v.Method != "" {
				block.WriteString("\tmethods " + v.Method + "\n")
			}
			block.WriteString("}\n")
			cf := filepath.Join(dir, strconv.Itoa(i)+".caddyfile")
			os.WriteFile(cf, []byte(block.String()), 0o600)
			args = append(args, "--config-file", cf)
		}
		out, err := runVerify(t, args...)
		if (err == nil) != (v.Expect == "valid") {
			t.Errorf("%s: expect %s, verify says %v:\n%s", v.Name, v.Expect, err, out)
			continue
		}
		if !strings.Contains(out, "result: ") {
			t.Errorf("%s: no result line:\n%s", v.Name, out)
		}
		for _, k := range keys {
			if len(k) >= 8 && strings.Contains(out, k) {
				t.Errorf("%s: the output shows a key", v.Name)
			}
		}
		for name, val := range v.Headers {
			if strings.EqualFold(name, p.Scheme.SignatureHeader) && len(val) >= 16 && strings.Contains(out, val) {
				t.Errorf("%s: the output shows the signature", v.Name)
			}
		}
		if len(v.Body) >= 16 && strings.Contains(out, v.Body[:16]) {
			t.Errorf("%s: the output shows the body", v.Name)
		}
		checked[p.Name] = true
		n++
	}
	t.Logf("%d vectors of %d presets", n, len(checked))
	if len(checked) < 80 {
		t.Errorf("only %d presets checked", len(checked))
	}
}

// presetOf names the preset for a vector where the provider's name alone
// does not (as webhookauth's tests do).
func presetOf(v vector) string {
	switch {
	case strings.HasPrefix(v.Name, "hubspot-v1"):
		return "hubspot_v1"
	case strings.HasPrefix(v.Name, "hubspot-v2"):
		return "hubspot_v2"
	case v.Provider == "adyen" && v.Variant == "banking":
		return "adyen_platform"
	}
	return v.Provider
}

// TestVerifyExplains: the steps say what was read and which key matched,
// and a failure names its step and the usual causes.
func TestVerifyExplains(t *testing.T) {
	dir := t.TempDir()
	const secret, old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_QWxsIG1pbmUgb2xkIHNlY3JldCBrZXkhIQ=="
	t.Setenv("VERIFY_NEW", secret)
	t.Setenv("VERIFY_OLD", old)
	body := []byte(`{"type":"user.created","data":{"id":"u_1"}}`)
	d, err := sign("standard", secret, body, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", mustTime(t, "2026-11-29T08:00:00Z"))
	if err != nil {
		t.Fatal(err)
	}
	var hdr bytes.Buffer
	d.writeHeaders(&hdr)
	raw := "POST /hooks/standard HTTP/1.1\r\nHost: hooks.example.com\r\nContent-Type: application/json\r\n" +
		strings.ReplaceAll(hdr.String(), "\n", "\r\n") + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + string(body)
	file := filepath.Join(dir, "req.http")
	os.WriteFile(file, []byte(raw), 0o600)

	out, err := runVerify(t, "-p", "standard", "--secret-env", "VERIFY_OLD", "--secret-env", "VERIFY_NEW", "--request-file", file, "--at", "2026-11-29T08:01:00Z")
	if err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	for _, want := range []string{
		"https://hooks.example.com/hooks/standard",
		"webhook-signature: 1 value(s)",
		`"1795939200" = 2026-11-29T08:00:00Z, 1m0s ago (window ±5m0s: inside)`,
		`webhook-id: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"`,
		`template "{id}.{timestamp}.{body}" = id (31 bytes) + "." + timestamp (10 bytes) + "." + body (43 bytes) = 86 bytes`,
		"by configured key #2 (secret_index 1)",
	} {
		if !strings.Contains(strings.ToLower(out), strings.ToLower(want)) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}

	// An hour later: the timestamp step fails, and says why.
	out, err = runVerify(t, "-p", "standard", "--secret-env", "VERIFY_NEW", "--request-file", file, "--at", "2026-11-29T09:00:00Z")
	if err == nil || !strings.Contains(out, "✗ timestamp") || !strings.Contains(out, "1h0m0s ago (window ±5m0s: OUTSIDE)") ||
		!strings.Contains(out, "result: timestamp_out_of_window (401)") || !strings.Contains(out, "clock skew") {
		t.Fatalf("%v:\n%s", err, out)
	}

	// The body re-serialised by a proxy: the compare step fails.
	bad := filepath.Join(dir, "bad.http")
	reserialised := strings.Replace(raw, `"type":"user.created"`, `"type": "user.created"`, 1)
	reserialised = strings.Replace(reserialised, "Content-Length: 43", "Content-Length: 44", 1)
	os.WriteFile(bad, []byte(reserialised), 0o600)
	out, err = runVerify(t, "-p", "standard", "--secret-env", "VERIFY_NEW", "--request-file", bad, "--at", "2026-11-29T08:01:00Z")
	if err == nil || !strings.Contains(out, "✗ compare") || !strings.Contains(out, "result: signature_invalid (401)") ||
		!strings.Contains(out, "re-serialised") || !strings.Contains(out, "body (44 bytes)") {
		t.Fatalf("%v:\n%s", err, out)
	}
	for _, s := range []string{secret, old, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "user.created"} {
		if strings.Contains(out, s) {
			t.Fatalf("the output shows %q", s)
		}
	}

	// No signature header: signature_missing at the signature step.
	os.WriteFile(bad, []byte(regexp.MustCompile(`(?i)webhook-signature:`).ReplaceAllString(raw, "X-Stripped:")), 0o600)
	out, err = runVerify(t, "-p", "standard", "--secret-env", "VERIFY_NEW", "--request-file", bad, "--at", "2026-11-29T08:01:00Z")
	if err == nil || !strings.Contains(out, "✗ signature") || !strings.Contains(out, "result: signature_missing") {
		t.Fatalf("%v:\n%s", err, out)
	}

	// The parts as flags instead of a file, a {url}-signing scheme: the
	// URL shown is the one the payload used, and a rewritten one fails.
	t.Setenv("VERIFY_TWILIO", "12345")
	params := "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212"
	bodyFile := filepath.Join(dir, "twilio.form")
	os.WriteFile(bodyFile, []byte(params), 0o600)
	args := []string{"-p", "twilio", "--secret-env", "VERIFY_TWILIO", "--body-file", bodyFile,
		"-H", "Content-Type: application/x-www-form-urlencoded", "-H", "X-Twilio-Signature: 0/KCTR6DLpKmkAf8muzZqo1nDgQ="}
	out, err = runVerify(t, append(args, "--url", "https://mycompany.com/myapp.php?foo=1&bar=2")...)
	if err != nil || !strings.Contains(out, `url "https://mycompany.com/myapp.php?foo=1&bar=2"`) {
		t.Fatalf("twilio's documented example: %v:\n%s", err, out)
	}
	out, err = runVerify(t, append(args, "--url", "http://mycompany.com/myapp.php?foo=1&bar=2")...)
	if err == nil || !strings.Contains(out, "http against https") {
		t.Fatalf("twilio over http: %v:\n%s", err, out)
	}

	// Errors that are the caller's: clear, before anything runs.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--request-file", file}, "--provider or --config-file"},
		{[]string{"-p", "github", "--request-file", file}, "--secret-env"},
		{[]string{"-p", "github", "--secret-env", "VERIFY_UNSET_VARIABLE", "--request-file", file}, "not set"},
		{[]string{"-p", "github", "--secret-env", "VERIFY_NEW"}, "--request-file"},
		{[]string{"-p", "nosuch", "--secret-env", "VERIFY_NEW", "--request-file", file}, "nosuch"},
		{[]string{"-p", "github", "--secret-env", "VERIFY_NEW", "--request-file", file, "--at", "yesterday"}, "--at"},
	} {
		if out, err := runVerify(t, c.args...); err == nil || !strings.Contains(err.Error()+out, c.want) {
			t.Errorf("%v: want an error about %s, got %v:\n%s", c.args, c.want, err, out)
		}
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
