package caddywebhookauth_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// Every provider's handshake, from the shared challenge vectors, through
// a real Caddy in front of a real backend: answered at the edge byte for
// byte (headers included), and the backend never sees one. Wrong shapes
// and forgeries get the usual refusals and no echo. Handshakes pass
// through webhook_rate_limit like any request.
func TestHandshakesThroughCaddy(t *testing.T) {
	vecs := map[string]vector{}
	for _, v := range append(sharedVectors(t), projectVectors(t)...) {
		if p, _ := webhookauth.LookupPreset(v.Provider); v.Kind == "challenge" && p.Handshake.EnrollParam == "" {
			vecs[v.Provider] = v // Asana's, answered only when armed: TestAsanaThroughCaddy
		}
	}
	be := newBackend(t)
	var routes strings.Builder
	for name, v := range vecs {
		key := "secret {env.IT_HS_" + name + "}"
		switch {
		case v.PublicKey != "":
			key = "public_key " + v.PublicKey
		case name == "meta":
			key = "secret meta-app-secret-0123456789\n\t\t\t\tverify_token {env.IT_HS_meta}"
		case v.Secret == "":
			key = "secret " + name + "-secret-0123456789"
		}
		if p, _ := webhookauth.LookupPreset(name); p.JWT != nil {
			key += "\n\t\t\t\taudience *"
		}
		t.Setenv("IT_HS_"+name, v.Secret)
		// The signed vectors were made in 2025: no replay window here.
		fmt.Fprintf(&routes, `
		route /%s {
			webhook_auth %s {
				%s
				tolerance 0
			}
			reverse_proxy %s
		}`, name, name, key, be.URL)
	}
	fmt.Fprintf(&routes, `
		route /limited {
			webhook_rate_limit {
				key everyone
				rate 2/1m
			}
			webhook_auth dropbox {
				secret dropbox-secret-0123456789
			}
			reverse_proxy %s
		}`, be.URL)
	tester := newTester(t)
	tester.InitServer(caddyConfig("", ":9080 {"+routes.String()+"\n}\n"), "caddyfile")

	send := func(method, target, body string, headers map[string]string) (*http.Response, []byte) {
		t.Helper()
		return request(t, method, target, body, headers)
	}
	for name, v := range vecs {
		target := base + "/" + name
		if v.URL != "" {
			u, err := url.Parse(v.URL)
			if err != nil {
				t.Fatal(err)
			}
			target += "?" + u.RawQuery
		}
		method := v.Method
		if method == "" {
			method = http.MethodPost
		}
		resp, body := send(method, target, v.Body, v.Headers)
		if resp.StatusCode != v.Response.Status {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
			continue
		}
		for k, want := range v.Response.Headers {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", name, k, got, want)
			}
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", name)
		}
		if v.Response.JSON != nil {
			var got map[string]any
			if json.Unmarshal(body, &got) != nil || !reflect.DeepEqual(got, v.Response.JSON) {
				t.Errorf("%s: %s, want %v", name, body, v.Response.JSON)
			}
		} else if string(body) != v.Response.Body {
			t.Errorf("%s: %q, want %q", name, body, v.Response.Body)
		}
		if got := be.take(); len(got) != 0 {
			t.Errorf("%s: the backend got the handshake", name)
		}
	}

	// Wrong shapes and forgeries: refused, never echoed.
	for _, c := range []struct {
		method, target string
		want           int
	}{
		{"GET", "/x?crc_token=" + url.QueryEscape(`{"tweet_create_events":[]}`), 405},
		{"GET", "/x?crc_token=a&crc_token=b", 405},
		{"GET", "/dropbox?challenge=" + url.QueryEscape("<svg onload=alert(1)>"), 405},
		{"GET", "/meta?hub.mode=subscribe&hub.challenge=1&hub.verify_token=guess", 401},
		{"POST", "/msgraph?validationToken=" + url.QueryEscape("<script>"), 401},
		{"GET", "/okta", 401}, // an empty challenge header: verified, and no secret came
		// WebSub: only subscribe, one challenge, no parameter it does not
		// know; SharePoint: the token in its charset, or it is a
		// notification without clientState; Trello: HEAD carries nothing.
		{"GET", "/websub?hub.mode=unsubscribe&hub.topic=t&hub.challenge=abc", 405},
		{"GET", "/websub?hub.mode=subscribe&hub.challenge=a&hub.challenge=b", 405},
		{"GET", "/websub?hub.mode=subscribe&hub.challenge=abc&hub.callback=https%3A%2F%2Fevil", 405},
		{"GET", "/websub?hub.mode=subscribe&hub.challenge=" + url.QueryEscape("<svg onload=alert(1)>"), 405},
		{"POST", "/sharepoint?validationtoken=" + url.QueryEscape("<script>"), 401},
		{"POST", "/sharepoint?validationToken=abc", 401}, // Graph's spelling is not SharePoint's
		{"HEAD", "/trello?x=1", 405},
	} {
		resp, body := send(c.method, base+c.target, "", map[string]string{"X-Okta-Verification-Challenge": ""})
		if resp.StatusCode != c.want || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: %d %s", c.method, c.target, resp.StatusCode, body)
		}
	}
	okta := vecs["okta"]
	forged := map[string]string{"X-Okta-Verification-Challenge": okta.Headers["X-Okta-Verification-Challenge"], "Authorization": "guess"}
	if resp, body := send("GET", base+"/okta", "", forged); resp.StatusCode != 401 || strings.Contains(string(body), "verification\"") {
		t.Errorf("okta with a wrong secret: %d %s", resp.StatusCode, body)
	}
	if got := be.take(); len(got) != 0 {
		t.Errorf("the backend got %d refused requests", len(got))
	}

	// Two handshakes allowed by the limiter, the third refused by it.
	for i, want := range []int{200, 200, 429} {
		if resp, body := send("GET", base+"/limited?challenge=abc123", "", nil); resp.StatusCode != want {
			t.Errorf("handshake %d through the rate limiter: %d %s", i, resp.StatusCode, body)
		}
	}
}
