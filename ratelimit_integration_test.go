package caddywebhookauth_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

func rateLimitConfig(backend, extra string) string {
	return caddyConfig("", fmt.Sprintf(`
	:9080 {
		route /limited {
			webhook_rate_limit per_client {
				key {http.request.header.X-Client}
				rate 3/1m
				headers on
			}
			webhook_rate_limit global {
				key everyone
				rate 5/1m
			}
			reverse_proxy %s
		}
		route /unnamed {
			webhook_rate_limit {
				key {http.request.header.X-Client}
				rate 1/1h
			}
			reverse_proxy %s
		}
		%s
	}
	`, backend, backend, extra))
}

func limitedGet(t *testing.T, tester *caddytest.Tester, path, client string, status int) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader("{}"))
	req.Header.Set("X-Client", client)
	resp := tester.AssertResponseCode(req, status)
	resp.Body.Close()
	return resp
}

func TestRateLimitThroughRealCaddy(t *testing.T) {
	be := newBackend(t)
	tester := newTester(t)
	tester.InitServer(rateLimitConfig(be.URL, ""), "caddyfile")

	// Client A: 3 per minute; admitted responses carry the headers.
	for i := 2; i >= 0; i-- {
		resp := limitedGet(t, tester, "/limited", "A", 200)
		if got, want := resp.Header.Get("RateLimit"), fmt.Sprintf(`"per_client";r=%d;t=`, i); !strings.HasPrefix(got, want) {
			t.Fatalf("RateLimit %q, want prefix %q", got, want)
		}
		if got := resp.Header.Get("RateLimit-Policy"); got != `"per_client";q=3;w=60` {
			t.Fatalf("RateLimit-Policy %q", got)
		}
	}
	resp := limitedGet(t, tester, "/limited", "A", 429)
	if ra := resp.Header.Get("Retry-After"); ra != "20" {
		t.Fatalf("Retry-After %q, want 20 (one event every 20 s)", ra)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q", ct)
	}

	// Client B has its own budget, but the global limiter stacked after
	// it allows 5 in all: A took 3.
	limitedGet(t, tester, "/limited", "B", 200)
	limitedGet(t, tester, "/limited", "B", 200)
	resp = limitedGet(t, tester, "/limited", "B", 429)
	if pol := resp.Header.Values("RateLimit-Policy"); len(pol) != 2 || pol[1] != `"global";q=5;w=60` {
		t.Fatalf("RateLimit-Policy %q: want the per-client and the global policy", pol)
	}
	if got := len(be.take()); got != 5 {
		t.Fatalf("backend got %d requests, want 5", got)
	}

	limitedGet(t, tester, "/unnamed", "C", 200)
	limitedGet(t, tester, "/unnamed", "C", 429)
	be.take()

	// A reload (here with an extra route) keeps every limiter's state:
	// A, B and C are still limited.
	tester.InitServer(rateLimitConfig(be.URL, `respond /health "ok"`), "caddyfile")
	tester.AssertGetResponse(base+"/health", 200, "ok")
	limitedGet(t, tester, "/limited", "A", 429)
	limitedGet(t, tester, "/unnamed", "C", 429)
	limitedGet(t, tester, "/unnamed", "D", 200)
	if got := len(be.take()); got != 1 {
		t.Fatalf("backend got %d requests after the reload, want 1", got)
	}
}
