package webhookauth

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Delivery is what a sender signs: the body and the values a scheme's
// signed payload may include.
type Delivery struct {
	Body      []byte
	ID        string
	Timestamp time.Time
	Method    string      // for {method}; POST when empty
	URL       string      // for {url}
	Header    http.Header // for {header.NAME}
}

// SignHeaders returns the header fields a real sender of this scheme puts
// on a delivery signed with secret: the signature and, where the scheme has
// them, the timestamp and delivery id. Tests, examples and the signing
// subcommand use it; it is not on the request path. For an asymmetric
// scheme, secret is the sender's private key (see ParsePrivateKey).
func (s *Scheme) SignHeaders(secret string, d Delivery) (http.Header, error) {
	if s.SignatureField != "" {
		return nil, fmt.Errorf("this scheme carries its signature in the JSON body (%s), not in a header", s.signaturePath())
	}
	var key []byte
	var priv crypto.Signer
	var err error
	if s.Algorithm.asymmetric() {
		// secret is the sender's private key.
		priv, err = ParsePrivateKey(s.Algorithm, secret)
	} else {
		key, err = s.SecretEncoding.Key(secret)
	}
	if err != nil {
		return nil, err
	}
	if d.Method == "" {
		d.Method = http.MethodPost
	}
	ts := ""
	if s.hasTimestamp() {
		ts = formatTimestamp(s.TimestampFormat, d.Timestamp)
	}
	out := make(http.Header)
	for name, vals := range d.Header {
		if len(vals) > 0 {
			out.Set(name, vals[0])
		}
	}
	if s.TimestampHeader != "" {
		out.Set(s.TimestampHeader, ts)
	}
	if s.IDHeader != "" && d.ID != "" {
		out.Set(s.IDHeader, d.ID)
	}
	if s.Algorithm == AlgorithmToken {
		out.Set(s.SignatureHeader, secret)
		return out, nil
	}
	for _, rh := range s.requiredHeaders {
		out.Set(rh.Name, rh.Value)
	}
	if s.signedHeaderList != "" && out.Get(s.signedHeaderList) == "" {
		// The fewest headers a sender may sign: the list and the time.
		out.Set(s.signedHeaderList, strings.ToLower(s.signedHeaderList)+","+strings.ToLower(s.TimestampHeader))
	}
	vals := payloadValues{body: d.Body, id: d.ID, timestamp: ts, method: d.Method, url: d.URL, header: out}
	if s.Payload.Uses(TokenPath) {
		u, err := url.Parse(d.URL)
		if err != nil || d.URL == "" {
			return nil, fmt.Errorf("the scheme signs the path: give the URL")
		}
		vals.path = requestPath(&http.Request{URL: u})
	}
	if s.Payload.Uses(TokenForm) {
		if strings.HasPrefix(out.Get("Content-Type"), "application/x-www-form-urlencoded") {
			var ok bool
			if vals.form, ok = appendSortedForm(nil, d.Body); !ok {
				return nil, fmt.Errorf("the body is not form-encoded")
			}
		}
	}
	var scratch []byte
	var raw []byte
	if priv != nil {
		var msg appender
		s.Payload.writeTo(&msg, &vals, &scratch)
		if raw, err = signAsym(s.Algorithm, priv, msg); err != nil {
			return nil, err
		}
	} else {
		var mac hash.Hash
		if s.SettingsHeader != "" && strings.Contains(out.Get(s.SettingsHeader), "algorithm=HMAC_SHA256") {
			mac = hmac.New(sha256.New, key)
		} else if s.Algorithm == AlgorithmSHA256 {
			mac = s.newHash()
			mac.Write(key)
		} else {
			mac = hmac.New(s.newHash, key)
		}
		s.Payload.writeTo(mac, &vals, &scratch)
		raw = mac.Sum(nil)
	}
	sig := s.Prefix + string(s.Encoding.encode(nil, raw))
	if s.timestampInSignature() {
		sig = s.TimestampKey + "=" + ts + string(s.Separator) + sig
	}
	out.Set(s.SignatureHeader, sig)
	return out, nil
}
