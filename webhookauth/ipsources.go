package webhookauth

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
	"github.com/webhookauth/caddy-webhookauth/internal/ipranges"
)

// IPSource is where a provider lists the addresses its webhooks come
// from: a machine-readable list the webhook app fetches and refreshes
// (Published), or a list its documentation gives (Static, read on the
// date Read). `allow_ips published` uses it.
type IPSource struct {
	Published *ipranges.Published
	Static    []string
	// Doc is the documentation that says so; How, which entries are the
	// webhook senders'.
	Doc, How, Read string
}

// ipSources are the providers that publish their webhook senders'
// addresses. The others publish none (or one for their API only, which
// says nothing of where webhooks come from).
var ipSources = map[string]*IPSource{
	"github": {
		Published: &ipranges.Published{URL: "https://api.github.com/meta", Format: ipranges.GitHubMeta},
		Doc:       "https://docs.github.com/en/rest/meta/meta#get-apiname-meta-information",
		How:       `the "hooks" member of the meta API (CIDRs)`,
	},
	"stripe": {
		Published: &ipranges.Published{URL: "https://stripe.com/files/ips/ips_webhooks.json", Format: ipranges.StripeJSON},
		Doc:       "https://docs.stripe.com/ips#webhook-notifications",
		How:       `the "WEBHOOKS" member (addresses)`,
	},
	"bitbucket": {
		Published: &ipranges.Published{URL: "https://ip-ranges.atlassian.com/", Format: ipranges.Atlassian, Product: "bitbucket"},
		Doc:       "https://support.atlassian.com/organization-administration/docs/ip-addresses-and-domains-for-atlassian-cloud-products/",
		How:       `the items whose "product" lists bitbucket and whose "direction" lists egress`,
	},
	"jira": {
		Published: &ipranges.Published{URL: "https://ip-ranges.atlassian.com/", Format: ipranges.Atlassian, Product: "jira"},
		Doc:       "https://support.atlassian.com/organization-administration/docs/ip-addresses-and-domains-for-atlassian-cloud-products/",
		How:       `the items whose "product" lists jira and whose "direction" lists egress`,
	},
	"gitlab": {
		Static: []string{"34.74.90.64/28", "34.74.226.0/24"},
		Doc:    "https://docs.gitlab.com/user/gitlab_com/#ip-range",
		How:    "GitLab.com's documented webhook ranges (GitLab Self-Managed sends from your own instance)",
		Read:   "2026-12-02",
	},
}

// LookupIPSource returns where provider (a preset name or alias) lists
// its senders' addresses (nil: nowhere).
func LookupIPSource(provider string) *IPSource {
	p, err := LookupPreset(provider)
	if err != nil {
		return nil
	}
	return ipSources[p.Name]
}

// staticPrefixes parses a documented list.
func (s *IPSource) staticPrefixes() ([]netip.Prefix, error) { return ipranges.ParsePrefixes(s.Static) }

// IPRangesSource is implemented by the webhook app: it keeps providers'
// published lists current for the whole process.
type IPRangesSource interface {
	// IPRanges starts keeping provider's list from def (or the app's
	// override of its URL) and returns the manager that holds it.
	IPRanges(provider string, def ipranges.Published) (*ipranges.Manager, error)
}

// ipGate is a handler's allow_ips: fixed ranges, and the provider's
// published list when asked for.
type ipGate struct {
	fixed    []netip.Prefix
	lists    *ipranges.Manager // nil: no published list
	provider string
}

// newIPGate compiles allow_ips for the preset named label.
func (h *Handler) newIPGate(ctx interface{ App(string) (any, error) }, p Preset) (*ipGate, error) {
	g := &ipGate{provider: p.Name}
	for _, v := range h.AllowIPs {
		if v != "published" {
			ps, err := ipranges.ParsePrefixes([]string{v})
			if err != nil {
				return nil, fmt.Errorf("allow_ips: %v (want published, a CIDR or an address)", err)
			}
			g.fixed = append(g.fixed, ps...)
			continue
		}
		src := ipSources[p.Name]
		if h.Provider == "" || src == nil {
			return nil, fmt.Errorf("allow_ips published: %s publishes no list of the addresses its webhooks come from; give the ranges yourself, or leave allow_ips out (caddy webhook providers --provider %s)", h.label, h.label)
		}
		if src.Published == nil {
			ps, err := src.staticPrefixes()
			if err != nil {
				return nil, err
			}
			g.fixed = append(g.fixed, ps...)
			continue
		}
		app, err := ctx.App("webhook")
		if err != nil {
			return nil, err
		}
		lists, ok := app.(IPRangesSource)
		if !ok {
			return nil, errors.New("allow_ips published: the webhook app does not keep IP ranges")
		}
		if g.lists, err = lists.IPRanges(p.Name, *src.Published); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// check admits the request's client address, or says why not.
func (g *ipGate) check(r *http.Request) *gate.Rejection {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return gate.Reject(gate.ReasonSourceIPRefused, "the client address could not be read")
	}
	addr = addr.Unmap()
	for _, p := range g.fixed {
		if p.Contains(addr) {
			return nil
		}
	}
	if g.lists != nil {
		l := g.lists.Get(g.provider)
		if l == nil {
			return gate.Reject(gate.ReasonIPRangesUnavailable, "the sender's published address list has not been obtained yet; retry later").WithRetryAfter(30)
		}
		if l.Contains(addr) {
			return nil
		}
	}
	return gate.Reject(gate.ReasonSourceIPRefused, "the request does not come from an address the sender's webhooks come from")
}

// Describe says in one line where the list comes from, for the README
// and `caddy webhook providers`.
func (s *IPSource) Describe() string {
	if s.Published != nil {
		return "published at " + s.Published.URL + ": " + s.How + " (" + s.Doc + ")"
	}
	return "documented: " + strings.Join(s.Static, ", ") + " (" + s.Doc + ", read " + s.Read + ")"
}

// ipSourceCell is the README table's cell for provider.
func ipSourceCell(provider string) string {
	s := ipSources[provider]
	switch {
	case s == nil:
		return "—"
	case s.Published != nil:
		return "[published](" + s.Published.URL + "), refreshed"
	default:
		return "[documented](" + s.Doc + "): `" + strings.Join(s.Static, "`, `") + "` (read " + s.Read + ")"
	}
}
