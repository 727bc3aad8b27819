package caddywebhookauth_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// scrape reads a Prometheus text exposition and returns the value of every
// caddy_webhook_ series, keyed by its name and labels as written.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_webhook_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsThroughRealCaddy sends a known mix of good, bad, duplicate
// and rate-limited deliveries through a real Caddy and checks the exact
// change of every webhook series, on the admin endpoint and on Caddy's
// metrics handler. Counters live as long as the process (they survive
// reloads), so the test compares scrapes before and after.
func TestMetricsThroughRealCaddy(t *testing.T) {
	be := newBackend(t)
	t.Setenv("WEBHOOKAUTH_IT_GITHUB", githubSecret)
	t.Setenv("WEBHOOKAUTH_IT_GITHUB_OLD", "integration-github-old-secret")

	tester := newTester(t)
	tester.InitServer(caddyConfig("", fmt.Sprintf(`
	:9080 {
		metrics /metrics
		route /m {
			webhook_rate_limit mlim {
				key  {http.request.header.X-Sender}
				rate 4/1h
			}
			webhook_auth github {
				secret {env.WEBHOOKAUTH_IT_GITHUB}
				secret {env.WEBHOOKAUTH_IT_GITHUB_OLD}
				dedup
			}
			reverse_proxy %s
		}
	}
	`, be.URL)), "caddyfile")

	before := scrape(t, adminURL+"/metrics")
	now := time.Now()
	send := func(sender, secret, id string, body []byte, mutate func(*http.Request), want int) {
		t.Helper()
		req := signedRequest(t, "github", secret, base+"/m", body, now)
		req.Header.Set("X-GitHub-Delivery", id)
		req.Header.Set("X-Sender", sender)
		if mutate != nil {
			mutate(req)
		}
		resp := tester.AssertResponseCode(req, want)
		resp.Body.Close()
	}
	body := []byte(`{"zen":"metrics"}`)
	send("a", githubSecret, "m-1", body, nil, 200)                    // verified, secret 0
	send("a", "integration-github-old-secret", "m-2", body, nil, 200) // verified, secret 1
	send("a", githubSecret, "m-1", body, nil, 200)                    // duplicate (secret 0 matched again)
	send("a", githubSecret, "m-3", body, func(r *http.Request) {      // tampered: signature_invalid
		r.Body = io.NopCloser(bytes.NewReader([]byte(`{"zen":"metricz"}`)))
	}, 401)
	send("a", githubSecret, "m-4", body, nil, 429) // a's fifth request: rate limited
	send("b", githubSecret, "m-5", body, func(r *http.Request) {
		r.Header.Del("X-Hub-Signature-256")
	}, 401) // signature_missing
	if got := len(be.take()); got != 2 {
		t.Fatalf("backend got %d requests, want 2", got)
	}

	for _, url := range []string{adminURL + "/metrics", base + "/metrics"} {
		after := scrape(t, url)
		want := map[string]float64{
			`caddy_webhook_requests_total{provider="github",result="verified"}`:            2,
			`caddy_webhook_requests_total{provider="github",result="duplicate"}`:           1,
			`caddy_webhook_requests_total{provider="github",result="signature_invalid"}`:   1,
			`caddy_webhook_requests_total{provider="github",result="signature_missing"}`:   1,
			`caddy_webhook_requests_total{provider="github",result="timestamp_invalid"}`:   0,
			`caddy_webhook_rate_limit_decisions_total{decision="allowed",name="mlim"}`:     5,
			`caddy_webhook_rate_limit_decisions_total{decision="denied",name="mlim"}`:      1,
			`caddy_webhook_rate_limit_decisions_total{decision="store_error",name="mlim"}`: 0,
			`caddy_webhook_secret_matches_total{provider="github",secret_index="0"}`:       2,
			`caddy_webhook_secret_matches_total{provider="github",secret_index="1"}`:       1,
			`caddy_webhook_verify_duration_seconds_count{provider="github"}`:               4,
			`caddy_webhook_store_errors_total{op="claim",store="memory"}`:                  0,
		}
		for series, delta := range want {
			a, ok := after[series]
			if !ok {
				t.Errorf("%s: series %s missing", url, series)
				continue
			}
			if got := a - before[series]; got != delta {
				t.Errorf("%s: %s went up by %v, want %v", url, series, got, delta)
			}
		}
		for series := range after {
			for _, leak := range []string{githubSecret, "m-1", "X-Sender", `sender="`} {
				if strings.Contains(series, leak) {
					t.Errorf("%s: series %s carries %q", url, series, leak)
				}
			}
		}
	}
}

// TestRejectionLogFloodBounded floods a real Caddy with bad signatures and
// checks that the log stays bounded, that every rejection is accounted
// for (written or counted as suppressed), and that no line carries the
// secret or a signature.
func TestRejectionLogFloodBounded(t *testing.T) {
	be := newBackend(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	t.Setenv("WEBHOOKAUTH_IT_GITHUB", githubSecret)
	tester := newTester(t)
	tester.InitServer(caddyConfig(fmt.Sprintf(`
		log {
			output file %s
			format json
		}`, logFile), fmt.Sprintf(`
	:9080 {
		route /flood {
			webhook_auth github {
				secret {env.WEBHOOKAUTH_IT_GITHUB}
			}
			reverse_proxy %s
		}
	}
	`, be.URL)), "caddyfile")

	const flood = 400
	start := time.Now()
	var sigs sync.Map
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 0; i < flood; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			req := signedRequest(t, "github", "not-the-secret", base+"/flood", []byte(`{"n":`+strconv.Itoa(i)+`}`), time.Now())
			sigs.Store(req.Header.Get("X-Hub-Signature-256"), true)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Errorf("status %d, want 401", resp.StatusCode)
			}
		}(i)
	}
	wg.Wait()
	seconds := int(time.Since(start)/time.Second) + 1
	// One more rejection in a later second reports what was suppressed.
	// The sampler counts by wall-clock second inside a running Caddy,
	// where no clock can be injected; sleeping to 100 ms past the next
	// second boundary guarantees a later second however slow the machine
	// (the sampler's own logic is unit-tested on an injected clock).
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	resp := tester.AssertResponseCode(signedRequest(t, "github", "not-the-secret", base+"/flood", []byte(`{}`), time.Now()), 401)
	resp.Body.Close()
	if got := len(be.take()); got != 0 {
		t.Fatalf("backend got %d requests", got)
	}

	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	lines, suppressed := 0, int64(0)
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if !bytes.Contains(line, []byte(`"webhook rejected"`)) {
			continue
		}
		var entry struct {
			Reason     string `json:"reason"`
			Suppressed int64  `json:"suppressed"`
			Provider   string `json:"provider"`
		}
		if err := json.Unmarshal(line, &entry); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if entry.Reason != "signature_invalid" || entry.Provider != "github" {
			t.Fatalf("log line %s", line)
		}
		lines++
		suppressed += entry.Suppressed
		if bytes.Contains(line, []byte(githubSecret)) || bytes.Contains(line, []byte(`"n":`)) {
			t.Fatalf("log line leaks the secret or the body: %s", line)
		}
		sigs.Range(func(k, _ any) bool {
			if bytes.Contains(line, []byte(k.(string))) || bytes.Contains(line, []byte(strings.TrimPrefix(k.(string), "sha256="))) {
				t.Fatalf("log line leaks a signature: %s", line)
			}
			return true
		})
	}
	// The flood spans `seconds` one-second windows, the last request one
	// more: at most 10 lines in each.
	if max := 10 * (seconds + 2); lines > max {
		t.Fatalf("%d rejection lines for %d requests over %ds; the sampler allows at most %d", lines, flood+1, seconds, max)
	}
	if lines+int(suppressed) != flood+1 {
		t.Fatalf("%d lines written + %d reported suppressed != %d rejections", lines, suppressed, flood+1)
	}
	t.Logf("%d rejections: %d lines, %d suppressed", flood+1, lines, suppressed)
}

// TestCountRejectedThroughRealCaddy: a `count rejected` limiter charges
// only deliveries webhook_auth rejects. A sender that forges three
// deliveries is then refused with 429 before its body is read or hashed
// (the verify histogram does not move), while a real sender behind the
// same limiter is never limited.
func TestCountRejectedThroughRealCaddy(t *testing.T) {
	be := newBackend(t)
	t.Setenv("WEBHOOKAUTH_IT_GITHUB", githubSecret)
	tester := newTester(t)
	tester.InitServer(caddyConfig("", fmt.Sprintf(`
	:9080 {
		route /g {
			webhook_rate_limit forgers {
				key   {http.request.header.X-Sender}
				count rejected
				rate  3/1h
			}
			webhook_auth github {
				secret {env.WEBHOOKAUTH_IT_GITHUB}
			}
			reverse_proxy %s
		}
		route /report {
			webhook_rate_limit reported {
				key   {http.request.header.X-Sender}
				count rejected
				rate  1/1h
			}
			webhook_auth github {
				secret {env.WEBHOOKAUTH_IT_GITHUB}
				mode report
			}
			reverse_proxy %s
		}
	}
	`, be.URL, be.URL)), "caddyfile")

	send := func(sender, secret string, want int) {
		t.Helper()
		sendTo(t, tester, "/g", sender, secret, want)
	}
	const verified = `caddy_webhook_verify_duration_seconds_count{provider="github"}`
	before := scrape(t, adminURL+"/metrics")
	for i := 0; i < 10; i++ {
		send("real", githubSecret, 200)
	}
	for i := 0; i < 3; i++ {
		send("forger", "guessed-secret", 401)
	}
	mid := scrape(t, adminURL+"/metrics")
	for i := 0; i < 5; i++ {
		send("forger", "guessed-secret", 429)
	}
	send("forger", githubSecret, 429) // the key is shut out, even when it signs right
	send("real", githubSecret, 200)
	after := scrape(t, adminURL+"/metrics")

	if got := mid[verified] - before[verified]; got != 13 {
		t.Fatalf("%v verifications for 10 real and 3 forged deliveries, want 13", got)
	}
	if got := after[verified] - mid[verified]; got != 1 {
		t.Fatalf("%v verifications after the forger was shut out, want 1 (the real sender's)", got)
	}
	if got := len(be.take()); got != 11 {
		t.Fatalf("backend got %d deliveries, want 11", got)
	}
	denied := `caddy_webhook_rate_limit_decisions_total{decision="denied",name="forgers"}`
	if got := after[denied] - before[denied]; got != 6 {
		t.Fatalf("denied went up by %v, want 6", got)
	}

	// In report mode webhook_auth refuses nothing, so a count-rejected
	// limiter charges nothing: a forged delivery keeps going through.
	for i := 0; i < 3; i++ {
		sendTo(t, tester, "/report", "forger", "guessed-secret", 200)
	}
	if got := len(be.take()); got != 3 {
		t.Fatalf("backend got %d reported deliveries, want 3", got)
	}
}

// sendTo sends a GitHub delivery signed with secret from sender and
// checks the status.
func sendTo(t *testing.T, tester *caddytest.Tester, path, sender, secret string, want int) {
	t.Helper()
	req := signedRequest(t, "github", secret, base+path, []byte(`{"a":1}`), time.Now())
	req.Header.Set("X-Sender", sender)
	resp := tester.AssertResponseCode(req, want)
	resp.Body.Close()
}
