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
		`{"hooks":["0.0.0.0/0"]}`, `{"hooks":[1]}`, `{"hooks":"x"}`, `[]`, ``, `{"items":[{"cidr":null}]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, format := range []Format{GitHubMeta, StripeJSON, Atlassian} {
			list, err := Parse(format, "bitbucket", []byte(body))
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
