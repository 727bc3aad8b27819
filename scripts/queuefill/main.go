// Command queuefill writes n pending items of a given body size into a
// webhook_queue store file, paused, for the start-up and memory figures
// of scripts/bench-queue.sh: what a server holding a large backlog starts
// with.
//
//	go run ./scripts/queuefill -path /tmp/q/big.db -n 1000000 -size 1024
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webhookauth/caddy-webhookauth/queue"
)

func main() {
	path := flag.String("path", "", "the store file (<dir>/<queue name>.db)")
	n := flag.Int("n", 1_000_000, "items")
	size := flag.Int("size", 1024, "body bytes")
	writers := flag.Int("writers", 256, "concurrent writers (group commit)")
	flag.Parse()
	if *path == "" {
		fmt.Fprintln(os.Stderr, "queuefill: -path is required")
		os.Exit(2)
	}
	s, err := queue.OpenLocal(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := s.SetPaused(true); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	body := make([]byte, *size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	req := &queue.Request{Method: "POST", URI: "/q", Host: "localhost", Proto: "HTTP/1.1", RemoteAddr: "127.0.0.1:1",
		Header: http.Header{"Content-Type": {"application/json"}}}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range *writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(*n) {
				now := time.Now()
				if err := s.Add(&queue.Item{ID: queue.NewID(now), Received: now, Due: now}, req, body); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
			}
		}()
	}
	wg.Wait()
	st, _ := s.Stats()
	s.Close()
	fi, _ := os.Stat(*path)
	fmt.Printf("queuefill: %d items of %d bytes in %v, file %d MB, pending %d\n", *n, *size, time.Since(start).Round(time.Millisecond), fi.Size()>>20, st.Pending)
}
