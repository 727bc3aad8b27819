package webhookauth

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookauth/caddy-webhookauth/internal/ipranges"
)

func init() {
	caddy.RegisterModule(ProviderIPSource{})
}

// ProviderIPSource is http.ip_sources.webhook_provider: a provider's
// webhook addresses as an IP source, for anything that takes one
// (trusted_proxies, dynamic matchers). It serves the list allow_ips
// published uses: kept current by the webhook app, or documented.
//
//	trusted_proxies webhook_provider github
type ProviderIPSource struct {
	// Provider is a preset name that publishes or documents its list.
	Provider string `json:"provider,omitempty"`

	fixed    []netip.Prefix
	lists    *ipranges.Manager
	provider string
}

// CaddyModule returns the Caddy module information.
func (ProviderIPSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.ip_sources.webhook_provider",
		New: func() caddy.Module { return new(ProviderIPSource) },
	}
}

// Provision finds the provider's list.
func (s *ProviderIPSource) Provision(ctx caddy.Context) error {
	p, err := LookupPreset(s.Provider)
	if err != nil {
		return fmt.Errorf("webhook_provider: %w", err)
	}
	src := ipSources[p.Name]
	if src == nil {
		return fmt.Errorf("webhook_provider: %s publishes no list of the addresses its webhooks come from", p.Name)
	}
	s.provider = p.Name
	if src.Published == nil {
		s.fixed, err = src.staticPrefixes()
		return err
	}
	app, err := ctx.App("webhook")
	if err != nil {
		return err
	}
	lists, ok := app.(IPRangesSource)
	if !ok {
		return errors.New("webhook_provider: the webhook app does not keep IP ranges")
	}
	s.lists, err = lists.IPRanges(p.Name, *src.Published)
	return err
}

// GetIPRanges implements caddyhttp.IPRangeSource: the current list
// (none until one has been obtained: nothing is trusted by default).
func (s *ProviderIPSource) GetIPRanges(*http.Request) []netip.Prefix {
	if s.lists == nil {
		return s.fixed
	}
	if l := s.lists.Get(s.provider); l != nil {
		return l.Prefixes
	}
	return nil
}

// UnmarshalCaddyfile reads `webhook_provider <name>` or a block with
// `provider <name>`.
func (s *ProviderIPSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		s.Provider = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "provider":
			if !d.NextArg() {
				return d.ArgErr()
			}
			s.Provider = d.Val()
		default:
			return d.Errf("webhook_provider: unknown subdirective '%s' (want provider)", d.Val())
		}
	}
	if s.Provider == "" {
		return d.Err("webhook_provider: a provider is required, such as webhook_provider github")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner       = (*ProviderIPSource)(nil)
	_ caddyhttp.IPRangeSource = (*ProviderIPSource)(nil)
	_ caddyfile.Unmarshaler   = (*ProviderIPSource)(nil)
)
