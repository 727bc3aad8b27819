package caddywebhookauth_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// vector is an entry of the SDK-checked vectors (webhookauth/testdata,
// a copy of the project's shared/vectors/providers-more.json).
type vector struct {
	Provider, Name, Variant, Kind, Expect, Secret, Body string
	PublicKey                                           string `json:"public_key"`
	Headers                                             map[string]string
	Method, URL                                         string
	VerifyAt                                            int64 `json:"verify_at"`
	// Response is what a challenge vector must be answered with.
	Response struct {
		Status  int
		Headers map[string]string
		Body    string
		JSON    map[string]any `json:"json"`
	}
}

func sharedVectors(t *testing.T) []vector {
	t.Helper()
	return readVectors(t, "webhookauth/testdata/providers-more.json")
}

// projectVectors reads the project's outside vectors for the presets
// added after the shared file (same shape).
func projectVectors(t *testing.T) []vector {
	t.Helper()
	return readVectors(t, "webhookauth/testdata/providers-extra.json")
}

func readVectors(t *testing.T, file string) []vector {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var vecs []vector
	if err := json.Unmarshal(raw, &vecs); err != nil {
		t.Fatal(err)
	}
	return vecs
}

// Discord and SendGrid deliveries, from the SDK-checked vectors, through
// a real Caddy with the public keys in the Caddyfile: the valid ones
// reach the backend byte for byte, the forged ones (Discord's probe with
// a bad signature among them) get 401.
func TestPublicKeyPresetsThroughCaddy(t *testing.T) {
	vecs := sharedVectors(t)
	keys := map[string]string{}
	for _, v := range vecs {
		if v.Provider == "discord" || v.Provider == "sendgrid" {
			keys[v.Provider] = v.PublicKey
		}
	}
	t.Setenv("IT_DISCORD_PUBLIC_KEY", keys["discord"])
	t.Setenv("IT_SENDGRID_PUBLIC_KEY", keys["sendgrid"])
	be := newBackend(t)
	tester := newTester(t)
	// The vectors were signed in 2025: the replay window is off here and
	// tested elsewhere.
	tester.InitServer(caddyConfig("", fmt.Sprintf(`
	:9080 {
		route /discord {
			webhook_auth discord {
				public_key {env.IT_DISCORD_PUBLIC_KEY}
				tolerance 0
			}
			reverse_proxy %s
		}
		route /sendgrid {
			webhook_auth sendgrid {
				public_key {env.IT_SENDGRID_PUBLIC_KEY}
				tolerance 0
			}
			reverse_proxy %s
		}
	}
	`, be.URL, be.URL)), "caddyfile")
	n := 0
	for _, v := range vecs {
		// Discord's valid PING is a handshake, answered at the edge:
		// TestHandshakesThroughCaddy sends it.
		if (v.Provider != "discord" && v.Provider != "sendgrid") || v.Kind != "delivery" {
			continue
		}
		req, _ := http.NewRequest(http.MethodPost, base+"/"+v.Provider, strings.NewReader(v.Body))
		for k, val := range v.Headers {
			req.Header.Set(k, val)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := be.take()
		if v.Expect == "valid" {
			if resp.StatusCode != 200 || len(got) != 1 || string(got[0].body) != v.Body {
				t.Fatalf("%s: %d %s, backend got %d", v.Name, resp.StatusCode, out, len(got))
			}
		} else if resp.StatusCode != 401 || len(got) != 0 {
			t.Fatalf("%s: %d %s, backend got %d", v.Name, resp.StatusCode, out, len(got))
		}
		n++
	}
	if n < 7 {
		t.Fatalf("only %d vectors sent", n)
	}
}
