package webhookauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
)

// asanaVectors returns Asana's handshake and its valid delivery (signed
// with the handshake's documented secret).
func asanaVectors(t *testing.T) (handshake, delivery moreVector) {
	t.Helper()
	for _, v := range loadVectors(t, "providers-extra.json") {
		switch v.Name {
		case "asana-handshake":
			handshake = v
		case "asana-valid":
			delivery = v
		}
	}
	if handshake.Name == "" || delivery.Name == "" {
		t.Fatal("no asana vectors")
	}
	return handshake, delivery
}

func asanaHandler(t *testing.T, s certmagic.Storage, configure func(*Handler)) *Handler {
	t.Helper()
	h := &Handler{Provider: "asana", enrollStorage: s}
	if configure != nil {
		configure(h)
	}
	h = newHandler(t, h)
	t.Cleanup(func() { h.Cleanup() })
	return h
}

// The enrollment, end to end on real storage: a handshake is answered
// only with an armed token, once; its secret (Asana's documented one)
// then verifies the outside vector's delivery at that path only.
func TestAsanaEnrollment(t *testing.T) {
	s := &certmagic.FileStorage{Path: t.TempDir()}
	h := asanaHandler(t, s, nil)
	hs, dv := asanaVectors(t)
	secret := hs.Headers["X-Hook-Secret"]
	ctx := context.Background()
	handshake := func(target, secret string) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, target, nil)
		r.Header.Set("X-Hook-Secret", secret)
		w, _, be := dedupSend(t, h, r)
		if be.calls != 0 {
			t.Fatalf("a handshake reached the backend")
		}
		if w.Code != 200 && w.Header().Get("X-Hook-Secret") != "" {
			t.Fatalf("a refused handshake echoed the secret")
		}
		return w
	}
	deliver := func(target, body, sig string) (*httptest.ResponseRecorder, *backend) {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
		r.Header.Set("X-Hook-Signature", sig)
		w, _, be := dedupSend(t, h, r)
		return w, be
	}

	// Not armed: refused, whatever the token.
	if w := handshake("/hooks/asana", secret); w.Code != 401 || !strings.Contains(w.Body.String(), "enrollment token") {
		t.Fatalf("no token: %d %s", w.Code, w.Body.String())
	}
	if w := handshake("/hooks/asana?asana_enroll=made-up-token", secret); w.Code != 401 {
		t.Fatalf("a made-up token: %d %s", w.Code, w.Body.String())
	}
	tok, err := Arm(ctx, s, DefaultArmTTL, testNow)
	if err != nil {
		t.Fatal(err)
	}
	target := "/hooks/asana?asana_enroll=" + tok.Token
	for _, bad := range []string{"", "a b", strings.Repeat("a", 129), "<script>"} {
		if w := handshake(target, bad); w.Code == 200 {
			t.Fatalf("secret %q answered", bad)
		}
	}
	// Armed: answered with the secret, once.
	w := handshake(target, secret)
	if w.Code != 200 || w.Header().Get("X-Hook-Secret") != secret || w.Body.Len() != 0 {
		t.Fatalf("armed: %d %v %q", w.Code, w.Header(), w.Body.String())
	}
	if w := handshake(target, strings.Repeat("f", 64)); w.Code != 401 {
		t.Fatalf("the spent token again: %d %s", w.Code, w.Body.String())
	}
	// The learned secret verifies Asana's delivery at that URL.
	if w, be := deliver(target, dv.Body, dv.Headers["X-Hook-Signature"]); w.Code != 204 || be.calls != 1 || string(be.body) != dv.Body {
		t.Fatalf("delivery: %d %s", w.Code, w.Body.String())
	}
	for name, c := range map[string]struct{ target, body, sig string }{
		"another body":              {target, strings.Replace(dv.Body, "completed", "assignee", 1), dv.Headers["X-Hook-Signature"]},
		"another path":              {"/hooks/other?asana_enroll=" + tok.Token, dv.Body, dv.Headers["X-Hook-Signature"]},
		"an unknown token":          {"/hooks/asana?asana_enroll=AAAAAAAAAAAAAAAAAAAAAA", dv.Body, dv.Headers["X-Hook-Signature"]},
		"no token, no secret given": {"/hooks/asana", dv.Body, dv.Headers["X-Hook-Signature"]},
		"the token twice":           {target + "&asana_enroll=" + tok.Token, dv.Body, dv.Headers["X-Hook-Signature"]},
	} {
		if w, be := deliver(c.target, c.body, c.sig); w.Code != 401 || be.calls != 0 {
			t.Errorf("%s: %d %s", name, w.Code, w.Body.String())
		}
	}
	// A handshake that also carries a signature is a delivery, not an
	// enrollment: it sets nothing.
	tok2, _ := Arm(ctx, s, DefaultArmTTL, testNow)
	r := httptest.NewRequest(http.MethodPost, "/hooks/asana?asana_enroll="+tok2.Token, nil)
	r.Header.Set("X-Hook-Secret", secret)
	r.Header.Set("X-Hook-Signature", "00")
	if w, _, _ := dedupSend(t, h, r); w.Code != 401 || w.Header().Get("X-Hook-Secret") != "" {
		t.Fatalf("handshake with a signature: %d", w.Code)
	}

	// The list shows the path, never the secret; forgetting one refuses
	// its deliveries.
	list, err := ListEnrollments(ctx, s)
	if err != nil || len(list) != 1 || list[0].Path != "/hooks/asana" || len(list[0].ID) != 16 {
		t.Fatalf("list: %+v %v", list, err)
	}
	ok, err := ForgetEnrollment(ctx, s, list[0].ID)
	if !ok || err != nil {
		t.Fatalf("forget: %v %v", ok, err)
	}
	if w, be := deliver(target, dv.Body, dv.Headers["X-Hook-Signature"]); w.Code != 401 || be.calls != 0 {
		t.Fatalf("after forget: %d", w.Code)
	}
	if ok, _ := ForgetEnrollment(ctx, s, list[0].ID); ok {
		t.Fatal("forgot twice")
	}
}

// An armed token is good for its ttl only.
func TestAsanaArmExpires(t *testing.T) {
	s := &certmagic.FileStorage{Path: t.TempDir()}
	h := asanaHandler(t, s, nil)
	tok, err := Arm(context.Background(), s, time.Minute, testNow.Add(-2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/h?asana_enroll="+tok.Token, nil)
	r.Header.Set("X-Hook-Secret", strings.Repeat("a", 64))
	if w, _, _ := dedupSend(t, h, r); w.Code != 401 || !strings.Contains(w.Body.String(), "expired") {
		t.Fatalf("expired: %d %s", w.Code, w.Body.String())
	}
}

// Ten handshakes race with one armed token, each with its own secret:
// exactly one is answered, and its secret is the one stored.
func TestAsanaEnrollmentRace(t *testing.T) {
	s := &certmagic.FileStorage{Path: t.TempDir()}
	h := asanaHandler(t, s, nil)
	tok, err := Arm(context.Background(), s, DefaultArmTTL, testNow)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var won []string
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			secret := strings.Repeat(string(rune('a'+i)), 64)
			r := httptest.NewRequest(http.MethodPost, "/h?asana_enroll="+tok.Token, nil)
			r.Header.Set("X-Hook-Secret", secret)
			w, _, err := serve(h, r, &backend{})
			if err == nil && w.Code == 200 {
				mu.Lock()
				won = append(won, secret)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d handshakes answered", len(won))
	}
	raw, err := s.Load(context.Background(), enrolledKey(tokenHash(tok.Token)))
	if err != nil || !strings.Contains(string(raw), won[0]) {
		t.Fatalf("stored %s, %v", raw, err)
	}
}

// A configured secret verifies deliveries that carry no token; with
// handshake off the handshake goes to the backend and nothing is
// learned; outside a Caddy config the secret must be given.
func TestAsanaConfiguredSecret(t *testing.T) {
	hs, dv := asanaVectors(t)
	s := &certmagic.FileStorage{Path: t.TempDir()}
	off := false
	h := asanaHandler(t, s, func(h *Handler) { h.Secrets = []string{dv.Secret}; h.Handshake = &off })
	r := httptest.NewRequest(http.MethodPost, "/hooks/asana", strings.NewReader(dv.Body))
	r.Header.Set("X-Hook-Signature", dv.Headers["X-Hook-Signature"])
	if w, _, be := dedupSend(t, h, r); be.calls != 1 {
		t.Fatalf("configured secret: %d %s", w.Code, w.Body.String())
	}
	tok, _ := Arm(context.Background(), s, DefaultArmTTL, testNow)
	r = httptest.NewRequest(http.MethodPost, "/hooks/asana?asana_enroll="+tok.Token, nil)
	r.Header.Set("X-Hook-Secret", hs.Headers["X-Hook-Secret"])
	if w, _, be := dedupSend(t, h, r); be.calls != 1 || w.Header().Get("X-Hook-Secret") != "" {
		t.Fatalf("handshake off: %d, backend %d", w.Code, be.calls)
	}
	if list, _ := ListEnrollments(context.Background(), s); len(list) != 0 {
		t.Fatalf("handshake off learned %v", list)
	}
	if err := (&Handler{Provider: "asana"}).Provision(bareContext(t)); err == nil || !strings.Contains(err.Error(), "'secret'") {
		t.Fatalf("no storage, no secret: %v", err)
	}
}

// A flood of made-up tokens costs at most maxEnrollmentReads storage
// reads a second, and each unknown token is remembered.
func TestAsanaUnknownTokensBounded(t *testing.T) {
	s := &countingStorage{Storage: &certmagic.FileStorage{Path: t.TempDir()}}
	c := &enrollmentCache{entries: map[string]cachedEnrollment{}}
	now := testNow
	for i := range 500 {
		if e, err := c.lookup(context.Background(), s, tokenHash(strings.Repeat("x", i+1)), now); e != nil || err != nil {
			t.Fatal(e, err)
		}
	}
	if s.loads != maxEnrollmentReads {
		t.Fatalf("%d storage reads in one second, want %d", s.loads, maxEnrollmentReads)
	}
	c.lookup(context.Background(), s, tokenHash("x"), now.Add(time.Second))
	if s.loads != maxEnrollmentReads {
		t.Fatalf("a remembered unknown token was read again")
	}
	// A known enrollment stays known while the budget is spent, past
	// its cache time.
	c.entries[tokenHash("known")] = cachedEnrollment{e: &Enrollment{Secret: "s", Path: "/"}, loaded: now}
	later := now.Add(2 * enrollmentCacheTTL)
	for i := range maxEnrollmentReads {
		c.lookup(context.Background(), s, tokenHash(strings.Repeat("y", i+1)), later)
	}
	if e, _ := c.lookup(context.Background(), s, tokenHash("known"), later); e == nil || e.Secret != "s" {
		t.Fatal("a known enrollment was dropped under a flood")
	}
}

type countingStorage struct {
	certmagic.Storage
	loads int
}

func (c *countingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	c.loads++
	return c.Storage.Load(ctx, key)
}

// bareContext is a context that belongs to no Caddy config, as the
// verify command's.
func bareContext(t *testing.T) caddy.Context {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}
