package caddywebhookauth_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/webhookauth/caddy-webhookauth/internal/redistest"
)

// fleetQueueServer is one Caddy server of a fleet sharing a queue on
// Redis: its own port, admin port and home (so its own consumer name).
type fleetQueueServer struct {
	url, admin string
	file, dir  string
	adminPort  int
	logs       *bytes.Buffer
	cmd        *exec.Cmd
	bin        string
	t          *testing.T
}

// startFleetQueue starts a Caddy server whose route /gh verifies a
// GitHub delivery and queues it in the shared queue "fleet" on Redis
// (the redis block's lines given), delivering to backend. extra goes in
// the webhook_queue block.
func startFleetQueue(t *testing.T, redisLines, backend, extra string) *fleetQueueServer {
	t.Helper()
	bin, err := buildCaddy()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port, admin := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`{
	admin localhost:%[1]d
	http_port %[2]d
	storage file_system %[3]s/data
	webhook {
		redis {
			%[4]s
			timeout 500ms
		}
	}
}
:%[2]d {
	route /gh {
		webhook_auth github {
			secret %[6]s
		}
		webhook_queue fleet {
			store redis
			%[7]s
			deliver {
				reverse_proxy %[5]s {
					header_up X-Delivered-By %[2]d
				}
			}
		}
	}
}
`, admin, port, dir, redisLines, backend, githubSecret, extra)
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &fleetQueueServer{url: fmt.Sprintf("http://127.0.0.1:%d/gh", port), admin: fmt.Sprintf("http://localhost:%d", admin),
		file: file, dir: dir, adminPort: admin, logs: &bytes.Buffer{}, bin: bin, t: t}
	s.start()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("caddy %s logged:\n%.4000s", s.url, s.logs.String())
		}
	})
	return s
}

func (s *fleetQueueServer) start() {
	s.cmd = startCaddyProcess(s.t, s.bin, s.file, s.dir, s.adminPort, s.logs)
}

func (s *fleetQueueServer) kill() {
	if s.cmd != nil && s.cmd.ProcessState == nil {
		s.cmd.Process.Signal(syscall.SIGKILL)
		s.cmd.Wait()
	}
}

// sendAll sends n deliveries spread over the servers from senders
// goroutines, and returns the acknowledged ones (queue id -> body) and
// how many answers were refusals. A refused delivery is sent again, as
// senders do, up to 20 times.
func sendAll(t *testing.T, servers []*fleetQueueServer, n, senders int, tag string) (map[string]string, int) {
	acked := map[string]string{}
	var mu sync.Mutex
	var refused atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				body := fmt.Sprintf(`{"tag":%q,"n":%d}`, tag, i)
				var id string
				for try := 0; id == "" && try < 20; try++ {
					if id, _, _ = queued(t, servers[(i+try)%len(servers)].url, body); id == "" {
						refused.Add(1)
						time.Sleep(50 * time.Millisecond)
					}
				}
				if id == "" {
					continue
				}
				mu.Lock()
				acked[id] = body
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return acked, int(refused.Load())
}

// waitDelivered waits until every acknowledged item reached the backend
// and checks each arrived byte for byte; it returns how many arrived
// more than once.
func waitDelivered(t *testing.T, be *queueBackend, acked map[string]string, within time.Duration) int {
	t.Helper()
	waitUntil(t, within, fmt.Sprintf("%d acknowledged deliveries to arrive", len(acked)), func() bool {
		d := be.delivered()
		for id := range acked {
			if len(d[id]) == 0 {
				return false
			}
		}
		return true
	})
	d := be.delivered()
	dups := 0
	for id, body := range acked {
		if string(d[id][0].body) != body {
			t.Errorf("item %s arrived as %q, was %q", id, d[id][0].body, body)
		}
		dups += len(d[id]) - 1
	}
	return dups
}

// Two Caddy servers on one queue in Redis: 10,000 deliveries accepted
// through both are each delivered exactly once (no fault, so no
// duplicate), by either server. Pause through one holds delivery on
// both and shows on the other's admin API; resume through the other
// lets it go.
func TestQueueFleetOnRedis(t *testing.T) {
	rds := redistest.Start(t)
	checkQueueFleet(t, "address redis://"+rds.Addr+"/0", 10000)
}

// The same on a Redis Cluster of 3 masters and 3 replicas, with
// min_replicas 1 (every accept waits for a replica), 2,000 deliveries.
func TestQueueFleetOnRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	checkQueueFleet(t, clusterLines(c), 2000, "min_replicas 1")
}

func checkQueueFleet(t *testing.T, redisLines string, n int, extra ...string) {
	be := startQueueBackend(t, "")
	opts := "concurrency 16\n" + strings.Join(extra, "\n")
	a := startFleetQueue(t, redisLines, be.addr, opts)
	b := startFleetQueue(t, redisLines, be.addr, opts)
	fleet := []*fleetQueueServer{a, b}

	acked, refused := sendAll(t, fleet, n, 16, "fleet")
	if len(acked) != n || (refused != 0 && len(extra) == 0) {
		t.Fatalf("%d of %d deliveries acknowledged, %d refusals", len(acked), n, refused)
	}
	if dups := waitDelivered(t, be, acked, 120*time.Second); dups != 0 {
		t.Fatalf("%d items delivered more than once without any fault", dups)
	}
	byServer := map[string]int{}
	for _, at := range be.attempts() {
		byServer[at.header.Get("X-Delivered-By")]++
	}
	if len(byServer) != 2 {
		t.Errorf("attempts by server: %v, want both servers delivering", byServer)
	}
	waitUntil(t, 10*time.Second, "the queue to empty", func() bool {
		qi := queueState(t, b.admin, "fleet")
		return qi.Pending == 0 && qi.InFlight == 0
	})

	// Pause through a: neither server delivers; b's admin API shows it.
	if code := adminJSON(t, http.MethodPost, a.admin+"/webhook/queues/fleet/pause", nil); code != 200 {
		t.Fatalf("pause: %d", code)
	}
	before := len(be.attempts())
	time.Sleep(time.Second) // both servers' dispatchers see the pause
	held, _ := sendAll(t, fleet, 20, 4, "held")
	if len(held) != 20 {
		t.Fatalf("accepting while paused: %d of 20", len(held))
	}
	time.Sleep(time.Second)
	if got := len(be.attempts()); got != before {
		t.Fatalf("%d attempts while the fleet's queue was paused", got-before)
	}
	if qi := queueState(t, b.admin, "fleet"); !qi.Paused || qi.Pending != 20 {
		t.Fatalf("the other server's view while paused: %+v", qi)
	}
	if code := adminJSON(t, http.MethodPost, b.admin+"/webhook/queues/fleet/resume", nil); code != 200 {
		t.Fatalf("resume: %d", code)
	}
	waitDelivered(t, be, held, 30*time.Second)
	t.Logf("%d deliveries through two servers, each delivered once; attempts by server (port): %v; %d answers were refusals (sent again)", len(acked), byServer, refused)
}

// SIGKILL one of two servers while it has items in flight (the backend
// takes a while to answer): the other delivers them after the
// visibility timeout. Nothing acknowledged is lost.
func TestQueueFleetServerKilled(t *testing.T) {
	rds := redistest.Start(t)
	be := startQueueBackend(t, "")
	be.setAnswer(func(a queueAttempt, n int) (int, http.Header) {
		time.Sleep(300 * time.Millisecond)
		return 200, nil
	})
	opts := "concurrency 8\n\t\t\ttimeout 2s\n\t\t\tvisibility_timeout 3s"
	lines := "address redis://" + rds.Addr + "/0"
	a := startFleetQueue(t, lines, be.addr, opts)
	b := startFleetQueue(t, lines, be.addr, opts)
	acked, refused := sendAll(t, []*fleetQueueServer{a, b}, 300, 8, "kill")
	if refused != 0 || len(acked) != 300 {
		t.Fatalf("%d acknowledged, %d refusals", len(acked), refused)
	}
	// Wait until a has items in flight, then kill it.
	waitUntil(t, 10*time.Second, "items in flight", func() bool { return queueState(t, b.admin, "fleet").InFlight > 0 })
	a.kill()
	killed := time.Now()
	dups := waitDelivered(t, be, acked, 120*time.Second)
	t.Logf("server killed with items in flight: all %d delivered within %s of the kill, %d twice (cut short by the kill)", len(acked), time.Since(killed).Round(time.Millisecond), dups)
	waitUntil(t, 10*time.Second, "the queue to empty", func() bool {
		qi := queueState(t, b.admin, "fleet")
		return qi.Pending == 0 && qi.InFlight == 0
	})
}

// Redis unreachable: senders get 503 queue_unavailable with Retry-After
// (never a 2xx for something not stored); when Redis is back (empty: it
// kept nothing), accepting and delivering resume by themselves.
func TestQueueFleetRedisDown(t *testing.T) {
	rds := redistest.Start(t)
	be := startQueueBackend(t, "")
	s := startFleetQueue(t, "address redis://"+rds.Addr+"/0", be.addr, "")
	first, _ := sendAll(t, []*fleetQueueServer{s}, 10, 2, "before")
	waitDelivered(t, be, first, 10*time.Second)

	rds.Kill()
	req := signedRequest(t, "github", githubSecret, s.url, []byte(`{"down":1}`), time.Now())
	resp, body := doRequest(t, req)
	if resp.StatusCode != 503 || !strings.Contains(body, "queue_unavailable") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("with Redis down: %d %s (Retry-After %q)", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	rds.Restart()
	after, _ := sendAll(t, []*fleetQueueServer{s}, 5, 1, "after")
	if len(after) != 5 {
		t.Fatalf("%d of 5 accepted after Redis came back", len(after))
	}
	waitDelivered(t, be, after, 20*time.Second)
}

// queueFailover runs two servers on a queue in Redis, paused so that
// deliveries stay in Redis, with senders delivering through both; crash
// (which kills the Redis master holding the queue and returns when a
// replica has taken over and the old master is back as a replica) runs
// under that load. Then the queue is resumed and drained; it returns
// how many deliveries were acknowledged and how many of those never
// reached the backend.
func queueFailover(t *testing.T, lines, extra string, crash func()) (acked, lost int) {
	be := startQueueBackend(t, "")
	opts := "concurrency 16\n" + extra
	a := startFleetQueue(t, lines, be.addr, opts)
	b := startFleetQueue(t, lines, be.addr, opts)
	if code := adminJSON(t, http.MethodPost, a.admin+"/webhook/queues/fleet/pause", nil); code != 200 {
		t.Fatalf("pause: %d", code)
	}
	l := startSenders(t, []*fleetQueueServer{a, b}, 6)
	time.Sleep(time.Second)
	crash()
	// Accepting again after the fault.
	n0 := l.count()
	waitUntil(t, 30*time.Second, "accepting again after the failover", func() bool { return l.count() > n0+50 })
	ackedBodies := l.finish()
	// A server's Redis client may take a few seconds more than the
	// Sentinels to find the new master (go-redis probes a master it
	// could not dial once a second): the operator's resume is retried.
	waitUntil(t, 15*time.Second, "resume to succeed", func() bool {
		req, _ := http.NewRequest(http.MethodPost, b.admin+"/webhook/queues/fleet/resume", nil)
		resp, body := doRequest(t, req)
		if resp.StatusCode != 200 {
			t.Logf("resume: %d %s", resp.StatusCode, body)
		}
		return resp.StatusCode == 200
	})
	// Drained when every acknowledged delivery has arrived; what has not
	// within two minutes is lost.
	began, lastLog := time.Now(), time.Now()
	var d map[string][]queueAttempt
	for {
		d = be.delivered()
		missing := 0
		for id := range ackedBodies {
			if len(d[id]) == 0 {
				missing++
			}
		}
		if missing == 0 || time.Since(began) > 2*time.Minute {
			break
		}
		if os.Getenv("QDEBUG") != "" && time.Since(lastLog) > 3*time.Second {
			lastLog = time.Now()
			t.Logf("%s: %d missing; a: %+v b: %+v", time.Since(began).Round(time.Second), missing, queueState(t, a.admin, "fleet"), queueState(t, b.admin, "fleet"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for id, body := range ackedBodies {
		switch {
		case len(d[id]) == 0:
			lost++
		case string(d[id][0].body) != body:
			t.Errorf("item %s arrived as %q, was %q", id, d[id][0].body, body)
		}
	}
	t.Logf("%d acknowledged, %d lost, %d refusals during the fault (sent again)", len(ackedBodies), lost, l.refused.Load())
	if lost > 0 && os.Getenv("QDEBUG") != "" {
		t.Logf("a: %+v b: %+v", queueState(t, a.admin, "fleet"), queueState(t, b.admin, "fleet"))
		t.Logf("a logs: %.3000s", a.logs.String())
	}
	return len(ackedBodies), lost
}

// queueMaster is the Cluster master that holds the queue's keys.
func queueMaster(t *testing.T, c *redistest.Cluster) *redistest.Server {
	for _, m := range c.Masters() {
		cl := redis.NewClient(&redis.Options{Addr: m.Addr})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := cl.Exists(ctx, "webhook:q:{fleet}:s").Err()
		cancel()
		cl.Close()
		if err == nil {
			return m
		}
	}
	t.Fatal("no master holds the queue's slot")
	return nil
}

// clusterCrash kills the master holding the queue's keys and returns
// once a replica has taken its place. It is not restarted: a master
// without persistence that came back empty, with its nodes.conf, would
// serve its old slots empty until the cluster made it a replica, and
// wipe what a client with an old slot map wrote there meanwhile (Redis'
// documentation warns against restarting such a master automatically).
func clusterCrash(t *testing.T, c *redistest.Cluster, masters int) func() {
	return func() {
		queueMaster(t, c).Kill()
		c.WaitMasters(masters, redistest.ClusterNodeTimeout+10*time.Second)
	}
}

// With min_replicas 1, a Cluster master killed under load loses no
// acknowledged delivery. Each master has two replicas, so the promoted
// one still has a replica to confirm accepts.
func TestQueueClusterMasterKilledMinReplicas(t *testing.T) {
	c := redistest.StartCluster(t, 3, 2)
	acked, lost := queueFailover(t, clusterLines(c), "min_replicas 1", clusterCrash(t, c, 3))
	if lost != 0 {
		t.Fatalf("%d of %d acknowledged deliveries lost with min_replicas 1", lost, acked)
	}
}

// With min_replicas 1, a Sentinel master killed under load (a replica
// promoted by the Sentinels; the other one follows it) loses no
// acknowledged delivery.
func TestQueueSentinelMasterKilledMinReplicas(t *testing.T) {
	st := redistest.StartSentinelReplicas(t, 2)
	lines := "address " + strings.Join(st.Addrs(), " ") + "\n\t\t\tmaster_name " + redistest.SentinelMaster
	if os.Getenv("QDEBUG") != "" {
		t.Cleanup(func() {
			for _, n := range append([]*redistest.Server{st.Master}, st.Replicas...) {
				cl := redis.NewClient(&redis.Options{Addr: n.Addr})
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				role, _ := cl.Do(ctx, "role").Result()
				xl, err := cl.XLen(ctx, "webhook:q:{fleet}:s").Result()
				cancel()
				cl.Close()
				t.Logf("node %s: role %v, stream length %d %v", n.Addr, role, xl, err)
			}
		})
	}
	acked, lost := queueFailover(t, lines, "min_replicas 1", func() {
		old := st.MasterAddr()
		st.Master.Kill()
		// Every Sentinel names the new master: a client asks whichever
		// it is connected to.
		waitUntil(t, 30*time.Second, "the Sentinels to promote a replica", func() bool {
			for _, m := range st.MasterAddrs() {
				if m == "" || m == old {
					return false
				}
			}
			return true
		})
	})
	if lost != 0 {
		t.Fatalf("%d of %d acknowledged deliveries lost with min_replicas 1", lost, acked)
	}
}

// Without min_replicas, the same Cluster master kill (one replica per
// master): replication is asynchronous, so what the master acknowledged
// and had not yet sent to its replica is lost. This measures it
// (RELIABILITY.md); it checks that the queue recovers and delivers
// everything that survived.
func TestQueueClusterMasterKilledNoReplicaWait(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	acked, lost := queueFailover(t, clusterLines(c), "", clusterCrash(t, c, 3))
	t.Logf("without min_replicas: %d of %d acknowledged deliveries lost (%.3f%%)", lost, acked, 100*float64(lost)/float64(max(acked, 1)))
}

// The queue's slot moves to another Cluster master (keys migrated with
// MIGRATE, clients redirected with ASK, then MOVED) while two servers
// accept and deliver: every acknowledged delivery arrives, nothing stays
// pending or in flight.
func TestQueueClusterReshardUnderLoad(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	be := startQueueBackend(t, "")
	opts := "concurrency 8"
	a := startFleetQueue(t, clusterLines(c), be.addr, opts)
	b := startFleetQueue(t, clusterLines(c), be.addr, opts)
	l := startSenders(t, []*fleetQueueServer{a, b}, 4)
	time.Sleep(time.Second)
	from := queueMaster(t, c)
	slot := clusterKeySlot(t, from, "webhook:q:{fleet}:s")
	var toID string
	for id, m := range c.Masters() {
		if m != from {
			toID = id
			break
		}
	}
	if err := c.MoveSlot(slot, from, toID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	ackedBodies := l.finish()
	dups := waitDelivered(t, be, ackedBodies, 60*time.Second)
	waitUntil(t, 10*time.Second, "the queue to empty", func() bool {
		qi := queueState(t, a.admin, "fleet")
		return qi.Pending == 0 && qi.InFlight == 0
	})
	if queueMaster(t, c) == from {
		t.Fatal("the queue's slot did not move")
	}
	t.Logf("slot %d moved under load: %d acknowledged, all delivered (%d twice), %d refusals (sent again)", slot, len(ackedBodies), dups, l.refused.Load())
}

func clusterKeySlot(t *testing.T, n *redistest.Server, key string) int {
	cl := redis.NewClient(&redis.Options{Addr: n.Addr})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	slot, err := cl.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return int(slot)
}

// A Redis whose eviction policy could drop queued items stops the config
// from loading, with the reason; `caddy validate` says so before a
// reload would.
func TestQueueRefusesEvictingRedis(t *testing.T) {
	rds := redistest.Start(t)
	if err := rds.Client().ConfigSet(context.Background(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	bin, err := buildCaddy()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{
	admin off
	storage file_system %s/data
	webhook {
		redis {
			address redis://%s/0
		}
	}
}
:0 {
	webhook_queue q {
		store redis
		deliver {
			reverse_proxy 127.0.0.1:9
		}
	}
}
`, dir, rds.Addr)
	file := filepath.Join(dir, "Caddyfile")
	os.WriteFile(file, []byte(cfg), 0o600)
	cmd := exec.Command(bin, "validate", "--config", file)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "maxmemory-policy allkeys-lru, which may evict queued deliveries") {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	}
}

// rate holds for the fleet: two servers deliver a backlog behind rate
// 20/1s, and the backend never sees more than the rate allows in any one
// second (a GCRA with a burst of one: at most 21 in a window that opens
// on an attempt).
func TestQueueFleetRate(t *testing.T) {
	rds := redistest.Start(t)
	be := startQueueBackend(t, "")
	opts := "concurrency 8\n\t\t\trate 20/1s"
	lines := "address redis://" + rds.Addr + "/0"
	a := startFleetQueue(t, lines, be.addr, opts)
	b := startFleetQueue(t, lines, be.addr, opts)
	if code := adminJSON(t, http.MethodPost, a.admin+"/webhook/queues/fleet/pause", nil); code != 200 {
		t.Fatalf("pause: %d", code)
	}
	acked, _ := sendAll(t, []*fleetQueueServer{a, b}, 160, 8, "rate")
	if code := adminJSON(t, http.MethodPost, a.admin+"/webhook/queues/fleet/resume", nil); code != 200 {
		t.Fatalf("resume: %d", code)
	}
	waitDelivered(t, be, acked, 60*time.Second)
	var times []time.Time
	byServer := map[string]int{}
	for _, at := range be.attempts() {
		times = append(times, at.at)
		byServer[at.header.Get("X-Delivered-By")]++
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	worst := 0
	for i := range times {
		j := sort.Search(len(times), func(k int) bool { return !times[k].Before(times[i].Add(time.Second)) })
		worst = max(worst, j-i)
	}
	span := times[len(times)-1].Sub(times[0])
	t.Logf("%d attempts in %s by %v, at most %d in any one second (rate 20/1s for the fleet)", len(times), span.Round(time.Millisecond), byServer, worst)
	if worst > 21 {
		t.Fatalf("%d attempts in one second, over the fleet's rate 20/1s", worst)
	}
	if len(byServer) != 2 {
		t.Errorf("attempts by server %v: want both servers delivering", byServer)
	}
}

// shards spreads one queue over the Cluster: with shards 6, the queue's
// streams sit on more than one master, and two servers still deliver
// 2,000 deliveries each exactly once.
func TestQueueShardedOnCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	checkQueueFleet(t, clusterLines(c), 2000, "shards 6")
	holders := 0
	for _, m := range c.Masters() {
		cl := redis.NewClient(&redis.Options{Addr: m.Addr})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		keys, _, err := cl.Scan(ctx, 0, "webhook:q:{fleet/*}:*", 1000).Result()
		cancel()
		cl.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) > 0 {
			holders++
		}
	}
	if holders < 2 {
		t.Fatalf("the 6 shards' keys are on %d master(s), want them spread", holders)
	}
	t.Logf("6 shards on %d of 3 masters", holders)
}

// senders deliver fresh signed deliveries through servers, each sender
// to one server, until finished; a refused one is counted, and the
// sender goes on with the next after a pause.
type senders struct {
	mu      sync.Mutex
	acked   map[string]string // queue id -> body
	refused atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startSenders(t *testing.T, servers []*fleetQueueServer, n int) *senders {
	l := &senders{acked: map[string]string{}, stop: make(chan struct{})}
	for sdr := range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			srv := servers[sdr%len(servers)]
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"sender":%d,"n":%d}`, sdr, i)
				id, _, _ := queued(t, srv.url, body)
				if id == "" {
					l.refused.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				l.mu.Lock()
				l.acked[id] = body
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// count is how many deliveries have been acknowledged so far.
func (l *senders) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// finish stops the senders and returns what was acknowledged.
func (l *senders) finish() map[string]string {
	close(l.stop)
	l.wg.Wait()
	return l.acked
}
