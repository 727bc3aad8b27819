package ratelimit

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/time/rate"
)

const benchKeys = 1_000_000

// benchKeyStrings returns n distinct keys shaped like client IPs.
func benchKeyStrings(n int) []string {
	keys := make([]string, n)
	var buf [16]byte
	for i := range keys {
		keys[i] = string(appendKey(buf[:0], i))
	}
	return keys
}

// appendKey appends the i-th key, "10.a.b.c", to dst.
func appendKey(dst []byte, i int) []byte {
	dst = append(dst, "10."...)
	dst = strconv.AppendInt(dst, int64(i>>16&255), 10)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, int64(i>>8&255), 10)
	dst = append(dst, '.')
	return strconv.AppendInt(dst, int64(i&255), 10)
}

func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkMemoryPerKey measures the live heap one key costs at a million
// keys, for this store and, in the same run, for two common alternatives:
// a map of golang.org/x/time/rate limiters and a sliding-window log of
// 100 timestamps per key. Run it once:
//
//	go test ./ratelimit -run '^$' -bench MemoryPerKey -benchtime 1x
func BenchmarkMemoryPerKey(b *testing.B) {
	keys := benchKeyStrings(benchKeys)
	l := Limit{Rate: 100, Window: time.Minute}
	now := time.Unix(1_800_000_000, 0)
	report := func(b *testing.B, before uint64, keep any) {
		after := liveHeap()
		runtime.KeepAlive(keep)
		b.ReportMetric(float64(after-before)/benchKeys, "bytes/key")
	}
	b.Run("gcra_memory_store", func(b *testing.B) {
		for b.Loop() {
			before := liveHeap()
			s := NewMemoryStore(benchKeys, func() time.Time { return now })
			for _, k := range keys {
				s.Take(context.Background(), k, l)
			}
			if s.Len() != benchKeys {
				b.Fatalf("store holds %d keys", s.Len())
			}
			report(b, before, s)
		}
	})
	b.Run("x_time_rate_map", func(b *testing.B) {
		for b.Loop() {
			before := liveHeap()
			m := make(map[string]*rate.Limiter)
			for _, k := range keys {
				lim := rate.NewLimiter(rate.Every(time.Minute/100), 100)
				lim.AllowN(now, 1)
				m[string([]byte(k))] = lim // the map keeps its own copy of the key
			}
			report(b, before, m)
		}
	})
	b.Run("sliding_log_100", func(b *testing.B) {
		for b.Loop() {
			before := liveHeap()
			m := make(map[string][]int64)
			for _, k := range keys {
				log := make([]int64, 1, 100)
				log[0] = now.UnixNano()
				m[string([]byte(k))] = log
			}
			report(b, before, m)
		}
	})
}

// BenchmarkDecision is the cost of one decision with 2 goroutines over a
// million warm keys, and of refusing a hot key that is over its limit.
//
//	go test ./ratelimit -run '^$' -bench Decision -benchmem -count 6
func BenchmarkDecision(b *testing.B) {
	keys := benchKeyStrings(benchKeys)
	now := time.Unix(1_800_000_000, 0)
	l := Limit{Rate: 1_000_000, Window: time.Second}
	b.Run("1M_keys_2_goroutines", func(b *testing.B) {
		s := NewMemoryStore(benchKeys, func() time.Time { return now })
		for _, k := range keys {
			s.Take(context.Background(), k, l)
		}
		var next atomic.Uint64
		b.SetParallelism(1) // GOMAXPROCS goroutines: 2 on this machine
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			// Each goroutine writes its keys into its own buffer, as a
			// request's key would be fresh in cache; reading them from a
			// million-string slice would measure cache misses of the
			// benchmark, not of the store.
			var buf [16]byte
			i := int(next.Add(1_000_003)) // each goroutine starts elsewhere
			for pb.Next() {
				i = (i + 7919) % benchKeys
				key := appendKey(buf[:0], i)
				s.Take(context.Background(), unsafe.String(&key[0], len(key)), l)
			}
		})
	})
	b.Run("deny_hot_key", func(b *testing.B) {
		s := NewMemoryStore(0, func() time.Time { return now })
		hot := Limit{Rate: 1, Window: time.Hour}
		s.Take(context.Background(), "hot", hot)
		b.ReportAllocs()
		for b.Loop() {
			if d, _ := s.Take(context.Background(), "hot", hot); d.Allowed {
				b.Fatal("admitted")
			}
		}
	})
}
