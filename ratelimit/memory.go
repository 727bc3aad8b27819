package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxKeys bounds a memory store when max_keys is not set.
const DefaultMaxKeys = 1_000_000

const (
	shardCount = 256
	// evictSample is how many entries a full shard looks at to choose
	// one to evict.
	evictSample = 16
	// sweepSample is how many entries each new key checks for drained
	// state to drop, so that garbage does not accumulate.
	sweepSample = 2
)

// MemoryStore is the embedded GCRA store: 256 shards, each a mutex and a
// map from a 64-bit seeded hash of the key to its TAT. Key strings are not
// kept, so a key costs the same whatever its length; at a million keys a
// key costs about 20–40 bytes of heap (see BENCHMARKS.md).
//
// State that has drained is dropped lazily: each new key checks a couple of
// random entries of its shard and deletes those whose TAT has passed. When
// a shard holds its share of max_keys, a new key evicts first a drained
// entry and otherwise, from a random sample of 16, the entry closest to
// draining — the one whose loss gives away the least. Eviction can only
// make the limiter more permissive for the evicted key, never stricter.
//
// Two different keys whose 64-bit hashes collide share a limit; with a
// million keys the chance that any two collide is about 3 in 100 million.
//
// The zero value is not usable; use NewMemoryStore. It is safe for
// concurrent use.
type MemoryStore struct {
	seed        maphash.Seed
	maxPerShard atomic.Int64
	now         func() time.Time
	shards      [shardCount]shard
}

type shard struct {
	mu sync.Mutex
	m  map[uint64]int64
	_  [40]byte // keep shards on separate cache lines
}

// NewMemoryStore returns an empty store that holds at most maxKeys keys
// (DefaultMaxKeys if 0) and reads time from now (time.Now if nil).
func NewMemoryStore(maxKeys int, now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	s := &MemoryStore{seed: maphash.MakeSeed(), now: now}
	for i := range s.shards {
		s.shards[i].m = make(map[uint64]int64)
	}
	s.SetMaxKeys(maxKeys)
	return s
}

// SetMaxKeys changes the bound; a config reload may change max_keys.
func (s *MemoryStore) SetMaxKeys(maxKeys int) {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	s.maxPerShard.Store(int64((maxKeys + shardCount - 1) / shardCount))
}

// Take implements Store.
func (s *MemoryStore) Take(_ context.Context, key string, l Limit) (Decision, error) {
	return s.TakeAt(maphash.String(s.seed, key), l, s.now().UnixNano()), nil
}

// TakeAt decides one event for a hashed key at now (nanoseconds).
func (s *MemoryStore) TakeAt(h uint64, l Limit, now int64) Decision {
	sh := &s.shards[h%shardCount]
	sh.mu.Lock()
	tat, known := sh.m[h]
	next, d := l.Decide(tat, now)
	if d.Allowed {
		if !known {
			sh.makeRoom(now, s.maxPerShard.Load())
		}
		sh.m[h] = next
	}
	sh.mu.Unlock()
	return d
}

// makeRoom runs before a new key is stored: it drops drained entries
// among a few random ones and, if the shard is full, evicts one.
func (sh *shard) makeRoom(now, max int64) {
	full := int64(len(sh.m)) >= max
	sample := sweepSample
	if full {
		sample = evictSample
	}
	var (
		victim    uint64
		victimTAT int64
		seen      int
	)
	for k, tat := range sh.m {
		if tat <= now {
			delete(sh.m, k)
			full = false
		} else if seen == 0 || tat < victimTAT {
			victim, victimTAT = k, tat
		}
		seen++
		if seen >= sample {
			break
		}
	}
	if full && seen > 0 {
		delete(sh.m, victim)
	}
}

// Len returns the number of keys held.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// Destruct lets MemoryStore live in a caddy.UsagePool.
func (s *MemoryStore) Destruct() error { return nil }
