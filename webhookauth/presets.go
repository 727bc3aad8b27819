package webhookauth

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Preset is a provider's signature scheme, ready to use by name:
// `webhook_auth github`. Any generic field the user sets overrides it.
type Preset struct {
	Name   string
	Scheme SchemeConfig
	// Tolerance is the default replay window; zero for providers that
	// send no timestamp.
	Tolerance time.Duration
	// IDField and EventField name top-level string members of a JSON body
	// that carry the delivery id and event type, for providers that send
	// them in no header (Stripe).
	IDField    string
	EventField string
	// Doc is a one-line description for the README and errors.
	Doc string
}

func prefix(s string) *string { return &s }

// presets are the providers this package knows. Sources: each provider's
// documentation on verifying webhook deliveries.
var presets = map[string]Preset{
	"github": {
		Name: "github",
		Doc:  "X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>",
		Scheme: SchemeConfig{
			SignatureHeader: "X-Hub-Signature-256",
			SignaturePrefix: prefix("sha256="),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingHex,
			SignedPayload:   "{body}",
			IDHeader:        "X-GitHub-Delivery",
			EventHeader:     "X-GitHub-Event",
		},
	},
	"gitlab": {
		Name: "gitlab",
		Doc:  "X-Gitlab-Token: the secret token itself, compared in constant time",
		Scheme: SchemeConfig{
			SignatureHeader: "X-Gitlab-Token",
			Algorithm:       AlgorithmToken,
			IDHeader:        "Idempotency-Key",
			EventHeader:     "X-Gitlab-Event",
		},
	},
	"stripe": {
		Name:       "stripe",
		Doc:        "Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of \"{timestamp}.{body}\">[,v1=…]",
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
	"slack": {
		Name:      "slack",
		Doc:       "X-Slack-Signature: v0=<hex HMAC-SHA256 of \"v0:{timestamp}:{body}\">, X-Slack-Request-Timestamp",
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
	"shopify": {
		Name: "shopify",
		Doc:  "X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>",
		Scheme: SchemeConfig{
			SignatureHeader: "X-Shopify-Hmac-Sha256",
			SignaturePrefix: prefix(""),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingBase64,
			SignedPayload:   "{body}",
			IDHeader:        "X-Shopify-Webhook-Id",
			EventHeader:     "X-Shopify-Topic",
		},
	},
	"standard": standardPreset("standard", "webhook-"),
	"svix":     standardPreset("svix", "svix-"),
}

// standardPreset is Standard Webhooks' scheme under a header prefix.
func standardPreset(name, headerPrefix string) Preset {
	return Preset{
		Name:      name,
		Doc:       headerPrefix + "id, " + headerPrefix + "timestamp, " + headerPrefix + "signature: v1,<base64 HMAC-SHA256 of \"{id}.{timestamp}.{body}\"> …; whsec_ secrets",
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

// LookupPreset returns the preset with the given name.
func LookupPreset(name string) (Preset, error) {
	p, ok := presets[strings.ToLower(name)]
	if !ok {
		return Preset{}, fmt.Errorf("unknown provider %q (known: %s)", name, strings.Join(PresetNames(), ", "))
	}
	return p, nil
}

// PresetNames lists the known providers, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
