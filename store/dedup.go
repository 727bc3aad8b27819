package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
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
}

// Claim implements webhookauth.DedupStore.
func (s *RedisDedup) Claim(ctx context.Context, id string, token uint64, claimTTL time.Duration) (webhookauth.ClaimResult, error) {
	// SET NX GET (Redis 7.0): sets the claim if the key is free and
	// returns nil, or returns what the key holds and leaves it alone. One
	// plain command, no script.
	prev, err := s.pipe.command(ctx, s.timeout, "set", s.key(id), claimValue(token), "nx", "get", "px", claimTTL.Milliseconds())
	if err == redis.Nil {
		return webhookauth.Claimed, nil
	}
	if err != nil {
		return 0, err
	}
	if v, ok := prev.(string); ok {
		if v == "d" {
			return webhookauth.Done, nil
		}
		return webhookauth.InFlight, nil
	}
	return 0, errUnexpectedReply
}

// Finish implements webhookauth.DedupStore.
func (s *RedisDedup) Finish(ctx context.Context, id string, token uint64, done bool, doneTTL time.Duration) error {
	flag := "0"
	if done {
		flag = "1"
	}
	_, err := s.pipe.call(ctx, s.timeout, finishScript, s.key(id), claimValue(token), flag, doneTTL.Milliseconds())
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
	return "c" + strconv.FormatUint(token, 36)
}
