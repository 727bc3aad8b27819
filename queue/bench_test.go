package queue

import (
	"flag"
	"fmt"
	"net/http"
	"path/filepath"
	goruntime "runtime"
	"testing"
	"time"
)

var benchWriters = flag.Int("writers", 32, "concurrent writers in BenchmarkLocalStoreAdd (as connections through Caddy)")

// BenchmarkLocalStoreAdd is the store's own durable write, concurrent
// writers coalesced into batches (group commit, one fsync each): the
// ceiling for the accept rate through Caddy, which scripts/bench-queue.sh
// measures beside it.
//
//	go test ./queue -run '^$' -bench LocalStoreAdd -benchtime 3000x -cpu 2 [-args -writers 64]
func BenchmarkLocalStoreAdd(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			s, err := OpenLocal(filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			body := make([]byte, size)
			req := &Request{Method: "POST", URI: "/hooks/github", Host: "hooks.example.com", Proto: "HTTP/1.1", RemoteAddr: "192.0.2.1:4242",
				Header: http.Header{"Content-Type": {"application/json"}, "X-Hub-Signature-256": {"sha256=00"}, "X-Github-Delivery": {"d"}}}
			b.SetBytes(int64(size))
			addParallel(b, s, req, body)
		})
	}
}

// addParallel stores b.N items from -writers concurrent writers (32 by
// default, as connections through Caddy).
func addParallel(b *testing.B, s Store, req *Request, body []byte) {
	// RunParallel starts parallelism × GOMAXPROCS goroutines.
	b.SetParallelism(max(1, *benchWriters/goruntime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			now := time.Now()
			if err := s.Add(&Item{ID: NewID(now), Received: now, Due: now}, req, body); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
