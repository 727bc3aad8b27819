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
//   - caches each key by URL, with an expiry (the certificate's validity,
//     or Cache-Control max-age) and a bounded number of entries;
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
}

type entry struct {
	value    any
	expires  time.Time
	used     time.Time
	lastSync time.Time // the last fetch attempt, for bounded forced refreshes
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

// Get returns the value cached for rawURL, fetching and parsing it when
// there is none or it has expired. A URL off allow is ErrNotAllowed
// (no request made); a fetch that fails with nothing usable cached is
// *Unavailable.
func (s *Source) Get(ctx context.Context, rawURL string, allow Allowlist, parse Parser) (any, error) {
	return s.get(ctx, rawURL, allow, parse, false)
}

// Refresh is Get, but fetches again even when the cached value has not
// expired, at most once a minute per URL (a JWKS that lacks a key id may
// have been rotated since it was cached).
func (s *Source) Refresh(ctx context.Context, rawURL string, allow Allowlist, parse Parser) (any, error) {
	return s.get(ctx, rawURL, allow, parse, true)
}

// minForcedInterval bounds forced refreshes of one URL.
const minForcedInterval = time.Minute

func (s *Source) get(ctx context.Context, rawURL string, allow Allowlist, parse Parser, force bool) (any, error) {
	u, err := url.Parse(rawURL)
	if err != nil || !allow.Allows(u) {
		s.observe("refused")
		return nil, ErrNotAllowed
	}
	key := u.String()
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
		v, expires, err := s.fetch(fctx, u, allow, parse)
		if err == nil {
			s.observe("fetched")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if e := s.entries[key]; e != nil {
			e.lastSync = s.now()
		}
		if err != nil {
			return nil, err
		}
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

// store caches v for key, evicting the least recently used entry when
// the cache is full. Called with s.mu held.
func (s *Source) store(key string, v any, expires time.Time) {
	now := s.now()
	if e := s.entries[key]; e != nil {
		e.value, e.expires, e.lastSync = v, expires, now
		return
	}
	if len(s.entries) >= s.cfg.MaxEntries {
		var oldest string
		var at time.Time
		for k, e := range s.entries {
			if oldest == "" || e.used.Before(at) {
				oldest, at = k, e.used
			}
		}
		delete(s.entries, oldest)
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
