package caddywebhookauth_test

// Regression tests for the third attack review (issue #22): each finding
// tried as the review tried it, against a real Caddy, a real backend and,
// for the fetched keys, a real local HTTPS key server.

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookauth/caddy-webhookauth/internal/keyserver"
)

const fixtureDir = "webhookauth/testdata/fetched"

// jsonString is s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// snsNotification signs an SNS Notification with the key server's SNS
// key and returns its members in SNS's order, each as `"Name":value`, so
// that a test can add, repeat or respell members around them.
func snsNotification(t *testing.T, ks *keyserver.Server, message, topic string) []string {
	t.Helper()
	id := strconv.FormatInt(time.Now().UnixNano(), 10)
	ts := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	canonical := "Message\n" + message + "\nMessageId\n" + id + "\nTimestamp\n" + ts + "\nTopicArn\n" + topic + "\nType\nNotification\n"
	d := sha256.Sum256([]byte(canonical))
	sig, err := rsa.SignPKCS1v15(nil, keyserver.PrivateKey(t, fixtureDir, "sns.key"), crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return []string{
		`"Type":"Notification"`, `"MessageId":` + jsonString(id), `"TopicArn":` + jsonString(topic),
		`"Message":` + jsonString(message), `"Timestamp":` + jsonString(ts), `"SignatureVersion":"2"`,
		`"Signature":` + jsonString(base64.StdEncoding.EncodeToString(sig)),
		`"SigningCertURL":` + jsonString(ks.URL+"/sns.pem"),
	}
}

func object(members ...string) string { return "{" + strings.Join(members, ",") + "}" }

// F10: the gate and every mainstream JSON reader agree on every member
// SNS signs, or the gate refuses: a case variant or a repeated member
// beside the signed one is signature_malformed, never a delivery.
func TestAttackSNSParserDifferential(t *testing.T) {
	ks := keyserver.Start(t, fixtureDir)
	be := newBackend(t)
	tester := newTester(t)
	const topic = "arn:aws:sns:us-east-1:123456789012:orders"
	tester.InitServer(caddyConfig(keyServerGlobals(ks), fmt.Sprintf(`
	:9080 {
		route /sns {
			webhook_auth sns {
				topic_arn %[2]s
			}
			reverse_proxy %[1]s
		}
	}
	`, be.URL, topic)), "caddyfile")

	m := snsNotification(t, ks, "the signed text", topic)
	// m[3] is Message, m[2] TopicArn.
	cases := []struct {
		name string
		body string
		pass bool
	}{
		{"as signed", object(m...), true},
		{"an evil Message first, the signed text last as message",
			object(append([]string{`"Message":"evil"`}, append(append([]string{}, m[:3]...), append(m[4:], `"message":"the signed text"`)...)...)...), false},
		{"the signed Message, then a case variant", object(append(append([]string{}, m...), `"MESSAGE":"evil"`)...), false},
		{"Message twice", object(append(append([]string{}, m...), `"Message":"evil"`)...), false},
		{"the victim's topic beside the signed one as topicArn", object(append(append([]string{}, m...), `"topicArn":"arn:aws:sns:us-east-1:999999999999:victim"`)...), false},
		{"Message spelled in escapes, once", object(append(append(append([]string{}, m[:3]...), `"Mess\u0061ge":`+strings.TrimPrefix(m[3], `"Message":`)), m[4:]...)...), true},
		{"a lone surrogate in the signed text", object(append(append(append([]string{}, m[:3]...), `"Message":"the signed text\ud800"`), m[4:]...)...), false},
		{"a byte-order mark before the document", "\ufeff" + object(m...), false},
	}
	for _, c := range cases {
		resp, out := request(t, http.MethodPost, base+"/sns", c.body, nil)
		got := be.take()
		if c.pass {
			if resp.StatusCode != 200 || len(got) != 1 || string(got[0].body) != c.body {
				t.Errorf("%s: %d %s, backend got %d", c.name, resp.StatusCode, out, len(got))
			}
			continue
		}
		if resp.StatusCode == 200 || len(got) != 0 {
			t.Errorf("%s: %d %s, backend got %d", c.name, resp.StatusCode, out, len(got))
			continue
		}
		// Whatever the gate let through, a backend reading the body
		// with Python's or JavaScript's rules would read the signed text:
		// here nothing was let through at all.
		if resp.StatusCode != 401 {
			t.Errorf("%s: %d %s, want 401", c.name, resp.StatusCode, out)
		}
	}
}

// F11: a body of any kind (chunked included, any method) means a request
// is not an unsigned handshake; with handshake off it is verified like
// any delivery, so an unsigned chunked body never reaches the backend.
// And a request let in as a possible signed handshake (Okta's GET) that
// is not one in its documented shape meets `methods`: 405.
func TestAttackHandshakeWithChunkedBody(t *testing.T) {
	be := newBackend(t)
	tester := newTester(t)
	tester.InitServer(caddyConfig("", fmt.Sprintf(`
	:9080 {
		route /graph {
			webhook_auth msgraph {
				secret graph-client-state-0123456789
				handshake off
			}
			reverse_proxy %[1]s
		}
		route /dropbox {
			webhook_auth dropbox {
				secret dropbox-app-secret-0123456789
				handshake off
				methods POST GET
			}
			reverse_proxy %[1]s
		}
		route /okta {
			webhook_auth okta {
				secret okta-shared-secret-0123456789
			}
			reverse_proxy %[1]s
		}
	}
	`, be.URL)), "caddyfile")

	chunked := "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
	body := `{"value":[{"resource":"evil"}]}`
	for _, target := range []string{"POST /graph?validationToken=abc", "GET /dropbox?challenge=abc"} {
		c := rawRequest(t, target+" HTTP/1.1\r\nHost: localhost\r\n"+chunked, fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		out, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode != 401 || len(be.take()) != 0 {
			t.Errorf("%s with a chunked body: %d %s", target, resp.StatusCode, out)
		}
	}
	// The bare handshake, passed on as it is (handshake off): the
	// positive control.
	if resp, _ := request(t, http.MethodGet, base+"/dropbox?challenge=abc", "", nil); resp.StatusCode != 200 || len(be.take()) != 1 {
		t.Errorf("the bare Dropbox handshake: %d", resp.StatusCode)
	}

	auth := map[string]string{"Authorization": "okta-shared-secret-0123456789"}
	resp, out := request(t, http.MethodGet, base+"/okta", "", map[string]string{"Authorization": auth["Authorization"], "X-Okta-Verification-Challenge": "abc-123"})
	if resp.StatusCode != 200 || !strings.Contains(string(out), `"verification":"abc-123"`) || len(be.take()) != 0 {
		t.Errorf("Okta's verification: %d %s", resp.StatusCode, out)
	}
	resp, out = request(t, http.MethodGet, base+"/okta", "", map[string]string{"Authorization": auth["Authorization"], "X-Okta-Verification-Challenge": "<script>"})
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" || len(be.take()) != 0 {
		t.Errorf("Okta's GET with a challenge outside the shape: %d %s", resp.StatusCode, out)
	}
}

// paypalDelivery signs a PayPal delivery with the key server's PayPal
// key: the headers for body, transmission id and time.
func paypalDelivery(t *testing.T, ks *keyserver.Server, webhookID, id string, at time.Time, body []byte) map[string]string {
	t.Helper()
	ts := at.UTC().Format(time.RFC3339)
	signed := fmt.Sprintf("%s|%s|%s|%d", id, ts, webhookID, crc32.ChecksumIEEE(body))
	d := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(nil, keyserver.PrivateKey(t, fixtureDir, "paypal.key"), crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"PAYPAL-TRANSMISSION-ID": id, "PAYPAL-TRANSMISSION-TIME": ts, "PAYPAL-AUTH-ALGO": "SHA256withRSA",
		"PAYPAL-TRANSMISSION-SIG": base64.StdEncoding.EncodeToString(sig), "PAYPAL-CERT-URL": ks.URL + "/paypal.pem",
		"Content-Type": "application/json",
	}
}

// forgeCRC appends four bytes to prefix so that the whole has the CRC32
// (IEEE) target: what anyone holding one PayPal delivery can do to any
// body.
func forgeCRC(prefix []byte, target uint32) []byte {
	table := crc32.MakeTable(crc32.IEEE)
	var rev [256]byte
	for i, v := range table {
		rev[v>>24] = byte(i)
	}
	var idx [4]byte
	r := ^target
	for k := 3; k >= 0; k-- {
		idx[k] = rev[r>>24]
		r = (r ^ table[idx[k]]) << 8
	}
	reg := ^crc32.ChecksumIEEE(prefix)
	out := append([]byte{}, prefix...)
	for k := 0; k < 4; k++ {
		out = append(out, byte(reg)^idx[k])
		reg = table[idx[k]] ^ (reg >> 8)
	}
	return out
}

// F15: one captured PayPal delivery no longer yields forged bodies: a day
// old, its transmission time is outside the window; within it, a second
// body under the same (signed) transmission id is a duplicate, however
// its CRC32 was forced and whatever event id it claims.
func TestAttackPayPalForgedBodies(t *testing.T) {
	ks := keyserver.Start(t, fixtureDir)
	be := newBackend(t)
	tester := newTester(t)
	const webhookID = "8PT597110X687430LKGECATA"
	tester.InitServer(caddyConfig(keyServerGlobals(ks), fmt.Sprintf(`
	:9080 {
		route /paypal {
			webhook_auth paypal {
				webhook_id %[2]s
				dedup
				dedup_scope paypal-%[3]d
			}
			reverse_proxy %[1]s
		}
	}
	`, be.URL, webhookID, time.Now().UnixNano())), "caddyfile")

	genuine := []byte(`{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{"amount":{"value":"10.00"}}}`)
	headers := paypalDelivery(t, ks, webhookID, "tx-"+strconv.FormatInt(time.Now().UnixNano(), 10), time.Now(), genuine)
	if resp, out := request(t, http.MethodPost, base+"/paypal", string(genuine), headers); resp.StatusCode != 200 || len(be.take()) != 1 {
		t.Fatalf("the genuine delivery: %d %s", resp.StatusCode, out)
	}
	for i := range 3 {
		evil := forgeCRC([]byte(fmt.Sprintf(`{"id":"WH-EVIL-%d","event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{"amount":{"value":"99999.00"}}} `, i)), crc32.ChecksumIEEE(genuine))
		if crc32.ChecksumIEEE(evil) != crc32.ChecksumIEEE(genuine) {
			t.Fatal("the CRC32 was not forced")
		}
		resp, out := request(t, http.MethodPost, base+"/paypal", string(evil), headers)
		if got := be.take(); len(got) != 0 || resp.StatusCode != 200 || !strings.Contains(string(out), `"duplicate"`) {
			t.Errorf("forged body %d under the captured transmission: %d %s, backend got %d", i, resp.StatusCode, out, len(got))
		}
	}
	old := paypalDelivery(t, ks, webhookID, "tx-old", time.Now().Add(-24*time.Hour), genuine)
	evil := forgeCRC([]byte(`{"id":"WH-EVIL-OLD","resource":{"amount":{"value":"99999.00"}}} `), crc32.ChecksumIEEE(genuine))
	assertProblem(t, tester, mustRequest(t, "/paypal", string(evil), old), 401, "timestamp_out_of_window")
	if got := be.take(); len(got) != 0 {
		t.Fatalf("the backend got %d forged deliveries", len(got))
	}
}

// mustRequest is a POST to path on the Caddy under test.
func mustRequest(t *testing.T, path, body string, headers map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}

// F12 and F13: the fetched-key cache keeps senders and kinds apart, never
// panics on what a URL served, fetches one URL once however it is
// spelled, remembers failures, charges a missing key to a `count
// rejected` limiter, and keeps the keys in use through a flood.
func TestAttackFetchedKeyCache(t *testing.T) {
	ks := keyserver.Start(t, fixtureDir)
	be := newBackend(t)
	tester := newTester(t)
	const webhookID = "8PT597110X687430LKGECATA"
	globals := strings.Replace(keyServerGlobals(ks), "keys {", "keys {\n\t\t\t\tmax_entries 16", 1)
	tester.InitServer(caddyConfig(globals, fmt.Sprintf(`
	:9080 {
		route /sns {
			webhook_auth sns {
				topic_arn *
			}
			reverse_proxy %[1]s
		}
		route /sns-limited {
			webhook_rate_limit forgers {
				key {remote_host}
				rate 5/1m
				count rejected
			}
			webhook_auth sns {
				topic_arn *
			}
			reverse_proxy %[1]s
		}
		route /paypal {
			webhook_auth paypal {
				webhook_id %[2]s
			}
			reverse_proxy %[1]s
		}
		route /pubsub {
			webhook_auth pubsub {
				audience https://hooks.example.com/pubsub
				service_account *
			}
			reverse_proxy %[1]s
		}
	}
	`, be.URL, webhookID)), "caddyfile")
	send := func(path, body string, headers map[string]string) (int, string) {
		t.Helper()
		resp, out := request(t, http.MethodPost, base+path, body, headers)
		return resp.StatusCode, string(out)
	}

	// A PayPal delivery caches PayPal's certificate; an SNS message
	// signed with PayPal's key, naming that URL, is not verified with it.
	body := []byte(`{"id":"WH-2","event_type":"X"}`)
	if code, out := send("/paypal", string(body), paypalDelivery(t, ks, webhookID, "tx-cache", time.Now(), body)); code != 200 {
		t.Fatalf("PayPal: %d %s", code, out)
	}
	be.take()
	id, ts := "1", time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	canonical := "Message\nm\nMessageId\n" + id + "\nTimestamp\n" + ts + "\nTopicArn\narn:aws:sns:us-east-1:1:t\nType\nNotification\n"
	d := sha256.Sum256([]byte(canonical))
	sig, _ := rsa.SignPKCS1v15(nil, keyserver.PrivateKey(t, fixtureDir, "paypal.key"), crypto.SHA256, d[:])
	crossed := object(`"Type":"Notification"`, `"MessageId":"1"`, `"TopicArn":"arn:aws:sns:us-east-1:1:t"`, `"Message":"m"`,
		`"Timestamp":"`+ts+`"`, `"SignatureVersion":"2"`, `"Signature":"`+base64.StdEncoding.EncodeToString(sig)+`"`,
		`"SigningCertURL":"`+ks.URL+`/paypal.pem"`)
	if code, out := send("/sns", crossed, nil); code == 200 || len(be.take()) != 0 {
		t.Errorf("an SNS message signed with PayPal's cached certificate: %d %s", code, out)
	}
	// Pub/Sub's key set is cached; a PayPal delivery naming its URL
	// gets an answer (no panic, no dropped connection): 503.
	token := pubsubToken(t, "https://hooks.example.com/pubsub")
	if code, out := send("/pubsub", `{"message":{"messageId":"1"}}`, map[string]string{"Authorization": "Bearer " + token}); code != 200 {
		t.Fatalf("pubsub: %d %s", code, out)
	}
	be.take()
	h := paypalDelivery(t, ks, webhookID, "tx-jwks", time.Now(), body)
	h["PAYPAL-CERT-URL"] = ks.URL + "/certs"
	if code, out := send("/paypal", string(body), h); code != 503 || !strings.Contains(out, "key_unavailable") {
		t.Errorf("a PayPal delivery naming the cached key set: %d %s", code, out)
	}

	// 299 spellings of one certificate URL (each character of the path
	// as it is, or escaped in lower- or upper-case hex; the scheme in
	// capitals): one fetch. The signatures are forged, so each is
	// refused, but none may cost a fetch of its own.
	m := snsNotification(t, ks, "hello", "arn:aws:sns:us-east-1:123456789012:orders")
	before := ks.Count("/sns.pem")
	for i := range 299 {
		var p strings.Builder
		n := i
		for _, c := range "sns.pem" {
			switch n % 3 {
			case 0:
				p.WriteRune(c)
			case 1:
				fmt.Fprintf(&p, "%%%02x", c)
			case 2:
				fmt.Fprintf(&p, "%%%02X", c)
			}
			n /= 3
		}
		scheme := "https"
		if i%2 == 1 {
			scheme = "HTTPS"
		}
		variant := strings.Replace(object(m...), ks.URL+"/sns.pem", scheme+"://"+ks.Host+"/"+p.String(), 1)
		send("/sns", strings.Replace(variant, `"Signature":"`, `"Signature":"AAAA`, 1), nil)
	}
	if n := ks.Count("/sns.pem") - before; n > 1 {
		t.Errorf("%d fetches of one certificate spelled 299 ways", n)
	}
	be.take()

	// Thirty forged requests naming missing certificates behind a
	// `count rejected` limiter: 429 after five, and at most five
	// fetches.
	totalBefore := ks.Total()
	limited := 0
	for i := range 30 {
		missing := strings.Replace(object(m...), ks.URL+"/sns.pem", fmt.Sprintf("%s/missing-%d.pem", ks.URL, i), 1)
		if code, _ := send("/sns-limited", missing, nil); code == 429 {
			limited++
		}
	}
	if fetched := ks.Total() - totalBefore; fetched > 5 || limited < 20 {
		t.Errorf("30 forged requests naming missing keys: %d fetches, %d limited", fetched, limited)
	}
	// The same missing URL thirty times: one fetch.
	totalBefore = ks.Total()
	missing := strings.Replace(object(m...), ks.URL+"/sns.pem", ks.URL+"/missing-once.pem", 1)
	for range 30 {
		send("/sns", missing, nil)
	}
	if fetched := ks.Total() - totalBefore; fetched != 1 {
		t.Errorf("one missing URL asked 30 times: %d fetches", fetched)
	}

	// A flood of requests naming new URLs does not evict the keys in
	// use: the genuine SNS message, the PayPal delivery and the Pub/Sub
	// token verify afterwards without a fetch.
	if code, out := send("/sns", object(m...), nil); code != 200 {
		t.Fatalf("genuine SNS: %d %s", code, out)
	}
	for i := range 300 {
		flood := strings.Replace(object(m...), ks.URL+"/sns.pem", fmt.Sprintf("%s/flood-%d.pem", ks.URL, i), 1)
		send("/sns", flood, nil)
	}
	counts := map[string]int{"/sns.pem": ks.Count("/sns.pem"), "/paypal.pem": ks.Count("/paypal.pem"), "/certs": ks.Count("/certs")}
	m2 := snsNotification(t, ks, "again", "arn:aws:sns:us-east-1:123456789012:orders")
	if code, out := send("/sns", object(m2...), nil); code != 200 {
		t.Errorf("SNS after the flood: %d %s", code, out)
	}
	if code, out := send("/paypal", string(body), paypalDelivery(t, ks, webhookID, "tx-after", time.Now(), body)); code != 200 {
		t.Errorf("PayPal after the flood: %d %s", code, out)
	}
	if code, out := send("/pubsub", `{"message":{"messageId":"2"}}`, map[string]string{"Authorization": "Bearer " + token}); code != 200 {
		t.Errorf("pubsub after the flood: %d %s", code, out)
	}
	for path, n := range counts {
		if ks.Count(path) != n {
			t.Errorf("%s fetched again after the flood: the key in use was evicted", path)
		}
	}
}

// pubsubToken is a Pub/Sub push token for aud, signed now with the test
// Google key.
func pubsubToken(t *testing.T, aud string) string {
	t.Helper()
	priv := keyserver.PrivateKey(t, fixtureDir, "google.key")
	b64 := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": keyserver.KID, "typ": "JWT"})
	c, _ := json.Marshal(map[string]any{"aud": aud, "iss": "https://accounts.google.com", "email": "push@example-project.iam.gserviceaccount.com",
		"email_verified": true, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(), "sub": "1"})
	in := b64(h) + "." + b64(c)
	d := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64(sig)
}

// F14: a config that would accept any account's messages must say so;
// confirming subscriptions needs the topics listed. Loaded into the real
// Caddy's admin API, each is refused with the fix in the message, and the
// running config stays.
func TestAttackAccountBindingRequired(t *testing.T) {
	tester := newTester(t)
	tester.InitServer(caddyConfig("", `
	:9080 {
		respond "still here"
	}
	`), "caddyfile")
	for _, c := range []struct{ block, want string }{
		{"webhook_auth sns", "'topic_arn' is required"},
		{"webhook_auth sns {\n\t\t\tconfirm_subscription on\n\t\t}", "'topic_arn' is required"},
		{"webhook_auth sns {\n\t\t\ttopic_arn *\n\t\t\tconfirm_subscription on\n\t\t}", "'confirm_subscription' needs the topics listed"},
		{"webhook_auth pubsub {\n\t\t\taudience https://hooks.example.com/p\n\t\t}", "'service_account' is required"},
	} {
		cfg := caddyConfig("", ":9080 {\n\t\troute {\n\t\t"+c.block+"\n\t\trespond ok\n\t\t}\n\t}\n")
		req, _ := http.NewRequest(http.MethodPost, adminURL+"/load", strings.NewReader(cfg))
		req.Header.Set("Content-Type", "text/caddyfile")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || !strings.Contains(string(out), c.want) {
			t.Errorf("%q: %d %s", c.block, resp.StatusCode, out)
		}
	}
	if resp, out := request(t, http.MethodGet, base+"/", "", nil); resp.StatusCode != 200 || string(out) != "still here" {
		t.Errorf("the running config changed: %d %s", resp.StatusCode, out)
	}
	// '*' says it: loaded.
	tester.InitServer(caddyConfig("", `
	:9080 {
		route /sns {
			webhook_auth sns {
				topic_arn *
			}
			respond ok
		}
		route /pubsub {
			webhook_auth pubsub {
				audience https://hooks.example.com/p
				service_account *
			}
			respond ok
		}
	}
	`), "caddyfile")
}

// F16: no secret leaves the process. (A) verify never prints a verify
// token; (B) send follows no redirect, so the token header never reaches
// another host or plain http; (C) a Meta verification refused for an
// extra parameter is logged without the token, by the gate and by the
// access log with the README's generated filter.
func TestAttackSecretsStayIn(t *testing.T) {
	const token = "meta-verify-token-9f8e7d6c5b4a"
	dir := t.TempDir()
	gateLog, accessLog := filepath.Join(dir, "gate.log"), filepath.Join(dir, "access.log")
	filter := readmeLogFilter(t)
	be := newBackend(t)
	tester := newTester(t)
	tester.InitServer(caddyConfig(fmt.Sprintf(`
		log {
			output file %[1]s
			level INFO
		}`, gateLog), fmt.Sprintf(`
	:9080 {
		%[3]s
		route /meta {
			webhook_auth meta {
				secret meta-app-secret-0123456789abcdef
				verify_token %[2]s
			}
			reverse_proxy %[4]s
		}
	}
	`, gateLog, token, strings.Replace(filter, "log {", "log {\n\t\toutput file "+accessLog, 1), be.URL)), "caddyfile")
	good := "/meta?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=" + token
	if resp, out := request(t, http.MethodGet, base+good, "", nil); resp.StatusCode != 200 || string(out) != "1158201444" {
		t.Fatalf("Meta's verification: %d %s", resp.StatusCode, out)
	}
	if resp, _ := request(t, http.MethodGet, base+good+"&extra=1", "", nil); resp.StatusCode != 405 {
		t.Errorf("an extra parameter: %d, want 405", resp.StatusCode)
	}
	if resp, _ := request(t, http.MethodGet, base+"/meta?hub%2Everify_token="+token+"&x=1", "", nil); resp.StatusCode != 405 {
		t.Errorf("the token's name in escapes: %d, want 405", resp.StatusCode)
	}
	for _, f := range []string{gateLog, accessLog} {
		var raw []byte
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			raw, _ = os.ReadFile(f)
			if bytes.Count(raw, []byte("/meta")) >= 2 {
				break
			}
		}
		if !bytes.Contains(raw, []byte("/meta")) {
			t.Fatalf("%s logged no request", filepath.Base(f))
		}
		if bytes.Contains(raw, []byte(token)) {
			t.Errorf("%s holds the verify token", filepath.Base(f))
		}
	}

	// (A) verify with the handler block and the captured verification.
	block := filepath.Join(dir, "meta.block")
	os.WriteFile(block, []byte("webhook_auth meta {\n\tsecret meta-app-secret-0123456789abcdef\n\tverify_token "+token+"\n}\n"), 0o600)
	capture := filepath.Join(dir, "meta.req")
	os.WriteFile(capture, []byte("GET "+good+" HTTP/1.1\r\nHost: hooks.example.com\r\n\r\n"), 0o600)
	stdout, stderr, code := runCLI(t, nil, nil, "webhook", "verify", "--config-file", block, "--request-file", capture)
	if code != 0 || strings.Contains(stdout+stderr, token) || !strings.Contains(stdout, "REDACTED") {
		t.Errorf("verify: exit %d, printed the token: %v\n%s%s", code, strings.Contains(stdout+stderr, token), stdout, stderr)
	}

	// (B) send to an endpoint that redirects to another host over http.
	var leaked []string
	other := newBackend(t)
	redirect := func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/stolen", http.StatusTemporaryRedirect)
	}
	srv := &http.Server{Handler: http.HandlerFunc(redirect)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	for _, p := range []struct{ provider, env string }{{"gitlab", "GITLAB_TOKEN"}, {"vapi", "VAPI_SECRET"}, {"adobesign", "ADOBE_ID"}} {
		stdout, _, code := runCLI(t, []string{p.env + "=token-that-must-not-travel"}, []byte(`{"a":1}`),
			"webhook", "send", "--provider", p.provider, "--secret-env", p.env, "http://"+l.Addr().String()+"/hook")
		if code == 0 || !strings.Contains(stdout, "307") || !strings.Contains(stdout, "not followed") {
			t.Errorf("%s: exit %d: %s", p.provider, code, stdout)
		}
		for _, r := range other.take() {
			leaked = append(leaked, p.provider+" "+r.path)
		}
	}
	if len(leaked) > 0 {
		t.Errorf("send followed a redirect to another host: %v", leaked)
	}
}

// readmeLogFilter is the README's generated log filter block.
func readmeLogFilter(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, _ := strings.Cut(string(raw), "<!-- logfilter:begin")
	_, block, _ := strings.Cut(after, "```caddyfile\n")
	block, _, _ = strings.Cut(block, "```")
	if !strings.Contains(block, "hub.verify_token") {
		t.Fatal("the README's log filter does not cover hub.verify_token")
	}
	return block
}

// F17: Mandrill signs the URL and the form parameters; a multipart (or
// any non-form) body under a captured signature is refused.
func TestAttackFormSchemesRefuseOtherBodies(t *testing.T) {
	be := newBackend(t)
	tester := newTester(t)
	const key = "mandrill-webhook-key-0123456789"
	tester.InitServer(caddyConfig("", fmt.Sprintf(`
	:9080 {
		route /mandrill {
			webhook_auth mailchimp {
				secret %[2]s
			}
			reverse_proxy %[1]s
		}
	}
	`, be.URL, key)), "caddyfile")
	url := base + "/mandrill"
	form := "mandrill_events=" + strings.ReplaceAll(`[{"event":"send"}]`, `"`, "%22")
	sign := func(payload string) string {
		mac := hmac.New(sha1.New, []byte(key))
		mac.Write([]byte(payload))
		return base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	good := sign(url + "mandrill_events" + `[{"event":"send"}]`)
	resp, out := request(t, http.MethodPost, url, form, map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-Mandrill-Signature": good})
	if resp.StatusCode != 200 || len(be.take()) != 1 {
		t.Fatalf("the genuine form: %d %s", resp.StatusCode, out)
	}
	// The signature of an empty form (the URL alone), captured from
	// Mandrill's HEAD-less test or computed by anyone who saw one.
	empty := sign(url)
	multipart := "--b\r\nContent-Disposition: form-data; name=\"mandrill_events\"\r\n\r\n[{\"event\":\"hard_bounce\"}]\r\n--b--\r\n"
	for _, ct := range []string{"multipart/form-data; boundary=b", "application/json", ""} {
		req := mustRequest(t, "/mandrill", multipart, map[string]string{"Content-Type": ct, "X-Mandrill-Signature": empty})
		assertProblem(t, tester, req, 401, "signature_malformed")
	}
	if got := be.take(); len(got) != 0 {
		t.Fatalf("the backend got %d unsigned bodies", len(got))
	}
}

// F18: dedup covers every signed item of a batch: [A,B] delivered, then
// [C,B] is a new delivery, not a duplicate, and C reaches the backend.
func TestAttackBatchDedupCoversEveryItem(t *testing.T) {
	be := newBackend(t)
	tester := newTester(t)
	key := "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
	tester.InitServer(caddyConfig("", fmt.Sprintf(`
	:9080 {
		route /adyen {
			webhook_auth adyen {
				secret %[2]s
				dedup
				dedup_scope adyen-%[3]d
			}
			reverse_proxy %[1]s
		}
	}
	`, be.URL, key, time.Now().UnixNano())), "caddyfile")
	rawKey, _ := hex.DecodeString(key)
	item := func(psp string) string {
		signed := psp + "::TestMerchant:ref-" + psp + ":1130:EUR:AUTHORISATION:true"
		mac := hmac.New(sha256.New, rawKey)
		mac.Write([]byte(signed))
		return `{"NotificationRequestItem":{"pspReference":"` + psp + `","merchantAccountCode":"TestMerchant","merchantReference":"ref-` + psp +
			`","amount":{"value":1130,"currency":"EUR"},"eventCode":"AUTHORISATION","success":"true","additionalData":{"hmacSignature":"` +
			base64.StdEncoding.EncodeToString(mac.Sum(nil)) + `"}}}`
	}
	batch := func(items ...string) string {
		return `{"live":"false","notificationItems":[` + strings.Join(items, ",") + `]}`
	}
	for _, c := range []struct {
		body string
		dup  bool
	}{
		{batch(item("A"), item("B")), false},
		{batch(item("C"), item("B")), false},
		{batch(item("A"), item("B")), true},
		{batch(item("B")), false},
	} {
		resp, out := request(t, http.MethodPost, base+"/adyen", c.body, map[string]string{"Content-Type": "application/json"})
		got := be.take()
		isDup := strings.Contains(string(out), `"duplicate"`)
		if resp.StatusCode != 200 || isDup != c.dup || (len(got) == 1) == c.dup {
			t.Errorf("%.60s…: %d %s, backend got %d", c.body, resp.StatusCode, out, len(got))
		}
	}
}

// F19: requests refused before their body is read are answered at once
// and their connections closed, however slowly the body trickles in: 50
// unsigned POSTs sending one byte leave goroutines and connections where
// they were.
func TestAttackEarlyRefusalsCloseTheConnection(t *testing.T) {
	be := newBackend(t)
	tester := newTester(t)
	tester.InitServer(caddyConfig("", fmt.Sprintf(`
	:9080 {
		route /gh {
			webhook_auth github {
				secret github-secret-0123456789abcdef
				read_timeout 2s
			}
			reverse_proxy %[1]s
		}
		route /limited {
			webhook_rate_limit {
				key {remote_host}
				rate 1/1h
			}
			respond ok
		}
	}
	`, be.URL)), "caddyfile")
	request(t, http.MethodPost, base+"/limited", "", nil) // spends the budget
	runtime.GC()
	time.Sleep(100 * time.Millisecond)
	baseline := runtime.NumGoroutine()
	heads := []string{
		"POST /gh HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n",                                       // no signature
		"POST /gh HTTP/1.1\r\nHost: localhost\r\nX-Hub-Signature-256: nope\r\nContent-Length: 1000\r\n\r\n",          // malformed
		"PUT /gh HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n",                                        // wrong method
		"POST /gh HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",                                 // chunked, unsigned
		"POST /limited HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n",                                  // 429
		"POST /gh HTTP/1.1\r\nHost: localhost\r\nX-Hub-Signature-256: sha256=00\r\nContent-Length: 99999999\r\n\r\n", // 413
	}
	var conns []net.Conn
	for i := range 50 {
		c := rawRequest(t, heads[i%len(heads)], "x")
		conns = append(conns, c)
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("request %d (%q…) unanswered: %v", i, heads[i%len(heads)][:20], err)
		}
		if resp.StatusCode < 400 || !resp.Close {
			t.Errorf("request %d: %d, close %v", i, resp.StatusCode, resp.Close)
		}
		// The server closes: the next read ends.
		io.Copy(io.Discard, resp.Body)
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("request %d: the connection stayed open", i)
		}
		c.Close()
	}
	var after int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if after = runtime.NumGoroutine(); after <= baseline+5 {
			break
		}
	}
	if after > baseline+5 {
		t.Errorf("goroutines %d → %d after 50 trickling requests were refused", baseline, after)
	}
	if got := be.take(); len(got) != 0 {
		t.Fatalf("the backend got %d", len(got))
	}
}

// F20: Adobe Sign's client id is echoed on every answer to a verified
// delivery, the duplicate included (Adobe counts an answer without it a
// failure and keeps retrying).
func TestAttackEchoOnEveryAnswer(t *testing.T) {
	be := newBackend(t)
	tester := newTester(t)
	const client = "CBJCHBCAABAAadobeClientId0123"
	tester.InitServer(caddyConfig("", fmt.Sprintf(`
	:9080 {
		route /adobe {
			webhook_auth adobesign {
				secret %[2]s
				dedup
				dedup_scope adobe-%[3]d
			}
			reverse_proxy %[1]s
		}
	}
	`, be.URL, client, time.Now().UnixNano())), "caddyfile")
	body := `{"webhookNotificationId":"n-1","event":"AGREEMENT_CREATED"}`
	for i, want := range []string{"backend got", `"duplicate"`} {
		resp, out := request(t, http.MethodPost, base+"/adobe", body, map[string]string{"X-AdobeSign-ClientId": client, "Content-Type": "application/json"})
		if resp.StatusCode != 200 || resp.Header.Get("X-AdobeSign-ClientId") != client || !strings.Contains(string(out), want) {
			t.Errorf("answer %d: %d %q, echoed %q", i+1, resp.StatusCode, out, resp.Header.Get("X-AdobeSign-ClientId"))
		}
	}
	// A forged one is not echoed anything.
	resp, _ := request(t, http.MethodPost, base+"/adobe", body, map[string]string{"X-AdobeSign-ClientId": "other", "Content-Type": "application/json"})
	if resp.StatusCode != 401 || resp.Header.Get("X-AdobeSign-ClientId") != "" {
		t.Errorf("forged: %d, echoed %q", resp.StatusCode, resp.Header.Get("X-AdobeSign-ClientId"))
	}
}

// In report mode SNS's gate confirms nothing: the verified confirmation
// goes to the backend as it came.
func TestAttackReportModeConfirmsNothing(t *testing.T) {
	ks := keyserver.Start(t, fixtureDir)
	be := newBackend(t)
	tester := newTester(t)
	const topic = "arn:aws:sns:us-east-1:123456789012:orders"
	tester.InitServer(caddyConfig(keyServerGlobals(ks), fmt.Sprintf(`
	:9080 {
		route /sns {
			webhook_auth sns {
				topic_arn %[2]s
				confirm_subscription on
				mode report
			}
			reverse_proxy %[1]s
		}
	}
	`, be.URL, topic)), "caddyfile")
	ts := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	subscribe := ks.URL + "/confirm?Action=ConfirmSubscription&Token=t1"
	canonical := "Message\nYou have chosen to subscribe.\nMessageId\nm-1\nSubscribeURL\n" + subscribe + "\nTimestamp\n" + ts + "\nToken\nt1\nTopicArn\n" + topic + "\nType\nSubscriptionConfirmation\n"
	d := sha256.Sum256([]byte(canonical))
	sig, _ := rsa.SignPKCS1v15(nil, keyserver.PrivateKey(t, fixtureDir, "sns.key"), crypto.SHA256, d[:])
	body := object(`"Type":"SubscriptionConfirmation"`, `"MessageId":"m-1"`, `"Token":"t1"`, `"TopicArn":"`+topic+`"`,
		`"Message":"You have chosen to subscribe."`, `"SubscribeURL":`+jsonString(subscribe), `"Timestamp":"`+ts+`"`,
		`"SignatureVersion":"2"`, `"Signature":"`+base64.StdEncoding.EncodeToString(sig)+`"`, `"SigningCertURL":"`+ks.URL+`/sns.pem"`)
	resp, out := request(t, http.MethodPost, base+"/sns", body, nil)
	if got := be.take(); resp.StatusCode != 200 || len(got) != 1 || ks.Count("/confirm") != 0 {
		t.Errorf("report mode: %d %s, backend got %d, confirmations %d", resp.StatusCode, out, len(got), ks.Count("/confirm"))
	}
}
