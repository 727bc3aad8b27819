package command

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stripe/stripe-go/v82/webhook"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// parseLines reads sign's output back into a header, checking that every
// line is "Name: value" and nothing else.
func parseLines(t *testing.T, out string) http.Header {
	t.Helper()
	h := make(http.Header)
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		name, value, ok := strings.Cut(line, ": ")
		if !ok || name == "" || value == "" {
			t.Fatalf("line %q is not 'Name: value'", line)
		}
		h.Add(name, value)
	}
	return h
}

func signed(t *testing.T, provider, secret string, body []byte, id string, ts time.Time) http.Header {
	t.Helper()
	d, err := sign(provider, secret, body, id, ts)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := d.writeHeaders(&out); err != nil {
		t.Fatal(err)
	}
	return parseLines(t, out.String())
}

// TestSignVerifiedByStripe: stripe-go's own ConstructEvent accepts what
// sign prints.
func TestSignVerifiedByStripe(t *testing.T) {
	const secret = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc"
	body := []byte(`{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"payment_intent.succeeded","api_version":"2024-06-20","data":{"object":{}}}`)
	h := signed(t, "stripe", secret, body, "", time.Now())
	ev, err := webhook.ConstructEventWithOptions(body, h.Get("Stripe-Signature"), secret, webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		t.Fatalf("stripe-go rejects the signature: %v", err)
	}
	if ev.ID != "evt_1NG8Du2eZvKYlo2CUI79vXWy" {
		t.Fatalf("event id %q", ev.ID)
	}
	// And it is not fooled: another secret fails.
	if _, err := webhook.ConstructEventWithOptions(body, h.Get("Stripe-Signature"), "whsec_other", webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true}); err == nil {
		t.Fatal("stripe-go accepted a signature made with another secret")
	}
}

// TestSignVerifiedByStandardWebhooks: the Standard Webhooks reference Go
// library and Svix's library accept what sign prints for their presets.
func TestSignVerifiedByStandardWebhooks(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"type":"user.created","data":{"id":"u_1"}}`)

	h := signed(t, "standard", secret, body, "", time.Now())
	if !strings.HasPrefix(h.Get("webhook-id"), "msg_") {
		t.Fatalf("fresh id %q, want msg_…", h.Get("webhook-id"))
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, h); err != nil {
		t.Fatalf("standard-webhooks rejects the signature: %v", err)
	}
	if err := wh.Verify([]byte(`{"type":"user.deleted"}`), h); err == nil {
		t.Fatal("standard-webhooks accepted another body")
	}

	h = signed(t, "svix", secret, body, "msg_fixed", time.Now())
	sv, err := svix.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := sv.Verify(body, h); err != nil {
		t.Fatalf("svix rejects the signature: %v", err)
	}
	if h.Get("svix-id") != "msg_fixed" {
		t.Fatalf("svix-id %q, want the --id given", h.Get("svix-id"))
	}
}

// TestSignMatchesPublishedVectors: for the providers whose documentation
// publishes a signed example (GitHub, Slack, Standard Webhooks), sign
// reproduces it byte for byte.
func TestSignMatchesPublishedVectors(t *testing.T) {
	raw, err := os.ReadFile("../webhookauth/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct {
		Provider  string            `json:"provider"`
		Secret    string            `json:"secret"`
		ID        string            `json:"id"`
		Timestamp string            `json:"timestamp"`
		Body      string            `json:"body"`
		Headers   map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, v := range vectors {
		switch v.Provider {
		case "github", "slack", "standard":
		default:
			continue
		}
		ts := time.Unix(0, 0)
		if v.Timestamp != "" {
			n, err := strconv.ParseInt(v.Timestamp, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			ts = time.Unix(n, 0)
		}
		h := signed(t, v.Provider, v.Secret, []byte(v.Body), v.ID, ts)
		for name, want := range v.Headers {
			if got := h.Get(name); got != want {
				t.Errorf("%s: %s = %q, want the published %q", v.Provider, name, got, want)
			}
		}
		checked++
	}
	if checked != 3 {
		t.Fatalf("checked %d vectors, want 3", checked)
	}
}

// TestSignEveryPreset: every preset signs, and prints its signature header
// under the provider's own spelling.
func TestSignEveryPreset(t *testing.T) {
	want := map[string]string{
		"github":   "X-Hub-Signature-256",
		"gitlab":   "X-Gitlab-Token",
		"stripe":   "Stripe-Signature",
		"slack":    "X-Slack-Signature",
		"shopify":  "X-Shopify-Hmac-Sha256",
		"standard": "webhook-signature",
		"svix":     "svix-signature",
	}
	for provider, header := range want {
		d, err := sign(provider, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", []byte(`{}`), "", time.Now())
		if err != nil {
			t.Fatalf("%s: %v", provider, err)
		}
		found := false
		for _, l := range d.lines() {
			found = found || strings.HasPrefix(l, header+": ")
		}
		if !found {
			t.Errorf("%s: no %s line in %q", provider, header, d.lines())
		}
	}
}

func TestSignErrors(t *testing.T) {
	if _, err := sign("nope", "s", nil, "", time.Now()); err == nil || !strings.Contains(err.Error(), "caddy webhook providers") {
		t.Fatalf("unknown provider: %v", err)
	}
	_, err := sign("standard", "whsec_%%%not-base64", nil, "", time.Now())
	if err == nil {
		t.Fatal("a whsec_ secret that is not base64 signed")
	}
	if strings.Contains(err.Error(), "not-base64") {
		t.Fatalf("error repeats the secret: %v", err)
	}
}

// --id only makes sense where the provider sends an id header.
func TestSignRefusesAnIDWithoutAnIDHeader(t *testing.T) {
	for provider, want := range map[string]string{
		"slack":  "recognised by its signature",
		"stripe": "body's top-level id member",
	} {
		_, err := sign(provider, "whsec_c2VjcmV0", []byte(`{}`), "my-id", time.Now())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s --id: %v", provider, err)
		}
	}
	d, err := sign("github", "s", []byte(`{}`), "", time.Now())
	if err != nil || d.id == "" || d.header.Get("X-GitHub-Delivery") != d.id {
		t.Fatalf("github without --id: %v %+v", err, d)
	}
}

// `caddy webhook providers` lists the whole catalogue.
func TestProvidersList(t *testing.T) {
	var b strings.Builder
	if err := writeProviders(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != len(webhookauth.Catalogue())+1 || !strings.HasPrefix(lines[0], "PROVIDER") {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	for i, p := range webhookauth.Catalogue() {
		if f := strings.Fields(lines[i+1]); f[0] != p.Name || f[3] != signatureWhere(p) {
			t.Fatalf("line %q for %s", lines[i+1], p.Name)
		}
	}
}

func TestParseHeaders(t *testing.T) {
	h, err := parseHeaders([]string{"X-GitHub-Event: push", "Content-Type:application/x-www-form-urlencoded"})
	if err != nil || h.Get("X-Github-Event") != "push" || h.Get("Content-Type") != "application/x-www-form-urlencoded" {
		t.Fatalf("%v %v", h, err)
	}
	for _, bad := range []string{"no colon", ": empty name", "Two Words: x"} {
		if _, err := parseHeaders([]string{bad}); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// The default listing fits 100 columns (it wrapped at 190 and more);
// --json carries the whole catalogue.
func TestProvidersNarrowAndJSON(t *testing.T) {
	var b strings.Builder
	if err := writeProvidersNarrow(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != len(webhookauth.Catalogue())+1 {
		t.Fatalf("%d lines", len(lines))
	}
	cut := 0
	for i, l := range lines {
		if n := utf8.RuneCountInString(l); n > narrowWidth {
			t.Errorf("line %d is %d columns: %q", i, n, l)
		}
		if strings.HasSuffix(l, "…") {
			cut++
		}
		if i > 0 && strings.Fields(l)[0] != webhookauth.Catalogue()[i-1].Name {
			t.Errorf("line %d: %q", i, l)
		}
	}
	if cut == 0 {
		t.Error("no scheme was long enough to be cut: the test checks nothing")
	}
	b.Reset()
	if err := writeProvidersJSON(&b); err != nil {
		t.Fatal(err)
	}
	var entries []struct{ Name, Scheme, DedupKey string }
	if err := json.Unmarshal([]byte(b.String()), &entries); err != nil || len(entries) != len(webhookauth.Catalogue()) {
		t.Fatalf("--json: %v, %d entries", err, len(entries))
	}
	for _, e := range entries {
		if e.Name == "" || e.Scheme == "" {
			t.Errorf("--json entry %+v", e)
		}
	}
}
