package ratelimit

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
)

// newHandler provisions h as Caddy would. A bare context has no webhook
// app to number unnamed limiters, so each test's limiter gets a name of
// its own (which also keeps runs with -count=N apart).
func newHandler(t *testing.T, h *Handler) *Handler {
	t.Helper()
	if h.Name == "" {
		h.Name = fmt.Sprintf("unit-%d", rand.Uint64())
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Cleanup() })
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	return h
}

// answer is what the next handler does: a status, and optionally a
// webhook_auth verdict.
type answer struct {
	status  int
	refused gate.Reason
	calls   int
}

func (a *answer) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	a.calls++
	if a.refused != "" {
		gate.SetRefused(r.Context(), a.refused)
	}
	w.WriteHeader(a.status)
	return nil
}

func serve(h *Handler, next caddyhttp.Handler, key string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	repl := caddy.NewReplacer()
	repl.Set("test.key", key)
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r.WithContext(ctx), next)
	return w
}

func TestHandlerRefusesPastTheRate(t *testing.T) {
	h := newHandler(t, &Handler{Key: "{test.key}", Rate: 3, Window: caddy.Duration(60e9), Headers: true})
	next := &answer{status: 200}
	for i := range 3 {
		if w := serve(h, next, "a"); w.Code != 200 || w.Header().Get("RateLimit-Policy") == "" {
			t.Fatalf("request %d: %d %v", i, w.Code, w.Header())
		}
	}
	w := serve(h, next, "a")
	if w.Code != 429 || w.Header().Get("Retry-After") != "20" || next.calls != 3 {
		t.Fatalf("fourth: %d Retry-After %q, next called %d times", w.Code, w.Header().Get("Retry-After"), next.calls)
	}
	var p struct{ Reason string }
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Reason != "rate_limited" {
		t.Fatalf("problem %s: %v", w.Body.String(), err)
	}
	// Another key has its own budget.
	if w := serve(h, next, "b"); w.Code != 200 {
		t.Fatalf("other key: %d", w.Code)
	}
}

// count rejected charges only what webhook_auth refused for something the
// sender did: a forged delivery, not a delivery in progress, and nothing
// that was let through.
func TestHandlerCountRejected(t *testing.T) {
	h := newHandler(t, &Handler{Key: "{test.key}", Rate: 2, Window: caddy.Duration(3600e9), Count: CountRejected})
	good := &answer{status: 200}
	busy := &answer{status: 409, refused: gate.ReasonDeliveryInProgress}
	forged := &answer{status: 401, refused: gate.ReasonSignatureInvalid}
	for range 5 {
		serve(h, good, "k")
		serve(h, busy, "k")
	}
	if good.calls != 5 || busy.calls != 5 {
		t.Fatalf("uncharged requests were refused: %d %d", good.calls, busy.calls)
	}
	serve(h, forged, "k")
	serve(h, forged, "k")
	if w := serve(h, forged, "k"); w.Code != 429 || forged.calls != 2 {
		t.Fatalf("third forgery: %d, reached webhook_auth %d times", w.Code, forged.calls)
	}
	if w := serve(h, good, "k"); w.Code != 429 {
		t.Fatalf("a spent key must be refused before the body is read: %d", w.Code)
	}
}

func TestHandlerValidate(t *testing.T) {
	for _, c := range []struct {
		h    Handler
		want string
	}{
		{Handler{}, "'rate' is required"},
		{Handler{Rate: 1, Window: caddy.Duration(60e9), Name: "bad name"}, "may only contain"},
		{Handler{Rate: 1, Window: caddy.Duration(60e9), Count: "some"}, "unknown count"},
		{Handler{Rate: 1, Window: 0}, "window"},
	} {
		if err := c.h.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.h, err, c.want)
		}
	}
}
