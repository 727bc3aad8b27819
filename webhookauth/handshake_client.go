package webhookauth

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"time"
)

// HandshakeProbe is a provider's handshake as the provider sends it, and
// the answer the endpoint must give: what `caddy webhook handshake` sends
// to test an endpoint before registering it. It is not on the request
// path.
type HandshakeProbe struct {
	Request *http.Request
	// Challenge is the random value the request carries; for a sender
	// whose token is the challenge (Adobe Sign), the secret, and then
	// SecretChallenge is set so that it is never printed.
	Challenge       string
	SecretChallenge bool
	// Status, ContentType and Body are the expected answer.
	Status      int
	ContentType string
	Body        []byte
}

// Probe builds the preset's handshake to target with a fresh challenge:
// signed with secret (a private key for public-key presets) where the
// provider signs it, carrying verifyToken where it carries one (Meta).
func (p Preset) Probe(target, secret, verifyToken string, now time.Time) (*HandshakeProbe, error) {
	hs := p.Handshake
	if hs == nil {
		return nil, fmt.Errorf("%s has no handshake (those that do: %s)", p.Name, strings.Join(handshakeNames(), ", "))
	}
	if hs.EnrollParam != "" {
		return nil, fmt.Errorf("%s's handshake sets the secret the gate learns, once: a probe would spend the enrollment; arm one with `caddy webhook asana arm` and create the webhook in %s instead", p.Name, p.Name)
	}
	if hs.TokenParam != "" && verifyToken == "" {
		return nil, fmt.Errorf("%s's handshake carries the verify token: give it", p.Name)
	}
	// A JWT sender's handshake is probed without its token (as monday.com
	// sends it for a webhook created with a personal API token).
	s := &Scheme{}
	if p.Compiled() {
		var err error
		if s, err = p.Scheme.Compile(); err != nil {
			return nil, err
		}
	}
	challenge := freshChallenge(hs.Charset)
	if hs.Answer == AnswerEmpty {
		challenge = ""
	}
	if hs.Header != "" && http.CanonicalHeaderKey(hs.Header) == s.SignatureHeader {
		// The token itself is the challenge (Adobe Sign's client id).
		challenge = secret
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("the endpoint %q is not an http or https URL", target)
	}
	var body []byte
	header := http.Header{}
	if hs.Param != "" {
		q := u.Query()
		q.Set(hs.Param, challenge)
		for _, f := range hs.Fixed {
			q.Set(f.Name, f.Value)
		}
		if hs.TokenParam != "" {
			q.Set(hs.TokenParam, verifyToken)
		}
		u.RawQuery = q.Encode()
	}
	if !hs.Signed && hs.Header != "" {
		header.Set(hs.Header, challenge)
	}
	if hs.BodyField != "" {
		body = jsonObject(hs.BodyField, challenge)
		header.Set("Content-Type", "application/json")
	}
	if hs.Signed {
		switch {
		case hs.Header != "":
			header.Set(hs.Header, challenge)
		default:
			doc := map[string]any{}
			if hs.WhenField != "" {
				setPath(doc, hs.WhenField, json.RawMessage(hs.WhenValue))
			}
			if hs.ChallengeField != "" {
				setPath(doc, hs.ChallengeField, challenge)
			}
			if body, err = json.Marshal(doc); err != nil {
				return nil, err
			}
			header.Set("Content-Type", "application/json")
		}
		if hs.WhenHeader != "" {
			header.Set(hs.WhenHeader, hs.WhenValue)
		}
		d := Delivery{Body: body, Timestamp: now, Method: hs.Method, URL: u.String(), Header: header}
		if s.IDHeader != "" {
			d.ID = "handshake-" + freshChallenge(CharsetToken)[:12]
		}
		signed, err := s.SignHeaders(secret, d)
		if err != nil {
			return nil, fmt.Errorf("signing %s's handshake: %w", p.Name, err)
		}
		for k, v := range signed {
			header[k] = v
		}
	}
	req, err := http.NewRequest(hs.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = header
	if hs.Method == http.MethodPost && body == nil {
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	// The expected answer is the one the gate gives.
	var key []byte
	if hs.Answer == AnswerZoom || hs.Answer == AnswerCRC {
		if key, err = s.SecretEncoding.Key(secret); err != nil {
			return nil, err
		}
	}
	rec := httptest.NewRecorder()
	if err := hs.answer(rec, challenge, key); err != nil {
		return nil, err
	}
	return &HandshakeProbe{Request: req, Challenge: challenge, SecretChallenge: challenge == secret, Status: rec.Code,
		ContentType: rec.Header().Get("Content-Type"), Body: rec.Body.Bytes()}, nil
}

// Check compares an endpoint's answer with the expected one: the status,
// the media type, and the body (as JSON where it is JSON, so spacing and
// member order do not matter). It returns what differs, or nil.
func (pr *HandshakeProbe) Check(status int, contentType string, body []byte) error {
	if status != pr.Status {
		return fmt.Errorf("status %d, want %d", status, pr.Status)
	}
	media, _, _ := strings.Cut(contentType, ";")
	if !strings.EqualFold(strings.TrimSpace(media), pr.ContentType) {
		return fmt.Errorf("Content-Type %q, want %s", contentType, pr.ContentType)
	}
	if pr.ContentType == "application/json" {
		var got, want any
		if json.Unmarshal(body, &got) != nil {
			return fmt.Errorf("the body is not JSON: %q", truncate(body))
		}
		json.Unmarshal(pr.Body, &want)
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("the body is %s, want %s", truncate(body), pr.Body)
		}
		return nil
	}
	if !bytes.Equal(body, pr.Body) {
		return fmt.Errorf("the body is %q, want %q", truncate(body), pr.Body)
	}
	return nil
}

func truncate(b []byte) []byte {
	if len(b) > 200 {
		return append(b[:200:200], "…"...)
	}
	return b
}

// setPath sets a dotted path in nested objects.
func setPath(doc map[string]any, path string, v any) {
	for {
		name, rest, more := cutDot(path)
		if !more {
			doc[name] = v
			return
		}
		child, ok := doc[name].(map[string]any)
		if !ok {
			child = map[string]any{}
			doc[name] = child
		}
		doc, path = child, rest
	}
}

// freshChallenge is a random challenge in the charset.
func freshChallenge(c Charset) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	alphabet := letters
	if c == CharsetDigits {
		alphabet = "0123456789"
	}
	var b [24]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	if c == CharsetDigits && b[0] == '0' {
		b[0] = '1'
	}
	return string(b[:])
}
