package caddywebhookauth_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webhookauth/caddy-webhookauth/internal/keyserver"
)

// TestAlertRules: the alerting rules load (promtool check rules) and
// every alert fires, and stays quiet, exactly as its unit tests say
// (promtool test rules). Prometheus' promtool comes from Debian's
// prometheus package, which ./scripts/test installs.
func TestAlertRules(t *testing.T) {
	promtool := need(t, "promtool")
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "observability"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Every alert in the rules has a unit test.
	rules, _ := os.ReadFile("observability/alerts.yml")
	tests, _ := os.ReadFile("observability/alerts_test.yml")
	n := 0
	for _, line := range strings.Split(string(rules), "\n") {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "- alert: ")
		if !ok {
			continue
		}
		n++
		if !strings.Contains(string(tests), "alertname: "+name+"\n") {
			t.Errorf("alert %s has no unit test", name)
		}
	}
	if n < 5 {
		t.Fatalf("only %d alerts found", n)
	}
}

// need finds a program the test cannot run without; it fails (never
// skips) when it is missing.
func need(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (Debian: apt-get install prometheus; ./scripts/test installs it)", name)
	}
	return path
}

// TestDashboardOnRealPrometheus: a real Prometheus scrapes a real Caddy
// under test traffic (verified, rotated-secret, forged, duplicate,
// rate-limited, store-failing and fetched-key deliveries), the alert
// rules load into it, and every expression of every dashboard panel,
// run through Prometheus' query API as Grafana would run it, returns
// data.
func TestDashboardOnRealPrometheus(t *testing.T) {
	prometheus := need(t, "prometheus")
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	raw, err := os.ReadFile("observability/webhookauth-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	if len(dash.Panels) < 7 {
		t.Fatalf("only %d panels", len(dash.Panels))
	}

	// Traffic first, so that Prometheus' first scrapes already see every
	// series; then a second round, so that every rate has two samples.
	const dir = "webhookauth/testdata/fetched"
	ks := keyserver.Start(t, dir)
	be := newBackend(t)
	t.Setenv("WEBHOOKAUTH_OBS_NEW", githubSecret)
	t.Setenv("WEBHOOKAUTH_OBS_OLD", "observability-old-secret-5d1e")
	dead := freePort(t) // nothing listens: every Redis call fails
	tester := newTester(t)
	tester.InitServer(caddyConfig(fmt.Sprintf(`
		webhook {
			redis {
				address 127.0.0.1:%d
				timeout 100ms
			}
			keys {
				hosts sns %s
				root_ca %s
			}
		}`, dead, ks.Host, ks.RootFile), fmt.Sprintf(`
	:9080 {
		route /github {
			webhook_rate_limit obs {
				key  {http.request.header.X-Sender}
				rate 1000/1h
			}
			webhook_auth github {
				secret {env.WEBHOOKAUTH_OBS_NEW}
				secret {env.WEBHOOKAUTH_OBS_OLD}
				dedup
				dedup_scope obs-%[2]d
			}
			reverse_proxy %[1]s
		}
		route /limited {
			webhook_rate_limit obs_tight {
				key  all
				rate 1/1h
			}
			respond 204
		}
		route /redis {
			webhook_auth github {
				secret {env.WEBHOOKAUTH_OBS_NEW}
				dedup
				store redis
			}
			reverse_proxy %[1]s
		}
		route /sns {
			webhook_auth sns {
				topic_arn *
			}
			reverse_proxy %[1]s
		}
		route /queued {
			webhook_queue obs-%[2]d {
				path %[3]s
				deliver {
					reverse_proxy %[1]s
				}
			}
		}
	}
	`, be.URL, time.Now().UnixNano(), t.TempDir())), "caddyfile")

	snsValid, certURL := snsVector(t)
	snsBody := strings.Replace(snsValid, certURL, ks.URL+"/sns.pem", 1)

	round := 0
	traffic := func() {
		round++
		now := time.Now()
		body := []byte(fmt.Sprintf(`{"zen":"observability","round":%d}`, round))
		send := func(path, secret, id string, forge bool, want int) {
			t.Helper()
			req := signedRequest(t, "github", secret, base+path, body, now)
			req.Header.Set("X-GitHub-Delivery", id)
			req.Header.Set("X-Sender", "obs")
			if forge {
				req.Header.Set("X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64))
			}
			resp := tester.AssertResponseCode(req, want)
			resp.Body.Close()
		}
		for i := 0; i < 5; i++ {
			id := fmt.Sprintf("obs-%d-%d", round, i)
			send("/github", githubSecret, id, false, 200)
			send("/github", githubSecret, id, false, 200) // a duplicate
			send("/github", "observability-old-secret-5d1e", id+"-old", false, 200)
			send("/github", githubSecret, id+"-forged", true, 401)
			send("/redis", githubSecret, id, false, 503)
			resp, _ := request(t, http.MethodPost, base+"/limited", "", nil)
			if resp.StatusCode != 204 && resp.StatusCode != 429 {
				t.Fatalf("/limited: %d", resp.StatusCode)
			}
		}
		if resp, out := request(t, http.MethodPost, base+"/sns", snsBody, nil); resp.StatusCode != 200 {
			t.Fatalf("/sns: %d %s", resp.StatusCode, out)
		}
		for range 3 {
			if resp, out := request(t, http.MethodPost, base+"/queued", string(body), nil); resp.StatusCode != 200 {
				t.Fatalf("/queued: %d %s", resp.StatusCode, out)
			}
		}
	}
	traffic()

	// A real Prometheus scraping Caddy's admin /metrics every second,
	// with the alert rules loaded.
	promPort := freePort(t)
	work := t.TempDir()
	rules, _ := filepath.Abs("observability/alerts.yml")
	cfg := fmt.Sprintf(`
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: caddy
    static_configs:
      - targets: ['localhost:%d']
`, rules, adminPort)
	os.WriteFile(filepath.Join(work, "prometheus.yml"), []byte(cfg), 0o600)
	var log bytes.Buffer
	cmd := exec.Command(prometheus, "--config.file="+filepath.Join(work, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(work, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort))
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	promURL := fmt.Sprintf("http://127.0.0.1:%d", promPort)

	query := func(expr string) (int, error) {
		resp, err := http.Get(promURL + "/api/v1/query?query=" + url.QueryEscape(expr))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return 0, fmt.Errorf("%s: %s", resp.Status, b)
		}
		if r.Status != "success" {
			return 0, fmt.Errorf("query error: %s", r.Error)
		}
		return len(r.Data.Result), nil
	}
	// Grafana's variables, as Grafana fills them in for "All" over a
	// short range.
	fill := strings.NewReplacer("$__rate_interval", "1m", "$provider", ".*")

	// Up: Prometheus answers and has scraped Caddy at least once.
	waitFor(t, 60*time.Second, &log, "Prometheus to scrape Caddy", func() bool {
		n, err := query(`up{job="caddy"} == 1`)
		return err == nil && n == 1
	})
	traffic() // the second samples of every counter
	pending := map[string]string{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			pending[fill.Replace(tg.Expr)] = p.Title
		}
	}
	for _, v := range dash.Templating.List {
		// label_values(METRIC, LABEL) is Grafana's; the series it reads
		// must exist.
		metric, _, _ := strings.Cut(strings.TrimPrefix(v.Definition, "label_values("), ",")
		pending["count by ("+v.Name+") ("+metric+")"] = "variable " + v.Name
	}
	var lastErr error
	waitFor(t, 60*time.Second, &log, "every panel to return data", func() bool {
		for expr := range pending {
			n, err := query(expr)
			if err != nil {
				lastErr = fmt.Errorf("%s: %v", pending[expr], err)
				// A syntax error never heals: fail now.
				t.Fatalf("panel %q: %v\n%s", pending[expr], err, expr)
			}
			if n > 0 {
				delete(pending, expr)
			}
		}
		return len(pending) == 0
	})
	if lastErr != nil {
		t.Log(lastErr)
	}
	// The rules loaded into the real Prometheus too.
	resp, err := http.Get(promURL + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"WebhookForgedShareHigh", "WebhookProviderAllFailing", "WebhookStoreErrors", "WebhookSecretRotationUnfinished"} {
		if !bytes.Contains(b, []byte(`"name":"`+name+`"`)) {
			t.Errorf("Prometheus did not load %s: %s", name, b)
		}
	}
	// The store errors are firing already: pending (for: 2m), not inactive.
	waitFor(t, 30*time.Second, &log, "WebhookStoreErrors to be pending", func() bool {
		n, err := query(`ALERTS{alertname="WebhookStoreErrors",store="redis"}`)
		return err == nil && n > 0
	})
}

// waitFor polls cond every 200ms until it holds or the deadline passes
// (a generous bound on a loaded machine, not a timing assertion).
func waitFor(t *testing.T, limit time.Duration, log *bytes.Buffer, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s\nprometheus log:\n%s", limit, what, tail(log.String(), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
