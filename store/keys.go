package store

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
	"github.com/webhookauth/caddy-webhookauth/internal/keyfetch"
	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// KeysConfig bounds the fetching of the keys that Amazon SNS, PayPal and
// Google Pub/Sub sign with. The defaults suit production; Hosts, RootCA and
// JWKSURL replace the providers' real ones, for tests and private
// deployments only: a key server under your control then stands in for
// the provider.
type KeysConfig struct {
	// Timeout bounds one fetch. Default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// MaxEntries bounds the cache. Default 256.
	MaxEntries int `json:"max_entries,omitempty"`
	// RootCA lists PEM files whose certificates replace the system's
	// trusted roots, both for the key servers' TLS and for the signing
	// certificates' chains.
	RootCA []string `json:"root_ca,omitempty"`
	// Hosts replaces, per sender (sns, paypal, pubsub), the hosts its key
	// URLs may name: host, host:port, or one '*' for a DNS label.
	Hosts map[string][]string `json:"hosts,omitempty"`
	// JWKSURL replaces Google's JWKS address (pubsub).
	JWKSURL string `json:"jwks_url,omitempty"`
}

// sources holds one key source per distinct configuration for the whole
// process, so its cache survives reloads.
var sources = caddy.NewUsagePool()

type pooledSource struct{ *keyfetch.Source }

func (pooledSource) Destruct() error { return nil }

// openKeys returns the process's key source for this configuration.
func (a *App) openKeys() (*keyfetch.Source, string, error) {
	cfg := a.Keys
	if cfg == nil {
		cfg = &KeysConfig{}
	}
	fp, err := json.Marshal(cfg)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(fp)
	key := "keys:" + hex.EncodeToString(sum[:])
	val, _, err := sources.LoadOrNew(key, func() (caddy.Destructor, error) {
		roots, err := readRoots(cfg.RootCA)
		if err != nil {
			return nil, err
		}
		return pooledSource{keyfetch.New(keyfetch.Config{
			Timeout:    time.Duration(cfg.Timeout),
			MaxEntries: cfg.MaxEntries,
			Roots:      roots,
			Observe:    gate.KeyEvent,
		})}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return val.(pooledSource).Source, key, nil
}

// FetchedKeys implements webhookauth.KeySource: the process's key source,
// and the sender's policy with this config's overrides.
func (a *App) FetchedKeys(sender string, policy webhookauth.KeyPolicy) (*keyfetch.Source, webhookauth.KeyPolicy, error) {
	if a.keys == nil {
		return nil, policy, fmt.Errorf("the webhook app's key source is not provisioned")
	}
	if cfg := a.Keys; cfg != nil {
		if hosts, ok := cfg.Hosts[sender]; ok {
			policy.Hosts = hosts
		}
		if cfg.JWKSURL != "" && sender == "pubsub" {
			policy.JWKSURL = cfg.JWKSURL
		}
	}
	return a.keys, policy, nil
}

// validateKeys checks the keys block.
func (c *KeysConfig) validate() error {
	if c == nil {
		return nil
	}
	if c.Timeout < 0 || c.MaxEntries < 0 {
		return fmt.Errorf("keys: timeout and max_entries must not be negative")
	}
	senders := make([]string, 0, len(c.Hosts))
	for s := range c.Hosts {
		senders = append(senders, s)
	}
	sort.Strings(senders)
	for _, s := range senders {
		if p, err := webhookauth.LookupPreset(s); err != nil || p.KeyPolicy == nil {
			return fmt.Errorf("keys: hosts for unknown sender %q (want sns, paypal or pubsub)", s)
		}
		if len(c.Hosts[s]) == 0 {
			return fmt.Errorf("keys: hosts %s lists no host", s)
		}
	}
	return nil
}

// readRoots reads root_ca files into a pool (nil without files: the
// system's roots).
func readRoots(files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	roots := x509.NewCertPool()
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("root_ca: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("root_ca %s: no PEM certificate", f)
		}
	}
	return roots, nil
}
