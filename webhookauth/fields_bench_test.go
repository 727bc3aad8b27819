package webhookauth

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fieldCase is a valid delivery of a scheme that reads fields of the
// body, with n unsigned fields (or items) added.
type fieldCase struct {
	name string
	v    *Verifier
	r    *http.Request
	body []byte
	now  time.Time
}

// fieldCases builds Twilio form, Mailgun and Adyen deliveries with 1 and
// 100 parameters, event fields or notification items.
func fieldCases(t testing.TB) []fieldCase {
	vecs := map[string]moreVector{}
	for _, v := range loadVectors(t, "providers-more.json") {
		vecs[v.Name] = v
	}
	mg, ad := vecs["mailgun-valid"], vecs["adyen-standard-published"]
	item := ad.Body[strings.Index(ad.Body, "[")+1 : strings.LastIndex(ad.Body, "]")]
	var cases []fieldCase
	for _, n := range []int{1, 100} {
		// Twilio: n form parameters, signed over the URL and the sorted
		// parameters.
		var form []string
		for i := range n {
			form = append(form, fmt.Sprintf("Param%03d=value+%d%%2C+caf%%C3%%A9", n-i, i))
		}
		body := []byte(strings.Join(form, "&"))
		secret := testSecrets["twilio"][0]
		cases = append(cases, fieldCase{fmt.Sprintf("twilio_form/%d", n), presetVerifier(t, "twilio", 0, secret), signed(t, "twilio", secret, body, testNow), body, testNow})

		// Mailgun: n unsigned fields in event-data.
		var extra strings.Builder
		for i := range n {
			fmt.Fprintf(&extra, `,"field%d":{"v":[%d,"x\"y"]}`, i, i)
		}
		body = []byte(strings.Replace(mg.Body, `"event":"delivered"`, `"event":"delivered"`+extra.String(), 1))
		cases = append(cases, fieldCase{fmt.Sprintf("mailgun/%d", n), presetVerifier(t, "mailgun", 0, mg.Secret), httptest.NewRequest(http.MethodPost, "/hook", nil), body, testNow})

		// Adyen: n notification items, each signed.
		items := strings.TrimSuffix(strings.Repeat(item+",", n), ",")
		body = []byte(strings.Replace(ad.Body, item, items, 1))
		cases = append(cases, fieldCase{fmt.Sprintf("adyen/%d", n), presetVerifier(t, "adyen", 0, ad.Secret), httptest.NewRequest(http.MethodPost, "/hook", nil), body, testNow})
	}
	return cases
}

// The schemes that read fields of the body verify without allocating
// once warm beyond one string, however many fields or items the body has: fields are read
// from the bytes, and the form canonicaliser reuses its buffers.
func TestFieldSchemesAllocateNothing(t *testing.T) {
	if raceEnabled {
		// The race detector makes sync.Pool drop items at random; the
		// unit pass of ./scripts/test runs this without it.
		t.Skip("allocation counts are only exact without -race")
	}
	for _, c := range fieldCases(t) {
		if _, rej := verify(c.v, c.r, c.body, c.now); rej != nil {
			t.Fatalf("%s: %v", c.name, rej)
		}
		allocs := testing.AllocsPerRun(50, func() {
			if _, rej := verify(c.v, c.r, c.body, c.now); rej != nil {
				t.Fatalf("%s: %v", c.name, rej)
			}
		})
		// One string each, whatever the body's size: Mailgun's
		// timestamp, copied into Verification.Timestamp, and the URL
		// Twilio signs, built from the request.
		want := 0.0
		if strings.HasPrefix(c.name, "mailgun") || strings.HasPrefix(c.name, "twilio") {
			want = 1
		}
		if allocs != want {
			t.Errorf("%s: %v allocations per verification, want %v", c.name, allocs, want)
		}
	}
}

// BenchmarkVerifyFields measures the schemes that read fields of the
// body, with 1 and 100 parameters, event fields or items.
//
//	go test ./webhookauth -run '^$' -bench 'VerifyFields' -benchmem -count 6
func BenchmarkVerifyFields(b *testing.B) {
	for _, c := range fieldCases(b) {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, rej := verify(c.v, c.r, c.body, c.now); rej != nil {
					b.Fatal(rej)
				}
			}
		})
	}
}
