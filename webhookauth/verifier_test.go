package webhookauth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
)

// loadVectors reads a vectors file of testdata: vectors.json (a copy of
// the published vectors of the project's shared/vectors/providers.json),
// providers-more.json (the SDK-checked ones) or providers-extra.json
// (the project's own outside vectors for the presets added since, in the
// same shape).
func loadVectors(t testing.TB, file string) []moreVector {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var vs []moreVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

// compiledPreset is a preset's scheme, compiled.
func compiledPreset(t testing.TB, provider string) *Scheme {
	t.Helper()
	p, err := LookupPreset(provider)
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.Scheme.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// presetVerifier compiles a preset with the given secrets.
func presetVerifier(t testing.TB, provider string, tolerance time.Duration, secrets ...string) *Verifier {
	t.Helper()
	s := compiledPreset(t, provider)
	if s.Algorithm.asymmetric() {
		// secrets are private keys here: verify with their public keys.
		_, pubs := keyFields(t, provider, secrets...)
		return pubVerifier(t, provider, tolerance, pubs...)
	}
	var keys [][]byte
	for _, sec := range secrets {
		k, err := s.SecretEncoding.Key(sec)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return NewVerifier(s, keys, tolerance)
}

// verify runs a request through v at now and returns the matching secret
// index or the rejection.
func verify(v *Verifier, r *http.Request, body []byte, now time.Time) (int, *Rejection) {
	idx, err := v.Verify(r, body, now)
	if err == nil {
		return idx, nil
	}
	rej, ok := gate.AsRejection(err)
	if !ok {
		panic("Verify returned an error that is not a rejection: " + err.Error())
	}
	return idx, rej
}

func TestPublishedVectors(t *testing.T) {
	checked := 0
	for _, vec := range loadVectors(t, "vectors.json") {
		if _, err := LookupPreset(vec.Provider); err != nil {
			continue // a provider this issue has no preset for yet
		}
		t.Run(vec.Provider, func(t *testing.T) {
			now := time.Now()
			if vec.Timestamp != "" {
				sec, _ := strconv.ParseInt(vec.Timestamp, 10, 64)
				now = time.Unix(sec, 0).Add(30 * time.Second)
			}
			p, _ := LookupPreset(vec.Provider)
			var v *Verifier
			if p.Key == KeyPublic {
				v = pubVerifier(t, vec.Provider, 5*time.Minute, vec.PublicKey)
			} else {
				v = presetVerifier(t, vec.Provider, 5*time.Minute, vec.Secret)
			}
			r, body := vec.request()
			idx, rej := verify(v, r, body, now)
			if rej != nil || idx != 0 {
				t.Fatalf("published vector rejected: %v (index %d)", rej, idx)
			}

			if p.Key == KeyPublic {
				return // signed with a private key nobody published
			}
			// And the other direction: signing the same delivery gives
			// the published signature.
			ts, _ := strconv.ParseInt(vec.Timestamp, 10, 64)
			h, err := v.scheme.SignHeaders(vec.Secret, Delivery{Body: body, ID: vec.ID, Timestamp: time.Unix(ts, 0), URL: vec.URL,
				Header: http.Header{"Content-Type": {r.Header.Get("Content-Type")}}})
			if err != nil {
				t.Fatal(err)
			}
			sigHeader := v.scheme.SignatureHeader
			if got, want := h.Get(sigHeader), r.Header.Get(sigHeader); got != want {
				t.Errorf("signed %s = %q, published %q", sigHeader, got, want)
			}
		})
		checked++
	}
	if checked < 3 {
		t.Fatalf("only %d published vectors matched a preset; want github, slack and standard at least", checked)
	}
}

// signed builds a request for provider signed with secret at ts.
func signed(t testing.TB, provider, secret string, body []byte, ts time.Time) *http.Request {
	t.Helper()
	p, _ := LookupPreset(provider)
	s, err := p.Scheme.Compile()
	if err != nil {
		t.Fatal(err)
	}
	// httptest.NewRequest addresses example.com: that is the URL the
	// schemes that sign {url} cover.
	d := Delivery{Body: body, ID: "msg_" + strconv.FormatInt(ts.UnixNano(), 36), Timestamp: ts, URL: "http://example.com/hook"}
	if s.Payload.Uses(TokenForm) {
		// Twilio posts form-encoded parameters.
		d.Header = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	}
	h, err := s.SignHeaders(secret, d)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
	for k, v := range h {
		r.Header[k] = v
	}
	return r
}

// headerSigned lists the presets whose signature travels in a header:
// all but those that sign fields of the JSON body and carry the
// signature in it (Mailgun, Adyen), which TestJSONSignedBodies covers.
func headerSigned() []string {
	var names []string
	for _, name := range PresetNames() {
		if p, _ := LookupPreset(name); p.Scheme.SignatureField == "" && p.Compiled() {
			names = append(names, name)
		}
	}
	return names
}

// customPresets names the presets verified by code of their own (keys
// fetched, or a JWT): no compiled Scheme.
func customPresets() []string {
	var names []string
	for _, p := range Catalogue() {
		if !p.Compiled() {
			names = append(names, p.Name)
		}
	}
	return names
}

// fetchedPresets names the presets whose keys are fetched.
func fetchedPresets() []string {
	var names []string
	for _, p := range Catalogue() {
		if p.Key == KeyFetched {
			names = append(names, p.Name)
		}
	}
	return names
}

// pubVerifier is a Verifier for a public-key preset with the given keys.
func pubVerifier(t testing.TB, provider string, tolerance time.Duration, pubs ...string) *Verifier {
	t.Helper()
	s := compiledPreset(t, provider)
	var keys []crypto.PublicKey
	for _, text := range pubs {
		k, err := ParsePublicKey(s.Algorithm, text)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return NewPublicKeyVerifier(s, keys, tolerance)
}

// keyFields turns test keys into a handler's configuration: secrets as
// they are, or, for a public-key preset, the public keys of the given
// private keys.
func keyFields(t testing.TB, provider string, keys ...string) (secrets, pubs []string) {
	t.Helper()
	p, _ := LookupPreset(provider)
	if p.Key != KeyPublic {
		return keys, nil
	}
	for _, k := range keys {
		priv, err := ParsePrivateKey(p.Scheme.Algorithm, k)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, base64.StdEncoding.EncodeToString(der))
	}
	return nil, pubs
}

// testPrivateKeys are two private keys for each asymmetric algorithm.
var testPrivateKeys = func() map[Algorithm][2]string {
	pemKey := func(k any) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	ec := func() string {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return pemKey(k)
	}
	return map[Algorithm][2]string{
		AlgorithmEd25519:   {strings.Repeat("a1", 32), strings.Repeat("b2", 32)},
		AlgorithmECDSAP256: {ec(), ec()},
	}
}()

// testSecrets are two valid secrets for each preset, in its secret
// encoding (private keys for the public-key presets).
var testSecrets = func() map[string][2]string {
	m := map[string][2]string{}
	for _, p := range Catalogue() {
		if !p.Compiled() {
			continue // no scheme: see fetched_test.go and jwt_test.go
		}
		if p.Key == KeyPublic {
			m[p.Name] = testPrivateKeys[p.Scheme.Algorithm]
			continue
		}
		if p.Scheme.SecretEncoding == SecretHex {
			m[p.Name] = [2]string{"44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056", "A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F90"}
			continue
		}
		if p.Scheme.SecretEncoding == SecretBase64 {
			m[p.Name] = [2]string{"c2VjcmV0LW9uZS1mb3ItdGhlLXRlc3RzLTAxMjM0NQ==", "c2VjcmV0LXR3by1mb3ItdGhlLXRlc3RzLTAxMjM0NQ=="}
			continue
		}
		if p.Scheme.SecretEncoding == SecretWhsec {
			m[p.Name] = [2]string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_c2Vjb25kLXNlY3JldC1mb3ItdGVzdHM="}
			continue
		}
		m[p.Name] = [2]string{p.Name + "-secret-one", p.Name + "-secret-two"}
	}
	return m
}()

func TestRoundTripEveryPreset(t *testing.T) {
	if len(testSecrets) != len(PresetNames())-len(customPresets()) {
		t.Fatalf("testSecrets covers %d presets, there are %d with a compiled scheme", len(testSecrets), len(PresetNames())-len(customPresets()))
	}
	now := time.Unix(1_800_000_000, 0)
	for _, name := range headerSigned() {
		body := testBody(name, 1, now)
		t.Run(name, func(t *testing.T) {
			sec := testSecrets[name]
			// Rotation: the verifier knows the new and the old secret;
			// a delivery signed with either passes and says which.
			v := presetVerifier(t, name, 5*time.Minute, sec[0], sec[1])
			for want, s := range sec {
				r := signed(t, name, s, body, now)
				idx, rej := verify(v, r, body, now)
				if rej != nil || idx != want {
					t.Fatalf("signed with secret %d: got index %d, rejection %v", want, idx, rej)
				}
			}
		})
	}
}

func TestStripeAcceptsAnyOfSeveralV1(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	v := presetVerifier(t, "stripe", 5*time.Minute, "whsec_current")
	good := signed(t, "stripe", "whsec_current", body, now).Header.Get("Stripe-Signature")
	other := signed(t, "stripe", "whsec_other", body, now).Header.Get("Stripe-Signature")
	_, goodSig, _ := strings.Cut(good, ",")
	_, otherSig, _ := strings.Cut(other, ",")
	ts := "t=" + strconv.FormatInt(now.Unix(), 10)
	for _, header := range []string{
		ts + "," + otherSig + "," + goodSig,
		ts + "," + goodSig + "," + otherSig,
		ts + ",v0=deadbeef," + goodSig,
		goodSig + "," + ts, // order of entries does not matter
	} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Stripe-Signature", header)
		if _, rej := verify(v, r, body, now); rej != nil {
			t.Errorf("%q: %v", header, rej)
		}
	}
}

func TestStandardIgnoresUnknownVersions(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"a":1}`)
	sec := testSecrets["standard"][0]
	v := presetVerifier(t, "standard", 5*time.Minute, sec)
	r := signed(t, "standard", sec, body, now)
	good := r.Header.Get("Webhook-Signature")
	r.Header.Set("Webhook-Signature", "v1a,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v2,xyz "+good+" v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	if _, rej := verify(v, r, body, now); rej != nil {
		t.Fatalf("a matching v1 among unknown versions: %v", rej)
	}
	r.Header.Set("Webhook-Signature", "v1a,"+strings.TrimPrefix(good, "v1,"))
	if _, rej := verify(v, r, body, now); rej == nil || rej.Reason != ReasonSignatureMalformed {
		t.Fatalf("only a v1a signature: got %v, want signature_malformed", rej)
	}
}

func TestGitHubSHA1AloneIsNotEnough(t *testing.T) {
	v := presetVerifier(t, "github", 0, "It's a Secret to Everybody")
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Header.Set("X-Hub-Signature", "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59")
	if _, rej := verify(v, r, []byte("Hello, World!"), time.Now()); rej == nil || rej.Reason != ReasonSignatureMissing {
		t.Fatalf("got %v, want signature_missing", rej)
	}
}

func TestTopLevelString(t *testing.T) {
	for _, c := range []struct {
		body string
		want string
		ok   bool
	}{
		{`{"id":"evt_1","type":"a"}`, "evt_1", true},
		{`{"data":{"id":"nested"},"id":"top"}`, "top", true},
		{`{"type":"a","id":"x\"y"}`, `x"y`, true},
		{`{"data":{"id":"nested"}}`, "", false},
		{`{"id":1}`, "", false},
		// A member that appears twice is ambiguous: parsers disagree on
		// which one wins, so neither is used.
		{`{"id":"","id":"0"}`, "", false},
		{`{"id":"a","id":1}`, "", false},
		{`{"id":"a"`, "", false},
		{`["id"]`, "", false},
	} {
		got, ok := bodyString([]byte(c.body), "id")
		if got != c.want || ok != c.ok {
			t.Errorf("%s: got %q, %v; want %q, %v", c.body, got, ok, c.want, c.ok)
		}
	}
}
