package webhookauth

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookauth/caddy-webhookauth/internal/keyfetch"
)

// The fuzz targets below cover every parser that reads sender-controlled
// or operator-controlled text. Their seed corpora live in
// f.Add calls and testdata/fuzz/<FuzzName>; go test runs them all, and
// ./scripts/test fuzzes each off CI.

// FuzzSignatureHeader feeds arbitrary signature header values to every
// preset: parsing must never panic, must stay within maxCandidates, and a
// header can only verify if it carries the real MAC.
func FuzzSignatureHeader(f *testing.F) {
	for _, seed := range []string{
		"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
		"t=1614265330,v1=abc,v1=def,v0=00",
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1a,xyz",
		"v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
		"", " ", ",,,", "t=,t=", "v1,", "v1=", "sha256=", "=====", "v1,====",
	} {
		f.Add(seed)
	}
	verifiers := map[string]*Verifier{}
	for _, name := range headerSigned() {
		verifiers[name] = presetVerifier(f, name, 0, testSecrets[name][0])
	}
	body := []byte(`{"a":1}`)
	f.Fuzz(func(t *testing.T, header string) {
		for name, v := range verifiers {
			r, _ := http.NewRequest(http.MethodPost, "/", nil)
			r.Header[v.scheme.SignatureHeader] = []string{header}
			r.Header.Set("Webhook-Id", "msg_1")
			r.Header.Set("Svix-Id", "msg_1")
			r.Header.Set("Webhook-Timestamp", "1800000000")
			r.Header.Set("Svix-Timestamp", "1800000000")
			r.Header.Set("X-Slack-Request-Timestamp", "1800000000")
			var c candidates
			if rej := v.scheme.parseSignature(r.Header[v.scheme.SignatureHeader], &c); rej == nil && c.n == 0 {
				t.Fatalf("%s: accepted %q with no signature", name, header)
			}
			if c.n > maxCandidates {
				t.Fatalf("%s: %d candidates", name, c.n)
			}
			if _, rej := verify(v, r, body, testNow); rej == nil && name != "gitlab" {
				t.Fatalf("%s: random header %q verified", name, header)
			}
		}
	})
}

// FuzzTimestamp checks the timestamp parser against strconv for the unix
// forms and never panics on any format.
func FuzzTimestamp(f *testing.F) {
	for _, seed := range []string{"1614265330", "0", "-1", "+5", "1e9", "99999999999999999999", "2026-11-28T04:00:00Z", " 1", "１２"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, format := range []TimestampFormat{TimestampUnix, TimestampUnixMS, TimestampRFC3339, TimestampISO8601} {
			ts, ok := parseTimestamp(format, v)
			if ok && format == TimestampUnix && formatTimestamp(format, ts) != strings.TrimLeft(v, "0") && strings.TrimLeft(v, "0") != "" {
				t.Fatalf("%q parsed as %v", v, ts)
			}
		}
	})
}

// FuzzTemplate parses arbitrary signed-payload templates; whatever parses
// must write the same bytes as a naive expansion.
func FuzzTemplate(f *testing.F) {
	for _, seed := range []string{"{timestamp}.{body}", "v0:{timestamp}:{body}", "{id}.{timestamp}.{body}", "{method} {url}{header.X-A}", "{", "}", "{}", "{header.}", "{{body}}", "a{body}b{body}c", "{http.request.method}", `{{"Body":{body_json},"T":{timestamp}}`, "{path}{{"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tmpl, err := ParseTemplate(src)
		if err != nil {
			return
		}
		vals := payloadValues{body: []byte("BODY"), id: "ID", timestamp: "TS", method: "POST", url: "URL", header: http.Header{}}
		var out bytes.Buffer
		var scratch []byte
		tmpl.writeTo(&out, &vals, &scratch)
		// "{{" is a literal '{': expand between them.
		parts := strings.Split(src, "{{")
		for i, part := range parts {
			for _, r := range []struct{ from, to string }{
				{"{http.request.method}", "POST"}, {"{body}", "BODY"}, {"{id}", "ID"}, {"{timestamp}", "TS"}, {"{method}", "POST"}, {"{url}", "URL"},
				{"{path}", ""}, {"{form}", ""}, {"{body_json}", `"BODY"`},
			} {
				part = strings.ReplaceAll(part, r.from, r.to)
			}
			parts[i] = part
		}
		naive := strings.Join(parts, "{")
		if !strings.Contains(src, "header.") && !strings.Contains(src, "json:") && !strings.Contains(src, "headers:") && out.String() != naive {
			t.Fatalf("template %q wrote %q, want %q", src, out.String(), naive)
		}
	})
}

// FuzzEncodingDecode compares the allocation-free decoders with the
// standard library's.
func FuzzEncodingDecode(f *testing.F) {
	for _, seed := range []string{"00ff", "0g", "AAAA", "AA==", "-_-_", "", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		var dst [64]byte
		for _, e := range []Encoding{EncodingHex, EncodingBase64, EncodingBase64URL} {
			n, ok := e.decode(dst[:], text)
			if !ok {
				continue
			}
			again := e.encode(nil, dst[:n])
			if e == EncodingHex {
				if !strings.EqualFold(string(again), text) {
					t.Fatalf("hex %q decoded to %x", text, dst[:n])
				}
				continue
			}
			if strings.TrimRight(string(again), "=") != strings.TrimRight(text, "=") {
				// base64 has non-canonical trailing bits; they decode
				// but do not round-trip. Accept only those.
				n2, ok2 := e.decode(dst[:], strings.TrimRight(string(again), "="))
				if !ok2 || n2 != n {
					t.Fatalf("%s %q decoded to %x, which encodes to %q", e, text, dst[:n], again)
				}
			}
		}
	})
}

// FuzzTopLevelString checks the JSON member scanner against
// encoding/json on inputs that are valid JSON objects.
func FuzzTopLevelString(f *testing.F) {
	for _, seed := range []string{
		`{"id":"evt_1","type":"a"}`, `{"data":{"id":"nested"},"id":"top"}`, `{"id":1}`, `{"a":[1,"}",{"b":"]"}],"id":"x\"y"}`,
		`[]`, `{`, `{"id"`, `{"id":"`, ` { "id" : "s" } `, `{"i\u0064":"esc"}`, `{"ID":"a","id":"b"}`, `{"\u0130d":"x"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := bodyString(body, "id")
		var doc map[string]any
		if err := jsonUnmarshal(body, &doc); err != nil {
			return // not a JSON object: any answer is acceptable as long as nothing panics
		}
		want, isStr := doc["id"].(string)
		if ok && (!isStr || got != want) {
			t.Fatalf("%q: got %q, encoding/json says %v", body, got, doc["id"])
		}
		// A Go backend decoding into a struct matches the name in any
		// letter case and keeps the last copy: whenever the scanner
		// answers, that backend reads the same value.
		var st struct{ ID any }
		if ok && (jsonUnmarshal(body, &st) != nil || st.ID != want) {
			t.Fatalf("%q: got %q, a struct field reads %v", body, got, st.ID)
		}
	})
}

// FuzzParsePublicKey: any text either parses into a key of the asked
// algorithm or is an error, never a panic.
func FuzzParsePublicKey(f *testing.F) {
	for _, s := range []string{
		"whpk_ZlN4eg7dSSqi0moX9hQUk3orrOouK3QVQSlJa248c/g=",
		"03898b7ea13e14305bb5967f1103d7c9a8925eb837f527801416e7dec7333734",
		"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvF",
		"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "-----BEGIN RSA PUBLIC KEY-----\n\n-----END RSA PUBLIC KEY-----", "", "whpk_", "zz",
	} {
		f.Add(s)
	}
	algs := []Algorithm{AlgorithmEd25519, AlgorithmECDSAP256, AlgorithmRSAPKCS1, AlgorithmRSAPSS}
	f.Fuzz(func(t *testing.T, text string) {
		for _, alg := range algs {
			k, err := ParsePublicKey(alg, text)
			if err == nil {
				if _, cerr := checkKey(alg, k); cerr != nil {
					t.Fatalf("%s accepted a key it refuses: %v", alg, cerr)
				}
			}
		}
	})
}

// FuzzSortedForm: the allocation-free canonicaliser agrees with one
// built on net/url.ParseQuery, and does not depend on the order of the
// parameters.
func FuzzSortedForm(f *testing.F) {
	for _, s := range []string{"a=1&b=2", "b=2&a=1", "Body=Hi+there%2C+caf%C3%A9", "a=%zz", "a&a=&a=1", "", "a=1;b=2", "&&a=%4", "%41=%42&A=b", "a=1&a=0&a="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		got, ok := appendSortedForm(nil, []byte(body))
		want, wantOK := referenceSortedForm(body)
		if ok != wantOK || string(got) != string(want) {
			t.Fatalf("%q: got %q, %v; net/url gives %q, %v", body, got, ok, want, wantOK)
		}
		if !ok {
			return
		}
		parts := strings.Split(body, "&")
		slices.Reverse(parts)
		again, ok := appendSortedForm(nil, []byte(strings.Join(parts, "&")))
		if !ok || string(again) != string(got) {
			t.Fatalf("%q: %q, reversed %q", body, got, again)
		}
	})
}

// referenceSortedForm is {form} written the obvious way.
func referenceSortedForm(body string) ([]byte, bool) {
	params, err := url.ParseQuery(body)
	if err != nil {
		return nil, false
	}
	var out []byte
	for _, k := range slices.Sorted(maps.Keys(params)) {
		vals := params[k]
		slices.Sort(vals)
		for _, v := range vals {
			out = append(append(out, k...), v...)
		}
	}
	return out, true
}

// FuzzJSONFields: reading fields and items from any body never panics,
// and on a valid document every field the scanner finds is the one
// encoding/json decodes, written as the providers sign it.
func FuzzJSONFields(f *testing.F) {
	for _, s := range []string{
		`{"signature":{"token":"t","timestamp":"1","signature":"ab"}}`,
		`{"notificationItems":[{"NotificationRequestItem":{"amount":{"value":1130}}}]}`,
		`{"a":[1,{"b":true}]}`, `[]`, `{}{}`, `{"a":1e400}`, `"x"`, `{"a":"\ud800x","A":1}`,
		`{"value":[{"clientState":"s"},{"clientState":"t"}]}`, `{"a":{"b":null},"signature":{"token":"\u00e9"}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		b := []byte(body)
		for _, path := range []string{"signature.token", "a", "a.b", "amount.value"} {
			val, res := jsonLookup(b, path)
			text, ok := appendScalar(nil, val)
			if res != jsonFound || !ok || !json.Valid(b) {
				continue
			}
			dec := json.NewDecoder(strings.NewReader(body))
			dec.UseNumber()
			var doc any
			if dec.Decode(&doc) != nil {
				t.Fatalf("%q is valid JSON that does not decode", body)
			}
			v := doc
			for _, name := range strings.Split(path, ".") {
				v = v.(map[string]any)[name]
			}
			var want string
			switch w := v.(type) {
			case string:
				want = w
			case json.Number:
				want = w.String()
			case bool:
				want = strconv.FormatBool(w)
			case nil:
			default:
				t.Fatalf("%q: %s is %T, written as %q", body, path, v, text)
			}
			if string(text) != want {
				t.Fatalf("%q: %s written as %q, encoding/json reads %q", body, path, text, want)
			}
		}
		for _, path := range []string{"notificationItems.[].NotificationRequestItem", "[]", "value.[]", ""} {
			jsonEach(b, path, func(item []byte) bool {
				jsonLookup(item, "clientState")
				return true
			})
		}
	})
}

// FuzzUnsignedHandshake: any query is either not the handshake, or its
// challenge is non-empty, within the bound and in the handshake's
// alphabet; X's can never open a JSON object, and Meta's needs its fixed
// parameter and its token.
func FuzzUnsignedHandshake(f *testing.F) {
	for _, q := range []string{
		"crc_token=abc", "crc_token=abc&nonce=1", "crc_token=%7B%7D", "crc_token=a&crc_token=b", "challenge=abc123",
		"hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=t", "hub.mode=subscribe&hub.challenge=1",
		"validationToken=Validation%3a+Testing", "validationToken=%3Cb%3E", "a=1;b=2", "%zz=1", "",
	} {
		f.Add(q)
	}
	var presets []Preset
	for _, p := range Catalogue() {
		if p.Handshake != nil && !p.Handshake.Signed {
			presets = append(presets, p)
		}
	}
	f.Fuzz(func(t *testing.T, query string) {
		for _, p := range presets {
			hs := p.Handshake
			r := httptest.NewRequest(hs.Method, "/hook", nil)
			r.URL.RawQuery = query
			m, ok := hs.matchUnsigned(r)
			if !ok {
				continue
			}
			if hs.Answer == AnswerEmpty {
				if query != "" || m.challenge != "" {
					t.Fatalf("%s answered a request with a query: %q", p.Name, query)
				}
				continue
			}
			if !hs.challengeOK(m.challenge) || strings.ContainsAny(m.challenge, "<>\"'&{[") {
				t.Fatalf("%s answered challenge %q", p.Name, m.challenge)
			}
			if hs.TokenParam != "" && !strings.Contains(query, "subscribe") {
				t.Fatalf("%s matched without its fixed parameter: %q", p.Name, query)
			}
		}
	})
}

// FuzzBearerToken: any Authorization header is refused by the Pub/Sub
// scheme (no key is reachable here) without a panic, and only a token
// that parses as an RS256 JWT gets as far as looking for a key.
func FuzzBearerToken(f *testing.F) {
	for _, v := range []string{
		"Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJhdWQiOiJhIn0.c2ln", "Bearer eyJhbGciOiJub25lIn0.eyJhdWQiOiJhIn0.",
		"Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln", "bearer a.b.c", "Basic dXNlcjpwYXNz", "Bearer ", "", "Bearer a.b", "Bearer ....",
	} {
		f.Add(v)
	}
	s := &pubsubScheme{fetchedSettings: fetchedSettings{keys: keyfetch.New(keyfetch.Config{}), policy: KeyPolicy{JWKSURL: "https://keys.invalid/certs"}}, audience: "a"}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Authorization", header)
		if rej := s.begin(r); rej != nil {
			return
		}
		_, _, rej := s.verify(context.Background(), r, []byte(`{}`), time.Unix(1750000000, 0))
		if rej == nil {
			t.Fatalf("%q verified", header)
		}
	})
}

// FuzzExplain: on any request, Explain reaches the same verdict as
// ServeHTTP (the verify command runs the gate's own checks), never
// panics, and no step shows the secret or the body.
func FuzzExplain(f *testing.F) {
	const secret = "whsec_fuzz-explain-secret-0a1b2c3d"
	ts := strconv.FormatInt(testNow.Unix(), 10)
	f.Add("stripe", "t="+ts+",v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd", "", `{"id":"evt_1"}`, "/hook")
	f.Add("stripe", "t=abc,v1=zz", "", `{}`, "/hook")
	f.Add("twilio", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "application/x-www-form-urlencoded", "CallSid=CA1&To=%2B1", "/t?bodySHA256=00")
	f.Add("hubspot", "c2ln", "", `[{"eventId":1}]`, "/h?x=1")
	f.Add("slack", "v0=00", "", "token=x", "/s")
	f.Add("github", "sha256=", "", "", "/")
	handlers := map[string]*Handler{}
	for _, p := range []string{"stripe", "twilio", "hubspot", "slack", "github"} {
		handlers[p] = newHandler(f, &Handler{Provider: p, Secrets: []string{secret}})
	}
	f.Fuzz(func(t *testing.T, provider, sig, ct, body, target string) {
		h := handlers[provider]
		if h == nil || !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \t\r\n#") {
			return
		}
		if _, err := url.ParseRequestURI(target); err != nil {
			return // not a request target a server would get
		}
		build := func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "https://hooks.example.com"+target, strings.NewReader(body))
			s := h.verifier.scheme
			r.Header.Set(s.SignatureHeader, sig)
			if s.TimestampHeader != "" {
				r.Header.Set(s.TimestampHeader, ts)
			}
			if ct != "" {
				r.Header.Set("Content-Type", ct)
			}
			return r
		}
		e, err := h.Explain(build(), testNow)
		if err != nil {
			t.Fatal(err)
		}
		w, repl, _ := serve(h, build(), &backend{})
		want, _ := repl.Get("http.webhook.result")
		if e.Result != want {
			t.Fatalf("Explain says %s, ServeHTTP %v (%d)", e.Result, want, w.Code)
		}
		if !e.Verified() && e.Status != w.Code {
			t.Fatalf("Explain says status %d, ServeHTTP answered %d", e.Status, w.Code)
		}
		// The body counts as shown only where the request's own metadata
		// (URL, headers), which the steps may show, does not hold it.
		metadata := "https://hooks.example.com" + target + sig + ct + ts
		bodyShown := func(text string) bool {
			return len(body) >= 8 && strings.Contains(text, body) && !strings.Contains(metadata, body)
		}
		for _, s := range e.Steps {
			if strings.Contains(s.Text, secret) || bodyShown(s.Text) {
				t.Fatalf("step %s shows the secret or the body: %s", s.Name, s.Text)
			}
		}
	})
}
