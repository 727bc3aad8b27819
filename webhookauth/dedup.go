package webhookauth

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"sync"
	"time"
)

// ClaimResult is what a dedup store says about a delivery id.
type ClaimResult uint8

const (
	// Claimed: the id was free and is now in flight for this caller.
	Claimed ClaimResult = iota + 1
	// InFlight: another request holds the claim.
	InFlight
	// Done: the id was delivered (the backend answered 2xx) within the
	// dedup TTL.
	Done
)

// DedupStore remembers delivery ids. Claim is atomic: of concurrent claims
// for one id exactly one gets Claimed. A claim expires by itself after its
// TTL so that a crashed server cannot block a delivery for longer. Finish
// acts only on the caller's own claim (identified by token): it marks the
// id done for doneTTL, or releases it so the sender's retry goes through.
type DedupStore interface {
	Claim(ctx context.Context, id string, token uint64, claimTTL time.Duration) (ClaimResult, error)
	Finish(ctx context.Context, id string, token uint64, done bool, doneTTL time.Duration) error
}

// DedupProvider is implemented by the webhook app, which owns the shared
// dedup stores (Redis).
type DedupProvider interface {
	DedupStore(name string) (DedupStore, error)
}

const dedupShards = 64

// MemoryDedup is the embedded dedup store. Ids are kept as 128-bit seeded
// hashes, so distinct ids never collide in practice (the chance for any two
// of a billion ids is below 1 in 10^20) and long ids cost no more than
// short ones: one map entry of 24 bytes per id, with an expiry in
// milliseconds and the claim token packed into one word. Expired entries
// are dropped lazily as new ids arrive. Time is read from now, injected
// per instance.
type MemoryDedup struct {
	seeds  [2]maphash.Seed
	now    func() time.Time
	epoch  time.Time
	shards [dedupShards]dedupShard
}

type dedupShard struct {
	mu sync.Mutex
	m  map[[16]byte]uint64 // expiry (ms since epoch) << 24 | token&0xffffff; token 0 means done
	_  [48]byte
}

// NewMemoryDedup returns an empty store reading time from now (time.Now
// if nil).
func NewMemoryDedup(now func() time.Time) *MemoryDedup {
	if now == nil {
		now = time.Now
	}
	s := &MemoryDedup{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, now: now, epoch: now()}
	for i := range s.shards {
		s.shards[i].m = make(map[[16]byte]uint64)
	}
	return s
}

func (s *MemoryDedup) key(id string) [16]byte {
	var k [16]byte
	binary.LittleEndian.PutUint64(k[:8], maphash.String(s.seeds[0], id))
	binary.LittleEndian.PutUint64(k[8:], maphash.String(s.seeds[1], id))
	return k
}

func (s *MemoryDedup) nowMS() uint64 {
	return uint64(s.now().Sub(s.epoch) / time.Millisecond)
}

const tokenMask = 1<<24 - 1

// claimToken keeps 24 bits of a token, never 0 (0 marks done).
func claimToken(token uint64) uint64 {
	if t := token & tokenMask; t != 0 {
		return t
	}
	return 1
}

// Claim implements DedupStore.
func (s *MemoryDedup) Claim(_ context.Context, id string, token uint64, claimTTL time.Duration) (ClaimResult, error) {
	k := s.key(id)
	now := s.nowMS()
	sh := &s.shards[k[0]%dedupShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if v, ok := sh.m[k]; ok && v>>24 > now {
		if v&tokenMask == 0 {
			return Done, nil
		}
		return InFlight, nil
	}
	sh.sweep(now)
	sh.m[k] = (now+uint64(claimTTL/time.Millisecond))<<24 | claimToken(token)
	return Claimed, nil
}

// Finish implements DedupStore.
func (s *MemoryDedup) Finish(_ context.Context, id string, token uint64, done bool, doneTTL time.Duration) error {
	k := s.key(id)
	now := s.nowMS()
	sh := &s.shards[k[0]%dedupShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	v, ok := sh.m[k]
	if !ok || v&tokenMask != claimToken(token) || v>>24 <= now {
		return nil // not our claim any more: it expired, and perhaps another took it
	}
	if done {
		sh.m[k] = (now + uint64(doneTTL/time.Millisecond)) << 24
	} else {
		delete(sh.m, k)
	}
	return nil
}

// sweep drops expired entries among two random ones.
func (sh *dedupShard) sweep(now uint64) {
	n := 0
	for k, v := range sh.m {
		if v>>24 <= now {
			delete(sh.m, k)
		}
		if n++; n == 2 {
			break
		}
	}
}

// Len returns the number of ids held, expired ones not yet dropped
// included.
func (s *MemoryDedup) Len() int {
	n := 0
	for i := range s.shards {
		s.shards[i].mu.Lock()
		n += len(s.shards[i].m)
		s.shards[i].mu.Unlock()
	}
	return n
}

// Destruct lets MemoryDedup live in a caddy.UsagePool.
func (s *MemoryDedup) Destruct() error { return nil }
