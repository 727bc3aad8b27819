package webhookauth

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// statusBackend answers with the next status of its list.
type statusBackend struct {
	statuses []int
	calls    int
}

func (b *statusBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(b.statuses[b.calls])
	b.calls++
	return nil
}

func TestDedupMemoryThroughHandler(t *testing.T) {
	h := newHandler(t, &Handler{Provider: "github", Secrets: []string{"s"}, Dedup: caddy.Duration(DefaultDedupTTL)})
	body := []byte(`{"a":1}`)
	send := func(id string, be *statusBackend) (int, string, string) {
		r := signed(t, "github", "s", body, testNow)
		r.Header.Set("X-GitHub-Delivery", id)
		w, repl, err := serve(h, r, be)
		if err != nil {
			t.Fatal(err)
		}
		res, _ := repl.GetString("http.webhook.result")
		return w.Code, w.Body.String(), res
	}
	be := &statusBackend{statuses: []int{500, 204}}
	id := "dedup-" + time.Now().Format(time.RFC3339Nano)
	if code, _, _ := send(id, be); code != 500 {
		t.Fatalf("first attempt %d", code)
	}
	if code, _, _ := send(id, be); code != 204 {
		t.Fatalf("retry after a failure: %d, want the backend's 204", code)
	}
	code, out, res := send(id, be)
	if code != 200 || !strings.Contains(out, `"status":"duplicate"`) || res != "duplicate" || be.calls != 2 {
		t.Fatalf("copy after success: %d %s %s, backend calls %d", code, out, res, be.calls)
	}

	// Without a delivery id header, the signature identifies the delivery.
	be = &statusBackend{statuses: []int{200}}
	r := signed(t, "github", "s", []byte(`{"no":"id"}`), testNow)
	serve(h, r, be)
	r = signed(t, "github", "s", []byte(`{"no":"id"}`), testNow)
	w, _, _ := serve(h, r, be)
	if be.calls != 1 || !strings.Contains(w.Body.String(), "duplicate") {
		t.Fatalf("same signature twice: backend calls %d, answer %s", be.calls, w.Body.String())
	}
}
