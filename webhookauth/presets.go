package webhookauth

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

//go:generate go run ../internal/readmegen -readme ../README.md

// KeyKind says what a preset verifies with.
type KeyKind string

const (
	// KeySecret is a shared secret: an HMAC key, or a token compared as
	// it is.
	KeySecret KeyKind = "secret"
	// KeyPublic is a public key (asymmetric signatures).
	KeyPublic KeyKind = "public_key"
)

// Preset is one provider in the catalogue: its signature scheme and what
// the gate needs to know about it, ready to use by name (`webhook_auth
// github`). Any generic field the user sets overrides the scheme. The
// Caddyfile parser, `caddy webhook sign|send` and the README's provider
// table (go generate) all read the catalogue; adding a provider is adding
// an entry here plus its vectors.
type Preset struct {
	// Name is how users write the provider: lowercase.
	Name string
	// Aliases are other accepted names (ngrok's identifiers where they
	// differ).
	Aliases []string
	// Summary is one line on the signature, for the README and the CLI.
	Summary string
	// DocURL is the provider's documentation on verifying deliveries.
	DocURL string
	// Key is what the preset verifies with.
	Key    KeyKind
	Scheme SchemeConfig
	// Tolerance is the default replay window; zero for providers that
	// send no timestamp.
	Tolerance time.Duration
	// IDField and EventField name top-level string members of a JSON body
	// that carry the delivery id and event type, for providers that send
	// them in no header (Stripe).
	IDField    string
	EventField string
	// Unsigned says plainly what the signature leaves unprotected, for
	// the README; empty when it covers the body and what identifies the
	// delivery.
	Unsigned string
}

func prefix(s string) *string { return &s }

// catalogue is every provider the gate knows, in README order. Sources:
// each entry's DocURL.
var catalogue = []Preset{
	{
		Name:    "github",
		Summary: "`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>`. The legacy SHA-1 `X-Hub-Signature` alone is not accepted.",
		DocURL:  "https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries",
		Key:     KeySecret,
		Scheme: SchemeConfig{
			SignatureHeader: "X-Hub-Signature-256",
			SignaturePrefix: prefix("sha256="),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingHex,
			SignedPayload:   "{body}",
			IDHeader:        "X-GitHub-Delivery",
			EventHeader:     "X-GitHub-Event",
		},
		Unsigned: "the delivery id (dedup absorbs retries, not replays); no timestamp",
	},
	{
		Name:    "gitlab",
		Summary: "`X-Gitlab-Token: <secret>`, compared in constant time, then removed from the request.",
		DocURL:  "https://docs.gitlab.com/user/project/integrations/webhooks/",
		Key:     KeySecret,
		Scheme: SchemeConfig{
			SignatureHeader: "X-Gitlab-Token",
			Algorithm:       AlgorithmToken,
			IDHeader:        "Idempotency-Key",
			EventHeader:     "X-Gitlab-Event",
		},
		Unsigned: "everything: the token proves the sender, not the body, id or time; keep the endpoint on HTTPS",
	},
	{
		Name:       "stripe",
		Summary:    "`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(\"{timestamp}.{body}\")>`; any of several `v1` entries may match. The `whsec_…` secret is used as it is.",
		DocURL:     "https://docs.stripe.com/webhooks#verify-manually",
		Key:        KeySecret,
		Tolerance:  5 * time.Minute,
		IDField:    "id",
		EventField: "type",
		Scheme: SchemeConfig{
			SignatureHeader: "Stripe-Signature",
			SignatureFormat: FormatStripe,
			SignaturePrefix: prefix("v1="),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingHex,
			SignedPayload:   "{timestamp}.{body}",
			TimestampFormat: TimestampUnix,
		},
	},
	{
		Name:      "slack",
		Summary:   "`X-Slack-Signature: v0=<hex HMAC-SHA256(\"v0:{timestamp}:{body}\")>`",
		DocURL:    "https://api.slack.com/authentication/verifying-requests-from-slack",
		Key:       KeySecret,
		Tolerance: 5 * time.Minute,
		Scheme: SchemeConfig{
			SignatureHeader: "X-Slack-Signature",
			SignaturePrefix: prefix("v0="),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingHex,
			SignedPayload:   "v0:{timestamp}:{body}",
			TimestampHeader: "X-Slack-Request-Timestamp",
			TimestampFormat: TimestampUnix,
		},
	},
	{
		Name:    "shopify",
		Summary: "`X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(body)>`",
		DocURL:  "https://shopify.dev/docs/apps/build/webhooks/subscribe/https",
		Key:     KeySecret,
		Scheme: SchemeConfig{
			SignatureHeader: "X-Shopify-Hmac-Sha256",
			SignaturePrefix: prefix(""),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingBase64,
			SignedPayload:   "{body}",
			IDHeader:        "X-Shopify-Webhook-Id",
			EventHeader:     "X-Shopify-Topic",
		},
		Unsigned: "the delivery id (dedup absorbs retries, not replays); no timestamp",
	},
	standardPreset("standard", "webhook-", "[Standard Webhooks](https://www.standardwebhooks.com) (Clerk, Resend, …): ",
		"https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md"),
	standardPreset("svix", "svix-", "Standard Webhooks under Svix's header names: ",
		"https://docs.svix.com/receiving/verifying-payloads/how-manual"),
}

// standardPreset is Standard Webhooks' scheme under a header prefix.
func standardPreset(name, headerPrefix, intro, doc string) Preset {
	return Preset{
		Name:      name,
		Summary:   intro + "`" + headerPrefix + "signature: v1,<base64 HMAC-SHA256(\"{id}.{timestamp}.{body}\")> …`, `whsec_` secrets, several signatures, unknown versions ignored",
		DocURL:    doc,
		Key:       KeySecret,
		Tolerance: 5 * time.Minute,
		Scheme: SchemeConfig{
			SignatureHeader: headerPrefix + "signature",
			SignatureFormat: FormatStandard,
			SignaturePrefix: prefix("v1,"),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingBase64,
			SignedPayload:   "{id}.{timestamp}.{body}",
			TimestampHeader: headerPrefix + "timestamp",
			TimestampFormat: TimestampUnix,
			IDHeader:        headerPrefix + "id",
			SecretEncoding:  SecretWhsec,
		},
	}
}

// byName indexes the catalogue by name and alias.
var byName = func() map[string]*Preset {
	m := make(map[string]*Preset)
	for i := range catalogue {
		p := &catalogue[i]
		for _, n := range append([]string{p.Name}, p.Aliases...) {
			if _, dup := m[n]; dup {
				panic("webhookauth: provider name " + n + " is in the catalogue twice")
			}
			m[n] = p
		}
	}
	return m
}()

// LookupPreset returns the provider with the given name or alias.
func LookupPreset(name string) (Preset, error) {
	p, ok := byName[strings.ToLower(name)]
	if !ok {
		return Preset{}, fmt.Errorf("unknown provider %q (known: %s)", name, strings.Join(PresetNames(), ", "))
	}
	return *p, nil
}

// PresetNames lists the providers' names (not aliases), sorted.
func PresetNames() []string {
	names := make([]string, 0, len(catalogue))
	for _, p := range catalogue {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return names
}

// Catalogue returns every provider, in catalogue order.
func Catalogue() []Preset {
	return append([]Preset(nil), catalogue...)
}

// PresetTable renders the catalogue as the README's provider table
// (Markdown). go generate writes it into README.md; a test fails when the
// README's copy is stale.
func PresetTable() string {
	var b strings.Builder
	b.WriteString("| provider | signature | timestamp / window | id, event | not covered by the signature |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, p := range catalogue {
		name := "[`" + p.Name + "`](" + p.DocURL + ")"
		for _, a := range p.Aliases {
			name += " (`" + a + "`)"
		}
		s := p.Scheme
		ts := "none"
		switch {
		case s.SignatureFormat == FormatStripe:
			ts = "`t=` in the signature"
		case s.TimestampHeader != "":
			ts = "`" + s.TimestampHeader + "`"
		}
		if p.Tolerance > 0 {
			ts += ", " + strings.TrimSuffix(strings.TrimSuffix(p.Tolerance.String(), "0s"), "0m") + " window"
		}
		id, ev := "—", "—"
		switch {
		case s.IDHeader != "":
			id = "`" + s.IDHeader + "`"
		case p.IDField != "":
			id = "body `" + p.IDField + "`"
		}
		switch {
		case s.EventHeader != "":
			ev = "`" + s.EventHeader + "`"
		case p.EventField != "":
			ev = "body `" + p.EventField + "`"
		}
		unsigned := p.Unsigned
		if unsigned == "" {
			unsigned = "—"
		}
		idEv := id + ", " + ev
		if id == "—" && ev == "—" {
			idEv = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", name, p.Summary, ts, idEv, unsigned)
	}
	return b.String()
}

// The markers around the generated table in the README.
const (
	tableBegin = "<!-- providers:begin (generated by go generate ./webhookauth from the catalogue; do not edit) -->\n"
	tableEnd   = "<!-- providers:end -->\n"
)

// SpliceProviderTable returns readme with the text between the provider
// table markers replaced by PresetTable.
func SpliceProviderTable(readme string) (string, error) {
	before, rest, ok := strings.Cut(readme, tableBegin)
	if !ok {
		return "", fmt.Errorf("no %q marker", strings.TrimSpace(tableBegin))
	}
	_, after, ok := strings.Cut(rest, tableEnd)
	if !ok {
		return "", fmt.Errorf("no %q marker", strings.TrimSpace(tableEnd))
	}
	return before + tableBegin + PresetTable() + tableEnd + after, nil
}
