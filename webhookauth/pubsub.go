package webhookauth

import (
	"context"
	"crypto/rsa"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
	"github.com/webhookauth/caddy-webhookauth/internal/keyfetch"
)

// pubsubScheme verifies Google Cloud Pub/Sub push deliveries with
// authentication: "Authorization: Bearer <OIDC token>", an RS256 JWT
// signed with one of Google's published keys (JWKS), issued by
// accounts.google.com, for the configured audience, within its validity
// (with the tolerance as leeway), and, when service_account is set, for
// that account with a verified email.
//
// The JWT is parsed and checked by go-jose (a maintained JOSE library,
// already in Caddy's dependencies): it refuses any algorithm but RS256
// before looking at the key, so "alg: none" and HS256 signed with the
// public key as a secret never verify.
type pubsubScheme struct {
	fetchedSettings
	audience string
	account  string
}

// googleIssuers are the iss values Google's ID tokens carry.
var googleIssuers = []string{"accounts.google.com", "https://accounts.google.com"}

// maxJWTLength bounds the token read from the header.
const maxJWTLength = 8 << 10

const jwksMaxTTL = 24 * time.Hour

// pubsubKeySpace is where Google's key set is cached.
const pubsubKeySpace = "pubsub/jwks"

func (s *pubsubScheme) begin(r *http.Request) *Rejection {
	vals := r.Header["Authorization"]
	switch {
	case len(vals) == 0:
		return reject(ReasonSignatureMissing, "the request has no Authorization header")
	case len(vals) > 1:
		return reject(ReasonSignatureMalformed, "the Authorization header is sent more than once")
	}
	token, ok := bearer(vals[0])
	if !ok || token == "" {
		return reject(ReasonSignatureMalformed, "the Authorization header is not \"Bearer <token>\"")
	}
	if len(token) > maxJWTLength {
		return reject(ReasonSignatureMalformed, "the token is too long")
	}
	return nil
}

func bearer(v string) (string, bool) {
	scheme, token, ok := strings.Cut(v, " ")
	return strings.TrimSpace(token), ok && strings.EqualFold(scheme, "Bearer")
}

func (s *pubsubScheme) verify(ctx context.Context, r *http.Request, body []byte, now time.Time) (string, string, *Rejection) {
	raw, _ := bearer(r.Header.Get("Authorization"))
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || len(tok.Headers) != 1 {
		return "", "", reject(ReasonSignatureMalformed, "the token is not an RS256-signed JWT")
	}
	kid := tok.Headers[0].KeyID
	pub, rej := s.key(ctx, kid)
	if rej != nil {
		return "", "", rej
	}
	var claims jwt.Claims
	var extra struct {
		Email         string `json:"email"`
		EmailVerified bool   `json:"email_verified"`
	}
	if err := tok.Claims(pub, &claims, &extra); err != nil {
		return "", "", reject(ReasonSignatureInvalid, "the token's signature does not verify with the Google key it names")
	}
	s.keys.Vouch(pubsubKeySpace, s.policy.JWKSURL)
	if !slices.Contains(googleIssuers, claims.Issuer) {
		return "", "", reject(ReasonSignatureInvalid, "the token is not issued by accounts.google.com")
	}
	if !claims.Audience.Contains(s.audience) {
		return "", "", reject(ReasonSignatureInvalid, "the token is for another audience")
	}
	if claims.Expiry == nil || claims.IssuedAt == nil {
		return "", "", reject(ReasonTimestampInvalid, "the token has no exp or iat")
	}
	leeway := s.tolerance
	if err := claims.ValidateWithLeeway(jwt.Expected{Time: now}, leeway); err != nil {
		return "", "", reject(ReasonTimestampOutOfWindow, "the token is expired or not yet valid")
	}
	if s.account != "*" && (extra.Email != s.account || !extra.EmailVerified) {
		return "", "", reject(ReasonSignatureInvalid, "the token is for another service account, or its email is not verified")
	}
	id, _ := bodyString(body, "message.messageId")
	return id, "", nil
}

// key returns Google's key with the id kid: from the cached key set, or,
// when the set lacks it (Google rotates its keys), from the set fetched
// again, at most once a minute.
func (s *pubsubScheme) key(ctx context.Context, kid string) (*rsa.PublicKey, *Rejection) {
	parse := keyfetch.JWKS(jwksMaxTTL)
	for _, get := range []func(context.Context, string, string, keyfetch.Allowlist, keyfetch.Parser) (any, error){s.keys.Get, s.keys.Refresh} {
		v, err := get(ctx, pubsubKeySpace, s.policy.JWKSURL, s.policy.Hosts, parse)
		if err != nil {
			return nil, keyRejection(err, "JWKS URL")
		}
		set, ok := v.(map[string]*rsa.PublicKey)
		if !ok {
			return nil, gate.KeyUnavailable("the JWKS URL does not hold a key set")
		}
		if pub, ok := set[kid]; ok {
			return pub, nil
		}
	}
	return nil, reject(ReasonSignatureInvalid, "the token names a key Google does not publish")
}

// idSigned: see customScheme.
func (*pubsubScheme) idSigned() bool { return false }
