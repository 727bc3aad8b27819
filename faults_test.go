package caddywebhookauth_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
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
}

type answer struct {
	at     time.Time
	status int
	forged bool
	took   time.Duration
}

func startLoad(t *testing.T, fleet []*caddyProcess, be *countingBackend, senders int) *load {
	l := &load{t: t, fleet: fleet, be: be, client: &http.Client{Timeout: 10 * time.Second},
		stop: make(chan struct{}), delivered: map[string]bool{}}
	for i := 0; i < senders; i++ {
		l.wg.Add(1)
		go l.sender(i)
	}
	return l
}

func (l *load) send(req *http.Request, forged bool) int {
	start := time.Now()
	resp, err := l.client.Do(req)
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
		id := fmt.Sprintf("load-%d-%d", n, l.seq.Add(1))
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
	for _, a := range l.answers {
		codes[a.status]++
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
	t.Logf("%d answers %v, %d deliveries", len(l.answers), codes, len(l.delivered))
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

// TestClusterMasterKilled: a Cluster master is killed while two Caddy
// servers take traffic. Requests whose keys it served get 503 until its
// replica is promoted, then everything recovers within the
// cluster-node-timeout and 5 s; nothing hangs, nothing is forged through,
// nothing is lost.
func TestClusterMasterKilled(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	be, backend := newFaultBackend(t)
	lines := "address " + strings.Join(c.Addrs(), " ")
	fleet := []*caddyProcess{startCaddyOn(t, lines, backend), startCaddyOn(t, lines, backend)}
	l := startLoad(t, fleet, be, 6)
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
	c := redistest.StartCluster(t, 3, 1)
	be, backend := newFaultBackend(t)
	lines := "address " + strings.Join(c.Addrs(), " ")
	fleet := []*caddyProcess{startCaddyOn(t, lines, backend), startCaddyOn(t, lines, backend)}
	l := startLoad(t, fleet, be, 6)
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
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		code, _ := do(t, githubDelivery(t, p.url, fmt.Sprintf("after-%d", i)))
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not recovered 10 s after Redis became healthy: %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
