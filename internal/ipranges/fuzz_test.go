package ipranges

import (
	"testing"
)

// FuzzParse: a list from the network, in every format, never panics;
// what it yields is masked prefixes, and what Sane accepts holds no
// range wider than a provider's senders can be.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"hooks":["192.30.252.0/22","2a0a:a440::/29"]}`,
		`{"WEBHOOKS":["3.18.12.63","::ffff:1.2.3.4"]}`,
		`{"items":[{"cidr":"104.192.136.0/21","product":["bitbucket"],"direction":["egress"]}]}`,
		`{"data":{"outbound_requests":{"us":["35.184.238.160/32"],"eu":["34.141.31.19/32"]}}}`, `{"us":["44.228.126.217","2600:1f24:64:8000::/56"]}`,
		`{"webhook_ips":["192.0.2.0/24"]}`, `{"*":["1.2.3.4"]}`,
		`{"hooks":["0.0.0.0/0"]}`, `{"hooks":[1]}`, `{"hooks":"x"}`, `[]`, ``, `{"items":[{"cidr":null}]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, src := range []Published{{Format: GitHubMeta}, {Format: StripeJSON}, {Format: Atlassian, Product: "bitbucket"},
			{Format: JSONPaths, Paths: []string{"data.outbound_requests.*"}}, {Format: JSONPaths, Paths: []string{"*"}}, {Format: JSONPaths, Paths: []string{"webhook_ips"}}} {
			format := src.Format
			list, err := Parse(src, []byte(body))
			if err != nil {
				continue
			}
			for _, p := range list {
				if p != p.Masked() {
					t.Fatalf("%s: %s is not masked", format, p)
				}
			}
			if Sane(list, nil) == nil {
				for _, p := range list {
					if p.Addr().Is4() && p.Bits() < 8 || p.Addr().Is6() && p.Bits() < 32 {
						t.Fatalf("%s: %s passed as sane", format, p)
					}
				}
			}
		}
	})
}
