package queue

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/webhookauth/caddy-webhookauth/internal/redistest"
)

// githubRequest is the stored request of a typical GitHub delivery: the
// headers GitHub sends, with a real signature's length.
func githubRequest() *Request {
	return &Request{Method: "POST", URI: "/hooks/github", Host: "hooks.example.com", Proto: "HTTP/1.1", RemoteAddr: "140.82.115.7:43210",
		Header: http.Header{
			"Accept":                 {"*/*"},
			"Content-Type":           {"application/json"},
			"User-Agent":             {"GitHub-Hookshot/2c7e6d1"},
			"X-Github-Delivery":      {"72d3162e-cc78-11e3-81ab-4c9367dc0958"},
			"X-Github-Event":         {"push"},
			"X-Github-Hook-Id":       {"292430182"},
			"X-Hub-Signature-256":    {"sha256=d57c68ca6f92289e6987922ff26938930f6e66a2d161ef06abdf1859230aa23c"},
			"X-Forwarded-For":        {"140.82.115.7"},
			"X-Github-Hook-Installa": {"repository"},
		}}
}

// minimalRequest is the smallest request a delivery is stored with.
func minimalRequest() *Request {
	return &Request{Method: "POST", URI: "/q", Host: "h", Proto: "HTTP/1.1", RemoteAddr: "192.0.2.1:4242",
		Header: http.Header{"Content-Type": {"application/json"}}}
}

func usedMemory(b *testing.B, c *redis.Client) int64 {
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	m := regexp.MustCompile(`used_memory:(\d+)`).FindStringSubmatch(info)
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// BenchmarkRedisMemoryPerItem: Redis' used_memory per pending item of
// 1 KiB, stored by RedisStore.Add, with a minimal request and with a
// typical GitHub delivery's headers (the bytes/item metric).
//
//	go test ./queue -run '^$' -bench RedisMemoryPerItem -benchtime 20000x
func BenchmarkRedisMemoryPerItem(b *testing.B) {
	for _, c := range []struct {
		name string
		req  *Request
	}{{"minimal", minimalRequest()}, {"github", githubRequest()}} {
		b.Run(c.name, func(b *testing.B) {
			srv := redistest.Start(b)
			rdb := srv.Client()
			s, err := NewRedisStore(context.Background(), rdb, "webhook:q:", "mem", "c", time.Second, time.Minute, 4, 0)
			if err != nil {
				b.Fatal(err)
			}
			body := make([]byte, 1024)
			if v := os.Getenv("NODE_MAX_BYTES"); v != "" {
				rdb.ConfigSet(context.Background(), "stream-node-max-bytes", v)
			}
			before := usedMemory(b, rdb)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				now := time.Now()
				it := &Item{ID: NewID(now), Received: now, Due: now, Provider: "github", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958", Event: "push"}
				if err := s.Add(it, c.req, body); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(usedMemory(b, rdb)-before)/float64(b.N), "bytes/item")
		})
	}
}

// BenchmarkRedisAccept: the store's accept (RedisStore.Add, one round
// trip per item, 32 writers) against raw pipelined XADD of the same
// bytes (pipelines of 32 by 2 writers): the ceiling for accepts through
// Caddy, which scripts/bench-queue.sh measures beside it.
//
//	go test ./queue -run '^$' -bench RedisAccept -benchtime 20000x -cpu 2
func BenchmarkRedisAccept(b *testing.B) {
	body := make([]byte, 1024)
	req := minimalRequest()
	b.Run("store_add", func(b *testing.B) {
		srv := redistest.Start(b)
		s, err := NewRedisStore(context.Background(), srv.Client(), "webhook:q:", "acc", "c", time.Second, time.Minute, 4, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		addParallel(b, s, req, body)
	})
	b.Run("raw_xadd_pipelined", func(b *testing.B) {
		srv := redistest.Start(b)
		rdb := srv.Client()
		now := time.Now()
		m := fmt.Sprintf(`{"id":%q,"state":"pending","received":%q,"due":%q,"attempts":0,"size":1024}`, NewID(now), now.Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
		r := `{"method":"POST","uri":"/q","host":"h","proto":"HTTP/1.1","remote_addr":"192.0.2.1:4242","header":{"Content-Type":["application/json"]}}`
		const batch = 32
		var wg sync.WaitGroup
		var mu sync.Mutex
		left := b.N
		b.ResetTimer()
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				for {
					mu.Lock()
					n := min(batch, left)
					left -= n
					mu.Unlock()
					if n == 0 {
						return
					}
					pipe := rdb.Pipeline()
					for range n {
						pipe.XAdd(ctx, &redis.XAddArgs{Stream: "webhook:q:{raw}:s", Values: []any{"m", m, "r", r, "b", body}})
					}
					if _, err := pipe.Exec(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	})
}
