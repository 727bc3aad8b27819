package webhookauth

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// jwtHandler is a handler for a JWT vector: its secret, audience and
// time, with the preset's leeway.
func jwtHandler(t *testing.T, v moreVector, configure func(*Handler)) *Handler {
	t.Helper()
	h := &Handler{Provider: v.Provider, Secrets: []string{v.Secret}, Audience: v.Audience}
	if configure != nil {
		configure(h)
	}
	h = newHandler(t, h)
	h.now = func() time.Time { return time.Unix(v.VerifyAt, 0) }
	return h
}

// jwtVectors are the delivery vectors of the JWT presets.
func jwtVectors(t *testing.T) []moreVector {
	var out []moreVector
	for _, v := range loadVectors(t, "providers-extra.json") {
		if p, err := LookupPreset(v.Provider); err == nil && p.JWT != nil && v.Kind == "delivery" {
			out = append(out, v)
		}
	}
	return out
}

// Every monday.com vector, made and checked with jsonwebtoken, through
// the handler: the valid ones reach the backend byte for byte with the
// token, the others are refused 401 with the reason that says why.
func TestJWTVectors(t *testing.T) {
	seen := map[string][2]int{}
	want := map[string]Reason{
		"monday-other-secret":   ReasonSignatureInvalid,
		"monday-expired":        ReasonTimestampOutOfWindow,
		"monday-other-audience": ReasonSignatureInvalid,
		"monday-hs512":          ReasonSignatureMalformed,
		"monday-no-exp":         ReasonTimestampInvalid,
		"monday-alg-none":       ReasonSignatureMalformed,
	}
	for _, v := range jwtVectors(t) {
		if v.CheckedBy == "" {
			t.Fatalf("%s: no checked_by", v.Name)
		}
		h := jwtHandler(t, v, nil)
		r, body := v.request()
		w, repl, be := dedupSend(t, h, r)
		valid := v.Expect == "valid"
		if valid != (be.calls == 1) || (valid && !bytes.Equal(be.body, body)) {
			t.Errorf("%s: expect %s, got %d %s", v.Name, v.Expect, w.Code, w.Body.String())
		}
		if valid {
			if got, _ := repl.GetString("http.webhook.event"); got != "update_column_value" {
				t.Errorf("%s: event %q", v.Name, got)
			}
			if got, _ := repl.GetString("http.webhook.id"); got != "8b1f3c1e0f6d4e0a9c2b7d5e4f3a2b1c" {
				t.Errorf("%s: id %q", v.Name, got)
			}
		} else {
			if w.Code != http.StatusUnauthorized {
				t.Errorf("%s: refused with %d, want 401", v.Name, w.Code)
			}
			if reason, ok := want[v.Name]; !ok || !strings.Contains(w.Body.String(), string(reason)) {
				t.Errorf("%s: %s, want %s", v.Name, w.Body.String(), reason)
			}
		}
		c := seen[v.Provider]
		if valid {
			c[0]++
		} else {
			c[1]++
		}
		seen[v.Provider] = c
	}
	for _, p := range Catalogue() {
		if c := seen[p.Name]; p.JWT != nil && (c[0] == 0 || c[1] == 0) {
			t.Errorf("%s: %d valid and %d invalid vectors, want both", p.Name, c[0], c[1])
		}
	}
}

// The token's checks one by one, on tokens written by hand where
// jsonwebtoken would not write them.
func TestJWTChecks(t *testing.T) {
	secret := []byte("5f2c9d1e8b7a40c6a3e1f09d2b4c7e8a")
	old := []byte("0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e")
	now := time.Unix(1_796_212_860, 0)
	iat := now.Add(-time.Minute)
	s := &jwtScheme{header: "Authorization", keys: [][]byte{secret, old}, audience: "https://hooks.example.com/monday", leeway: time.Minute}
	enc := base64.RawURLEncoding.EncodeToString
	token := func(header, claims string, key []byte) string {
		signed := enc([]byte(header)) + "." + enc([]byte(claims))
		return signed + "." + enc(hmacSHA256(key, signed))
	}
	const hdr = `{"alg":"HS256","typ":"JWT"}`
	aud := `"aud":"https://hooks.example.com/monday"`
	claims := func(extra string) string {
		return `{` + aud + `,"iat":1796212800,"exp":1796213100` + extra + `}`
	}
	for _, c := range []struct {
		name string
		tok  string
		want Reason // "" for valid
	}{
		{"ours", SignJWT(secret, s.audience, iat, 5*time.Minute), ""},
		{"the old secret of a rotation", SignJWT(old, s.audience, iat, 5*time.Minute), ""},
		{"aud in an array", token(hdr, `{"aud":["x","https://hooks.example.com/monday"],"exp":1796213100}`, secret), ""},
		{"fractional exp", token(hdr, `{`+aud+`,"exp":1796213100.5}`, secret), ""},
		{"another secret", SignJWT([]byte("another-secret-0123456789"), s.audience, iat, 5*time.Minute), ReasonSignatureInvalid},
		{"alg in capitals", token(`{"ALG":"HS256"}`, claims(""), secret), ReasonSignatureMalformed},
		{"alg twice", token(`{"alg":"none","alg":"HS256"}`, claims(""), secret), ReasonSignatureMalformed},
		{"alg Hs256", token(`{"alg":"Hs256"}`, claims(""), secret), ReasonSignatureMalformed},
		{"crit", token(`{"alg":"HS256","crit":["b64"],"b64":false}`, claims(""), secret), ReasonSignatureMalformed},
		{"header not JSON", token(`{"alg":"HS256"`, claims(""), secret), ReasonSignatureMalformed},
		{"claims not JSON", token(hdr, `{"exp":1796213100`, secret), ReasonSignatureMalformed},
		{"exp twice", token(hdr, `{`+aud+`,"exp":1,"exp":1796213100}`, secret), ReasonTimestampInvalid},
		{"exp as a string", token(hdr, `{`+aud+`,"exp":"1796213100"}`, secret), ReasonTimestampInvalid},
		{"exp absurd", token(hdr, `{`+aud+`,"exp":1e300}`, secret), ReasonTimestampInvalid},
		{"exp passed", token(hdr, `{`+aud+`,"exp":1796212790}`, secret), ReasonTimestampOutOfWindow},
		{"exp within the leeway", token(hdr, `{`+aud+`,"exp":1796212830}`, secret), ""},
		{"iat in the future", token(hdr, `{`+aud+`,"iat":1796213000,"exp":1796213300}`, secret), ReasonTimestampOutOfWindow},
		{"nbf in the future", token(hdr, `{`+aud+`,"nbf":1796213000,"exp":1796213300}`, secret), ReasonTimestampOutOfWindow},
		{"no aud", token(hdr, `{"exp":1796213100}`, secret), ReasonSignatureInvalid},
		{"aud twice", token(hdr, `{"aud":"x",`+aud+`,"exp":1796213100}`, secret), ReasonSignatureInvalid},
		{"aud with another path", token(hdr, `{"aud":"https://hooks.example.com/monday/","exp":1796213100}`, secret), ReasonSignatureInvalid},
		{"padding", SignJWT(secret, s.audience, iat, 5*time.Minute) + "=", ReasonSignatureMalformed},
		{"a short signature", token(hdr, claims(""), secret)[:len(token(hdr, claims(""), secret))-4], ReasonSignatureMalformed},
		{"no signature", strings.TrimRight(token(hdr, claims(""), secret), "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"), ReasonSignatureMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			rej := s.check(c.tok, now)
			if c.want == "" && rej != nil {
				t.Fatalf("refused: %v", rej)
			}
			if c.want != "" && (rej == nil || rej.Reason != c.want) {
				t.Fatalf("got %v, want %s", rej, c.want)
			}
		})
	}
	// Any audience with '*'.
	anyAud := *s
	anyAud.audience = "*"
	if rej := anyAud.check(token(hdr, `{"aud":"https://elsewhere.example/","exp":1796213100}`, secret), now); rej != nil {
		t.Fatalf("audience *: %v", rej)
	}
}

// What begin refuses from the headers alone, before the body is read.
func TestJWTBegin(t *testing.T) {
	s := &jwtScheme{header: "Authorization"}
	for _, c := range []struct {
		vals []string
		want Reason
	}{
		{nil, ReasonSignatureMissing},
		{[]string{"a.b.c", "a.b.c"}, ReasonSignatureMalformed},
		{[]string{""}, ReasonSignatureMalformed},
		{[]string{"Bearer "}, ReasonSignatureMalformed},
		{[]string{"a.b"}, ReasonSignatureMalformed},
		{[]string{"a.b.c.d"}, ReasonSignatureMalformed},
		{[]string{strings.Repeat("a", maxJWTLength) + ".b.c"}, ReasonSignatureMalformed},
		{[]string{"a.b.c"}, ""},
		{[]string{"Bearer a.b.c"}, ""},
		{[]string{"bearer a.b.c"}, ""},
	} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header["Authorization"] = c.vals
		rej := s.begin(r)
		if (c.want == "") != (rej == nil) || (rej != nil && rej.Reason != c.want) {
			t.Errorf("%q: %v, want %q", c.vals, rej, c.want)
		}
	}
}

// The configuration monday takes, and what it refuses.
func TestJWTConfig(t *testing.T) {
	for _, c := range []struct {
		h    Handler
		want string
	}{
		{Handler{Provider: "monday", Secrets: []string{"s-0123456789abcdef"}}, "'audience' is required"},
		{Handler{Provider: "monday", Audience: "*"}, "at least one 'secret'"},
		{Handler{Provider: "monday", Secrets: []string{"s-0123456789abcdef"}, Audience: "*", ServiceAccount: "x"}, "takes 'audience'"},
		{Handler{Provider: "monday", Secrets: []string{"s-0123456789abcdef"}, Audience: "*", SchemeConfig: SchemeConfig{SignatureHeader: "X"}}, "the scheme is fixed"},
		{Handler{Provider: "github", Secrets: []string{"s-0123456789abcdef"}, Audience: "*"}, "apply to sns, paypal and pubsub"},
		{Handler{Provider: "monday", Secrets: []string{"s-0123456789abcdef"}, Audience: "https://hooks.example.com/monday"}, ""},
	} {
		err := c.h.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.h, err, c.want)
		}
	}
	off := false
	h := &Handler{Provider: "monday", Secrets: []string{"s-0123456789abcdef"}, Audience: "*", ForwardSignature: &off}
	if err := h.Provision(caddy.Context{}); err == nil || !strings.Contains(err.Error(), "forward_signature") {
		t.Errorf("forward_signature off: %v", err)
	}
}

// monday.com's challenge: answered in its exact shape without a token,
// and with a token only when the token verifies; anything near it is
// refused as unsigned, with the body read only when it is small.
func TestMondayChallenge(t *testing.T) {
	var vec, delivery moreVector
	for _, v := range loadVectors(t, "providers-extra.json") {
		switch {
		case v.Provider == "monday" && v.Kind == "challenge":
			vec = v
		case v.Name == "monday-valid":
			delivery = v
		}
	}
	tok := delivery.Headers["Authorization"]
	h := jwtHandler(t, delivery, nil)
	send := func(method, body string, header http.Header) (*httptest.ResponseRecorder, *backend) {
		t.Helper()
		r := httptest.NewRequest(method, "https://hooks.example.com/monday", strings.NewReader(body))
		for k, v := range header {
			r.Header[k] = v
		}
		w, _, be := dedupSend(t, h, r)
		return w, be
	}
	const c = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
	for _, body := range []string{vec.Body, `{"challenge":"` + c + `"}`, " {\n \"challenge\" : \"" + c + "\" } "} {
		for _, header := range []http.Header{nil, {"Authorization": {tok}}} {
			w, be := send(http.MethodPost, body, header)
			if w.Code != http.StatusOK || w.Body.String() != `{"challenge":"`+c+`"}` || be.calls != 0 || w.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%q (token %v): %d %s, backend %d", body, header != nil, w.Code, w.Body.String(), be.calls)
			}
		}
	}
	for _, c := range []struct {
		name   string
		method string
		body   string
		header http.Header
		want   int
	}{
		{"another member", http.MethodPost, `{"challenge":"` + c + `","event":{}}`, nil, 401},
		{"challenge twice", http.MethodPost, `{"challenge":"a","challenge":"` + c + `"}`, nil, 401},
		{"Challenge", http.MethodPost, `{"Challenge":"` + c + `"}`, nil, 401},
		{"not a string", http.MethodPost, `{"challenge":123}`, nil, 401},
		{"outside the charset", http.MethodPost, `{"challenge":"<script>"}`, nil, 401},
		{"an escape", http.MethodPost, `{"challenge":"a\u0022b"}`, nil, 401},
		{"too long", http.MethodPost, `{"challenge":"` + strings.Repeat("a", 257) + `"}`, nil, 401},
		{"an array", http.MethodPost, `[{"challenge":"` + c + `"}]`, nil, 401},
		{"trailing bytes", http.MethodPost, `{"challenge":"` + c + `"}x`, nil, 401},
		{"a body over 1 KiB", http.MethodPost, `{"challenge":"` + c + `"}` + strings.Repeat(" ", 1100), nil, 401},
		{"a bad token", http.MethodPost, `{"challenge":"` + c + `"}`, http.Header{"Authorization": {tok + "x"}}, 401},
		{"an empty token", http.MethodPost, `{"challenge":"` + c + `"}`, http.Header{"Authorization": {""}}, 401},
		{"GET", http.MethodGet, "", nil, 405},
		{"no body, the challenge in the query", http.MethodPost, "", nil, 401},
	} {
		w, be := send(c.method, c.body, c.header)
		if w.Code != c.want || be.calls != 0 || strings.Contains(w.Body.String(), "3eZbrw") {
			t.Errorf("%s: %d %s, backend %d", c.name, w.Code, w.Body.String(), be.calls)
		}
	}
	// Of unknown length (chunked), the body is not read for a challenge.
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(vec.Body))
	r.ContentLength = -1
	if w, _, be := dedupSend(t, h, r); w.Code != http.StatusUnauthorized || be.calls != 0 {
		t.Errorf("chunked: %d %s", w.Code, w.Body.String())
	}
	// With handshake off it goes to the backend as it came.
	off := false
	h = jwtHandler(t, delivery, func(h *Handler) { h.Handshake = &off })
	if w, be := send(http.MethodPost, vec.Body, nil); be.calls != 1 || string(be.body) != vec.Body {
		t.Errorf("handshake off: %d %s", w.Code, w.Body.String())
	}
}

// dedup keys on the unsigned triggerUuid with the body's digest: a
// retry is a duplicate, another body under the same id is not.
func TestMondayDedup(t *testing.T) {
	var v moreVector
	for _, x := range jwtVectors(t) {
		if x.Name == "monday-valid" {
			v = x
		}
	}
	h := jwtHandler(t, v, func(h *Handler) { h.Dedup = caddy.Duration(time.Hour) })
	for i, c := range []struct {
		body  string
		calls int
	}{{v.Body, 1}, {v.Body, 0}, {strings.Replace(v.Body, "Done", "Dome", 1), 1}} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(c.body))
		r.Header.Set("Authorization", v.Headers["Authorization"])
		if w, _, be := dedupSend(t, h, r); be.calls != c.calls {
			t.Errorf("delivery %d: %d %s, backend %d", i, w.Code, w.Body.String(), be.calls)
		}
	}
}

// FuzzJWT: any token is checked without a panic, and only one that
// carries the real MAC of its first two parts can pass.
func FuzzJWT(f *testing.F) {
	secret := []byte("5f2c9d1e8b7a40c6a3e1f09d2b4c7e8a")
	now := time.Unix(1_796_212_860, 0)
	f.Add(SignJWT(secret, "*", now, time.Minute))
	f.Add("Bearer " + SignJWT(secret, "a", now, time.Minute))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	s := &jwtScheme{header: "Authorization", keys: [][]byte{secret}, audience: "*", leeway: time.Minute}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header["Authorization"] = []string{header}
		if s.begin(r) != nil {
			return
		}
		tok := jwtToken(header)
		if s.check(tok, now) == nil {
			head, rest, _ := strings.Cut(tok, ".")
			payload, sig, _ := strings.Cut(rest, ".")
			if base64.RawURLEncoding.EncodeToString(hmacSHA256(secret, head+"."+payload)) != sig {
				t.Fatalf("%q passed without the MAC", header)
			}
		}
	})
}
