package webhookauth

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
	"github.com/webhookauth/caddy-webhookauth/internal/keyfetch"
)

// snsScheme verifies Amazon SNS HTTP(S) deliveries: the JSON body names
// its signing certificate (SigningCertURL, on an SNS host) and carries an
// RSA signature (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) over
// a canonical string of its fields.
type snsScheme struct {
	fetchedSettings
	topics  []string
	confirm bool
}

// snsMessage is an SNS delivery. Subject is a pointer: a Notification
// signs it only when it is present.
type snsMessage struct {
	Type, MessageID, Token, TopicArn string
	Subject                          *string
	Message, Timestamp               string
	SignatureVersion, Signature      string
	SigningCertURL, SubscribeURL     string
}

// parseSNS reads an SNS message with the strict scanner (jsonscan.go):
// the body must be one valid JSON object, and every member the gate reads
// must appear once, spelled exactly, as a string (null counts as absent).
// A second copy or a case variant ("message" beside "Message") is
// refused: encoding/json would match either and keep the last, Python and
// JavaScript only the exact name, so the text the gate verified could
// differ from the text the backend reads.
func parseSNS(body []byte) (snsMessage, *Rejection) {
	var m snsMessage
	var vals [len(snsMembers)][]byte
	var res [len(snsMembers)]lookupResult
	if !json.Valid(body) || !jsonMembers(body, snsMembers[:], vals[:], res[:]) {
		return m, reject(ReasonSignatureMalformed, "the body is not an SNS message")
	}
	var subject string
	dst := [len(snsMembers)]*string{&m.Type, &m.MessageID, &m.Token, &m.TopicArn, &subject, &m.Message,
		&m.Timestamp, &m.SignatureVersion, &m.Signature, &m.SigningCertURL, &m.SubscribeURL}
	for i, name := range snsMembers {
		switch {
		case res[i] == jsonAmbiguous:
			return m, reject(ReasonSignatureMalformed, "the body has more than one "+name+" member (in some letter case)")
		case res[i] == jsonMissing || string(vals[i]) == "null":
			continue
		}
		text, ok := stringValue(vals[i])
		if !ok {
			return m, reject(ReasonSignatureMalformed, "the body's "+name+" is not a JSON string in UTF-8")
		}
		*dst[i] = text
		if name == "Subject" {
			m.Subject = &subject
		}
	}
	return m, nil
}

// snsMembers are the members the gate reads, in the order of parseSNS's
// destinations.
var snsMembers = [...]string{"Type", "MessageId", "Token", "TopicArn", "Subject", "Message", "Timestamp",
	"SignatureVersion", "Signature", "SigningCertURL", "SubscribeURL"}

// snsKeySpace is where SNS's certificates are cached: apart from any
// other sender's keys, even at the same URL.
const snsKeySpace = "sns/certificate"

// certRSAKey returns the RSA key of a cached certificate; false for
// anything else (never a panic, whatever a URL served).
func certRSAKey(v any) (*rsa.PublicKey, bool) {
	cert, ok := v.(*x509.Certificate)
	if !ok {
		return nil, false
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	return pub, ok
}

// snsCertMaxTTL bounds how long an SNS certificate is cached.
const snsCertMaxTTL = 24 * time.Hour

func (s *snsScheme) begin(r *http.Request) *Rejection {
	if strings.EqualFold(r.Header.Get("X-Amz-Sns-Rawdelivery"), "true") {
		return reject(ReasonSignatureMissing, "SNS raw message delivery carries no signature: turn it off on the subscription")
	}
	if vals := r.Header["X-Amz-Sns-Message-Type"]; len(vals) > 1 {
		return reject(ReasonSignatureMalformed, "the x-amz-sns-message-type header is sent more than once")
	}
	return nil
}

func (s *snsScheme) verify(ctx context.Context, r *http.Request, body []byte, now time.Time) (string, string, *Rejection) {
	m, rej := parseSNS(body)
	if rej != nil {
		return "", "", rej
	}
	canonical, ok := snsCanonical(&m)
	if !ok {
		return "", "", reject(ReasonSignatureMalformed, "the body is not an SNS Notification, SubscriptionConfirmation or UnsubscribeConfirmation")
	}
	if t := r.Header.Get("X-Amz-Sns-Message-Type"); t != "" && t != m.Type {
		return "", "", reject(ReasonSignatureMalformed, "the x-amz-sns-message-type header names another type than the body")
	}
	var hash crypto.Hash
	switch m.SignatureVersion {
	case "1":
		hash = crypto.SHA1
	case "2":
		hash = crypto.SHA256
	default:
		return "", "", reject(ReasonSignatureMalformed, "the SignatureVersion is not 1 or 2")
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil || len(sig) == 0 || len(sig) > maxSigSize {
		return "", "", reject(ReasonSignatureMissing, "the Signature is missing or not base64")
	}
	if !snsCertPath(m.SigningCertURL) {
		return "", "", reject(ReasonSignatureMalformed, "the SigningCertURL is not an HTTPS URL of a .pem file on an SNS host")
	}
	if rej := checkTimestampValue(m.Timestamp, time.RFC3339Nano, now, s.tolerance); rej != nil {
		return "", "", rej
	}
	v, err := s.keys.Get(ctx, snsKeySpace, m.SigningCertURL, s.policy.Hosts, keyfetch.Certificate(s.keys.Roots(), s.policy.CertNames, snsCertMaxTTL))
	if err != nil {
		return "", "", keyRejection(err, "SigningCertURL")
	}
	pub, ok := certRSAKey(v)
	if !ok {
		return "", "", gate.KeyUnavailable("the SigningCertURL does not hold an RSA certificate")
	}
	var digest []byte
	if hash == crypto.SHA1 {
		d := sha1.Sum(canonical)
		digest = d[:]
	} else {
		d := sha256.Sum256(canonical)
		digest = d[:]
	}
	if rsa.VerifyPKCS1v15(pub, hash, digest, sig) != nil {
		return "", "", signatureMismatch
	}
	s.keys.Vouch(snsKeySpace, m.SigningCertURL)
	// The topic is checked once the message is known to be SNS's, so
	// that a forgery learns nothing about the allowed topics.
	if !slices.Contains(s.topics, "*") && !slices.Contains(s.topics, m.TopicArn) {
		return "", "", reject(ReasonSignatureInvalid, "the message is for a topic this endpoint does not accept")
	}
	if s.confirm && m.Type == "SubscriptionConfirmation" {
		// Confirm it here: visit the (signed) SubscribeURL, under the
		// same rules as a certificate fetch.
		if u, err := url.Parse(m.SubscribeURL); err != nil || u.Query().Get("Action") != "ConfirmSubscription" {
			return "", "", reject(ReasonSignatureMalformed, "the SubscribeURL is not an SNS ConfirmSubscription URL")
		}
		if err := s.keys.Visit(ctx, m.SubscribeURL, s.policy.Hosts); err != nil {
			return "", "", keyRejection(err, "SubscribeURL")
		}
		return m.MessageID, m.Type, errConfirmed
	}
	return m.MessageID, m.Type, nil
}

// errConfirmed is not a refusal: the gate has confirmed the subscription
// itself, and answers SNS instead of the backend.
var errConfirmed = &Rejection{Reason: "confirmed"}

// snsCanonical builds the string SNS signs: "Name\nValue\n" for each
// field of the message type, in this order, and for a Notification the
// Subject only when the message has one. False for another type, or when
// a signed field is missing.
func snsCanonical(m *snsMessage) ([]byte, bool) {
	type field struct{ name, value string }
	var fields []field
	switch m.Type {
	case "Notification":
		fields = []field{{"Message", m.Message}, {"MessageId", m.MessageID}}
		if m.Subject != nil {
			fields = append(fields, field{"Subject", *m.Subject})
		}
		fields = append(fields, field{"Timestamp", m.Timestamp}, field{"TopicArn", m.TopicArn}, field{"Type", m.Type})
	case "SubscriptionConfirmation", "UnsubscribeConfirmation":
		fields = []field{{"Message", m.Message}, {"MessageId", m.MessageID}, {"SubscribeURL", m.SubscribeURL},
			{"Timestamp", m.Timestamp}, {"Token", m.Token}, {"TopicArn", m.TopicArn}, {"Type", m.Type}}
	default:
		return nil, false
	}
	var b []byte
	for _, f := range fields {
		if f.value == "" && f.name != "Message" && f.name != "Subject" {
			return nil, false
		}
		b = append(b, f.name...)
		b = append(b, '\n')
		b = append(b, f.value...)
		b = append(b, '\n')
	}
	return b, true
}

// snsCertPath reports whether a SigningCertURL has the shape SNS uses:
// HTTPS, a path ending in .pem, no query or fragment. The host is checked
// against the allowlist by the key source.
func snsCertPath(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https" && strings.HasSuffix(u.Path, ".pem") && u.RawQuery == "" && u.Fragment == ""
}

// checkTimestampValue checks a timestamp in layout against the window
// (0: no check).
func checkTimestampValue(ts, layout string, now time.Time, tolerance time.Duration) *Rejection {
	t, err := time.Parse(layout, ts)
	if err != nil {
		return reject(ReasonTimestampInvalid, "the timestamp is missing or not a "+layout+" time")
	}
	if tolerance > 0 {
		if d := now.Sub(t); d > tolerance || d < -tolerance {
			return reject(ReasonTimestampOutOfWindow, "the timestamp is more than "+tolerance.String()+" away from the server's clock")
		}
	}
	return nil
}

// idSigned: see customScheme.
func (*snsScheme) idSigned() bool { return true }
