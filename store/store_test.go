package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookauth/caddy-webhookauth/internal/redistest"
	"github.com/webhookauth/caddy-webhookauth/ratelimit"
	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

func redisStores(t *testing.T) (*RedisRateLimit, *RedisDedup, *redistest.Server) {
	srv := redistest.Start(t)
	c := srv.Client()
	pipe := newPipeliner(c)
	return &RedisRateLimit{pipe: pipe, prefix: "t:rl:", timeout: time.Second},
		&RedisDedup{pipe: pipe, prefix: "t:dd:", timeout: time.Second}, srv
}

// rateStores are the stores the same GCRA table runs against.
func rateStores(t *testing.T) map[string]ratelimit.Store {
	rl, _, _ := redisStores(t)
	return map[string]ratelimit.Store{"memory": ratelimit.NewMemoryStore(0, nil), "redis": rl}
}

// TestGCRASameOnBothStores runs one table of decisions against the memory
// and the Redis store. The limits are slow enough (per hour) that the
// real clocks advance by a negligible fraction of an interval during the
// test; Retry-After values are checked to the millisecond.
func TestGCRASameOnBothStores(t *testing.T) {
	type want struct {
		allowed   bool
		remaining int64
		retry     time.Duration
	}
	cases := []struct {
		name  string
		limit ratelimit.Limit
		want  []want
	}{
		{"10 per hour", ratelimit.Limit{Rate: 10, Window: time.Hour}, []want{
			{true, 9, 0}, {true, 8, 0}, {true, 7, 0}, {true, 6, 0}, {true, 5, 0},
			{true, 4, 0}, {true, 3, 0}, {true, 2, 0}, {true, 1, 0}, {true, 0, 0},
			{false, 0, 6 * time.Minute}, {false, 0, 6 * time.Minute},
		}},
		{"60 per hour, burst 2", ratelimit.Limit{Rate: 60, Window: time.Hour, Burst: 2}, []want{
			{true, 1, 0}, {true, 0, 0}, {false, 0, time.Minute},
		}},
		{"1 per hour", ratelimit.Limit{Rate: 1, Window: time.Hour}, []want{
			{true, 0, 0}, {false, 0, time.Hour},
		}},
		{"7 per hour", ratelimit.Limit{Rate: 7, Window: time.Hour}, []want{
			{true, 6, 0}, {true, 5, 0}, {true, 4, 0}, {true, 3, 0}, {true, 2, 0}, {true, 1, 0}, {true, 0, 0},
			{false, 0, time.Hour / 7},
		}},
	}
	for name, st := range rateStores(t) {
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				key := fmt.Sprintf("%s-%d", c.name, time.Now().UnixNano())
				for i, w := range c.want {
					d, err := st.Take(context.Background(), key, c.limit)
					if err != nil {
						t.Fatal(err)
					}
					if d.Allowed != w.allowed || d.Remaining != w.remaining {
						t.Fatalf("event %d: allowed=%v remaining=%d, want %v %d", i, d.Allowed, d.Remaining, w.allowed, w.remaining)
					}
					if !w.allowed && (d.RetryAfter > w.retry || d.RetryAfter < w.retry-50*time.Millisecond) {
						t.Fatalf("event %d: retry after %v, want %v", i, d.RetryAfter, w.retry)
					}
				}
			})
		}
	}
}

func TestRedisRateLimitConcurrentExact(t *testing.T) {
	rl, _, _ := redisStores(t)
	l := ratelimit.Limit{Rate: 10, Window: time.Minute}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := rl.Take(context.Background(), "one-key", l)
			if err != nil {
				t.Error(err)
			}
			if d.Allowed {
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := admitted.Load(); got != 10 {
		t.Fatalf("admitted %d, want exactly 10", got)
	}
}

func TestRedisKeyTTLEndsWhenDrained(t *testing.T) {
	rl, _, srv := redisStores(t)
	c := srv.Client()
	l := ratelimit.Limit{Rate: 10, Window: time.Minute}
	for i := 0; i < 3; i++ {
		rl.Take(context.Background(), "ttl-key", l)
	}
	// Three events of 6 s each: the state drains in 18 s. The expiry is
	// the TAT rounded up to the next millisecond (PXAT), so the TTL may
	// read up to 1 ms over 18 s; 1 s under leaves room for a slow run.
	ttl, err := c.PTTL(context.Background(), rl.redisKey("ttl-key")).Result()
	if err != nil || ttl > 18*time.Second+time.Millisecond || ttl < 17*time.Second {
		t.Fatalf("TTL %v (%v), want about 18s", ttl, err)
	}
}

// TestPeekSpendsNothing: on both stores Peek decides as Take would and
// leaves the state alone.
func TestPeekSpendsNothing(t *testing.T) {
	l := ratelimit.Limit{Rate: 2, Window: time.Hour}
	for name, st := range rateStores(t) {
		ctx := context.Background()
		for i := 0; i < 5; i++ {
			d, err := st.Peek(ctx, "peeked", l)
			if err != nil || !d.Allowed || d.Remaining != 1 {
				t.Fatalf("%s: peek %d on a fresh key: %+v, %v; want allowed, 1 remaining", name, i, d, err)
			}
		}
		for i := 0; i < 2; i++ {
			if d, _ := st.Take(ctx, "peeked", l); !d.Allowed {
				t.Fatalf("%s: take %d refused after peeks", name, i)
			}
		}
		d, err := st.Peek(ctx, "peeked", l)
		if err != nil || d.Allowed || d.RetryAfter < 29*time.Minute {
			t.Fatalf("%s: peek on a spent key: %+v, %v; want refused for about 30m", name, d, err)
		}
		if d2, _ := st.Peek(ctx, "peeked", l); d2.Allowed {
			t.Fatalf("%s: a refused peek changed the state", name)
		}
	}
}

// TestRedisRateLimitSurvivesScriptFlush: after SCRIPT FLUSH (or a Redis
// restart) the batch that meets NOSCRIPT is sent again with the script's
// text, and no decision is taken twice.
func TestRedisRateLimitSurvivesScriptFlush(t *testing.T) {
	rl, _, srv := redisStores(t)
	c := srv.Client()
	l := ratelimit.Limit{Rate: 5, Window: time.Hour}
	var got []bool
	for i := 0; i < 7; i++ {
		if err := c.ScriptFlush(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		d, err := rl.Take(context.Background(), "flushed", l)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.Allowed)
	}
	if fmt.Sprint(got) != "[true true true true true false false]" {
		t.Fatalf("decisions %v, want 5 admitted then 2 denied", got)
	}
}

// TestRedisRateLimitDeadline: with Redis unreachable, a decision returns
// an error within its timeout instead of waiting for the client's
// retries.
func TestRedisRateLimitDeadline(t *testing.T) {
	rl, _, srv := redisStores(t)
	rl.timeout = 100 * time.Millisecond
	srv.Kill()
	start := time.Now()
	_, err := rl.Take(context.Background(), "down", ratelimit.Limit{Rate: 5, Window: time.Hour})
	if err == nil {
		t.Fatal("decision without Redis")
	}
	// Generous bound: the deadline is 100ms; this only catches a call
	// that waits for something else entirely (minutes of retries).
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %v with a 100ms timeout", el)
	}
}

// TestDedupStateMachine runs claim/done/release/expiry against both dedup
// stores; the memory store gets an injected clock, Redis real time with
// short TTLs.
func TestDedupStateMachine(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Unix(1_800_000_000, 0).UnixNano())
	mem := webhookauth.NewMemoryDedup(func() time.Time { return time.Unix(0, clock.Load()) })
	_, rd, _ := redisStores(t)
	advance := map[string]func(time.Duration){
		"memory": func(d time.Duration) { clock.Add(int64(d)) },
		"redis":  func(d time.Duration) { time.Sleep(d) },
	}
	for name, st := range map[string]webhookauth.DedupStore{"memory": mem, "redis": rd} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			// Redis runs on real time: the steps between two waits take
			// milliseconds, so TTLs of a second or more leave a loaded CI
			// machine plenty of room before anything expires early.
			claimTTL, doneTTL := 200*time.Millisecond, 400*time.Millisecond
			if name == "redis" {
				claimTTL, doneTTL = time.Second, 2*time.Second
			}
			claim := func(id string, token uint64, want webhookauth.ClaimResult) {
				t.Helper()
				got, err := st.Claim(ctx, id, token, claimTTL)
				if err != nil || got != want {
					t.Fatalf("claim %s with token %d: %v %v, want %v", id, token, got, err, want)
				}
			}
			finish := func(id string, token uint64, done bool) {
				t.Helper()
				if err := st.Finish(ctx, id, token, done, doneTTL); err != nil {
					t.Fatal(err)
				}
			}
			// claim → in flight for others → done → duplicate.
			claim("a", 1, webhookauth.Claimed)
			claim("a", 2, webhookauth.InFlight)
			finish("a", 1, true)
			claim("a", 3, webhookauth.Done)
			// claim → release → claimable again.
			claim("b", 1, webhookauth.Claimed)
			finish("b", 1, false)
			claim("b", 2, webhookauth.Claimed)
			// A finish by someone else's token changes nothing.
			finish("b", 99, true)
			claim("b", 3, webhookauth.InFlight)
			// A claim expires by itself (a crashed server) ...
			advance[name](claimTTL + 100*time.Millisecond)
			claim("b", 4, webhookauth.Claimed)
			// ... and the crashed server's late finish cannot touch the new claim.
			finish("b", 2, true)
			claim("b", 5, webhookauth.InFlight)
			// Done expires after the dedup TTL.
			advance[name](doneTTL + 100*time.Millisecond)
			claim("a", 6, webhookauth.Claimed)
		})
	}
}
