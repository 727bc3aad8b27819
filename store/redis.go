package store

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
)

// Defaults for the redis block.
const (
	DefaultKeyPrefix = "webhook:"
	DefaultTimeout   = 250 * time.Millisecond
)

// RedisConfig is the redis block of the webhook global option. One address
// is a single node; several are a Cluster, or Sentinels when MasterName is
// set (go-redis UniversalClient).
type RedisConfig struct {
	// Addresses are host:port or redis:// (rediss:// for TLS) URLs; a URL
	// may carry the database number as its path (redis://host:6379/2).
	Addresses []string `json:"addresses,omitempty"`
	// Username and Password authenticate (ACL). Placeholders such as
	// {env.REDIS_PASSWORD} are resolved when the config loads; one that
	// resolves empty is a config error.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// DB is the database number (single node and Sentinel only).
	DB int `json:"db,omitempty"`
	// TLS connects with TLS.
	TLS bool `json:"tls,omitempty"`
	// MasterName selects Sentinel mode: the name of the monitored master.
	MasterName string `json:"master_name,omitempty"`
	// KeyPrefix starts every key this plugin writes. By default, "webhook:".
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Timeout is the deadline of every Redis call, dial included. By
	// default, 250ms. When it passes, the handlers answer as their
	// on_store_error says.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// PoolSize is the number of connections per node. By default, 10 per
	// CPU (go-redis' default).
	PoolSize int `json:"pool_size,omitempty"`
}

func (c *RedisConfig) keyPrefix() string {
	if c.KeyPrefix == "" {
		return DefaultKeyPrefix
	}
	return c.KeyPrefix
}

func (c *RedisConfig) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return time.Duration(c.Timeout)
}

// clients holds one Redis client per distinct configuration for the whole
// process, shared by every handler and kept across config reloads.
var clients = caddy.NewUsagePool()

type pooledClient struct {
	redis.UniversalClient
	pipe *pipeliner
}

func (p *pooledClient) Destruct() error { return p.Close() }

// options resolves placeholders and builds go-redis options. Errors never
// include the password.
func (c *RedisConfig) options() (*redis.UniversalOptions, error) {
	if len(c.Addresses) == 0 {
		return nil, fmt.Errorf("no address")
	}
	repl := caddy.NewReplacer()
	resolve := func(field, v string) (string, error) {
		out := repl.ReplaceKnown(v, "")
		if v != "" && out == "" {
			return "", fmt.Errorf("%s (%s) resolved to an empty value: is the environment variable set or the file present?", field, v)
		}
		return out, nil
	}
	opts := &redis.UniversalOptions{
		DB:         c.DB,
		MasterName: c.MasterName,
		PoolSize:   c.PoolSize,
	}
	var err error
	if opts.Username, err = resolve("username", c.Username); err != nil {
		return nil, err
	}
	if opts.Password, err = resolve("password", c.Password); err != nil {
		return nil, err
	}
	useTLS := c.TLS
	for _, a := range c.Addresses {
		a = repl.ReplaceKnown(a, "")
		if !strings.Contains(a, "://") {
			opts.Addrs = append(opts.Addrs, a)
			continue
		}
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			return nil, fmt.Errorf("address %q is not host:port or a redis:// URL", a)
		}
		if u.Scheme == "rediss" {
			useTLS = true
		}
		if db := strings.Trim(u.Path, "/"); db != "" {
			n, err := strconv.Atoi(db)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("address %q: %q is not a database number", a, db)
			}
			opts.DB = n
		}
		if u.User != nil {
			return nil, fmt.Errorf("address %q: put credentials in username and password, not in the address", u.Redacted())
		}
		opts.Addrs = append(opts.Addrs, u.Host)
	}
	if useTLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	t := c.timeout()
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = t, t, t
	opts.PoolTimeout = t
	// One dial per attempt: go-redis' default of five, with backoff
	// between them, spends a call's whole timeout on a node that is
	// down (a Cluster node that died, listed in the Caddyfile) before
	// the next node is tried. The next call dials again.
	opts.DialerRetries = 1
	opts.MaxRetries = 1
	opts.ContextTimeoutEnabled = true
	return opts, nil
}

// fingerprint is every resolved setting that makes one client differ from
// another, so that a config that changes any of them (the address, the
// password, TLS, …) gets a client of its own. It is hashed before use and
// never shown.
func fingerprint(o *redis.UniversalOptions) []byte {
	var b []byte
	field := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	for _, a := range o.Addrs {
		field(a)
	}
	field("|")
	field(o.Username)
	field(o.Password)
	field(o.MasterName)
	field(strconv.Itoa(o.DB))
	field(strconv.FormatBool(o.TLSConfig != nil))
	field(o.DialTimeout.String())
	field(o.ReadTimeout.String())
	field(strconv.Itoa(o.PoolSize))
	return b
}

// open returns the process's client for this configuration.
func (c *RedisConfig) open() (*pooledClient, string, error) {
	opts, err := c.options()
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(fingerprint(opts))
	key := "redis:" + hex.EncodeToString(sum[:])
	val, _, err := clients.LoadOrNew(key, func() (caddy.Destructor, error) {
		c := newClient(opts)
		return &pooledClient{UniversalClient: c, pipe: newPipeliner(c)}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return val.(*pooledClient), key, nil
}

// clusterReload is how often a Cluster client reloads the slot map
// without being asked. It is also asked after every call that failed for
// a reason other than a Redis error reply (see pipeliner.failed): a
// master that went away is replaced by its replica in the map as soon as
// the cluster has promoted it, rather than after go-redis' default
// minute.
const clusterReload = 10 * time.Second

// newClient makes the go-redis client for opts: Sentinel with a master
// name, a Cluster with several addresses, a single node otherwise.
func newClient(opts *redis.UniversalOptions) redis.UniversalClient {
	if opts.MasterName == "" && len(opts.Addrs) > 1 {
		co := opts.Cluster()
		co.ClusterStateReloadInterval = clusterReload
		c := redis.NewClusterClient(co)
		// The slot map is loaded now, in the background, from whichever
		// listed node answers (a dead one costs one refused dial), rather
		// than by the first request within its timeout.
		c.ReloadState(context.Background())
		return c
	}
	return redis.NewUniversalClient(opts)
}
