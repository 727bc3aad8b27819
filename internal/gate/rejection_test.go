package gate

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// problem is the RFC 9457 document Respond writes, as encoding/json would
// write it; appendProblem must match it byte for byte.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Reason Reason `json:"reason"`
}

func checkProblemJSON(t *testing.T, reason Reason, detail string) {
	t.Helper()
	status := reason.Status()
	want, err := json.Marshal(problem{"about:blank", http.StatusText(status), status, detail, reason})
	if err != nil {
		t.Fatal(err)
	}
	got := appendProblem(nil, status, &Rejection{Reason: reason, Detail: detail})
	if string(got) != string(want) {
		t.Fatalf("detail %q:\n got %s\nwant %s", detail, got, want)
	}
}

func TestProblemJSONMatchesEncodingJSON(t *testing.T) {
	for _, d := range []string{
		"",
		"the signature does not match the body with any configured secret",
		`the method "GET<script>" is not allowed here & there`,
		"quotes \" and \\ backslashes",
		"controls \x00\x01\b\f\n\r\t\x1f\x7f",
		"unicode é 漢字 🎉 and separators \u2028 \u2029",
		"invalid utf-8 \xff\xfe and a cut rune \xe6\xbc",
	} {
		checkProblemJSON(t, ReasonSignatureInvalid, d)
	}
	checkProblemJSON(t, ReasonMethodNotAllowed, "x")
	checkProblemJSON(t, ReasonStoreUnavailable, "x")
}

// FuzzProblemJSON: for any detail (a method name in it comes from the
// request), the hand-written JSON is what encoding/json writes.
func FuzzProblemJSON(f *testing.F) {
	f.Add("the method \"PROPFIND\" is not allowed here")
	f.Add("<>&\u2028\xff")
	f.Fuzz(func(t *testing.T, detail string) {
		checkProblemJSON(t, ReasonMethodNotAllowed, detail)
	})
}

func TestRespondHeaders(t *testing.T) {
	rec := httptest.NewRecorder()
	rej := Reject(ReasonDeliveryInProgress, "wait").WithRetryAfter(3)
	if err := Respond(rec, rej, OnRejectRespond); err != nil {
		t.Fatal(err)
	}
	h := rec.Header()
	for name, want := range map[string]string{
		"Content-Type":           "application/problem+json",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
		"Retry-After":            "3",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if rec.Code != 409 || h.Get("Content-Length") != itoa(rec.Body.Len()) {
		t.Fatalf("status %d, Content-Length %s for %d bytes", rec.Code, h.Get("Content-Length"), rec.Body.Len())
	}
	// Header values must not share a backing array another response
	// could see: appending to one must not touch the others.
	h["Cache-Control"] = append(h["Cache-Control"], "private")
	if h.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatal("header values alias each other")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestVerdict(t *testing.T) {
	ctx := context.WithValue(context.Background(), caddyhttp.VarsCtxKey, map[string]any{})
	if _, ok := Refused(ctx); ok {
		t.Fatal("a request nobody refused reads as refused")
	}
	SetRefused(ctx, ReasonSignatureInvalid)
	if r, ok := Refused(ctx); !ok || r != ReasonSignatureInvalid || !r.SenderFault() {
		t.Fatalf("%q %v", r, ok)
	}
	if n := testing.AllocsPerRun(100, func() { SetRefused(ctx, ReasonBodyTooLarge) }); n != 0 {
		t.Fatalf("SetRefused allocates %v times", n)
	}
}
