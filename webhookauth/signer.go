package webhookauth

import (
	"crypto/hmac"
	"net/http"
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
// subcommand use it; it is not on the request path.
func (s *Scheme) SignHeaders(secret string, d Delivery) (http.Header, error) {
	key, err := s.SecretEncoding.Key(secret)
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
	vals := payloadValues{body: d.Body, id: d.ID, timestamp: ts, method: d.Method, url: d.URL, header: out}
	mac := hmac.New(s.newHash, key)
	var scratch []byte
	s.Payload.writeTo(mac, &vals, &scratch)
	sig := s.Prefix + string(s.Encoding.encode(nil, mac.Sum(nil)))
	if s.timestampInSignature() {
		sig = s.TimestampKey + "=" + ts + string(s.Separator) + sig
	}
	out.Set(s.SignatureHeader, sig)
	return out, nil
}
