package caddywebhookauth_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// monday.com through a real Caddy in front of a real backend: a delivery
// with a token for this endpoint is forwarded byte for byte with its
// token; a token for another endpoint, with another secret, expired, or
// none at all is refused 401 and never forwarded; the challenge is
// answered at the edge without a token. `caddy webhook send` writes the
// token as monday.com does.
func TestMondayThroughCaddy(t *testing.T) {
	be := newBackend(t)
	const secret = "5f2c9d1e8b7a40c6a3e1f09d2b4c7e8a"
	aud := base + "/monday"
	t.Setenv("IT_MONDAY_SECRET", secret)
	tester := newTester(t)
	tester.InitServer(caddyConfig("", fmt.Sprintf(`:9080 {
		route /monday {
			webhook_auth monday {
				secret {env.IT_MONDAY_SECRET}
				audience %s
				dedup
			}
			reverse_proxy %s
		}
	}
	`, aud, be.URL)), "caddyfile")

	body := `{"event":{"type":"create_pulse","triggerUuid":"c1d2e3f4a5b6","boardId":1,"pulseId":2}}`
	now := time.Now()
	send := func(token, body string) (*http.Response, []byte) {
		t.Helper()
		h := map[string]string{"Content-Type": "application/json"}
		if token != "" {
			h["Authorization"] = token
		}
		return request(t, http.MethodPost, aud, body, h)
	}
	good := webhookauth.SignJWT([]byte(secret), aud, now, 5*time.Minute)
	if resp, out := send(good, body); resp.StatusCode != 200 {
		t.Fatalf("a token for this endpoint: %d %s", resp.StatusCode, out)
	}
	got := be.take()
	if len(got) != 1 || string(got[0].body) != body || got[0].header.Get("Authorization") != good {
		t.Fatalf("the backend got %d requests", len(got))
	}
	// monday.com retries the same event with a fresh token: a duplicate.
	if resp, out := send(webhookauth.SignJWT([]byte(secret), aud, now.Add(time.Second), 5*time.Minute), body); resp.StatusCode != 200 || len(be.take()) != 0 {
		t.Fatalf("a retry: %d %s", resp.StatusCode, out)
	}
	for _, c := range []struct {
		name, token, reason string
	}{
		{"another endpoint", webhookauth.SignJWT([]byte(secret), base+"/other", now, 5*time.Minute), "signature_invalid"},
		{"another secret", webhookauth.SignJWT([]byte("0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"), aud, now, 5*time.Minute), "signature_invalid"},
		{"expired", webhookauth.SignJWT([]byte(secret), aud, now.Add(-10*time.Minute), 5*time.Minute), "timestamp_out_of_window"},
		{"none", "", "signature_missing"},
	} {
		resp, out := send(c.token, strings.Replace(body, "c1d2", "ffff", 1))
		if resp.StatusCode != 401 || !strings.Contains(string(out), `"reason":"`+c.reason+`"`) {
			t.Errorf("%s: %d %s", c.name, resp.StatusCode, out)
		}
	}
	if n := len(be.take()); n != 0 {
		t.Fatalf("%d refused deliveries reached the backend", n)
	}
	// The challenge, without a token.
	resp, out := send("", `{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}`)
	if resp.StatusCode != 200 || string(out) != `{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}` || len(be.take()) != 0 {
		t.Fatalf("challenge: %d %s", resp.StatusCode, out)
	}

	// The CLI signs as monday.com does.
	env := []string{"CLI_MONDAY=" + secret}
	payload := []byte(`{"event":{"type":"create_update","triggerUuid":"cli-1"}}`)
	stdout, stderr, code := runCLI(t, env, payload, "webhook", "send", "--provider", "monday", "--secret-env", "CLI_MONDAY", "--audience", aud, aud)
	if code != 0 || !strings.HasPrefix(stdout, "HTTP/1.1 200 OK") {
		t.Fatalf("webhook send: exit %d\n%s%s", code, stdout, stderr)
	}
	if got := be.take(); len(got) != 1 || !bytes.Equal(got[0].body, payload) {
		t.Fatalf("webhook send: the backend got %d requests", len(got))
	}
	if strings.Contains(stdout+stderr, secret) {
		t.Fatal("the secret is in what the CLI printed")
	}
	_, stderr, code = runCLI(t, env, payload, "webhook", "sign", "--provider", "monday", "--secret-env", "CLI_MONDAY")
	if code == 0 || !strings.Contains(stderr, "--audience is required") {
		t.Errorf("sign without --audience: exit %d %s", code, stderr)
	}
}
