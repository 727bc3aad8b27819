package keyfetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestAllowlist(t *testing.T) {
	a := Allowlist{"sns.*.amazonaws.com", "api.paypal.com", "127.0.0.1:8443"}
	for _, c := range []struct {
		url  string
		want bool
	}{
		{"https://sns.us-east-1.amazonaws.com/x.pem", true},
		{"https://SNS.EU-WEST-1.AMAZONAWS.COM/x.pem", true},
		{"https://sns.amazonaws.com/x.pem", false},                    // the '*' needs a label
		{"https://sns.a.b.amazonaws.com/x.pem", false},                // one label only
		{"https://sns.us-east-1.amazonaws.com.evil.com/x.pem", false}, // suffix
		{"https://evilsns.us-east-1.amazonaws.com/x.pem", false},
		{"https://sns.us_east.amazonaws.com/x.pem", false},
		{"http://sns.us-east-1.amazonaws.com/x.pem", false},
		{"https://user@sns.us-east-1.amazonaws.com/x.pem", false},
		{"https://sns.us-east-1.amazonaws.com:444/x.pem", false},
		{"https://api.paypal.com/v1/notifications/certs/CERT-1", true},
		{"https://api.paypal.com.evil.com/", false},
		{"https://127.0.0.1:8443/sns.pem", true},
		{"https://127.0.0.1/sns.pem", false},
	} {
		u, err := url.Parse(c.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Allows(u); got != c.want {
			t.Errorf("%s: %v, want %v", c.url, got, c.want)
		}
	}
}

func TestMaxAge(t *testing.T) {
	for _, c := range []struct {
		cc   string
		want time.Duration
	}{
		{"", time.Hour},
		{"public, max-age=19800, must-revalidate, no-transform", 19800 * time.Second},
		{"max-age=5", time.Minute},         // clamped up
		{"max-age=999999", 24 * time.Hour}, // clamped down
		{"max-age=junk", time.Hour},
	} {
		h := http.Header{}
		if c.cc != "" {
			h.Set("Cache-Control", c.cc)
		}
		if got := MaxAge(h, time.Hour, time.Minute, 24*time.Hour); got != c.want {
			t.Errorf("%q: %v, want %v", c.cc, got, c.want)
		}
	}
}

// A source over a plain test server, with its own allowlist.
func testSource(t *testing.T, handler http.HandlerFunc, cfg Config) (*Source, *httptest.Server, Allowlist) {
	srv := httptest.NewTLSServer(handler)
	t.Cleanup(srv.Close)
	s := New(cfg)
	s.client.Transport = srv.Client().Transport
	return s, srv, Allowlist{strings.TrimPrefix(srv.URL, "https://")}
}

var echo Parser = func(body []byte, _ http.Header, now time.Time) (any, time.Time, error) {
	return string(body), now.Add(time.Hour), nil
}

// Unvouched keys share a quarter of the cache (MaxEntries 8: 2 of
// them), the least recently used going first; a parse failure caches
// nothing.
func TestCacheBound(t *testing.T) {
	var hits atomic.Int64
	s, srv, allow := testSource(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(r.URL.Path))
	}, Config{MaxEntries: 8})
	ctx := context.Background()
	for i := range 10 {
		if v, err := s.Get(ctx, "t", srv.URL+"/k"+string(rune('0'+i)), allow, echo); err != nil || v != "/k"+string(rune('0'+i)) {
			t.Fatalf("%d: %v %v", i, v, err)
		}
	}
	if s.Len() != 2 {
		t.Fatalf("%d entries, want 2", s.Len())
	}
	before := hits.Load()
	s.Get(ctx, "t", srv.URL+"/k9", allow, echo) // cached
	s.Get(ctx, "t", srv.URL+"/k0", allow, echo) // evicted long ago
	if got := hits.Load() - before; got != 1 {
		t.Fatalf("%d fetches, want 1", got)
	}
	bad := func([]byte, http.Header, time.Time) (any, time.Time, error) {
		return nil, time.Time{}, errors.New("nope")
	}
	if _, err := s.Get(ctx, "t", srv.URL+"/bad", allow, bad); err == nil {
		t.Fatal("a key that does not parse was accepted")
	} else if un := new(Unavailable); !errors.As(err, &un) || strings.Contains(err.Error(), "/bad") {
		t.Fatalf("error %v", err)
	}
}

// A key that has verified a delivery (Vouch) is never evicted by keys
// that have not: 500 requests naming new URLs churn the unvouched
// quarter, and the vouched keys are still served from the cache.
func TestVouchedKeysSurviveAFlood(t *testing.T) {
	var hits atomic.Int64
	s, srv, allow := testSource(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(r.URL.Path))
	}, Config{MaxEntries: 8})
	ctx := context.Background()
	for _, k := range []string{"/google", "/sns"} {
		if _, err := s.Get(ctx, "t", srv.URL+k, allow, echo); err != nil {
			t.Fatal(err)
		}
		s.Vouch("t", srv.URL+k)
	}
	for i := range 500 {
		s.Get(ctx, "t", fmt.Sprintf("%s/flood%d", srv.URL, i), allow, echo)
	}
	before := hits.Load()
	for _, k := range []string{"/google", "/sns"} {
		if v, err := s.Get(ctx, "t", srv.URL+k, allow, echo); err != nil || v != k {
			t.Fatalf("%s: %v %v", k, v, err)
		}
	}
	if got := hits.Load() - before; got != 0 {
		t.Fatalf("the vouched keys were evicted: %d fetches", got)
	}
	// Vouched keys have a bound of their own (8 - 2): the least
	// recently used goes.
	for i := range 10 {
		u := fmt.Sprintf("%s/v%d", srv.URL, i)
		s.Get(ctx, "t", u, allow, echo)
		s.Vouch("t", u)
	}
	if s.Len() > 8 {
		t.Fatalf("%d entries, bound 8", s.Len())
	}
}

// Spellings of one URL are one entry and one fetch: letter case of the
// host, the default port, escapes in the path. Dot segments and empty
// segments are refused without a request. Spaces never share entries:
// the same URL under two senders is fetched and parsed for each.
func TestCanonicalURLsAndSpaces(t *testing.T) {
	var hits atomic.Int64
	s, srv, allow := testSource(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(r.URL.Path))
	}, Config{})
	ctx := context.Background()
	host := strings.TrimPrefix(srv.URL, "https://")
	for _, u := range []string{
		srv.URL + "/a.pem",
		"https://" + strings.ToUpper(host) + "/a.pem",
		"HTTPS://" + host + "/%61.pem",
		srv.URL + "/a%2Epem",
	} {
		if v, err := s.Get(ctx, "sns/cert", u, allow, echo); err != nil || v != "/a.pem" {
			t.Fatalf("%s: %v %v", u, v, err)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("%d fetches for one URL spelled four ways", hits.Load())
	}
	for _, u := range []string{srv.URL + "/x/../a.pem", srv.URL + "//a.pem", srv.URL + "/./a.pem", srv.URL + "/a.pem/"} {
		if _, err := s.Get(ctx, "sns/cert", u, allow, echo); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("%s: %v, want ErrNotAllowed", u, err)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("a refused spelling was fetched")
	}
	other := func(body []byte, _ http.Header, now time.Time) (any, time.Time, error) {
		return 42, now.Add(time.Hour), nil
	}
	if v, err := s.Get(ctx, "paypal/cert", srv.URL+"/a.pem", allow, other); err != nil || v != 42 {
		t.Fatalf("another space got %v %v", v, err)
	}
	if hits.Load() != 2 {
		t.Fatalf("%d fetches: another space must fetch and parse its own", hits.Load())
	}
}

// A failed fetch is remembered for NegativeTTL: 30 requests naming a
// missing key cost one fetch; after the TTL it is asked again. A cached
// key past its expiry is served meanwhile.
func TestFailedFetchesRemembered(t *testing.T) {
	var hits atomic.Int64
	var down atomic.Bool
	s, srv, allow := testSource(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if down.Load() || r.URL.Path == "/missing.pem" {
			http.Error(w, "no", 404)
			return
		}
		w.Write([]byte(r.URL.Path))
	}, Config{NegativeTTL: time.Minute})
	now := time.Unix(1_800_000_000, 0)
	s.SetClock(func() time.Time { return now })
	ctx := context.Background()
	for range 30 {
		if _, err := s.Get(ctx, "t", srv.URL+"/missing.pem", allow, echo); err == nil {
			t.Fatal("a missing key was served")
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("%d fetches for 30 requests naming a missing key", hits.Load())
	}
	now = now.Add(61 * time.Second)
	s.Get(ctx, "t", srv.URL+"/missing.pem", allow, echo)
	if hits.Load() != 2 {
		t.Fatalf("%d fetches: the failure was not forgotten after its TTL", hits.Load())
	}
	// A key that expires while its server is down: served stale, and
	// the server asked once per NegativeTTL, not once per request.
	if _, err := s.Get(ctx, "t", srv.URL+"/k.pem", allow, echo); err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	now = now.Add(2 * time.Hour)
	before := hits.Load()
	for range 20 {
		if v, err := s.Get(ctx, "t", srv.URL+"/k.pem", allow, echo); err != nil || v != "/k.pem" {
			t.Fatalf("stale key: %v %v", v, err)
		}
	}
	if got := hits.Load() - before; got != 1 {
		t.Fatalf("%d fetches while the server is down, want 1", got)
	}
}

// A response over the size bound, a non-200 answer, a redirect off the
// list and a slow server each yield Unavailable; a URL off the list is
// ErrNotAllowed without a request.
func TestFetchBounds(t *testing.T) {
	var hits atomic.Int64
	s, srv, allow := testSource(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/big":
			w.Write(make([]byte, 2048))
		case "/gone":
			http.Error(w, "no", 404)
		case "/away":
			http.Redirect(w, r, "https://example.com/key", http.StatusFound)
		case "/slow":
			time.Sleep(300 * time.Millisecond)
			w.Write([]byte("late"))
		default:
			w.Write([]byte("ok"))
		}
	}, Config{MaxBytes: 1024, Timeout: 100 * time.Millisecond})
	ctx := context.Background()
	for _, p := range []string{"/big", "/gone", "/away", "/slow"} {
		_, err := s.Get(ctx, "t", srv.URL+p, allow, echo)
		var un *Unavailable
		if !errors.As(err, &un) {
			t.Errorf("%s: %v", p, err)
		}
	}
	before := hits.Load()
	if _, err := s.Get(ctx, "t", "https://example.com/key", allow, echo); !errors.Is(err, ErrNotAllowed) || hits.Load() != before {
		t.Fatalf("off the list: %v", err)
	}
}
