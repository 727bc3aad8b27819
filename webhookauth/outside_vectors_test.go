package webhookauth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// moreVector is one entry of testdata/providers-more.json, a copy of the
// project's shared vectors: each made with test keys and checked by the
// provider's official SDK (checked_by) or recomputed from its docs.
type moreVector struct {
	Provider  string            `json:"provider"`
	Variant   string            `json:"variant"`
	Name      string            `json:"name"`
	Kind      string            `json:"kind"`
	Expect    string            `json:"expect"`
	CheckedBy string            `json:"checked_by"`
	Secret    string            `json:"secret"`
	VerifyAt  int64             `json:"verify_at"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Body      string            `json:"body"`
	Headers   map[string]string `json:"headers"`
}

// presetFor maps a vector's provider to the preset that verifies it:
// Clerk and Resend send Svix's scheme under Svix's header names.
var presetFor = map[string]string{"shopify": "shopify", "svix": "svix", "clerk": "svix", "resend": "svix"}

// TestOutsideVectors checks the presets against vectors that our own
// signer did not make, valid and invalid ones alike. Asymmetric variants
// (Standard Webhooks v1a) wait for the engine that verifies them.
func TestOutsideVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/providers-more.json")
	if err != nil {
		t.Fatal(err)
	}
	var vecs []moreVector
	if err := json.Unmarshal(raw, &vecs); err != nil {
		t.Fatal(err)
	}
	checked := map[string]int{}
	for _, vec := range vecs {
		preset, ok := presetFor[vec.Provider]
		if !ok || vec.Kind != "delivery" || vec.Variant == "v1a" {
			continue
		}
		if vec.CheckedBy == "" {
			t.Fatalf("%s: no checked_by", vec.Name)
		}
		t.Run(vec.Name, func(t *testing.T) {
			now := time.Now()
			tolerance := time.Duration(0)
			if vec.VerifyAt != 0 {
				now, tolerance = time.Unix(vec.VerifyAt, 0), 5*time.Minute
			}
			v := presetVerifier(t, preset, tolerance, vec.Secret)
			target := vec.URL
			if target == "" {
				target = "/hook"
			}
			r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(vec.Body))
			for k, val := range vec.Headers {
				r.Header.Set(k, val)
			}
			_, rej := verify(v, r, []byte(vec.Body), now)
			if (rej == nil) != (vec.Expect == "valid") {
				t.Fatalf("expect %s, got %v (checked by %s)", vec.Expect, rej, vec.CheckedBy)
			}
		})
		checked[preset]++
	}
	// Outside vectors for the other presets: github, slack and standard
	// in TestPublishedVectors (testdata/vectors.json), stripe against
	// stripe-go and svix/standard against their Go libraries in the
	// command package's tests.
	for _, p := range []string{"shopify", "svix"} {
		if checked[p] < 2 {
			t.Errorf("only %d outside vectors checked for %s", checked[p], p)
		}
	}
}
