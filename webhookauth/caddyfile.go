package webhookauth

import (
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookauth/caddy-webhookauth/internal/cfparse"
	"github.com/webhookauth/caddy-webhookauth/internal/gate"
)

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
//
// Syntax:
//
//	webhook_auth [<matcher>] [<provider>] {
//		secret           <secret>        # repeatable: rotation
//		public_key       <key>           # repeatable: asymmetric schemes, Standard Webhooks v1a
//		tolerance        <duration>      # replay window; 0 disables
//		max_body         <size>
//		methods          <method...>
//		mode             enforce|report
//		on_reject        respond|error
//		signature_header <name>
//		signature_format plain|stripe|standard
//		signature_prefix <text>
//		algorithm        hmac-sha1|hmac-sha256|hmac-sha512|token
//		encoding         hex|base64|base64url
//		signed_payload   <template>
//		timestamp_header <name>
//		timestamp_field  <json member>   # or: the timestamp in the signed JSON body
//		signature_field  <json path>     # or: the signature in the JSON body
//		signature_items  <json path>     # each of these objects carries one
//		public_url       <origin>        # {url} starts with it (behind a TLS-terminating proxy)
//		body_hash_query  <param>         # a signed URL's parameter holding the body's hex SHA-256
//		timestamp_format unix|unix_ms|rfc3339|iso8601
//		id_header        <name>
//		event_header     <name>
//		secret_encoding  raw|base64|hex|whsec
//		signature_separator <char>      # stripe format: between entries, default ","
//		timestamp_key    <key>           # stripe format: the timestamp entry, default t; "" for none
//		dedup            [<ttl>]         # default 72h
//		dedup_claim_ttl  <duration>      # default 1m
//		dedup_scope      <name>          # share dedup state with handlers of the same scope
//		store            memory|redis
//		on_store_error   reject|allow
//		read_timeout     <duration>      # default 10s
//		forward_signature on|off         # default on; off for token schemes
//		handshake        on|off          # answer the provider's endpoint check here (default on)
//		verify_token     <token>         # meta: the verification request's hub.verify_token
//		topic_arn        <arn>           # sns: repeatable; only these topics
//		confirm_subscription on|off      # sns: confirm subscriptions here (default off)
//		webhook_id       <id>            # paypal: the webhook's id (required)
//		audience         <aud>           # pubsub: the push subscription's audience; monday: the endpoint URL or * (required)
//		service_account  <email>         # pubsub: the only account whose tokens are accepted
//	}
func (handler *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	const name = "webhook_auth"
	d.Next() // the directive name
	if d.NextArg() {
		if _, err := LookupPreset(d.Val()); err != nil {
			return d.Errf("%s: %v", name, err)
		}
		handler.Provider = d.Val()
	}
	if d.NextArg() {
		return d.Errf("%s: unexpected argument '%s' (the provider is the only argument; settings go in the block)", name, d.Val())
	}
	b := cfparse.NewBlock(d, name, "secret", "public_key", "topic_arn")
	b.Known = subdirectives
	if err := b.Each(0, func(sub string) error { return handler.unmarshalSub(b, sub) }); err != nil {
		return err
	}
	// What can be told from the Caddyfile alone is told here, with its
	// line; Validate checks the same for JSON configs.
	if err := handler.Validate(); err != nil {
		return d.Err(err.Error())
	}
	return nil
}

func (handler *Handler) unmarshalSub(b *cfparse.Block, sub string) error {
	d := b.D
	var err error
	str := func(dst *string) {
		*dst, err = b.OneArg()
	}
	sc := &handler.SchemeConfig
	switch sub {
	case "secret":
		var s string
		if s, err = secretArg(b); err == nil {
			handler.Secrets = append(handler.Secrets, s)
		}
	case "public_key":
		var k string
		if k, err = secretArg(b); err == nil {
			handler.PublicKeys = append(handler.PublicKeys, k)
		}
	case "tolerance":
		var dur time.Duration
		if dur, err = b.Duration(); err == nil {
			tol := caddy.Duration(dur)
			handler.Tolerance = &tol
		}
	case "dedup":
		ttl := DefaultDedupTTL
		if d.CountRemainingArgs() > 0 {
			if ttl, err = b.Duration(); err == nil && ttl == 0 {
				err = d.Errf("%s: 'dedup 0' remembers nothing; remove 'dedup' instead", b.Directive)
			}
		}
		handler.Dedup = caddy.Duration(ttl)
	case "dedup_claim_ttl":
		var dur time.Duration
		if dur, err = b.Duration(); err == nil {
			if dur == 0 {
				return d.Errf("%s: 'dedup_claim_ttl' must be longer than 0", b.Directive)
			}
			handler.DedupClaimTTL = caddy.Duration(dur)
		}
	case "dedup_scope":
		str(&handler.DedupScope)
	case "read_timeout":
		var dur time.Duration
		if dur, err = b.Duration(); err == nil {
			if dur == 0 {
				return d.Errf("%s: 'read_timeout' must be longer than 0", b.Directive)
			}
			handler.ReadTimeout = caddy.Duration(dur)
		}
	case "forward_signature":
		var v string
		if v, err = b.Choice("on", "off"); err == nil {
			on := v == "on"
			handler.ForwardSignature = &on
		}
	case "handshake":
		var v string
		if v, err = b.Choice("on", "off"); err == nil {
			on := v == "on"
			handler.Handshake = &on
		}
	case "verify_token":
		handler.VerifyToken, err = secretArg(b)
	case "topic_arn":
		var arn string
		if arn, err = b.OneArg(); err == nil {
			handler.TopicARNs = append(handler.TopicARNs, arn)
		}
	case "confirm_subscription":
		var v string
		if v, err = b.Choice("on", "off"); err == nil {
			handler.ConfirmSubscription = v == "on"
		}
	case "webhook_id":
		str(&handler.WebhookID)
	case "audience":
		str(&handler.Audience)
	case "service_account":
		str(&handler.ServiceAccount)
	case "store":
		handler.Store, err = b.Choice("memory", "redis")
	case "on_store_error":
		handler.OnStoreError, err = b.Choice(gate.OnStoreErrorReject, gate.OnStoreErrorAllow)
	case "max_body":
		handler.MaxBody, err = b.Size()
	case "allow_ips":
		handler.AllowIPs = d.RemainingArgs()
		if len(handler.AllowIPs) == 0 {
			return d.Errf("%s: 'allow_ips' takes published (the provider's own list) and/or CIDRs", b.Directive)
		}
	case "methods":
		handler.Methods = d.RemainingArgs()
		if len(handler.Methods) == 0 {
			return d.Errf("%s: 'methods' needs at least one method", b.Directive)
		}
	case "mode":
		handler.Mode, err = b.Choice(ModeEnforce, ModeReport)
	case "on_reject":
		handler.OnReject, err = b.Choice(gate.OnRejectRespond, gate.OnRejectError)
	case "signature_header":
		str(&sc.SignatureHeader)
	case "signature_format":
		var v string
		v, err = b.Choice(string(FormatPlain), string(FormatStripe), string(FormatStandard))
		sc.SignatureFormat = Format(v)
	case "signature_prefix":
		var v string
		if v, err = b.OneArg(); err == nil {
			sc.SignaturePrefix = &v
		}
	case "algorithm":
		var v string
		v, err = b.Choice(string(AlgorithmHMACSHA1), string(AlgorithmHMACSHA256), string(AlgorithmHMACSHA512), string(AlgorithmSHA256), string(AlgorithmToken),
			string(AlgorithmEd25519), string(AlgorithmECDSAP256), string(AlgorithmRSAPKCS1), string(AlgorithmRSAPSS))
		sc.Algorithm = Algorithm(v)
	case "encoding":
		var v string
		v, err = b.Choice(string(EncodingHex), string(EncodingBase64), string(EncodingBase64URL))
		sc.Encoding = Encoding(v)
	case "signed_payload":
		str(&sc.SignedPayload)
		if err == nil {
			if _, perr := ParseTemplate(sc.SignedPayload); perr != nil {
				return d.Errf("%s: %v", b.Directive, perr)
			}
		}
	case "timestamp_header":
		str(&sc.TimestampHeader)
	case "signature_field":
		str(&sc.SignatureField)
	case "signature_items":
		str(&sc.SignatureItems)
	case "public_url":
		str(&sc.PublicURL)
	case "body_hash_query":
		str(&sc.BodyHashQuery)
	case "timestamp_field":
		str(&sc.TimestampField)
	case "timestamp_format":
		var v string
		v, err = b.Choice(string(TimestampUnix), string(TimestampUnixMS), string(TimestampRFC3339), string(TimestampISO8601))
		sc.TimestampFormat = TimestampFormat(v)
	case "id_header":
		str(&sc.IDHeader)
	case "event_header":
		str(&sc.EventHeader)
	case "signature_separator":
		str(&sc.SignatureSeparator)
	case "timestamp_key":
		var v string
		if v, err = b.OneArg(); err == nil {
			sc.TimestampKey = &v
		}
	case "secret_encoding":
		var v string
		v, err = b.Choice(string(SecretRaw), string(SecretBase64), string(SecretHex), string(SecretWhsec))
		sc.SecretEncoding = SecretEncoding(v)
	default:
		return b.Unknown(sub)
	}
	return err
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)

// secretArg reads the one argument of secret, public_key or verify_token.
// None at all is, nearly always, {$NAME} with NAME unset: the Caddyfile
// replaces it with nothing while adapting, before any handler sees it, so
// the error says so rather than only counting arguments.
func secretArg(b *cfparse.Block) (string, error) {
	name := b.D.Val()
	if !b.D.NextArg() {
		if env := envPlaceholderAt(b.D.File(), b.D.Line()); env != "" {
			return "", b.D.Errf("webhook_auth: '%s' has no value: {$%s} was replaced by nothing while the Caddyfile was adapted, because the environment variable %s is unset or empty; set it, or write {env.%s}, which is read when the config loads", name, env, env, env)
		}
		return "", b.D.Errf("webhook_auth: '%s' has no value: if it is written {$NAME}, the environment variable NAME is unset or empty where the Caddyfile was adapted; set it, or write {env.NAME}, which is read when the config loads (and refused if empty, naming the variable)", name)
	}
	v := b.D.Val()
	if b.D.NextArg() {
		return "", b.D.Errf("webhook_auth: '%s' takes exactly one argument (one %s per line; repeat the line for a rotation)", name, name)
	}
	return v, nil
}

// envPlaceholder finds a Caddyfile environment placeholder, {$NAME} or
// {$NAME:default}.
var envPlaceholder = regexp.MustCompile(`\{\$([A-Za-z_][A-Za-z0-9_]*)(:[^}]*)?\}`)

// envPlaceholderAt returns the name of the {$NAME} written on line of
// file, if the file can be read and the line has one: the Caddyfile
// replaces those before parsing, so only the source still shows it.
func envPlaceholderAt(file string, line int) string {
	raw, err := os.ReadFile(file)
	if err != nil || line < 1 {
		return ""
	}
	lines := strings.Split(string(raw), "\n")
	if line > len(lines) {
		return ""
	}
	if m := envPlaceholder.FindStringSubmatch(lines[line-1]); m != nil {
		return m[1]
	}
	return ""
}

// subdirectives are the subdirectives, for the suggestion an unknown one gets.
var subdirectives = []string{"secret", "public_key", "tolerance", "dedup", "dedup_claim_ttl", "dedup_scope", "read_timeout", "forward_signature", "handshake", "verify_token", "topic_arn", "confirm_subscription", "webhook_id", "audience", "service_account", "store", "on_store_error", "max_body", "allow_ips", "methods", "mode", "on_reject", "signature_header", "signature_format", "signature_prefix", "algorithm", "encoding", "signed_payload", "timestamp_header", "signature_field", "signature_items", "public_url", "body_hash_query", "timestamp_field", "timestamp_format", "id_header", "event_header", "signature_separator", "timestamp_key", "secret_encoding"}
