package webhookauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
)

var testNow = time.Unix(1_800_000_000, 0)

// newHandler provisions h with a fixed clock, as Caddy would.
func newHandler(t testing.TB, h *Handler) *Handler {
	t.Helper()
	h.now = func() time.Time { return testNow }
	if h.Dedup > 0 && h.DedupScope == "" {
		// A bare context has no webhook app to number unnamed handlers;
		// a scope of the test's own keeps runs (-count=N) apart.
		h.DedupScope = fmt.Sprintf("test-%d", rand.Uint64())
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	return h
}

// backend records what reaches the next handler.
type backend struct {
	calls int
	body  []byte
	cl    int64
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	b.calls++
	b.cl = r.ContentLength
	var err error
	b.body, err = io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// serve runs r through h in front of next and returns the recorder, the
// replacer and the handler's error.
func serve(h *Handler, r *http.Request, next caddyhttp.Handler) (*httptest.ResponseRecorder, *caddy.Replacer, error) {
	repl := caddy.NewReplacer()
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
	r = r.WithContext(ctx)
	w := httptest.NewRecorder()
	err := h.ServeHTTP(w, r, next)
	return w, repl, err
}

// problem is the RFC 9457 document a rejection is answered with.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Reason Reason `json:"reason"`
}

// problemReason decodes the reason of a problem+json answer.
func problemReason(t *testing.T, w *httptest.ResponseRecorder) Reason {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", w.Body.String(), err)
	}
	if p.Status != w.Code || p.Detail == "" || p.Type == "" || p.Title == "" {
		t.Fatalf("incomplete problem document: %s", w.Body.String())
	}
	return p.Reason
}

// testBody is a delivery body for the preset: with the timestamp member
// where the preset reads the time from the body (Linear).
func testBody(name string, n int, ts time.Time) []byte {
	p, _ := LookupPreset(name)
	if strings.Contains(p.Scheme.SignedPayload, "{form}") {
		return []byte("id=evt_1&type=ping&n=" + strconv.Itoa(n))
	}
	extra := ""
	if f := p.Scheme.TimestampField; f != "" {
		extra = `,"` + f + `":` + formatTimestamp(p.Scheme.TimestampFormat, ts)
	}
	return []byte(`{"id":"evt_1","type":"ping","data":{"n":` + strconv.Itoa(n) + `}` + extra + `}`)
}

type badCase struct {
	name   string
	mutate func(t testing.TB, r *http.Request, sigHeader string)
	status int
	reason Reason
}

// badInputs returns the table of bad inputs that applies to a preset.
func badInputs(name string, s *Scheme) []badCase {
	sig := func(r *http.Request) string { return r.Header.Get(s.SignatureHeader) }
	cases := []badCase{
		{"missing signature", func(t testing.TB, r *http.Request, h string) { r.Header.Del(h) }, 401, ReasonSignatureMissing},
		{"empty signature", func(t testing.TB, r *http.Request, h string) { r.Header.Set(h, "") }, 401, ReasonSignatureMissing},
		{"duplicated signature header", func(t testing.TB, r *http.Request, h string) { r.Header.Add(h, sig(r)) }, 401, ReasonSignatureMalformed},
		{"other secret", func(t testing.TB, r *http.Request, h string) {
			o := signed(t, name, testSecrets[name][1], testBody(name, 1, testNow), testNow)
			for k, v := range o.Header {
				r.Header[k] = v
			}
		}, 401, ReasonSignatureInvalid},
	}
	if s.Algorithm != AlgorithmToken && (s.Payload.Uses(TokenBody) || s.Payload.Uses(TokenForm)) {
		// A GitLab token proves who sent the request, not what it says,
		// and Plivo's V2 signature covers the URL and a nonce: these
		// schemes do not cover the body at all.
		cases = append(cases, badCase{"tampered body", func(t testing.TB, r *http.Request, h string) {
			r.Body = io.NopCloser(bytes.NewReader(testBody(name, 2, testNow)))
		}, 401, ReasonSignatureInvalid})
	}
	malformed := ReasonSignatureMalformed
	if s.Algorithm == AlgorithmToken {
		malformed = ReasonSignatureInvalid // a token has no shape to check
	}
	cases = append(cases,
		badCase{"truncated signature", func(t testing.TB, r *http.Request, h string) { v := sig(r); r.Header.Set(h, v[:len(v)-3]) }, 401, malformed},
		badCase{"wrongly encoded signature", func(t testing.TB, r *http.Request, h string) {
			v := sig(r)
			r.Header.Set(h, v[:len(v)-6]+"!!!!?~")
		}, 401, malformed},
	)
	if s.Prefix != "" {
		cases = append(cases, badCase{"wrong prefix", func(t testing.TB, r *http.Request, h string) {
			r.Header.Set(h, strings.Replace(sig(r), s.Prefix, "x"+s.Prefix[1:], -1))
		}, 401, ReasonSignatureMalformed})
	}
	if s.hasTimestamp() && !s.TimestampIsNonce {
		resign := func(ts time.Time) func(testing.TB, *http.Request, string) {
			return func(t testing.TB, r *http.Request, h string) {
				o := signed(t, name, testSecrets[name][0], testBody(name, 1, ts), ts)
				for k, v := range o.Header {
					r.Header[k] = v
				}
			}
		}
		// Just outside the preset's replay window.
		p, _ := LookupPreset(name)
		outside := p.Tolerance + time.Minute
		setTS := func(v string) func(testing.TB, *http.Request, string) {
			return func(t testing.TB, r *http.Request, h string) {
				if s.timestampInSignature() {
					_, rest, _ := strings.Cut(sig(r), string(s.Separator))
					r.Header.Set(h, s.TimestampKey+"="+v+string(s.Separator)+rest)
					return
				}
				r.Header.Set(s.TimestampHeader, v)
			}
		}
		cases = append(cases,
			badCase{"stale timestamp", resign(testNow.Add(-outside)), 401, ReasonTimestampOutOfWindow},
			badCase{"future timestamp", resign(testNow.Add(outside)), 401, ReasonTimestampOutOfWindow},
			badCase{"non-numeric timestamp", setTS("16e8"), 401, ReasonTimestampInvalid},
			badCase{"negative timestamp", setTS("-1800000000"), 401, ReasonTimestampInvalid},
			badCase{"huge timestamp", setTS("99999999999999999999999"), 401, ReasonTimestampInvalid},
			badCase{"timestamp edited after signing", setTS(formatTimestamp(s.TimestampFormat, testNow.Add(-time.Second))), 401, ReasonSignatureInvalid},
		)
		if s.TimestampHeader != "" {
			cases = append(cases,
				badCase{"missing timestamp", func(t testing.TB, r *http.Request, h string) { r.Header.Del(s.TimestampHeader) }, 401, ReasonTimestampInvalid},
				badCase{"duplicated timestamp header", func(t testing.TB, r *http.Request, h string) {
					r.Header.Add(s.TimestampHeader, r.Header.Get(s.TimestampHeader))
				}, 401, ReasonTimestampInvalid},
			)
		}
	}
	if s.Payload.Uses(TokenID) {
		cases = append(cases,
			badCase{"id edited after signing", func(t testing.TB, r *http.Request, h string) { r.Header.Set(s.IDHeader, "msg_other") }, 401, ReasonSignatureInvalid},
			badCase{"duplicated id header", func(t testing.TB, r *http.Request, h string) { r.Header.Add(s.IDHeader, "msg_other") }, 401, ReasonSignatureMalformed},
		)
	}
	return cases
}

func TestBadInputsNeverReachTheBackend(t *testing.T) {
	for _, name := range headerSigned() {
		body := testBody(name, 1, testNow)
		secrets, pubs := keyFields(t, name, testSecrets[name][0])
		h := newHandler(t, &Handler{Provider: name, Secrets: secrets, PublicKeys: pubs, MaxBody: 1024})
		cases := badInputs(name, h.verifier.scheme)
		cases = append(cases,
			badCase{"oversize body with Content-Length", func(t testing.TB, r *http.Request, _ string) {
				big := bytes.Repeat([]byte("x"), 2048)
				r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(big)), int64(len(big))
			}, 413, ReasonBodyTooLarge},
			badCase{"oversize chunked body", func(t testing.TB, r *http.Request, _ string) {
				r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(bytes.Repeat([]byte("x"), 1025))), -1
			}, 413, ReasonBodyTooLarge},
		)
		if p, _ := LookupPreset(name); p.Handshake == nil || p.Handshake.Method != http.MethodGet || p.Handshake.Header != p.Scheme.SignatureHeader {
			// (Adobe Sign's handshake is a GET carrying just its token:
			// answered, see TestHandshakeVectors.)
			cases = append(cases, badCase{"GET", func(t testing.TB, r *http.Request, _ string) { r.Method = http.MethodGet }, 405, ReasonMethodNotAllowed})
		}
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				r := signed(t, name, testSecrets[name][0], body, testNow)
				c.mutate(t, r, h.verifier.scheme.SignatureHeader)
				be := &backend{}
				w, repl, err := serve(h, r, be)
				if err != nil {
					t.Fatal(err)
				}
				if be.calls != 0 {
					t.Fatal("the request reached the backend")
				}
				if w.Code != c.status {
					t.Fatalf("status %d, want %d (%s)", w.Code, c.status, w.Body.String())
				}
				if h.bare {
					// Xero: the status alone, no document.
					if w.Body.Len() != 0 {
						t.Fatalf("a bare rejection has a body: %s", w.Body.String())
					}
				} else if got := problemReason(t, w); got != c.reason {
					t.Fatalf("reason %q, want %q (%s)", got, c.reason, w.Body.String())
				}
				if res, _ := repl.GetString("http.webhook.result"); res != string(c.reason) {
					t.Fatalf("{http.webhook.result} = %q", res)
				}
				if c.status == 405 && w.Header().Get("Allow") != "POST" {
					t.Fatalf("Allow = %q", w.Header().Get("Allow"))
				}
				if bytes.Contains(w.Body.Bytes(), []byte(testSecrets[name][0])) {
					t.Fatal("the response contains the secret")
				}
			})
		}
		// The same request unmutated goes through: the table tests what
		// it says it tests.
		r := signed(t, name, testSecrets[name][0], body, testNow)
		be := &backend{}
		if w, _, err := serve(h, r, be); err != nil || be.calls != 1 || w.Code != http.StatusNoContent {
			t.Fatalf("%s: the valid request did not pass: %v %d %s", name, err, w.Code, w.Body.String())
		}
	}
}

func TestVerifiedRequestIsForwardedExactly(t *testing.T) {
	bodies := map[string][]byte{
		"json": []byte(`{"id":"evt_1","type":"charge.succeeded","data":{"amount":100}}`),
		"form": []byte("token=abc&text=hello+world&response_url=https%3A%2F%2Fexample.com"),
		"binary": func() []byte {
			b := make([]byte, 4096)
			for i := range b {
				b[i] = byte(i * 7)
			}
			return b
		}(),
		"empty": {},
	}
	for kind, body := range bodies {
		for _, chunked := range []bool{false, true} {
			h := newHandler(t, &Handler{Provider: "stripe", Secrets: []string{"whsec_x"}})
			r := signed(t, "stripe", "whsec_x", body, testNow)
			if chunked {
				r.ContentLength = -1
				r.TransferEncoding = []string{"chunked"}
			}
			be := &backend{}
			w, repl, err := serve(h, r, be)
			if err != nil || w.Code != http.StatusNoContent {
				t.Fatalf("%s: %v %d %s", kind, err, w.Code, w.Body.String())
			}
			if !bytes.Equal(be.body, body) || be.cl != int64(len(body)) {
				t.Fatalf("%s chunked=%v: backend got %d bytes (Content-Length %d), want %d", kind, chunked, len(be.body), be.cl, len(body))
			}
			if res, _ := repl.GetString("http.webhook.result"); res != "verified" {
				t.Fatalf("result %q", res)
			}
		}
	}
}

func TestPlaceholders(t *testing.T) {
	body := []byte(`{"id":"evt_123","object":"event","data":{"type":"nested"},"type":"invoice.paid"}`)
	h := newHandler(t, &Handler{Provider: "stripe", Secrets: []string{"whsec_old", "whsec_new"}})
	r := signed(t, "stripe", "whsec_new", body, testNow)
	_, repl, err := serve(h, r, &backend{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"http.webhook.provider":     "stripe",
		"http.webhook.id":           "evt_123",
		"http.webhook.event":        "invoice.paid",
		"http.webhook.timestamp":    strconv.FormatInt(testNow.Unix(), 10),
		"http.webhook.result":       "verified",
		"http.webhook.secret_index": "1",
	}
	for k, v := range want {
		if got, _ := repl.GetString(k); got != v {
			t.Errorf("{%s} = %q, want %q", k, got, v)
		}
	}

	gh := newHandler(t, &Handler{Provider: "github", Secrets: []string{"s"}})
	r = signed(t, "github", "s", body, testNow)
	r.Header.Set("X-GitHub-Event", "push")
	r.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	_, repl, _ = serve(gh, r, &backend{})
	if ev, _ := repl.GetString("http.webhook.event"); ev != "push" {
		t.Errorf("event %q", ev)
	}
	if id, _ := repl.GetString("http.webhook.id"); id != "72d3162e-cc78-11e3-81ab-4c9367dc0958" {
		t.Errorf("id %q", id)
	}
}

func TestReportModeLetsEverythingThrough(t *testing.T) {
	h := newHandler(t, &Handler{Provider: "github", Secrets: []string{"s"}, Mode: ModeReport, MaxBody: 16})
	for _, c := range []struct {
		name   string
		body   string
		sig    string
		reason string
	}{
		{"bad signature", `{"a":1}`, "sha256=00", "signature_malformed"},
		{"wrong signature", `{"a":1}`, "sha256=" + strings.Repeat("ab", 32), "signature_invalid"},
		{"too large", `{"a":"0123456789abcdef"}`, "", "body_too_large"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(c.body))
		r.ContentLength = -1
		if c.sig != "" {
			r.Header.Set("X-Hub-Signature-256", c.sig)
		} else {
			r.Header.Set("X-Hub-Signature-256", signed(t, "github", "s", []byte(c.body), testNow).Header.Get("X-Hub-Signature-256"))
		}
		be := &backend{}
		_, repl, err := serve(h, r, be)
		if err != nil || be.calls != 1 || string(be.body) != c.body {
			t.Fatalf("%s: err %v, calls %d, body %q", c.name, err, be.calls, be.body)
		}
		if res, _ := repl.GetString("http.webhook.result"); res != c.reason {
			t.Fatalf("%s: result %q, want %q", c.name, res, c.reason)
		}
	}
}

func TestOnRejectError(t *testing.T) {
	h := newHandler(t, &Handler{Provider: "github", Secrets: []string{"s"}, OnReject: gate.OnRejectError})
	r := httptest.NewRequest(http.MethodPut, "/", strings.NewReader("x"))
	w, _, err := serve(h, r, &backend{})
	var he caddyhttp.HandlerError
	if !errorsAs(err, &he) || he.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("got %v, want a 405 handler error", err)
	}
	if rej, ok := gate.AsRejection(err); !ok || rej.Reason != ReasonMethodNotAllowed {
		t.Fatalf("the error does not carry the rejection: %v", err)
	}
	if w.Body.Len() != 0 || w.Header().Get("Allow") != "POST" {
		t.Fatalf("body %q, Allow %q", w.Body.String(), w.Header().Get("Allow"))
	}
}

func TestSecretsFailClosed(t *testing.T) {
	t.Setenv("WEBHOOKAUTH_TEST_SET", "from-env")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for _, c := range []struct {
		secrets []string
		wantErr string
	}{
		{nil, "at least one 'secret' is required"},
		{[]string{"{env.WEBHOOKAUTH_TEST_UNSET}"}, "secret 0 ({env.WEBHOOKAUTH_TEST_UNSET}) resolved to an empty value"},
		{[]string{"{env.WEBHOOKAUTH_TEST_SET}", "{file./nonexistent/secret}"}, "secret 1 ({file./nonexistent/secret}) resolved to an empty value"},
	} {
		h := &Handler{Provider: "github", Secrets: c.secrets}
		err := h.Provision(ctx)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("secrets %q: error %v, want %q", c.secrets, err, c.wantErr)
		}
	}
	h := &Handler{Provider: "standard", Secrets: []string{"whsec_not base64!"}}
	if err := h.Provision(ctx); err == nil || strings.Contains(err.Error(), "not base64") {
		t.Errorf("bad whsec secret: %v (must fail without quoting the secret)", err)
	}
	h = &Handler{Provider: "github", Secrets: []string{"{env.WEBHOOKAUTH_TEST_SET}"}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
}
