package webhookauth

import (
	"fmt"
	"github.com/webhookauth/caddy-webhookauth/internal/cfparse"
	"github.com/webhookauth/caddy-webhookauth/internal/keyfetch"
	"net/http"
	"slices"
	"sort"
	"strconv"
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
	// Handshake is how the provider checks the endpoint, answered at the
	// edge (see Handshake); nil for providers without one.
	Handshake *Handshake
	// SignatureIn says where the signature travels, and KeyPolicy where
	// the keys may come from, for the presets whose keys are fetched
	// (they have no Scheme).
	SignatureIn string
	KeyPolicy   *KeyPolicy
	// KeepToken: a token scheme's header is not a secret (Adobe Sign's
	// client id), so it goes on to the backend by default.
	KeepToken bool
	// BareRejections: the sender wants refusals without a body (Xero's
	// intent-to-receive check fails on any): the status, the reason in
	// no document, headers such as Retry-After kept.
	BareRejections bool
	// EchoHeader names a request header the sender wants back on every
	// answer (Adobe Sign's X-AdobeSign-ClientId): the gate sets it on the
	// response of a verified delivery.
	EchoHeader string
	// JWT, for a sender that sends a token signed with the secret instead
	// of signing the body (monday.com), says where; such a preset has no
	// Scheme.
	JWT *JWTPolicy
}

// Compiled reports whether the preset is verified by a compiled Scheme
// (its Scheme fields), rather than by code of its own: the presets whose
// keys are fetched, and those that send a JWT.
func (p Preset) Compiled() bool { return p.Key != KeyFetched && p.JWT == nil }

// objectBody makes a preset refuse bodies that are not JSON objects.
func objectBody(p Preset) Preset {
	p.Scheme.ObjectBody = true
	return p
}

// withHandshake gives a preset its handshake.
func withHandshake(p Preset, hs *Handshake) Preset {
	p.Handshake = hs
	return p
}

func prefix(s string) *string { return &s }

// catalogue is every provider the gate knows, in README order: the
// presets below, then those of presets_more.go. Sources: each entry's
// DocURL.
var catalogue = slices.Concat(corePresets, morePresets)

// corePresets are the first presets, with the engine's own schemes.
var corePresets = []Preset{
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
		Handshake: &Handshake{
			Summary: "signed `{\"type\":\"url_verification\",\"challenge\":…}`: the challenge as `text/plain`",
			Method:  http.MethodPost, Signed: true, WhenField: "type", WhenValue: `"url_verification"`, ChallengeField: "challenge",
			Charset: CharsetText, MaxLen: 1024, Answer: AnswerText,
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
	standardPreset("standard", "webhook-", "[Standard Webhooks](https://www.standardwebhooks.com): ",
		"https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md"),
	standardPreset("svix", "svix-", "Standard Webhooks under Svix's header names: ",
		"https://docs.svix.com/receiving/verifying-payloads/how-manual"),
	standardPreset("clerk", "svix-", "Svix's scheme: ", "https://clerk.com/docs/webhooks/sync-data"),
	standardPreset("resend", "svix-", "Svix's scheme: ", "https://resend.com/docs/webhooks/verify-webhooks-requests"),

	bodyHMAC("bitbucket", "X-Hub-Signature", "sha256=", AlgorithmHMACSHA256, EncodingHex,
		"https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/", "X-Request-UUID", "X-Event-Key", noTimestamp),
	withHandshake(bodyHMAC("dropbox", "X-Dropbox-Signature", "", AlgorithmHMACSHA256, EncodingHex,
		"https://www.dropbox.com/developers/reference/webhooks", "", "", noIDNoTimestamp), &Handshake{
		Summary: "`GET ?challenge=…`: the challenge echoed as `text/plain`",
		Method:  http.MethodGet, Param: "challenge", Charset: CharsetToken, MaxLen: 256, Answer: AnswerText,
	}),
	withAliases(bodyHMAC("gitea", "X-Gitea-Signature", "", AlgorithmHMACSHA256, EncodingHex,
		"https://docs.gitea.com/usage/webhooks", "X-Gitea-Delivery", "X-Gitea-Event", noTimestamp),
		"forgejo"), // Forgejo sends X-Gitea-Signature too, for compatibility
	withBodyFields(bodyHMAC("intercom", "X-Hub-Signature", "sha1=", AlgorithmHMACSHA1, EncodingHex,
		"https://developers.intercom.com/docs/references/webhooks/webhook-models", "", "", noTimestamp), "id", "topic"),
	withHandshake(withAliases(withBodyFields(bodyHMAC("meta", "X-Hub-Signature-256", "sha256=", AlgorithmHMACSHA256, EncodingHex,
		"https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads", "", "", noIDNoTimestamp), "", "object"),
		"facebook_graph_api", "facebook", "facebook_messenger", "instagram", "whatsapp"), &Handshake{
		Summary: "`GET ?hub.mode=subscribe&hub.challenge=<digits>&hub.verify_token=…`: the challenge as `text/plain` when `verify_token` matches",
		Method:  http.MethodGet, Param: "hub.challenge", Fixed: []QueryValue{{"hub.mode", "subscribe"}}, TokenParam: "hub.verify_token",
		Charset: CharsetDigits, MaxLen: 32, Answer: AnswerText,
	}),
	bodyHMAC("sentry", "Sentry-Hook-Signature", "", AlgorithmHMACSHA256, EncodingHex,
		"https://docs.sentry.io/organization/integrations/integration-platform/webhooks/", "Request-ID", "Sentry-Hook-Resource",
		"Sentry-Hook-Timestamp (sent, not signed); the delivery id"),
	withBodyFields(bodyHMAC("typeform", "Typeform-Signature", "sha256=", AlgorithmHMACSHA256, EncodingBase64,
		"https://www.typeform.com/developers/webhooks/secure-your-webhooks/", "", "", noTimestamp), "event_id", "event_type"),
	withBodyFields(bodyHMAC("vercel", "X-Vercel-Signature", "", AlgorithmHMACSHA1, EncodingHex,
		"https://vercel.com/docs/webhooks/webhooks-api#securing-webhooks", "", "", noTimestamp), "id", "type"),
	withHandshake(objectBody(withAliases(bodyHMAC("x", "X-Twitter-Webhooks-Signature", "sha256=", AlgorithmHMACSHA256, EncodingBase64,
		"https://docs.x.com/x-api/webhooks/quickstart", "", "", noIDNoTimestamp), "twitter")), &Handshake{
		Summary: "CRC: `GET ?crc_token=…`: `{\"response_token\":\"sha256=<base64 HMAC-SHA256(crc_token)>\"}` under the first secret; only tokens of letters, digits and `-_.~+/=` up to 256 bytes, which no JSON object can be, and deliveries must be JSON objects, so the answer cannot sign a delivery",
		Method:  http.MethodGet, Param: "crc_token", Optional: []string{"nonce"}, Charset: CharsetToken, MaxLen: 256, Answer: AnswerCRC,
	}),
	{
		Name:    "pagerduty",
		Summary: "`X-PagerDuty-Signature: v1=<hex HMAC-SHA256(body)>[,v1=…]`; any entry may match (one per subscription secret).",
		DocURL:  "https://developer.pagerduty.com/docs/webhooks/webhook-signatures/",
		Key:     KeySecret,
		Scheme: SchemeConfig{
			SignatureHeader: "X-PagerDuty-Signature",
			SignatureFormat: FormatStripe,
			SignaturePrefix: prefix("v1="),
			TimestampKey:    prefix(""),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingHex,
			SignedPayload:   "{body}",
			IDHeader:        "X-Webhook-Id",
		},
		Unsigned: noTimestamp,
	},
	{
		Name:       "mux",
		Summary:    "`Mux-Signature: t=<unix>,v1=<hex HMAC-SHA256(\"{timestamp}.{body}\")>`",
		DocURL:     "https://www.mux.com/docs/core/verify-webhook-signatures",
		Key:        KeySecret,
		Tolerance:  5 * time.Minute,
		IDField:    "id",
		EventField: "type",
		Scheme:     stripeLike("Mux-Signature", "{timestamp}.{body}"),
	},
	{
		Name:       "calendly",
		Summary:    "`Calendly-Webhook-Signature: t=<unix>,v1=<hex HMAC-SHA256(\"{timestamp}.{body}\")>`",
		DocURL:     "https://developer.calendly.com/api-docs/overview/webhooks/webhook-signatures",
		Key:        KeySecret,
		Tolerance:  3 * time.Minute, // the window of Calendly's documented example
		EventField: "event",
		Scheme:     stripeLike("Calendly-Webhook-Signature", "{timestamp}.{body}"),
	},
	{
		Name:       "paddle",
		Summary:    "`Paddle-Signature: ts=<unix>;h1=<hex HMAC-SHA256(\"{timestamp}:{body}\")>`; the whole `pdl_ntfset_…` secret is the key. Paddle's SDK allows 5 s, which is the default here.",
		DocURL:     "https://developer.paddle.com/webhooks/signature-verification",
		Key:        KeySecret,
		Tolerance:  5 * time.Second,
		IDField:    "notification_id",
		EventField: "event_type",
		Scheme: SchemeConfig{
			SignatureHeader:    "Paddle-Signature",
			SignatureFormat:    FormatStripe,
			SignatureSeparator: ";",
			TimestampKey:       prefix("ts"),
			SignaturePrefix:    prefix("h1="),
			Algorithm:          AlgorithmHMACSHA256,
			Encoding:           EncodingHex,
			SignedPayload:      "{timestamp}:{body}",
			TimestampFormat:    TimestampUnix,
		},
	},
	{
		Name:      "twitch",
		Summary:   "`Twitch-Eventsub-Message-Signature: sha256=<hex HMAC-SHA256(\"{id}{timestamp}{body}\")>` (EventSub)",
		DocURL:    "https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#verifying-the-event-message",
		Key:       KeySecret,
		Tolerance: 10 * time.Minute,
		Scheme: SchemeConfig{
			SignatureHeader: "Twitch-Eventsub-Message-Signature",
			SignaturePrefix: prefix("sha256="),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingHex,
			SignedPayload:   "{id}{timestamp}{body}",
			IDHeader:        "Twitch-Eventsub-Message-Id",
			TimestampHeader: "Twitch-Eventsub-Message-Timestamp",
			TimestampFormat: TimestampRFC3339,
			EventHeader:     "Twitch-Eventsub-Subscription-Type",
		},
		Handshake: &Handshake{
			Summary: "signed `Twitch-Eventsub-Message-Type: webhook_callback_verification`: the body's `challenge` as `text/plain`",
			Method:  http.MethodPost, Signed: true, WhenHeader: "Twitch-Eventsub-Message-Type", WhenValue: "webhook_callback_verification",
			ChallengeField: "challenge", Charset: CharsetText, MaxLen: 1024, Answer: AnswerText,
		},
	},
	{
		Name:       "zoom",
		Summary:    "`x-zm-signature: v0=<hex HMAC-SHA256(\"v0:{timestamp}:{body}\")>`, `x-zm-request-timestamp`",
		DocURL:     "https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events",
		Key:        KeySecret,
		Tolerance:  5 * time.Minute,
		EventField: "event",
		Scheme: SchemeConfig{
			SignatureHeader: "X-Zm-Signature",
			SignaturePrefix: prefix("v0="),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingHex,
			SignedPayload:   "v0:{timestamp}:{body}",
			TimestampHeader: "X-Zm-Request-Timestamp",
			TimestampFormat: TimestampUnix,
		},
		Handshake: &Handshake{
			Summary: "signed `endpoint.url_validation`: `{\"plainToken\":…,\"encryptedToken\":<hex HMAC-SHA256(plainToken)>}` under the secret that verified it",
			Method:  http.MethodPost, Signed: true, WhenField: "event", WhenValue: `"endpoint.url_validation"`, ChallengeField: "payload.plainToken",
			Charset: CharsetToken, MaxLen: 256, Answer: AnswerZoom,
		},
	},
	{
		Name:       "square",
		Summary:    "`x-square-hmacsha256-signature: <base64 HMAC-SHA256(\"{url}{body}\")>`: the notification URL as registered (see `{url}`)",
		DocURL:     "https://developer.squareup.com/docs/webhooks/step3validate",
		Key:        KeySecret,
		IDField:    "event_id",
		EventField: "type",
		Scheme: SchemeConfig{
			SignatureHeader: "X-Square-Hmacsha256-Signature",
			SignaturePrefix: prefix(""),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingBase64,
			SignedPayload:   "{url}{body}",
		},
		Unsigned: noTimestamp,
	},
	{
		Name:      "hubspot",
		Summary:   "v3: `X-HubSpot-Signature-v3: <base64 HMAC-SHA256(\"{method}{url}{body}{timestamp}\")>`, `X-HubSpot-Request-Timestamp` in ms",
		DocURL:    "https://developers.hubspot.com/docs/apps/legacy-apps/authentication/validating-requests",
		Key:       KeySecret,
		Tolerance: 5 * time.Minute,
		Scheme: SchemeConfig{
			SignatureHeader: "X-HubSpot-Signature-v3",
			SignaturePrefix: prefix(""),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingBase64,
			SignedPayload:   "{method}{url}{body}{timestamp}",
			TimestampHeader: "X-HubSpot-Request-Timestamp",
			TimestampFormat: TimestampUnixMS,
		},
	},
	{
		Name:      "discord",
		Summary:   "`X-Signature-Ed25519: <hex ed25519 signature of \"{timestamp}{body}\">`, `X-Signature-Timestamp`; the application's public key (hex) as `public_key`",
		DocURL:    "https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint-validating-security-request-headers",
		Key:       KeyPublic,
		Tolerance: 5 * time.Minute,
		IDField:   "id",
		Scheme: SchemeConfig{
			SignatureHeader: "X-Signature-Ed25519",
			SignaturePrefix: prefix(""),
			Algorithm:       AlgorithmEd25519,
			Encoding:        EncodingHex,
			SignedPayload:   "{timestamp}{body}",
			TimestampHeader: "X-Signature-Timestamp",
			TimestampFormat: TimestampUnix,
		},
		Handshake: &Handshake{
			Summary: "signed PING (`\"type\":1`): `{\"type\":1}`; a PING with a bad signature is refused like any forgery, as Discord's probes expect",
			Method:  http.MethodPost, Signed: true, WhenField: "type", WhenValue: "1", Answer: AnswerFixed, AnswerBody: `{"type":1}`,
		},
	},
	{
		Name:      "sendgrid",
		Summary:   "Event Webhook: `X-Twilio-Email-Event-Webhook-Signature: <base64 DER ECDSA P-256/SHA-256 signature of \"{timestamp}{body}\">`; the verification key (base64) as `public_key`",
		DocURL:    "https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features",
		Key:       KeyPublic,
		Tolerance: 5 * time.Minute,
		Scheme: SchemeConfig{
			SignatureHeader: "X-Twilio-Email-Event-Webhook-Signature",
			SignaturePrefix: prefix(""),
			Algorithm:       AlgorithmECDSAP256,
			Encoding:        EncodingBase64,
			SignedPayload:   "{timestamp}{body}",
			TimestampHeader: "X-Twilio-Email-Event-Webhook-Timestamp",
			TimestampFormat: TimestampUnix,
		},
		Unsigned: "the event ids inside the batch are signed, but there is no delivery id header: dedup keys on the signed payload",
	},
	hubspotPlain("hubspot_v1", "{body}", "v1: `X-HubSpot-Signature: <hex SHA-256 of secret + body>` (a plain hash, not an HMAC), `X-HubSpot-Signature-Version: v1`"),
	hubspotPlain("hubspot_v2", "{method}{url}{body}", "v2: `X-HubSpot-Signature: <hex SHA-256 of secret + method + URL + body>` (a plain hash, not an HMAC), `X-HubSpot-Signature-Version: v2`"),
	{
		Name:      "linear",
		Summary:   "`Linear-Signature: <hex HMAC-SHA256(body)>`; the replay window applies to the body's `webhookTimestamp` (ms), checked once the signature has matched",
		DocURL:    "https://linear.app/developers/webhooks#securing-webhooks",
		Key:       KeySecret,
		Tolerance: time.Minute,
		Scheme: SchemeConfig{
			SignatureHeader: "Linear-Signature",
			SignaturePrefix: prefix(""),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingHex,
			SignedPayload:   "{body}",
			TimestampField:  "webhookTimestamp",
			TimestampFormat: TimestampUnixMS,
			IDHeader:        "Linear-Delivery",
			EventHeader:     "Linear-Event",
		},
	},
	{
		Name:    "twilio",
		Summary: "`X-Twilio-Signature: <base64 HMAC-SHA1 of the URL + the form parameters sorted by name, each name then value>`; for JSON bodies the signed URL carries `bodySHA256`, which must be the body's SHA-256. The auth token is the secret; with a SharedKey (`X-Twilio-Webhooks-Signature-Settings: …,algorithm=HMAC_SHA256`), HMAC-SHA256 under that key, which may be listed as a second secret.",
		DocURL:  "https://www.twilio.com/docs/usage/webhooks/webhooks-security",
		Key:     KeySecret,
		Scheme: SchemeConfig{
			SignatureHeader: "X-Twilio-Signature",
			SignaturePrefix: prefix(""),
			Algorithm:       AlgorithmHMACSHA1,
			Encoding:        EncodingBase64,
			SignedPayload:   "{url}{form}",
			BodyHashQuery:   "bodySHA256",
			URLPortVariants: true,
			SettingsHeader:  "X-Twilio-Webhooks-Signature-Settings",
		},
		Unsigned: noIDNoTimestamp + "; `I-Twilio-Idempotency-Token` is not signed",
	},
	{
		Name:      "mailgun",
		Summary:   "the JSON body's `signature` object: `signature` = hex HMAC-SHA256 of `timestamp` + `token` under the webhook signing key",
		DocURL:    "https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks",
		Key:       KeySecret,
		Tolerance: 5 * time.Minute,
		Scheme: SchemeConfig{
			SignatureField:  "signature.signature",
			SignaturePrefix: prefix(""),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingHex,
			SignedPayload:   "{json:signature.timestamp}{json:signature.token}",
			TimestampField:  "signature.timestamp",
			TimestampFormat: TimestampUnix,
		},
		Unsigned: "**the whole `event-data`**: only `timestamp` and `token` are signed, so the event can be altered in transit; keep the endpoint on HTTPS",
	},
	{
		Name:    "adyen",
		Summary: "standard notifications: each item's `additionalData.hmacSignature` = base64 HMAC-SHA256 of `pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success` under the hex HMAC key; every item must verify",
		DocURL:  "https://docs.adyen.com/development-resources/webhooks/secure-webhooks/verify-hmac-signatures/",
		Key:     KeySecret,
		Scheme: SchemeConfig{
			SignatureItems:  "notificationItems.[].NotificationRequestItem",
			SignatureField:  "additionalData.hmacSignature",
			SignaturePrefix: prefix(""),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingBase64,
			SignedPayload:   "{json:pspReference}:{json:originalReference}:{json:merchantAccountCode}:{json:merchantReference}:{json:amount.value}:{json:amount.currency}:{json:eventCode}:{json:success}",
			SecretEncoding:  SecretHex,
		},
		Unsigned: "every field outside the eight signed ones (event date, payment method, additional data, …); no timestamp",
	},
	{
		Name:    "adyen_platform",
		Summary: "Balance Platform and Management API webhooks: `HmacSignature: <base64 HMAC-SHA256(body)>` under the hex HMAC key",
		DocURL:  "https://docs.adyen.com/development-resources/webhooks/secure-webhooks/verify-hmac-signatures/#verify-using-hmac-signature-header",
		Key:     KeySecret,
		Scheme: SchemeConfig{
			SignatureHeader: "HmacSignature",
			SignaturePrefix: prefix(""),
			Algorithm:       AlgorithmHMACSHA256,
			Encoding:        EncodingBase64,
			SignedPayload:   "{body}",
			SecretEncoding:  SecretHex,
		},
		Unsigned: noIDNoTimestamp,
	},
	{
		Name:    "okta",
		Summary: "Event hooks: the shared secret itself in `Authorization` (the header Okta is told to send), compared in constant time, then removed from the request.",
		DocURL:  "https://developer.okta.com/docs/concepts/event-hooks/",
		Key:     KeySecret,
		IDField: "eventId",
		Scheme: SchemeConfig{
			SignatureHeader: "Authorization",
			Algorithm:       AlgorithmToken,
		},
		Unsigned: "everything: the secret proves the sender, not the body, id or time; keep the endpoint on HTTPS",
		Handshake: &Handshake{
			Summary: "`GET` with `X-Okta-Verification-Challenge` and the secret in `Authorization`: `{\"verification\":<the header's value>}`",
			Method:  http.MethodGet, Signed: true, Header: "X-Okta-Verification-Challenge", Charset: CharsetToken, MaxLen: 256,
			Answer: AnswerJSON, AnswerKey: "verification",
		},
	},
	{
		Name:    "msgraph",
		Aliases: []string{"microsoft_graph"},
		Summary: "change and lifecycle notifications: every item of `value` carries `clientState`, the secret given when the subscription was created, compared in constant time; every item must carry it",
		DocURL:  "https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks",
		Key:     KeySecret,
		Scheme: SchemeConfig{
			SignatureItems: "value.[]",
			SignatureField: "clientState",
			Algorithm:      AlgorithmToken,
		},
		Unsigned: "everything but `clientState`, which stays in the body (the gate never alters it): anyone who has seen one notification can forge others; no id or timestamp. Keep the endpoint on HTTPS",
		Handshake: &Handshake{
			Summary: "`POST ?validationToken=…` with no body: the decoded token as `text/plain`",
			Method:  http.MethodPost, Param: "validationToken", Charset: CharsetText, MaxLen: 1024, Answer: AnswerText,
		},
	},
	{
		Name:        "sns",
		Aliases:     []string{"amazon_sns", "aws_sns"},
		Summary:     "Amazon SNS HTTP(S) subscriptions: the JSON body's `Signature`, RSA (`SignatureVersion` 1: SHA1withRSA, 2: SHA256withRSA) over the documented canonical string of the Notification, SubscriptionConfirmation or UnsubscribeConfirmation, under the certificate `SigningCertURL` names, fetched only from an SNS host, chained to a trusted root, issued to SNS, cached. `topic_arn` restricts the topics.",
		DocURL:      "https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html",
		Key:         KeyFetched,
		SignatureIn: "body:Signature",
		// SigningCertURL: https://sns.<region>.amazonaws.com/SimpleNotificationService-<id>.pem,
		// and the China partition; the certificate is issued to
		// sns.amazonaws.com or a regional SNS name.
		KeyPolicy: &KeyPolicy{
			Hosts:     keyfetch.Allowlist{"sns.*.amazonaws.com", "sns.*.amazonaws.com.cn"},
			CertNames: keyfetch.Allowlist{"sns.amazonaws.com", "sns.*.amazonaws.com", "sns.*.amazonaws.com.cn", "sns-signing.*.amazonaws.com"},
		},
		IDField:    "MessageId",
		EventField: "Type",
		Unsigned:   "nothing SNS sends is left out of the canonical string but `UnsubscribeURL` and the `x-amz-sns-*` headers; no replay window (SNS retries with the same `Timestamp`): turn on `dedup`, which keys on `MessageId`",
	},
	{
		Name:        "paypal",
		Summary:     "`PAYPAL-TRANSMISSION-SIG`: base64 SHA256withRSA of `PAYPAL-TRANSMISSION-ID`, `PAYPAL-TRANSMISSION-TIME`, `webhook_id` and the body's CRC32 (unsigned decimal), joined by vertical bars, under the certificate `PAYPAL-CERT-URL` names, fetched only from a PayPal API host, chained to a trusted root, issued to PayPal's message verification name, cached. `webhook_id` is required.",
		DocURL:      "https://developer.paypal.com/api/rest/webhooks/rest/#link-selfverificationmethod",
		Key:         KeyFetched,
		SignatureIn: "PAYPAL-TRANSMISSION-SIG",
		// PAYPAL-CERT-URL: https://api.paypal.com/v1/notifications/certs/CERT-…,
		// and the sandbox and api-m hosts; the certificate is PayPal's
		// message verification certificate.
		KeyPolicy: &KeyPolicy{
			Hosts:     keyfetch.Allowlist{"api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com", "api-m.sandbox.paypal.com"},
			CertNames: keyfetch.Allowlist{"messageverificationcerts.paypal.com", "messageverificationcerts.sandbox.paypal.com"},
		},
		// PayPal documents no window; each transmission (a retry too)
		// carries its own id and time, so 5 minutes, as for the others.
		Tolerance:  5 * time.Minute,
		EventField: "event_type",
		Unsigned:   "the body is covered only by its CRC32, which is not collision-resistant: an attacker who captured a delivery could craft another body with the same CRC32 and replay the headers within the window; keep `dedup` on (it keys on the signed `PAYPAL-TRANSMISSION-ID`, so a second body under one transmission is a duplicate) and the endpoint on HTTPS",
	},
	{
		Name:        "pubsub",
		Aliases:     []string{"google_pubsub", "gcp_pubsub"},
		Summary:     "Google Cloud Pub/Sub push with authentication: `Authorization: Bearer <OIDC token>`, RS256, verified with Google's published keys (JWKS, cached per `Cache-Control`), `iss` accounts.google.com, `aud` = `audience` (required), `exp`/`iat` with `tolerance` as clock-skew leeway, and with `service_account` the `email` claim, verified.",
		DocURL:      "https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions",
		Key:         KeyFetched,
		SignatureIn: "Authorization",
		KeyPolicy: &KeyPolicy{
			Hosts:   keyfetch.Allowlist{"www.googleapis.com"},
			JWKSURL: "https://www.googleapis.com/oauth2/v3/certs",
		},
		Tolerance: 5 * time.Minute,
		IDField:   "message.messageId",
		Unsigned:  "**the body**: the token proves who sent the request, not what it carries, and stays valid for up to an hour; keep the endpoint on HTTPS and `dedup` on (it keys on the unsigned `message.messageId` together with a digest of the body, so a retry is absorbed and no one can claim a message id for a body they do not have)",
	},
}

// What a scheme's signature leaves unprotected, for the common cases.
const (
	noTimestamp     = "no timestamp: a captured delivery can be sent again (dedup absorbs it only under the same id)"
	noIDNoTimestamp = "no id, no timestamp: a captured delivery can be sent again"
)

// bodyHMAC is a provider that signs the body alone: a MAC of it in one
// header, behind an optional prefix.
func bodyHMAC(name, header, pfx string, alg Algorithm, enc Encoding, doc, idHeader, eventHeader, unsigned string) Preset {
	summary := "`" + header + ": " + pfx + "<" + string(enc) + " " + strings.ToUpper(strings.TrimPrefix(string(alg), "hmac-")) + " HMAC of the body>`"
	summary = strings.Replace(summary, " SHA", " HMAC-SHA", 1)
	summary = strings.Replace(summary, " HMAC of the body", "(body)", 1)
	return Preset{
		Name:    name,
		Summary: summary,
		DocURL:  doc,
		Key:     KeySecret,
		Scheme: SchemeConfig{
			SignatureHeader: header,
			SignaturePrefix: prefix(pfx),
			Algorithm:       alg,
			Encoding:        enc,
			SignedPayload:   "{body}",
			IDHeader:        idHeader,
			EventHeader:     eventHeader,
		},
		Unsigned: unsigned,
	}
}

// hubspotPlain is one of HubSpot's older signatures: a plain SHA-256 of
// the app secret followed by the payload, with no timestamp.
func hubspotPlain(name, payload, summary string) Preset {
	return Preset{
		Name:    name,
		Summary: summary,
		DocURL:  "https://developers.hubspot.com/docs/apps/legacy-apps/authentication/validating-requests",
		Key:     KeySecret,
		Scheme: SchemeConfig{
			SignatureHeader: "X-HubSpot-Signature",
			SignaturePrefix: prefix(""),
			Algorithm:       AlgorithmSHA256,
			Encoding:        EncodingHex,
			SignedPayload:   payload,
		},
		Unsigned: "no timestamp: a captured delivery can be sent again; use v3 (`hubspot`) where the app allows",
	}
}

// stripeLike is Stripe's header layout (t=…,v1=…, hex HMAC-SHA256) under
// another name and signed payload.
func stripeLike(header, payload string) SchemeConfig {
	return SchemeConfig{
		SignatureHeader: header,
		SignatureFormat: FormatStripe,
		SignaturePrefix: prefix("v1="),
		Algorithm:       AlgorithmHMACSHA256,
		Encoding:        EncodingHex,
		SignedPayload:   payload,
		TimestampFormat: TimestampUnix,
	}
}

func withAliases(p Preset, aliases ...string) Preset {
	p.Aliases = aliases
	return p
}

// withBodyFields names the top-level JSON members that carry the id and
// the event type.
func withBodyFields(p Preset, id, event string) Preset {
	p.IDField, p.EventField = id, event
	return p
}

// standardPreset is Standard Webhooks' scheme under a header prefix.
func standardPreset(name, headerPrefix, intro, doc string) Preset {
	return Preset{
		Name:      name,
		Summary:   intro + "`" + headerPrefix + "signature: v1,<base64 HMAC-SHA256(\"{id}.{timestamp}.{body}\")> …`, `whsec_` secrets, several signatures; with `public_key` (`whpk_…`), `v1a,<base64 ed25519 signature>` entries too",
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
		hint := "`caddy webhook providers` lists the " + strconv.Itoa(len(catalogue)) + " presets"
		if near := nearNames(strings.ToLower(name)); len(near) > 0 {
			hint = "did you mean " + strings.Join(near, " or ") + "? " + hint
		}
		return Preset{}, fmt.Errorf("unknown provider %q; %s", name, hint)
	}
	return *p, nil
}

// nearNames returns the preset names and aliases nearest to name (a
// typo: githib, strpe; or a prefix: micro), at most three.
func nearNames(name string) []string {
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return cfparse.Nearest(name, names, 1+len(name)/5)
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
	b.WriteString("| provider | signature | timestamp / window | id, event | not covered by the signature | IP ranges (`allow_ips published`) |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, p := range catalogue {
		name := "[`" + p.Name + "`](" + p.DocURL + ")"
		for _, a := range p.Aliases {
			name += " (`" + a + "`)"
		}
		s := p.Scheme
		ts := "none"
		switch {
		case s.SignatureFormat == FormatStripe && (s.TimestampKey == nil || *s.TimestampKey != ""):
			key := "t"
			if s.TimestampKey != nil {
				key = *s.TimestampKey
			}
			ts = "`" + key + "=` in the signature"
		case s.TimestampHeader != "":
			ts = "`" + s.TimestampHeader + "`"
		case s.TimestampField != "":
			ts = "body `" + s.TimestampField + "`"
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
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", name, p.Summary, ts, idEv, unsigned, ipSourceCell(p.Name))
	}
	return b.String()
}

// LogFilter renders the access-log filter that deletes every preset's
// signature header (Caddyfile), for the README.
func LogFilter() string {
	var b strings.Builder
	b.WriteString("```caddyfile\nlog {\n\tformat filter {\n")
	seen := map[string]bool{}
	for _, p := range catalogue {
		// Caddy logs header names as Go canonicalizes them, and the
		// filter matches them exactly.
		h := http.CanonicalHeaderKey(p.Scheme.SignatureHeader)
		if h != "" && !seen[h] {
			seen[h] = true
			b.WriteString("\t\trequest>headers>" + h + " delete\n")
		}
	}
	// Query parameters that carry a secret (Meta's hub.verify_token).
	var params []string
	for _, p := range catalogue {
		if hs := p.Handshake; hs != nil && hs.TokenParam != "" && !slices.Contains(params, hs.TokenParam) {
			params = append(params, hs.TokenParam)
		}
	}
	if len(params) > 0 {
		b.WriteString("\t\trequest>uri query {\n")
		for _, name := range params {
			b.WriteString("\t\t\treplace " + name + " REDACTED\n")
		}
		b.WriteString("\t\t}\n")
	}
	b.WriteString("\t\twrap json\n\t}\n}\n```\n")
	return b.String()
}

// The generated parts of the README, each between its markers.
var generated = []struct {
	name   string
	render func() string
}{
	{"providers", PresetTable},
	{"logfilter", LogFilter},
	{"handshakes", HandshakeTable},
}

// HandshakeTable renders the table of the handshakes the gate answers,
// for the README.
func HandshakeTable() string {
	var b strings.Builder
	b.WriteString("| provider | checked how | the gate answers | with `handshake off` |\n|---|---|---|---|\n")
	for _, p := range catalogue {
		hs := p.Handshake
		if hs == nil {
			continue
		}
		how, off := "verified like any delivery", "verified, then passed to the backend"
		switch {
		case !hs.Signed && hs.Answer == AnswerEmpty:
			how = "unsigned: exact shape only (" + hs.Method + ", no query, no body)"
			off = "passed to the backend unverified, in that shape only"
		case hs.EnrollParam != "":
			how = "armed only: answered when the URL carries a one-time `" + hs.EnrollParam + "` token from `caddy webhook asana arm`, which it spends; its secret is stored (see [Asana](#asana-a-secret-set-by-the-handshake))"
			off = "passed to the backend unverified (the gate then learns no secret)"
		case hs.BodyField != "":
			how = "verified when it carries `" + hs.Unless + "`; without it, exact shape only (" + hs.Method + ", a JSON object with `" + hs.BodyField + "` alone, " + hs.Charset.describe() + ", at most " + strconv.Itoa(hs.MaxLen) + " bytes)"
			off = "passed to the backend: verified with `" + hs.Unless + "`, else unverified in that shape only"
		case !hs.Signed:
			how = "unsigned: exact shape only (" + hs.Method + ", the documented parameters once each, " + hs.Charset.describe() + ", at most " + strconv.Itoa(hs.MaxLen) + " bytes)"
			off = "passed to the backend unverified, in that shape only"
		}
		if hs.TokenParam != "" {
			how += "; `" + hs.TokenParam + "` must equal `verify_token`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", p.Name, how, hs.Summary, off)
	}
	return b.String()
}

// SpliceProviderTable returns readme with each generated part (the
// provider table, the log filter) replaced by what the catalogue renders.
func SpliceProviderTable(readme string) (string, error) {
	for _, g := range generated {
		begin := "<!-- " + g.name + ":begin (generated by go generate ./webhookauth from the catalogue; do not edit) -->\n"
		end := "<!-- " + g.name + ":end -->\n"
		before, rest, ok := strings.Cut(readme, begin)
		if !ok {
			return "", fmt.Errorf("no %q marker", strings.TrimSpace(begin))
		}
		_, after, ok := strings.Cut(rest, end)
		if !ok {
			return "", fmt.Errorf("no %q marker", strings.TrimSpace(end))
		}
		readme = before + begin + g.render() + end + after
	}
	return readme, nil
}
