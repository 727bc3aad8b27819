package webhookauth

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// FetchedSigning is what signing as a sender whose keys are fetched takes:
// your own RSA key, and where the endpoint will find its public half (a
// certificate you serve, or a key id in a key set you serve), so that a
// staging endpoint pointed at your key server can be tested. Tests and
// `caddy webhook sign`/`send` use it; it is not on the request path.
type FetchedSigning struct {
	Key crypto.Signer
	// CertURL: where the certificate is served (sns, paypal).
	CertURL string
	// KeyID: the key's id in the key set (pubsub).
	KeyID string
	// TopicARN (sns), WebhookID (paypal), Audience and Account (pubsub).
	TopicARN, WebhookID, Audience, Account string
}

// SignFetched signs body as the preset's sender would at now, with id as
// the delivery id where the sender has one (a fresh one when empty). It
// returns the header fields to send and the body to send: SNS wraps the
// body, as the Message, in its signed JSON envelope; the others send the
// body as it is.
func (p Preset) SignFetched(s FetchedSigning, body []byte, id string, now time.Time) (http.Header, []byte, error) {
	key, ok := s.Key.(*rsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New(p.Name + " signs with an RSA key: give an RSA private key (PEM)")
	}
	if id == "" {
		var b [16]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	sign := func(msg []byte) []byte {
		d := sha256.Sum256(msg)
		sig, _ := rsa.SignPKCS1v15(nil, key, crypto.SHA256, d[:])
		return sig
	}
	h := http.Header{}
	switch p.Name {
	case "sns":
		if s.CertURL == "" || s.TopicARN == "" {
			return nil, nil, errors.New("sns: give the certificate URL and the topic ARN")
		}
		m := snsMessage{Type: "Notification", MessageID: id, TopicArn: s.TopicARN, Message: string(body),
			Timestamp: now.UTC().Format("2006-01-02T15:04:05.000Z")}
		canonical, _ := snsCanonical(&m)
		env := map[string]string{"Type": m.Type, "MessageId": m.MessageID, "TopicArn": m.TopicArn, "Message": m.Message,
			"Timestamp": m.Timestamp, "SignatureVersion": "2", "Signature": base64.StdEncoding.EncodeToString(sign(canonical)),
			"SigningCertURL": s.CertURL}
		out, err := json.MarshalIndent(env, "", "  ")
		if err != nil {
			return nil, nil, err
		}
		h.Set("Content-Type", "text/plain; charset=UTF-8")
		h.Set("X-Amz-Sns-Message-Type", m.Type)
		h.Set("X-Amz-Sns-Message-Id", m.MessageID)
		h.Set("X-Amz-Sns-Topic-Arn", m.TopicArn)
		return h, out, nil
	case "paypal":
		if s.CertURL == "" || s.WebhookID == "" {
			return nil, nil, errors.New("paypal: give the certificate URL and the webhook id")
		}
		ts := now.UTC().Format(time.RFC3339)
		h.Set(paypalID, id)
		h.Set(paypalTime, ts)
		h.Set(paypalSig, base64.StdEncoding.EncodeToString(sign(paypalSigned(id, ts, s.WebhookID, body))))
		h.Set(paypalCertURL, s.CertURL)
		h.Set(paypalAlgo, "SHA256withRSA")
		return h, body, nil
	case "pubsub":
		if s.KeyID == "" || s.Audience == "" {
			return nil, nil, errors.New("pubsub: give the key id and the audience")
		}
		b64 := base64.RawURLEncoding.EncodeToString
		hdr, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": s.KeyID, "typ": "JWT"})
		claims := map[string]any{"aud": s.Audience, "iss": "https://accounts.google.com", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "sub": "webhookauth-test"}
		if s.Account != "" {
			claims["email"], claims["email_verified"] = s.Account, true
		}
		cl, _ := json.Marshal(claims)
		input := b64(hdr) + "." + b64(cl)
		h.Set("Authorization", "Bearer "+input+"."+b64(sign([]byte(input))))
		return h, body, nil
	}
	return nil, nil, fmt.Errorf("%s does not sign with fetched keys", p.Name)
}
