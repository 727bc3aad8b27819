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
	shardBits  = 8
	shardCount = 1 << shardBits
	// evictSample is how many entries a new key looks at, when the store
	// is full, to choose one to evict.
	evictSample = 16
	// sweepSample is how many entries each new key checks for drained
	// state to drop, so that garbage does not accumulate.
	sweepSample = 2
	minSlots    = 16
)

// MemoryStore is the embedded GCRA store. It has 256 shards, each a mutex
// and an open-addressing hash table of 16-byte slots: a 64-bit seeded hash
// of the key next to its TAT, so a lookup usually touches one cache line.
// Key strings are not kept, so a key costs the same whatever its length:
// at a million keys, about 34 bytes of heap (see BENCHMARKS.md).
//
// State that has drained is dropped lazily: each new key checks a couple of
// entries near its slot and deletes those whose TAT has passed. The store
// holds at most max_keys keys: when it is full, a new key evicts a drained
// entry if one of 16 nearby entries is drained, and otherwise the one among
// them closest to draining — the one whose loss gives away the least. (A
// new key in a shard that is still empty has nothing there to evict, so
// the bound may be passed by at most one key per shard.)
// Eviction can only make the limiter more permissive for the evicted key,
// never stricter.
//
// Two keys whose 64-bit hashes collide share a limit; with a million keys
// the chance that any two collide is about 3 in 100 million.
//
// Use NewMemoryStore; the zero value is not usable. It is safe for
// concurrent use.
type MemoryStore struct {
	seed    maphash.Seed
	maxKeys atomic.Int64
	count   atomic.Int64
	now     func() time.Time
	shards  [shardCount]shard
}

type shard struct {
	mu    sync.Mutex
	slots []slot // power-of-two length; key 0 marks an empty slot
	n     int
	_     [24]byte // keep shards on separate cache lines
}

type slot struct {
	key uint64
	tat int64
}

// NewMemoryStore returns an empty store that holds at most maxKeys keys
// (DefaultMaxKeys if 0) and reads time from now (time.Now if nil).
func NewMemoryStore(maxKeys int, now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	s := &MemoryStore{seed: maphash.MakeSeed(), now: now}
	for i := range s.shards {
		s.shards[i].slots = make([]slot, minSlots)
	}
	s.SetMaxKeys(maxKeys)
	return s
}

// SetMaxKeys changes the bound; a config reload may change max_keys.
func (s *MemoryStore) SetMaxKeys(maxKeys int) {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	s.maxKeys.Store(int64(maxKeys))
}

// Take implements Store.
func (s *MemoryStore) Take(_ context.Context, key string, l Limit) (Decision, error) {
	return s.TakeAt(maphash.String(s.seed, key), l, s.now().UnixNano()), nil
}

// Peek implements Store.
func (s *MemoryStore) Peek(_ context.Context, key string, l Limit) (Decision, error) {
	return s.PeekAt(maphash.String(s.seed, key), l, s.now().UnixNano()), nil
}

// PeekAt decides as TakeAt would, without storing anything.
func (s *MemoryStore) PeekAt(h uint64, l Limit, now int64) Decision {
	if h == 0 {
		h = 1
	}
	sh := &s.shards[h&(shardCount-1)]
	sh.mu.Lock()
	var tat int64
	if i, found := sh.find(h); found {
		tat = sh.slots[i].tat
	}
	sh.mu.Unlock()
	_, d := l.Decide(tat, now)
	return d
}

// TakeAt decides one event for a hashed key at now (nanoseconds).
func (s *MemoryStore) TakeAt(h uint64, l Limit, now int64) Decision {
	if h == 0 {
		h = 1 // 0 marks empty slots
	}
	sh := &s.shards[h&(shardCount-1)]
	sh.mu.Lock()
	i, found := sh.find(h)
	var tat int64
	if found {
		tat = sh.slots[i].tat
	}
	next, d := l.Decide(tat, now)
	if d.Allowed {
		if found {
			sh.slots[i].tat = next
		} else {
			s.insert(sh, h, next, now)
		}
	}
	sh.mu.Unlock()
	return d
}

// home is the slot a hash would ideally occupy.
func (sh *shard) home(h uint64) int {
	return int(h>>shardBits) & (len(sh.slots) - 1)
}

// find returns the slot holding h, or the empty slot where it would go.
func (sh *shard) find(h uint64) (int, bool) {
	mask := len(sh.slots) - 1
	for i := sh.home(h); ; i = (i + 1) & mask {
		switch sh.slots[i].key {
		case h:
			return i, true
		case 0:
			return i, false
		}
	}
}

// insert stores a new key, first dropping drained entries near its slot
// and, if the store is full, evicting one.
func (s *MemoryStore) insert(sh *shard, h uint64, tat, now int64) {
	full := s.count.Load() >= s.maxKeys.Load()
	if sh.n > 0 {
		if sh.makeRoom(h, now, full) {
			s.count.Add(-1)
		}
	}
	if (sh.n+1)*4 > len(sh.slots)*3 {
		sh.grow()
	}
	i, _ := sh.find(h)
	sh.slots[i] = slot{key: h, tat: tat}
	sh.n++
	s.count.Add(1)
}

// makeRoom looks at the entries that follow h's home slot. It deletes one
// drained entry if it finds one (more than one would skew the scan), and
// otherwise, if full, the entry closest to draining. It reports whether it
// deleted an entry.
func (sh *shard) makeRoom(h uint64, now int64, full bool) bool {
	sample := sweepSample
	if full {
		sample = evictSample
	}
	mask := len(sh.slots) - 1
	victim, victimTAT, seen := -1, int64(0), 0
	for i, n := sh.home(h), 0; n <= mask && seen < sample; i, n = (i+1)&mask, n+1 {
		e := sh.slots[i]
		if e.key == 0 {
			continue
		}
		seen++
		if e.tat <= now {
			sh.remove(i)
			return true
		}
		if victim < 0 || e.tat < victimTAT {
			victim, victimTAT = i, e.tat
		}
	}
	if full && victim >= 0 {
		sh.remove(victim)
		return true
	}
	return false
}

// remove empties slot i and shifts later entries of its probe run back,
// so that lookups never need tombstones.
func (sh *shard) remove(i int) {
	mask := len(sh.slots) - 1
	for j := (i + 1) & mask; sh.slots[j].key != 0; j = (j + 1) & mask {
		k := sh.home(sh.slots[j].key)
		// The entry at j may move to i only if its home is not in the
		// cyclic range (i, j].
		if (i <= j && (k <= i || k > j)) || (i > j && k <= i && k > j) {
			sh.slots[i] = sh.slots[j]
			i = j
		}
	}
	sh.slots[i] = slot{}
	sh.n--
}

// grow doubles the table.
func (sh *shard) grow() {
	old := sh.slots
	sh.slots = make([]slot, len(old)*2)
	for _, e := range old {
		if e.key != 0 {
			i, _ := sh.find(e.key)
			sh.slots[i] = e
		}
	}
}

// Len returns the number of keys held.
func (s *MemoryStore) Len() int { return int(s.count.Load()) }

// Destruct lets MemoryStore live in a caddy.UsagePool.
func (s *MemoryStore) Destruct() error { return nil }
