package caddyfile

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

var update = flag.Bool("update", false, "rewrite the expected JSON of the adapt golden files")

const separator = "----------"

// TestAdaptGolden adapts every testdata/*.caddyfiletest (a Caddyfile, a
// line of dashes, the expected JSON) and compares the result.
func TestAdaptGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			caddyfileText, expected, ok := strings.Cut(string(raw), separator+"\n")
			if !ok {
				t.Fatalf("%s has no %s line", f, separator)
			}
			if *update {
				out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfileText), nil)
				if err != nil {
					t.Fatal(err)
				}
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, out, "", "\t"); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, []byte(caddyfileText+separator+"\n"+pretty.String()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !caddytest.CompareAdapt(t, f, caddyfileText, "caddyfile", strings.TrimRight(expected, "\n")) {
				t.Fatalf("%s: adapted JSON differs (see the diff above)", f)
			}
		})
	}
}

// TestAdaptErrors checks that bad configurations fail with a message
// that says what is wrong.
func TestAdaptErrors(t *testing.T) {
	for _, c := range []struct {
		name, caddyfile, want string
	}{
		{"unknown subdirective", `webhook_auth github {
			secret s
			secrte t
		}`, "webhook_auth: unknown subdirective 'secrte'"},
		{"repeated subdirective", `webhook_auth github {
			secret s
			max_body 1MB
			max_body 2MB
		}`, "webhook_auth: subdirective 'max_body' given more than once"},
		{"unknown provider", `webhook_auth gitbub {
			secret s
		}`, `unknown provider "gitbub"`},
		{"no secret", `webhook_auth github`, "at least one 'secret' is required"},
		{"two providers", `webhook_auth github stripe {
			secret s
		}`, "unexpected argument 'stripe'"},
		{"bad size", `webhook_auth github {
			secret s
			max_body lots
		}`, "'max_body lots' is not a valid size"},
		{"bad duration", `webhook_auth stripe {
			secret s
			tolerance soon
		}`, "'tolerance soon' is not a valid duration"},
		{"bad choice", `webhook_auth {
			secret s
			signature_header X-Sig
			algorithm md5
		}`, "'algorithm md5' is not valid"},
		{"bad template", `webhook_auth {
			secret s
			signature_header X-Sig
			signed_payload "{timestamp}.{bdy}"
		}`, "unknown token {bdy}"},
		{"secret without value", `webhook_auth github {
			secret
		}`, "'secret' has no value: if it is written {$NAME}"},
		{"two secrets on one line", `webhook_auth github {
			secret a b
		}`, "'secret' takes exactly one argument (one secret per line"},
		{"queue without deliver", `webhook_queue q`, "a 'deliver' block is required"},
		{"queue without a name", `webhook_queue {
			deliver {
				reverse_proxy app:8080
			}
		}`, "a name is required"},
		{"queue answering 404", `webhook_queue q {
			respond 404
		}`, "the answer to a stored delivery is a 2xx status"},
		{"queue retrying a success", `webhook_queue q {
			retry_on 200
		}`, "200 is a success, never retried"},
		{"queue zero delay", `webhook_queue q {
			retry 0s
		}`, "is not a positive duration"},
		{"queue bad rate", `webhook_queue q {
			rate ten
		}`, "must be <events>/<window>"},
		{"queue unknown subdirective", `webhook_queue q {
			retries 5
		}`, "webhook_queue: unknown subdirective 'retries'"},
		{"queue negative min_replicas", `webhook_queue q {
			min_replicas -1
		}`, "'min_replicas -1' must be a whole number"},
		{"queue zero shards", `webhook_queue q {
			shards 0
		}`, "'shards 0' must be a whole number from 1 to 64"},
		{"queue bad visibility", `webhook_queue q {
			visibility_timeout soon
		}`, "visibility_timeout"},
		{"queue empty deliver", `webhook_queue q {
			deliver {
			}
		}`, "'deliver' needs at least one handler"},
		{"size in two words", `webhook_auth github {
			secret s
			max_body 10 MB
		}`, "webhook_auth: 'max_body' takes exactly one argument"},
		{"zero read timeout", `webhook_auth github {
			secret s
			read_timeout 0
		}`, "'read_timeout' must be longer than 0"},
		{"paypal without webhook_id", `webhook_auth paypal`, "'webhook_id' is required"},
		{"pubsub with a secret", `webhook_auth pubsub {
			secret s
			audience a
		}`, "it takes no 'secret'"},
		{"handshake on a preset without one", `webhook_auth github {
			secret s
			handshake off
		}`, "'handshake' applies to providers that have one: slack, dropbox, meta"},
		{"verify_token on another preset", `webhook_auth x {
			secret s
			verify_token t
		}`, "'verify_token' applies to meta"},
		{"bad handshake", `webhook_auth zoom {
			secret s
			handshake maybe
		}`, "'handshake maybe' is not valid"},
		{"bad forward_signature", `webhook_auth gitlab {
			secret s
			forward_signature maybe
		}`, "'forward_signature maybe' is not valid"},
		{"scope without dedup", `webhook_auth github {
			secret s
			dedup_scope github-senders
		}`, "apply to dedup: add 'dedup'"},
		{"public-key preset without a key", `webhook_auth discord`, "at least one 'public_key' is required"},
		{"separator on a plain header", `webhook_auth {
			secret s
			signature_header X-Sig
			signature_separator ;
		}`, "apply to signature_format stripe"},
		{"methods without value", `webhook_auth github {
			secret s
			methods
		}`, "'methods' needs at least one method"},
		{"zero events", `webhook_rate_limit {
			rate 0/1m
		}`, "the number of events must be at least 1"},
		{"zero window", `webhook_rate_limit {
			rate 10/0s
		}`, "the window must be longer than 0"},
		{"unknown count", `webhook_rate_limit {
			rate 10/1m
			count failures
		}`, "count"},
		{"words for events", `webhook_rate_limit {
			rate ten/1m
		}`, `"ten" is not a whole number of events`},
		{"no slash", `webhook_rate_limit {
			rate 10
		}`, "must be <events>/<window>"},
		{"bad window", `webhook_rate_limit {
			rate 10/fortnight
		}`, `"fortnight" is not a duration`},
		{"negative burst", `webhook_rate_limit {
			rate 10/1m
			burst -5
		}`, "'burst -5' must be a whole number of at least 1"},
		{"no rate", `webhook_rate_limit {
			burst 5
		}`, "'rate' is required"},
		{"repeated rate", `webhook_rate_limit {
			rate 10/1m
			rate 20/1m
		}`, "subdirective 'rate' given more than once"},
		{"unknown rate limit subdirective", `webhook_rate_limit {
			rate 10/1m
			limit 5
		}`, "webhook_rate_limit: unknown subdirective 'limit'"},
		{"bad headers value", `webhook_rate_limit {
			rate 10/1m
			headers yes
		}`, "'headers yes' is not valid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := ":8080 {\n" + c.caddyfile + "\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// An unset {$VAR} as a secret: the Caddyfile replaces it with nothing
// before the directive sees it, so the error reads the variable's name
// back from the file's line and says how to fix it.
func TestUnsetEnvSecretNamed(t *testing.T) {
	f := filepath.Join(t.TempDir(), "Caddyfile")
	src := ":8080 {\n\twebhook_auth github {\n\t\tsecret {$WEBHOOKAUTH_SURELY_UNSET_42}\n\t}\n\trespond ok\n}\n"
	if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": f})
	if err == nil || !strings.Contains(err.Error(), "environment variable WEBHOOKAUTH_SURELY_UNSET_42 is unset or empty") ||
		!strings.Contains(err.Error(), "{env.WEBHOOKAUTH_SURELY_UNSET_42}") {
		t.Fatalf("%v", err)
	}
}

// The subdirective list each directive suggests from is the list its
// parser takes: every name an unknown subdirective's error offers is
// known to the parser, and a typo gets the nearest one.
func TestSubdirectiveSuggestions(t *testing.T) {
	adapt := func(block string) error {
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":8080 {\n\troute {\n\t\t"+block+"\n\t}\n}\n"), nil)
		return err
	}
	for _, c := range []struct{ open, typo, want string }{
		{"webhook_auth github", "dedup_scop", "did you mean dedup_scope?"},
		{"webhook_rate_limit", "max_key", "did you mean max_keys?"},
		{"webhook_queue q", "retyr", "did you mean retry?"},
	} {
		err := adapt(c.open + " {\n\t\t\t" + c.typo + " x\n\t\t}")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: %v", c.open, c.typo, err)
		}
		err = adapt(c.open + " {\n\t\t\tzzzzzzzzzz x\n\t\t}")
		_, list, ok := strings.Cut(fmt.Sprint(err), "(it takes ")
		if !ok {
			t.Fatalf("%s: no list of subdirectives in %v", c.open, err)
		}
		list, _, _ = strings.Cut(list, ")")
		names := strings.Split(list, ", ")
		if len(names) < 9 {
			t.Fatalf("%s: %d subdirectives listed", c.open, len(names))
		}
		for _, n := range names {
			if err := adapt(c.open + " {\n\t\t\t" + n + " x\n\t\t}"); err != nil && strings.Contains(err.Error(), "unknown subdirective") {
				t.Errorf("%s lists %q, which its parser does not know: %v", c.open, n, err)
			}
		}
	}
}

// TestAdaptEveryPresetAndAlias: every preset, by its name and by each
// alias, is accepted by `caddy adapt` with the settings it requires, and
// the adapted config names the provider as written.
func TestAdaptEveryPresetAndAlias(t *testing.T) {
	n := 0
	for _, p := range webhookauth.Catalogue() {
		key := "secret {env.S}"
		switch {
		case p.Key == webhookauth.KeyPublic:
			key = "public_key MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="
		case p.Name == "sns":
			key = "topic_arn arn:aws:sns:us-east-1:123456789012:t"
		case p.Name == "paypal":
			key = "webhook_id WH-1"
		case p.Name == "pubsub":
			key = "audience https://hooks.example.com/p\n\t\tservice_account *"
		case p.JWT != nil:
			key += "\n\t\taudience *"
		case p.Handshake != nil && p.Handshake.EnrollParam != "":
			key = "" // its secrets are learned (armed handshakes)
		}
		for _, name := range append([]string{p.Name}, p.Aliases...) {
			text := fmt.Sprintf(":8080 {\n\twebhook_auth %s {\n\t\t%s\n\t}\n\trespond 200\n}\n", name, key)
			if key == "" {
				text = fmt.Sprintf(":8080 {\n\twebhook_auth %s\n\trespond 200\n}\n", name)
			}
			out, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), nil)
			if err != nil || len(warn) > 0 {
				t.Errorf("%s: %v %v", name, err, warn)
				continue
			}
			if !bytes.Contains(out, []byte(`"provider":"`+name+`"`)) {
				t.Errorf("%s: adapted to %s", name, out)
			}
			n++
		}
	}
	if n < len(webhookauth.Catalogue()) {
		t.Fatalf("only %d adapted", n)
	}
}
