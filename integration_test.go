package caddywebhookauth_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/webhookauth/caddy-webhookauth"
	"github.com/webhookauth/caddy-webhookauth/internal/keyserver"
	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// recordingBackend is a real HTTP server that records every request it gets.
type recordingBackend struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
}

type received struct {
	path    string
	body    []byte
	cl      int64
	header  http.Header
	te      []string
	trailer http.Header
}

func newBackend(t *testing.T) *recordingBackend {
	b := &recordingBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(500)
			return
		}
		b.mu.Lock()
		b.reqs = append(b.reqs, received{r.URL.Path, body, r.ContentLength, r.Header.Clone(), r.TransferEncoding, r.Trailer.Clone()})
		b.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "backend got %d bytes", len(body))
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *recordingBackend) take() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.reqs
	b.reqs = nil
	return r
}

// signedRequest builds a delivery as the provider would send it.
func signedRequest(t *testing.T, provider, secret, url string, body []byte, ts time.Time) *http.Request {
	t.Helper()
	p, err := webhookauth.LookupPreset(provider)
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.Scheme.Compile()
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.SignHeaders(secret, webhookauth.Delivery{Body: body, ID: fmt.Sprintf("msg_%d", ts.UnixNano()), Timestamp: ts})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	return req
}

// caddyConfig is a Caddyfile for caddytest: the global options every
// test needs (admin, HTTP and HTTPS on the free ports TestMain picked),
// the extra global options given, then the sites. Sites are written as
// ":9080 {" and get the HTTP port.
func caddyConfig(globals, sites string) string {
	return fmt.Sprintf(`
	{
		skip_install_trust
		admin localhost:%d
		http_port %d
		https_port %d
		grace_period 1ns
`, adminPort, httpPort, httpsPort) + globals + `
	}
` + strings.ReplaceAll(sites, ":9080 {", fmt.Sprintf(":%d {", httpPort))
}

// The ports of the in-process Caddy that caddytest runs, picked free when
// the tests start: Caddy listens with SO_REUSEPORT, so a fixed port shared
// with another Caddy on the machine would silently split the traffic.
var (
	httpPort, httpsPort, adminPort int
	base, adminURL                 string
)

func TestMain(m *testing.M) {
	// Hold all three open while picking so they differ, then free them.
	ports := make([]int, 3)
	var ls []net.Listener
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	httpPort, httpsPort, adminPort = ports[0], ports[1], ports[2]
	base = fmt.Sprintf("http://localhost:%d", httpPort)
	adminURL = fmt.Sprintf("http://localhost:%d", adminPort)
	caddytest.Default.AdminPort = adminPort
	os.Exit(m.Run())
}

// newTester is caddytest's tester on this run's admin port.
func newTester(t *testing.T) *caddytest.Tester {
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
}

const (
	githubSecret = "integration-github-secret-7f3a"
	stripeSecret = "whsec_integrationStripeSecret91"
)

func TestThroughRealCaddy(t *testing.T) {
	be := newBackend(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	t.Setenv("WEBHOOKAUTH_IT_GITHUB", githubSecret)
	t.Setenv("WEBHOOKAUTH_IT_STRIPE", stripeSecret)

	tester := newTester(t)
	tester.InitServer(caddyConfig(fmt.Sprintf(`
		log {
			output file %s
			format json
			level DEBUG
		}`, logFile), fmt.Sprintf(`
	:9080 {
		log {
			output file %s
			format json
		}
		route /github {
			webhook_auth github {
				secret {env.WEBHOOKAUTH_IT_GITHUB}
				max_body 64KiB
			}
			reverse_proxy %s
		}
		route /stripe {
			webhook_auth stripe {
				secret {env.WEBHOOKAUTH_IT_STRIPE}
			}
			reverse_proxy %s
		}
		route /errors {
			webhook_auth github {
				secret {env.WEBHOOKAUTH_IT_GITHUB}
				on_reject error
			}
			reverse_proxy %s
		}
		handle_errors {
			respond "custom error page: {http.error.status_code} {http.webhook.result}"
		}
	}
	`, logFile, be.URL, be.URL, be.URL)), "caddyfile")

	binary := make([]byte, 48<<10)
	for i := range binary {
		binary[i] = byte(i*31 + i>>8)
	}
	bodies := map[string][]byte{
		"json":   []byte(`{"action":"opened","number":42,"pull_request":{"title":"Fix \u00e9 and \"quotes\""}}` + "\n"),
		"form":   []byte("payload=%7B%22a%22%3A1%7D&token=xyz&text=hello+world"),
		"binary": binary,
	}
	now := time.Now()
	for kind, body := range bodies {
		for _, chunked := range []bool{false, true} {
			req := signedRequest(t, "github", githubSecret, base+"/github", body, now)
			if chunked {
				// An io.Reader of unknown length makes the client send
				// Transfer-Encoding: chunked.
				req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body)))
				req.ContentLength = -1
			}
			resp := tester.AssertResponseCode(req, http.StatusOK)
			resp.Body.Close()
			got := be.take()
			if len(got) != 1 {
				t.Fatalf("%s chunked=%v: backend got %d requests", kind, chunked, len(got))
			}
			if !bytes.Equal(got[0].body, body) {
				t.Fatalf("%s chunked=%v: body altered on the way (%d bytes in, %d out)", kind, chunked, len(body), len(got[0].body))
			}
			if got[0].cl != int64(len(body)) {
				t.Fatalf("%s chunked=%v: backend saw Content-Length %d, want %d", kind, chunked, got[0].cl, len(body))
			}
		}
	}

	stripeBody := []byte(`{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"payment_intent.succeeded"}`)
	resp := tester.AssertResponseCode(signedRequest(t, "stripe", stripeSecret, base+"/stripe", stripeBody, now), 200)
	resp.Body.Close()
	if got := be.take(); len(got) != 1 || !bytes.Equal(got[0].body, stripeBody) {
		t.Fatalf("stripe delivery not forwarded exactly: %+v", got)
	}

	// Rejections: status, reason, and never the backend.
	tampered := signedRequest(t, "github", githubSecret, base+"/github", bodies["json"], now)
	tampered.Body = io.NopCloser(strings.NewReader(`{"action":"closed"}`))
	tampered.ContentLength = int64(len(`{"action":"closed"}`))
	assertProblem(t, tester, tampered, 401, "signature_invalid")

	stale := signedRequest(t, "stripe", stripeSecret, base+"/stripe", stripeBody, now.Add(-10*time.Minute))
	assertProblem(t, tester, stale, 401, "timestamp_out_of_window")

	big := bytes.Repeat([]byte("a"), 65<<10)
	tooBig := signedRequest(t, "github", githubSecret, base+"/github", big, now)
	assertProblem(t, tester, tooBig, 413, "body_too_large")
	tooBigChunked := signedRequest(t, "github", githubSecret, base+"/github", big, now)
	tooBigChunked.Body, tooBigChunked.ContentLength = io.NopCloser(io.MultiReader(bytes.NewReader(big))), -1
	assertProblem(t, tester, tooBigChunked, 413, "body_too_large")

	get, _ := http.NewRequest(http.MethodGet, base+"/github", nil)
	if resp := assertProblem(t, tester, get, 405, "method_not_allowed"); resp.Header.Get("Allow") != "POST" {
		t.Fatalf("Allow = %q", resp.Header.Get("Allow"))
	}

	// on_reject error hands the rejection to handle_errors.
	noSig, _ := http.NewRequest(http.MethodPost, base+"/errors", strings.NewReader("{}"))
	tester.AssertResponse(noSig, 401, "custom error page: 401 signature_missing")

	if got := be.take(); len(got) != 0 {
		t.Fatalf("%d rejected requests reached the backend", len(got))
	}

	// Nothing secret in the logs: no secret, no signature, no body.
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(logs, []byte(`"reason":"signature_invalid"`)) {
		t.Fatalf("no rejection log line in %d bytes of logs", len(logs))
	}
	// The signature the sender sent is in Caddy's access log (it logs
	// request headers; the README shows how to filter them). The signature
	// the server expected for the tampered body never is.
	expected := signedRequest(t, "github", githubSecret, "http://x/", []byte(`{"action":"closed"}`), now).Header.Get("X-Hub-Signature-256")
	for _, leak := range []string{githubSecret, stripeSecret, "integration-github", `"action":"closed"`, "payment_intent", strings.TrimPrefix(expected, "sha256=")} {
		if bytes.Contains(logs, []byte(leak)) {
			t.Errorf("the log contains %q", leak)
		}
	}
}

// assertProblem sends req, checks the problem+json answer and returns the
// response.
func assertProblem(t *testing.T, tester *caddytest.Tester, req *http.Request, status int, reason string) *http.Response {
	t.Helper()
	resp := tester.AssertResponseCode(req, status)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var p struct {
		Status int    `json:"status"`
		Reason string `json:"reason"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(raw, &p); err != nil || p.Reason != reason || p.Status != status || p.Detail == "" {
		t.Fatalf("want %d %s, got %s (%v)", status, reason, raw, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q", ct)
	}
	for _, s := range []string{githubSecret, stripeSecret} {
		if bytes.Contains(raw, []byte(s)) {
			t.Fatal("the response contains a secret")
		}
	}
	return resp
}

// request sends one request to the Caddy under test and returns its response
// (body already read and closed) and body. Header values are set as
// given.
func request(t *testing.T, method, target, body string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

// keyServerGlobals points the webhook app's key source at a local key
// server: its host for every fetched-key sender, its CA, its key set.
func keyServerGlobals(ks *keyserver.Server) string {
	return fmt.Sprintf(`
		webhook {
			keys {
				hosts sns %[1]s
				hosts paypal %[1]s
				hosts pubsub %[1]s
				root_ca %[2]s
				jwks_url %[3]s/certs
			}
		}`, ks.Host, ks.RootFile, ks.URL)
}
