package webhookauth

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Algorithm names how a signature is computed from a secret and the signed
// payload.
type Algorithm string

// Supported algorithms. AlgorithmToken is not a MAC: the sender puts the
// shared secret itself in the signature header (GitLab), and it is compared
// in constant time.
const (
	AlgorithmHMACSHA1   Algorithm = "hmac-sha1"
	AlgorithmHMACSHA256 Algorithm = "hmac-sha256"
	AlgorithmHMACSHA512 Algorithm = "hmac-sha512"
	AlgorithmToken      Algorithm = "token"
	// AlgorithmSHA256 is not a MAC either: a plain SHA-256 of the secret
	// followed by the signed payload (HubSpot's v1 and v2 signatures).
	// Prefer HMAC wherever a sender offers it.
	AlgorithmSHA256 Algorithm = "sha256"
)

// hashFunc returns the hash behind an HMAC algorithm, or nil for token and
// the asymmetric algorithms.
func (a Algorithm) hashFunc() (func() hash.Hash, error) {
	switch a {
	case AlgorithmHMACSHA1:
		return sha1.New, nil
	case AlgorithmHMACSHA256:
		return sha256.New, nil
	case AlgorithmHMACSHA512:
		return sha512.New, nil
	case AlgorithmSHA256:
		return sha256.New, nil
	case AlgorithmToken, AlgorithmEd25519, AlgorithmECDSAP256, AlgorithmRSAPKCS1, AlgorithmRSAPSS:
		return nil, nil
	}
	return nil, fmt.Errorf("unknown algorithm %q (want hmac-sha1, hmac-sha256, hmac-sha512, sha256, token, ed25519, ecdsa-p256-sha256, rsa-pkcs1v15-sha256 or rsa-pss-sha256)", string(a))
}

// Format says how the signature header is laid out.
type Format string

const (
	// FormatPlain is one value, optionally behind a fixed prefix such as
	// "sha256=" (GitHub) or "v0=" (Slack).
	FormatPlain Format = "plain"
	// FormatStripe is a list of key=value pairs, separated by commas
	// (signature_separator changes that: Paddle uses ';'): the timestamp
	// under "t" (timestamp_key changes that: Paddle's "ts"; an empty
	// timestamp_key means the header carries none, as PagerDuty's) and
	// one or more signatures under the key the prefix names (for Stripe,
	// prefix "v1=").
	FormatStripe Format = "stripe"
	// FormatStandard is a space-separated list of "<version>,<signature>"
	// entries (Standard Webhooks); entries whose version does not match
	// the prefix (for example "v1a,") are ignored.
	FormatStandard Format = "standard"
)

func (f Format) validate() error {
	switch f {
	case FormatPlain, FormatStripe, FormatStandard:
		return nil
	}
	return fmt.Errorf("unknown signature_format %q (want plain, stripe or standard)", string(f))
}

// TimestampFormat says how a timestamp value is written.
type TimestampFormat string

const (
	TimestampUnix    TimestampFormat = "unix"
	TimestampUnixMS  TimestampFormat = "unix_ms"
	TimestampRFC3339 TimestampFormat = "rfc3339"
	// TimestampISO8601 is RFC 3339, or the same without a zone, read as
	// UTC (Orb's "2025-06-15T15:06:40.123456").
	TimestampISO8601 TimestampFormat = "iso8601"
)

func (f TimestampFormat) validate() error {
	switch f {
	case TimestampUnix, TimestampUnixMS, TimestampRFC3339, TimestampISO8601:
		return nil
	}
	return fmt.Errorf("unknown timestamp_format %q (want unix, unix_ms, rfc3339 or iso8601)", string(f))
}

// Scheme is a compiled signature scheme: everything needed to find, decode
// and check a signature on a request. Presets and the generic subdirectives
// both end up here; a Scheme is immutable and safe for concurrent use.
type Scheme struct {
	SignatureHeader string
	Format          Format
	Prefix          string
	Algorithm       Algorithm
	Encoding        Encoding
	Payload         Template
	TimestampHeader string // empty: no timestamp, or it is in the signature (stripe)
	TimestampFormat TimestampFormat
	IDHeader        string
	EventHeader     string
	// IDField and EventField name top-level string members of a JSON body
	// that carry the delivery id or event type when no header does
	// (Stripe's "id" and "type").
	IDField        string
	EventField     string
	SecretEncoding SecretEncoding
	// TimestampField names a top-level member of the (signed) JSON body
	// that carries the timestamp checked against the replay window, for
	// senders that put it there (Linear's webhookTimestamp).
	TimestampField string
	// SignatureField is where a signature carried in the JSON body is
	// (a dotted path), instead of a header; SignatureItems, when set,
	// names the objects that each carry one ("[]" fans out over arrays).
	SignatureField string
	SignatureItems string
	// PublicURL is the scheme, host and port {url} starts with, when set.
	PublicURL string
	// BodyHashQuery names a query parameter of the (signed) URL that
	// carries the hex SHA-256 of the body (Twilio's bodySHA256).
	BodyHashQuery string
	// URLPortVariants: the sender may sign the URL with or without its
	// default port (Twilio).
	URLPortVariants bool
	// ObjectBody: a body that is not a JSON object (after white space)
	// is refused before its MAC is computed.
	ObjectBody bool
	// TimestampIsNonce: see SchemeConfig.
	TimestampIsNonce bool
	// requiredHeaders are RequiredHeaders.
	requiredHeaders []QueryValue
	// moreSigHeaders are MoreSignatureHeaders, canonical.
	moreSigHeaders []string
	// SettingsHeader names a header in which the sender may say that it
	// signed with HMAC-SHA256 ("…,algorithm=HMAC_SHA256") instead of the
	// scheme's algorithm (Twilio's SharedKey).
	SettingsHeader string
	// Separator divides the entries of a stripe-format header, and
	// TimestampKey names the entry that holds the timestamp ("" for
	// none).
	Separator    byte
	TimestampKey string

	newHash func() hash.Hash
	macSize int
	// signedHeaders are the headers the signed payload inserts, and the
	// flags say which request-derived values it uses, so that a request
	// computes only those.
	signedHeaders                           []string
	signsID, signsURL, signsForm, signsPath bool
	// signedHeaderList names the header that lists the signed headers
	// ({signed_headers:NAME}), if any.
	signedHeaderList string
}

// SchemeConfig holds the generic scheme fields as they appear in JSON and
// the Caddyfile. Every field that is set overrides the provider preset.
type SchemeConfig struct {
	// The request header that carries the signature.
	SignatureHeader string `json:"signature_header,omitempty"`
	// How the signature header is laid out: plain (default), stripe
	// (t=…,v1=…) or standard (space-separated "v1,<sig>" entries).
	SignatureFormat Format `json:"signature_format,omitempty"`
	// A fixed text in front of the signature, such as "sha256=". For the
	// stripe and standard formats it selects which entries are signatures
	// ("v1=" and "v1,"). A pointer so that an empty prefix can override a
	// preset's.
	SignaturePrefix *string `json:"signature_prefix,omitempty"`
	// hmac-sha1, hmac-sha256 (default) or hmac-sha512; token compares the
	// header with the secret itself.
	Algorithm Algorithm `json:"algorithm,omitempty"`
	// How the MAC is written: hex (default), base64 or base64url.
	Encoding Encoding `json:"encoding,omitempty"`
	// Exactly which bytes are signed, as a template over {body}, {id},
	// {timestamp}, {method}, {url} and {header.NAME}. By default, {body}.
	SignedPayload string `json:"signed_payload,omitempty"`
	// The header that carries the timestamp checked against the replay
	// window and used for {timestamp}.
	TimestampHeader string `json:"timestamp_header,omitempty"`
	// Or: a top-level member of the JSON body that carries it, a string
	// or a whole number, checked once the signature over the body has
	// matched (Linear's webhookTimestamp, in unix_ms).
	TimestampField string `json:"timestamp_field,omitempty"`
	// unix (default), unix_ms or rfc3339.
	TimestampFormat TimestampFormat `json:"timestamp_format,omitempty"`
	// The header that carries the delivery id, used for {id}, the
	// {http.webhook.id} placeholder and dedup.
	IDHeader string `json:"id_header,omitempty"`
	// The header that names the event type, for {http.webhook.event}.
	EventHeader string `json:"event_header,omitempty"`
	// How configured secrets are turned into key bytes: raw (default),
	// base64, hex or whsec (an optional "whsec_" prefix, then base64).
	SecretEncoding SecretEncoding `json:"secret_encoding,omitempty"`
	// For signature_format stripe: the character between entries (","
	// by default) and the key of the timestamp entry ("t" by default; an
	// empty value means the header carries no timestamp).
	SignatureSeparator string  `json:"signature_separator,omitempty"`
	TimestampKey       *string `json:"timestamp_key,omitempty"`
	// The scheme, host and (if not the default) port the sender
	// addresses, such as https://hooks.example.com, for {url}: set it
	// when a proxy in front terminates TLS or changes the port, so that
	// {url} is the URL the sender signed. Without it, {url} is rebuilt
	// from the connection (http or https), the Host header and the
	// request target.
	PublicURL string `json:"public_url,omitempty"`
	// A query parameter of the signed URL that carries the hex SHA-256
	// of the body, which must match (Twilio's bodySHA256).
	BodyHashQuery string `json:"body_hash_query,omitempty"`
	// Instead of a header: where the signature is in the JSON body, as a
	// dotted path of member names (Mailgun's signature.signature), and,
	// for bodies that carry one signature per item, the path to the items
	// ("[]" for each element of an array: Adyen's
	// notificationItems.[].NotificationRequestItem), each of which must
	// verify. The signed payload then writes fields with {json:PATH}.
	SignatureField string `json:"signature_field,omitempty"`
	SignatureItems string `json:"signature_items,omitempty"`
	// Internal to presets: the sender may sign the URL with or without
	// its default port; a header may switch the algorithm to HMAC-SHA256;
	// every delivery is a JSON object (X, whose CRC answer is the same
	// HMAC over a token that cannot be one).
	URLPortVariants bool   `json:"-"`
	SettingsHeader  string `json:"-"`
	ObjectBody      bool   `json:"-"`
	// TimestampIsNonce: the "timestamp" entry of a stripe-format header
	// is a random nonce (Checkbook): signed, but not a time, so there is
	// no window.
	TimestampIsNonce bool `json:"-"`
	// RequiredHeaders must be sent with exactly these values (Box's
	// box-signature-version: 1 and box-signature-algorithm: HmacSHA256),
	// as the provider's own verifier requires.
	RequiredHeaders []QueryValue `json:"-"`
	// MoreSignatureHeaders may each carry a signature too, one per key
	// (Box's secondary, DocuSign's X-DocuSign-Signature-2 and on): any
	// signature in any of them may match any secret.
	MoreSignatureHeaders []string `json:"-"`
}

// merge returns base with every field that o sets replaced.
func (base SchemeConfig) merge(o SchemeConfig) SchemeConfig {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&base.SignatureHeader, o.SignatureHeader)
	set((*string)(&base.SignatureFormat), string(o.SignatureFormat))
	if o.SignaturePrefix != nil {
		base.SignaturePrefix = o.SignaturePrefix
	}
	set((*string)(&base.Algorithm), string(o.Algorithm))
	set((*string)(&base.Encoding), string(o.Encoding))
	set(&base.SignedPayload, o.SignedPayload)
	set(&base.TimestampHeader, o.TimestampHeader)
	set(&base.TimestampField, o.TimestampField)
	set((*string)(&base.TimestampFormat), string(o.TimestampFormat))
	set(&base.IDHeader, o.IDHeader)
	set(&base.EventHeader, o.EventHeader)
	set((*string)(&base.SecretEncoding), string(o.SecretEncoding))
	set(&base.SignatureSeparator, o.SignatureSeparator)
	set(&base.PublicURL, o.PublicURL)
	set(&base.SignatureField, o.SignatureField)
	set(&base.SignatureItems, o.SignatureItems)
	set(&base.BodyHashQuery, o.BodyHashQuery)
	if o.TimestampKey != nil {
		base.TimestampKey = o.TimestampKey
	}
	return base
}

// Compile checks a scheme configuration and fills in defaults.
func (c SchemeConfig) Compile() (*Scheme, error) {
	s := &Scheme{
		SignatureHeader:  http.CanonicalHeaderKey(c.SignatureHeader),
		Format:           c.SignatureFormat,
		Algorithm:        c.Algorithm,
		Encoding:         c.Encoding,
		TimestampHeader:  http.CanonicalHeaderKey(c.TimestampHeader),
		TimestampField:   c.TimestampField,
		PublicURL:        strings.TrimRight(c.PublicURL, "/"),
		SignatureField:   c.SignatureField,
		SignatureItems:   c.SignatureItems,
		BodyHashQuery:    c.BodyHashQuery,
		URLPortVariants:  c.URLPortVariants,
		ObjectBody:       c.ObjectBody,
		TimestampIsNonce: c.TimestampIsNonce,
		SettingsHeader:   http.CanonicalHeaderKey(c.SettingsHeader),
		TimestampFormat:  c.TimestampFormat,
		IDHeader:         http.CanonicalHeaderKey(c.IDHeader),
		EventHeader:      http.CanonicalHeaderKey(c.EventHeader),
		SecretEncoding:   c.SecretEncoding,
	}
	if c.SignaturePrefix != nil {
		s.Prefix = *c.SignaturePrefix
	}
	s.requiredHeaders = c.RequiredHeaders
	for _, h := range c.MoreSignatureHeaders {
		s.moreSigHeaders = append(s.moreSigHeaders, http.CanonicalHeaderKey(h))
	}
	if s.SignatureHeader == "" && s.SignatureField == "" {
		return nil, fmt.Errorf("no signature_header: name a provider or set signature_header (or signature_field)")
	}
	if s.SignatureField != "" && s.SignatureHeader != "" {
		return nil, fmt.Errorf("signature_field and signature_header exclude each other")
	}
	if s.SignatureItems != "" && s.SignatureField == "" {
		return nil, fmt.Errorf("signature_items needs signature_field")
	}
	if s.Format == "" {
		s.Format = FormatPlain
	}
	if s.Algorithm == "" {
		s.Algorithm = AlgorithmHMACSHA256
	}
	if s.Encoding == "" {
		s.Encoding = EncodingHex
	}
	if s.TimestampFormat == "" {
		s.TimestampFormat = TimestampUnix
	}
	if s.SecretEncoding == "" {
		s.SecretEncoding = SecretRaw
	}
	if err := s.Format.validate(); err != nil {
		return nil, err
	}
	if err := s.TimestampFormat.validate(); err != nil {
		return nil, err
	}
	if err := s.Encoding.validate(); err != nil {
		return nil, err
	}
	if err := s.SecretEncoding.validate(); err != nil {
		return nil, err
	}
	var err error
	if s.newHash, err = s.Algorithm.hashFunc(); err != nil {
		return nil, err
	}
	if s.newHash != nil {
		s.macSize = s.newHash().Size()
	}
	if s.Format == FormatStripe {
		s.Separator, s.TimestampKey = ',', "t"
		if sep := c.SignatureSeparator; sep != "" {
			if len(sep) != 1 || sep == " " || sep == "=" {
				return nil, fmt.Errorf("signature_separator %q must be one character other than a space or '='", sep)
			}
			s.Separator = sep[0]
		}
		if c.TimestampKey != nil {
			s.TimestampKey = *c.TimestampKey
		}
	} else if c.SignatureSeparator != "" || c.TimestampKey != nil {
		return nil, fmt.Errorf("signature_separator and timestamp_key apply to signature_format stripe")
	}
	if s.Format != FormatPlain && s.Prefix == "" {
		return nil, fmt.Errorf("signature_format %s needs a signature_prefix naming the signature entries (such as \"v1=\" or \"v1,\")", s.Format)
	}
	if s.Algorithm == AlgorithmToken && (s.Format != FormatPlain || c.SignedPayload != "") {
		return nil, fmt.Errorf("algorithm token compares the header with the secret: it takes neither signature_format nor signed_payload")
	}
	payload := c.SignedPayload
	if payload == "" {
		payload = "{body}"
	}
	if s.Payload, err = ParseTemplate(payload); err != nil {
		return nil, err
	}
	for _, seg := range s.Payload.Segments {
		if seg.Kind == TokenHeader {
			s.signedHeaders = append(s.signedHeaders, seg.Text)
		}
	}
	s.signsID, s.signsURL, s.signsForm = s.Payload.Uses(TokenID), s.Payload.Uses(TokenURL) || s.Payload.Uses(TokenBaseURL), s.Payload.Uses(TokenForm)
	s.signsPath = s.Payload.Uses(TokenPath)
	for i, seg := range s.Payload.Segments {
		switch seg.Kind {
		case TokenSignedHeaders:
			s.signedHeaderList = seg.Text
		case TokenEntryJSON:
			if s.Format != FormatStripe {
				return nil, fmt.Errorf("{entry_json:%s} reads an entry of a signature_format stripe header", seg.Text)
			}
			s.Payload.Segments[i].header, s.Payload.Segments[i].sep = s.SignatureHeader, s.Separator
		}
	}
	if s.SignatureField != "" && (s.Format != FormatPlain || s.Algorithm.asymmetric()) {
		return nil, fmt.Errorf("signature_field takes an HMAC, hash or token algorithm and the plain format")
	}
	if s.PublicURL != "" {
		u, err := url.Parse(s.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			return nil, fmt.Errorf("public_url %q must be a scheme and host (and port), such as https://hooks.example.com", c.PublicURL)
		}
	}
	if s.PublicURL != "" && !s.signsURL {
		return nil, fmt.Errorf("public_url applies to a signed_payload with {url} or {base_url}")
	}
	if s.BodyHashQuery != "" && !s.Payload.Uses(TokenURL) {
		return nil, fmt.Errorf("body_hash_query applies to a signed_payload with {url}")
	}
	if s.TimestampField != "" && (s.hasTimestamp() || !(s.Payload.Uses(TokenBody) || s.Payload.usesJSON(s.TimestampField))) {
		return nil, fmt.Errorf("timestamp_field reads the timestamp from the signed body: it takes no timestamp_header, and the signed_payload must cover {body} or {json:%s}", s.TimestampField)
	}
	if s.Payload.Uses(TokenTimestamp) && !s.hasTimestamp() {
		return nil, fmt.Errorf("signed_payload uses {timestamp} but the scheme has no timestamp_header")
	}
	if s.Payload.Uses(TokenID) && s.IDHeader == "" {
		return nil, fmt.Errorf("signed_payload uses {id} but the scheme has no id_header")
	}
	return s, nil
}

// hasTimestamp reports whether requests carry a timestamp for this scheme.
func (s *Scheme) hasTimestamp() bool {
	return s.TimestampHeader != "" || s.timestampInSignature()
}

// timestampInSignature reports whether the signature header carries the
// timestamp (a stripe-format header with a timestamp key).
func (s *Scheme) timestampInSignature() bool {
	return s.Format == FormatStripe && s.TimestampKey != ""
}

// parseTimestamp reads a timestamp in the scheme's format.
func (s *Scheme) parseTimestamp(v string) (time.Time, bool) {
	return parseTimestamp(s.TimestampFormat, v)
}
