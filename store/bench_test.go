package store

import (
	"context"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/webhookauth/caddy-webhookauth/internal/redistest"
	"github.com/webhookauth/caddy-webhookauth/ratelimit"
	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// BenchmarkRedisRateLimit compares decisions per second of this store's
// GCRA script with github.com/go-redis/redis_rate/v10 on the same
// redis-server and the same client, in the same run:
//
//	go test ./store -run '^$' -bench RedisRateLimit -benchmem -count 6
func BenchmarkRedisRateLimit(b *testing.B) {
	srv := redistest.Start(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer client.Close()
	ctx := context.Background()
	pipe := newPipeliner(client)
	ours := &RedisRateLimit{pipe: pipe, prefix: "b:rl:", timeout: time.Second}
	theirs := redis_rate.NewLimiter(client)
	l := ratelimit.Limit{Rate: 1_000_000, Window: time.Second}
	var n atomic.Uint64
	key := func() string { return "10.0." + strconv.FormatUint(n.Add(1)%1000, 10) }
	// One caller at a time: the latency of a lone decision, where the
	// shared pipelines have nothing to share.
	b.Run("serial/webhookauth_gcra", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ours.Take(ctx, key(), l); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("serial/redis_rate_v10", func(b *testing.B) {
		lim := redis_rate.PerSecond(1_000_000)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := theirs.Allow(ctx, key(), lim); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("webhookauth_gcra", func(b *testing.B) {
		b.SetParallelism(8)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := ours.Take(ctx, key(), l); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("redis_rate_v10", func(b *testing.B) {
		lim := redis_rate.PerSecond(1_000_000)
		b.SetParallelism(8)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := theirs.Allow(ctx, key(), lim); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

var usedMemory = regexp.MustCompile(`used_memory:(\d+)`)

func redisUsedMemory(b *testing.B, c *redis.Client) int64 {
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	n, _ := strconv.ParseInt(usedMemory.FindStringSubmatch(info)[1], 10, 64)
	return n
}

// BenchmarkRedisMemoryPerKey fills 100,000 keys with each limiter (client
// IP keys, a one-hour rate so nothing drains) and reports Redis's
// used_memory growth per key. Run it once:
//
//	go test ./store -run '^$' -bench RedisMemoryPerKey -benchtime 1x
func BenchmarkRedisMemoryPerKey(b *testing.B) {
	const keys = 100_000
	srv := redistest.Start(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer client.Close()
	ctx := context.Background()
	fill := func(b *testing.B, take func(key string) error) {
		for b.Loop() {
			client.FlushAll(ctx)
			before := redisUsedMemory(b, client)
			for i := 0; i < keys; i++ {
				if err := take("10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)); err != nil {
					b.Fatal(err)
				}
			}
			if n, _ := client.DBSize(ctx).Result(); n != keys {
				b.Fatalf("%d keys in redis", n)
			}
			b.ReportMetric(float64(redisUsedMemory(b, client)-before)/keys, "bytes/key")
		}
	}
	// Keys as the app and handler write them: the default prefix, "r:",
	// then a digest of the limiter's digest and the client IP.
	pipe := newPipeliner(client)
	ours := &RedisRateLimit{pipe: pipe, prefix: DefaultKeyPrefix + "r:", timeout: time.Second}
	l := ratelimit.Limit{Rate: 100, Window: time.Hour}
	b.Run("webhookauth_gcra", func(b *testing.B) {
		fill(b, func(k string) error { _, err := ours.Take(ctx, "0123456789ab:"+k, l); return err })
	})
	theirs := redis_rate.NewLimiter(client)
	b.Run("redis_rate_v10", func(b *testing.B) {
		fill(b, func(k string) error { _, err := theirs.Allow(ctx, k, redis_rate.PerHour(100)); return err })
	})
}

// BenchmarkDedup is the cost of one claim and one finish (marking the id
// done) on each dedup store, next to one plain SET NX round trip:
//
//	go test ./store -run '^$' -bench Dedup -benchmem -count 6
func BenchmarkDedup(b *testing.B) {
	srv := redistest.Start(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer client.Close()
	ctx := context.Background()
	var n atomic.Uint64
	id := func() string { return "evt_" + strconv.FormatUint(n.Add(1), 36) }
	run := func(b *testing.B, st webhookauth.DedupStore) {
		b.ReportAllocs()
		for b.Loop() {
			k := id()
			if r, err := st.Claim(ctx, k, 7, time.Minute); err != nil || r != webhookauth.Claimed {
				b.Fatal(r, err)
			}
			if err := st.Finish(ctx, k, 7, true, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("memory_claim_finish", func(b *testing.B) { run(b, webhookauth.NewMemoryDedup(nil)) })
	b.Run("redis_claim_finish", func(b *testing.B) {
		run(b, &RedisDedup{pipe: newPipeliner(client), prefix: "b:dd:", timeout: time.Second})
	})
	b.Run("redis_plain_set_nx", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := client.SetNX(ctx, "b:nx:"+id(), "1", time.Hour).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
