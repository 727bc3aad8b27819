package queue

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ShardedStore is `store redis` with `shards <n>`: one queue spread over
// n RedisStores, each with its own hash tag ({name/0}, {name/1}, …), so
// that on a Cluster the shards land on different slots and, as the
// cluster spreads slots, on different masters. Accepts go to the shards
// in turn; each server takes from every shard, starting with a
// different one each time. An item lives in one shard for its whole
// life. The fleet's concurrency is split evenly between the shards
// (rounded up), pause is set on every shard, and the counts are summed.
//
// The number of shards may grow (new shards start empty) but never
// shrink: a shard left out would keep its items forever. The largest
// count a queue has run with is kept in Redis, and a config asking for
// fewer is refused.
type ShardedStore struct {
	shards []*RedisStore
	next   atomic.Uint64 // the next shard an accept goes to
	start  atomic.Uint64 // the shard Due starts with
}

// NewShardedStore opens queue name as n shards on rdb.
func NewShardedStore(ctx context.Context, rdb redis.UniversalClient, prefix, name, consumer string, timeout, visibility time.Duration, concurrency, minReplicas, n int) (*ShardedStore, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The count is kept under the first shard's tag; a Redis that does
	// not answer now is checked again at the next start.
	countKey := prefix + "{" + name + "/0}:shards"
	if had, err := rdb.Get(cctx, countKey).Int(); err == nil && had > n {
		return nil, fmt.Errorf("the queue has run with %d shards; shards may grow, never shrink (the items of a shard left out would never be delivered)", had)
	} else if err == nil || errors.Is(err, redis.Nil) {
		if had < n {
			rdb.Set(cctx, countKey, strconv.Itoa(n), 0)
		}
	}
	s := &ShardedStore{}
	per := (concurrency + n - 1) / n
	for i := range n {
		sh, err := NewRedisStore(ctx, rdb, prefix, name+"/"+strconv.Itoa(i), consumer, timeout, visibility, per, minReplicas)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.shards = append(s.shards, sh)
	}
	return s, nil
}

// Reconfigure passes a reload's settings to every shard.
func (s *ShardedStore) Reconfigure(rdb redis.UniversalClient, timeout time.Duration, concurrency int, visibility time.Duration, minReplicas int) {
	per := (concurrency + len(s.shards) - 1) / len(s.shards)
	for _, sh := range s.shards {
		sh.Reconfigure(rdb, timeout, per, visibility, minReplicas)
	}
}

// Add implements Store: the shards in turn.
func (s *ShardedStore) Add(it *Item, req *Request, body []byte) error {
	return s.shards[s.next.Add(1)%uint64(len(s.shards))].Add(it, req, body)
}

// Due implements Store: from every shard, starting with the next one.
func (s *ShardedStore) Due(now time.Time, n int, skip func(string) bool) ([]Item, error) {
	first := int(s.start.Add(1) % uint64(len(s.shards)))
	var out []Item
	var firstErr error
	for k := range s.shards {
		if len(out) >= n {
			break
		}
		items, err := s.shards[(first+k)%len(s.shards)].Due(now, n-len(out), skip)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		out = append(out, items...)
	}
	if len(out) > 0 {
		return out, nil
	}
	return nil, firstErr
}

// NextDue implements Store: the earliest of the shards'.
func (s *ShardedStore) NextDue() (time.Time, bool, error) {
	var next time.Time
	ok := false
	for _, sh := range s.shards {
		t, has, err := sh.NextDue()
		if err != nil {
			return t, has, err
		}
		if has && (!ok || t.Before(next)) {
			next, ok = t, true
		}
	}
	return next, ok, nil
}

// owner is the shard that took item id (nil: none here).
func (s *ShardedStore) owner(id string) *RedisStore {
	for _, sh := range s.shards {
		sh.mu.Lock()
		_, ok := sh.claimed[id]
		sh.mu.Unlock()
		if ok {
			return sh
		}
	}
	return nil
}

// Load implements Store.
func (s *ShardedStore) Load(id string) (*Item, *Request, []byte, error) {
	if sh := s.owner(id); sh != nil {
		return sh.Load(id)
	}
	return nil, nil, nil, ErrNotFound
}

// Finish implements Store: each outcome to the shard that took its item.
func (s *ShardedStore) Finish(done []Finished) error {
	by := map[*RedisStore][]Finished{}
	for _, f := range done {
		if sh := s.owner(f.ID); sh != nil {
			by[sh] = append(by[sh], f)
		}
	}
	var firstErr error
	for sh, fs := range by {
		if err := sh.Finish(fs); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// List implements Store: the shards' listings merged, oldest first.
func (s *ShardedStore) List(state State, after string, limit int) ([]Item, error) {
	var out []Item
	for _, sh := range s.shards {
		items, err := sh.List(state, after, limit)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// each runs op on the shards until one finds the item.
func (s *ShardedStore) each(op func(*RedisStore) error) error {
	for _, sh := range s.shards {
		if err := op(sh); !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return ErrNotFound
}

// Retry implements Store.
func (s *ShardedStore) Retry(id string, now time.Time) error {
	return s.each(func(sh *RedisStore) error { return sh.Retry(id, now) })
}

// Drop implements Store.
func (s *ShardedStore) Drop(id string) error {
	return s.each(func(sh *RedisStore) error { return sh.Drop(id) })
}

// Redrive implements Store.
func (s *ShardedStore) Redrive(now time.Time) (int, error) {
	total := 0
	for _, sh := range s.shards {
		n, err := sh.Redrive(now)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Expire implements Store.
func (s *ShardedStore) Expire(now time.Time) (int, error) {
	total := 0
	for _, sh := range s.shards {
		n, err := sh.Expire(now)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// SetPaused implements Store: on every shard.
func (s *ShardedStore) SetPaused(p bool) error {
	for _, sh := range s.shards {
		if err := sh.SetPaused(p); err != nil {
			return err
		}
	}
	return nil
}

// Stats implements Store: the shards' counts summed; paused if any
// shard is (a pause that reached only some shards still holds).
func (s *ShardedStore) Stats() (Stats, error) {
	var total Stats
	for _, sh := range s.shards {
		st, err := sh.Stats()
		if err != nil {
			return Stats{}, err
		}
		total.Pending += st.Pending
		total.Dead += st.Dead
		total.Retained += st.Retained
		total.Bytes += st.Bytes
		total.InFlight += st.InFlight
		total.Paused = total.Paused || st.Paused
		if !st.Oldest.IsZero() && (total.Oldest.IsZero() || st.Oldest.Before(total.Oldest)) {
			total.Oldest = st.Oldest
		}
	}
	return total, nil
}

// Close implements Store.
func (s *ShardedStore) Close() error {
	for _, sh := range s.shards {
		sh.Close()
	}
	return nil
}
