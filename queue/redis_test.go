package queue

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/webhookauth/caddy-webhookauth/internal/redistest"
)

func openRedis(t *testing.T, srv *redistest.Server, consumer string, conc int, vis time.Duration) *RedisStore {
	t.Helper()
	s, err := NewRedisStore(context.Background(), srv.Client(), "test:q:", "orders", consumer, time.Second, vis, conc, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fresh(s *RedisStore) { s.statsMu.Lock(); s.statsAt = time.Time{}; s.statsMu.Unlock() }

func redisStats(t *testing.T, s *RedisStore) Stats {
	t.Helper()
	fresh(s)
	return stats(t, s)
}

// Every state change on Redis, with the counts: add, take, retry later,
// due again, dead, redrive, delivered (retained, expired), drop; pause.
func TestRedisStoreStates(t *testing.T) {
	srv := redistest.Start(t)
	s := openRedis(t, srv, "a", 10, time.Minute)
	now := time.Now()
	a := add(t, s, now, "aaaa")
	b := add(t, s, now.Add(time.Millisecond), "bb")
	// Times are kept to the microsecond.
	if st := redisStats(t, s); st.Pending != 2 || st.Bytes != 6 || !st.Oldest.Equal(now.Truncate(time.Microsecond)) {
		t.Fatalf("after two adds: %+v", st)
	}
	due, err := s.Due(now, 10, nil)
	if err != nil || len(due) != 2 || due[0].ID != a || due[1].ID != b {
		t.Fatalf("due: %v %+v", err, due)
	}
	// Taken: not handed out again.
	if again, _ := s.Due(now, 10, nil); len(again) != 0 {
		t.Fatalf("taken items handed out again: %+v", again)
	}
	_, req, body, err := s.Load(a)
	if err != nil || string(body) != "aaaa" || req.Header.Get("X-A") != "secret-ish" || req.URI != "/hook?x=1" {
		t.Fatalf("load: %v %q %+v", err, body, req)
	}
	// a: retry in a minute; b: dead.
	if err := s.Finish([]Finished{{ID: a, Outcome: Outcome{Next: now.Add(time.Minute), Status: 503}}, {ID: b, Outcome: Outcome{Dead: true, Status: 400}}}); err != nil {
		t.Fatal(err)
	}
	if st := redisStats(t, s); st.Pending != 1 || st.Dead != 1 || st.Bytes != 6 {
		t.Fatalf("after a retry and a dead: %+v", st)
	}
	if next, ok, _ := s.NextDue(); !ok || next.After(time.Now().Add(redisPoll)) {
		t.Fatalf("next due %v", next)
	}
	if d, _ := s.Due(now.Add(30*time.Second), 10, nil); len(d) != 0 {
		t.Fatalf("a retry handed out before its time: %+v", d)
	}
	d, _ := s.Due(now.Add(61*time.Second), 10, nil)
	if len(d) != 1 || d[0].ID != a || d[0].Attempts != 1 || d[0].LastStatus != 503 {
		t.Fatalf("the retry when due: %+v", d)
	}
	if _, _, body, _ := s.Load(a); string(body) != "aaaa" {
		t.Fatalf("the retry's body: %q", body)
	}
	dead, _ := s.List(StateDead, "", 10)
	if len(dead) != 1 || dead[0].ID != b || dead[0].LastStatus != 400 {
		t.Fatalf("dead listing: %+v", dead)
	}
	if n, err := s.Redrive(now); err != nil || n != 1 {
		t.Fatalf("redrive: %d %v", n, err)
	}
	d, _ = s.Due(now.Add(61*time.Second), 10, nil)
	if len(d) != 1 || d[0].ID != b || d[0].Attempts != 0 {
		t.Fatalf("redriven: %+v", d)
	}
	// Both delivered: a dropped, b retained for an hour, then expired.
	if err := s.Finish([]Finished{{ID: a, Outcome: Outcome{Delivered: true, Status: 200}}, {ID: b, Outcome: Outcome{Delivered: true, Status: 200, RetainUntil: now.Add(time.Hour)}}}); err != nil {
		t.Fatal(err)
	}
	if st := redisStats(t, s); st.Pending != 0 || st.Dead != 0 || st.Retained != 1 || st.Bytes != 0 {
		t.Fatalf("after delivery: %+v", st)
	}
	if err := s.Retry(b, now); err != nil {
		t.Fatal(err)
	}
	if st := redisStats(t, s); st.Pending != 1 || st.Retained != 0 || st.Bytes != 2 {
		t.Fatalf("after replaying a retained item: %+v", st)
	}
	if err := s.Retry(b, now); err != ErrWrongState {
		t.Fatalf("retrying a pending item: %v", err)
	}
	if err := s.Drop(b); err != nil {
		t.Fatal(err)
	}
	if err := s.Drop(b); err != ErrNotFound {
		t.Fatalf("dropping twice: %v", err)
	}
	c := add(t, s, now, "c")
	s.Due(now, 10, nil)
	s.Finish([]Finished{{ID: c, Outcome: Outcome{Delivered: true, RetainUntil: now.Add(time.Minute)}}})
	if n, err := s.Expire(now.Add(2 * time.Minute)); err != nil || n != 1 {
		t.Fatalf("expire: %d %v", n, err)
	}
	if st := redisStats(t, s); st.Pending != 0 || st.Retained != 0 || st.Bytes != 0 {
		t.Fatalf("at the end: %+v", st)
	}
	if err := s.SetPaused(true); err != nil || !stats(t, s).Paused {
		t.Fatalf("pause: %v", err)
	}
	other := openRedis(t, srv, "b", 10, time.Minute)
	if !redisStats(t, other).Paused {
		t.Fatal("a pause is not seen by another server")
	}
}

// Two servers on one queue: the fleet's concurrency holds across both;
// an entry one took and left idle past the visibility timeout is taken
// by the other, and the first one's late outcome is ignored.
func TestRedisStoreFleet(t *testing.T) {
	srv := redistest.Start(t)
	a := openRedis(t, srv, "a", 3, 300*time.Millisecond)
	b := openRedis(t, srv, "b", 3, 300*time.Millisecond)
	now := time.Now()
	for i := range 5 {
		add(t, a, now.Add(time.Duration(i)), "x")
	}
	ta, _ := a.Due(now, 2, nil)
	tb, _ := b.Due(now, 10, nil)
	if len(ta) != 2 || len(tb) != 1 {
		t.Fatalf("taken %d and %d, want 2 and 1 (concurrency 3 for the fleet)", len(ta), len(tb))
	}
	// a dies with its two; after the visibility timeout b takes them.
	deadline := time.Now().Add(5 * time.Second)
	var got []Item
	for len(got) < 2 && time.Now().Before(deadline) {
		more, err := b.Due(now, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, more...)
		time.Sleep(50 * time.Millisecond)
	}
	if len(got) != 2 || got[0].ID != ta[0].ID && got[0].ID != ta[1].ID {
		t.Fatalf("reclaimed %+v, want a's %s and %s", got, ta[0].ID, ta[1].ID)
	}
	// a's late outcome for one of them is ignored: b holds it.
	a.Finish([]Finished{{ID: ta[0].ID, Outcome: Outcome{Dead: true}}})
	if st := redisStats(t, b); st.Dead != 0 || st.Pending != 5 {
		t.Fatalf("a stale outcome counted: %+v", st)
	}
	var done []Finished
	for _, it := range append(got, tb...) {
		done = append(done, Finished{ID: it.ID, Outcome: Outcome{Delivered: true}})
	}
	if err := b.Finish(done); err != nil {
		t.Fatal(err)
	}
	if st := redisStats(t, b); st.Pending != 2 {
		t.Fatalf("after three delivered: %+v", st)
	}
	// A restarted server (same consumer name) takes back its own at once.
	ta2, _ := a.Due(now, 2, nil)
	if len(ta2) != 2 {
		t.Fatalf("a took %d", len(ta2))
	}
	a2 := openRedis(t, srv, "a", 3, time.Hour)
	back, _ := a2.Due(now, 10, nil)
	if len(back) != 2 {
		t.Fatalf("a restarted server took back %d of its 2", len(back))
	}
}

// The settings of store redis are checked on their own: they apply to
// it only, and an item must not be taken over while its attempt can
// still be running.
func TestValidateStoreSettings(t *testing.T) {
	deliver := []byte(`{"handler":"subroute"}`)
	for _, c := range []struct {
		h    Handler
		want string
	}{
		{Handler{Name: "q", MinReplicas: 1}, "apply to store redis"},
		{Handler{Name: "q", Shards: 2}, "apply to store redis"},
		{Handler{Name: "q", Store: "redis", Shards: 65}, "shards must be between 1 and 64"},
		{Handler{Name: "q", Store: "local", VisibilityTimeout: caddy.Duration(time.Minute)}, "apply to store redis"},
		{Handler{Name: "q", Store: "redis", Path: "/tmp/x"}, "path applies to store local"},
		{Handler{Name: "q", Store: "redis", VisibilityTimeout: caddy.Duration(time.Minute)}, "must be longer than the attempt timeout (1m0s)"},
		{Handler{Name: "q", Store: "redis", Timeout: caddy.Duration(10 * time.Second), VisibilityTimeout: caddy.Duration(5 * time.Second)}, "must be longer than the attempt timeout (10s)"},
		{Handler{Name: "q", Store: "memory"}, "want local or redis"},
		{Handler{Name: "q", Store: "redis", Timeout: caddy.Duration(10 * time.Second), VisibilityTimeout: caddy.Duration(20 * time.Second), MinReplicas: 2}, ""},
	} {
		c.h.DeliverRaw = deliver
		err := c.h.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.h, err, c.want)
		}
	}
}

// An eviction policy that could drop queued items is refused; the ones
// that cannot (noeviction, volatile-*: the queue's keys never expire)
// are accepted. Against a real Redis, whose policy the test sets.
func TestCheckEviction(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	ctx := context.Background()
	// Redis' default: no maxmemory, noeviction. Warned, not refused.
	if warning, err := checkEviction(ctx, c); err != nil || !strings.Contains(warning, "no maxmemory") {
		t.Fatalf("no maxmemory: %v, warning %q", err, warning)
	}
	if err := c.ConfigSet(ctx, "maxmemory", "512mb").Err(); err != nil {
		t.Fatal(err)
	}
	for policy, refused := range map[string]bool{"noeviction": false, "volatile-lru": false, "volatile-ttl": false, "allkeys-lru": true, "allkeys-lfu": true, "allkeys-random": true} {
		if err := c.ConfigSet(ctx, "maxmemory-policy", policy).Err(); err != nil {
			t.Fatal(err)
		}
		warning, err := checkEviction(ctx, c)
		if refused != (err != nil) || warning != "" {
			t.Errorf("%s: %v (warning %q)", policy, err, warning)
		}
		if err != nil && !strings.Contains(err.Error(), "maxmemory-policy "+policy) {
			t.Errorf("%s: the error does not name the policy: %v", policy, err)
		}
	}
	// Redis unreachable: a warning, not a refusal (it may come back).
	srv.Kill()
	warning, err := checkEviction(ctx, c)
	if err != nil || !strings.Contains(warning, "could not be checked") {
		t.Errorf("Redis down: %v, warning %q", err, warning)
	}
}

// What Redis stores round-trips: every field of an item and a request.
func TestRedisEncodingRoundTrip(t *testing.T) {
	now := time.Now().Truncate(time.Microsecond)
	for _, it := range []Item{
		{ID: "a", Received: now, Due: now},
		{ID: "b", Received: now, Due: now.Add(time.Minute), Attempts: 3, LastStatus: 503, LastError: "the backend answered 503", Provider: "github", DeliveryID: "d", Event: "push"},
	} {
		raw, err := encodeMeta(&it)
		if err != nil {
			t.Fatal(err)
		}
		var got Item
		if err := decodeMeta(raw, &got); err != nil || !got.Received.Equal(it.Received) || !got.Due.Equal(it.Due) ||
			got.ID != it.ID || got.Attempts != it.Attempts || got.LastStatus != it.LastStatus || got.LastError != it.LastError ||
			got.Provider != it.Provider || got.DeliveryID != it.DeliveryID || got.Event != it.Event {
			t.Errorf("%+v came back as %+v (%v)", it, got, err)
		}
	}
	for _, r := range []Request{*githubRequest(), *minimalRequest(), {Method: "PUT", URI: "/x?y=1", Host: "h", Proto: "HTTP/2.0", RemoteAddr: "[::1]:1", TLS: true, Header: http.Header{"A": {"1", "2"}}}} {
		raw, err := encodeRequest(&r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRequest(raw)
		if err != nil || !reflect.DeepEqual(*got, r) {
			t.Errorf("%+v came back as %+v (%v)", r, got, err)
		}
	}
}

// A queue over four shards: accepts spread over them, every shard is
// taken from, outcomes go to the shard that holds the item, the counts
// are summed, an operator's retry and drop find the item wherever it
// is, pause holds on every shard; the shards may grow, never shrink.
func TestShardedStore(t *testing.T) {
	srv := redistest.Start(t)
	open := func(n int) (*ShardedStore, error) {
		return NewShardedStore(context.Background(), srv.Client(), "test:q:", "orders", "a", time.Second, time.Minute, 8, 0, n)
	}
	s, err := open(4)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for i := range 8 {
		add(t, s, now.Add(time.Duration(i)*time.Millisecond), "x")
	}
	for i, sh := range s.shards {
		fresh(sh)
		if st := stats(t, sh); st.Pending != 2 {
			t.Fatalf("shard %d holds %d items, want 2 of the 8", i, st.Pending)
		}
	}
	for _, sh := range s.shards {
		fresh(sh)
	}
	if st := stats(t, s); st.Pending != 8 || st.Bytes != 8 {
		t.Fatalf("summed counts: %+v", st)
	}
	due, err := s.Due(now.Add(time.Second), 100, nil)
	if err != nil || len(due) != 8 {
		t.Fatalf("due: %d %v", len(due), err)
	}
	var done []Finished
	for i, it := range due {
		if _, _, body, err := s.Load(it.ID); err != nil || string(body) != "x" {
			t.Fatalf("load %s: %v", it.ID, err)
		}
		o := Outcome{Delivered: true, Status: 200}
		if i == 0 {
			o = Outcome{Dead: true, Status: 400}
		}
		done = append(done, Finished{ID: it.ID, Outcome: o})
	}
	if err := s.Finish(done); err != nil {
		t.Fatal(err)
	}
	for _, sh := range s.shards {
		fresh(sh)
	}
	if st := stats(t, s); st.Pending != 0 || st.Dead != 1 {
		t.Fatalf("after the outcomes: %+v", st)
	}
	if err := s.Retry(due[0].ID, now); err != nil {
		t.Fatalf("retry across shards: %v", err)
	}
	if err := s.Drop(due[0].ID); err != nil {
		t.Fatalf("drop across shards: %v", err)
	}
	if err := s.Drop("nope"); err != ErrNotFound {
		t.Fatalf("drop of nothing: %v", err)
	}
	if err := s.SetPaused(true); err != nil {
		t.Fatal(err)
	}
	for i, sh := range s.shards {
		if !stats(t, sh).Paused {
			t.Fatalf("shard %d not paused", i)
		}
	}
	if _, err := open(2); err == nil || !strings.Contains(err.Error(), "never shrink") {
		t.Fatalf("fewer shards than the queue had: %v", err)
	}
	grown, err := open(6)
	if err != nil {
		t.Fatalf("more shards: %v", err)
	}
	grown.Close()
	if _, err := open(4); err == nil {
		t.Fatal("back to 4 after 6 was accepted")
	}
}
