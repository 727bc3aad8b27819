package caddywebhookauth_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/webhookauth/caddy-webhookauth/internal/redistest"
)

// load is a set of senders delivering to a fleet while a fault happens:
// each sender sends fresh deliveries, retries one answered 409 or 503 as
// providers do, sends a copy of each delivered one, and sends a forgery
// now and then. Every answer is recorded with when it came.
type load struct {
	t     *testing.T
	fleet []*caddyProcess
	be    *countingBackend
	// client's timeout is far above the store's: a request still
	// waiting then has hung.
	client *http.Client

	stop chan struct{}
	wg   sync.WaitGroup

	mu         sync.Mutex
	answers    []answer
	delivered  map[string]bool
	unanswered []string
	seq        atomic.Int64
	name       string // in every delivery id: loads never share one
	// resent counts requests sent again because their connection
	// was refused, reset or closed with no answer.
	resent atomic.Int64
}

// isConnectionDrop reports whether err is the connection failing rather
// than an answer being late: refused or reset while connecting, or
// closed or reset before any answer.
func isConnectionDrop(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

var loads atomic.Int64

type answer struct {
	at     time.Time
	status int
	forged bool
	took   time.Duration
}

func startLoad(t *testing.T, fleet []*caddyProcess, be *countingBackend, senders int) *load {
	l := &load{t: t, fleet: fleet, be: be, client: &http.Client{Timeout: 10 * time.Second},
		stop: make(chan struct{}), delivered: map[string]bool{}, name: fmt.Sprintf("load%d", loads.Add(1))}
	for i := 0; i < senders; i++ {
		l.wg.Add(1)
		go l.sender(i)
	}
	return l
}

func (l *load) send(req *http.Request, forged bool) int {
	// A reload closes the old server's idle keep-alive connections; a
	// POST the client had just written to one is lost before Caddy reads
	// it. Marked idempotent (as a delivery with an id is), Go's transport
	// sends such a request again on a new connection, and only such a
	// one: never one the server may have read.
	req.Header.Set("Idempotency-Key", req.Header.Get("X-GitHub-Delivery"))
	start := time.Now()
	resp, err := l.client.Do(req)
	for retry := 0; err != nil && isConnectionDrop(err) && retry < 3; retry++ {
		// The connection was refused, reset or closed with no answer:
		// during a reload Caddy hands its listening socket over and
		// closes the old server's connections, and Linux resets those
		// still queued on the old socket. The sender sends the same
		// request again, as providers do (dedup makes that safe);
		// counted and bounded below, never hidden.
		l.resent.Add(1)
		req = req.Clone(req.Context())
		if req.GetBody != nil {
			req.Body, _ = req.GetBody()
		}
		resp, err = l.client.Do(req)
	}
	took := time.Since(start)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.unanswered = append(l.unanswered, err.Error())
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	l.answers = append(l.answers, answer{at: time.Now(), status: resp.StatusCode, forged: forged, took: took})
	return resp.StatusCode
}

func (l *load) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *load) sender(n int) {
	defer l.wg.Done()
	for i := 0; !l.stopped(); i++ {
		p := l.fleet[(n+i)%len(l.fleet)]
		id := fmt.Sprintf("%s-%d-%d", l.name, n, l.seq.Add(1))
		if i%5 == 4 {
			req := githubDelivery(l.t, p.url, id+"-forged")
			req.Header.Set("X-Hub-Signature-256", "sha256="+strings.Repeat("ab", 32))
			l.send(req, true)
			continue
		}
		// Until delivered, as a provider retries (a short backoff here).
		// Every attempt is signed anew, as providers sign each attempt.
		for attempt := 0; ; attempt++ {
			code := l.send(githubDelivery(l.t, l.fleet[(n+i+attempt)%len(l.fleet)].url, id), false)
			if code == 200 {
				l.mu.Lock()
				l.delivered[id] = true
				l.mu.Unlock()
				break
			}
			if l.stopped() && attempt > 200 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		// A copy, to the other server: a duplicate.
		l.send(githubDelivery(l.t, l.fleet[(n+i+1)%len(l.fleet)].url, id), false)
	}
}

// finish stops the senders once every delivery in flight is delivered
// and checks what every fault must keep: every request answered, with
// 200, 409, 429 or 503 (401 for forgeries), never a 500, never a
// forgery through, and no delivery lost. It returns the answers.
func (l *load) finish() []answer {
	t := l.t
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.unanswered) > 0 {
		t.Errorf("%d requests unanswered, e.g. %s", len(l.unanswered), l.unanswered[0])
	}
	codes := map[int]int{}
	var slowest time.Duration
	for _, a := range l.answers {
		codes[a.status]++
		slowest = max(slowest, a.took)
		switch {
		case a.forged && a.status != 401:
			t.Errorf("a forgery was answered %d", a.status)
		case !a.forged && a.status != 200 && a.status != 409 && a.status != 429 && a.status != 503:
			t.Errorf("a delivery was answered %d", a.status)
		}
	}
	for id := range l.delivered {
		if l.be.count(id) == 0 {
			t.Errorf("delivery %s answered 200 but never reached the backend", id)
		}
	}
	for id, n := range l.be.snapshot() {
		if strings.HasSuffix(id, "-forged") {
			t.Errorf("forgery %s reached the backend %d times", id, n)
		}
	}
	if n := l.resent.Load(); n*1000 > int64(len(l.answers)) {
		t.Errorf("%d requests had their connection dropped, more than 1 in 1,000", n)
	}
	t.Logf("%d answers %v, %d deliveries, %d requests sent again after a dropped connection, slowest answer %s",
		len(l.answers), codes, len(l.delivered), l.resent.Load(), slowest.Round(time.Millisecond))
	// The stores' timeouts are 200-500ms: an answer this late is a hang
	// (a generous bound for a loaded 2-core machine, not a speed test).
	if slowest > 2*time.Second {
		t.Errorf("an answer took %s", slowest)
	}
	if len(l.delivered) < 20 {
		t.Errorf("only %d deliveries made it: the load did not run", len(l.delivered))
	}
	return l.answers
}

// duplicatesDelivered counts deliveries that reached the backend more
// than once.
func (l *load) duplicatesDelivered() int {
	n := 0
	for _, c := range l.be.snapshot() {
		if c > 1 {
			n++
		}
	}
	return n
}

func (b *countingBackend) snapshot() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.byID))
	for k, v := range b.byID {
		out[k] = v
	}
	return out
}

// lastFailure is when the last 503 came, or the zero time.
func lastFailure(answers []answer) time.Time {
	var last time.Time
	for _, a := range answers {
		if a.status == 503 && a.at.After(last) {
			last = a.at
		}
	}
	return last
}

// since says how long after start t came, or "none" for the zero time.
func since(t, start time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.Sub(start).Round(time.Millisecond).String()
}

// timeline counts the answers with status by whole seconds from start.
func timeline(answers []answer, start time.Time, status int) map[int]int {
	out := map[int]int{}
	for _, a := range answers {
		if a.status == status {
			out[int(a.at.Sub(start)/time.Second)]++
		}
	}
	return out
}

func countStatus(answers []answer, status int, after time.Time) int {
	n := 0
	for _, a := range answers {
		if a.status == status && a.at.After(after) {
			n++
		}
	}
	return n
}

// newFaultBackend is a counting backend that answers at once (the fleet
// tests' backend delays /github to let copies overlap).
func newFaultBackend(t *testing.T) (*countingBackend, string) {
	be := &countingBackend{byID: map[string]int{}, failOnce: map[string]bool{}, noDelay: true}
	srv := httptest.NewServer(be)
	t.Cleanup(srv.Close)
	return be, srv.URL
}

// clusterUnderLoad starts a 3+3 Cluster and two Caddy servers on it,
// with senders delivering through both.
func clusterUnderLoad(t *testing.T) (*redistest.Cluster, *load) {
	c := redistest.StartCluster(t, 3, 1)
	be, backend := newFaultBackend(t)
	fleet := []*caddyProcess{startCaddyOn(t, clusterLines(c), backend), startCaddyOn(t, clusterLines(c), backend)}
	return c, startLoad(t, fleet, be, 6)
}

// TestClusterMasterKilled: a Cluster master is killed while two Caddy
// servers take traffic. Requests whose keys it served get 503 until its
// replica is promoted, then everything recovers within the
// cluster-node-timeout and 5 s; nothing hangs, nothing is forged through,
// nothing is lost.
func TestClusterMasterKilled(t *testing.T) {
	c, l := clusterUnderLoad(t)
	time.Sleep(time.Second) // traffic before the fault
	var victim *redistest.Server
	for _, m := range c.Masters() {
		victim = m
		break
	}
	killed := time.Now()
	victim.Kill()
	c.WaitMasters(3, redistest.ClusterNodeTimeout+10*time.Second)
	promoted := time.Now()
	time.Sleep(3 * time.Second) // traffic after the promotion
	answers := l.finish()
	t.Logf("replica promoted %s after the kill; last 503 %s after it; 503s by second after the kill: %v",
		promoted.Sub(killed).Round(time.Millisecond), since(lastFailure(answers), killed), timeline(answers, killed, 503))
	if last := lastFailure(answers); last.After(killed.Add(redistest.ClusterNodeTimeout + 5*time.Second)) {
		t.Errorf("503s went on until %s after the kill, past the node timeout + 5s", last.Sub(killed))
	}
	if countStatus(answers, 200, promoted) == 0 {
		t.Error("no delivery succeeded after the promotion")
	}
}

// TestClusterReshardDuringTraffic: slots move between masters (with
// their keys) while two Caddy servers decide. Every redirect (MOVED,
// ASK) is one the client follows: no 503, no delivery reaching the
// backend twice, every copy recognised.
func TestClusterReshardDuringTraffic(t *testing.T) {
	c, l := clusterUnderLoad(t)
	time.Sleep(time.Second)
	var ids []string
	for id := range c.Masters() {
		ids = append(ids, id)
	}
	if err := c.Reshard(ids[0], ids[1], 3000); err != nil {
		t.Fatal(err)
	}
	if err := c.Reshard(ids[1], ids[2], 3000); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	answers := l.finish()
	if n := countStatus(answers, 503, time.Time{}); n > 0 {
		t.Errorf("%d requests answered 503 during the reshard", n)
	}
	if n := l.duplicatesDelivered(); n > 0 {
		t.Errorf("%d deliveries reached the backend twice", n)
	}
}

// TestSentinelFailover: SENTINEL FAILOVER while two Caddy servers take
// traffic: they follow the new master within 10 s.
func TestSentinelFailover(t *testing.T) {
	st := redistest.StartSentinel(t)
	be, backend := newFaultBackend(t)
	lines := "address " + strings.Join(st.Addrs(), " ") + "\n\t\t\tmaster_name " + redistest.SentinelMaster
	fleet := []*caddyProcess{startCaddyOn(t, lines, backend), startCaddyOn(t, lines, backend)}
	l := startLoad(t, fleet, be, 6)
	time.Sleep(time.Second)
	old, err := st.Failover()
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	for st.MasterAddr() == old {
		if time.Since(began) > 10*time.Second {
			t.Fatal("the Sentinels did not switch the master within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(4 * time.Second)
	answers := l.finish()
	t.Logf("master %s -> %s; last 503 %s after the failover; 503s by second: %v", old, st.MasterAddr(), since(lastFailure(answers), began), timeline(answers, began, 503))
	if last := lastFailure(answers); last.After(began.Add(10 * time.Second)) {
		t.Errorf("503s went on until %s after the failover", last.Sub(began))
	}
	if countStatus(answers, 200, began.Add(2*time.Second)) == 0 {
		t.Error("no delivery succeeded after the failover")
	}
}

// slowProxy is a loopback TCP proxy in front of Redis that can pass
// traffic, delay every chunk, or black-hole it (accept and never
// answer).
type slowProxy struct {
	addr  string
	mode  atomic.Value // "pass", "delay", "blackhole"
	delay time.Duration
	open  atomic.Int64 // client connections open now
	ln    net.Listener
}

func startSlowProxy(t *testing.T, target string, delay time.Duration) *slowProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{addr: ln.Addr().String(), delay: delay, ln: ln}
	p.mode.Store("pass")
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c, target)
		}
	}()
	return p
}

func (p *slowProxy) serve(c net.Conn, target string) {
	p.open.Add(1)
	defer p.open.Add(-1)
	defer c.Close()
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				switch p.mode.Load() {
				case "delay":
					time.Sleep(p.delay)
				case "blackhole":
					continue // swallowed: the other side waits forever
				}
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
}

// TestSlowRedis: Redis made slow (every packet delayed past the store's
// timeout) and then black-holed, behind a loopback proxy. Deliveries get
// 503 store_unavailable within the timeout (plus scheduling slack, never
// a hang), and once Redis is healthy again, deliveries succeed and the
// process's goroutines and the proxy's connections return to their
// baseline.
func TestSlowRedis(t *testing.T) {
	rds := redistest.Start(t)
	proxy := startSlowProxy(t, rds.Addr, time.Second)
	be, backend := newFaultBackend(t)
	p := startCaddyOn(t, "address redis://"+proxy.addr+"/0", backend)
	for i := 0; i < 20; i++ {
		if code, _ := do(t, githubDelivery(t, p.url, fmt.Sprintf("warm-%d", i))); code != 200 {
			t.Fatalf("warm-up: %d", code)
		}
	}
	baseGoroutines, baseConns := p.goroutines(t), proxy.open.Load()

	for _, mode := range []string{"delay", "blackhole"} {
		proxy.mode.Store(mode)
		var wg sync.WaitGroup
		var worst atomic.Int64
		for i := 0; i < 30; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				start := time.Now()
				code, body := do(t, githubDelivery(t, p.url, fmt.Sprintf("%s-%d", mode, i)))
				took := time.Since(start)
				if d := int64(took); d > worst.Load() {
					worst.Store(d)
				}
				if code != 503 || !strings.Contains(body, `"store_unavailable"`) {
					t.Errorf("%s: %d %s", mode, code, body)
				}
			}(i)
		}
		wg.Wait()
		// timeout is 200ms; a second is slack for a loaded 2-core
		// machine, far from a hang.
		t.Logf("%s: slowest answer %s", mode, time.Duration(worst.Load()).Round(time.Millisecond))
		if time.Duration(worst.Load()) > 1200*time.Millisecond {
			t.Errorf("%s: an answer took %s with a 200ms store timeout", mode, time.Duration(worst.Load()))
		}
	}
	if n := len(be.snapshot()); n != 20 {
		t.Errorf("%d deliveries reached the backend, want the 20 of the warm-up", n)
	}

	proxy.mode.Store("pass")
	waitDelivering(t, p, "after Redis became healthy")
	var g int
	var conns int64
	for i := 0; i < 100; i++ {
		g, conns = p.goroutines(t), proxy.open.Load()
		if g <= baseGoroutines+10 && conns <= baseConns+2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("goroutines %d (baseline %d), connections to Redis %d (baseline %d)", g, baseGoroutines, conns, baseConns)
	if g > baseGoroutines+10 {
		t.Errorf("goroutines %d after recovery, baseline %d", g, baseGoroutines)
	}
	if conns > baseConns+2 {
		t.Errorf("%d connections to Redis after recovery, baseline %d", conns, baseConns)
	}
}

// TestReloadUnderLoad: `caddy reload` with a changed config every second
// for 30 s while signed deliveries, copies and forgeries flow through two
// routes, dedup on the memory store and on Redis. Every request is
// answered, no delivery reaches the backend twice, none is lost (each is
// a 2xx or retried by the sender's rule), and the rate limiter's and the
// dedup's state outlive every reload.
func TestReloadUnderLoad(t *testing.T) {
	rds := redistest.Start(t)
	be, backend := newFaultBackend(t)
	bin, err := buildCaddy()
	if err != nil {
		t.Fatal(err)
	}
	port, adminPort := freePort(t), freePort(t)
	config := func(gen int) string {
		return fmt.Sprintf(`{
	admin localhost:%d
	auto_https off
	webhook {
		redis {
			address redis://%s/0
			timeout 500ms
		}
	}
}
http://127.0.0.1:%d {
	header X-Config-Generation %d
	route /github {
		webhook_auth github {
			secret {env.FLEET_SECRET}
			dedup
			dedup_scope reload-memory
		}
		reverse_proxy %s
	}
	route /redis/github {
		uri strip_prefix /redis
		webhook_auth github {
			secret {env.FLEET_SECRET}
			dedup
			dedup_scope reload-redis
			store redis
		}
		reverse_proxy %s
	}
	route /limited {
		webhook_rate_limit reload_limit {
			key all
			rate 50/1h
		}
		respond 204
	}
}
`, adminPort, rds.Addr, port, gen, backend, backend)
	}
	p := runCaddy(t, config(0), port, adminPort)
	file := p.file

	// State to keep: 30 of the limiter's 50, and one delivery done on
	// each store.
	limited := func(n int) map[int]int {
		codes := map[int]int{}
		for i := 0; i < n; i++ {
			req, _ := http.NewRequest(http.MethodPost, p.url+"/limited", nil)
			code, _ := do(t, req)
			codes[code]++
		}
		return codes
	}
	if c := limited(30); c[204] != 30 {
		t.Fatalf("before the reloads: %v", c)
	}
	for _, prefix := range []string{"", "/redis"} {
		if code, _ := do(t, githubDelivery(t, p.url+prefix, "kept"+prefix)); code != 200 {
			t.Fatalf("before the reloads: %d", code)
		}
	}

	// Each route under load of its own (a copy goes to the same route:
	// the stores do not share state).
	both := []*load{startLoad(t, []*caddyProcess{p}, be, 2), startLoad(t, []*caddyProcess{{url: p.url + "/redis"}}, be, 2)}
	reloads := 0
	for gen := 1; gen <= 30; gen++ {
		time.Sleep(time.Second)
		if err := os.WriteFile(file, []byte(config(gen)), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "reload", "--config", file, "--address", fmt.Sprintf("localhost:%d", adminPort)).CombinedOutput()
		if err != nil {
			t.Fatalf("caddy reload %d: %v\n%s", gen, err, out)
		}
		reloads++
	}
	for _, l := range both {
		l.finish()
	}
	if n := both[0].duplicatesDelivered(); n > 0 {
		t.Errorf("%d deliveries reached the backend twice across %d reloads", n, reloads)
	}
	resp, err := http.Get(p.url + "/limited")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if g := resp.Header.Get("X-Config-Generation"); g != "30" {
		t.Errorf("the last config is not in use: generation %q", g)
	}
	// The limiter remembers the 30 (31 with the GET above): 19 more, then
	// 429s.
	if c := limited(30); c[204] != 19 || c[429] != 11 {
		t.Errorf("after the reloads, 30 more requests: %v; want 19 × 204 and 11 × 429", c)
	}
	for _, prefix := range []string{"", "/redis"} {
		code, body := do(t, githubDelivery(t, p.url+prefix, "kept"+prefix))
		if code != 200 || !strings.Contains(body, `"duplicate"`) {
			t.Errorf("a copy of a delivery made before the reloads (%q): %d %s", prefix, code, body)
		}
	}
}

// TestClusterStartWithDeadNode: a Caddy server started while one of the
// Cluster nodes its Caddyfile lists is down (a master killed, its
// replica promoted) serves from its first request. The dead node is
// listed first, and three servers are started one after another, each
// sent deliveries at once: every answer is 200.
func TestClusterStartWithDeadNode(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	var victim *redistest.Server
	for _, m := range c.Masters() {
		victim = m
		break
	}
	victim.Kill()
	c.WaitMasters(3, redistest.ClusterNodeTimeout+10*time.Second)
	addrs := []string{victim.Addr}
	for _, a := range c.Addrs() {
		if a != victim.Addr {
			addrs = append(addrs, a)
		}
	}
	be, backend := newFaultBackend(t)
	for run := range 3 {
		p := startCaddyOn(t, "address "+strings.Join(addrs, " "), backend)
		// Distinct delivery ids: their dedup keys spread over the slots
		// of every master.
		for i := range 30 {
			id := fmt.Sprintf("start-%d-%d", run, i)
			if code, body := do(t, githubDelivery(t, p.url, id)); code != 200 {
				t.Fatalf("server %d, delivery %d: %d %s", run+1, i+1, code, body)
			}
		}
	}
	if got := len(be.snapshot()); got != 90 {
		t.Fatalf("the backend got %d distinct deliveries, want 90", got)
	}
}
