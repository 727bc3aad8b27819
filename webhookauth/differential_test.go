package webhookauth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// The gate reads signed values from bodies with one reader (jsonscan.go).
// A backend reads the same bytes with its own: Python's json and
// JavaScript's JSON.parse match member names exactly and keep the last
// copy (as encoding/json does into a map), Go's encoding/json into a
// struct matches names in any letter case and keeps the last. These
// tests hold the gate to: whatever value it verified is the value every
// one of those readers gets, or the gate refuses.

// backendReads decodes body as a backend would and returns the string at
// path, once with exact names (map: Python, JavaScript) and, for a
// top-level name, once with Go's case-insensitive struct matching.
func backendReads(body []byte, path string) (exact string, exactOK bool, folded string, foldedOK bool) {
	var doc any
	if json.Unmarshal(body, &doc) == nil {
		v := doc
		for _, name := range strings.Split(path, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[name]
		}
		exact, exactOK = v.(string)
	}
	if strings.Contains(path, ".") {
		return exact, exactOK, exact, exactOK
	}
	typ := reflect.StructOf([]reflect.StructField{{Name: "F", Type: reflect.TypeOf((*string)(nil)), Tag: reflect.StructTag(`json:"` + path + `"`)}})
	ptr := reflect.New(typ)
	if json.Unmarshal(body, ptr.Interface()) == nil {
		if f := ptr.Elem().Field(0); !f.IsNil() {
			folded, foldedOK = f.Elem().String(), true
		}
	}
	return exact, exactOK, folded, foldedOK
}

// signedPaths are the members some preset verifies or keys on.
var signedPaths = []string{"Message", "TopicArn", "MessageId", "Type", "Subject", "id", "type", "clientState",
	"signature.token", "signature.timestamp", "data.id", "message.messageId", "event_type", "webhookTimestamp"}

// FuzzSignedMembersAgree: for any body, a string the gate's reader finds
// at a path is exactly what each backend reader finds there.
func FuzzSignedMembersAgree(f *testing.F) {
	for _, s := range []string{
		`{"Message":"evil","Type":"Notification","message":"signed"}`,
		`{"Message":"a","Message":"b"}`, `{"Mess\u0061ge":"esc"}`, `{"TopicArn":"x","topicArn":"y"}`,
		"\ufeff{\"id\":\"bom\"}", "{\"id\":\"bad \xff utf-8\"}", `{"id":"lone \ud800"}`, `{"id":"pair \ud83d\ude00"}`,
		`{"signature":{"token":"t","Token":"u"}}`, `{"signature":{"token":"t"},"Signature":{"token":"u"}}`,
		`{"data":{"id":"1"},"data":{"id":"2"}}`, `{"\u0130d":"dotted"}`, `{"ſignature":{"token":"long s"}}`,
		`{"K":"kelvin","\u212a":"sign"}`, `{"id":"a\u0000b"}`, `{"id":1}`, `{"id":null}`, `[]`, `{"id":"x"} trailing`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		b := []byte(body)
		// One walk for several members finds what one walk per member
		// finds.
		var vals [len(snsMembers)][]byte
		var res [len(snsMembers)]lookupResult
		if jsonMembers(b, snsMembers[:], vals[:], res[:]) {
			for i, name := range snsMembers {
				if v, r := jsonMember(b, name); r != res[i] || string(v) != string(vals[i]) {
					t.Fatalf("%q: %s: jsonMembers %d %q, jsonMember %d %q", body, name, res[i], vals[i], r, v)
				}
			}
		}
		for _, path := range signedPaths {
			val, res := jsonLookup(b, path)
			if res != jsonFound || len(val) == 0 || val[0] != '"' || !json.Valid(b) {
				continue
			}
			got, ok := stringValue(val)
			if !ok {
				continue // refused: not a value any reader agrees on
			}
			exact, exactOK, folded, foldedOK := backendReads(b, path)
			if !exactOK || exact != got {
				t.Fatalf("%q: the gate reads %s as %q, Python and JavaScript %q (%v)", body, path, got, exact, exactOK)
			}
			if !foldedOK || folded != got {
				t.Fatalf("%q: the gate reads %s as %q, Go's encoding/json %q (%v)", body, path, got, folded, foldedOK)
			}
		}
	})
}

// FuzzSNSMessage: a body the gate reads as an SNS message has, for every
// member SNS signs, the value every backend reader sees; the canonical
// string is built from exactly those.
func FuzzSNSMessage(f *testing.F) {
	for _, v := range []string{
		`{"Type":"Notification","MessageId":"1","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":"m","Timestamp":"2025-06-15T15:06:40.123Z","SignatureVersion":"2","Signature":"AA==","SigningCertURL":"https://sns.us-east-1.amazonaws.com/a.pem"}`,
		`{"Type":"Notification","Subject":"","Message":"","MessageId":"1","Timestamp":"t","TopicArn":"a"}`,
		`{"Type":"SubscriptionConfirmation","Token":"t","SubscribeURL":"https://x","MessageId":"1","Message":"m","Timestamp":"t","TopicArn":"a"}`,
		`{"Type":"Other"}`, `[]`, `{"Type":"Notification","Subject":null}`, `{"Message":"a\nb","Type":"Notification"}`,
		`{"Message":"evil","Type":"Notification","MessageId":"1","Timestamp":"t","TopicArn":"a","message":"signed"}`,
		`{"Type":"Notification","MessageId":"1","Timestamp":"t","TopicArn":"a","topicArn":"victim","Message":"m"}`,
		`{"Type":"Notification","MessageId":"1","Timestamp":"t","TopicArn":"a","Message":"m","Message":"n"}`,
		`{"Type":"Notification","MessageId":"1","Timestamp":"t","TopicArn":"a","Mess\u0061ge":"escaped"}`,
		"{\"Type\":\"Notification\",\"MessageId\":\"1\",\"Timestamp\":\"t\",\"TopicArn\":\"a\",\"Message\":\"\xff\"}",
		`{"Type":"Notification","MessageId":"1","Timestamp":"t","TopicArn":"a","Message":"\udc00"}`,
		"\ufeff{\"Type\":\"Notification\",\"MessageId\":\"1\",\"Timestamp\":\"t\",\"TopicArn\":\"a\",\"Message\":\"m\"}",
		`{"Type":"Notification","MessageId":"1","Timestamp":"t","TopicArn":"a","Message":"m","Subject":"s","SUBJECT":"t"}`,
	} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, body string) {
		m, rej := parseSNS([]byte(body))
		if rej != nil {
			return
		}
		got, ok := snsCanonical(&m)
		if !ok {
			return
		}
		var want strings.Builder
		names := []string{"Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"}
		if m.Type != "Notification" {
			names = []string{"Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"}
		}
		for _, n := range names {
			exact, exactOK, folded, foldedOK := backendReads([]byte(body), n)
			if exactOK != foldedOK || exact != folded {
				t.Fatalf("%q: backends disagree on %s (%q, %q), and the gate accepted it", body, n, exact, folded)
			}
			if !exactOK {
				switch n {
				case "Subject":
					continue // absent (or null): not signed
				case "Message":
					want.WriteString("Message\n\n") // absent: signed empty
					continue
				}
				t.Fatalf("%q: the gate signed %s that a backend does not see", body, n)
			}
			want.WriteString(n + "\n" + exact + "\n")
		}
		if string(got) != want.String() {
			t.Fatalf("%q: the gate verifies %q, a backend reads %q", body, got, want.String())
		}
	})
}

// mutations turn a body signed in its fields into the shapes a parser
// differential needs: a second copy of a signed member, before or
// after, in another letter case, spelled in escapes, a BOM, bytes that
// are not UTF-8, a lone surrogate.
func mutations(body, member, value string) []string {
	key := `"` + member + `":`
	i := strings.Index(body, key)
	if i < 0 {
		return nil
	}
	evil := `"` + member + `":"evil",`
	upper := `"` + strings.ToUpper(member[:1]) + member[1:] + `":"evil",`
	lower := `"` + strings.ToLower(member[:1]) + member[1:] + `":"evil",`
	escaped := strings.Replace(key, member[:1], fmt.Sprintf(`\u%04x`, member[0]), 1)
	return []string{
		body[:i] + evil + body[i:],
		body[:i] + upper + body[i:],
		body[:i] + lower + body[i:],
		body[:i] + escaped + `"evil",` + body[i:],
		strings.Replace(body, key, escaped, 1),
		"\ufeff" + body,
		strings.Replace(body, key+`"`+value, key+`"`+value+"\xff", 1),
		strings.Replace(body, key+`"`+value, key+`"`+value+`\ud800`, 1),
	}
}

// Mailgun and Adyen sign members of the body, not its bytes: every
// mutation of a valid delivery is refused, or the members a backend
// reads are the ones that were signed.
func TestFieldSignedMutations(t *testing.T) {
	vecs := map[string]moreVector{}
	for _, v := range loadVectors(t, "providers-more.json") {
		vecs[v.Name] = v
	}
	const item = "notificationItems.[].NotificationRequestItem."
	for _, c := range []struct {
		vector, provider string
		members          []string // dotted paths; [] fans out over an array
	}{
		{"mailgun-valid", "mailgun", []string{"signature.token", "signature.timestamp", "signature.signature"}},
		{"adyen-standard-published", "adyen", []string{item + "pspReference", item + "merchantAccountCode", item + "eventCode", item + "success", item + "additionalData.hmacSignature"}},
	} {
		v := vecs[c.vector]
		if v.Body == "" {
			t.Fatalf("no vector %s", c.vector)
		}
		ver := presetVerifier(t, c.provider, 0, v.Secret)
		r := httptest.NewRequest(http.MethodPost, "/hook", nil)
		if _, rej := verify(ver, r, []byte(v.Body), testNow); rej != nil {
			t.Fatalf("%s: the valid vector: %v", c.vector, rej)
		}
		original := map[string]string{}
		for _, m := range c.members {
			original[m] = memberValue(t, v.Body, m)
		}
		tried := 0
		for _, m := range c.members {
			name := m[strings.LastIndexByte(m, '.')+1:]
			for _, body := range mutations(v.Body, name, original[m]) {
				tried++
				if _, rej := verify(ver, r, []byte(body), testNow); rej != nil {
					continue
				}
				for _, m2 := range c.members {
					if got := memberValue(t, body, m2); got != original[m2] {
						t.Errorf("%s: %q verified, but a backend reads %s as %q (signed: %q)", c.vector, body, m2, got, original[m2])
					}
				}
			}
		}
		if tried < 8*len(c.members) {
			t.Fatalf("%s: only %d mutations tried", c.vector, tried)
		}
	}
}

// memberValue is what a JavaScript or Python backend reads at path
// (exact names, the last copy wins; "[]" fans out over an array, the
// values joined by commas).
func memberValue(t *testing.T, body, path string) string {
	var doc any
	if json.Unmarshal([]byte(body), &doc) != nil {
		return "<no document>"
	}
	vals := []any{doc}
	for _, seg := range strings.Split(path, ".") {
		var next []any
		for _, v := range vals {
			switch x := v.(type) {
			case map[string]any:
				if seg != "[]" {
					next = append(next, x[seg])
				}
			case []any:
				if seg == "[]" {
					next = append(next, x...)
				}
			}
		}
		vals = next
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = fmt.Sprint(v)
	}
	return strings.Join(out, ",")
}
