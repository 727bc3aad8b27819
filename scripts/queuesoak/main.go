// Command queuesoak runs a fleet of two Caddy servers sharing a
// webhook_queue on Redis for a while: signed deliveries arrive through
// both, a backend fails a fifth of the attempts, and one server is
// restarted (SIGTERM, then started again) every -restart. Every 10 s it
// samples each server's resident memory and goroutines and Redis'
// used_memory. At the end it stops sending, waits for the queue to
// drain, and checks that every acknowledged delivery reached the backend.
// It exits non-zero on a lost delivery or on memory or goroutines that
// keep growing after the warm-up. RELIABILITY.md has a run.
//
//	go build -o /tmp/caddy ./cmd/caddy
//	go run ./scripts/queuesoak -caddy /tmp/caddy -duration 10m
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const secret = "queue-soak-secret-0123456789"

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type server struct {
	name, url, admin, file, dir string
	cmd                         *exec.Cmd
	logs                        *os.File
}

func (s *server) start(bin string) {
	s.cmd = exec.Command(bin, "run", "--config", s.file)
	s.cmd.Env = append(os.Environ(), "HOME="+s.dir)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		log.Fatal(err)
	}
	for i := 0; ; i++ {
		if resp, err := http.Get(s.admin + "/config/"); err == nil {
			resp.Body.Close()
			return
		}
		if i > 400 {
			log.Fatalf("%s did not start", s.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
}

func (s *server) rss() int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(raw)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n * 1024
}

func (s *server) goroutines() int {
	resp, err := http.Get(s.admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	line, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	m := regexp.MustCompile(`total (\d+)`).FindSubmatch(line)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func main() {
	bin := flag.String("caddy", "", "the Caddy binary built from this repository")
	duration := flag.Duration("duration", 10*time.Minute, "how long deliveries arrive")
	warmup := flag.Duration("warmup", 2*time.Minute, "samples before this are not judged")
	restart := flag.Duration("restart", 2*time.Minute, "how often one server is restarted")
	rate := flag.Int("rate", 100, "deliveries a second")
	failShare := flag.Float64("fail", 0.2, "share of attempts the backend answers 500")
	flag.Parse()
	if *bin == "" {
		log.Fatal("-caddy is required")
	}
	work, _ := os.MkdirTemp("", "queuesoak")
	fmt.Println("work directory:", work)

	// Redis, as a fleet would run it: noeviction, no persistence.
	rport := freePort()
	redis := exec.Command("redis-server", "--port", strconv.Itoa(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--maxmemory", "1gb", "--maxmemory-policy", "noeviction", "--dir", work)
	if err := redis.Start(); err != nil {
		log.Fatal(err)
	}
	defer redis.Process.Kill()
	time.Sleep(300 * time.Millisecond)

	// The backend: fails a share of attempts, records the rest by queue id.
	var mu sync.Mutex
	delivered := map[string]int{}
	var attempts, failed atomic.Int64
	bport := freePort()
	go http.ListenAndServe(fmt.Sprintf("127.0.0.1:%d", bport), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		attempts.Add(1)
		if rand.Float64() < *failShare {
			failed.Add(1)
			w.WriteHeader(500)
			return
		}
		mu.Lock()
		delivered[r.Header.Get("X-Webhook-Queue-Id")]++
		mu.Unlock()
	}))

	var servers []*server
	for i := range 2 {
		port, admin := freePort(), freePort()
		dir := filepath.Join(work, fmt.Sprintf("s%d", i))
		os.MkdirAll(dir, 0o700)
		cfg := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	storage file_system %s/data
	webhook {
		redis {
			address redis://127.0.0.1:%d/0
		}
	}
}
:%d {
	route /gh {
		webhook_auth github {
			secret %s
		}
		webhook_queue soak {
			store redis
			concurrency 8
			retry 200ms 500ms 1s
			max_attempts 50
			timeout 5s
			visibility_timeout 10s
			deliver {
				reverse_proxy 127.0.0.1:%d
			}
		}
	}
}
`, admin, port, dir, rport, port, secret, bport)
		file := filepath.Join(dir, "Caddyfile")
		os.WriteFile(file, []byte(cfg), 0o600)
		logs, _ := os.Create(filepath.Join(dir, "caddy.log"))
		s := &server{name: fmt.Sprintf("server %d", i+1), url: fmt.Sprintf("http://127.0.0.1:%d/gh", port),
			admin: fmt.Sprintf("http://localhost:%d", admin), file: file, dir: dir, logs: logs}
		s.start(*bin)
		servers = append(servers, s)
	}
	defer func() {
		for _, s := range servers {
			s.cmd.Process.Kill()
		}
	}()

	// Senders: -rate deliveries a second, alternating servers; a refused
	// or cut delivery is sent again (to the other server), as senders do.
	var srvMu sync.RWMutex
	acked := map[string]bool{}
	var ackMu sync.Mutex
	var sent, refused atomic.Int64
	client := &http.Client{Timeout: 10 * time.Second}
	send := func(n int) {
		body := []byte(fmt.Sprintf(`{"soak":%d,"pad":%q}`, n, strings.Repeat("x", 512)))
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		for try := 0; try < 100; try++ {
			srvMu.RLock()
			s := servers[(n+try)%len(servers)]
			srvMu.RUnlock()
			req, _ := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Hub-Signature-256", sig)
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("soak-%d", n))
			resp, err := client.Do(req)
			if err == nil {
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var out struct{ Status, ID string }
				json.Unmarshal(raw, &out)
				if resp.StatusCode == 200 && out.ID != "" {
					ackMu.Lock()
					acked[out.ID] = true
					ackMu.Unlock()
					return
				}
			}
			refused.Add(1)
			time.Sleep(100 * time.Millisecond)
		}
	}
	stopSending := make(chan struct{})
	var senders sync.WaitGroup
	go func() {
		tick := time.NewTicker(time.Second / time.Duration(*rate))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stopSending:
				return
			case <-tick.C:
				senders.Add(1)
				go func() { defer senders.Done(); send(n) }()
			}
		}
	}()

	type sample struct {
		at       time.Duration
		rss      [2]int64
		gor      [2]int
		redisMem int64
	}
	var samples []sample
	redisMem := func() int64 {
		out, _ := exec.Command("redis-cli", "-p", strconv.Itoa(rport), "info", "memory").Output()
		m := regexp.MustCompile(`used_memory:(\d+)`).FindSubmatch(out)
		if m == nil {
			return 0
		}
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		return n
	}
	began := time.Now()
	nextRestart := began.Add(*restart)
	restarts := 0
	fmt.Printf("| time | server 1 RSS | server 2 RSS | server 1 goroutines | server 2 goroutines | Redis used_memory | acknowledged | attempts (failed) |\n|---|---|---|---|---|---|---|---|\n")
	for time.Since(began) < *duration {
		time.Sleep(10 * time.Second)
		if time.Now().After(nextRestart) {
			s := servers[restarts%2]
			s.stop()
			s.start(*bin)
			restarts++
			nextRestart = nextRestart.Add(*restart)
			fmt.Printf("| %s | restarted %s | | | | | | |\n", time.Since(began).Round(time.Second), s.name)
			continue
		}
		sm := sample{at: time.Since(began), redisMem: redisMem()}
		for i, s := range servers {
			sm.rss[i], sm.gor[i] = s.rss(), s.goroutines()
		}
		samples = append(samples, sm)
		ackMu.Lock()
		na := len(acked)
		ackMu.Unlock()
		fmt.Printf("| %s | %d MB | %d MB | %d | %d | %.1f MB | %d | %d (%d) |\n", sm.at.Round(time.Second), sm.rss[0]>>20, sm.rss[1]>>20, sm.gor[0], sm.gor[1],
			float64(sm.redisMem)/(1<<20), na, attempts.Load(), failed.Load())
	}
	close(stopSending)
	senders.Wait()
	sent.Store(int64(len(acked)))

	// Drain: every acknowledged delivery must arrive.
	deadline := time.Now().Add(3 * time.Minute)
	var missing int
	for {
		mu.Lock()
		ackMu.Lock()
		missing = 0
		for id := range acked {
			if delivered[id] == 0 {
				missing++
			}
		}
		ackMu.Unlock()
		mu.Unlock()
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	dups := 0
	mu.Lock()
	for id, n := range delivered {
		if acked[id] && n > 1 {
			dups += n - 1
		}
	}
	mu.Unlock()
	fmt.Printf("\n%d deliveries acknowledged in %s, %d answers refused or cut (sent again), %d restarts; %d attempts, %d failed by the backend; lost %d; delivered twice %d\n",
		len(acked), *duration, refused.Load(), restarts, attempts.Load(), failed.Load(), missing, dups)

	// Growth after the warm-up: the last third against the first third.
	bad := missing > 0
	var judged []sample
	for _, s := range samples {
		if s.at >= *warmup {
			judged = append(judged, s)
		}
	}
	if k := len(judged) / 3; k > 0 {
		avg := func(part []sample, f func(sample) float64) float64 {
			sum := 0.0
			for _, s := range part {
				sum += f(s)
			}
			return sum / float64(len(part))
		}
		// Growing: a quarter more, and more than noise (requests in
		// flight at the moment of a sample) in absolute terms.
		for _, m := range []struct {
			name  string
			f     func(sample) float64
			noise float64
		}{
			{"server 1 RSS", func(s sample) float64 { return float64(s.rss[0]) }, 10 << 20},
			{"server 2 RSS", func(s sample) float64 { return float64(s.rss[1]) }, 10 << 20},
			{"server 1 goroutines", func(s sample) float64 { return float64(s.gor[0]) }, 50},
			{"server 2 goroutines", func(s sample) float64 { return float64(s.gor[1]) }, 50},
			{"Redis used_memory", func(s sample) float64 { return float64(s.redisMem) }, 5 << 20},
		} {
			first, last := avg(judged[:k], m.f), avg(judged[len(judged)-k:], m.f)
			growth := (last - first) / first
			verdict := "flat"
			if growth > 0.25 && last-first > m.noise {
				verdict = "GROWING"
				bad = true
			}
			fmt.Printf("%s: first third %.0f, last third %.0f (%+.1f%%): %s\n", m.name, first, last, 100*growth, verdict)
		}
	}
	if bad {
		os.Exit(1)
	}
}
