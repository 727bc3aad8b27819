package store

import (
	"context"
	"crypto/sha256"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/webhookauth/caddy-webhookauth/ratelimit"
)

// gcraScript is ratelimit.Limit.Decide in Lua, on integer microseconds of
// the server's TIME, so every Caddy in a fleet uses one clock. One GET,
// at most one SET whose TTL ends when the key's state has drained, one
// round trip. Lua numbers are doubles: microseconds since 1970 stay exact
// until the year 2255.
var gcraScript = redis.NewScript(`
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local nexttat = tat + interval
local allow_at = nexttat - tolerance
if now < allow_at then
	return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], nexttat, 'PX', math.ceil((nexttat - now) / 1000))
return {1, math.floor((now + tolerance - nexttat) / interval), 0, nexttat - now}
`)

// RedisRateLimit is a ratelimit.Store on Redis, shared by a fleet. Each
// key is stored under the prefix and the first 10 bytes (80 bits) of the
// SHA-256 of the limiter's key: with the default prefix a Redis key is 20
// bytes whatever the key template produces, which keeps Redis memory per
// key near 120 bytes (see BENCHMARKS.md), and no client IP or sender name
// is readable in Redis.
type RedisRateLimit struct {
	client  redis.Scripter
	prefix  string
	timeout time.Duration
}

// Take implements ratelimit.Store with one script call.
func (s *RedisRateLimit) Take(ctx context.Context, key string, l ratelimit.Limit) (ratelimit.Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	intervalUS := (int64(l.Interval()) + 999) / 1000
	burst := l.Burst
	if burst <= 0 {
		burst = l.Rate
	}
	res, err := gcraScript.Run(ctx, s.client, []string{s.redisKey(key)}, intervalUS, burst).Int64Slice()
	if err != nil {
		return ratelimit.Decision{}, err
	}
	if len(res) != 4 {
		return ratelimit.Decision{}, errUnexpectedReply
	}
	return ratelimit.Decision{
		Allowed:    res[0] == 1,
		Remaining:  res[1],
		RetryAfter: time.Duration(res[2]) * time.Microsecond,
		ResetAfter: time.Duration(res[3]) * time.Microsecond,
	}, nil
}

// redisKey is the Redis key for a limiter key.
func (s *RedisRateLimit) redisKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return s.prefix + string(sum[:10])
}
