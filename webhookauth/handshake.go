package webhookauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
)

// Handshake describes how a provider checks an endpoint before (and while)
// it sends deliveries, and what the gate answers for the backend. A preset
// with a handshake answers it in webhook_auth by default; `handshake off`
// passes it on instead.
//
// Signed handshakes (Zoom, Twitch, Discord, Slack, Okta) are verified like
// any delivery first, so a forged one is refused like any forged delivery.
// Unsigned ones (X, Meta, Dropbox, Microsoft Graph) are the attack surface:
// they are answered only in their exact documented shape (method, parameter
// names, each once, a bounded value from a bounded alphabet), as text/plain
// or JSON with X-Content-Type-Options: nosniff; anything else is treated as
// an ordinary request, and so refused.
type Handshake struct {
	// Summary says in one line what is asked and what is answered, for
	// the README.
	Summary string
	// Method is the handshake request's method.
	Method string
	// Signed: verify the request like a delivery before answering.
	Signed bool

	// Unsigned requests: Param is the query parameter that carries the
	// challenge, exactly once. Fixed are parameters that must be present
	// with the given value (Meta's hub.mode=subscribe), TokenParam the one
	// that carries the verify_token (Meta), Optional the others allowed,
	// each at most once. No other parameter may appear.
	Param      string
	Fixed      []QueryValue
	TokenParam string
	Optional   []string
	// Header, instead of Param, carries the challenge (Okta's signed GET,
	// Worldline's unsigned one).
	Header string

	// BodyField, on an unsigned POST, names the only member of the JSON
	// object body that carries the challenge (monday.com's
	// {"challenge": …}); the body must be that object and nothing else,
	// at most maxChallengeBody bytes of declared length, on a request
	// without the Unless header (the sender's credential: one that
	// carries it is verified first, and answered when it verifies).
	BodyField string
	Unless    string

	// EnrollParam, on an unsigned handshake carried in Header (Asana's
	// X-Hook-Secret), names the query parameter with the one-time token
	// an operator armed: the handshake sets the secret later deliveries
	// are verified with, so only an armed one is answered (see asana.go).
	EnrollParam string

	// Signed requests: the handshake is the verified request whose header
	// WhenHeader equals WhenValue, or whose JSON body member WhenField
	// (a dotted path) is the JSON value WhenValue (`1`, `"url_verification"`).
	WhenHeader string
	WhenField  string
	WhenValue  string
	// ChallengeField is the JSON body member that carries the challenge.
	ChallengeField string

	// Charset is the alphabet the challenge must be written in, MaxLen
	// its longest length in bytes.
	Charset Charset
	MaxLen  int

	// Answer is what the gate sends back: the challenge as text, as a JSON
	// member named AnswerKey, a fixed JSON body (AnswerBody), or a value
	// computed from the challenge with the key.
	Answer     Answer
	AnswerKey  string
	AnswerBody string
}

// QueryValue is a query parameter with the value it must have.
type QueryValue struct{ Name, Value string }

// Answer is the kind of answer to a handshake.
type Answer uint8

const (
	// AnswerText: 200 text/plain, the challenge as the body.
	AnswerText Answer = iota
	// AnswerJSON: 200 application/json, {"<AnswerKey>": challenge}.
	AnswerJSON
	// AnswerFixed: 200 application/json, AnswerBody.
	AnswerFixed
	// AnswerZoom: {"plainToken": challenge, "encryptedToken": hex
	// HMAC-SHA256 of the challenge under the secret that verified it}.
	AnswerZoom
	// AnswerCRC: {"response_token": "sha256=" + base64 HMAC-SHA256 of the
	// challenge under the first secret} (X's CRC).
	AnswerCRC
	// AnswerEmpty: 200 with no body, to a request that carries nothing
	// (Mandrill's HEAD when a webhook is added).
	AnswerEmpty
	// AnswerEchoHeader: 200 with no body and the challenge in the
	// handshake's Header (Asana's X-Hook-Secret).
	AnswerEchoHeader
)

// Charset is an alphabet a challenge must be written in.
type Charset uint8

const (
	// CharsetToken: letters, digits and - _ . ~ + / = (random tokens,
	// base64 and base64url, UUIDs). No JSON object, array or string can
	// be written in it.
	CharsetToken Charset = iota
	// CharsetDigits: decimal digits (Meta's hub.challenge).
	CharsetDigits
	// CharsetText: printable ASCII, space included, but not < > " ' & `
	// or backslash (Microsoft Graph's validation sentence, Twitch's and
	// Slack's challenges).
	CharsetText
)

// describe names the charset, for the README.
func (c Charset) describe() string {
	switch c {
	case CharsetDigits:
		return "digits"
	case CharsetText:
		return "printable ASCII but no HTML or quote characters"
	}
	return "letters, digits and `-_.~+/=`"
}

// allows reports whether s is written in the charset.
func (c Charset) allows(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		alnum := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
		var ok bool
		switch c {
		case CharsetToken:
			ok = alnum || strings.IndexByte("-_.~+/=", b) >= 0
		case CharsetDigits:
			ok = b >= '0' && b <= '9'
		case CharsetText:
			ok = b >= ' ' && b <= '~' && strings.IndexByte("<>\"'&`\\", b) < 0
		}
		if !ok {
			return false
		}
	}
	return true
}

// challengeOK reports whether a challenge has the shape the handshake
// allows.
func (hs *Handshake) challengeOK(c string) bool {
	return c != "" && len(c) <= hs.MaxLen && hs.Charset.allows(c)
}

// unsignedMatch is an unsigned handshake request recognised by its shape.
type unsignedMatch struct {
	challenge string
	token     string // the verify_token sent, where the handshake has one
}

// matchUnsigned reports whether r is the handshake in its exact
// documented shape: the method, no body, and only the documented query
// parameters, each once, the challenge within its alphabet and length.
// Any body means it is not: one declared, or one whose length is unknown
// (chunked on HTTP/1.1, an HTTP/2 stream left open), whatever the method.
func (hs *Handshake) matchUnsigned(r *http.Request) (unsignedMatch, bool) {
	var m unsignedMatch
	if hs.Signed || hs.BodyField != "" || hs.EnrollParam != "" || r.Method != hs.Method || hasBody(r) || r.URL == nil {
		return m, false
	}
	if hs.Answer == AnswerEmpty {
		// Nothing to echo: the bare request, no query.
		return m, r.URL.RawQuery == ""
	}
	if hs.Header != "" {
		// The challenge is in a header (Worldline's GET): that header
		// once, and no query at all.
		vals := r.Header.Values(hs.Header)
		if len(vals) != 1 || r.URL.RawQuery != "" {
			return m, false
		}
		m.challenge = vals[0]
		return m, hs.challengeOK(m.challenge)
	}
	var seenBuf [8]string
	seen := seenBuf[:0]
	fixed := 0
	for raw := r.URL.RawQuery; raw != ""; {
		var param string
		param, raw, _ = strings.Cut(raw, "&")
		if strings.IndexByte(param, ';') >= 0 {
			return m, false
		}
		k, v, _ := strings.Cut(param, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || slices.Contains(seen, k) || len(seen) == cap(seen) {
			return m, false
		}
		seen = append(seen, k)
		want, isFixed := hs.fixedValue(k)
		switch {
		case k == hs.Param:
			m.challenge = v
		case k == hs.TokenParam && k != "":
			m.token = v
		case isFixed:
			if want != v {
				return m, false
			}
			fixed++
		case slices.Contains(hs.Optional, k):
			if len(v) > hs.MaxLen {
				return m, false
			}
		default:
			return m, false
		}
	}
	if !slices.Contains(seen, hs.Param) || fixed != len(hs.Fixed) || (hs.TokenParam != "" && !slices.Contains(seen, hs.TokenParam)) {
		return m, false
	}
	return m, hs.challengeOK(m.challenge)
}

// maxChallengeBody bounds the body of an unsigned handshake carried in
// the body: monday.com's is under 100 bytes.
const maxChallengeBody = 1024

// mayBeBodyChallenge reports whether r may be an unsigned handshake
// carried in its body, before the body is read: the method, no Unless
// header, and a declared length within maxChallengeBody.
func (hs *Handshake) mayBeBodyChallenge(r *http.Request) bool {
	return hs.BodyField != "" && r.Method == hs.Method && len(r.Header.Values(hs.Unless)) == 0 &&
		r.ContentLength > 0 && r.ContentLength <= maxChallengeBody
}

// matchBody returns the challenge when body is exactly a JSON object
// with the one member BodyField, a string in the handshake's charset.
func (hs *Handshake) matchBody(body []byte) (string, bool) {
	if hs.BodyField == "" || len(body) > maxChallengeBody || !json.Valid(body) {
		return "", false
	}
	val, res := jsonMember(body, hs.BodyField)
	if res != jsonFound || len(val) == 0 || val[0] != '"' {
		return "", false
	}
	// One member only: after the first member's value comes the end.
	i := skipSpace(body, 0) + 1
	i = skipSpace(body, stringEnd(body, skipSpace(body, i)))
	i = skipSpace(body, valueEnd(body, skipSpace(body, i+1)))
	if i >= len(body) || body[i] != '}' {
		return "", false
	}
	c, ok := stringValue(val)
	return c, ok && hs.challengeOK(c)
}

// hasBody reports whether r carries a body or may: a declared length
// other than zero, or an unknown one (-1, chunked), or a
// Transfer-Encoding at all.
func hasBody(r *http.Request) bool {
	return r.ContentLength != 0 || len(r.TransferEncoding) > 0
}

// fixedValue returns the value the fixed parameter name must have.
func (hs *Handshake) fixedValue(name string) (string, bool) {
	for _, f := range hs.Fixed {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

// mayBeSigned reports whether r may be this signed handshake, before it
// is verified: a request with the handshake's method and, for one
// carried in a header (Okta's GET), that header.
func (hs *Handshake) mayBeSigned(r *http.Request) bool {
	if !hs.Signed || r.Method != hs.Method {
		return false
	}
	return hs.Header == "" || len(r.Header.Values(hs.Header)) == 1
}

// matchVerified returns the challenge when the verified request r, with
// body, is this signed handshake.
func (hs *Handshake) matchVerified(r *http.Request, body []byte) (string, bool) {
	if !hs.mayBeSigned(r) {
		return "", false
	}
	switch {
	case hs.WhenHeader != "":
		if vals := r.Header.Values(hs.WhenHeader); len(vals) != 1 || vals[0] != hs.WhenValue {
			return "", false
		}
	case hs.WhenField != "":
		val, res := jsonLookup(body, hs.WhenField)
		if res != jsonFound || !jsonEqual(val, hs.WhenValue) {
			return "", false
		}
	}
	var challenge string
	switch {
	case hs.Header != "":
		challenge = r.Header.Get(hs.Header)
	case hs.ChallengeField != "":
		val, res := jsonLookup(body, hs.ChallengeField)
		if res != jsonFound || len(val) == 0 || val[0] != '"' {
			return "", false
		}
		var ok bool
		if challenge, ok = stringValue(val); !ok {
			return "", false
		}
	case hs.Answer != AnswerFixed:
		return "", false
	}
	if hs.Answer != AnswerFixed && !hs.challengeOK(challenge) {
		return "", false
	}
	return challenge, true
}

// jsonEqual reports whether the raw JSON value val is the JSON value lit:
// the same string once unescaped, or the same literal bytes.
func jsonEqual(val []byte, lit string) bool {
	if len(lit) > 0 && lit[0] == '"' {
		if len(val) == 0 || val[0] != '"' {
			return false
		}
		a, ok1 := stringValue(val)
		b, ok2 := stringValue([]byte(lit))
		return ok1 && ok2 && a == b
	}
	return string(val) == lit
}

// answer writes the handshake's answer to challenge; key is the secret
// that computes it, for the answers that need one.
func (hs *Handshake) answer(w http.ResponseWriter, challenge string, key []byte) error {
	var body []byte
	ctype := "application/json"
	switch hs.Answer {
	case AnswerText:
		ctype, body = "text/plain", []byte(challenge)
	case AnswerEmpty:
		ctype = "text/plain"
	case AnswerEchoHeader:
		ctype = "text/plain"
		w.Header().Set(hs.Header, challenge)
	case AnswerJSON:
		body = jsonObject(hs.AnswerKey, challenge)
	case AnswerFixed:
		body = []byte(hs.AnswerBody)
	case AnswerZoom:
		mac := hmacSHA256(key, challenge)
		body = jsonObject("plainToken", challenge, "encryptedToken", hex.EncodeToString(mac))
	case AnswerCRC:
		mac := hmacSHA256(key, challenge)
		body = jsonObject("response_token", "sha256="+base64.StdEncoding.EncodeToString(mac))
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(body)
	return err
}

func hmacSHA256(key []byte, msg string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msg))
	return mac.Sum(nil)
}

// jsonObject writes {"k1":"v1",…} from name, value pairs, escaped as
// encoding/json escapes strings (HTML characters included). The values
// are challenges in a charset without quotes or backslashes, and hex or
// base64 digests.
func jsonObject(kv ...string) []byte {
	b := []byte{'{'}
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = gate.AppendJSONString(b, kv[i])
		b = append(b, ':')
		b = gate.AppendJSONString(b, kv[i+1])
	}
	return append(b, '}')
}
