package caddywebhookauth_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Asana's enrollment through a real Caddy, operated with the CLI over
// the admin API: a handshake without an armed token is refused; `caddy
// webhook asana arm` prints the target; the handshake to it is answered
// with its secret, once; deliveries signed with that secret reach the
// backend byte for byte, others are refused; `list` shows the webhook
// and never the secret; `forget` ends it.
func TestAsanaThroughCaddy(t *testing.T) {
	be := newBackend(t)
	tester := newTester(t)
	tester.InitServer(caddyConfig("", fmt.Sprintf(`:9080 {
		route /hooks/asana {
			webhook_auth asana
			reverse_proxy %s
		}
	}
	`, be.URL)), "caddyfile")
	endpoint := base + "/hooks/asana"
	address := fmt.Sprintf("localhost:%d", adminPort)
	const secret = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"

	handshake := func(target, secret string) *http.Response {
		t.Helper()
		resp, _ := request(t, http.MethodPost, target, "", map[string]string{"X-Hook-Secret": secret})
		return resp
	}
	if resp := handshake(endpoint, secret); resp.StatusCode != 401 || resp.Header.Get("X-Hook-Secret") != "" {
		t.Fatalf("not armed: %d", resp.StatusCode)
	}
	out, stderr, code := runCLI(t, nil, nil, "webhook", "asana", "arm", "--address", address, "--url", endpoint, "--ttl", "5m")
	m := regexp.MustCompile(`target: (\S+)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("arm: exit %d\n%s%s", code, out, stderr)
	}
	target := m[1]
	if u, err := url.Parse(target); err != nil || u.Path != "/hooks/asana" || len(u.Query()["asana_enroll"]) != 1 {
		t.Fatalf("arm printed %q", target)
	}
	if resp := handshake(target, secret); resp.StatusCode != 200 || resp.Header.Get("X-Hook-Secret") != secret {
		t.Fatalf("armed handshake: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := handshake(target, strings.Repeat("f", 64)); resp.StatusCode != 401 || resp.Header.Get("X-Hook-Secret") != "" {
		t.Fatalf("second handshake: %d", resp.StatusCode)
	}
	if n := len(be.take()); n != 0 {
		t.Fatalf("%d handshakes reached the backend", n)
	}

	sign := func(key, body string) string {
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte(body))
		return hex.EncodeToString(mac.Sum(nil))
	}
	body := `{"events":[{"action":"changed","resource":{"gid":"1204319274530123","resource_type":"task"}}]}`
	resp, raw := request(t, http.MethodPost, target, body, map[string]string{"X-Hook-Signature": sign(secret, body), "Content-Type": "application/json"})
	if got := be.take(); resp.StatusCode != 200 || len(got) != 1 || string(got[0].body) != body {
		t.Fatalf("delivery: %d %s", resp.StatusCode, raw)
	}
	for name, c := range map[string]struct{ target, sig string }{
		"another secret": {target, sign(strings.Repeat("f", 64), body)},
		"no token":       {endpoint, sign(secret, body)},
	} {
		resp, raw := request(t, http.MethodPost, c.target, body, map[string]string{"X-Hook-Signature": c.sig})
		if resp.StatusCode != 401 || !strings.Contains(string(raw), "signature_invalid") {
			t.Errorf("%s: %d %s", name, resp.StatusCode, raw)
		}
	}
	if n := len(be.take()); n != 0 {
		t.Fatalf("%d forged deliveries reached the backend", n)
	}

	out, stderr, code = runCLI(t, nil, nil, "webhook", "asana", "list", "--address", address)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.Contains(lines[1], "/hooks/asana") || strings.Contains(out, secret) {
		t.Fatalf("list: exit %d\n%s%s", code, out, stderr)
	}
	id := strings.Fields(lines[1])[0]
	if out, stderr, code = runCLI(t, nil, nil, "webhook", "asana", "forget", id, "--address", address); code != 0 {
		t.Fatalf("forget: exit %d\n%s%s", code, out, stderr)
	}
	resp, raw = request(t, http.MethodPost, target, body, map[string]string{"X-Hook-Signature": sign(secret, body)})
	if resp.StatusCode != 401 || len(be.take()) != 0 {
		t.Fatalf("after forget: %d %s", resp.StatusCode, raw)
	}
	if _, stderr, code = runCLI(t, nil, nil, "webhook", "asana", "forget", id, "--address", address); code == 0 || !strings.Contains(stderr, "no enrollment") {
		t.Fatalf("forget twice: exit %d %s", code, stderr)
	}
	// The probe refuses: it would spend an enrollment.
	if _, stderr, code = runCLI(t, []string{"S=x"}, nil, "webhook", "handshake", "--provider", "asana", "--secret-env", "S", endpoint); code == 0 || !strings.Contains(stderr, "caddy webhook asana arm") {
		t.Fatalf("handshake probe: exit %d %s", code, stderr)
	}
}
