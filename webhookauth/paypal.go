package webhookauth

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"hash/crc32"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
	"github.com/webhookauth/caddy-webhookauth/internal/keyfetch"
)

// paypalScheme verifies PayPal webhooks without calling PayPal's API:
// PAYPAL-TRANSMISSION-SIG is a base64 SHA256withRSA signature of
// "<transmission id>|<transmission time>|<webhook id>|<CRC32 of the body,
// unsigned decimal>", under the certificate PAYPAL-CERT-URL names (on a
// PayPal API host).
type paypalScheme struct {
	fetchedSettings
	webhookID string
}

// The headers PayPal sends, canonical.
const (
	paypalID      = "Paypal-Transmission-Id"
	paypalTime    = "Paypal-Transmission-Time"
	paypalSig     = "Paypal-Transmission-Sig"
	paypalCertURL = "Paypal-Cert-Url"
	paypalAlgo    = "Paypal-Auth-Algo"
)

const paypalCertMaxTTL = 24 * time.Hour

// paypalKeySpace is where PayPal's certificates are cached.
const paypalKeySpace = "paypal/certificate"

func (s *paypalScheme) begin(r *http.Request) *Rejection {
	for _, name := range []string{paypalID, paypalTime, paypalSig, paypalCertURL} {
		switch vals := r.Header[name]; {
		case len(vals) == 0 || vals[0] == "":
			return reject(ReasonSignatureMissing, "the request has no "+name+" header")
		case len(vals) > 1:
			return reject(ReasonSignatureMalformed, "the "+name+" header is sent more than once")
		}
	}
	if algo := r.Header.Get(paypalAlgo); algo != "" && algo != "SHA256withRSA" {
		return reject(ReasonSignatureMalformed, "the PAYPAL-AUTH-ALGO header names an algorithm other than SHA256withRSA")
	}
	return nil
}

func (s *paypalScheme) verify(ctx context.Context, r *http.Request, body []byte, now time.Time) (string, string, *Rejection) {
	id, ts := r.Header.Get(paypalID), r.Header.Get(paypalTime)
	sig, err := base64.StdEncoding.DecodeString(r.Header.Get(paypalSig))
	if err != nil || len(sig) == 0 || len(sig) > maxSigSize {
		return "", "", reject(ReasonSignatureMalformed, "the PAYPAL-TRANSMISSION-SIG header is not base64")
	}
	if rej := checkTimestampValue(ts, time.RFC3339Nano, now, s.tolerance); rej != nil {
		return "", "", rej
	}
	certURL := r.Header.Get(paypalCertURL)
	if u, err := url.Parse(certURL); err != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", reject(ReasonSignatureMalformed, "the PAYPAL-CERT-URL is not a plain HTTPS URL")
	}
	v, err := s.keys.Get(ctx, paypalKeySpace, certURL, s.policy.Hosts, keyfetch.Certificate(s.keys.Roots(), s.policy.CertNames, paypalCertMaxTTL))
	if err != nil {
		return "", "", keyRejection(err, "PAYPAL-CERT-URL")
	}
	pub, ok := certRSAKey(v)
	if !ok {
		return "", "", gate.KeyUnavailable("the PAYPAL-CERT-URL does not hold an RSA certificate")
	}
	digest := sha256.Sum256(paypalSigned(id, ts, s.webhookID, body))
	if rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) != nil {
		return "", "", signatureMismatch
	}
	s.keys.Vouch(paypalKeySpace, certURL)
	// The delivery is identified by what the signature covers: the
	// transmission id. The body's event id is the sender's choice as far
	// as the signature goes (its CRC32 can be forced), so keying dedup on
	// it would let one captured delivery carry any number of new bodies;
	// a second body under one transmission id is a replay.
	ev, _ := bodyString(body, "event_type")
	return id, ev, nil
}

// paypalSigned is the string PayPal signs.
func paypalSigned(id, ts, webhookID string, body []byte) []byte {
	b := make([]byte, 0, len(id)+len(ts)+len(webhookID)+16)
	b = append(b, id...)
	b = append(b, '|')
	b = append(b, ts...)
	b = append(b, '|')
	b = append(b, webhookID...)
	b = append(b, '|')
	return strconv.AppendUint(b, uint64(crc32.ChecksumIEEE(body)), 10)
}

// idSigned: see customScheme.
func (*paypalScheme) idSigned() bool { return true }
