package webhookauth

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
)

// trickle returns its data a few bytes at a time, then err (io.EOF when
// nil).
type trickle struct {
	data []byte
	step int
	err  error
}

func (t *trickle) Read(p []byte) (int, error) {
	if len(t.data) == 0 {
		if t.err != nil {
			return 0, t.err
		}
		return 0, io.EOF
	}
	n := min(len(p), t.step, len(t.data))
	copy(p, t.data[:n])
	t.data = t.data[n:]
	return n, nil
}

func (t *trickle) Close() error { return nil }

// The buffer follows the bytes that arrive, never the Content-Length a
// sender declares; every body comes back byte for byte.
func TestReadBodyMemoryFollowsBytesReceived(t *testing.T) {
	const limit = 10_000_000
	for _, c := range []struct {
		declared int64
		sent     int
		step     int
	}{
		{10_000_000, 1, 1},
		{10_000_000, 170, 7},
		{-1, 1, 1},
		{0, 0, 1},
		{1 << 20, 1 << 20, 1 << 20},
		{1 << 20, 1 << 20, 4093},
		{-1, 3 << 20, 65536},
		{100_000, 100_000, 333},
		{64 << 10, 64 << 10, 1000},
		{5, 5, 5},
	} {
		data := make([]byte, c.sent)
		for i := range data {
			data[i] = byte(rand.Uint32())
		}
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.ContentLength = c.declared
		r.Body = &trickle{data: bytes.Clone(data), step: c.step}
		b, rej, err := readBody(r, limit)
		if rej != nil || err != nil {
			t.Fatalf("%+v: %v %v", c, rej, err)
		}
		if !bytes.Equal(b.buf, data) {
			t.Fatalf("%+v: body changed (%d bytes, want %d)", c, len(b.buf), len(data))
		}
		// At most twice what arrived, or the first small buffer.
		if bound := max(2*c.sent, 64<<10); cap(b.buf) > bound {
			t.Fatalf("%+v: buffer of %d bytes for %d received (bound %d)", c, cap(b.buf), c.sent, bound)
		}
		b.release()
	}
}

func TestReadBodyOverLimitAndErrors(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.ContentLength = -1
	r.Body = &trickle{data: bytes.Repeat([]byte("x"), 1000), step: 100}
	b, rej, err := readBody(r, 999)
	if err != nil || rej == nil || rej.Reason != ReasonBodyTooLarge || b == nil {
		t.Fatalf("over the limit: %v %v", rej, err)
	}
	b.release()

	// A sender that declared 10 bytes and sends 11 is cut off like any
	// body over the limit would be, and never read past it.
	r = httptest.NewRequest(http.MethodPost, "/", nil)
	r.ContentLength = 10
	r.Body = &trickle{data: bytes.Repeat([]byte("y"), 11), step: 10}
	b, rej, err = readBody(r, 10)
	if err != nil || rej == nil || rej.Reason != ReasonBodyTooLarge {
		t.Fatalf("more than declared: %v %v", rej, err)
	}
	b.release()

	r = httptest.NewRequest(http.MethodPost, "/", nil)
	r.Body = &trickle{data: []byte("abc"), step: 1, err: os.ErrDeadlineExceeded}
	r.ContentLength = 100
	if _, rej, err := readBody(r, 1000); err != nil || rej == nil || rej.Reason != ReasonBodyTimeout || rej.Reason.Status() != 408 {
		t.Fatalf("deadline: %v %v", rej, err)
	}
	r.Body = &trickle{data: []byte("abc"), step: 1, err: io.ErrUnexpectedEOF}
	if _, rej, err := readBody(r, 1000); err == nil || rej != nil {
		t.Fatalf("broken connection: %v %v", rej, err)
	}
}

func TestBodyTimeoutClosesTheConnection(t *testing.T) {
	w := httptest.NewRecorder()
	if err := gate.Respond(w, bodyTimeout, gate.OnRejectRespond); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusRequestTimeout || w.Header().Get("Connection") != "close" {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
}

// dedupSend runs one request through h and returns the answer, the
// result placeholder and what the backend saw.
func dedupSend(t *testing.T, h *Handler, r *http.Request) (*httptest.ResponseRecorder, *caddy.Replacer, *backend) {
	t.Helper()
	be := &backend{}
	w, repl, err := serve(h, r, be)
	if err != nil {
		t.Fatal(err)
	}
	return w, repl, be
}

// GitLab's token signs nothing: without Idempotency-Key there is nothing
// to deduplicate on, so every delivery goes through, and the token never
// appears in an answer.
func TestTokenSchemeWithoutIDIsNeverAbsorbed(t *testing.T) {
	const token = "gl-token-secret-value"
	h := newHandler(t, &Handler{Provider: "gitlab", Secrets: []string{token}, Dedup: caddy.Duration(DefaultDedupTTL)})
	for i, body := range []string{`{"a":1}`, `{"a":2}`, `{"a":1}`} {
		r := signed(t, "gitlab", token, []byte(body), testNow)
		r.Header.Del("Idempotency-Key")
		w, repl, be := dedupSend(t, h, r)
		if be.calls != 1 || string(be.body) != body {
			t.Fatalf("delivery %d: backend calls %d", i, be.calls)
		}
		if dup, _ := repl.Get("http.webhook.duplicate"); dup != dedupUnchecked {
			t.Fatalf("delivery %d: duplicate placeholder %v, want %q", i, dup, dedupUnchecked)
		}
		if strings.Contains(w.Body.String(), token) {
			t.Fatalf("the token is in the answer")
		}
	}
	// With an id, GitLab deliveries are deduplicated as usual.
	r := signed(t, "gitlab", token, []byte(`{}`), testNow)
	r.Header.Set("Idempotency-Key", "gl-1")
	if _, _, be := dedupSend(t, h, r); be.calls != 1 {
		t.Fatal("first delivery with an id not forwarded")
	}
	r = signed(t, "gitlab", token, []byte(`{}`), testNow)
	r.Header.Set("Idempotency-Key", "gl-1")
	if w, _, be := dedupSend(t, h, r); be.calls != 0 || !strings.Contains(w.Body.String(), `"id":"gl-1"`) {
		t.Fatalf("copy with an id: calls %d, %s", be.calls, w.Body.String())
	}
}

// Without an id, the MAC that matched identifies the delivery, so a copy
// whose signature header is spelled differently is still a copy, and the
// answer shows no signature.
func TestDedupOnMACIgnoresTheHeaderSpelling(t *testing.T) {
	h := newHandler(t, &Handler{Provider: "github", Secrets: []string{"s"}, Dedup: caddy.Duration(DefaultDedupTTL)})
	body := []byte(`{"no":"id"}`)
	r := signed(t, "github", "s", body, testNow)
	r.Header.Del("X-GitHub-Delivery")
	sig := r.Header.Get("X-Hub-Signature-256")
	if _, _, be := dedupSend(t, h, r); be.calls != 1 {
		t.Fatal("first delivery not forwarded")
	}
	r = signed(t, "github", "s", body, testNow)
	r.Header.Del("X-GitHub-Delivery")
	r.Header.Set("X-Hub-Signature-256", "sha256="+strings.ToUpper(sig[len("sha256="):]))
	w, _, be := dedupSend(t, h, r)
	if be.calls != 0 || w.Body.String() != "{\"status\":\"duplicate\"}\n" {
		t.Fatalf("upper-cased copy: calls %d, answer %q", be.calls, w.Body.String())
	}

	// Stripe: several v1 entries in another order, a body without id.
	hs := newHandler(t, &Handler{Provider: "stripe", Secrets: []string{"whsec_one"}, Dedup: caddy.Duration(DefaultDedupTTL)})
	sbody := []byte(`{"object":"event"}`)
	r = signed(t, "stripe", "whsec_one", sbody, testNow)
	orig := r.Header.Get("Stripe-Signature")
	other := "v1=" + hex.EncodeToString(bytes.Repeat([]byte{7}, 32))
	r.Header.Set("Stripe-Signature", orig+","+other)
	if _, _, be := dedupSend(t, hs, r); be.calls != 1 {
		t.Fatal("stripe delivery not forwarded")
	}
	parts := strings.SplitN(orig, ",", 2) // t=…, v1=…
	r = signed(t, "stripe", "whsec_one", sbody, testNow)
	r.Header.Set("Stripe-Signature", other+", "+parts[1]+","+parts[0])
	if _, _, be := dedupSend(t, hs, r); be.calls != 0 {
		t.Fatal("reordered stripe copy reached the backend")
	}
	// Another body is another delivery.
	r = signed(t, "stripe", "whsec_one", []byte(`{"object":"event","n":2}`), testNow)
	if _, _, be := dedupSend(t, hs, r); be.calls != 1 {
		t.Fatal("a different delivery was absorbed")
	}
}

// Two handlers without a shared scope never see each other's ids; two
// that name the same scope do.
func TestDedupScopes(t *testing.T) {
	a := newHandler(t, &Handler{Provider: "github", Secrets: []string{"a"}, Dedup: caddy.Duration(DefaultDedupTTL)})
	b := newHandler(t, &Handler{Provider: "github", Secrets: []string{"b"}, Dedup: caddy.Duration(DefaultDedupTTL)})
	// The memory store lives as long as the process: a scope and an id of
	// this run's own keep -count=N runs apart.
	run := strconv.FormatUint(rand.Uint64(), 36)
	scope := "shared-" + run
	c1 := newHandler(t, &Handler{Provider: "github", Secrets: []string{"c"}, Dedup: caddy.Duration(DefaultDedupTTL), DedupScope: scope})
	c2 := newHandler(t, &Handler{Provider: "github", Secrets: []string{"c"}, Dedup: caddy.Duration(DefaultDedupTTL), DedupScope: scope})
	send := func(h *Handler, secret, id string) int {
		r := signed(t, "github", secret, []byte(`{}`), testNow)
		r.Header.Set("X-GitHub-Delivery", id)
		_, _, be := dedupSend(t, h, r)
		return be.calls
	}
	id := "seq-" + run
	if send(a, "a", id) != 1 || send(b, "b", id) != 1 {
		t.Fatal("an id seen by one handler was absorbed by another")
	}
	if send(c1, "c", id) != 1 || send(c2, "c", id) != 0 {
		t.Fatal("handlers of one scope do not share ids")
	}
}

func TestDeliveryIDTooLong(t *testing.T) {
	h := newHandler(t, &Handler{Provider: "github", Secrets: []string{"s"}, Dedup: caddy.Duration(DefaultDedupTTL)})
	r := signed(t, "github", "s", []byte(`{}`), testNow)
	r.Header.Set("X-GitHub-Delivery", strings.Repeat("i", MaxDeliveryIDLength+1))
	w, _, be := dedupSend(t, h, r)
	if be.calls != 0 || w.Code != 400 || problemReason(t, w) != ReasonDeliveryIDInvalid {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	r = signed(t, "github", "s", []byte(`{}`), testNow)
	r.Header.Set("X-GitHub-Delivery", strings.Repeat("i", MaxDeliveryIDLength))
	if _, _, be := dedupSend(t, h, r); be.calls != 1 {
		t.Fatal("an id of the maximum length was refused")
	}
	// Stripe's id comes from the (signed) body.
	hs := newHandler(t, &Handler{Provider: "stripe", Secrets: []string{"whsec_one"}, Dedup: caddy.Duration(DefaultDedupTTL)})
	r = signed(t, "stripe", "whsec_one", []byte(`{"id":"`+strings.Repeat("e", MaxDeliveryIDLength+1)+`"}`), testNow)
	if w, _, be := dedupSend(t, hs, r); be.calls != 0 || w.Code != 400 {
		t.Fatalf("long body id: %d", w.Code)
	}
}

// A header the signature covers, sent twice, would reach the backend with
// a value nobody signed.
func TestRepeatedSignedHeaderIsMalformed(t *testing.T) {
	h := newHandler(t, &Handler{Secrets: []string{"generic-secret-0123"}, SchemeConfig: SchemeConfig{
		SignatureHeader: "X-Sig", SignedPayload: "{header.X-Event}.{body}",
	}})
	s := h.verifier.scheme
	body := []byte(`{"a":1}`)
	mk := func() *http.Request {
		hdr, err := s.SignHeaders("generic-secret-0123", Delivery{Body: body, Header: http.Header{"X-Event": {"push"}}})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		for k, v := range hdr {
			r.Header[k] = v
		}
		r.Header.Set("X-Event", "push")
		return r
	}
	if _, _, be := dedupSend(t, h, mk()); be.calls != 1 {
		t.Fatal("the signed delivery did not pass")
	}
	r := mk()
	r.Header.Add("X-Event", "delete")
	w, _, be := dedupSend(t, h, r)
	if be.calls != 0 || problemReason(t, w) != ReasonSignatureMalformed {
		t.Fatalf("repeated signed header: calls %d, %s", be.calls, w.Body.String())
	}
}

// A request with no signature must not inherit the id or timestamp of an
// earlier request from the pooled verification state.
func TestNoStateFromThePreviousRequest(t *testing.T) {
	h := newHandler(t, &Handler{Provider: "standard", Secrets: []string{testSecrets["standard"][0]}, Mode: ModeReport})
	for i := 0; i < 50; i++ {
		r := signed(t, "standard", testSecrets["standard"][0], []byte(`{}`), testNow)
		if _, repl, _ := dedupSend(t, h, r); !strings.HasPrefix(repl.ReplaceAll("{http.webhook.id}", ""), "msg_") {
			t.Fatal("signed request has no id")
		}
		r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
		_, repl, be := dedupSend(t, h, r)
		if id := repl.ReplaceAll("{http.webhook.id}", ""); id != "" {
			t.Fatalf("request %d without a signature got the id %q", i, id)
		}
		if ts := repl.ReplaceAll("{http.webhook.timestamp}", ""); ts != "" {
			t.Fatalf("request %d without a signature got the timestamp %q", i, ts)
		}
		if be.calls != 1 {
			t.Fatal("report mode did not forward")
		}
	}
}

func TestWeakSecretsDoNotLoad(t *testing.T) {
	t.Setenv("WEBHOOKAUTH_TEST_BLANK", "   ")
	for _, c := range []struct {
		secret, want string
	}{
		{"   ", "empty or only white space"},
		{"\n", "empty or only white space"},
		{"\t \r\n", "empty or only white space"},
		{"{env.WEBHOOKAUTH_TEST_BLANK}", "empty or only white space"},
		{"prefix-{env.WEBHOOKAUTH_TEST_UNSET_9}", "{env.WEBHOOKAUTH_TEST_UNSET_9}"},
		{"{env.WEBHOOKAUTH_TEST_UNSET_9}-suffix-value", "{env.WEBHOOKAUTH_TEST_UNSET_9}"},
	} {
		h := &Handler{Provider: "github", Secrets: []string{"good-secret-0123456", c.secret}}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
		err := h.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "secret 1") {
			t.Fatalf("secret %q: error %v, want one naming %q", c.secret, err, c.want)
		}
		if strings.Contains(err.Error(), "prefix-") || strings.Contains(err.Error(), "suffix-value") {
			t.Fatalf("the error shows the secret: %v", err)
		}
	}
}

func TestForwardSignature(t *testing.T) {
	on, off := true, false
	for _, c := range []struct {
		provider string
		forward  *bool
		want     bool
	}{
		{"gitlab", nil, false},
		{"gitlab", &on, true},
		{"github", nil, true},
		{"github", &off, false},
	} {
		secret := testSecrets[c.provider][0]
		h := newHandler(t, &Handler{Provider: c.provider, Secrets: []string{secret}, ForwardSignature: c.forward})
		r := signed(t, c.provider, secret, []byte(`{}`), testNow)
		hdr := h.verifier.scheme.SignatureHeader
		var got http.Header
		next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			got = r.Header.Clone()
			return nil
		})
		if _, _, err := serve(h, r, next); err != nil || got == nil {
			t.Fatalf("%s: %v", c.provider, err)
		}
		if has := got.Get(hdr) != ""; has != c.want {
			t.Fatalf("%s forward %v: backend has %s: %v, want %v", c.provider, c.forward, hdr, has, c.want)
		}
	}
}

// A token carried in the body (Microsoft Graph's clientState) cannot be
// removed without altering the body: forward_signature off is refused at
// load, and by default the body goes on untouched.
func TestForwardSignatureInBody(t *testing.T) {
	off := false
	h := &Handler{Provider: "msgraph", Secrets: []string{"graph-client-state-0123456789"}, ForwardSignature: &off}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err == nil || !strings.Contains(err.Error(), "forward_signature off") {
		t.Fatalf("forward_signature off with a body token: %v", err)
	}
}

type handlerFunc func(http.ResponseWriter, *http.Request) error

func (f handlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

func TestRequestURLAbsoluteForm(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "http://example.com/hook?a=1", nil)
	r.RequestURI = "http://example.com/hook?a=1"
	r.Host = "example.com"
	if got := requestURL(r); got != "http://example.com/hook?a=1" {
		t.Fatalf("absolute form: %q", got)
	}
	r = httptest.NewRequest(http.MethodPost, "/hook?a=1", nil)
	r.Host = "example.com:8443"
	if got := requestURL(r); got != "http://example.com:8443/hook?a=1" {
		t.Fatalf("origin form: %q", got)
	}
}

// Every reason webhook_auth can answer with is counted: a reason without
// a resolved counter would vanish from caddy_webhook_requests_total.
func TestEveryReasonHasACounter(t *testing.T) {
	hm := newHandlerMetrics("test-reasons", 1, "")
	for _, r := range gate.Reasons() {
		switch r {
		case gate.ReasonRateLimited, // webhook_rate_limit's own metric
			gate.ReasonQueueFull, gate.ReasonQueueUnavailable: // webhook_queue's refused_total
			continue
		}
		if _, ok := hm.results[string(r)]; !ok {
			t.Errorf("no counter for %s", r)
		}
	}
}

// The Content-Length header is rewritten unless it already says exactly
// the length forwarded.
func TestDeclares(t *testing.T) {
	for v, want := range map[string]bool{"1024": true, "01024": false, "+1024": false, "1025": false, "": false, " 1024": false, "0": false} {
		if got := declares(v, 1024); got != want {
			t.Errorf("declares(%q, 1024) = %v", v, got)
		}
	}
	if !declares("0", 0) {
		t.Error(`declares("0", 0) = false`)
	}
}
