package store

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

var errUnexpectedReply = errors.New("unexpected reply from redis")

// claimScript claims an id in one round trip: SET NX with the claim's TTL,
// and otherwise tells whether the holder is done ("d") or in flight.
var claimScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == 'd' then return 3 end
return 2
`)

// finishScript marks a claim done or releases it, only if it is still the
// caller's own (a claim that expired may have been taken by another).
var finishScript = redis.NewScript(`
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
	client  redis.Scripter
	prefix  string
	timeout time.Duration
}

// Claim implements webhookauth.DedupStore.
func (s *RedisDedup) Claim(ctx context.Context, id string, token uint64, claimTTL time.Duration) (webhookauth.ClaimResult, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n, err := claimScript.Run(ctx, s.client, []string{s.prefix + id}, claimValue(token), claimTTL.Milliseconds()).Int64()
	if err != nil {
		return 0, err
	}
	switch n {
	case 1:
		return webhookauth.Claimed, nil
	case 2:
		return webhookauth.InFlight, nil
	case 3:
		return webhookauth.Done, nil
	}
	return 0, errUnexpectedReply
}

// Finish implements webhookauth.DedupStore.
func (s *RedisDedup) Finish(ctx context.Context, id string, token uint64, done bool, doneTTL time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	flag := "0"
	if done {
		flag = "1"
	}
	return finishScript.Run(ctx, s.client, []string{s.prefix + id}, claimValue(token), flag, doneTTL.Milliseconds()).Err()
}

// claimValue is what an in-flight key holds: "c" and the claim's token,
// which can never equal the done marker "d".
func claimValue(token uint64) string {
	return "c" + strconv.FormatUint(token, 36)
}
