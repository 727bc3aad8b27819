package webhookauth

import (
	"crypto/sha256"
	"strings"
)

// What identifies a delivery for dedup. Two requests are one delivery only
// on the strength of what the signature covers; otherwise one captured
// delivery could claim the id of a delivery not sent yet (and the real
// one would be answered "duplicate" and lost), or carry new bodies under
// an id already seen.
//
//   - An id the signature covers (Standard Webhooks' webhook-id,
//     Twitch's message id, a body member of a signed body, SNS's
//     MessageId, PayPal's transmission id) is the key on its own.
//   - An id it does not cover (GitHub's X-GitHub-Delivery header,
//     Pub/Sub's messageId in an unsigned body) is keyed together with a
//     digest of the body: the sender's retry (same id, same body) is
//     absorbed, and no one can claim an id for a body they do not have.
//     A copy sent under a new id is not caught: that is a replay, which
//     only a signed id or timestamp can stop (the catalogue says which
//     senders have neither).
//   - Without an id, the MAC that matched identifies the signed payload.
//   - A token scheme signs nothing: without an id there is no key.

// Dedup key prefixes.
const (
	keySignedID   = "i"
	keyUnsignedID = "u"
	keyMAC        = "m"
)

// signedIDKey is the key of an id the signature covers.
func signedIDKey(id string) string { return keySignedID + id }

// unsignedIDKey is the key of an id the signature does not cover: the id
// and the SHA-256 of the body.
func unsignedIDKey(id string, body []byte) string {
	sum := sha256.Sum256(body)
	var b strings.Builder
	b.Grow(len(keyUnsignedID) + len(id) + 1 + len(sum))
	b.WriteString(keyUnsignedID)
	b.WriteString(id)
	b.WriteByte(0)
	b.Write(sum[:])
	return b.String()
}

// coversBody reports whether the signed payload covers the whole body.
func (s *Scheme) coversBody() bool {
	return s.Algorithm != AlgorithmToken && s.SignatureField == "" &&
		(s.Payload.Uses(TokenBody) || s.Payload.Uses(TokenBodyJSON))
}

// idHeaderSigned reports whether the id header's value is in the signed
// payload.
func (s *Scheme) idHeaderSigned() bool {
	return s.Algorithm != AlgorithmToken && s.signsID
}

// DedupKeyText says what dedup keys on for the preset, for the catalogue
// and `caddy webhook providers --provider`. It is derived from the scheme
// the gate runs, so the two cannot disagree.
func (p Preset) DedupKeyText() string {
	switch p.Name {
	case "sns":
		return "the signed MessageId"
	case "paypal":
		return "the signed PAYPAL-TRANSMISSION-ID (a second body under one transmission is a duplicate)"
	case "pubsub":
		return "the unsigned message.messageId with a digest of the body (retries absorbed; a copy under a new id is not caught)"
	}
	if p.JWT != nil {
		return "the unsigned " + p.IDField + " with a digest of the body (retries absorbed; a copy under a new id is not caught)"
	}
	s, err := p.Scheme.Compile()
	if err != nil {
		return "unknown"
	}
	switch {
	case s.IDHeader != "" && s.idHeaderSigned():
		return "the signed " + s.IDHeader + " header"
	case s.IDHeader != "":
		text := "the " + s.IDHeader + " header (not signed)"
		if p.IDField != "" && s.coversBody() {
			text += ", else the signed body's " + p.IDField + " member"
		}
		return text + ", with a digest of the body: retries absorbed; a copy under a new id is not caught"
	case p.IDField != "" && s.coversBody():
		return "the signed body's " + p.IDField + " member"
	case p.IDField != "":
		return "the body's " + p.IDField + " member (not signed) with a digest of the body: retries absorbed; a copy under a new id is not caught"
	case s.Algorithm == AlgorithmToken:
		return "nothing: the token signs no content, so dedup has no key without an id"
	}
	if s.SignatureItems != "" {
		return "the signatures of every item, in order (the same batch is one delivery)"
	}
	return "the signature (the same signed payload is one delivery)"
}
