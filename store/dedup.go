package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

var errUnexpectedReply = errors.New("unexpected reply from redis")

// finishScript marks a claim done or releases it, only if it is still the
// caller's own (a claim that expired may have been taken by another).
var finishScript = newScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then
	redis.call('SET', KEYS[1], 'd', 'PX', ARGV[3])
else
	redis.call('DEL', KEYS[1])
end
return 1
`)

// RedisDedup is a webhookauth.DedupStore on Redis, shared by a fleet: one
// key per delivery id, holding the claim's token while in flight and "d"
// once delivered, always with a TTL.
type RedisDedup struct {
	pipe    *pipeliner
	prefix  string
	timeout time.Duration
	// The claim and done TTLs in milliseconds, boxed once: a handler's
	// TTLs do not change.
	claimTTL, doneTTL atomic.Pointer[boxedTTL]
}

type boxedTTL struct {
	ttl time.Duration
	ms  any
}

// boxedTTL returns ttl in milliseconds as a command argument, boxed once
// per value and kept in cache.
func (s *RedisDedup) boxedTTL(cache *atomic.Pointer[boxedTTL], ttl time.Duration) any {
	if b := cache.Load(); b != nil && b.ttl == ttl {
		return b.ms
	}
	b := &boxedTTL{ttl: ttl, ms: ttl.Milliseconds()}
	cache.Store(b)
	return b.ms
}

// Claim implements webhookauth.DedupStore.
func (s *RedisDedup) Claim(ctx context.Context, id string, token uint64, claimTTL time.Duration) (webhookauth.ClaimResult, error) {
	key, ttl := s.key(id), s.boxedTTL(&s.claimTTL, claimTTL)
	// SET NX answers OK when the key was free: the claim is ours, in one
	// plain command with no error reply to classify. Only when the key is
	// taken does a GET say by what: done, or a claim in flight. If the
	// key went away in between (released or expired), claim again.
	for attempt := 0; attempt < 3; attempt++ {
		_, err := s.pipe.command(ctx, s.timeout, "set", key, claimValue(token), "nx", "px", ttl)
		if err == nil {
			return webhookauth.Claimed, nil
		}
		if err != redis.Nil {
			return 0, err
		}
		prev, err := s.pipe.command(ctx, s.timeout, "get", key)
		if err == redis.Nil {
			continue
		}
		if err != nil {
			return 0, err
		}
		if v, ok := prev.(string); ok && v == "d" {
			return webhookauth.Done, nil
		}
		return webhookauth.InFlight, nil
	}
	// Claimed and released three times over while we looked: another
	// request is working on it; the sender retries later.
	return webhookauth.InFlight, nil
}

// Finish implements webhookauth.DedupStore.
func (s *RedisDedup) Finish(ctx context.Context, id string, token uint64, done bool, doneTTL time.Duration) error {
	flag := "0"
	if done {
		flag = "1"
	}
	_, err := s.pipe.call(ctx, s.timeout, finishScript, s.key(id), claimValue(token), flag, s.boxedTTL(&s.doneTTL, doneTTL))
	return err
}

// key is the Redis key of a delivery: a fixed-size digest of what the
// handler names it by (its scope and the delivery id or MAC), so a long
// id costs no more than a short one and no id appears in a key name.
func (s *RedisDedup) key(id string) string {
	sum := sha256.Sum256([]byte(id))
	return s.prefix + hex.EncodeToString(sum[:16])
}

// claimValue is what an in-flight key holds: "c" and the claim's token,
// which can never equal the done marker "d".
func claimValue(token uint64) string {
	var b [16]byte
	b[0] = 'c'
	return string(strconv.AppendUint(b[:1], token, 36))
}
