package caddyfile

import (
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/webhookauth/caddy-webhookauth/internal/cfparse"
	"github.com/webhookauth/caddy-webhookauth/store"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("webhook", parseGlobal)
}

// parseGlobal sets up the webhook app from the global option.
//
// Syntax:
//
//	webhook {
//		redis {
//			address     <redis://host:port/db | host:port>   # repeat for Cluster/Sentinel
//			username    <name>
//			password    <password>
//			db          <n>
//			tls
//			master_name <name>    # Sentinel
//			key_prefix  <prefix>  # default webhook:
//			timeout     <duration> # default 250ms
//			pool_size   <n>
//		}
//		keys {                    # keys fetched for sns, paypal, pubsub
//			timeout     <duration> # one fetch; default 5s
//			max_entries <n>        # cached keys; default 256
//			# for tests and private deployments only:
//			hosts       sns|paypal|pubsub <host>...  # replaces the sender's key hosts
//			root_ca     <pem file>                   # repeatable; replaces the system roots
//			jwks_url    <url>                        # replaces Google's JWKS address
//		}
//		ip_ranges {               # providers' published lists (allow_ips published)
//			refresh     <duration>        # default 1h, ±10%
//			# for tests and private deployments only:
//			url         <provider> <url>  # replaces where the provider's list is fetched (https)
//			root_ca     <pem file>        # repeatable; replaces the system roots
//		}
//	}
func parseGlobal(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(store.App)
	d.Next() // the option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	b := cfparse.NewBlock(d, "webhook")
	err := b.Each(0, func(sub string) error {
		var err error
		switch sub {
		case "redis":
			app.Redis, err = parseRedis(d)
		case "keys":
			app.Keys, err = parseKeys(d)
		case "ip_ranges":
			app.Ranges, err = parseIPRanges(d)
		default:
			return b.Unknown(sub)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "webhook", Value: caddyconfig.JSON(app, nil)}, nil
}

func parseRedis(d *caddyfile.Dispenser) (*store.RedisConfig, error) {
	rc := new(store.RedisConfig)
	b := cfparse.NewBlock(d, "webhook redis", "address")
	err := b.Each(1, func(sub string) error {
		var err error
		switch sub {
		case "address":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("webhook redis: 'address' needs at least one address")
			}
			rc.Addresses = append(rc.Addresses, args...)
		case "username":
			rc.Username, err = b.OneArg()
		case "password":
			rc.Password, err = b.OneArg()
		case "master_name":
			rc.MasterName, err = b.OneArg()
		case "key_prefix":
			rc.KeyPrefix, err = b.OneArg()
		case "db", "pool_size":
			var v string
			if v, err = b.OneArg(); err == nil {
				n, perr := strconv.Atoi(v)
				if perr != nil || n < 0 {
					return d.Errf("webhook redis: '%s %s' must be a whole number", sub, v)
				}
				if sub == "db" {
					rc.DB = n
				} else {
					rc.PoolSize = n
				}
			}
		case "tls":
			if d.NextArg() {
				return d.ArgErr()
			}
			rc.TLS = true
		case "timeout":
			var dur time.Duration
			if dur, err = b.Duration(); err == nil {
				if dur == 0 {
					return d.Errf("webhook redis: 'timeout' must be longer than 0")
				}
				rc.Timeout = caddy.Duration(dur)
			}
		default:
			return b.Unknown(sub)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(rc.Addresses) == 0 {
		return nil, d.Errf("webhook redis: at least one 'address' is required")
	}
	return rc, nil
}

func parseIPRanges(d *caddyfile.Dispenser) (*store.IPRangesConfig, error) {
	rc := new(store.IPRangesConfig)
	b := cfparse.NewBlock(d, "webhook ip_ranges", "url", "root_ca")
	err := b.Each(1, func(sub string) error {
		var err error
		switch sub {
		case "refresh":
			var dur time.Duration
			if dur, err = b.Duration(); err == nil {
				if dur < time.Second {
					return d.Errf("webhook ip_ranges: 'refresh' must be at least 1s")
				}
				rc.Refresh = caddy.Duration(dur)
			}
		case "url":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("webhook ip_ranges: 'url' takes a provider and the https:// address of its list")
			}
			if !strings.HasPrefix(args[1], "https://") {
				return d.Errf("webhook ip_ranges: url %s %s: lists are fetched over https only", args[0], args[1])
			}
			if rc.URLs == nil {
				rc.URLs = map[string]string{}
			}
			rc.URLs[args[0]] = args[1]
		case "root_ca":
			var f string
			if f, err = b.OneArg(); err == nil {
				rc.RootCA = append(rc.RootCA, f)
			}
		default:
			return b.Unknown(sub)
		}
		return err
	})
	return rc, err
}

func parseKeys(d *caddyfile.Dispenser) (*store.KeysConfig, error) {
	kc := new(store.KeysConfig)
	b := cfparse.NewBlock(d, "webhook keys", "hosts", "root_ca")
	err := b.Each(1, func(sub string) error {
		var err error
		switch sub {
		case "timeout":
			var dur time.Duration
			if dur, err = b.Duration(); err == nil {
				if dur <= 0 {
					return d.Errf("webhook keys: 'timeout' must be longer than 0")
				}
				kc.Timeout = caddy.Duration(dur)
			}
		case "max_entries":
			var v string
			if v, err = b.OneArg(); err == nil {
				n, perr := strconv.Atoi(v)
				if perr != nil || n <= 0 {
					return d.Errf("webhook keys: 'max_entries %s' must be a positive whole number", v)
				}
				kc.MaxEntries = n
			}
		case "hosts":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Errf("webhook keys: 'hosts' takes a sender (sns, paypal, pubsub) and at least one host")
			}
			if kc.Hosts == nil {
				kc.Hosts = map[string][]string{}
			}
			if _, dup := kc.Hosts[args[0]]; dup {
				return d.Errf("webhook keys: 'hosts %s' given more than once", args[0])
			}
			kc.Hosts[args[0]] = args[1:]
		case "root_ca":
			var f string
			if f, err = b.OneArg(); err == nil {
				kc.RootCA = append(kc.RootCA, f)
			}
		case "jwks_url":
			kc.JWKSURL, err = b.OneArg()
		default:
			return b.Unknown(sub)
		}
		return err
	})
	return kc, err
}
