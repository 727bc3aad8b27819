package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync/atomic"
	"time"

	"github.com/webhookauth/caddy-webhookauth/ratelimit"
)

// gcraSource is ratelimit.Limit.Decide in Lua, on integer microseconds
// of the server's TIME, so every Caddy in a fleet uses one clock, and in
// one round trip; with ARGV[3] = 1 it only peeks. The reply is one integer: the time until the key is
// drained in µs, negative (-1 - that time) when the event is denied; the
// rest of the decision follows from the limit (see Take).
//
// The state is the theoretical arrival time (TAT), and a key's TTL must
// end when its state has drained, which is at the TAT. So the key's
// expiry time holds the TAT, rounded up to the millisecond Redis keeps,
// and the value holds only what the rounding added: 0 to 999 µs. Redis
// stores integers below 10000 as shared objects, so the value costs no
// memory of its own (see BENCHMARKS.md). PEXPIRETIME needs Redis 7.0.
// Lua numbers are doubles: microseconds since 1970 stay exact until the
// year 2255.
const gcraSource = `
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = now
local at = redis.call('PEXPIRETIME', KEYS[1])
if at > 0 then
	tat = at * 1000 - (tonumber(redis.call('GET', KEYS[1])) or 0)
	if tat < now then tat = now end
end
local nexttat = tat + interval
if now < nexttat - tolerance then
	return -1 - (tat - now)
end
if ARGV[3] == '1' then return nexttat - now end
local at_ms = math.ceil(nexttat / 1000)
redis.call('SET', KEYS[1], at_ms * 1000 - nexttat, 'PXAT', at_ms)
return nexttat - now
`

var gcraScript = newScript(gcraSource)

var errRedisTooOld = errors.New("redis rate limiting needs Redis 7.0 or later (PEXPIRETIME)")

// RedisRateLimit is a ratelimit.Store on Redis, shared by a fleet. Each
// key is stored under the prefix and the first 10 bytes (80 bits) of the
// SHA-256 of the limiter's key: with the default prefix a Redis key is 20
// bytes whatever the key template produces, and no client IP or sender
// name is readable in Redis. Concurrent decisions share pipelines (see
// pipeliner).
type RedisRateLimit struct {
	pipe    *pipeliner
	prefix  string
	timeout time.Duration
	args    atomic.Pointer[limitArgs]
}

// limitArgs are a limit's script arguments, boxed once.
type limitArgs struct {
	limit ratelimit.Limit
	boxed [2]any
}

// Take implements ratelimit.Store with one script call.
func (s *RedisRateLimit) Take(ctx context.Context, key string, l ratelimit.Limit) (ratelimit.Decision, error) {
	return s.decide(ctx, key, l, takeArg)
}

// Peek implements ratelimit.Store with one script call that stores
// nothing.
func (s *RedisRateLimit) Peek(ctx context.Context, key string, l ratelimit.Limit) (ratelimit.Decision, error) {
	return s.decide(ctx, key, l, peekArg)
}

// The script's mode argument, boxed once.
var takeArg, peekArg any = "0", "1"

func (s *RedisRateLimit) decide(ctx context.Context, key string, l ratelimit.Limit, mode any) (ratelimit.Decision, error) {
	interval := (int64(l.Interval()) + 999) / 1000 // µs, rounded up like the memory store's ns
	burst := l.Burst
	if burst <= 0 {
		burst = l.Rate
	}
	a := s.args.Load()
	if a == nil || a.limit != l {
		a = &limitArgs{limit: l, boxed: [2]any{interval, burst}}
		s.args.Store(a)
	}
	r, err := s.pipe.call(ctx, s.timeout, gcraScript, s.redisKey(key), a.boxed[0], a.boxed[1], mode)
	if err != nil {
		return ratelimit.Decision{}, err
	}
	tolerance := interval * burst
	if r < 0 {
		reset := -1 - r
		return ratelimit.Decision{
			RetryAfter: time.Duration(reset+interval-tolerance) * time.Microsecond,
			ResetAfter: time.Duration(reset) * time.Microsecond,
		}, nil
	}
	return ratelimit.Decision{
		Allowed:    true,
		Remaining:  (tolerance - r) / interval,
		ResetAfter: time.Duration(r) * time.Microsecond,
	}, nil
}

// redisKey is the Redis key for a limiter key.
func (s *RedisRateLimit) redisKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return s.prefix + string(sum[:10])
}
