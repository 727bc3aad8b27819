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
	"sentry": {
		Published: &ipranges.Published{URL: "https://docs.sentry.io/api/ip-ranges", Format: ipranges.JSONPaths, Paths: []string{"data.outbound_requests.*"}},
		Doc:       "https://docs.sentry.io/security-legal-pii/security/ip-ranges/",
		How:       `every region of "data.outbound_requests" (us, eu): the addresses Sentry makes outbound requests from, webhooks included (sentry.io, not self-hosted)`,
	},
	"svix": {
		Published: &ipranges.Published{URL: "https://docs.svix.com/webhook-ips.json", Format: ipranges.JSONPaths, Paths: []string{"*"}},
		Doc:       "https://docs.svix.com/receiving/source-ips",
		How:       "every region's list (us, eu, au, ca, in); Svix says static source addresses are not guaranteed on every pricing tier",
	},
	"clerk": {
		Published: &ipranges.Published{URL: "https://docs.svix.com/webhook-ips.json", Format: ipranges.JSONPaths, Paths: []string{"*"}},
		Doc:       "https://clerk.com/docs/guides/development/webhooks/overview",
		How:       "Svix's list, every region: Clerk sends its webhooks through Svix and its docs point to that list",
	},
	"launchdarkly": {
		Published: &ipranges.Published{URL: "https://app.launchdarkly.com/api/v2/public-ip-list", Format: ipranges.JSONPaths, Paths: []string{"outboundAddresses"}},
		Doc:       "https://launchdarkly.com/docs/home/infrastructure/ip-list",
		How:       `the "outboundAddresses" member (the EU instance publishes its own at app.eu.launchdarkly.com: set it with ip_ranges url)`,
	},
	"buildkite": {
		Published: &ipranges.Published{URL: "https://api.buildkite.com/v2/meta", Format: ipranges.JSONPaths, Paths: []string{"webhook_ips"}},
		Doc:       "https://buildkite.com/docs/apis/rest-api/meta",
		How:       `the "webhook_ips" member of the meta API (CIDRs)`,
	},
	"paddle": {
		Static: []string{
			"34.194.127.46", "54.234.237.108", "3.208.120.145", "44.226.236.210", "44.241.183.62", "100.20.172.113", // sandbox
			"34.232.58.13", "34.195.105.136", "34.237.3.244", "35.155.119.135", "52.11.166.252", "34.212.5.7", // live
		},
		Doc:  "https://developer.paddle.com/webhooks/about/respond-to-webhooks",
		How:  "Paddle Billing's documented webhook addresses, sandbox and live together",
		Read: "2026-12-03",
	},
	"resend": {
		Static: []string{"44.228.126.217", "50.112.21.217", "52.24.126.164", "54.148.139.208", "2600:1f24:64:8000::/52"},
		Doc:    "https://resend.com/docs/webhooks/create-webhook",
		How:    "Resend's documented webhook addresses",
		Read:   "2026-12-03",
	},
	"telnyx": {
		Static: []string{
			"192.76.120.128/29", "192.76.120.136/29", "192.76.120.144/29", // North America
			"185.246.41.0/29", "185.246.41.8/29", "185.246.41.16/29", // Europe
			"103.115.244.0/29", "103.115.244.8/29", // Asia-Pacific
			"64.16.239.0/24", // AI voice services (US)
		},
		Doc:  "https://developers.telnyx.com/docs/voice/sip-trunking/network-configuration/ip-whitelisting",
		How:  "Telnyx's documented webhook CIDR blocks of every region, and its AI voice services' block",
		Read: "2026-12-03",
	},
	"checkbook": {
		Static: []string{"52.10.180.255", "54.70.79.20"},
		Doc:    "https://docs.checkbook.io/docs/api/webhooks",
		How:    "Checkbook's documented webhook addresses",
		Read:   "2026-12-03",
	},
	"pagerduty": {
		Static: []string{
			"44.242.69.192", "52.89.71.166", "54.213.187.133", "35.86.21.47", "52.88.94.18", "44.238.89.29", "54.241.68.46", "54.176.72.216",
			"54.177.81.67", "13.56.49.27", "34.210.57.30", "34.210.242.134", "52.34.208.156", "34.202.21.89", "34.239.229.93", "34.231.45.166", // US
			"18.192.91.93", "18.158.120.237", "18.194.177.30", "18.158.199.216", "3.126.25.87", "18.197.187.16", "54.76.3.62", "54.170.2.90",
			"52.213.188.110", "54.195.179.238", "34.250.91.200", "54.76.225.71", // EU
		},
		Doc:  "https://github.com/PagerDuty/developer-docs/blob/main/docs/webhooks/11-Webhook-IPs.md",
		How:  "PagerDuty's documented webhook addresses, US and EU service regions together",
		Read: "2026-12-03",
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
