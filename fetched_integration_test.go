package caddywebhookauth_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/webhookauth/caddy-webhookauth/internal/keyserver"
)

// SNS, PayPal and Pub/Sub through a real Caddy, the keys fetched by the
// webhook app from a real local HTTPS key server (a test CA standing in
// for the public roots, its host for the providers' hosts): valid
// deliveries reach the backend byte for byte, forgeries are refused, the
// certificate is fetched once for all the deliveries, a key URL off the
// allowlist costs no request, a redirect off it, a certificate for
// another name or another root and a 10 MB key are 503 key_unavailable,
// 200 concurrent deliveries on a cold cache make one fetch, and the key
// server going down leaves cached keys working and the rest answered 503.
// (webhookauth/fetched_test.go adds hostile tokens and key rotation.)
func TestFetchedKeysThroughCaddy(t *testing.T) {
	const dir = "webhookauth/testdata/fetched"
	ks := keyserver.Start(t, dir)
	be := newBackend(t)
	tester := newTester(t)
	tester.InitServer(caddyConfig(keyServerGlobals(ks), fmt.Sprintf(`
	:9080 {
		route /sns {
			webhook_auth sns {
				topic_arn *
				dedup
				dedup_scope fetched-%[2]d
			}
			reverse_proxy %[1]s
		}
		route /paypal {
			webhook_auth paypal {
				webhook_id 8PT597110X687430LKGECATA
				tolerance 0 # the vectors are PayPal's own, signed long ago
			}
			reverse_proxy %[1]s
		}
		route /pubsub {
			webhook_auth pubsub {
				audience https://hooks.example.com/pubsub
				service_account push@example-project.iam.gserviceaccount.com
			}
			reverse_proxy %[1]s
		}
	}
	`, be.URL, time.Now().UnixNano())), "caddyfile")

	send := func(path, body string, headers map[string]string) (int, string) {
		t.Helper()
		resp, out := request(t, http.MethodPost, base+path, body, headers)
		return resp.StatusCode, string(out)
	}
	// The SNS and PayPal vectors, their key URLs pointed at the key server.
	n := 0
	for _, d := range fetchedDeliveries(t, ks) {
		v, body := d.vector, d.body
		code, out := send("/"+v.Provider, body, d.headers)
		got := be.take()
		if v.Expect == "valid" {
			if code != 200 || len(got) != 1 || string(got[0].body) != body {
				t.Errorf("%s: %d %s, backend got %d", v.Name, code, out, len(got))
			}
		} else if code != 401 || len(got) != 0 {
			t.Errorf("%s: %d %s, backend got %d", v.Name, code, out, len(got))
		}
		n++
	}
	if n < 10 {
		t.Fatalf("only %d SNS and PayPal vectors sent", n)
	}
	if c := ks.Count("/sns.pem"); c != 1 {
		t.Errorf("the SNS certificate was fetched %d times, want once (then cached)", c)
	}

	// A key URL off the allowlist: refused, and the key server never asked.
	before := ks.Total()
	snsValid, certURL := snsVector(t)
	evil := strings.Replace(snsValid, certURL, "https://attacker.example.com/SimpleNotificationService-1.pem", 1)
	if code, out := send("/sns", evil, nil); code != 401 || !strings.Contains(out, `"reason":"signature_malformed"`) || ks.Total() != before {
		t.Errorf("cert URL off the allowlist: %d %s, key server asked %d times", code, out, ks.Total()-before)
	}

	// Certificate URLs that lead nowhere good, each answered 503
	// key_unavailable: a redirect to a host off the allowlist, a
	// certificate for another name, one not chained to the roots, 10 MB.
	for _, path := range []string{"/redirect.pem", "/other.pem", "/selfsigned.pem", "/big.pem"} {
		body := strings.Replace(snsValid, certURL, ks.URL+path, 1)
		if code, out := send("/sns", body, nil); code != 503 || !strings.Contains(out, `"reason":"key_unavailable"`) {
			t.Errorf("%s: %d %s", path, code, out)
		}
	}
	if got := be.take(); len(got) != 0 {
		t.Fatalf("the backend got %d deliveries with unusable keys", len(got))
	}

	// 200 concurrent deliveries naming a certificate never fetched: one
	// fetch. (Dedup absorbs the copies; each is answered 200.)
	cold := strings.Replace(snsValid, certURL, ks.URL+"/sns-cold.pem", 1)
	release := ks.Hold()
	codes := make(chan int, 200)
	for range 200 {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, base+"/sns", strings.NewReader(cold))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ks.Count("/sns-cold.pem") == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	release()
	for range 200 {
		if code := <-codes; code != 200 && code != 409 {
			t.Errorf("a concurrent delivery got %d", code)
		}
	}
	if n := ks.Count("/sns-cold.pem"); n != 1 {
		t.Errorf("%d fetches of a cold certificate for 200 concurrent deliveries, want 1", n)
	}
	be.take()

	// Pub/Sub: tokens signed now with the test Google key.
	token := func(aud string) string { return pubsubToken(t, aud) }
	push := `{"message":{"data":"aGVsbG8=","messageId":"136969346945","publishTime":"2026-11-29T05:00:00.000Z"},"subscription":"projects/p/subscriptions/s"}`
	code, out := send("/pubsub", push, map[string]string{"Authorization": "Bearer " + token("https://hooks.example.com/pubsub")})
	if got := be.take(); code != 200 || len(got) != 1 || string(got[0].body) != push {
		t.Errorf("pubsub: %d %s", code, out)
	}
	if code, out := send("/pubsub", push, map[string]string{"Authorization": "Bearer " + token("https://other.example.com")}); code != 401 || len(be.take()) != 0 {
		t.Errorf("pubsub, another audience: %d %s", code, out)
	}

	// The key server goes down: the cached SNS certificate and Google keys
	// keep working; PayPal's certificate under a URL never fetched cannot
	// be had: 503 with Retry-After.
	ks.SetDown(true)
	defer ks.SetDown(false)
	if code, _ := send("/sns", strings.Replace(snsValid, certURL, ks.URL+"/sns.pem", 1), nil); code != 200 {
		t.Errorf("SNS with the key server down and the certificate cached: %d", code)
	}
	be.take()
	for _, v := range projectVectors(t) {
		if v.Name != "paypal-valid" {
			continue
		}
		headers := map[string]string{}
		for k, val := range v.Headers {
			headers[k] = val
		}
		headers["PAYPAL-CERT-URL"] = ks.URL + "/paypal.pem?fresh"
		code, out := send("/paypal", v.Body, headers)
		if code != 401 {
			t.Errorf("a PayPal cert URL with a query: %d %s", code, out)
		}
		headers["PAYPAL-CERT-URL"] = ks.URL + "/paypal-rotated.pem"
		resp, body := request(t, http.MethodPost, base+"/paypal", v.Body, headers)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"reason":"key_unavailable"`) {
			t.Errorf("no key to be had: %d %s", resp.StatusCode, body)
		}
	}
	if got := be.take(); len(got) != 0 {
		t.Errorf("the backend got %d refused deliveries", len(got))
	}
	metrics := scrape(t, adminURL+"/metrics")
	for _, result := range []string{"hit", "fetched", "refused", "error"} {
		if metrics[`caddy_webhook_key_lookups_total{result="`+result+`"}`] == 0 {
			t.Errorf("no key lookup counted as %s", result)
		}
	}
}

// snsVector is a valid SNS notification of the project's vectors and the
// certificate URL it names, which tests point at the local key server.
func snsVector(t *testing.T) (body, certURL string) {
	t.Helper()
	for _, v := range projectVectors(t) {
		if v.Name == "sns-notification-v2-subject-valid" {
			body = v.Body
		}
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("the SNS vector: %v", err)
	}
	certURL, _ = m["SigningCertURL"].(string)
	if certURL == "" {
		t.Fatal("the SNS vector names no SigningCertURL")
	}
	return body, certURL
}

// fetchedDelivery is an SNS or PayPal delivery vector whose key URL points
// at the local key server.
type fetchedDelivery struct {
	vector
	body    string
	headers map[string]string
}

func fetchedDeliveries(t *testing.T, ks *keyserver.Server) []fetchedDelivery {
	t.Helper()
	var out []fetchedDelivery
	for _, v := range projectVectors(t) {
		if (v.Provider != "sns" && v.Provider != "paypal") || v.Kind != "delivery" {
			continue
		}
		d := fetchedDelivery{vector: v, body: v.Body, headers: map[string]string{}}
		for k, val := range v.Headers {
			d.headers[k] = val
		}
		if v.Provider == "sns" {
			var m map[string]any
			json.Unmarshal([]byte(d.body), &m)
			d.body = strings.Replace(d.body, m["SigningCertURL"].(string), ks.URL+"/sns.pem", 1)
		} else {
			d.headers["PAYPAL-CERT-URL"] = ks.URL + "/paypal.pem"
		}
		out = append(out, d)
	}
	return out
}
