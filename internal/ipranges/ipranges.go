// Package ipranges keeps the address ranges providers publish for their
// webhooks: fetched over HTTPS from allowlisted hosts, bounded in size
// and time, checked for sanity, refreshed, and kept (in memory and in
// Caddy's storage) as the last good list, which a failed or absurd
// fetch never replaces.
package ipranges

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Format is how a published list is read.
type Format string

const (
	// GitHubMeta: GitHub's meta API, the "hooks" member (CIDRs).
	GitHubMeta Format = "github_meta"
	// StripeJSON: Stripe's ips_webhooks.json, the "WEBHOOKS" member
	// (addresses).
	StripeJSON Format = "stripe"
	// Atlassian: ip-ranges.atlassian.com, the items whose product lists
	// Product and whose direction lists egress.
	Atlassian Format = "atlassian"
	// JSONPaths: a JSON document whose webhook senders are the arrays of
	// strings at Paths (dotted member names; a last segment "*" takes
	// every member of that object, each an array): Sentry's
	// outbound_requests by region, Svix's regions, LaunchDarkly's
	// outboundAddresses, Buildkite's webhook_ips.
	JSONPaths Format = "json_paths"
)

// Published is where a provider publishes its list.
type Published struct {
	URL    string
	Format Format
	// Product filters Atlassian's list (bitbucket, jira).
	Product string
	// Paths name the lists of a JSONPaths document.
	Paths []string
}

// same reports whether p and q are the same source.
func (p Published) same(q Published) bool {
	return p.URL == q.URL && p.Format == q.Format && p.Product == q.Product && slices.Equal(p.Paths, q.Paths)
}

// Parse reads body as src's format, keeping only the webhook senders'
// ranges.
func Parse(src Published, body []byte) ([]netip.Prefix, error) {
	var raw []string
	product := src.Product
	switch src.Format {
	case GitHubMeta:
		var m struct {
			Hooks []string `json:"hooks"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("not GitHub's meta document: %v", err)
		}
		raw = m.Hooks
	case StripeJSON:
		var m struct {
			Webhooks []string `json:"WEBHOOKS"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("not Stripe's webhook address list: %v", err)
		}
		raw = m.Webhooks
	case Atlassian:
		var m struct {
			Items []struct {
				CIDR      string   `json:"cidr"`
				Product   []string `json:"product"`
				Direction []string `json:"direction"`
			} `json:"items"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("not Atlassian's IP ranges document: %v", err)
		}
		for _, it := range m.Items {
			if slices.Contains(it.Product, product) && slices.Contains(it.Direction, "egress") {
				raw = append(raw, it.CIDR)
			}
		}
	case JSONPaths:
		var doc any
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, fmt.Errorf("not JSON: %v", err)
		}
		if len(src.Paths) == 0 {
			return nil, errors.New("no paths to read")
		}
		for _, path := range src.Paths {
			got, err := stringsAt(doc, path)
			if err != nil {
				return nil, err
			}
			raw = append(raw, got...)
		}
	default:
		return nil, fmt.Errorf("unknown list format %q", src.Format)
	}
	return ParsePrefixes(raw)
}

// stringsAt returns the strings of the array at path in doc; with a last
// segment "*", of every member of the object there, in name order. A
// missing member, or a value of another shape, is an error: the document
// changed, and the list in force stays.
func stringsAt(doc any, path string) ([]string, error) {
	v := doc
	segs := strings.Split(path, ".")
	for i, seg := range segs {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: not an object at %q", path, strings.Join(segs[:i], "."))
		}
		if seg == "*" && i == len(segs)-1 {
			names := make([]string, 0, len(obj))
			for name := range obj {
				names = append(names, name)
			}
			slices.Sort(names)
			var out []string
			for _, name := range names {
				got, err := stringArray(obj[name], path)
				if err != nil {
					return nil, err
				}
				out = append(out, got...)
			}
			return out, nil
		}
		if v, ok = obj[seg]; !ok {
			return nil, fmt.Errorf("%s: no member %q", path, seg)
		}
	}
	return stringArray(v, path)
}

func stringArray(v any, path string) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: not an array", path)
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%s: an entry is not a string", path)
		}
		out = append(out, s)
	}
	return out, nil
}

// ParsePrefixes reads CIDRs and bare addresses (as /32 or /128).
func ParsePrefixes(raw []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(raw))
	for _, s := range raw {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// Sane refuses a list that must not replace a good one: empty, holding
// a range wider than /8 (IPv4) or /32 (IPv6), or dropping more than half
// of the previous list's entries.
func Sane(list, previous []netip.Prefix) error {
	if len(list) == 0 {
		return errors.New("the list is empty")
	}
	for _, p := range list {
		if p.Addr().Is4() && p.Bits() < 8 || p.Addr().Is6() && p.Bits() < 32 {
			return fmt.Errorf("the range %s is wider than a provider's webhook senders can be", p)
		}
	}
	if len(previous) > 0 && len(list) < (len(previous)+1)/2 {
		return fmt.Errorf("the list shrank from %d to %d ranges", len(previous), len(list))
	}
	return nil
}

// List is one provider's current ranges.
type List struct {
	Prefixes []netip.Prefix
	// Fetched is when they were fetched (from the provider, or by an
	// earlier run, when read back from storage).
	Fetched time.Time
}

// Contains reports whether a is in the list.
func (l *List) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range l.Prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Storage is where the last good lists are kept across restarts
// (Caddy's storage).
type Storage interface {
	Store(ctx context.Context, key string, value []byte) error
	Load(ctx context.Context, key string) ([]byte, error)
}

// Config bounds the fetches.
type Config struct {
	Timeout  time.Duration // one fetch; default 10s
	MaxBytes int64         // one list; default 4 MiB
	Refresh  time.Duration // default 1h, ±10% jitter
	Roots    *x509.CertPool
	Storage  Storage
	// Observe is told of each refresh: ok, or failed with why.
	Observe func(provider string, ok bool, why string, l *List)
}

// Manager fetches and refreshes the lists of the providers asked for,
// for the whole process.
type Manager struct {
	cfg    Config
	client *http.Client

	mu    sync.Mutex
	lists map[string]*List
	srcs  map[string]Published
	stop  map[string]context.CancelFunc
	ready map[string]chan struct{}
}

// New makes a manager.
func New(cfg Config) *Manager {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 4 << 20
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Hour
	}
	transport := &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: cfg.Roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		// Never through a proxy from the environment.
		Proxy: nil,
	}
	return &Manager{cfg: cfg, client: &http.Client{Transport: transport, Timeout: cfg.Timeout,
		// The list's own host only: a redirect elsewhere is refused.
		CheckRedirect: func(*http.Request, []*http.Request) error { return errors.New("a redirect is not followed") }},
		lists: map[string]*List{}, srcs: map[string]Published{}, stop: map[string]context.CancelFunc{}, ready: map[string]chan struct{}{}}
}

// Fetch gets and parses one list, HTTPS only, from src.URL's host.
func (m *Manager) Fetch(ctx context.Context, src Published) ([]netip.Prefix, error) {
	u, err := url.Parse(src.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an https URL", src.URL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "caddy-webhookauth-ipranges")
	req.Header.Set("Accept", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching from %s: %v", u.Host, shortError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %d", u.Host, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, m.cfg.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading from %s: %v", u.Host, shortError(err))
	}
	if int64(len(body)) > m.cfg.MaxBytes {
		return nil, fmt.Errorf("the list from %s is larger than %d bytes", u.Host, m.cfg.MaxBytes)
	}
	return Parse(src, body)
}

func shortError(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// Watch starts keeping provider's list from src, once per process: the
// last good list from storage at once, then a fetch, then one every
// Refresh. A later Watch with another source restarts it.
func (m *Manager) Watch(provider string, src Published) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.srcs[provider]; ok && old.same(src) {
		return
	}
	if cancel := m.stop[provider]; cancel != nil {
		cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.srcs[provider], m.stop[provider] = src, cancel
	ready := make(chan struct{})
	m.ready[provider] = ready
	go m.run(ctx, provider, src, ready)
}

// Wait waits up to d for provider's list: read back from storage, or
// else the first fetch's outcome.
func (m *Manager) Wait(provider string, d time.Duration) {
	m.mu.Lock()
	ready := m.ready[provider]
	m.mu.Unlock()
	if ready == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ready:
	case <-t.C:
	}
}

func storageKey(provider string) string { return "webhook/ip_ranges/" + provider + ".json" }

type stored struct {
	Prefixes []string  `json:"prefixes"`
	Fetched  time.Time `json:"fetched"`
}

func (m *Manager) run(ctx context.Context, provider string, src Published, ready chan struct{}) {
	if m.cfg.Storage != nil && m.Get(provider) == nil {
		lctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
		raw, err := m.cfg.Storage.Load(lctx, storageKey(provider))
		cancel()
		var st stored
		if err == nil && json.Unmarshal(raw, &st) == nil {
			if ps, err := ParsePrefixes(st.Prefixes); err == nil && Sane(ps, nil) == nil {
				m.set(provider, &List{Prefixes: ps, Fetched: st.Fetched})
			}
		}
	}
	first := true
	if m.Get(provider) != nil {
		// The last good list is in force: nobody waits for the fetch
		// (a provider that does not answer would hold them until the
		// fetch's timeout).
		close(ready)
		first = false
	}
	for {
		m.refresh(ctx, provider, src)
		if first {
			close(ready)
			first = false
		}
		wait := time.Duration(float64(m.cfg.Refresh) * (0.9 + 0.2*rand.Float64()))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// refresh fetches once; only a sane list replaces the current one.
func (m *Manager) refresh(ctx context.Context, provider string, src Published) {
	fctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	list, err := m.Fetch(fctx, src)
	var previous []netip.Prefix
	if cur := m.Get(provider); cur != nil {
		previous = cur.Prefixes
	}
	if err == nil {
		err = Sane(list, previous)
	}
	if err != nil {
		if ctx.Err() == nil && m.cfg.Observe != nil {
			m.cfg.Observe(provider, false, err.Error(), m.Get(provider))
		}
		return
	}
	l := &List{Prefixes: list, Fetched: time.Now()}
	m.set(provider, l)
	if m.cfg.Storage != nil {
		st := stored{Fetched: l.Fetched}
		for _, p := range list {
			st.Prefixes = append(st.Prefixes, p.String())
		}
		raw, _ := json.Marshal(st)
		sctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
		m.cfg.Storage.Store(sctx, storageKey(provider), raw)
		cancel()
	}
	if m.cfg.Observe != nil {
		m.cfg.Observe(provider, true, "", l)
	}
}

func (m *Manager) set(provider string, l *List) {
	m.mu.Lock()
	m.lists[provider] = l
	m.mu.Unlock()
}

// Get returns provider's current list (nil: none good yet).
func (m *Manager) Get(provider string) *List {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lists[provider]
}

// Lists returns every current list, by provider.
func (m *Manager) Lists() map[string]*List {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]*List, len(m.lists))
	for k, v := range m.lists {
		out[k] = v
	}
	return out
}

// Close stops every refresh.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, cancel := range m.stop {
		cancel()
	}
	m.stop = map[string]context.CancelFunc{}
	m.srcs = map[string]Published{}
}
