package caddywebhookauth_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webhookauth/caddy-webhookauth/internal/keyserver"
)

// allow_ips through a real Caddy, with a local HTTPS server standing in
// for GitHub's meta API: a request from outside the list is refused 403
// before any body byte is read; a refresh that adds the address lets
// deliveries through; a refresh that fails, or comes back empty, keeps
// the last good list; a provider whose list was never obtained is 503
// ip_ranges_unavailable; fixed ranges work alone and beside the list.
func TestAllowIPsThroughCaddy(t *testing.T) {
	ks := keyserver.Start(t, fixtureDir)
	ks.SetBody("/meta", []byte(`{"hooks":["192.0.2.0/24","198.51.100.0/24"]}`))
	be := newBackend(t)
	const secret = "allow-ips-secret-0123456789"
	globals := fmt.Sprintf(`
		webhook {
			ip_ranges {
				refresh 1s
				url github %s/meta
				url stripe %s/missing
				root_ca %s
			}
		}`, ks.URL, ks.URL, ks.RootFile)
	sites := fmt.Sprintf(`:9080 {
		route /published {
			webhook_auth github {
				secret %[1]s
				allow_ips published
			}
			reverse_proxy %[2]s
		}
		route /fixed-out {
			webhook_auth github {
				secret %[1]s
				allow_ips 10.0.0.0/8
			}
			reverse_proxy %[2]s
		}
		route /fixed-in {
			webhook_auth github {
				secret %[1]s
				allow_ips published 127.0.0.1
			}
			reverse_proxy %[2]s
		}
		route /never {
			webhook_auth stripe {
				secret whsec_%[1]s
				allow_ips published
			}
			reverse_proxy %[2]s
		}
	}`, secret, be.URL)
	tester := newTester(t)
	tester.InitServer(caddyConfig(globals, sites), "caddyfile")

	deliver := func(path string) (int, string) {
		t.Helper()
		req := signedRequest(t, "github", secret, base+path, []byte(`{"zen":"keep it logically awesome"}`), time.Now())
		resp, body := doRequest(t, req)
		return resp.StatusCode, body
	}
	if code, body := deliver("/published"); code != 403 || !strings.Contains(body, "source_ip_refused") {
		t.Fatalf("from outside the published list: %d %s", code, body)
	}
	if code, body := deliver("/fixed-out"); code != 403 || !strings.Contains(body, "source_ip_refused") {
		t.Fatalf("from outside a fixed range: %d %s", code, body)
	}
	if code, body := deliver("/fixed-in"); code != 200 {
		t.Fatalf("from a fixed address beside the list: %d %s", code, body)
	}
	if n := len(be.take()); n != 1 {
		t.Fatalf("the backend got %d requests, want the one admitted", n)
	}

	// Refused before the body is read: headers announce 1 MB, none of it
	// is sent, and the answer comes anyway, closing the connection.
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /published HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Hub-Signature-256: sha256=00\r\nContent-Length: 1000000\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer before the body: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 403 || !resp.Close {
		t.Fatalf("before the body: %d, close %v", resp.StatusCode, resp.Close)
	}

	// The provider's list now holds loopback: a refresh picks it up.
	ks.SetBody("/meta", []byte(`{"hooks":["127.0.0.0/8","192.0.2.0/24"]}`))
	waitUntil(t, 10*time.Second, "the refreshed list", func() bool { code, _ := deliver("/published"); return code == 200 })

	// A refresh that comes back empty, then one that fails: the last
	// good list stays in force.
	ks.SetBody("/meta", []byte(`{"hooks":[]}`))
	before := ks.Count("/meta")
	waitUntil(t, 10*time.Second, "two more refreshes", func() bool { return ks.Count("/meta") >= before+2 })
	if code, body := deliver("/published"); code != 200 {
		t.Fatalf("after an empty refresh: %d %s", code, body)
	}
	ks.SetDown(true)
	before = ks.Count("/meta")
	waitUntil(t, 10*time.Second, "two failed refreshes", func() bool { return ks.Count("/meta") >= before+2 })
	if code, body := deliver("/published"); code != 200 {
		t.Fatalf("with the list's server down: %d %s", code, body)
	}
	ks.SetDown(false)

	// Never obtained (the server answers 404): fail closed.
	req := signedRequest(t, "stripe", "whsec_"+secret, base+"/never", []byte(`{"id":"evt_1","type":"x"}`), time.Now())
	resp2, body := doRequest(t, req)
	if resp2.StatusCode != 503 || !strings.Contains(body, "ip_ranges_unavailable") || resp2.Header.Get("Retry-After") == "" {
		t.Fatalf("no list ever obtained: %d %s", resp2.StatusCode, body)
	}
	if ks.Count("/missing") == 0 {
		t.Fatal("the stripe list was never asked for")
	}
}

// caddy webhook ips prints a provider's list as the gate fetches it
// (here from a local HTTPS server standing in for GitHub's meta API), a
// documented list as documented, and refuses a provider without one, an
// empty list, and a list over plain HTTP.
func TestIPsCommand(t *testing.T) {
	ks := keyserver.Start(t, fixtureDir)
	ks.SetBody("/meta", []byte(`{"hooks":["192.0.2.0/24","2001:db8::/48"],"web":["203.0.113.0/24"]}`))
	stdout, stderr, code := runCLI(t, nil, nil, "webhook", "ips", "github", "--url", ks.URL+"/meta", "--root-ca", ks.RootFile)
	if code != 0 || !strings.Contains(stdout, "\n192.0.2.0/24\n2001:db8::/48\n") || strings.Contains(stdout, "203.0.113.0/24") {
		t.Fatalf("github: %d %q %s", code, stdout, stderr)
	}
	if stdout, _, code := runCLI(t, nil, nil, "webhook", "ips", "gitlab"); code != 0 || !strings.Contains(stdout, "34.74.90.64/28") {
		t.Fatalf("gitlab: %d %q", code, stdout)
	}
	ks.SetBody("/empty", []byte(`{"hooks":[]}`))
	for _, args := range [][]string{
		{"webhook", "ips", "slack"},
		{"webhook", "ips", "github", "--url", ks.URL + "/empty", "--root-ca", ks.RootFile},
		{"webhook", "ips", "github", "--url", strings.Replace(ks.URL, "https://", "http://", 1) + "/meta"},
	} {
		if _, stderr, code := runCLI(t, nil, nil, args...); code == 0 || !strings.Contains(stderr, `"level":"error"`) {
			t.Errorf("%v: exit %d, %s", args, code, stderr)
		}
	}
}

// http.ip_sources.webhook_provider serves a provider's list to Caddy's
// trusted_proxies: with loopback in the list, a request from loopback
// carrying X-Forwarded-For is taken to come from the forwarded address,
// which a fixed allow_ips admits; without it in the list, it is not.
func TestProviderIPSourceAsTrustedProxies(t *testing.T) {
	ks := keyserver.Start(t, fixtureDir)
	ks.SetBody("/meta", []byte(`{"hooks":["127.0.0.0/8"]}`))
	be := newBackend(t)
	const secret = "ip-source-secret-0123456789"
	globals := fmt.Sprintf(`
		servers {
			trusted_proxies webhook_provider github
			client_ip_headers X-Forwarded-For
		}
		webhook {
			ip_ranges {
				refresh 1s
				url github %s/meta
				root_ca %s
			}
		}`, ks.URL, ks.RootFile)
	sites := fmt.Sprintf(`:9080 {
		route /behind {
			webhook_auth github {
				secret %s
				allow_ips 203.0.113.5
			}
			reverse_proxy %s
		}
	}`, secret, be.URL)
	tester := newTester(t)
	tester.InitServer(caddyConfig(globals, sites), "caddyfile")
	send := func() int {
		req := signedRequest(t, "github", secret, base+"/behind", []byte(`{"a":1}`), time.Now())
		req.Header.Set("X-Forwarded-For", "203.0.113.5")
		resp, _ := doRequest(t, req)
		return resp.StatusCode
	}
	if code := send(); code != 200 {
		t.Fatalf("through a trusted proxy: %d", code)
	}
	ks.SetBody("/meta", []byte(`{"hooks":["192.0.2.0/24"]}`))
	waitUntil(t, 10*time.Second, "loopback to be trusted no more", func() bool { return send() == 403 })
}

// A Caddy process restarted while the provider's list cannot be fetched
// still has the last good list: it was kept in Caddy's storage.
func TestAllowIPsRestartWithListDown(t *testing.T) {
	ks := keyserver.Start(t, fixtureDir)
	ks.SetBody("/meta", []byte(`{"hooks":["127.0.0.0/8"]}`))
	be := newBackend(t)
	bin, err := buildCaddy()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port, admin := freePort(t), freePort(t)
	const secret = "restart-secret-0123456789"
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	storage file_system %s/data
	webhook {
		ip_ranges {
			url github %s/meta
			root_ca %s
		}
	}
}
:%d {
	webhook_auth github {
		secret %s
		allow_ips published
	}
	reverse_proxy %s
}
`, admin, port, dir, ks.URL, ks.RootFile, port, secret, be.URL)
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	send := func() int {
		req := signedRequest(t, "github", secret, url, []byte(`{"a":1}`), time.Now())
		resp, _ := doRequest(t, req)
		return resp.StatusCode
	}
	cmd := startCaddyProcess(t, bin, file, dir, admin, &logs)
	if code := send(); code != 200 {
		t.Fatalf("first run: %d\n%s", code, logs.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()

	ks.SetDown(true)
	fetches := ks.Count("/meta")
	cmd = startCaddyProcess(t, bin, file, dir, admin, &logs)
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	if code := send(); code != 200 {
		t.Fatalf("restarted with the list's server down: %d\n%s", code, logs.String())
	}
	if ks.Count("/meta") == fetches {
		t.Fatal("the restarted server did not try to fetch the list")
	}
}

// The lists read by JSON path, through a real Caddy: Sentry's (every
// region of outbound_requests) and Clerk's (Svix's, every region), from
// a local HTTPS server in their documented shapes; a refresh that drops
// the member read keeps the last good list. A documented static list
// (Paddle's) refuses loopback without fetching anything.
func TestAllowIPsJSONPathsThroughCaddy(t *testing.T) {
	ks := keyserver.Start(t, fixtureDir)
	ks.SetBody("/sentry", []byte(`{"data":{"dashboard":{"sentry_io":["127.0.0.1/32"]},"outbound_requests":{"us":["192.0.2.1/32"],"eu":["198.51.100.7/32"]}}}`))
	ks.SetBody("/svix", []byte(`{"us":["44.228.126.217","2600:1f24:64:8000::/56"],"eu":["127.0.0.1"]}`))
	be := newBackend(t)
	const secret = "json-paths-secret-0123456789"
	globals := fmt.Sprintf(`
		webhook {
			ip_ranges {
				refresh 1s
				url sentry %s/sentry
				url clerk %s/svix
				root_ca %s
			}
		}`, ks.URL, ks.URL, ks.RootFile)
	sites := fmt.Sprintf(`:9080 {
		route /sentry {
			webhook_auth sentry {
				secret %[1]s
				allow_ips published
			}
			reverse_proxy %[2]s
		}
		route /clerk {
			webhook_auth clerk {
				secret whsec_c2VjcmV0LW9uZS1mb3ItdGhlLXRlc3RzLTAxMjM0NQ==
				allow_ips published
			}
			reverse_proxy %[2]s
		}
		route /paddle {
			webhook_auth paddle {
				secret %[1]s
				allow_ips published
			}
			reverse_proxy %[2]s
		}
	}`, secret, be.URL)
	tester := newTester(t)
	tester.InitServer(caddyConfig(globals, sites), "caddyfile")

	body := []byte(`{"id":"evt_1","type":"ping"}`)
	send := func(provider, key, path string) (int, string) {
		t.Helper()
		resp, out := doRequest(t, signedRequest(t, provider, key, base+path, body, time.Now()))
		return resp.StatusCode, out
	}
	// Sentry's dashboard range holds loopback, its outbound ones do not.
	if code, out := send("sentry", secret, "/sentry"); code != 403 || !strings.Contains(out, "source_ip_refused") {
		t.Fatalf("sentry, loopback outside outbound_requests: %d %s", code, out)
	}
	// Svix's eu region holds loopback.
	if code, out := send("clerk", "whsec_c2VjcmV0LW9uZS1mb3ItdGhlLXRlc3RzLTAxMjM0NQ==", "/clerk"); code != 200 {
		t.Fatalf("clerk, loopback in Svix's eu list: %d %s", code, out)
	}
	if code, out := send("paddle", secret, "/paddle"); code != 403 || !strings.Contains(out, "source_ip_refused") {
		t.Fatalf("paddle's documented list: %d %s", code, out)
	}
	// Sentry adds loopback to an outbound region: picked up.
	ks.SetBody("/sentry", []byte(`{"data":{"outbound_requests":{"us":["192.0.2.1/32"],"eu":["198.51.100.7/32"],"de":["127.0.0.0/8"]}}}`))
	waitUntil(t, 10*time.Second, "sentry's refreshed list", func() bool { code, _ := send("sentry", secret, "/sentry"); return code == 200 })
	// The document changes shape: the list in force stays.
	ks.SetBody("/sentry", []byte(`{"data":{"outbound":["10.0.0.0/8"]}}`))
	before := ks.Count("/sentry")
	waitUntil(t, 10*time.Second, "two more refreshes", func() bool { return ks.Count("/sentry") >= before+2 })
	if code, out := send("sentry", secret, "/sentry"); code != 200 {
		t.Fatalf("after a refresh of another shape: %d %s", code, out)
	}
	if got := be.take(); len(got) != 3 {
		t.Fatalf("the backend got %d deliveries, want 3", len(got))
	}
}
