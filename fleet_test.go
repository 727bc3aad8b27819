package caddywebhookauth_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookauth/caddy-webhookauth/internal/redistest"
)

// buildCaddy builds ./cmd/caddy once per test binary.
var buildCaddy = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "webhookauth-caddy-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "caddy")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/caddy").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	return bin, nil
})

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// caddyProcess is a separate Caddy process built from this repository.
type caddyProcess struct {
	url, admin string
	file       string        // its Caddyfile
	logs       *bytes.Buffer // what it logged
}

const fleetSecret = "fleet-secret-4c1d"

func startCaddy(t *testing.T, redisAddr, backend string) *caddyProcess {
	t.Helper()
	return startCaddyOn(t, "address redis://"+redisAddr+"/0", backend)
}

// startCaddyOn starts a Caddy process whose redis block holds the given
// lines (addresses, master_name), in front of backend.
func startCaddyOn(t *testing.T, redisLines, backend string) *caddyProcess {
	t.Helper()
	port, adminPort := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	auto_https off
	webhook {
		redis {
			%s
			timeout 200ms
		}
	}
}
http://127.0.0.1:%d {
	route /github {
		webhook_auth github {
			secret {env.FLEET_SECRET}
			dedup
			dedup_claim_ttl 10s
			store redis
		}
		reverse_proxy %s
	}
	route /limited {
		webhook_rate_limit shared {
			key all
			rate 50/1m
			store redis
		}
		reverse_proxy %s
	}
	route /open {
		webhook_rate_limit open {
			key all
			rate 1000/1s
			store redis
			on_store_error allow
		}
		reverse_proxy %s
	}
}
`, adminPort, redisLines, port, backend, backend, backend)
	return runCaddy(t, cfg, port, adminPort)
}

// runCaddy runs a Caddy process built from this repository on the
// Caddyfile cfg, which serves port and its admin API on adminPort.
func runCaddy(t *testing.T, cfg string, port, adminPort int) *caddyProcess {
	t.Helper()
	bin, err := buildCaddy()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", file)
	cmd.Env = append(os.Environ(), "FLEET_SECRET="+fleetSecret, "HOME="+t.TempDir())
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("caddy on port %d logged:\n%s", port, logs.String())
		}
	})
	p := &caddyProcess{file: file, logs: &logs, url: fmt.Sprintf("http://127.0.0.1:%d", port), admin: fmt.Sprintf("http://localhost:%d", adminPort)}
	for i := 0; ; i++ {
		resp, err := http.Get(p.admin + "/config/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			t.Fatalf("caddy did not start: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// goroutines reads the process's goroutine count from the admin pprof
// endpoint.
func (p *caddyProcess) goroutines(t *testing.T) int {
	resp, err := http.Get(p.admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`goroutine profile: total (\d+)`).FindSubmatch(raw)
	if m == nil {
		t.Fatalf("no goroutine count in %q", raw[:min(len(raw), 200)])
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// countingBackend counts deliveries by X-GitHub-Delivery; ids listed in
// failOnce get a 500 the first time.
type countingBackend struct {
	mu       sync.Mutex
	byID     map[string]int
	failOnce map[string]bool
	total    atomic.Int64
	// noDelay: answer /github at once (the fault tests' load).
	noDelay bool
}

func (b *countingBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	b.total.Add(1)
	id := r.Header.Get("X-GitHub-Delivery")
	b.mu.Lock()
	b.byID[id]++
	fail := b.failOnce[id]
	b.failOnce[id] = false
	b.mu.Unlock()
	if r.URL.Path == "/github" && !b.noDelay {
		time.Sleep(150 * time.Millisecond) // copies arrive while the first is in flight
	}
	if fail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (b *countingBackend) count(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byID[id]
}

func githubDelivery(t *testing.T, url, id string) *http.Request {
	req := signedRequest(t, "github", fleetSecret, url+"/github", []byte(`{"action":"opened","n":`+strconv.Quote(id)+`}`), time.Now())
	req.Header.Set("X-GitHub-Delivery", id)
	return req
}

// waitDelivering sends fresh deliveries to p until one is answered 200,
// for at most 10 s after the fault named by when was healed.
func waitDelivering(t *testing.T, p *caddyProcess, when string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		code, _ := do(t, githubDelivery(t, p.url, fmt.Sprintf("after-%d", i)))
		if code == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not recovered 10 s %s: %d", when, code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func do(t *testing.T, req *http.Request) (int, string) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func TestFleetSharesStateThroughRedis(t *testing.T) {
	rds := redistest.Start(t)
	checkFleet(t, func(backend string) *caddyProcess { return startCaddy(t, rds.Addr, backend) })
}

// TestFleetOnRedisCluster: the same fleet checks on a Redis Cluster of 3
// masters and 3 replicas (the redis block lists every node).
func TestFleetOnRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	lines := clusterLines(c)
	checkFleet(t, func(backend string) *caddyProcess { return startCaddyOn(t, lines, backend) })
}

// TestFleetOnRedisSentinel: the same fleet checks on a master and a
// replica behind 3 Sentinels (the redis block lists the Sentinels and
// the master's name).
func TestFleetOnRedisSentinel(t *testing.T) {
	st := redistest.StartSentinel(t)
	lines := "address " + strings.Join(st.Addrs(), " ") + "\n\t\t\tmaster_name " + redistest.SentinelMaster
	checkFleet(t, func(backend string) *caddyProcess { return startCaddyOn(t, lines, backend) })
}

// clusterLines is the redis block of a fleet on the Cluster c: every
// node's address.
func clusterLines(c *redistest.Cluster) string {
	return "address " + strings.Join(c.Addrs(), " ")
}

// checkFleet starts two Caddy processes on one Redis setup and checks
// what a fleet promises: 200 concurrent copies of a delivery across both
// reach the backend exactly once, a delivery the backend failed is
// delivered on the sender's retry through the other server, and a shared
// 50/1m limit admits exactly 50 of 150.
func checkFleet(t *testing.T, start func(backend string) *caddyProcess) {
	t.Helper()
	be := &countingBackend{byID: map[string]int{}, failOnce: map[string]bool{"fails-first": true}}
	backend := httptest.NewServer(be)
	defer backend.Close()
	a := start(backend.URL)
	b := start(backend.URL)
	fleet := []*caddyProcess{a, b}

	// 200 concurrent copies of one delivery across both servers reach the
	// backend exactly once.
	var wg sync.WaitGroup
	statuses := make(chan int, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			code, _ := do(t, githubDelivery(t, fleet[i%2].url, "dup-1"))
			statuses <- code
		}(i)
	}
	wg.Wait()
	close(statuses)
	seen := map[int]int{}
	for s := range statuses {
		seen[s]++
	}
	if n := be.count("dup-1"); n != 1 {
		t.Fatalf("backend got delivery dup-1 %d times, want exactly once (statuses %v)", n, seen)
	}
	if seen[200]+seen[409] != 200 || seen[409] == 0 {
		t.Fatalf("statuses %v: want 200s and some 409s", seen)
	}
	// A later copy is a duplicate, on either server.
	for _, p := range fleet {
		code, body := do(t, githubDelivery(t, p.url, "dup-1"))
		if code != 200 || !bytes.Contains([]byte(body), []byte(`"duplicate"`)) {
			t.Fatalf("later copy: %d %s", code, body)
		}
	}

	// A backend failure releases the claim: the sender's retry, on the
	// other server, reaches the backend again.
	if code, _ := do(t, githubDelivery(t, a.url, "fails-first")); code != 500 {
		t.Fatalf("first attempt: status %d, want the backend's 500", code)
	}
	if code, _ := do(t, githubDelivery(t, b.url, "fails-first")); code != 200 {
		t.Fatalf("retry: status %d, want 200", code)
	}
	if n := be.count("fails-first"); n != 2 {
		t.Fatalf("backend saw fails-first %d times, want 2", n)
	}

	// A shared 50/1m limit across both servers admits exactly 50 of 150.
	codes := make(chan int, 150)
	for i := 0; i < 150; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, fleet[i%2].url+"/limited", nil)
			code, _ := do(t, req)
			codes <- code
		}(i)
	}
	wg.Wait()
	close(codes)
	byCode := map[int]int{}
	for c := range codes {
		byCode[c]++
	}
	if byCode[200] != 50 || byCode[429] != 100 {
		t.Fatalf("shared limit: %v, want 50 × 200 and 100 × 429", byCode)
	}
}

func TestFleetRedisOutageAndRecovery(t *testing.T) {
	rds := redistest.Start(t)
	be := &countingBackend{byID: map[string]int{}, failOnce: map[string]bool{}}
	backend := httptest.NewServer(be)
	defer backend.Close()
	p := startCaddy(t, rds.Addr, backend.URL)

	if code, _ := do(t, githubDelivery(t, p.url, "before")); code != 200 {
		t.Fatalf("before the outage: %d", code)
	}
	baseline := p.goroutines(t)

	rds.Kill()
	// Fail closed: 503 with Retry-After and reason store_unavailable.
	for i := 0; i < 20; i++ {
		resp, err := http.DefaultClient.Do(githubDelivery(t, p.url, fmt.Sprintf("outage-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !bytes.Contains(raw, []byte(`"store_unavailable"`)) {
			t.Fatalf("during the outage: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), raw)
		}
	}
	// on_store_error allow lets requests through.
	for i := 0; i < 20; i++ {
		req, _ := http.NewRequest(http.MethodPost, p.url+"/open", nil)
		if code, _ := do(t, req); code != 200 {
			t.Fatalf("allow during the outage: %d", code)
		}
	}
	if be.count("outage-0") != 0 {
		t.Fatal("a delivery reached the backend while dedup was unavailable")
	}

	rds.Restart()
	waitDelivering(t, p, "after Redis came back")
	// No pile-up of goroutines (each pooled connection has a couple).
	var now int
	for i := 0; i < 50; i++ {
		if now = p.goroutines(t); now <= baseline+10 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if now > baseline+10 {
		t.Fatalf("goroutines: %d before the outage, %d after recovery", baseline, now)
	}
}
