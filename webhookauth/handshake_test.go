package webhookauth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
)

// challengeVectors returns the shared kind:challenge vectors by provider.
func challengeVectors(t *testing.T) map[string]moreVector {
	t.Helper()
	out := map[string]moreVector{}
	for _, v := range append(loadVectors(t, "providers-more.json"), loadVectors(t, "providers-extra.json")...) {
		if v.Kind == "challenge" {
			out[v.Provider] = v
		}
	}
	if len(out) < 8 {
		t.Fatalf("only %d challenge vectors", len(out))
	}
	return out
}

// handshakeHandler is a handler for the vector's provider with the key
// the vector was made with (Meta's is its verify token), at the vector's
// time.
func handshakeHandler(t *testing.T, vec moreVector, configure func(*Handler)) *Handler {
	t.Helper()
	p, err := LookupPreset(vec.Provider)
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Provider: vec.Provider}
	switch {
	case p.Key == KeyPublic:
		h.PublicKeys = []string{vec.PublicKey}
	case p.Handshake.TokenParam != "":
		h.Secrets, h.VerifyToken = []string{testSecrets[p.Name][0]}, vec.Secret
	case vec.Secret != "":
		h.Secrets = []string{vec.Secret}
	case p.JWT != nil:
		h.Secrets, h.Audience = []string{p.Name + "-secret-0123456789"}, "*"
	default:
		h.Secrets = []string{testSecrets[p.Name][0]}
	}
	if configure != nil {
		configure(h)
	}
	h = newHandler(t, h)
	if vec.VerifyAt != 0 {
		h.now = func() time.Time { return time.Unix(vec.VerifyAt, 0) }
	}
	return h
}

// checkAnswer compares an answer with the vector's: status, headers,
// and the body byte for byte or as the same JSON.
func checkAnswer(t *testing.T, name string, status int, header http.Header, body []byte, vec moreVector) {
	t.Helper()
	want := vec.Response
	if status != want.Status {
		t.Fatalf("%s: status %d, want %d (%s)", name, status, want.Status, body)
	}
	for k, v := range want.Headers {
		if got := header.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", name, k, got, v)
		}
	}
	if header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: no X-Content-Type-Options: nosniff", name)
	}
	if want.JSON != nil {
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil || !reflect.DeepEqual(got, want.JSON) {
			t.Errorf("%s: body %s, want %v", name, body, want.JSON)
		}
	} else if string(body) != want.Body {
		t.Errorf("%s: body %q, want %q", name, body, want.Body)
	}
}

// Every challenge vector is answered by the gate exactly as the provider
// documents, counted under "handshake", and never reaches the backend;
// with handshake off it goes to the backend instead, untouched.
func TestHandshakeVectors(t *testing.T) {
	for provider, vec := range challengeVectors(t) {
		if p, _ := LookupPreset(provider); p.Handshake.EnrollParam != "" {
			continue // answered only when armed: TestAsanaEnrollment
		}
		t.Run(provider, func(t *testing.T) {
			h := handshakeHandler(t, vec, nil)
			before := testutil.ToFloat64(gate.Requests(h.label, resultHandshake))
			r, _ := vec.request()
			w, repl, be := dedupSend(t, h, r)
			if be.calls != 0 {
				t.Fatalf("the backend got the handshake")
			}
			checkAnswer(t, vec.Name, w.Code, w.Header(), w.Body.Bytes(), vec)
			if got := repl.ReplaceAll("{http.webhook.result}", ""); got != resultHandshake {
				t.Errorf("result %q", got)
			}
			if after := testutil.ToFloat64(gate.Requests(h.label, resultHandshake)); after != before+1 {
				t.Errorf("handshake counter went from %v to %v", before, after)
			}

			off := false
			h = handshakeHandler(t, vec, func(h *Handler) { h.Handshake = &off })
			r, body := vec.request()
			w, repl, be = dedupSend(t, h, r)
			if be.calls != 1 || !bytes.Equal(be.body, body) || w.Header().Get("X-Content-Type-Options") != "" {
				t.Fatalf("handshake off: %d %s, backend calls %d", w.Code, w.Body.String(), be.calls)
			}
			if got := repl.ReplaceAll("{http.webhook.result}", ""); got != resultHandshake {
				t.Errorf("handshake off: result %q", got)
			}
		})
	}
}

// Every preset with a handshake has a vector for it.
func TestEveryHandshakeHasAVector(t *testing.T) {
	vecs := challengeVectors(t)
	for _, name := range handshakeNames() {
		if _, ok := vecs[name]; !ok && name != "slack" {
			t.Errorf("%s has a handshake and no challenge vector", name)
		}
	}
}

// Signed handshakes are verified first: with a bad signature, a stale
// timestamp or the wrong key they are refused like any forged delivery,
// and never answered.
func TestSignedHandshakesForged(t *testing.T) {
	vecs := challengeVectors(t)
	for _, provider := range []string{"zoom", "twitch", "discord", "okta"} {
		vec := vecs[provider]
		forged := vec
		forged.Headers = map[string]string{}
		for k, v := range vec.Headers {
			forged.Headers[k] = v
		}
		switch provider {
		case "okta":
			forged.Headers["Authorization"] = "not-the-secret-0123456789"
		case "discord":
			forged.Body = strings.Replace(vec.Body, `"version":1`, `"version":2`, 1)
		default:
			forged.Body = strings.Replace(vec.Body, `"`, `" `, 1)
		}
		h := handshakeHandler(t, vec, nil)
		r, _ := forged.request()
		w, _, be := dedupSend(t, h, r)
		if be.calls != 0 || w.Code != http.StatusUnauthorized || strings.Contains(w.Body.String(), "verification") || strings.Contains(w.Body.String(), "Token") {
			t.Errorf("%s forged: %d %s", provider, w.Code, w.Body.String())
		}
		if w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s forged: answered %s", provider, w.Header().Get("Content-Type"))
		}
	}
	// Discord's own probe: a PING with a bad signature.
	for _, v := range loadVectors(t, "providers-more.json") {
		if v.Name != "discord-ping-bad-signature" {
			continue
		}
		h := handshakeHandler(t, v, nil)
		r, _ := v.request()
		if w, _, be := dedupSend(t, h, r); be.calls != 0 || w.Code != http.StatusUnauthorized {
			t.Errorf("discord's bad PING: %d %s", w.Code, w.Body.String())
		}
	}
	// Slack's url_verification, signed by our signer (Slack publishes no
	// vector for it), is answered; the same body signed with another key
	// is not.
	body := []byte(`{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`)
	h := newHandler(t, &Handler{Provider: "slack", Secrets: []string{testSecrets["slack"][0]}})
	w, _, be := dedupSend(t, h, signed(t, "slack", testSecrets["slack"][0], body, testNow))
	if be.calls != 0 || w.Code != 200 || w.Body.String() != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" || w.Header().Get("Content-Type") != "text/plain" {
		t.Errorf("slack url_verification: %d %q", w.Code, w.Body.String())
	}
	w, _, be = dedupSend(t, h, signed(t, "slack", testSecrets["slack"][1], body, testNow))
	if be.calls != 0 || w.Code != http.StatusUnauthorized {
		t.Errorf("slack forged url_verification: %d %q", w.Code, w.Body.String())
	}
}

// Unsigned handshakes are answered only in their exact documented
// shape. Anything else is an ordinary request, refused by the usual
// checks (405 for a GET, 401 without a signature), and never echoed.
func TestUnsignedHandshakeShapes(t *testing.T) {
	vecs := challengeVectors(t)
	long := strings.Repeat("a", 257)
	for _, c := range []struct {
		provider, method, target string
		want                     Reason
	}{
		{"x", "GET", "/hook?crc_token=abc&crc_token=def", ReasonMethodNotAllowed},
		{"x", "GET", "/hook?crc_token=" + url.QueryEscape(`{"event":"forged"}`), ReasonMethodNotAllowed},
		{"x", "GET", "/hook?crc_token=" + long, ReasonMethodNotAllowed},
		{"x", "GET", "/hook?crc_token=", ReasonMethodNotAllowed},
		{"x", "GET", "/hook?crc_token=abc&other=1", ReasonMethodNotAllowed},
		{"x", "GET", "/hook?crc_token=abc;x=1", ReasonMethodNotAllowed},
		{"x", "POST", "/hook?crc_token=abc", ReasonSignatureMissing},
		{"dropbox", "GET", "/hook?challenge=" + url.QueryEscape("<script>alert(1)</script>"), ReasonMethodNotAllowed},
		{"dropbox", "GET", "/hook?challenge=a%20b", ReasonMethodNotAllowed},
		{"dropbox", "GET", "/hook", ReasonMethodNotAllowed},
		{"meta", "GET", "/hook?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=wrong-token", ReasonSignatureInvalid},
		{"meta", "GET", "/hook?hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock", ReasonMethodNotAllowed},
		{"meta", "GET", "/hook?hub.mode=subscribe&hub.challenge=abc&hub.verify_token=meatyhamhock", ReasonMethodNotAllowed},
		{"meta", "GET", "/hook?hub.mode=subscribe&hub.challenge=1158201444", ReasonMethodNotAllowed},
		{"msgraph", "POST", "/hook?validationToken=" + url.QueryEscape("<b>hi</b>"), ReasonSignatureMalformed},
		{"msgraph", "GET", "/hook?validationToken=abc", ReasonMethodNotAllowed},
		{"okta", "GET", "/hook", ReasonMethodNotAllowed},
	} {
		vec := vecs[c.provider]
		h := handshakeHandler(t, vec, nil)
		r := httptest.NewRequest(c.method, c.target, nil)
		w, _, be := dedupSend(t, h, r)
		if be.calls != 0 || problemReason(t, w) != c.want {
			t.Errorf("%s %s %s: %d %s, want %s", c.provider, c.method, c.target, w.Code, w.Body.String(), c.want)
		}
	}
	// Worldline's check carries its challenge in a header: that header
	// once, a token value, no query.
	for _, c := range []struct {
		target, value string
	}{
		{"/hook", "<script>"},
		{"/hook?x=1", "abc"},
		{"/hook", strings.Repeat("a", 257)},
	} {
		h := handshakeHandler(t, vecs["worldline"], nil)
		r := httptest.NewRequest("GET", c.target, nil)
		r.Header.Set("X-GCS-Webhooks-Endpoint-Verification", c.value)
		if w, _, be := dedupSend(t, h, r); be.calls != 0 || problemReason(t, w) != ReasonMethodNotAllowed {
			t.Errorf("worldline %s %q: %d %s", c.target, c.value, w.Code, w.Body.String())
		}
	}
	// Graph's validation POST with a body is not the handshake.
	h := handshakeHandler(t, vecs["msgraph"], nil)
	r := httptest.NewRequest("POST", "/hook?validationToken=abc", strings.NewReader(`{"value":[]}`))
	if w, _, be := dedupSend(t, h, r); be.calls != 0 || w.Code == 200 {
		t.Errorf("msgraph validation with a body: %d %s", w.Code, w.Body.String())
	}
	// Meta without a verify_token refuses the verification request.
	h = newHandler(t, &Handler{Provider: "meta", Secrets: []string{testSecrets["meta"][0]}})
	r, _ = vecs["meta"].request()
	if w, _, be := dedupSend(t, h, r); be.calls != 0 || problemReason(t, w) != ReasonSignatureMissing {
		t.Errorf("meta without verify_token: %d %s", w.Code, w.Body.String())
	}
}

// X's CRC answer is HMAC-SHA256 of the token under the consumer secret,
// the very function that signs deliveries. The gate answers only tokens
// written in letters, digits and -_.~+/=, none of which is a JSON
// object, and refuses any x delivery that is not a JSON object before
// computing its MAC: so no CRC answer can verify a delivery.
func TestCRCIsNotASigningOracle(t *testing.T) {
	vec := challengeVectors(t)["x"]
	h := handshakeHandler(t, vec, nil)
	secret := []byte(vec.Secret)
	sign := func(msg string) string {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(msg))
		return "sha256=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	// A JSON body as a token gets no answer.
	body := `{"for_user_id":"1","tweet_create_events":[{"text":"forged"}]}`
	w, _, _ := dedupSend(t, h, httptest.NewRequest("GET", "/hook?crc_token="+url.QueryEscape(body), nil))
	if w.Code == 200 || strings.Contains(w.Body.String(), "response_token") {
		t.Fatalf("a JSON token was answered: %d %s", w.Code, w.Body.String())
	}
	// Tokens the gate does answer, including ones that are JSON
	// scalars, cannot be delivered as bodies: the answer is the very
	// signature, and the delivery is refused all the same.
	for _, token := range []string{"challenge_string_5f3a9c", "12345", "true", "null", "-1", "1e5", "abc=="} {
		w, _, _ := dedupSend(t, h, httptest.NewRequest("GET", "/hook?crc_token="+url.QueryEscape(token), nil))
		var answer struct {
			ResponseToken string `json:"response_token"`
		}
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &answer) != nil || answer.ResponseToken != sign(token) {
			t.Fatalf("token %q: %d %s", token, w.Code, w.Body.String())
		}
		r := httptest.NewRequest("POST", "/hook", strings.NewReader(token))
		r.Header.Set("X-Twitter-Webhooks-Signature", answer.ResponseToken)
		w, _, be := dedupSend(t, h, r)
		if be.calls != 0 || problemReason(t, w) != ReasonSignatureMalformed {
			t.Fatalf("the CRC answer for %q verified a delivery: %d %s", token, w.Code, w.Body.String())
		}
	}
	// A real delivery, signed the same way, passes.
	r := httptest.NewRequest("POST", "/hook", strings.NewReader(body))
	r.Header.Set("X-Twitter-Webhooks-Signature", sign(body))
	if w, _, be := dedupSend(t, h, r); be.calls != 1 {
		t.Fatalf("a signed delivery was refused: %d %s", w.Code, w.Body.String())
	}
	// No character of the CRC alphabet can open a JSON object.
	if CharsetToken.allows("{") || CharsetToken.allows(" ") || CharsetToken.allows("\"") {
		t.Fatal("the CRC alphabet admits a JSON object's first byte")
	}
}

// Handshakes are never deduplicated: Twitch sends its verification with
// a message id, and the same request twice is answered twice.
func TestHandshakesAreNotDeduplicated(t *testing.T) {
	vec := challengeVectors(t)["twitch"]
	h := handshakeHandler(t, vec, func(h *Handler) { h.Dedup = caddy.Duration(time.Hour) })
	for i := range 2 {
		r, _ := vec.request()
		w, _, be := dedupSend(t, h, r)
		if be.calls != 0 || w.Code != 200 || w.Body.String() != vec.Response.Body {
			t.Fatalf("attempt %d: %d %s", i, w.Code, w.Body.String())
		}
	}
}

// The handshake settings are checked at load.
func TestHandshakeConfig(t *testing.T) {
	on := true
	for _, c := range []struct {
		h    Handler
		want string
	}{
		{Handler{Provider: "github", Secrets: []string{"s"}, Handshake: &on}, "'handshake' applies to providers that have one"},
		{Handler{Secrets: []string{"s"}, SchemeConfig: SchemeConfig{SignatureHeader: "X-Sig"}, Handshake: &on}, "'handshake' applies"},
		{Handler{Provider: "x", Secrets: []string{"s"}, VerifyToken: "t"}, "'verify_token' applies to meta"},
	} {
		if err := c.h.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want %q, got %v", c.want, err)
		}
	}
	h := &Handler{Provider: "meta", Secrets: []string{testSecrets["meta"][0]}, VerifyToken: "{env.WEBHOOKAUTH_UNSET_VERIFY_TOKEN}"}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	err := h.Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), "{env.WEBHOOKAUTH_UNSET_VERIFY_TOKEN}") {
		t.Fatalf("an empty verify_token: %v", err)
	}
}

// Adobe Sign wants its client id back on every answer: the gate sets it
// on a verified notification's response, and forwards the id (which is
// not a secret) to the backend.
func TestEchoHeader(t *testing.T) {
	id := testSecrets["adobesign"][0]
	h := newHandler(t, &Handler{Provider: "adobesign", Secrets: []string{id}})
	r := signed(t, "adobesign", id, []byte(`{"event":"AGREEMENT_ACTION_COMPLETED"}`), testNow)
	var got http.Header
	next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		got = r.Header.Clone()
		return nil
	})
	w, _, err := serve(h, r, next)
	if err != nil || got == nil {
		t.Fatalf("refused: %v %s", err, w.Body.String())
	}
	if w.Header().Get("X-AdobeSign-ClientId") != id || got.Get("X-AdobeSign-ClientId") != id {
		t.Fatalf("answer %q, backend %q", w.Header().Get("X-AdobeSign-ClientId"), got.Get("X-AdobeSign-ClientId"))
	}
	r = signed(t, "adobesign", testSecrets["adobesign"][1], []byte(`{}`), testNow)
	w, _, _ = serve(h, r, next)
	if w.Code != http.StatusUnauthorized || w.Header().Get("X-AdobeSign-ClientId") != "" {
		t.Fatalf("a refused notification: %d, echoed %q", w.Code, w.Header().Get("X-AdobeSign-ClientId"))
	}
}
