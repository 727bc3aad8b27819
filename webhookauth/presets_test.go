package webhookauth

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// The README's provider table is generated from the catalogue; this fails
// when someone changed one without the other.
func TestReadmeProviderTable(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := SpliceProviderTable(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	if want != string(raw) {
		t.Fatal("README.md's provider table is stale: run go generate ./webhookauth")
	}
}

// Every entry is complete: a name users can type, a summary, a doc link,
// a key kind, and a scheme that compiles.
func TestCatalogueEntries(t *testing.T) {
	for _, p := range Catalogue() {
		if p.Name != strings.ToLower(p.Name) || p.Name == "" {
			t.Errorf("%q: names are lowercase", p.Name)
		}
		if p.Summary == "" || !strings.HasPrefix(p.DocURL, "https://") || p.Key == "" {
			t.Errorf("%s: summary, doc link and key kind are required", p.Name)
		}
		// The README's tables are Markdown: a '|' would split a cell.
		texts := []string{p.Summary, p.Unsigned}
		if p.Handshake != nil {
			texts = append(texts, p.Handshake.Summary)
		}
		for _, text := range texts {
			if strings.Contains(text, "|") {
				t.Errorf("%s: %q has a '|', which breaks the README's tables", p.Name, text)
			}
		}
		if p.Key == KeyFetched {
			if p.SignatureIn == "" {
				t.Errorf("%s: a fetched-key preset says where its signature is", p.Name)
			}
		} else if p.JWT != nil {
			if p.JWT.Header == "" || !reflect.ValueOf(p.Scheme).IsZero() {
				t.Errorf("%s: a JWT preset names its header and has no scheme", p.Name)
			}
		} else if _, err := p.Scheme.Compile(); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
		for _, n := range append([]string{p.Name}, p.Aliases...) {
			if got, err := LookupPreset(strings.ToUpper(n)); err != nil || got.Name != p.Name {
				t.Errorf("%s: LookupPreset(%q) = %q, %v", p.Name, n, got.Name, err)
			}
		}
	}
	if _, err := LookupPreset("nope"); err == nil || !strings.Contains(err.Error(), "caddy webhook providers") || strings.Contains(err.Error(), "github") {
		t.Fatalf("unknown provider: %v", err)
	}
	// A typo gets the nearest names, not the whole list.
	for typo, want := range map[string]string{"githib": "did you mean github?", "strpe": "did you mean stripe?",
		"twillio": "did you mean twilio?", "micro": "did you mean microsoft_graph or microsoft_teams?", "Shopfy": "did you mean shopify?"} {
		if _, err := LookupPreset(typo); err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "zendesk") {
			t.Errorf("%s: %v", typo, err)
		}
	}
}

// A summary that quotes a separator of the signed payload (`+ "." +`)
// quotes the one the scheme signs (telnyx's said "/" where it signs "|"):
// and `caddy webhook providers --provider` prints the payload generated
// from the scheme beside it.
func TestSummarySeparatorsMatchTheScheme(t *testing.T) {
	re := regexp.MustCompile(`\+ \\?"([^"\\]{1,3})\\?" \+`)
	checked := 0
	for _, p := range Catalogue() {
		for _, m := range re.FindAllStringSubmatch(p.Summary, -1) {
			checked++
			if !strings.Contains(p.Scheme.SignedPayload, m[1]) {
				t.Errorf("%s: the summary joins with %q, the signed payload %q does not", p.Name, m[1], p.Scheme.SignedPayload)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no summary quotes a separator: the pattern is stale")
	}
}
