package webhookauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
)

// JWTPolicy describes a sender that authenticates each request with a
// JSON Web Token signed with the shared secret (HS256) in a header,
// instead of signing the body: monday.com. The token proves who sent the
// request and when, not what it carries.
type JWTPolicy struct {
	// Header carries the token: the compact JWS alone, or after
	// "Bearer ".
	Header string
}

// jwtScheme verifies a JWTPolicy sender. Its checks, in order: one
// header, a compact JWS of three base64url parts, a protected header
// whose alg is exactly HS256 (no "none", no other algorithm, no crit),
// the HMAC-SHA256 of the first two parts under one of the secrets
// (compared in constant time), an exp claim (required: a token without
// one would be good forever) not passed and an iat or nbf not in the
// future, each with the tolerance as clock-skew leeway, and an aud
// claim equal to the configured audience ('*' for any).
//
// The token is checked here rather than by go-jose (as Pub/Sub's is)
// because go-jose refuses HMAC keys shorter than 32 bytes, which RFC 7518
// asks of key generators, not of verifiers, and a provider's secret is
// what it is. Every member read from the token is found by the same exact,
// duplicate-refusing scanner as the body's (see jsonscan.go).
type jwtScheme struct {
	header   string
	keys     [][]byte
	audience string
	leeway   time.Duration
	idField  string
	evField  string
}

// jwtHS256Header is the protected header we write when signing.
const jwtHS256Header = `{"alg":"HS256","typ":"JWT"}`

func (s *jwtScheme) begin(r *http.Request) *Rejection {
	vals := r.Header.Values(s.header)
	switch {
	case len(vals) == 0:
		return reject(ReasonSignatureMissing, "the request has no "+s.header+" header")
	case len(vals) > 1:
		return reject(ReasonSignatureMalformed, "the "+s.header+" header is sent more than once")
	}
	tok := jwtToken(vals[0])
	switch {
	case tok == "":
		return reject(ReasonSignatureMalformed, "the "+s.header+" header is empty")
	case len(tok) > maxJWTLength:
		return reject(ReasonSignatureMalformed, "the token is too long")
	case strings.Count(tok, ".") != 2:
		return reject(ReasonSignatureMalformed, "the token is not a compact JWS (three parts)")
	}
	return nil
}

// jwtToken returns the token in a header's value: after "Bearer " when
// it has that scheme, else the whole value (monday.com sends the token
// alone).
func jwtToken(v string) string {
	if tok, ok := bearer(v); ok {
		return tok
	}
	return strings.TrimSpace(v)
}

func (s *jwtScheme) verify(_ context.Context, r *http.Request, body []byte, now time.Time) (string, string, *Rejection) {
	if rej := s.check(jwtToken(r.Header.Get(s.header)), now); rej != nil {
		return "", "", rej
	}
	id, _ := bodyString(body, s.idField)
	ev, _ := bodyString(body, s.evField)
	return id, ev, nil
}

// check verifies the token.
func (s *jwtScheme) check(tok string, now time.Time) *Rejection {
	head, rest, _ := strings.Cut(tok, ".")
	payload, sig, _ := strings.Cut(rest, ".")
	hdr, err1 := base64.RawURLEncoding.Strict().DecodeString(head)
	claims, err2 := base64.RawURLEncoding.Strict().DecodeString(payload)
	mac, err3 := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err1 != nil || err2 != nil || err3 != nil || len(mac) != sha256.Size {
		return reject(ReasonSignatureMalformed, "the token's parts are not base64url, or its signature is not 32 bytes")
	}
	if !json.Valid(hdr) || !json.Valid(claims) {
		return reject(ReasonSignatureMalformed, "the token's header or claims are not JSON")
	}
	alg, res := jsonMember(hdr, "alg")
	if res != jsonFound || !jsonEqual(alg, `"HS256"`) {
		return reject(ReasonSignatureMalformed, "the token is not signed with HS256")
	}
	if _, res := jsonMember(hdr, "crit"); res != jsonMissing {
		return reject(ReasonSignatureMalformed, "the token names critical header parameters")
	}
	// The signature covers the first two parts as sent.
	signed := tok[:len(head)+1+len(payload)]
	ok := false
	for _, k := range s.keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(signed))
		// Every key is tried, whichever matches: the time taken does
		// not say which one did.
		if hmac.Equal(m.Sum(nil), mac) {
			ok = true
		}
	}
	if !ok {
		return reject(ReasonSignatureInvalid, "the token's signature does not verify with the secret")
	}
	exp, res := jsonMember(claims, "exp")
	if res == jsonMissing {
		return reject(ReasonTimestampInvalid, "the token has no exp")
	}
	expAt, okExp := numericDate(exp, res)
	if !okExp {
		return reject(ReasonTimestampInvalid, "the token's exp is not a number of seconds")
	}
	if !now.Before(expAt.Add(s.leeway)) {
		return reject(ReasonTimestampOutOfWindow, "the token is expired")
	}
	for _, name := range []string{"iat", "nbf"} {
		v, res := jsonMember(claims, name)
		if res == jsonMissing {
			continue
		}
		at, ok := numericDate(v, res)
		if !ok {
			return reject(ReasonTimestampInvalid, "the token's "+name+" is not a number of seconds")
		}
		if at.After(now.Add(s.leeway)) {
			return reject(ReasonTimestampOutOfWindow, "the token's "+name+" is in the future")
		}
	}
	if s.audience != "*" && !audienceContains(claims, s.audience) {
		return reject(ReasonSignatureInvalid, "the token is for another audience")
	}
	return nil
}

// numericDate reads a JWT NumericDate (RFC 7519: seconds since the
// epoch, fractions allowed) found by jsonMember.
func numericDate(v []byte, res lookupResult) (time.Time, bool) {
	if res != jsonFound || len(v) == 0 || v[0] == '"' {
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// audienceContains reports whether the claims' aud, a string or an array
// of strings, holds aud.
func audienceContains(claims []byte, aud string) bool {
	v, res := jsonMember(claims, "aud")
	if res != jsonFound || len(v) == 0 {
		return false
	}
	if v[0] == '"' {
		got, ok := stringValue(v)
		return ok && got == aud
	}
	found := false
	jsonEach(v, "[]", func(item []byte) bool {
		if len(item) > 0 && item[0] == '"' {
			if got, ok := stringValue(item); ok && got == aud {
				found = true
				return false
			}
		}
		return true
	})
	return found
}

// idSigned: the id is in the body, which the token does not cover.
func (*jwtScheme) idSigned() bool { return false }

// SignJWT returns a token as a JWTPolicy sender writes it: HS256 under
// secret, for audience, issued at now and expiring ttl later (monday.com's
// tokens last five minutes). Tests and `caddy webhook sign` use it.
func SignJWT(secret []byte, audience string, now time.Time, ttl time.Duration) string {
	claims := gate.AppendJSONString([]byte(`{"aud":`), audience)
	claims = strconv.AppendInt(append(claims, `,"iat":`...), now.Unix(), 10)
	claims = strconv.AppendInt(append(claims, `,"exp":`...), now.Add(ttl).Unix(), 10)
	claims = append(claims, '}')
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString([]byte(jwtHS256Header)) + "." + enc.EncodeToString(claims)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signed))
	return signed + "." + enc.EncodeToString(m.Sum(nil))
}

// provisionJWT sets up a sender that sends a token signed with the
// secret: the secrets (several for a rotation, or monday.com's Signing
// Secret beside its Client Secret), the audience, the handshake.
func (h *Handler) provisionJWT(p Preset, tolerance time.Duration) error {
	keys, err := resolveSecrets(h.Secrets, SecretRaw)
	if err != nil {
		return err
	}
	for i, k := range keys {
		if len(k) < MinSecretLength {
			h.logger.Warn("a secret is shorter than recommended; providers generate at least 16 random bytes",
				zap.String("provider", h.label), zap.Int("secret_index", i), zap.Int("min_length", MinSecretLength))
		}
	}
	if h.ForwardSignature != nil {
		return errors.New("forward_signature: the token goes on to the backend (it carries monday.com's short-lived API token)")
	}
	h.custom = &jwtScheme{header: p.JWT.Header, keys: keys, audience: h.Audience, leeway: tolerance,
		idField: p.IDField, evField: p.EventField}
	return h.provisionHandshake(p)
}
