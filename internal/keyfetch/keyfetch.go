// Package keyfetch fetches and caches the keys that some senders sign
// with and name in each delivery (Amazon SNS's SigningCertURL, PayPal's
// PAYPAL-CERT-URL) or publish at a fixed address (Google's JWKS).
// Fetching on behalf of an attacker-controlled request is where gateways
// get SSRF'd and DoS'd, so a Source:
//
//   - fetches over HTTPS only, from hosts on the caller's allowlist; a URL
//     off the list is refused without any network call, and a redirect
//     is followed only to another allowlisted URL (at most 3);
//   - bounds each response's size and each fetch's time;
//   - caches each key by sender and kind (its space) and canonical URL
//     (host in lower case, no default port, the path in its one escaped
//     form; a path with dot segments or empty ones is refused), with an
//     expiry (the certificate's validity, or Cache-Control max-age) and
//     a bounded number of entries, of which keys that have verified a
//     delivery ("vouched") are kept apart from the rest: a flood of
//     requests naming new URLs churns its own quarter of the cache and
//     never evicts a key that is in use;
//   - remembers a failed fetch for a while (NegativeTTL), so forged
//     requests naming a missing key cost one fetch, not one each;
//   - coalesces concurrent fetches of one URL into one;
//   - keeps serving a cached key while a refresh fails, for a bounded
//     time past its expiry.
//
// The allowlists and the trusted roots can be replaced for tests and
// private deployments (see Config).
package keyfetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// ErrNotAllowed is returned for a key URL that is not HTTPS on an
// allowlisted host; no request is made for it.
var ErrNotAllowed = errors.New("the key URL is not an HTTPS URL on the sender's allowlist")

// Unavailable is returned when no key can be had: the fetch failed and
// nothing usable is cached. The message says why without the response.
type Unavailable struct{ Why string }

func (e *Unavailable) Error() string { return "no key available: " + e.Why }

// Allowlist says which hosts a key URL may name: each entry is a host
// name, a host:port, or a pattern whose one '*' stands for one or more
// letters, digits and '-' (sns.*.amazonaws.com). Paths are checked by the
// caller's parser, not here.
type Allowlist []string

// Allows reports whether u is an HTTPS URL on an allowlisted host, with
// no user info.
func (a Allowlist) Allows(u *url.URL) bool {
	if u == nil || u.Scheme != "https" || u.User != nil || u.Host == "" || u.Opaque != "" {
		return false
	}
	host := strings.ToLower(u.Host)
	for _, pat := range a {
		if matchHost(strings.ToLower(pat), host) {
			return true
		}
	}
	return false
}

// matchHost matches a host (with its port, if any) against a pattern.
func matchHost(pat, host string) bool {
	before, after, wild := strings.Cut(pat, "*")
	if !wild {
		return pat == host
	}
	if len(host) <= len(before)+len(after) || !strings.HasPrefix(host, before) || !strings.HasSuffix(host, after) {
		return false
	}
	for _, c := range host[len(before) : len(host)-len(after)] {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Parser turns a fetched response body into the cached value and says
// until when it may be used. It must not keep body.
type Parser func(body []byte, header http.Header, now time.Time) (value any, expires time.Time, err error)

// Config sets a Source's bounds. Zero values take the defaults.
type Config struct {
	// Timeout bounds one fetch, redirects included. Default 5s.
	Timeout time.Duration
	// MaxBytes bounds a response body. Default 64 KiB.
	MaxBytes int64
	// MaxEntries bounds the cache. Default 256.
	MaxEntries int
	// MaxStale is how long past its expiry a cached key is still served
	// while refreshing it fails. Default 24h.
	MaxStale time.Duration
	// NegativeTTL is how long a failed fetch is remembered: the URL is
	// not asked again before (a cached key past its expiry is served
	// meanwhile, within MaxStale). Default 1m.
	NegativeTTL time.Duration
	// Roots replaces the system's trusted roots (tests, private
	// deployments). Nil: the system's.
	Roots *x509.CertPool
	// Observe, when set, is told of each lookup's outcome: "hit" (fresh
	// in the cache), "fetched", "stale" (a refresh failed; the cached key
	// was served), "error" (no key), "refused" (a URL off the allowlist).
	Observe func(event string)
}

// Source is a key cache shared by every handler of a process.
type Source struct {
	cfg    Config
	client *http.Client
	now    func() time.Time
	group  singleflight.Group

	mu      sync.Mutex
	entries map[string]*entry
	// failed holds, per key, until when a failed fetch is remembered.
	failed map[string]time.Time
}

type entry struct {
	value    any
	expires  time.Time
	used     time.Time
	lastSync time.Time // the last fetch attempt, for bounded forced refreshes
	// vouched: the key has verified a delivery (Vouch).
	vouched bool
}

// New returns a Source with cfg's bounds.
func New(cfg Config) *Source {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 64 << 10
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 256
	}
	if cfg.MaxStale <= 0 {
		cfg.MaxStale = 24 * time.Hour
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = time.Minute
	}
	transport := &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: cfg.Roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		// Never through a proxy from the environment: the allowlist
		// decides where the gate connects.
		Proxy: nil,
	}
	return &Source{
		cfg:     cfg,
		client:  &http.Client{Transport: transport, Timeout: cfg.Timeout},
		now:     time.Now,
		entries: map[string]*entry{},
		failed:  map[string]time.Time{},
	}
}

// Roots returns the roots certificates are verified against (nil: the
// system's).
func (s *Source) Roots() *x509.CertPool { return s.cfg.Roots }

// SetClock replaces the clock (tests).
func (s *Source) SetClock(now func() time.Time) { s.now = now }

func (s *Source) observe(event string) {
	if s.cfg.Observe != nil {
		s.cfg.Observe(event)
	}
}

// Get returns the value cached for rawURL in space (the sender and the
// kind of key, "sns/cert"), fetching and parsing it when there is none or
// it has expired. A URL off allow is ErrNotAllowed (no request made); a
// fetch that fails with nothing usable cached is *Unavailable.
func (s *Source) Get(ctx context.Context, space, rawURL string, allow Allowlist, parse Parser) (any, error) {
	return s.get(ctx, space, rawURL, allow, parse, false)
}

// Refresh is Get, but fetches again even when the cached value has not
// expired, at most once a minute per URL (a JWKS that lacks a key id may
// have been rotated since it was cached).
func (s *Source) Refresh(ctx context.Context, space, rawURL string, allow Allowlist, parse Parser) (any, error) {
	return s.get(ctx, space, rawURL, allow, parse, true)
}

// Vouch marks the key cached for rawURL in space as one that has verified
// a delivery: it is kept among the vouched keys, which entries that
// never verified anything cannot evict.
func (s *Source) Vouch(space, rawURL string) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return
	}
	cu, ok := canonical(u)
	if !ok {
		return
	}
	key := space + " " + cu.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[key]
	if e == nil || e.vouched {
		return
	}
	e.vouched = true
	if s.count(true) > s.cfg.MaxEntries-s.reserve() {
		s.evict(true, key)
	}
}

// minForcedInterval bounds forced refreshes of one URL.
const minForcedInterval = time.Minute

// canonical returns the one spelling of u that is cached and fetched:
// scheme and host in lower case, no default port, the path in its
// canonical escaping, no fragment. False for a path with dot segments or
// empty segments: the key servers serve keys at plain paths, and other
// spellings of one file would each cost a fetch and a cache entry.
func canonical(u *url.URL) (*url.URL, bool) {
	if u.Path != "" && (path.Clean(u.Path) != u.Path || strings.HasSuffix(u.Path, "/")) {
		return nil, false
	}
	c := &url.URL{Scheme: strings.ToLower(u.Scheme), Host: strings.ToLower(u.Host), Path: u.Path, RawQuery: u.RawQuery}
	if h, ok := strings.CutSuffix(c.Host, ":443"); ok && c.Scheme == "https" {
		c.Host = h
	}
	c.Host = strings.TrimSuffix(c.Host, ":")
	return c, true
}

func (s *Source) get(ctx context.Context, space, rawURL string, allow Allowlist, parse Parser, force bool) (any, error) {
	u, err := url.Parse(rawURL)
	if err != nil || !allow.Allows(u) {
		s.observe("refused")
		return nil, ErrNotAllowed
	}
	cu, ok := canonical(u)
	if !ok {
		s.observe("refused")
		return nil, ErrNotAllowed
	}
	key := space + " " + cu.String()
	now := s.now()
	s.mu.Lock()
	e := s.entries[key]
	if e != nil {
		e.used = now
		fresh := now.Before(e.expires)
		if fresh && (!force || now.Sub(e.lastSync) < minForcedInterval) {
			v := e.value
			s.mu.Unlock()
			s.observe("hit")
			return v, nil
		}
	}
	if until, failed := s.failed[key]; failed && now.Before(until) {
		// Asked recently and failed: not asked again yet.
		defer s.mu.Unlock()
		if e != nil && now.Before(e.expires.Add(s.cfg.MaxStale)) {
			s.observe("stale")
			return e.value, nil
		}
		s.observe("error")
		return nil, &Unavailable{Why: "fetching the key failed less than " + s.cfg.NegativeTTL.String() + " ago"}
	}
	s.mu.Unlock()

	// One fetch per URL at a time; the others wait for its result. The
	// fetch runs on its own deadline, not the first caller's request.
	ch := s.group.DoChan(key, func() (any, error) {
		// A flight that ended between this caller's look at the cache
		// and now may have stored the key already: look again, so that
		// callers arriving in that gap do not fetch a second time.
		s.mu.Lock()
		if e := s.entries[key]; e != nil && s.now().Before(e.expires) && (!force || s.now().Sub(e.lastSync) < minForcedInterval) {
			v := e.value
			s.mu.Unlock()
			return v, nil
		}
		s.mu.Unlock()
		fctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
		defer cancel()
		v, expires, err := s.fetch(fctx, cu, allow, parse)
		if err == nil {
			s.observe("fetched")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if e := s.entries[key]; e != nil {
			e.lastSync = s.now()
		}
		if err != nil {
			s.rememberFailure(key)
			return nil, err
		}
		delete(s.failed, key)
		s.store(key, v, expires)
		return v, nil
	})
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		res.Err = &Unavailable{Why: "the request ended while the key was being fetched"}
	}
	if res.Err == nil {
		return res.Val, nil
	}
	// A refresh failed: keep serving what is cached, for a while.
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[key]; e != nil && s.now().Before(e.expires.Add(s.cfg.MaxStale)) {
		s.observe("stale")
		return e.value, nil
	}
	s.observe("error")
	var un *Unavailable
	if errors.As(res.Err, &un) {
		return nil, un
	}
	return nil, &Unavailable{Why: res.Err.Error()}
}

// rememberFailure records a failed fetch of key, within the cache's bound
// (expired records go first, then the one closest to expiring). Called
// with s.mu held.
func (s *Source) rememberFailure(key string) {
	now := s.now()
	if len(s.failed) >= s.cfg.MaxEntries {
		var soonest string
		var at time.Time
		for k, until := range s.failed {
			if !now.Before(until) {
				delete(s.failed, k)
				continue
			}
			if soonest == "" || until.Before(at) {
				soonest, at = k, until
			}
		}
		if len(s.failed) >= s.cfg.MaxEntries {
			delete(s.failed, soonest)
		}
	}
	s.failed[key] = now.Add(s.cfg.NegativeTTL)
}

// reserve is how many entries may be unvouched: a quarter of the cache.
func (s *Source) reserve() int { return max(s.cfg.MaxEntries/4, 1) }

// count returns how many entries are vouched (or not). Called with s.mu
// held.
func (s *Source) count(vouched bool) int {
	n := 0
	for _, e := range s.entries {
		if e.vouched == vouched {
			n++
		}
	}
	return n
}

// evict removes the least recently used entry that is vouched (or not),
// other than keep. Called with s.mu held.
func (s *Source) evict(vouched bool, keep string) {
	var oldest string
	var at time.Time
	for k, e := range s.entries {
		if e.vouched != vouched || k == keep {
			continue
		}
		if oldest == "" || e.used.Before(at) {
			oldest, at = k, e.used
		}
	}
	if oldest != "" {
		delete(s.entries, oldest)
	}
}

// store caches v for key, unvouched. The unvouched entries share a
// quarter of the cache: past it, the least recently used of them goes,
// never a vouched one. Called with s.mu held.
func (s *Source) store(key string, v any, expires time.Time) {
	now := s.now()
	if e := s.entries[key]; e != nil {
		e.value, e.expires, e.lastSync = v, expires, now
		return
	}
	if s.count(false) >= s.reserve() {
		s.evict(false, "")
	}
	s.entries[key] = &entry{value: v, expires: expires, used: now, lastSync: now}
}

// Len returns the number of cached entries.
func (s *Source) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Visit GETs rawURL under the same rules as a key fetch (HTTPS, the
// allowlist, redirects within it, the time and size bounds) and reports
// whether it answered 200: Amazon SNS's SubscribeURL, which confirms a
// subscription. Nothing is cached.
func (s *Source) Visit(ctx context.Context, rawURL string, allow Allowlist) error {
	u, err := url.Parse(rawURL)
	if err != nil || !allow.Allows(u) {
		s.observe("refused")
		return ErrNotAllowed
	}
	fctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	_, _, err = s.fetch(fctx, u, allow, func([]byte, http.Header, time.Time) (any, time.Time, error) { return nil, time.Time{}, nil })
	return err
}

// maxRedirects bounds the redirects followed, each to an allowlisted URL.
const maxRedirects = 3

// fetch GETs u and parses the answer.
func (s *Source) fetch(ctx context.Context, u *url.URL, allow Allowlist, parse Parser) (any, time.Time, error) {
	client := *s.client
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > maxRedirects {
			return &Unavailable{Why: "too many redirects"}
		}
		if !allow.Allows(req.URL) {
			return &Unavailable{Why: "a redirect left the allowlist"}
		}
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, time.Time{}, &Unavailable{Why: "bad URL"}
	}
	req.Header.Set("User-Agent", "caddy-webhookauth-keyfetch")
	resp, err := client.Do(req)
	if err != nil {
		var un *Unavailable
		if errors.As(err, &un) {
			return nil, time.Time{}, un
		}
		return nil, time.Time{}, &Unavailable{Why: "fetching from " + u.Host + " failed: " + shortError(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, time.Time{}, &Unavailable{Why: u.Host + " answered " + strconv.Itoa(resp.StatusCode)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.MaxBytes+1))
	if err != nil {
		return nil, time.Time{}, &Unavailable{Why: "reading from " + u.Host + " failed"}
	}
	if int64(len(body)) > s.cfg.MaxBytes {
		return nil, time.Time{}, &Unavailable{Why: fmt.Sprintf("the key from %s is larger than %d bytes", u.Host, s.cfg.MaxBytes)}
	}
	v, expires, err := parse(body, resp.Header, s.now())
	if err != nil {
		return nil, time.Time{}, &Unavailable{Why: "the key from " + u.Host + " is not usable: " + err.Error()}
	}
	return v, expires, nil
}

// shortError keeps an error's last part: "connection refused",
// "context deadline exceeded", …
func shortError(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// MaxAge reads Cache-Control max-age, clamped to [min, max]; def when
// there is none.
func MaxAge(h http.Header, def, min, max time.Duration) time.Duration {
	d := def
	for _, part := range strings.Split(h.Get("Cache-Control"), ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				d = time.Duration(n) * time.Second
			}
		}
	}
	return clamp(d, min, max)
}

func clamp(d, min, max time.Duration) time.Duration {
	if d < min {
		return min
	}
	if d > max {
		return max
	}
	return d
}
