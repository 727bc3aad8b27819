package caddywebhookauth_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// TestHTTPSEndToEnd runs examples/https/Caddyfile (its ports made free)
// in a real Caddy: automatic HTTPS with Caddy's internal CA, the gate, a
// backend. Signed deliveries of three providers that sign the URL
// (Twilio, Square, HubSpot) go over TLS with HTTP/1.1 and with HTTP/2,
// verify against the https:// URL the client used and reach the backend
// untouched; the same deliveries signed for the http:// URL are refused.
func TestHTTPSEndToEnd(t *testing.T) {
	const twilioToken, squareKey, hubspotSecret = "https-twilio-auth-token-0c4e7a", "https-square-signature-key-91bd", "https-hubspot-client-secret-5f20"
	t.Setenv("TWILIO_AUTH_TOKEN", twilioToken)
	t.Setenv("SQUARE_SIGNATURE_KEY", squareKey)
	t.Setenv("HUBSPOT_CLIENT_SECRET", hubspotSecret)
	src, err := os.ReadFile("examples/https/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	// The example's fixed ports, rewritten to this run's free ones (a
	// fixed port could be shared with another Caddy: SO_REUSEPORT).
	backendPort := freePort(t)
	cfg := strings.NewReplacer(
		"localhost:2121", fmt.Sprintf("localhost:%d", adminPort),
		"http_port 8121", fmt.Sprintf("http_port %d", httpPort),
		"https_port 8123", fmt.Sprintf("https_port %d", httpsPort),
		"localhost:8123", fmt.Sprintf("localhost:%d", httpsPort),
		"localhost:8122", fmt.Sprintf("localhost:%d", backendPort),
		"localhost:8121", fmt.Sprintf("localhost:%d", httpPort),
	).Replace(string(src))
	for _, fixed := range []string{"2121", "8121", "8123", "8122"} {
		if strings.Contains(cfg, fixed) {
			t.Fatalf("port %s left in the example's copy", fixed)
		}
	}
	tester := newTester(t)
	tester.InitServer(cfg, "caddyfile")

	// Trust Caddy's local CA, as `caddy trust` would, and nothing else.
	resp, err := http.Get(adminURL + "/pki/ca/local")
	if err != nil {
		t.Fatal(err)
	}
	var ca struct {
		Root string `json:"root_certificate"`
	}
	json.NewDecoder(resp.Body).Decode(&ca)
	resp.Body.Close()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(ca.Root)) {
		t.Fatalf("no root certificate from the admin API: %q", ca.Root)
	}

	origin := fmt.Sprintf("https://localhost:%d", httpsPort)
	waitCertificate(t, httpsPort, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	clients := map[string]*http.Client{
		"HTTP/1.1": {Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{}, // no h2
		}},
		"HTTP/2.0": {Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}},
	}
	type delivery struct {
		provider, secret, path, contentType, body string
	}
	form := url.Values{"CallSid": {"CA0123456789abcdef"}, "From": {"+15005550006"}, "Body": {"over https"}}.Encode()
	deliveries := []delivery{
		{"twilio", twilioToken, "/twilio?tenant=acme&n=1", "application/x-www-form-urlencoded", form},
		{"square", squareKey, "/square", "application/json", `{"merchant_id":"M1","type":"payment.updated","event_id":"e-1"}`},
		{"hubspot", hubspotSecret, "/hubspot?portal=62515", "application/json", `[{"eventId":1,"subscriptionType":"contact.creation"}]`},
	}
	sign := func(d delivery, signedURL string) http.Header {
		t.Helper()
		p, _ := webhookauth.LookupPreset(d.provider)
		s, err := p.Scheme.Compile()
		if err != nil {
			t.Fatal(err)
		}
		h, err := s.SignHeaders(d.secret, webhookauth.Delivery{Body: []byte(d.body), URL: signedURL, Timestamp: time.Now(),
			Header: http.Header{"Content-Type": {d.contentType}}})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	send := func(c *http.Client, d delivery, h http.Header) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, origin+d.path, strings.NewReader(d.body))
		for k, v := range h {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", d.contentType)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for proto, c := range clients {
		for _, d := range deliveries {
			resp, out := send(c, d, sign(d, origin+d.path))
			want := "backend received " + d.path + " (https): " + d.body
			if resp.StatusCode != 200 || out != want {
				t.Errorf("%s %s: %d %q, want 200 %q", proto, d.provider, resp.StatusCode, out, want)
			}
			if resp.Proto != proto || resp.TLS == nil {
				t.Errorf("%s %s: answered over %s (TLS %v)", proto, d.provider, resp.Proto, resp.TLS != nil)
			}
			// Signed for the http:// URL (or another host): not what
			// this sender addressed, so not verified.
			for _, wrong := range []string{"http://localhost:" + strconv.Itoa(httpsPort) + d.path, "https://evil.example.com" + d.path} {
				resp, out := send(c, d, sign(d, wrong))
				if resp.StatusCode != 401 || !strings.Contains(out, `"reason":"signature_invalid"`) {
					t.Errorf("%s %s signed for %s: %d %s", proto, d.provider, wrong, resp.StatusCode, out)
				}
			}
		}
	}
	// Plain HTTP on the HTTP port is redirected to HTTPS, never verified
	// against an http:// URL.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	d := deliveries[1]
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://localhost:%d%s", httpPort, d.path), strings.NewReader(d.body))
	for k, v := range sign(d, fmt.Sprintf("http://localhost:%d%s", httpPort, d.path)) {
		req.Header[k] = v
	}
	resp, err = noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The redirect keeps the HTTPS port, so `curl -L` lands on the gate.
	if want := fmt.Sprintf("https://localhost:%d%s", httpsPort, d.path); resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("plain HTTP: %d, Location %q; want a 308 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

// waitCertificate waits (at most 30 s) until a TLS handshake with the
// server on port succeeds under cfg: Caddy issues its certificates in
// the background once a config is loaded.
func waitCertificate(t *testing.T, port int, cfg *tls.Config) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := tls.Dial("tcp", fmt.Sprintf("localhost:%d", port), cfg)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate on port %d after 30s: %v", port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
