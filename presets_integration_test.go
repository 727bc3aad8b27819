package caddywebhookauth_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// presetKeys returns a key the sender signs with and what the gate is
// configured with, for each kind of preset: a shared secret in the
// preset's encoding, or a private key and its public key.
func presetKeys(t *testing.T, p webhookauth.Preset, n int) (signWith, configure string) {
	t.Helper()
	if p.Key == webhookauth.KeyPublic {
		var priv string
		switch p.Scheme.Algorithm {
		case webhookauth.AlgorithmEd25519:
			priv = strings.Repeat(fmt.Sprintf("%02x", 0x30+n), 32)
		default:
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			der, _ := x509.MarshalPKCS8PrivateKey(k)
			priv = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		}
		signer, err := webhookauth.ParsePrivateKey(p.Scheme.Algorithm, priv)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalPKIXPublicKey(signer.Public())
		return priv, base64.StdEncoding.EncodeToString(der)
	}
	var secret string
	switch p.Scheme.SecretEncoding {
	case webhookauth.SecretWhsec:
		secret = "whsec_" + base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("integration secret %d for %s", n, p.Name)))
	case webhookauth.SecretHex:
		secret = strings.Repeat(fmt.Sprintf("%02X", 0xA0+n), 32)
	case webhookauth.SecretBase64:
		secret = base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("integration secret %d for %s", n, p.Name)))
	default:
		secret = fmt.Sprintf("integration-%s-secret-%d-0123456789", p.Name, n)
	}
	return secret, secret
}

// Every preset whose signature travels in a header, through a real Caddy
// in front of a real backend: a delivery signed as the provider signs it
// is forwarded byte for byte; the same delivery signed with another key
// is refused with signature_invalid and never forwarded.
func TestEveryPresetThroughCaddy(t *testing.T) {
	be := newBackend(t)
	var routes strings.Builder
	type sender struct {
		p               webhookauth.Preset
		scheme          *webhookauth.Scheme
		signWith, wrong string
	}
	var senders []sender
	for _, p := range webhookauth.Catalogue() {
		if p.Scheme.SignatureHeader == "" {
			continue // the signature is in the body: see TestBodySignedPresetsThroughCaddy
		}
		s, err := p.Scheme.Compile()
		if err != nil {
			t.Fatal(err)
		}
		signWith, configure := presetKeys(t, p, 1)
		wrong, _ := presetKeys(t, p, 2)
		env := "IT_PRESET_" + strings.ToUpper(p.Name)
		t.Setenv(env, configure)
		field := "secret"
		if p.Key == webhookauth.KeyPublic {
			field = "public_key"
		}
		fmt.Fprintf(&routes, "\t\troute /%s {\n\t\t\twebhook_auth %s {\n\t\t\t\t%s {env.%s}\n\t\t\t}\n\t\t\treverse_proxy %s\n\t\t}\n", p.Name, p.Name, field, env, be.URL)
		senders = append(senders, sender{p, s, signWith, wrong})
	}
	tester := newTester(t)
	tester.InitServer(caddyConfig("", ":9080 {\n"+routes.String()+"\t}\n"), "caddyfile")

	now := time.Now()
	for i, sd := range senders {
		name := sd.p.Name
		body := []byte(fmt.Sprintf(`{"id":"evt_%d","type":"ping","n":%d}`, i, i))
		ct := "application/json"
		if strings.Contains(sd.p.Scheme.SignedPayload, "{form}") {
			body, ct = []byte(fmt.Sprintf("MessageSid=SM%d&Body=hello+%d", i, i)), "application/x-www-form-urlencoded"
		}
		if f := sd.p.Scheme.TimestampField; f != "" {
			body = []byte(fmt.Sprintf(`{"id":"evt_%d","%s":%d}`, i, f, now.UnixMilli()))
		}
		send := func(key string) (int, string) {
			d := webhookauth.Delivery{Body: body, ID: fmt.Sprintf("id-%s-%d", name, now.UnixNano()), Timestamp: now,
				URL: base + "/" + name, Header: http.Header{"Content-Type": {ct}}}
			h, err := sd.scheme.SignHeaders(key, d)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			req, _ := http.NewRequest(http.MethodPost, base+"/"+name, bytes.NewReader(body))
			for k, v := range h {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			out, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(out)
		}
		if code, out := send(sd.signWith); code != 200 {
			t.Fatalf("%s: a delivery signed as the provider signs it: %d %s", name, code, out)
		}
		got := be.take()
		if len(got) != 1 || !bytes.Equal(got[0].body, body) {
			t.Fatalf("%s: the backend got %d requests", name, len(got))
		}
		if code, out := send(sd.wrong); code != 401 || (!sd.p.BareRejections && !strings.Contains(out, `"reason":"signature_invalid"`)) || (sd.p.BareRejections && out != "") {
			t.Fatalf("%s: signed with another key: %d %s", name, code, out)
		}
		if n := len(be.take()); n != 0 {
			t.Fatalf("%s: a forged delivery reached the backend", name)
		}
	}
	if len(senders) < 30 {
		t.Fatalf("only %d presets sent", len(senders))
	}
}

// The presets whose signature is in the JSON body (Mailgun, Adyen,
// Microsoft Graph), through a real Caddy with their outside vectors.
func TestBodySignedPresetsThroughCaddy(t *testing.T) {
	vecs := append(sharedVectors(t), projectVectors(t)...)
	bodySigned := map[string]bool{}
	for _, name := range webhookauth.PresetNames() {
		if p, _ := webhookauth.LookupPreset(name); p.Scheme.SignatureField != "" {
			bodySigned[name] = true
		}
	}
	be := newBackend(t)
	var routes strings.Builder
	for name := range bodySigned {
		for _, v := range vecs {
			if v.Provider == name && v.Variant == "" && v.Secret != "" {
				t.Setenv("IT_KEY_"+name, v.Secret)
				break
			}
		}
		// The Mailgun vectors were signed in 2025: no window here.
		fmt.Fprintf(&routes, `
		route /%s {
			webhook_auth %s {
				secret {env.IT_KEY_%s}
				tolerance 0
			}
			reverse_proxy %s
		}`, name, name, name, be.URL)
	}
	tester := newTester(t)
	tester.InitServer(caddyConfig("", ":9080 {"+routes.String()+"\n}\n"), "caddyfile")
	sent := map[string]int{}
	for _, v := range vecs {
		if !bodySigned[v.Provider] || v.Variant != "" || v.Kind != "delivery" {
			continue
		}
		resp, err := http.Post(base+"/"+v.Provider, "application/json", strings.NewReader(v.Body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := be.take()
		want := 401
		if v.Expect == "valid" {
			want = 200
		}
		if resp.StatusCode != want || (want == 200) != (len(got) == 1) || (want == 200 && string(got[0].body) != v.Body) {
			t.Fatalf("%s: %d, backend got %d", v.Name, resp.StatusCode, len(got))
		}
		sent[v.Provider]++
	}
	for name := range bodySigned {
		if sent[name] < 2 {
			t.Errorf("%s: %d vectors sent, want a valid and an invalid one at least", name, sent[name])
		}
	}
}
