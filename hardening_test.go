package caddywebhookauth_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookauth/caddy-webhookauth/internal/redistest"
	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// rawRequest opens a connection to the test Caddy and writes head and
// body as given.
func rawRequest(t *testing.T, head, body string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, head+body); err != nil {
		t.Fatal(err)
	}
	return c
}

// memoryInUse is this process's resident set and Go heap in use, in
// bytes: caddytest runs Caddy inside the test process.
func memoryInUse(t *testing.T) (rss, heap uint64) {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			rss = kb << 10
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return rss, ms.HeapInuse
}

// Defect 1: 60 connections that declare 10 MB and send one byte must not
// make the gate hold anything like 60 × 10 MB; a body that stops
// arriving is answered 408 body_timeout.
func TestBodyMemoryAndDeadlineThroughCaddy(t *testing.T) {
	be := newBackend(t)
	tester := newTester(t)
	tester.InitServer(caddyConfig("", fmt.Sprintf(`
	:9080 {
		route /mem {
			webhook_auth github {
				secret integration-github-secret-7f3a
				read_timeout 2m
			}
			reverse_proxy %s
		}
		route /slow {
			webhook_auth github {
				secret integration-github-secret-7f3a
				read_timeout 1s
			}
			reverse_proxy %s
		}
	}
	`, be.URL, be.URL)), "caddyfile")

	runtime.GC()
	rss0, heap0 := memoryInUse(t)
	fake := "sha256=" + strings.Repeat("ab", 32)
	head := "POST /mem HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000000\r\nX-Hub-Signature-256: " + fake + "\r\n\r\n"
	var conns []net.Conn
	for range 60 {
		conns = append(conns, rawRequest(t, head, "x"))
	}
	// Sample for two seconds: the old reader allocated the declared size
	// as soon as a request reached it, so the peak shows within that time.
	var rssPeak, heapPeak uint64
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		rss, heap := memoryInUse(t)
		rssPeak, heapPeak = max(rssPeak, rss), max(heapPeak, heap)
	}
	for _, c := range conns {
		c.Close()
	}
	const bound = 150 << 20
	t.Logf("60 connections declaring 10 MB: RSS +%d MiB, heap in use +%d MiB", (rssPeak-min(rss0, rssPeak))>>20, (heapPeak-min(heap0, heapPeak))>>20)
	if rssPeak > rss0+bound || heapPeak > heap0+bound {
		t.Fatalf("60 connections declaring 10 MB raised RSS from %d to %d MiB and heap from %d to %d MiB (bound +150 MiB)",
			rss0>>20, rssPeak>>20, heap0>>20, heapPeak>>20)
	}

	// A body that stops arriving: 408 with a stable reason, connection
	// closed, nothing forwarded.
	c := rawRequest(t, "POST /slow HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\nX-Hub-Signature-256: "+fake+"\r\n\r\n", "0123456789")
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(out), `"reason":"body_timeout"`) || !resp.Close {
		t.Fatalf("slow body: %d close=%v %s", resp.StatusCode, resp.Close, out)
	}
	if n := len(be.take()); n != 0 {
		t.Fatalf("%d requests reached the backend", n)
	}
	// The gate still serves real deliveries.
	resp2 := tester.AssertResponseCode(signedRequest(t, "github", githubSecret, base+"/mem", []byte(`{"ok":1}`), time.Now()), 200)
	resp2.Body.Close()
}

// Defects 2, 4, 5, 6, 8 and 9 through a real Caddy in front of a real
// backend, with dedup on a real Redis.
func TestHardeningThroughCaddyAndRedis(t *testing.T) {
	rs := redistest.Start(t)
	be := newBackend(t)
	dir := t.TempDir()
	accessLog, debugLog := filepath.Join(dir, "access.log"), filepath.Join(dir, "debug.log")
	const token = "gitlab-token-never-logged-5d1c"
	const genericSecret = "generic-signing-secret-31c0"
	t.Setenv("HARDEN_GITLAB_TOKEN", token)
	tester := newTester(t)
	tester.InitServer(caddyConfig(fmt.Sprintf(`
		log {
			output file %s
			format json
			level DEBUG
		}
		webhook {
			redis {
				address redis://%s/0
				key_prefix harden:
			}
		}`, debugLog, rs.Addr), fmt.Sprintf(`
	:9080 {
		log {
			output file %s
			format filter {
				request>headers>X-Gitlab-Token delete
				wrap json
			}
		}
		route /gitlab {
			webhook_auth gitlab {
				secret {env.HARDEN_GITLAB_TOKEN}
				dedup
				store redis
			}
			reverse_proxy %s
		}
		route /a {
			webhook_auth github {
				secret sender-a-secret-0123456
				dedup
				store redis
			}
			reverse_proxy %s
		}
		route /b {
			webhook_auth github {
				secret sender-b-secret-0123456
				dedup
				store redis
			}
			reverse_proxy %s
		}
		route /generic {
			webhook_auth {
				secret %s
				signature_header X-Sig
				signed_payload "{header.X-Event}.{body}"
			}
			reverse_proxy %s
		}
		route /report {
			webhook_auth standard {
				secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
				mode report
			}
			reverse_proxy %s {
				header_up X-Webhook-Id "{http.webhook.id}"
			}
		}
	}
	`, accessLog, be.URL, be.URL, be.URL, genericSecret, be.URL, be.URL)), "caddyfile")
	client := &http.Client{Timeout: 10 * time.Second}
	do := func(req *http.Request) (int, string) {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}

	// 2 and 8: GitLab deliveries without Idempotency-Key are all
	// forwarded, none absorbed; the token reaches neither the backend,
	// the answers, Redis, nor the logs.
	var answers strings.Builder
	for i, body := range []string{`{"object_kind":"push"}`, `{"object_kind":"issue"}`, `{"object_kind":"push"}`} {
		req := signedRequest(t, "gitlab", token, base+"/gitlab", []byte(body), time.Now())
		req.Header.Del("Idempotency-Key")
		code, out := do(req)
		answers.WriteString(out)
		if code != 200 || strings.Contains(out, "duplicate") {
			t.Fatalf("gitlab delivery %d: %d %s", i, code, out)
		}
	}
	got := be.take()
	if len(got) != 3 {
		t.Fatalf("%d of 3 GitLab deliveries reached the backend", len(got))
	}
	for _, r := range got {
		if r.header.Get("X-Gitlab-Token") != "" {
			t.Fatal("the backend received the GitLab token")
		}
	}
	if strings.Contains(answers.String(), token) {
		t.Fatal("the token is in an answer")
	}

	// 4: one delivery id on two routes with different secrets: both are
	// delivered (each handler has its own dedup scope); a copy on the
	// same route is absorbed.
	id := fmt.Sprintf("seq-%d", time.Now().UnixNano())
	for _, route := range []struct{ path, secret string }{{"/a", "sender-a-secret-0123456"}, {"/b", "sender-b-secret-0123456"}} {
		req := signedRequest(t, "github", route.secret, base+route.path, []byte(`{"n":1}`), time.Now())
		req.Header.Set("X-GitHub-Delivery", id)
		if code, out := do(req); code != 200 || strings.Contains(out, "duplicate") {
			t.Fatalf("%s: %d %s", route.path, code, out)
		}
	}
	req := signedRequest(t, "github", "sender-a-secret-0123456", base+"/a", []byte(`{"n":1}`), time.Now())
	req.Header.Set("X-GitHub-Delivery", id)
	if code, out := do(req); code != 200 || !strings.Contains(out, `"status":"duplicate"`) {
		t.Fatalf("copy on /a: %d %s", code, out)
	}
	if n := len(be.take()); n != 2 {
		t.Fatalf("%d deliveries reached the backend, want 2", n)
	}

	// 3: without a delivery id, a copy with the signature upper-cased is
	// still a copy.
	body := []byte(fmt.Sprintf(`{"no_id":%d}`, time.Now().UnixNano()))
	req = signedRequest(t, "github", "sender-a-secret-0123456", base+"/a", body, time.Now())
	req.Header.Del("X-GitHub-Delivery")
	sig := req.Header.Get("X-Hub-Signature-256")
	if code, _ := do(req); code != 200 {
		t.Fatal("delivery without id refused")
	}
	req = signedRequest(t, "github", "sender-a-secret-0123456", base+"/a", body, time.Now())
	req.Header.Del("X-GitHub-Delivery")
	req.Header.Set("X-Hub-Signature-256", "sha256="+strings.ToUpper(sig[len("sha256="):]))
	if code, out := do(req); code != 200 || out != "{\"status\":\"duplicate\"}\n" {
		t.Fatalf("re-encoded copy: %d %q", code, out)
	}
	if n := len(be.take()); n != 1 {
		t.Fatalf("%d deliveries reached the backend, want 1", n)
	}

	// 9: an id over the limit is refused before it is stored.
	req = signedRequest(t, "github", "sender-a-secret-0123456", base+"/a", []byte(`{}`), time.Now())
	req.Header.Set("X-GitHub-Delivery", strings.Repeat("r", 16<<10))
	if code, out := do(req); code != 400 || !strings.Contains(out, `"reason":"delivery_id_invalid"`) {
		t.Fatalf("16 KB id: %d %s", code, out)
	}
	// Every dedup key in Redis is a fixed-size digest: no id, no token.
	keys, err := rs.Client().Keys(context.Background(), "harden:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 3 {
		t.Fatalf("only %d dedup keys in Redis", len(keys))
	}
	for _, k := range keys {
		if len(k) > len("harden:")+40 || strings.Contains(k, token) || strings.Contains(k, id) || strings.Contains(k, "rrrr") {
			t.Fatalf("Redis key %q holds more than a digest", k)
		}
	}

	// 5: a header the signature covers, sent twice.
	sign := func(event string, b []byte) *http.Request {
		p, _ := webhookauth.LookupPreset("github")
		cfg := p.Scheme
		cfg.SignatureHeader, cfg.SignedPayload = "X-Sig", "{header.X-Event}.{body}"
		cfg.SignaturePrefix = new(string)
		s, err := cfg.Compile()
		if err != nil {
			t.Fatal(err)
		}
		h, err := s.SignHeaders(genericSecret, webhookauth.Delivery{Body: b, Header: http.Header{"X-Event": {event}}})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, base+"/generic", strings.NewReader(string(b)))
		req.Header.Set("X-Sig", h.Get("X-Sig"))
		req.Header.Set("X-Event", event)
		return req
	}
	if code, out := do(sign("push", []byte(`{}`))); code != 200 {
		t.Fatalf("generic signed delivery: %d %s", code, out)
	}
	req = sign("push", []byte(`{}`))
	req.Header.Add("X-Event", "delete")
	if code, out := do(req); code != 401 || !strings.Contains(out, `"reason":"signature_malformed"`) {
		t.Fatalf("repeated signed header: %d %s", code, out)
	}
	if n := len(be.take()); n != 1 {
		t.Fatalf("%d generic deliveries reached the backend, want 1", n)
	}

	// 6: in report mode, a request without a signature right after a
	// signed one carries no id of the earlier delivery.
	for i := 0; i < 20; i++ {
		do(signedRequest(t, "standard", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", base+"/report", []byte(`{}`), time.Now()))
		req, _ = http.NewRequest(http.MethodPost, base+"/report", strings.NewReader(`{}`))
		do(req)
	}
	for i, r := range be.take() {
		// An unset placeholder stays as written in header_up.
		if want := i%2 == 0; strings.HasPrefix(r.header.Get("X-Webhook-Id"), "msg_") != want {
			t.Fatalf("report-mode request %d: X-Webhook-Id %q", i, r.header.Get("X-Webhook-Id"))
		}
	}

	// 8: neither the filtered access log nor Caddy's DEBUG lines
	// (reverse_proxy's included) hold the token.
	for _, f := range []string{accessLog, debugLog} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) == 0 {
			t.Fatalf("%s is empty", f)
		}
		if strings.Contains(string(raw), token) {
			t.Fatalf("%s holds the GitLab token", filepath.Base(f))
		}
	}
}

// Defect 7: a secret that is blank or has a placeholder that resolves
// empty does not load, and the error names the placeholder, not a value.
func TestWeakSecretsRefusedThroughCaddy(t *testing.T) {
	tester := newTester(t)
	tester.InitServer(caddyConfig("", `
	:9080 {
		respond "ok"
	}
	`), "caddyfile")
	for _, secret := range []string{`"   "`, `"prefix-{env.HARDEN_UNSET_VAR}"`} {
		cfg := caddyConfig("", fmt.Sprintf(`
	:9080 {
		webhook_auth github {
			secret %s
		}
		respond "ok"
	}
	`, secret))
		resp, err := http.Post(adminURL+"/load", "text/caddyfile", strings.NewReader(cfg))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || !strings.Contains(string(out), "secret 0") || strings.Contains(string(out), "prefix-") {
			t.Fatalf("secret %s: %d %s", secret, resp.StatusCode, out)
		}
	}
}

// A config reload that points the redis block at another server gets a
// new client: dedup state goes to the new server.
func TestRedisReloadChangesTheServer(t *testing.T) {
	first, second := redistest.Start(t), redistest.Start(t)
	be := newBackend(t)
	load := func(addr string) {
		tester := newTester(t)
		tester.InitServer(caddyConfig(fmt.Sprintf(`
		webhook {
			redis {
				address redis://%s/0
			}
		}`, addr), fmt.Sprintf(`
	:9080 {
		webhook_auth github {
			secret integration-github-secret-7f3a
			dedup
			store redis
		}
		reverse_proxy %s
	}
	`, be.URL)), "caddyfile")
	}
	count := func(s *redistest.Server) int {
		n, err := s.Client().DBSize(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		return int(n)
	}
	for i, s := range []*redistest.Server{first, second} {
		load(s.Addr)
		req := signedRequest(t, "github", githubSecret, base+"/", []byte(`{}`), time.Now())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || count(s) != 1 {
			t.Fatalf("config %d: status %d, %d keys on its Redis", i, resp.StatusCode, count(s))
		}
	}
	if count(first) != 1 {
		t.Fatalf("the first Redis got %d keys after the reload", count(first))
	}
	be.take()
}

// A chunked delivery is forwarded with a Content-Length, unless it
// carries trailers: then it goes on chunked, trailers and all, as the
// README says.
func TestChunkedWithTrailersThroughCaddy(t *testing.T) {
	be := newBackend(t)
	tester := newTester(t)
	tester.InitServer(caddyConfig("", fmt.Sprintf(`
	:9080 {
		webhook_auth github {
			secret integration-github-secret-7f3a
		}
		reverse_proxy %s
	}
	`, be.URL)), "caddyfile")
	body := `{"chunked":true}`
	sig := signedRequest(t, "github", githubSecret, base, []byte(body), time.Now()).Header.Get("X-Hub-Signature-256")
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n", len(body), body)
	for _, c := range []struct {
		name, trailerHead, trailers string
		wantCL                      bool
	}{
		{"no trailers", "", "\r\n", true},
		{"trailers", "Trailer: X-Checksum\r\n", "X-Checksum: abc\r\n\r\n", false},
	} {
		conn := rawRequest(t, "POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"+c.trailerHead+
			"X-Hub-Signature-256: "+sig+"\r\n\r\n", chunked+c.trailers)
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		conn.Close()
		got := be.take()
		if resp.StatusCode != 200 || len(got) != 1 || string(got[0].body) != body {
			t.Fatalf("%s: %d, %d requests", c.name, resp.StatusCode, len(got))
		}
		if hasCL := got[0].cl == int64(len(body)); hasCL != c.wantCL {
			t.Fatalf("%s: Content-Length %d, transfer encoding %v", c.name, got[0].cl, got[0].te)
		}
		if !c.wantCL && got[0].trailer.Get("X-Checksum") != "abc" {
			t.Fatalf("%s: trailers %v", c.name, got[0].trailer)
		}
	}
}

// {url} is the URL the sender addressed, also when the request target is
// in absolute form (POST http://host/path HTTP/1.1), where it used to read
// "http://hosthttp://host/path".
func TestURLSigningAbsoluteFormThroughCaddy(t *testing.T) {
	be := newBackend(t)
	tester := newTester(t)
	const secret = "url-signing-secret-0123456"
	tester.InitServer(caddyConfig("", fmt.Sprintf(`
	:9080 {
		webhook_auth {
			secret %s
			signature_header X-Sig
			signed_payload "{url}|{body}"
		}
		reverse_proxy %s
	}
	`, secret, be.URL)), "caddyfile")
	p, _ := webhookauth.LookupPreset("github")
	cfg := p.Scheme
	cfg.SignatureHeader, cfg.SignedPayload, cfg.SignaturePrefix = "X-Sig", "{url}|{body}", new(string)
	s, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	host := fmt.Sprintf("localhost:%d", httpPort)
	body := `{"absolute":true}`
	for _, target := range []string{"/hook?x=1", "http://" + host + "/hook?x=1"} {
		h, err := s.SignHeaders(secret, webhookauth.Delivery{Body: []byte(body), URL: "http://" + host + "/hook?x=1"})
		if err != nil {
			t.Fatal(err)
		}
		conn := rawRequest(t, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nX-Sig: %s\r\nConnection: close\r\n\r\n",
			target, host, len(body), h.Get("X-Sig")), body)
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request target %s: %d %s", target, resp.StatusCode, out)
		}
	}
	if n := len(be.take()); n != 2 {
		t.Fatalf("%d of 2 deliveries reached the backend", n)
	}
}

// The access log's filter, as the README shows it, lists each preset's
// signature header as Caddy logs it (canonical form).
func TestReadmeLogFilterListsEverySignatureHeader(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range webhookauth.PresetNames() {
		p, _ := webhookauth.LookupPreset(name)
		if p.Scheme.SignatureHeader == "" {
			continue // the signature is in the body (Mailgun, Adyen)
		}
		line := "request>headers>" + http.CanonicalHeaderKey(p.Scheme.SignatureHeader) + " delete"
		if !strings.Contains(string(raw), line) {
			t.Errorf("README's log filter lacks %q (%s)", line, name)
		}
	}
}
