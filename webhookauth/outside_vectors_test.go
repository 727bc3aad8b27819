package webhookauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// moreVector is one signature test vector: an entry of
// testdata/providers-more.json, a copy of the project's shared vectors,
// each made with test keys and checked by the provider's official SDK
// (checked_by) or recomputed from its docs; or of testdata/vectors.json,
// the providers' published ones.
type moreVector struct {
	Provider  string `json:"provider"`
	Variant   string `json:"variant"`
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Expect    string `json:"expect"`
	CheckedBy string `json:"checked_by"`
	Secret    string `json:"secret"`
	// Secrets, when set, are all the keys the receiver holds (Box's
	// primary and secondary); Secret is then the first.
	Secrets   []string `json:"secrets"`
	ID        string   `json:"id"`
	Timestamp string   `json:"timestamp"`
	PublicKey string   `json:"public_key"`
	// Audience is the endpoint a JWT vector's token is for (monday).
	Audience string            `json:"audience"`
	VerifyAt int64             `json:"verify_at"`
	Method   string            `json:"method"`
	URL      string            `json:"url"`
	Body     string            `json:"body"`
	Headers  map[string]string `json:"headers"`
	Params   map[string]string `json:"params"`
	Seed     string            `json:"private_key_seed_hex"`
	Note     string            `json:"note"`
	// Response is what a challenge vector must be answered with: the
	// status, these headers, and the body as bytes or as JSON.
	Response struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
		JSON    map[string]any    `json:"json"`
	} `json:"response"`
}

// request builds the vector's request: its method, URL (or /hook), body
// (the form-encoded params where it gives only those) and headers.
func (vec moreVector) request() (*http.Request, []byte) {
	target, method, body := vec.URL, vec.Method, vec.Body
	if target == "" {
		target = "/hook"
	}
	if method == "" {
		method = http.MethodPost
	}
	if body == "" && len(vec.Params) > 0 {
		form := url.Values{}
		for k, v := range vec.Params {
			form.Set(k, v)
		}
		body = form.Encode()
	}
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if len(vec.Params) > 0 {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, val := range vec.Headers {
		r.Header.Set(k, val)
	}
	return r, []byte(body)
}

// presetOf names the preset for a vector where the provider's name alone
// does not: HubSpot's older signatures have presets of their own.
func presetOf(vec moreVector) string {
	switch {
	case strings.HasPrefix(vec.Name, "hubspot-v1"):
		return "hubspot_v1"
	case strings.HasPrefix(vec.Name, "hubspot-v2"):
		return "hubspot_v2"
	case vec.Provider == "adyen" && vec.Variant == "banking":
		return "adyen_platform"
	}
	return vec.Provider
}

// TestOutsideVectors checks every preset against the vectors our own
// signer did not make, valid and invalid ones alike: the shared ones, and
// those of testdata/providers-extra.json for the presets added since.
func TestOutsideVectors(t *testing.T) {
	vecs := append(loadVectors(t, "providers-more.json"), loadVectors(t, "providers-extra.json")...)
	checked, tamperedChecks := map[string]int{}, map[string]int{}
	resigned := 0
	for _, vec := range vecs {
		p, err := LookupPreset(presetOf(vec))
		if err != nil || vec.Kind != "delivery" || vec.Variant == "v1a" || !p.Compiled() {
			continue // fetched keys: TestFetchedVectors, against a local key server; JWTs: TestJWTVectors
		}
		if vec.CheckedBy == "" {
			t.Fatalf("%s: no checked_by", vec.Name)
		}
		t.Run(vec.Name, func(t *testing.T) {
			now := time.Now()
			tolerance := time.Duration(0)
			if vec.VerifyAt != 0 {
				now, tolerance = time.Unix(vec.VerifyAt, 0), p.Tolerance
			}
			var v *Verifier
			if p.Key == KeyPublic {
				v = pubVerifier(t, p.Name, tolerance, vec.PublicKey)
			} else if len(vec.Secrets) > 0 {
				v = presetVerifier(t, p.Name, tolerance, vec.Secrets...)
			} else {
				v = presetVerifier(t, p.Name, tolerance, vec.Secret)
			}
			r, body := vec.request()
			_, rej := verify(v, r, body, now)
			if (rej == nil) != (vec.Expect == "valid") {
				t.Fatalf("expect %s, got %v (checked by %s)", vec.Expect, rej, vec.CheckedBy)
			}
			// A valid vector with one body byte changed must fail,
			// wherever the scheme signs the body's bytes.
			if vec.Expect == "valid" && len(body) > 0 && v.scheme.Payload.Uses(TokenBody) && v.scheme.Algorithm != AlgorithmToken {
				tampered := bytes.Clone(body)
				tampered[len(tampered)/2] ^= 1
				if _, rej := verify(v, r, tampered, now); rej == nil {
					t.Fatal("the vector still verifies with a body byte changed")
				}
				tamperedChecks[p.Name]++
			}
			// And the other direction: our signer, given the same
			// delivery and key, writes a signature the vector carries.
			if vec.Expect == "valid" && resign(t, v.scheme, vec, r, body) {
				resigned++
			}
		})
		checked[p.Name]++
	}
	t.Logf("%d valid vectors signed again and found byte for byte", resigned)
	if resigned < 30 {
		t.Errorf("only %d vectors signed again and compared", resigned)
	}
	// Every preset has outside vectors: these, or (github, slack,
	// standard) TestPublishedVectors' published ones, or (stripe, gitlab)
	// the command package's checks against stripe-go and GitLab's
	// documented header.
	elsewhere := map[string]bool{"github": true, "slack": true, "standard": true, "stripe": true, "gitlab": true}
	for _, name := range customPresets() {
		elsewhere[name] = true // TestFetchedVectors and TestJWTVectors require a valid and an invalid one each
	}
	for _, name := range PresetNames() {
		if checked[name] == 0 && !elsewhere[name] {
			t.Errorf("no outside vector checked for %s", name)
		}
		if checked[name] == 1 && tamperedChecks[name] == 0 {
			t.Errorf("%s: only a valid or an invalid vector, not both", name)
		}
	}
}

// Standard Webhooks v1a (ed25519) through the handler: with public keys
// alone, and beside a v1 secret, where either kind of entry is enough.
func TestStandardV1aThroughTheHandler(t *testing.T) {
	vecs := loadVectors(t, "providers-more.json")
	noWindow := caddy.Duration(0)
	secret := testSecrets["standard"][0]
	n := 0
	for _, vec := range vecs {
		if vec.Provider != "standard" || vec.Variant != "v1a" {
			continue
		}
		for _, secrets := range [][]string{nil, {secret}} {
			h := newHandler(t, &Handler{Provider: "standard", Secrets: secrets, PublicKeys: []string{vec.PublicKey}, Tolerance: &noWindow})
			r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(vec.Body))
			for k, val := range vec.Headers {
				r.Header.Set(k, val)
			}
			w, repl, be := dedupSend(t, h, r)
			if (be.calls == 1) != (vec.Expect == "valid") {
				t.Fatalf("%s with secrets %v: %d %s, expect %s", vec.Name, secrets, w.Code, w.Body.String(), vec.Expect)
			}
			if vec.Expect == "valid" {
				// secret_index counts the secrets first, then the keys.
				if idx := repl.ReplaceAll("{http.webhook.secret_index}", ""); idx != strconv.Itoa(len(secrets)) {
					t.Fatalf("%s: secret_index %s", vec.Name, idx)
				}
			}
			n++
		}
	}
	if n < 10 {
		t.Fatalf("only %d v1a checks", n)
	}
	// The handler with both still takes a v1 (HMAC) delivery.
	pub := vecs[0].PublicKey
	h := newHandler(t, &Handler{Provider: "standard", Secrets: []string{secret}, PublicKeys: []string{pub}})
	if _, repl, be := dedupSend(t, h, signed(t, "standard", secret, []byte(`{}`), testNow)); be.calls != 1 || repl.ReplaceAll("{http.webhook.secret_index}", "") != "0" {
		t.Fatal("a v1 delivery was refused by a handler that also holds a v1a key")
	}
}

// Keys that do not parse, or belong to another algorithm, stop the config.
func TestPublicKeysFailClosed(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakDER, _ := x509.MarshalPKIXPublicKey(&weak.PublicKey)
	rsaPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: weakDER}))
	for _, c := range []struct {
		h    Handler
		want string
	}{
		{Handler{Provider: "discord"}, "'public_key' is required"},
		{Handler{Provider: "discord", PublicKeys: []string{"zz-not-a-key"}}, "public_key 0"},
		{Handler{Provider: "discord", PublicKeys: []string{"{env.WEBHOOKAUTH_NO_SUCH_KEY}"}}, "resolved to an empty value"},
		{Handler{Provider: "discord", Secrets: []string{"some-shared-secret"}, PublicKeys: []string{strings.Repeat("ab", 32)}}, "not 'secret'"},
		{Handler{Provider: "sendgrid", PublicKeys: []string{strings.Repeat("ab", 32)}}, "public_key 0"},
		{Handler{Provider: "github", Secrets: []string{"s"}, PublicKeys: []string{strings.Repeat("ab", 32)}}, "needs an asymmetric algorithm"},
		{Handler{Secrets: nil, PublicKeys: []string{rsaPEM}, SchemeConfig: SchemeConfig{SignatureHeader: "X-Sig", Algorithm: AlgorithmRSAPKCS1, Encoding: EncodingBase64}}, "at least 2048"},
	} {
		h := c.h
		if err := h.Provision(ctx); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.h.PublicKeys, err, c.want)
		}
	}
}

// RSA (PKCS#1 v1.5 and PSS) and raw r||s ECDSA through the generic
// fields, with keys in each accepted form.
func TestGenericAsymmetric(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	spkiPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	pkcs1PEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rk.PublicKey)}))
	privDER, _ := x509.MarshalPKCS8PrivateKey(rk)
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))
	body := []byte(`{"rsa":true}`)
	for _, alg := range []Algorithm{AlgorithmRSAPKCS1, AlgorithmRSAPSS} {
		for _, pub := range []string{spkiPEM, pkcs1PEM, base64.StdEncoding.EncodeToString(der), hex.EncodeToString(der)} {
			h := newHandler(t, &Handler{PublicKeys: []string{pub}, SchemeConfig: SchemeConfig{
				SignatureHeader: "X-Sig", Algorithm: alg, Encoding: EncodingBase64, TimestampHeader: "X-Ts", SignedPayload: "{timestamp}.{body}",
			}})
			hdr, err := h.verifier.scheme.SignHeaders(privPEM, Delivery{Body: body, Timestamp: testNow})
			if err != nil {
				t.Fatal(err)
			}
			mk := func(b []byte) *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b))
				for k, v := range hdr {
					r.Header[k] = v
				}
				return r
			}
			if _, _, be := dedupSend(t, h, mk(body)); be.calls != 1 {
				t.Fatalf("%s: a valid delivery was refused", alg)
			}
			if w, _, be := dedupSend(t, h, mk([]byte(`{"rsa":false}`))); be.calls != 0 || w.Code != 401 {
				t.Fatalf("%s: a tampered delivery passed", alg)
			}
		}
	}
	// ECDSA with a raw r||s signature (64 bytes), as some senders write it.
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	eder, _ := x509.MarshalPKIXPublicKey(&ek.PublicKey)
	h := newHandler(t, &Handler{PublicKeys: []string{base64.StdEncoding.EncodeToString(eder)}, SchemeConfig: SchemeConfig{
		SignatureHeader: "X-Sig", Algorithm: AlgorithmECDSAP256, Encoding: EncodingHex,
	}})
	digest := sha256.Sum256(body)
	r0, s0, err := ecdsa.Sign(rand.Reader, ek, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	raw := append(r0.FillBytes(make([]byte, 32)), s0.FillBytes(make([]byte, 32))...)
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("X-Sig", hex.EncodeToString(raw))
	if _, _, be := dedupSend(t, h, req); be.calls != 1 {
		t.Fatal("a raw r||s ECDSA signature was refused")
	}
}

// Linear's timestamp is in the signed body: checked only once the body
// is the sender's, against the preset's 60 s window.
func TestTimestampInTheBody(t *testing.T) {
	secret := testSecrets["linear"][0]
	v := presetVerifier(t, "linear", time.Minute, secret)
	ms := strconv.FormatInt(testNow.UnixMilli(), 10)
	for _, c := range []struct {
		body string
		want Reason
	}{
		{`{"webhookTimestamp":` + ms + `}`, ""},
		{`{"webhookTimestamp":"` + ms + `"}`, ""},
		{`{"webhookTimestamp":` + strconv.FormatInt(testNow.Add(-2*time.Minute).UnixMilli(), 10) + `}`, ReasonTimestampOutOfWindow},
		{`{"webhookTimestamp":` + ms + `.5}`, ReasonTimestampInvalid},
		{`{"webhookTimestamp":` + ms + `,"webhookTimestamp":` + ms + `}`, ReasonTimestampInvalid},
		{`{"other":1}`, ReasonTimestampInvalid},
		{`[1]`, ReasonTimestampInvalid},
	} {
		r := signed(t, "linear", secret, []byte(c.body), testNow)
		_, rej := verify(v, r, []byte(c.body), testNow)
		if (c.want == "" && rej != nil) || (c.want != "" && (rej == nil || rej.Reason != c.want)) {
			t.Errorf("%s: %v, want %q", c.body, rej, c.want)
		}
	}
}

// Twilio behind a proxy that terminates TLS: public_url makes {url} the
// URL Twilio signed. A JSON body that the signed URL does not cover with
// bodySHA256 is refused, never passed as verified.
func TestTwilioPublicURLAndUncoveredBodies(t *testing.T) {
	var vec moreVector
	for _, v := range loadVectors(t, "providers-more.json") {
		if v.Name == "twilio-form-valid" {
			vec = v
		}
	}
	h := newHandler(t, &Handler{Provider: "twilio", Secrets: []string{vec.Secret}, SchemeConfig: SchemeConfig{PublicURL: "https://example.com/"}})
	// As the gate sees it: plain HTTP on an internal address.
	mk := func(body string, ct string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "http://10.0.0.7:8080/twilio/sms?tenant=42", strings.NewReader(body))
		r.RequestURI = "/twilio/sms?tenant=42"
		r.Header.Set("Content-Type", ct)
		r.Header.Set("X-Twilio-Signature", vec.Headers["X-Twilio-Signature"])
		return r
	}
	if w, _, be := dedupSend(t, h, mk(vec.Body, "application/x-www-form-urlencoded")); be.calls != 1 {
		t.Fatalf("behind a proxy with public_url: %d %s", w.Code, w.Body.String())
	}
	plain := newHandler(t, &Handler{Provider: "twilio", Secrets: []string{vec.Secret}})
	if _, _, be := dedupSend(t, plain, mk(vec.Body, "application/x-www-form-urlencoded")); be.calls != 0 {
		t.Fatal("without public_url the internal URL verified")
	}
	// A signature over the URL alone (as for a GET) does not let a JSON
	// body through.
	p, _ := LookupPreset("twilio")
	s, _ := p.Scheme.Compile()
	hdr, _ := s.SignHeaders(vec.Secret, Delivery{URL: "https://example.com/twilio/sms?tenant=42"})
	r := mk(`{"forged":true}`, "application/json")
	r.Header.Set("X-Twilio-Signature", hdr.Get("X-Twilio-Signature"))
	if w, _, be := dedupSend(t, h, r); be.calls != 0 || problemReason(t, w) != ReasonSignatureMalformed {
		t.Fatalf("an uncovered JSON body: %d %s", w.Code, w.Body.String())
	}
	if err := (&Handler{Provider: "github", Secrets: []string{"s"}, SchemeConfig: SchemeConfig{PublicURL: "https://x"}}).Validate(); err == nil {
		t.Fatal("public_url on a scheme that does not sign {url} loaded")
	}
	if err := (&Handler{Provider: "twilio", Secrets: []string{"s"}, SchemeConfig: SchemeConfig{PublicURL: "https://x/path"}}).Validate(); err == nil {
		t.Fatal("a public_url with a path loaded")
	}
}

// Bad inputs for the schemes whose signature is in the JSON body: each
// gets its status and reason and never reaches the backend.
func TestJSONSignedBodies(t *testing.T) {
	vecs := map[string]moreVector{}
	for _, v := range loadVectors(t, "providers-more.json") {
		vecs[v.Name] = v
	}
	mg, ad := vecs["mailgun-valid"], vecs["adyen-standard-published"]
	noWindow := caddy.Duration(0)
	mailgun := newHandler(t, &Handler{Provider: "mailgun", Secrets: []string{mg.Secret}, Tolerance: &noWindow})
	adyen := newHandler(t, &Handler{Provider: "adyen", Secrets: []string{ad.Secret}})
	// Adyen's one published item, twice: both must verify; then with the
	// second one altered.
	item := ad.Body[strings.Index(ad.Body, "[")+1 : strings.LastIndex(ad.Body, "]")]
	twice := strings.Replace(ad.Body, item, item+","+item, 1)
	badSecond := strings.Replace(ad.Body, item, item+","+strings.Replace(item, `"value":1130`, `"value":1131`, 1), 1)
	for _, c := range []struct {
		name string
		h    *Handler
		body string
		want Reason
	}{
		{"mailgun valid", mailgun, mg.Body, ""},
		{"mailgun not JSON", mailgun, "token=x&signature=y", ReasonSignatureMalformed},
		{"mailgun two documents", mailgun, mg.Body + mg.Body, ReasonSignatureMalformed},
		{"mailgun no signature object", mailgun, `{"event-data":{}}`, ReasonSignatureMissing},
		{"mailgun signature not hex", mailgun, strings.Replace(mg.Body, `"signature":"655b`, `"signature":"zz5b`, 1), ReasonSignatureMalformed},
		{"mailgun stale timestamp", newHandler(t, &Handler{Provider: "mailgun", Secrets: []string{mg.Secret}}), mg.Body, ReasonTimestampOutOfWindow},
		{"adyen published", adyen, ad.Body, ""},
		{"adyen two good items", adyen, twice, ""},
		{"adyen second item altered", adyen, badSecond, ReasonSignatureInvalid},
		{"adyen no items", adyen, `{"live":"false","notificationItems":[]}`, ReasonSignatureMissing},
		{"adyen item without signature", adyen, `{"notificationItems":[{"NotificationRequestItem":{"pspReference":"1"}}]}`, ReasonSignatureMissing},
		// A second copy of a signed field, or one in another letter case
		// (which Go's encoding/json would read instead), is refused: the
		// backend could read a value the signature does not cover.
		{"adyen signed field twice", adyen, strings.Replace(ad.Body, `"pspReference":"7914073381342284"`, `"pspReference":"7914073381342284","pspReference":"1"`, 1), ReasonSignatureMalformed},
		{"adyen signed field in other case", adyen, strings.Replace(ad.Body, `"success":"true"`, `"success":"true","Success":"false"`, 1), ReasonSignatureMalformed},
		{"adyen unsigned field added in other case", adyen, strings.Replace(ad.Body, `"success":"true"`, `"success":"true","OriginalReference":"x"`, 1), ReasonSignatureMalformed},
		{"adyen signed field is an object", adyen, strings.Replace(ad.Body, `"eventCode":"AUTHORISATION"`, `"eventCode":{}`, 1), ReasonSignatureMalformed},
		{"adyen items twice", adyen, strings.Replace(ad.Body, `{"live":"false",`, `{"live":"false","notificationItems":[],`, 1), ReasonSignatureMalformed},
		{"mailgun signature twice", mailgun, strings.Replace(mg.Body, `{"signature":{`, `{"signature":{},"Signature":{`, 1), ReasonSignatureMalformed},
		{"mailgun escaped but equal", mailgun, strings.Replace(mg.Body, `"token":`, `"to\u006ben":`, 1), ""},
		{"mailgun event-data enlarged", mailgun, strings.Replace(mg.Body, `"event":"delivered"`, `"event":"delivered","extra":[1,{"a":"]}"}]`, 1), ""},
	} {
		r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(c.body))
		w, _, be := dedupSend(t, c.h, r)
		if c.want == "" {
			if be.calls != 1 || string(be.body) != c.body {
				t.Errorf("%s: %d %s", c.name, w.Code, w.Body.String())
			}
			continue
		}
		if be.calls != 0 || problemReason(t, w) != c.want {
			t.Errorf("%s: %d %s, want %s", c.name, w.Code, w.Body.String(), c.want)
		}
	}
}

// Twilio's settings header: HMAC_SHA256 switches the MAC, HMAC_SHA1
// keeps it, anything else or a repeated header is malformed.
func TestTwilioSettingsHeader(t *testing.T) {
	secret := "twilio-shared-key-0123456789"
	h := newHandler(t, &Handler{Provider: "twilio", Secrets: []string{secret}})
	body := "A=1&B=2"
	for _, c := range []struct {
		settings []string
		want     Reason
	}{
		{nil, ""},
		{[]string{"key=k1,algorithm=HMAC_SHA256"}, ""},
		{[]string{"key=k1,algorithm=HMAC_SHA1"}, ""},
		{[]string{"key=k1,algorithm=HMAC_MD5"}, ReasonSignatureMalformed},
		{[]string{"key=k1,algorithm=HMAC_SHA256", "key=k1,algorithm=HMAC_SHA256"}, ReasonSignatureMalformed},
	} {
		d := Delivery{Body: []byte(body), URL: "http://example.com/hook",
			Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}}
		if len(c.settings) > 0 {
			d.Header["X-Twilio-Webhooks-Signature-Settings"] = c.settings[:1]
		}
		hdr, err := h.verifier.scheme.SignHeaders(secret, d)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(body))
		for k, v := range hdr {
			r.Header[k] = v
		}
		if c.settings != nil {
			r.Header["X-Twilio-Webhooks-Signature-Settings"] = c.settings
		}
		w, _, be := dedupSend(t, h, r)
		if c.want == "" && be.calls != 1 {
			t.Errorf("%v: %d %s", c.settings, w.Code, w.Body.String())
		}
		if c.want != "" && (be.calls != 0 || problemReason(t, w) != c.want) {
			t.Errorf("%v: %d %s, want %s", c.settings, w.Code, w.Body.String(), c.want)
		}
	}
}

// resign signs the vector's delivery with our signer and checks that the
// signature it writes is one the vector's header carries, byte for byte.
// It reports false where that cannot be done: tokens and JSON-body
// signatures (nothing to sign), ECDSA and RSA (randomized or keyless
// here), a timestamp our formatter cannot reproduce (Twitch's
// nanoseconds), and a URL signed with a port the vector's URL lacks.
func resign(t *testing.T, s *Scheme, vec moreVector, r *http.Request, body []byte) bool {
	t.Helper()
	key := vec.Secret
	switch {
	case s.Algorithm == AlgorithmToken || s.SignatureField != "" || s.Algorithm == AlgorithmECDSAP256 ||
		s.Algorithm == AlgorithmRSAPKCS1 || s.Algorithm == AlgorithmRSAPSS:
		return false
	case s.Algorithm == AlgorithmEd25519:
		if key = vec.Seed; key == "" {
			return false
		}
	case strings.Contains(vec.Note, "signed over"), s.Payload.Uses(TokenEntryJSON):
		// (Our signer does not write Hygraph's env entry.)
		return false
	}
	var ts time.Time
	if s.hasTimestamp() {
		var ok bool
		raw := r.Header.Get(s.TimestampHeader)
		if s.timestampInSignature() {
			raw = ""
			for _, e := range strings.Split(r.Header.Get(s.SignatureHeader), string(s.Separator)) {
				if v, ok := cutKey(strings.TrimSpace(e), s.TimestampKey); ok {
					raw = v
				}
			}
		}
		if ts, ok = parseTimestamp(s.TimestampFormat, raw); !ok || formatTimestamp(s.TimestampFormat, ts) != raw {
			return false
		}
	}
	d := Delivery{Body: body, Timestamp: ts, Method: r.Method, URL: requestURL(r), Header: http.Header{}}
	if s.IDHeader != "" {
		d.ID = r.Header.Get(s.IDHeader)
	}
	for k, v := range r.Header {
		if k != s.SignatureHeader {
			d.Header[k] = v
		}
	}
	h, err := s.SignHeaders(key, d)
	if err != nil {
		t.Fatalf("signing the vector again: %v", err)
	}
	ours := h.Get(s.SignatureHeader)
	if s.timestampInSignature() {
		ours = ours[strings.IndexByte(ours, s.Separator)+1:]
	}
	carried := r.Header.Get(s.SignatureHeader)
	for _, name := range s.moreSigHeaders {
		carried += " " + r.Header.Get(name) // one header per key: any may hold ours
	}
	if ours == "" || !strings.Contains(carried, ours) {
		t.Fatalf("our signer wrote %q; the vector carries %q", ours, carried)
	}
	return true
}
