// Command soak runs mixed webhook traffic against two Caddy servers built
// from this repository, one deduplicating on Redis and one in memory, and
// samples what would leak: each process's resident memory, goroutines and
// open file descriptors, and Redis' used_memory. It fails when any of
// them keeps growing after the warm-up. scripts/soak.sh runs it; the
// results are in RELIABILITY.md.
//
//	go run . -caddy /path/to/caddy -duration 10m -out /tmp/soak
package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"image/color"
	"io"
	"log"
	"math"
	mrand "math/rand/v2"
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
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

const secret = "soak-secret-3e9d1c7a5b"

var (
	caddyBin = flag.String("caddy", "", "the caddy binary built from this repository")
	duration = flag.Duration("duration", 10*time.Minute, "how long to send traffic")
	every    = flag.Duration("every", 10*time.Second, "sampling interval")
	warmup   = flag.Duration("warmup", 3*time.Minute, "samples before this are the warm-up (dedup keys live 2m)")
	rate     = flag.Int("rate", 150, "requests per second per server")
	outDir   = flag.String("out", "soak-out", "where the samples (CSV) and the plot (PNG) go")
)

func main() {
	flag.Parse()
	if *caddyBin == "" {
		log.Fatal("-caddy is required")
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Fatal(err)
	}
	redisAddr, stopRedis := startRedis()
	defer stopRedis()
	backend := startBackend()

	servers := []*server{
		startCaddy("memory", "", backend),
		startCaddy("redis", redisAddr, backend),
	}
	defer func() {
		for _, s := range servers {
			s.cmd.Process.Kill()
			s.cmd.Wait()
		}
	}()

	stats := &counts{byKind: map[string]map[int]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			traffic(s, stats, stop)
		}()
	}

	var samples []sample
	start := time.Now()
	tick := time.NewTicker(*every)
	for t := range tick.C {
		el := t.Sub(start)
		for _, s := range servers {
			sm := s.sample(el)
			if s.name == "redis" {
				sm.redisMem = redisUsedMemory(redisAddr)
			}
			samples = append(samples, sm)
			log.Printf("%6s %-6s rss %6.1f MiB  goroutines %4d  fds %4d  redis %6.2f MiB", el.Round(time.Second), s.name,
				float64(sm.rss)/(1<<20), sm.goroutines, sm.fds, float64(sm.redisMem)/(1<<20))
		}
		if el >= *duration {
			break
		}
	}
	tick.Stop()
	close(stop)
	wg.Wait()

	writeCSV(samples)
	plotSamples(samples)
	ok := report(samples, stats)
	if !ok {
		os.Exit(1)
	}
}

// server is one Caddy process under soak.
type server struct {
	name, url, admin string
	cmd              *exec.Cmd
}

type sample struct {
	at                   time.Duration
	server               string
	rss, redisMem        int64
	goroutines, fds      int
	requests, unexpected int64
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startRedis() (string, func()) {
	port := freePort()
	dir, _ := os.MkdirTemp("", "soak-redis-")
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		log.Fatalf("redis-server: %v (scripts/soak.sh installs it)", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for i := 0; redisUsedMemory(addr) == 0; i++ {
		if i > 100 {
			log.Fatal("redis-server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, func() { cmd.Process.Kill(); cmd.Wait(); os.RemoveAll(dir) }
}

// redisUsedMemory reads used_memory from INFO memory, speaking RESP.
func redisUsedMemory(addr string) int64 {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprint(c, "*2\r\n$4\r\nINFO\r\n$6\r\nmemory\r\n")
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0
	}
	m := regexp.MustCompile(`(?m)^used_memory:(\d+)`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return v
}

func startBackend() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	return "http://" + l.Addr().String()
}

func startCaddy(name, redisAddr, backend string) *server {
	port, admin := freePort(), freePort()
	store, globals := "memory", ""
	if redisAddr != "" {
		store = "redis"
		globals = fmt.Sprintf("webhook {\n\t\tredis {\n\t\t\taddress redis://%s/0\n\t\t}\n\t}", redisAddr)
	}
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	auto_https off
	%s
}
http://127.0.0.1:%d {
	route /github {
		webhook_rate_limit senders {
			key {http.request.header.X-Sender}
			rate 100000/1s
			store %s
		}
		webhook_auth github {
			secret {env.SOAK_SECRET}
			max_body 2MB
			dedup 2m
			store %s
		}
		reverse_proxy %s
	}
	route /limited {
		webhook_rate_limit tight {
			key all
			rate 10/1s
			store %s
		}
		respond 204
	}
}
`, admin, globals, port, store, store, backend, store)
	dir, _ := os.MkdirTemp("", "soak-caddy-")
	file := filepath.Join(dir, "Caddyfile")
	os.WriteFile(file, []byte(cfg), 0o600)
	cmd := exec.Command(*caddyBin, "run", "--config", file)
	cmd.Env = append(os.Environ(), "SOAK_SECRET="+secret, "HOME="+dir)
	logf, _ := os.Create(filepath.Join(*outDir, "caddy-"+name+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	s := &server{name: name, url: fmt.Sprintf("http://127.0.0.1:%d", port), admin: fmt.Sprintf("http://localhost:%d", admin), cmd: cmd}
	for i := 0; ; i++ {
		if resp, err := http.Get(s.admin + "/config/"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 200 {
			log.Fatalf("caddy (%s) did not start", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

var goroutineRe = regexp.MustCompile(`goroutine profile: total (\d+)`)

func (s *server) sample(at time.Duration) sample {
	sm := sample{at: at, server: s.name}
	pid := s.cmd.Process.Pid
	if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		if m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(raw); m != nil {
			kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
			sm.rss = kb << 10
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		sm.fds = len(ents)
	}
	if resp, err := http.Get(s.admin + "/debug/pprof/goroutine?debug=1"); err == nil {
		head := make([]byte, 128)
		n, _ := io.ReadFull(resp.Body, head)
		resp.Body.Close()
		if m := goroutineRe.FindSubmatch(head[:n]); m != nil {
			sm.goroutines, _ = strconv.Atoi(string(m[1]))
		}
	}
	return sm
}

// counts are the answers by kind of request and status.
type counts struct {
	mu     sync.Mutex
	byKind map[string]map[int]int
	total  atomic.Int64
	bad    atomic.Int64
}

func (c *counts) add(kind string, status int, ok bool) {
	c.total.Add(1)
	if !ok {
		c.bad.Add(1)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byKind[kind] == nil {
		c.byKind[kind] = map[int]int{}
	}
	c.byKind[kind][status]++
}

// bodies are JSON bodies of 1 KiB (most), 64 KiB and 1 MiB.
var bodies = func() map[int][]byte {
	out := map[int][]byte{}
	for _, n := range []int{1 << 10, 64 << 10, 1 << 20} {
		raw := make([]byte, n/2-16)
		rand.Read(raw)
		out[n] = []byte(`{"blob":"` + hex.EncodeToString(raw) + `"}`)
	}
	return out
}()

func pickBody() []byte {
	switch r := mrand.IntN(100); {
	case r < 2:
		return bodies[1<<20]
	case r < 20:
		return bodies[64<<10]
	}
	return bodies[1<<10]
}

func sign(body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// traffic sends about rate requests a second to s until stop: new
// deliveries (60%), copies of earlier ones (15%), forgeries (15%) and
// requests to a tight limiter (10%), from 8 senders.
func traffic(s *server, stats *counts, stop chan struct{}) {
	client := &http.Client{Timeout: 30 * time.Second}
	type sent struct {
		id   string
		body []byte
	}
	var mu sync.Mutex
	var recent []sent
	var seq atomic.Int64
	var wg sync.WaitGroup
	const workers = 8
	interval := time.Duration(float64(time.Second) * workers / float64(*rate))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				kind := "new"
				switch r := mrand.IntN(100); {
				case r < 15:
					kind = "copy"
				case r < 30:
					kind = "forged"
				case r < 40:
					kind = "limited"
				}
				var req *http.Request
				var made *sent
				switch kind {
				case "limited":
					req, _ = http.NewRequest(http.MethodPost, s.url+"/limited", nil)
				case "copy":
					mu.Lock()
					if len(recent) == 0 {
						mu.Unlock()
						continue
					}
					d := recent[mrand.IntN(len(recent))]
					mu.Unlock()
					req, _ = http.NewRequest(http.MethodPost, s.url+"/github", bytes.NewReader(d.body))
					req.Header.Set("X-GitHub-Delivery", d.id)
					req.Header.Set("X-Hub-Signature-256", sign(d.body))
				default:
					body := pickBody()
					id := fmt.Sprintf("%s-%d", s.name, seq.Add(1))
					req, _ = http.NewRequest(http.MethodPost, s.url+"/github", bytes.NewReader(body))
					req.Header.Set("X-GitHub-Delivery", id)
					if kind == "forged" {
						req.Header.Set("X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64))
					} else {
						req.Header.Set("X-Hub-Signature-256", sign(body))
						// Copied only once it is answered (below), as a
						// sender retries a delivery it has sent.
						made = &sent{id, body}
					}
				}
				req.Header.Set("X-Sender", "sender-"+strconv.Itoa(mrand.IntN(50)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					stats.add(kind, 0, false)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				st := resp.StatusCode
				ok := false
				switch kind {
				case "new":
					ok = st == 200
				case "copy":
					ok = st == 200 || st == 409
				case "forged":
					ok = st == 401
				case "limited":
					ok = st == 204 || st == 429
				}
				stats.add(kind, st, ok)
				if made != nil && st == 200 {
					mu.Lock()
					if len(recent) < 256 {
						recent = append(recent, *made)
					} else {
						recent[mrand.IntN(len(recent))] = *made
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
}

func writeCSV(samples []sample) {
	var b strings.Builder
	b.WriteString("seconds,server,rss_bytes,goroutines,fds,redis_used_memory\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%d,%s,%d,%d,%d,%d\n", int(s.at.Seconds()), s.server, s.rss, s.goroutines, s.fds, s.redisMem)
	}
	os.WriteFile(filepath.Join(*outDir, "samples.csv"), []byte(b.String()), 0o644)
}

// series picks one measure of one server after the warm-up.
func series(samples []sample, server string, pick func(sample) float64) (xs, ys []float64) {
	for _, s := range samples {
		if s.server == server && s.at >= *warmup {
			xs = append(xs, s.at.Seconds())
			ys = append(ys, pick(s))
		}
	}
	return xs, ys
}

// growth is the least-squares slope of ys over xs, times the span of
// xs: how much the measure grew over the window by its trend.
func growth(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 3 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	slope := (n*sxy - sx*sy) / (n*sxx - sx*sx)
	return slope * (xs[len(xs)-1] - xs[0])
}

type measure struct {
	name  string
	unit  string
	scale float64
	floor float64 // growth under this is noise, whatever the share
	pick  func(sample) float64
	redis bool
}

var measures = []measure{
	{"RSS", "MiB", 1 << 20, 16 << 20, func(s sample) float64 { return float64(s.rss) }, false},
	{"goroutines", "", 1, 20, func(s sample) float64 { return float64(s.goroutines) }, false},
	{"open fds", "", 1, 20, func(s sample) float64 { return float64(s.fds) }, false},
	{"Redis used_memory", "MiB", 1 << 20, 4 << 20, func(s sample) float64 { return float64(s.redisMem) }, true},
}

// report prints the results as a Markdown table and says whether the
// soak passed: every answer as expected, nothing trending upward past
// the warm-up (trend growth over the window above both 10% of the mean
// and the measure's noise floor).
func report(samples []sample, stats *counts) bool {
	ok := true
	fmt.Printf("\n%d requests over %s; %d answered other than expected\n\n", stats.total.Load(), *duration, stats.bad.Load())
	if stats.bad.Load() > 0 {
		ok = false
	}
	stats.mu.Lock()
	for _, kind := range []string{"new", "copy", "forged", "limited"} {
		fmt.Printf("- %s: %v\n", kind, stats.byKind[kind])
	}
	stats.mu.Unlock()
	fmt.Printf("\n| server | measure | after warm-up | at the end | min–max after warm-up | trend over the window | verdict |\n|---|---|---|---|---|---|---|\n")
	for _, srv := range []string{"memory", "redis"} {
		for _, m := range measures {
			if m.redis && srv != "redis" {
				continue
			}
			xs, ys := series(samples, srv, m.pick)
			if len(ys) == 0 {
				continue
			}
			lo, hi, mean := math.Inf(1), math.Inf(-1), 0.0
			for _, y := range ys {
				lo, hi, mean = math.Min(lo, y), math.Max(hi, y), mean+y/float64(len(ys))
			}
			g := growth(xs, ys)
			verdict := "flat"
			if g > m.floor && g > 0.10*mean {
				verdict = "**growing**"
				ok = false
			}
			f := func(v float64) string { return strconv.FormatFloat(v/m.scale, 'f', 1, 64) + unitSuffix(m.unit) }
			fmt.Printf("| %s | %s | %s | %s | %s–%s | %+.1f%s | %s |\n", srv, m.name, f(ys[0]), f(ys[len(ys)-1]), f(lo), f(hi), g/m.scale, unitSuffix(m.unit), verdict)
		}
	}
	if ok {
		fmt.Println("\nsoak passed")
	} else {
		fmt.Println("\nsoak FAILED")
	}
	return ok
}

func unitSuffix(u string) string {
	if u == "" {
		return ""
	}
	return " " + u
}

// plotSamples draws the four measures over time, both servers, in one
// PNG.
func plotSamples(samples []sample) {
	const rows, cols = 2, 2
	plots := make([][]*plot.Plot, rows)
	colors := map[string]color.Color{"memory": color.RGBA{R: 31, G: 119, B: 180, A: 255}, "redis": color.RGBA{R: 214, G: 39, B: 40, A: 255}}
	for i, m := range measures {
		p := plot.New()
		p.Title.Text = m.name
		p.X.Label.Text = "seconds"
		if m.unit != "" {
			p.Y.Label.Text = m.unit
		}
		p.Y.Min = 0
		for _, srv := range []string{"memory", "redis"} {
			if m.redis && srv != "redis" {
				continue
			}
			var pts plotter.XYs
			for _, s := range samples {
				if s.server == srv {
					pts = append(pts, plotter.XY{X: s.at.Seconds(), Y: m.pick(s) / m.scale})
				}
			}
			line, err := plotter.NewLine(pts)
			if err != nil {
				continue
			}
			line.Color = colors[srv]
			p.Add(line)
			p.Legend.Add(srv, line)
		}
		p.Legend.Top = true
		if plots[i/cols] == nil {
			plots[i/cols] = make([]*plot.Plot, cols)
		}
		plots[i/cols][i%cols] = p
	}
	img := vgimg.New(vg.Points(900), vg.Points(600))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(plots, tiles, dc)
	for r := range plots {
		for c := range plots[r] {
			if plots[r][c] != nil {
				plots[r][c].Draw(canvases[r][c])
			}
		}
	}
	f, err := os.Create(filepath.Join(*outDir, "soak.png"))
	if err != nil {
		log.Print(err)
		return
	}
	defer f.Close()
	png := vgimg.PngCanvas{Canvas: img}
	if _, err := png.WriteTo(f); err != nil {
		log.Print(err)
	}
}
