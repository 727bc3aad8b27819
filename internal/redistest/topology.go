package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterNodeTimeout is the cluster-node-timeout of the clusters
// StartCluster makes: how long a master may be unreachable before its
// replica is promoted.
const ClusterNodeTimeout = 2 * time.Second

// Cluster is a Redis Cluster of masters and replicas on loopback, made
// with `redis-cli --cluster create` from Debian's redis-server and
// redis-tools.
type Cluster struct {
	Nodes []*Server
	t     testing.TB
	cli   string
}

// StartCluster starts masters masters with replicas replicas each, joins
// them into a cluster and waits until every node reports cluster_state
// ok. It fails the test (never skips) when it cannot.
func StartCluster(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	cli := need(t, "redis-cli")
	c := &Cluster{t: t, cli: cli}
	var addrs []string
	for i := 0; i < masters*(1+replicas); i++ {
		s := startServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout/time.Millisecond)),
			// A replica may be promoted however long it was cut off.
			"--cluster-replica-validity-factor", "0")
		c.Nodes = append(c.Nodes, s)
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(30 * time.Second)
	waitLinksUp(t, c.Nodes, 30*time.Second)
	return c
}

// waitLinksUp waits until every replica among nodes has finished its
// first sync with its master (master_link_status:up): until then a
// replica holds nothing, and a master killed meanwhile loses all it
// had, which no client setting could prevent.
func waitLinksUp(t testing.TB, nodes []*Server, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, n := range nodes {
		for {
			info, err := n.do("info", "replication")
			if err == nil && (strings.Contains(info, "role:master") || strings.Contains(info, "master_link_status:up")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %s not in sync after %s: %s", n.Addr, within, firstLine(info, err))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// Addrs are the addresses of every node, masters and replicas.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Addr)
	}
	return out
}

// WaitOK waits until every live node reports cluster_state:ok and agrees
// that all 16384 slots are served by reachable masters.
func (c *Cluster) WaitOK(within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		bad := ""
		for _, n := range c.Nodes {
			if !n.Alive() {
				continue
			}
			info, err := n.do("cluster", "info")
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
				bad = n.Addr + ": " + firstLine(info, err)
				break
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster not ok after %s: %s", within, bad)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitMasters waits until n live nodes are masters serving slots: after
// a master is killed, until its replica has been promoted.
func (c *Cluster) WaitMasters(n int, within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for len(c.Masters()) != n {
		if time.Now().After(deadline) {
			c.t.Fatalf("%d masters after %s, want %d", len(c.Masters()), within, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.WaitOK(within)
}

// Masters returns the live masters, each with its node id.
func (c *Cluster) Masters() map[string]*Server {
	c.t.Helper()
	out := map[string]*Server{}
	for _, n := range c.Nodes {
		if !n.Alive() {
			continue
		}
		role, err := n.do("role")
		if err != nil || !strings.HasPrefix(role, "master") {
			continue
		}
		if nodes, err := n.do("cluster", "nodes"); err != nil || !ownsSlots(nodes) {
			continue
		}
		id, err := n.do("cluster", "myid")
		if err != nil {
			c.t.Fatal(err)
		}
		out[id] = n
	}
	return out
}

// Reshard moves slots slots from the master from to the master to, with
// `redis-cli --cluster reshard`, keys and all.
func (c *Cluster) Reshard(fromID, toID string, slots int) error {
	var entry string
	for _, n := range c.Nodes {
		if n.Alive() {
			entry = n.Addr
			break
		}
	}
	// After a reshard the nodes take a moment to agree on the new
	// configuration, and redis-cli refuses to start until they do.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := exec.Command(c.cli, "--cluster", "check", entry).CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster does not agree on its configuration: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, err := exec.Command(c.cli, "--cluster", "reshard", entry, "--cluster-from", fromID, "--cluster-to", toID,
		"--cluster-slots", strconv.Itoa(slots), "--cluster-yes", "--cluster-pipeline", "100").CombinedOutput()
	if err != nil {
		return fmt.Errorf("redis-cli --cluster reshard: %v\n%s", err, out)
	}
	return nil
}

// MoveSlot moves one hash slot, keys and all, from the master that
// holds it to the master to (by node id), as redis-cli's reshard does
// for each slot: IMPORTING on the target, MIGRATING on the source, the
// keys moved with MIGRATE, then the slot given to the target everywhere.
// Clients meanwhile get ASK and TRYAGAIN; after it, MOVED.
func (c *Cluster) MoveSlot(slot int, from *Server, toID string) error {
	c.t.Helper()
	var to *Server
	for id, m := range c.Masters() {
		if id == toID {
			to = m
		}
	}
	if to == nil {
		return fmt.Errorf("no live master %s", toID)
	}
	fromID, err := from.do("cluster", "myid")
	if err != nil {
		return err
	}
	if _, err := to.do("cluster", "setslot", slot, "importing", fromID); err != nil {
		return fmt.Errorf("importing: %w", err)
	}
	if _, err := from.do("cluster", "setslot", slot, "migrating", toID); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	host, port, _ := net.SplitHostPort(to.Addr)
	for {
		keys, err := from.do("cluster", "getkeysinslot", slot, 100)
		if err != nil {
			return err
		}
		if keys == "" {
			break
		}
		args := []any{"migrate", host, port, "", 0, 10000, "keys"}
		for _, k := range strings.Fields(keys) {
			args = append(args, k)
		}
		if _, err := from.do(args...); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	for _, n := range c.Nodes {
		if n.Alive() {
			if _, err := n.do("cluster", "setslot", slot, "node", toID); err != nil && n == to || err != nil && n == from {
				return fmt.Errorf("setslot node on %s: %w", n.Addr, err)
			}
		}
	}
	return nil
}

// Sentinel is a master, its replica (or replicas) and three Sentinels
// monitoring them under the name SentinelMaster.
type Sentinel struct {
	Master, Replica *Server
	// Replicas are every replica; Replica is the first.
	Replicas  []*Server
	Sentinels []*Server
	t         testing.TB
}

// SentinelMaster is the name the Sentinels monitor the master by.
const SentinelMaster = "mymaster"

// StartSentinel starts a master, a replica of it and three Sentinels
// (down-after 1 s, quorum 2), and waits until every Sentinel knows the
// replicas and the other Sentinels.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	return StartSentinelReplicas(t, 1)
}

// StartSentinelReplicas is StartSentinel with n replicas of the master.
func StartSentinelReplicas(t testing.TB, n int) *Sentinel {
	t.Helper()
	st := &Sentinel{t: t}
	st.Master = startServer(t)
	for range n {
		st.Replicas = append(st.Replicas, startServer(t, "--replicaof", "127.0.0.1", strconv.Itoa(st.Master.Port)))
	}
	st.Replica = st.Replicas[0]
	for i := 0; i < 3; i++ {
		port := freePort(t)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		m := SentinelMaster
		cfg := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %d 2\n", port, dir, m, st.Master.Port) +
			fmt.Sprintf("sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n", m, m, m)
		if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		bin := need(t, "redis-server")
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, t: t, cmd: exec.Command(bin, conf, "--sentinel")}
		s.start()
		t.Cleanup(s.Kill)
		st.Sentinels = append(st.Sentinels, s)
	}
	waitLinksUp(t, st.Replicas, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for !st.settled() {
		if time.Now().After(deadline) {
			t.Fatal("the Sentinels did not find the replica and each other within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return st
}

// Addrs are the Sentinels' addresses.
func (st *Sentinel) Addrs() []string {
	var out []string
	for _, s := range st.Sentinels {
		out = append(out, s.Addr)
	}
	return out
}

func (st *Sentinel) settled() bool {
	for _, s := range st.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		replicas, err1 := c.Replicas(ctx, SentinelMaster).Result()
		sentinels, err2 := c.Sentinels(ctx, SentinelMaster).Result()
		cancel()
		c.Close()
		if err1 != nil || err2 != nil || len(replicas) != len(st.Replicas) || len(sentinels) != 2 {
			return false
		}
	}
	return true
}

// MasterAddr is the master's address as the first Sentinel reports it.
func (st *Sentinel) MasterAddr() string { return st.masterAddrFrom(0) }

// MasterAddrs is the master's address as each Sentinel reports it.
func (st *Sentinel) MasterAddrs() []string {
	var out []string
	for i := range st.Sentinels {
		out = append(out, st.masterAddrFrom(i))
	}
	return out
}

func (st *Sentinel) masterAddrFrom(i int) string {
	c := redis.NewSentinelClient(&redis.Options{Addr: st.Sentinels[i].Addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	addr, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil || len(addr) != 2 {
		return ""
	}
	return addr[0] + ":" + addr[1]
}

// Failover asks a Sentinel to fail the master over to the replica
// (SENTINEL FAILOVER) and returns the old master's address.
func (st *Sentinel) Failover() (string, error) {
	old := st.MasterAddr()
	c := redis.NewSentinelClient(&redis.Options{Addr: st.Sentinels[0].Addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return old, c.Failover(ctx, SentinelMaster).Err()
}

// startServer starts a redis-server with no persistence on a free port
// with extra arguments, stopped when the test ends.
func startServer(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin := need(t, "redis-server")
	port := freePort(t)
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, t: t}
	// A replica's first sync starts at once (the default waits 5 s for
	// other replicas to join it).
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0", "--dir", t.TempDir()}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.start()
	t.Cleanup(s.Kill)
	return s
}

// Alive reports whether the server's process is running.
func (s *Server) Alive() bool {
	return s.cmd != nil && s.cmd.Process != nil && s.cmd.ProcessState == nil
}

// do runs one command on the server and returns its reply as text.
func (s *Server) do(args ...any) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := c.Do(ctx, args...).Result()
	if err != nil {
		return "", err
	}
	if list, ok := v.([]any); ok {
		parts := make([]string, len(list))
		for i, p := range list {
			parts[i] = fmt.Sprint(p)
		}
		return strings.Join(parts, " "), nil
	}
	return fmt.Sprint(v), nil
}

func need(t testing.TB, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: run ./scripts/test, which installs it (apt-get install -y redis-server redis-tools): %v", name, err)
	}
	return bin
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ownsSlots reports whether CLUSTER NODES says this node ("myself")
// serves slots.
func ownsSlots(nodes string) bool {
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) > 8 && strings.Contains(f[2], "myself") {
			return true
		}
	}
	return false
}

func firstLine(s string, err error) string {
	if err != nil {
		return err.Error()
	}
	line, _, _ := strings.Cut(s, "\n")
	return line
}
