package keyfetch

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Certificate parses a PEM certificate (the signing certificate first,
// then any intermediates), verifies that it chains to roots (nil: the
// system's) and is valid now, and that one of its names matches a
// pattern of names (as in Allowlist: "sns.amazonaws.com",
// "sns.*.amazonaws.com"). It is cached until it expires, at most maxTTL.
func Certificate(roots *x509.CertPool, names Allowlist, maxTTL time.Duration) Parser {
	return func(body []byte, _ http.Header, now time.Time) (any, time.Time, error) {
		var certs []*x509.Certificate
		for rest := body; ; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, time.Time{}, errors.New("a certificate does not parse")
			}
			certs = append(certs, c)
		}
		if len(certs) == 0 {
			return nil, time.Time{}, errors.New("no PEM certificate")
		}
		leaf := certs[0]
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return nil, time.Time{}, errors.New("the certificate does not chain to a trusted root")
		}
		if !certNamed(leaf, names) {
			return nil, time.Time{}, errors.New("the certificate is not for the sender's host")
		}
		if _, ok := leaf.PublicKey.(*rsa.PublicKey); !ok {
			return nil, time.Time{}, errors.New("the certificate's key is not RSA")
		}
		expires := now.Add(maxTTL)
		if leaf.NotAfter.Before(expires) {
			expires = leaf.NotAfter
		}
		return leaf, expires, nil
	}
}

// certNamed reports whether a DNS name of c, or its common name, matches
// one of the patterns.
func certNamed(c *x509.Certificate, names Allowlist) bool {
	candidates := append([]string{c.Subject.CommonName}, c.DNSNames...)
	for _, n := range candidates {
		n = strings.ToLower(n)
		for _, pat := range names {
			if n != "" && matchHost(strings.ToLower(pat), n) {
				return true
			}
		}
	}
	return false
}

// JWKS parses a JSON Web Key Set into its RSA keys by key id, cached for
// the response's Cache-Control max-age (1h without one), between 1m and
// maxTTL.
func JWKS(maxTTL time.Duration) Parser {
	return func(body []byte, header http.Header, now time.Time) (any, time.Time, error) {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(body, &set); err != nil {
			return nil, time.Time{}, errors.New("not a JSON Web Key Set")
		}
		keys := map[string]*rsa.PublicKey{}
		for _, k := range set.Keys {
			if pub, ok := k.Key.(*rsa.PublicKey); ok && k.KeyID != "" && (k.Use == "" || k.Use == "sig") {
				keys[k.KeyID] = pub
			}
		}
		if len(keys) == 0 {
			return nil, time.Time{}, errors.New("the key set has no RSA signing key")
		}
		return keys, now.Add(MaxAge(header, time.Hour, time.Minute, maxTTL)), nil
	}
}
