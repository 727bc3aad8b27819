package caddyfile

import (
	"github.com/webhookauth/caddy-webhookauth/internal/gate"

	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// parseWebhookAuth sets up the webhook_auth handler from Caddyfile tokens.
//
// Syntax:
//
//	webhook_auth [<matcher>] [<provider>] {
//		secret           <secret>        # repeatable: rotation
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
//		timestamp_format unix|unix_ms|rfc3339
//		id_header        <name>
//		event_header     <name>
//		secret_encoding  raw|base64|hex|whsec
//		dedup            [<ttl>]         # default 72h
//		dedup_claim_ttl  <duration>      # default 1m
//		dedup_scope      <name>          # share dedup state with handlers of the same scope
//		store            memory|redis
//		on_store_error   reject|allow
//		read_timeout     <duration>      # default 10s
//		forward_signature on|off         # default on; off for token schemes
//	}
func parseWebhookAuth(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	const name = "webhook_auth"
	h.Next() // the directive name
	handler := new(webhookauth.Handler)
	if h.NextArg() {
		if _, err := webhookauth.LookupPreset(h.Val()); err != nil {
			return nil, h.Errf("%s: %v", name, err)
		}
		handler.Provider = h.Val()
	}
	if h.NextArg() {
		return nil, h.Errf("%s: unexpected argument '%s' (the provider is the only argument; settings go in the block)", name, h.Val())
	}
	b := newBlock(h.Dispenser, name, "secret")
	if err := b.each(0, func(sub string) error { return parseWebhookAuthSub(b, handler, sub) }); err != nil {
		return nil, err
	}
	if len(handler.Secrets) == 0 {
		return nil, h.Errf("%s: at least one 'secret' is required", name)
	}
	if (handler.Store != "" || handler.OnStoreError != "" || handler.DedupClaimTTL != 0 || handler.DedupScope != "") && handler.Dedup == 0 {
		return nil, h.Errf("%s: 'store', 'on_store_error', 'dedup_claim_ttl' and 'dedup_scope' apply to dedup: add 'dedup'", name)
	}
	return handler, nil
}

func parseWebhookAuthSub(b *block, handler *webhookauth.Handler, sub string) error {
	d := b.d
	var err error
	str := func(dst *string) {
		*dst, err = b.oneArg()
	}
	sc := &handler.SchemeConfig
	switch sub {
	case "secret":
		var s string
		if s, err = b.oneArg(); err == nil {
			handler.Secrets = append(handler.Secrets, s)
		}
	case "tolerance":
		var dur time.Duration
		if dur, err = b.duration(); err == nil {
			tol := caddy.Duration(dur)
			handler.Tolerance = &tol
		}
	case "dedup":
		ttl := webhookauth.DefaultDedupTTL
		if d.CountRemainingArgs() > 0 {
			if ttl, err = b.duration(); err == nil && ttl == 0 {
				err = d.Errf("%s: 'dedup 0' remembers nothing; remove 'dedup' instead", b.directive)
			}
		}
		handler.Dedup = caddy.Duration(ttl)
	case "dedup_claim_ttl":
		var dur time.Duration
		if dur, err = b.duration(); err == nil {
			if dur == 0 {
				return d.Errf("%s: 'dedup_claim_ttl' must be longer than 0", b.directive)
			}
			handler.DedupClaimTTL = caddy.Duration(dur)
		}
	case "dedup_scope":
		str(&handler.DedupScope)
	case "read_timeout":
		var dur time.Duration
		if dur, err = b.duration(); err == nil {
			if dur == 0 {
				return d.Errf("%s: 'read_timeout' must be longer than 0", b.directive)
			}
			handler.ReadTimeout = caddy.Duration(dur)
		}
	case "forward_signature":
		var v string
		if v, err = b.choice("on", "off"); err == nil {
			on := v == "on"
			handler.ForwardSignature = &on
		}
	case "store":
		handler.Store, err = b.choice("memory", "redis")
	case "on_store_error":
		handler.OnStoreError, err = b.choice(gate.OnStoreErrorReject, gate.OnStoreErrorAllow)
	case "max_body":
		handler.MaxBody, err = b.size()
	case "methods":
		handler.Methods = d.RemainingArgs()
		if len(handler.Methods) == 0 {
			return d.Errf("%s: 'methods' needs at least one method", b.directive)
		}
	case "mode":
		handler.Mode, err = b.choice(webhookauth.ModeEnforce, webhookauth.ModeReport)
	case "on_reject":
		handler.OnReject, err = b.choice(gate.OnRejectRespond, gate.OnRejectError)
	case "signature_header":
		str(&sc.SignatureHeader)
	case "signature_format":
		var v string
		v, err = b.choice(string(webhookauth.FormatPlain), string(webhookauth.FormatStripe), string(webhookauth.FormatStandard))
		sc.SignatureFormat = webhookauth.Format(v)
	case "signature_prefix":
		var v string
		if v, err = b.oneArg(); err == nil {
			sc.SignaturePrefix = &v
		}
	case "algorithm":
		var v string
		v, err = b.choice(string(webhookauth.AlgorithmHMACSHA1), string(webhookauth.AlgorithmHMACSHA256), string(webhookauth.AlgorithmHMACSHA512), string(webhookauth.AlgorithmToken))
		sc.Algorithm = webhookauth.Algorithm(v)
	case "encoding":
		var v string
		v, err = b.choice(string(webhookauth.EncodingHex), string(webhookauth.EncodingBase64), string(webhookauth.EncodingBase64URL))
		sc.Encoding = webhookauth.Encoding(v)
	case "signed_payload":
		str(&sc.SignedPayload)
		if err == nil {
			if _, perr := webhookauth.ParseTemplate(sc.SignedPayload); perr != nil {
				return d.Errf("%s: %v", b.directive, perr)
			}
		}
	case "timestamp_header":
		str(&sc.TimestampHeader)
	case "timestamp_format":
		var v string
		v, err = b.choice(string(webhookauth.TimestampUnix), string(webhookauth.TimestampUnixMS), string(webhookauth.TimestampRFC3339))
		sc.TimestampFormat = webhookauth.TimestampFormat(v)
	case "id_header":
		str(&sc.IDHeader)
	case "event_header":
		str(&sc.EventHeader)
	case "secret_encoding":
		var v string
		v, err = b.choice(string(webhookauth.SecretRaw), string(webhookauth.SecretBase64), string(webhookauth.SecretHex), string(webhookauth.SecretWhsec))
		sc.SecretEncoding = webhookauth.SecretEncoding(v)
	default:
		return b.unknown(sub)
	}
	return err
}
