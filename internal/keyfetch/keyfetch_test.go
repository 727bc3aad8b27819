package keyfetch

import (
	"context"
	"errors"
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

// The cache holds at most MaxEntries keys, dropping the least recently
// used; a parse failure caches nothing.
func TestCacheBound(t *testing.T) {
	var hits atomic.Int64
	s, srv, allow := testSource(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(r.URL.Path))
	}, Config{MaxEntries: 3})
	ctx := context.Background()
	for i := range 10 {
		if v, err := s.Get(ctx, srv.URL+"/k"+string(rune('0'+i)), allow, echo); err != nil || v != "/k"+string(rune('0'+i)) {
			t.Fatalf("%d: %v %v", i, v, err)
		}
	}
	if s.Len() != 3 {
		t.Fatalf("%d entries, want 3", s.Len())
	}
	before := hits.Load()
	s.Get(ctx, srv.URL+"/k9", allow, echo) // cached
	s.Get(ctx, srv.URL+"/k0", allow, echo) // evicted long ago
	if got := hits.Load() - before; got != 1 {
		t.Fatalf("%d fetches, want 1", got)
	}
	bad := func([]byte, http.Header, time.Time) (any, time.Time, error) {
		return nil, time.Time{}, errors.New("nope")
	}
	if _, err := s.Get(ctx, srv.URL+"/bad", allow, bad); err == nil {
		t.Fatal("a key that does not parse was accepted")
	} else if un := new(Unavailable); !errors.As(err, &un) || strings.Contains(err.Error(), "/bad") {
		t.Fatalf("error %v", err)
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
		_, err := s.Get(ctx, srv.URL+p, allow, echo)
		var un *Unavailable
		if !errors.As(err, &un) {
			t.Errorf("%s: %v", p, err)
		}
	}
	before := hits.Load()
	if _, err := s.Get(ctx, "https://example.com/key", allow, echo); !errors.Is(err, ErrNotAllowed) || hits.Load() != before {
		t.Fatalf("off the list: %v", err)
	}
}
