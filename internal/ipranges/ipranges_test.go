package ipranges

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseFormats(t *testing.T) {
	for _, c := range []struct {
		f       Format
		product string
		body    string
		want    []string
	}{
		{GitHubMeta, "", `{"hooks":["192.30.252.0/22","2a0a:a440::/29"],"web":["1.2.3.0/24"]}`, []string{"192.30.252.0/22", "2a0a:a440::/29"}},
		{StripeJSON, "", `{"WEBHOOKS":["3.18.12.63","3.130.192.231"]}`, []string{"3.18.12.63/32", "3.130.192.231/32"}},
		{Atlassian, "bitbucket", `{"items":[{"cidr":"104.192.136.0/21","product":["bitbucket"],"direction":["egress","ingress"]},{"cidr":"13.52.5.0/25","product":["jira"],"direction":["egress"]},{"cidr":"185.166.140.0/22","product":["bitbucket"],"direction":["ingress"]}]}`, []string{"104.192.136.0/21"}},
	} {
		got, err := Parse(Published{Format: c.f, Product: c.product}, []byte(c.body))
		if err != nil || len(got) != len(c.want) {
			t.Fatalf("%s: %v %v", c.f, got, err)
		}
		for i, p := range got {
			if p.String() != c.want[i] {
				t.Errorf("%s: %s, want %s", c.f, p, c.want[i])
			}
		}
	}
	if _, err := Parse(Published{Format: GitHubMeta}, []byte(`{"hooks":["not an address"]}`)); err == nil {
		t.Error("a bad entry was accepted")
	}
	// JSON paths, as Sentry, Svix, LaunchDarkly and Buildkite publish
	// theirs (shapes from their documentation).
	sentry := `{"data":{"dashboard":{"sentry_io":["35.186.247.156/32"]},"outbound_requests":{"us":["35.184.238.160/32","104.155.159.182/32"],"eu":["34.141.31.19/32"]},"uptime_monitoring":["34.123.33.225"]}}`
	svix := `{"us":["44.228.126.217","2600:1f24:64:8000::/56"],"eu":["52.215.16.239"],"in":["13.126.41.108"]}`
	for _, c := range []struct {
		paths []string
		body  string
		want  []string
	}{
		{[]string{"data.outbound_requests.*"}, sentry, []string{"34.141.31.19/32", "35.184.238.160/32", "104.155.159.182/32"}},
		{[]string{"*"}, svix, []string{"52.215.16.239/32", "13.126.41.108/32", "44.228.126.217/32", "2600:1f24:64:8000::/56"}},
		{[]string{"outboundAddresses"}, `{"addresses":["52.0.0.0/16"],"outboundAddresses":["52.21.152.96/32"]}`, []string{"52.21.152.96/32"}},
		{[]string{"webhook_ips"}, `{"webhook_ips":["192.0.2.0/24","198.51.100.12"]}`, []string{"192.0.2.0/24", "198.51.100.12/32"}},
	} {
		got, err := Parse(Published{Format: JSONPaths, Paths: c.paths}, []byte(c.body))
		if err != nil || len(got) != len(c.want) {
			t.Fatalf("%v: %v %v", c.paths, got, err)
		}
		for i, p := range got {
			if p.String() != c.want[i] {
				t.Errorf("%v: %s, want %s", c.paths, p, c.want[i])
			}
		}
	}
	for _, c := range []struct{ path, body string }{
		{"data.outbound_requests.*", `{"data":{"outbound":{}}}`},
		{"data.outbound_requests.*", `{"data":{"outbound_requests":{"us":"35.184.238.160/32"}}}`},
		{"*", `{"us":[1]}`},
		{"outboundAddresses", `{"outboundAddresses":{"a":["1.2.3.4"]}}`},
		{"webhook_ips", `["192.0.2.0/24"]`},
	} {
		if got, err := Parse(Published{Format: JSONPaths, Paths: []string{c.path}}, []byte(c.body)); err == nil {
			t.Errorf("%s in %s: %v accepted", c.path, c.body, got)
		}
	}
}

func TestSane(t *testing.T) {
	four := mustPrefixes(t, "1.0.0.0/24", "2.0.0.0/24", "3.0.0.0/24", "4.0.0.0/24")
	for _, c := range []struct {
		list, prev []netip.Prefix
		ok         bool
	}{
		{four, nil, true},
		{nil, nil, false},
		{mustPrefixes(t, "10.0.0.0/7"), nil, false},
		{mustPrefixes(t, "10.0.0.0/8"), nil, true},
		{mustPrefixes(t, "2000::/16"), nil, false},
		{four[:2], four, true},
		{four[:1], four, false},
	} {
		if err := Sane(c.list, c.prev); (err == nil) != c.ok {
			t.Errorf("%v after %v: %v", c.list, c.prev, err)
		}
	}
}

func mustPrefixes(t *testing.T, s ...string) []netip.Prefix {
	ps, err := ParsePrefixes(s)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

type memStorage struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStorage) Store(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
	return nil
}

func (s *memStorage) Load(_ context.Context, k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	if !ok {
		return nil, errors.New("not found")
	}
	return v, nil
}

// A list served over HTTPS is fetched; a refresh picks up a change; a
// failed, empty or absurd refresh keeps the last good list; a new
// process with the source down starts from the list kept in storage.
func TestManagerRefreshAndStorage(t *testing.T) {
	var body atomic.Value
	body.Store(`{"hooks":["192.0.2.0/24","198.51.100.0/24"]}`)
	var down atomic.Bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", 503)
			return
		}
		w.Write([]byte(body.Load().(string)))
	}))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	store := &memStorage{m: map[string][]byte{}}
	var mu sync.Mutex
	var failures []string
	cfg := Config{Roots: roots, Storage: store, Refresh: 50 * time.Millisecond, Observe: func(p string, ok bool, why string, _ *List) {
		if !ok {
			mu.Lock()
			failures = append(failures, why)
			mu.Unlock()
		}
	}}
	m := New(cfg)
	src := Published{URL: srv.URL + "/meta", Format: GitHubMeta}
	m.Watch("github", src)
	m.Wait("github", 5*time.Second)
	l := m.Get("github")
	if l == nil || !l.Contains(netip.MustParseAddr("192.0.2.7")) || l.Contains(netip.MustParseAddr("203.0.113.1")) {
		t.Fatalf("first list: %+v", l)
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waited for %s", what)
			}
		}
	}
	body.Store(`{"hooks":["192.0.2.0/24","203.0.113.0/24"]}`)
	eventually("the change", func() bool { return m.Get("github").Contains(netip.MustParseAddr("203.0.113.1")) })
	for _, bad := range []string{`{"hooks":[]}`, `{"hooks":["0.0.0.0/0"]}`, `not json`} {
		body.Store(bad)
		mu.Lock()
		n := len(failures)
		mu.Unlock()
		eventually("a failed refresh of "+bad, func() bool { mu.Lock(); defer mu.Unlock(); return len(failures) > n })
		if !m.Get("github").Contains(netip.MustParseAddr("203.0.113.1")) || m.Get("github").Contains(netip.MustParseAddr("8.8.8.8")) {
			t.Fatalf("%s replaced the good list", bad)
		}
	}
	m.Close()

	// A restart while the source is down: the kept list.
	down.Store(true)
	m2 := New(cfg)
	defer m2.Close()
	m2.Watch("github", src)
	m2.Wait("github", 5*time.Second)
	if l := m2.Get("github"); l == nil || !l.Contains(netip.MustParseAddr("203.0.113.1")) {
		t.Fatalf("after a restart with the source down: %+v", l)
	}
	// Never over plain HTTP.
	if _, err := m2.Fetch(context.Background(), Published{URL: "http://127.0.0.1/meta", Format: GitHubMeta}); err == nil {
		t.Fatal("fetched over http")
	}
}

// A redirect is never followed: the list comes from the URL configured
// and nowhere else.
func TestNoRedirect(t *testing.T) {
	var hits atomic.Int64
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"hooks":["192.0.2.0/24"]}`))
	}))
	defer other.Close()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/meta", http.StatusFound)
	}))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	roots.AddCert(other.Certificate())
	m := New(Config{Roots: roots})
	if _, err := m.Fetch(context.Background(), Published{URL: srv.URL + "/meta", Format: GitHubMeta}); err == nil || hits.Load() != 0 {
		t.Fatalf("a redirect was followed: %v, %d fetches elsewhere", err, hits.Load())
	}
}

// A list kept in storage is in force at once: Wait does not wait for a
// fetch the provider does not answer (here it never does, and the
// fetch's timeout is an hour).
func TestStoredListNeedsNoFetch(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	store := &memStorage{m: map[string][]byte{storageKey("github"): []byte(`{"prefixes":["192.0.2.0/24"],"fetched":"2026-12-01T00:00:00Z"}`)}}
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	m := New(Config{Roots: roots, Storage: store, Timeout: time.Hour})
	defer m.Close()
	m.Watch("github", Published{URL: srv.URL + "/meta", Format: GitHubMeta})
	m.Wait("github", time.Hour)
	if l := m.Get("github"); l == nil || !l.Contains(netip.MustParseAddr("192.0.2.1")) {
		t.Fatalf("the stored list: %+v", l)
	}
}
