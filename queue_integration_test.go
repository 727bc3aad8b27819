package caddywebhookauth_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// queueBackend is a real HTTP server whose answer the test sets: it
// records every attempt (queue id, attempt number, body) and answers
// with answer's status (200 when nil).
type queueBackend struct {
	srv    *http.Server
	addr   string
	mu     sync.Mutex
	got    []queueAttempt
	answer func(a queueAttempt, n int) (int, http.Header)
}

type queueAttempt struct {
	id, attempt, delivery string
	body                  []byte
	header                http.Header
	at                    time.Time
	status                int
}

// startQueueBackend listens on addr ("" for a free port).
func startQueueBackend(t *testing.T, addr string) *queueBackend {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b := &queueBackend{addr: l.Addr().String()}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a := queueAttempt{id: r.Header.Get("X-Webhook-Queue-Id"), attempt: r.Header.Get("X-Webhook-Attempt"),
			delivery: r.Header.Get("X-GitHub-Delivery"), body: body, header: r.Header.Clone(), at: time.Now(), status: 200}
		b.mu.Lock()
		n := len(b.got)
		answer := b.answer
		b.mu.Unlock()
		var h http.Header
		if answer != nil {
			a.status, h = answer(a, n)
		}
		b.mu.Lock()
		b.got = append(b.got, a)
		b.mu.Unlock()
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(a.status)
	})}
	go b.srv.Serve(l)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func (b *queueBackend) attempts() []queueAttempt {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]queueAttempt(nil), b.got...)
}

func (b *queueBackend) setAnswer(f func(a queueAttempt, n int) (int, http.Header)) {
	b.mu.Lock()
	b.answer = f
	b.mu.Unlock()
}

// delivered returns the attempts answered 2xx, by queue id.
func (b *queueBackend) delivered() map[string][]queueAttempt {
	out := map[string][]queueAttempt{}
	for _, a := range b.attempts() {
		if a.status >= 200 && a.status < 300 {
			out[a.id] = append(out[a.id], a)
		}
	}
	return out
}

// waitUntil polls cond every 20ms for up to limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
	}
}

// queued sends a signed GitHub delivery to url and returns the queue id
// from the answer ("" unless 200 queued).
func queued(t *testing.T, url, body string) (string, int, string) {
	t.Helper()
	req := signedRequest(t, "github", githubSecret, url, []byte(body), time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct{ Status, ID string }
	json.Unmarshal(raw, &out)
	if resp.StatusCode != 200 || out.Status != "queued" {
		return "", resp.StatusCode, string(raw)
	}
	return out.ID, resp.StatusCode, string(raw)
}

func adminJSON(t *testing.T, method, url string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

type queueInfo struct {
	Name                    string
	Pending, Dead, Retained int64
	InFlight                int64 `json:"in_flight"`
	Paused                  bool
}

func queueState(t *testing.T, admin, name string) queueInfo {
	var qi queueInfo
	if code := adminJSON(t, http.MethodGet, admin+"/webhook/queues/"+name, &qi); code != 200 {
		t.Fatalf("queue %s: %d", name, code)
	}
	return qi
}

// The queue through a real Caddy, with webhook_auth's dedup in front and
// a real backend behind reverse_proxy: deliveries accepted while the
// backend is down all arrive once it is up, byte for byte, with their
// queue id and attempt; a sender's copy is a duplicate, not a second
// item; a 400 is dead at once and redriven; pause holds delivery while
// accepting goes on; listings show no body and no header value; a full
// queue answers 503 queue_full with Retry-After.
func TestQueueThroughCaddy(t *testing.T) {
	down := freePort(t)
	dir := t.TempDir()
	tester := newTester(t)
	tester.InitServer(caddyConfig("", fmt.Sprintf(`
	:9080 {
		route /gh {
			webhook_auth github {
				secret %[1]s
				dedup
				dedup_scope queue-%[4]d
			}
			webhook_queue gh-%[4]d {
				path %[3]s
				retry 100ms 200ms 400ms
				max_attempts 100
				deliver {
					reverse_proxy 127.0.0.1:%[2]d
				}
			}
		}
		route /small {
			webhook_auth github {
				secret %[1]s
			}
			webhook_queue small-%[4]d {
				path %[3]s
				max_pending 3
				deliver {
					reverse_proxy 127.0.0.1:%[2]d
				}
			}
		}
	}
	`, githubSecret, down, dir, time.Now().UnixNano())), "caddyfile")
	name := fmt.Sprintf("gh-%d", time.Now().UnixNano())
	var list []queueInfo
	adminJSON(t, http.MethodGet, adminURL+"/webhook/queues", &list)
	for _, q := range list {
		if strings.HasPrefix(q.Name, "gh-") {
			name = q.Name
		}
	}

	// The backend is down: 20 deliveries are accepted and stored.
	ids := map[string]string{} // queue id -> body
	var first string
	for i := range 20 {
		body := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", i*50))
		id, code, out := queued(t, base+"/gh", body)
		if id == "" {
			t.Fatalf("delivery %d: %d %s", i, code, out)
		}
		ids[id] = body
		if i == 0 {
			first = body
		}
	}
	// The sender's retry of a stored delivery: a duplicate (webhook_auth
	// counted the stored delivery as done), not a second item.
	req := signedRequest(t, "github", githubSecret, base+"/gh", []byte(first), time.Now())
	req.Header.Set("X-GitHub-Delivery", "fixed-delivery-id")
	if resp, out := doRequest(t, req); resp.StatusCode != 200 || !strings.Contains(out, `"queued"`) {
		t.Fatalf("a delivery under a fixed id: %d %s", resp.StatusCode, out)
	}
	req = signedRequest(t, "github", githubSecret, base+"/gh", []byte(first), time.Now())
	req.Header.Set("X-GitHub-Delivery", "fixed-delivery-id")
	resp, out := doRequest(t, req)
	if resp.StatusCode != 200 || !strings.Contains(out, `"duplicate"`) {
		t.Fatalf("the sender's retry: %d %s", resp.StatusCode, out)
	}
	qi := queueState(t, adminURL, name)
	if qi.Pending+qi.InFlight != 21 {
		_, out := doRequest(t, mustGet(t, adminURL+"/webhook/queues/"+name+"/items?limit=1000"))
		t.Fatalf("queue state while the backend is down: %+v\n%s", qi, out)
	}
	// Listings: metadata only.
	resp, out = doRequest(t, mustGet(t, adminURL+"/webhook/queues/"+name+"/items?state=pending&limit=1000"))
	if resp.StatusCode != 200 || strings.Count(out, `"id"`) != 21 {
		t.Fatalf("items: %d %.300s", resp.StatusCode, out)
	}
	for _, secretish := range []string{`"pad"`, "xxxxxxxx", "sha256=", githubSecret} {
		if strings.Contains(out, secretish) {
			t.Errorf("the item listing holds %q", secretish)
		}
	}

	// The backend comes up (on the port reverse_proxy dials): every item
	// arrives, byte for byte, with its queue id and attempt number.
	be := startQueueBackend(t, fmt.Sprintf("127.0.0.1:%d", down))
	waitUntil(t, 30*time.Second, "21 deliveries", func() bool { return len(be.delivered()) == 21 })
	got := be.delivered()
	for id, body := range ids {
		as := got[id]
		if len(as) != 1 || string(as[0].body) != body {
			t.Errorf("item %s: %d deliveries", id, len(as))
			continue
		}
		if as[0].attempt == "" || as[0].header.Get("X-Hub-Signature-256") == "" || as[0].header.Get("X-Forwarded-For") == "" {
			t.Errorf("item %s: headers %v", id, as[0].header)
		}
	}
	waitUntil(t, 5*time.Second, "an empty queue", func() bool {
		q := queueState(t, adminURL, name)
		return q.Pending == 0 && q.InFlight == 0
	})

	// A 400 is dead at once; redrive delivers it.
	be.setAnswer(func(a queueAttempt, _ int) (int, http.Header) {
		if bytes.Contains(a.body, []byte("reject-me")) {
			return 400, nil
		}
		return 200, nil
	})
	badID, _, _ := queued(t, base+"/gh", `{"reject-me":true}`)
	waitUntil(t, 10*time.Second, "a dead item", func() bool { return queueState(t, adminURL, name).Dead == 1 })
	var dead []struct {
		ID         string
		Attempts   int
		LastStatus int `json:"last_status"`
	}
	adminJSON(t, http.MethodGet, adminURL+"/webhook/queues/"+name+"/items?state=dead", &dead)
	if len(dead) != 1 || dead[0].ID != badID || dead[0].Attempts != 1 || dead[0].LastStatus != 400 {
		t.Fatalf("dead items: %+v", dead)
	}
	be.setAnswer(nil)
	var redriven map[string]int
	if code := adminJSON(t, http.MethodPost, adminURL+"/webhook/queues/"+name+"/redrive", &redriven); code != 200 || redriven["redriven"] != 1 {
		t.Fatalf("redrive: %d %v", code, redriven)
	}
	waitUntil(t, 10*time.Second, "the redriven item", func() bool { return len(be.delivered()[badID]) == 1 })

	// Pause: accepted, not delivered; resume: delivered.
	if code := adminJSON(t, http.MethodPost, adminURL+"/webhook/queues/"+name+"/pause", nil); code != 200 {
		t.Fatalf("pause: %d", code)
	}
	held, _, _ := queued(t, base+"/gh", `{"held":1}`)
	time.Sleep(500 * time.Millisecond)
	if len(be.delivered()[held]) != 0 || !queueState(t, adminURL, name).Paused {
		t.Fatal("delivered while paused")
	}
	adminJSON(t, http.MethodPost, adminURL+"/webhook/queues/"+name+"/resume", nil)
	waitUntil(t, 10*time.Second, "the held item", func() bool { return len(be.delivered()[held]) == 1 })

	// A full queue: 503 queue_full with Retry-After; nothing 2xx'd is
	// missing.
	be.setAnswer(func(queueAttempt, int) (int, http.Header) { return 503, nil })
	for i := range 3 {
		if id, code, out := queued(t, base+"/small", fmt.Sprintf(`{"small":%d}`, i)); id == "" {
			t.Fatalf("small %d: %d %s", i, code, out)
		}
	}
	r4 := signedRequest(t, "github", githubSecret, base+"/small", []byte(`{"small":4}`), time.Now())
	resp = assertProblem(t, tester, r4, 503, "queue_full")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("queue_full without Retry-After")
	}
	be.setAnswer(nil)
}

func mustGet(t *testing.T, url string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func doRequest(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

// A flapping backend (every other attempt 500, every third 429 with
// Retry-After) still gets everything; a throttled queue (rate 50/1s)
// never sends more than 50 attempts in any second, and a backend that
// keeps failing is probed one attempt at a time.
func TestQueueFlappingAndThrottled(t *testing.T) {
	be := startQueueBackend(t, "")
	be.setAnswer(func(a queueAttempt, n int) (int, http.Header) {
		switch {
		case strings.Contains(string(a.body), "throttled"):
			return 200, nil
		case n%3 == 2:
			return 429, http.Header{"Retry-After": {"1"}}
		case n%2 == 1:
			return 500, nil
		}
		return 200, nil
	})
	tester := newTester(t)
	stamp := time.Now().UnixNano()
	tester.InitServer(caddyConfig("", fmt.Sprintf(`
	:9080 {
		route /flap {
			webhook_queue flap-%[3]d {
				path %[2]s
				retry 50ms 100ms 200ms
				max_attempts 50
				deliver {
					reverse_proxy %[1]s
				}
			}
		}
		route /slow {
			webhook_queue slow-%[3]d {
				path %[2]s
				rate 50/1s
				concurrency 8
				deliver {
					reverse_proxy %[1]s
				}
			}
		}
	}
	`, be.addr, t.TempDir(), stamp)), "caddyfile")
	want := map[string]bool{}
	for i := range 40 {
		resp, out := doRequest(t, mustPost(t, base+"/flap", fmt.Sprintf(`{"flap":%d}`, i)))
		var q struct{ ID string }
		json.Unmarshal([]byte(out), &q)
		if resp.StatusCode != 200 || q.ID == "" {
			t.Fatalf("flap %d: %d %s", i, resp.StatusCode, out)
		}
		want[q.ID] = true
	}
	waitUntil(t, 60*time.Second, "40 deliveries through a flapping backend", func() bool {
		d := be.delivered()
		for id := range want {
			if len(d[id]) == 0 {
				return false
			}
		}
		return true
	})
	retried := 0
	for _, a := range be.attempts() {
		if want[a.id] && a.attempt != "1" {
			retried++
		}
	}
	if retried == 0 {
		t.Error("no attempt was retried: the backend did not flap")
	}

	// Throttle: 300 items at rate 50/1s.
	be.mu.Lock()
	be.got = nil
	be.mu.Unlock()
	for i := range 300 {
		if resp, out := doRequest(t, mustPost(t, base+"/slow", fmt.Sprintf(`{"throttled":%d}`, i))); resp.StatusCode != 200 {
			t.Fatalf("slow %d: %d %s", i, resp.StatusCode, out)
		}
	}
	waitUntil(t, 30*time.Second, "300 throttled deliveries", func() bool { return len(be.attempts()) >= 300 })
	var at []time.Time
	for _, a := range be.attempts() {
		at = append(at, a.at)
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	worst := 0
	for i := range at {
		j := sort.Search(len(at), func(k int) bool { return at[k].Sub(at[i]) >= time.Second })
		worst = max(worst, j-i)
	}
	// rate 50/1s with a burst of one: at most 51 starts in any second
	// (the window's two ends).
	if worst > 51 {
		t.Errorf("%d attempts within one second, rate 50/1s", worst)
	}
	t.Logf("throttle: 300 items, at most %d attempts in any second, %v in all", worst, at[len(at)-1].Sub(at[0]))
}

func mustPost(t *testing.T, url, body string) *http.Request {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// Crash: senders deliver while the backend is down; Caddy (a separate
// process built from this repository) is killed with SIGKILL at a random
// moment, three times; each time it is restarted on the same queue, and
// at the end the backend comes up. Every delivery answered 2xx reaches
// the backend at least once; copies are counted and reported.
func TestQueueSurvivesSIGKILL(t *testing.T) {
	bin, err := buildCaddy()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	backendPort, port, admin := freePort(t), freePort(t), freePort(t)
	cfg := fmt.Sprintf(`{
	admin localhost:%[1]d
	http_port %[2]d
	storage file_system %[3]s/data
}
:%[2]d {
	route /gh {
		webhook_auth github {
			secret %[5]s
		}
		webhook_queue crash {
			path %[3]s/queue
			retry 50ms 100ms
			max_attempts 1000
			deliver {
				reverse_proxy 127.0.0.1:%[4]d
			}
		}
	}
}
`, admin, port, dir, backendPort, githubSecret)
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	start := func() *exec.Cmd { return startCaddyProcess(t, bin, file, dir, admin, &logs) }
	url := fmt.Sprintf("http://127.0.0.1:%d/gh", port)
	acked := map[string]string{} // queue id -> body
	var mu sync.Mutex
	refused := 0
	for run := range 3 {
		cmd := start()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for s := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					body := fmt.Sprintf(`{"run":%d,"sender":%d,"n":%d}`, run, s, i)
					id, _, _ := queued(t, url, body)
					mu.Lock()
					if id != "" {
						acked[id] = body
					} else {
						refused++
					}
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		close(stop)
		wg.Wait()
	}
	cmd := start()
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("caddy logged:\n%.5000s", logs.String())
		}
	}()
	be := startQueueBackend(t, fmt.Sprintf("127.0.0.1:%d", backendPort))
	dups := waitDelivered(t, be, acked, 120*time.Second)
	if len(acked) < 30 {
		t.Fatalf("only %d deliveries were acknowledged in three runs", len(acked))
	}
	t.Logf("SIGKILL x3: %d acknowledged, all delivered (%d copies delivered twice, %d sends refused or cut by the kill)", len(acked), dups, refused)
}

// Reload under load: `caddy reload` every second for 30 s, each config
// changing the queue's settings (concurrency, retry delays, the respond
// body), while senders deliver and a backend that fails a fifth of the
// attempts takes them. Nothing acknowledged is lost, nothing stays in
// flight, and the queue with its counts carries across every reload.
func TestQueueReloadUnderLoad(t *testing.T) {
	bin, err := buildCaddy()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	be := startQueueBackend(t, "")
	be.setAnswer(func(_ queueAttempt, n int) (int, http.Header) {
		if n%5 == 4 {
			return 503, nil
		}
		return 200, nil
	})
	port, admin := freePort(t), freePort(t)
	config := func(gen int) string {
		return fmt.Sprintf(`{
	admin localhost:%[1]d
	http_port %[2]d
	storage file_system %[3]s/data
}
:%[2]d {
	route /q {
		webhook_queue reload {
			path %[3]s/queue
			concurrency %[5]d
			retry %[6]dms 200ms
			max_attempts 1000
			respond 202 "generation %[7]d: {http.webhook.queue_id}"
			deliver {
				reverse_proxy %[4]s
			}
		}
	}
}
`, admin, port, dir, be.addr, 1+gen%4, 50+gen%3*10, gen)
	}
	file := filepath.Join(dir, "Caddyfile")
	os.WriteFile(file, []byte(config(0)), 0o600)
	var logs bytes.Buffer
	cmd := startCaddyProcess(t, bin, file, dir, admin, &logs)
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("caddy logged:\n%.5000s", logs.String())
		}
	}()
	adminBase := fmt.Sprintf("http://localhost:%d", admin)
	url := fmt.Sprintf("http://127.0.0.1:%d/q", port)
	var mu sync.Mutex
	acked := map[string]bool{}
	other := map[int]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for s := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Post(url, "application/json", strings.NewReader(fmt.Sprintf(`{"s":%d,"i":%d}`, s, i)))
				if err != nil {
					continue // a connection a reload closed: the sender retries
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				if _, id, ok := strings.Cut(string(raw), ": "); resp.StatusCode == 202 && ok {
					acked[id] = true
				} else {
					other[resp.StatusCode]++
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	for gen := 1; gen <= 30; gen++ {
		time.Sleep(time.Second)
		os.WriteFile(file, []byte(config(gen)), 0o600)
		if out, err := exec.Command(bin, "reload", "--config", file, "--address", fmt.Sprintf("localhost:%d", admin)).CombinedOutput(); err != nil {
			t.Fatalf("caddy reload %d: %v\n%s", gen, err, out)
		}
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	waitUntil(t, 60*time.Second, fmt.Sprintf("%d acknowledged deliveries", n), func() bool {
		d := be.delivered()
		for id := range acked {
			if len(d[id]) == 0 {
				return false
			}
		}
		return true
	})
	var qi queueInfo
	waitUntil(t, 10*time.Second, "nothing pending or in flight", func() bool {
		adminJSON(t, http.MethodGet, adminBase+"/webhook/queues/reload", &qi)
		return qi.Pending == 0 && qi.InFlight == 0
	})
	resp, out := doRequest(t, mustPost(t, url, `{"last":1}`))
	if resp.StatusCode != 202 || !strings.HasPrefix(out, "generation 30: ") {
		t.Errorf("the last config is not in use: %d %q", resp.StatusCode, out)
	}
	metrics := scrape(t, adminBase+"/metrics")
	if got := metrics[`caddy_webhook_queue_accepted_total{queue="reload"}`]; got < float64(n) {
		t.Errorf("accepted_total %v after %d acknowledged: the counter did not survive the reloads", got, n)
	}
	if n < 100 {
		t.Fatalf("only %d deliveries acknowledged in 30 s", n)
	}
	t.Logf("30 reloads: %d acknowledged, all delivered; other answers %v", n, other)
}

// A disk that fills up: the store cannot write, so the sender gets 503
// queue_unavailable with Retry-After, never a 2xx for something not
// stored, and every delivery that was answered 2xx is in the queue. The
// queue lives on a 1 MiB tmpfs mounted for the test (the machine and CI
// run as root).
func TestQueueFullDiskRefuses(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mounting a small tmpfs (the test needs root): %v %s", err, out)
	}
	defer exec.Command("umount", "-l", mnt).Run()
	tester := newTester(t)
	name := fmt.Sprintf("disk-%d", time.Now().UnixNano())
	tester.InitServer(caddyConfig("", fmt.Sprintf(`
	:9080 {
		route /disk {
			webhook_queue %[2]s {
				path %[1]s
				deliver {
					reverse_proxy 127.0.0.1:1
				}
			}
		}
	}
	`, mnt, name)), "caddyfile")
	adminJSON(t, http.MethodPost, adminURL+"/webhook/queues/"+name+"/pause", nil)
	body := strings.Repeat("z", 16<<10)
	acked := map[string]bool{}
	var refusal *http.Response
	var refusalBody string
	for i := 0; i < 200 && refusal == nil; i++ {
		resp, out := doRequest(t, mustPost(t, base+"/disk", body))
		var q struct{ ID string }
		json.Unmarshal([]byte(out), &q)
		switch {
		case resp.StatusCode == 200 && q.ID != "":
			acked[q.ID] = true
		case resp.StatusCode == 503:
			refusal, refusalBody = resp, out
		default:
			t.Fatalf("delivery %d: %d %s", i, resp.StatusCode, out)
		}
	}
	if refusal == nil {
		t.Fatal("200 deliveries of 16 KiB fit a 1 MiB disk")
	}
	if !strings.Contains(refusalBody, `"reason":"queue_unavailable"`) || refusal.Header.Get("Retry-After") == "" {
		t.Fatalf("the full disk: %s, Retry-After %q", refusalBody, refusal.Header.Get("Retry-After"))
	}
	var items []struct{ ID string }
	adminJSON(t, http.MethodGet, adminURL+"/webhook/queues/"+name+"/items?limit=10000", &items)
	stored := map[string]bool{}
	for _, it := range items {
		stored[it.ID] = true
	}
	for id := range acked {
		if !stored[id] {
			t.Errorf("delivery %s was answered 2xx but is not in the queue", id)
		}
	}
	t.Logf("a 1 MiB disk: %d deliveries stored, then 503 queue_unavailable", len(acked))
}

// TestQueueExample runs examples/queue as its README says, on free ports:
// the gate starts with the backend down, a delivery is stored and
// answered, `queue list` shows it pending, the backend starts, and the
// queue empties into it.
func TestQueueExample(t *testing.T) {
	bin, err := buildCaddy()
	if err != nil {
		t.Fatal(err)
	}
	cmds := shellCommands(t, "examples/queue/README.md")
	if len(cmds) != 5 {
		t.Fatalf("README commands: %q", cmds)
	}
	admin, gate, backend, beAdmin := freePort(t), freePort(t), freePort(t), freePort(t)
	ports := strings.NewReplacer("localhost:2029", fmt.Sprintf("localhost:%d", admin), "localhost:8090", fmt.Sprintf("localhost:%d", gate),
		"localhost:8091", fmt.Sprintf("localhost:%d", backend), "localhost:2030", fmt.Sprintf("localhost:%d", beAdmin))
	dir := t.TempDir()
	files := map[string]string{}
	for _, f := range []string{"Caddyfile", "backend.Caddyfile"} {
		src, err := os.ReadFile("examples/queue/" + f)
		if err != nil {
			t.Fatal(err)
		}
		files["examples/queue/"+f] = filepath.Join(dir, f)
		if err := os.WriteFile(files["examples/queue/"+f], []byte(ports.Replace(string(src))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	local := func(c string) string {
		c = strings.ReplaceAll(c, "go run ./cmd/caddy", bin)
		for from, to := range files {
			c = strings.ReplaceAll(c, from+" ", to+" ")
			if strings.HasSuffix(c, from) {
				c = strings.TrimSuffix(c, from) + to
			}
		}
		return ports.Replace(c)
	}
	env := append(os.Environ(), "HOME="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir())
	serve := func(c string, adminPort int) {
		cmd := exec.Command("bash", "-c", strings.Replace(local(c), " "+bin, " exec "+bin, 1))
		cmd.Env = env
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			if t.Failed() {
				t.Logf("%s logged:\n%.3000s", c, logs.String())
			}
		})
		waitUntil(t, 20*time.Second, "the example's Caddy", func() bool {
			resp, err := http.Get(fmt.Sprintf("http://localhost:%d/config/", adminPort))
			if err == nil {
				resp.Body.Close()
			}
			return err == nil
		})
	}
	run := func(c string) string {
		cmd := exec.Command("bash", "-c", local(c))
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c, err, out)
		}
		return string(out)
	}
	serve(cmds[0], admin)
	if out := run(cmds[1]); !strings.Contains(out, "HTTP/1.1 200 OK") || !strings.Contains(out, `{"status":"queued","id":"`) {
		t.Fatalf("send: %s", out)
	}
	if out := run(cmds[2]); !regexp.MustCompile(`(?m)^github\s+1\s+0\s+0\s+0\s`).MatchString(out) {
		t.Fatalf("queue list with the backend down: %s", out)
	}
	serve(cmds[3], beAdmin)
	waitUntil(t, 30*time.Second, "the queue to empty into the backend", func() bool {
		return regexp.MustCompile(`(?m)^github\s+0\s+0\s+0\s+0\s`).MatchString(run(cmds[4]))
	})
}

// startCaddyProcess runs the Caddy built from this repository on file,
// its home in dir and its output in logs, and waits for its admin API on
// admin. The caller stops it (SIGKILL included).
func startCaddyProcess(t *testing.T, bin, file, dir string, admin int, logs *bytes.Buffer) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "run", "--config", file)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "caddy to start", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://localhost:%d/config/", admin))
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return cmd
}
