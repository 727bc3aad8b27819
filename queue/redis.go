package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/webhookauth/caddy-webhookauth/ratelimit"
)

// RedisStore is `store redis`: a queue shared by a fleet of Caddy
// servers, on Redis Streams with one consumer group per queue. Every key
// of a queue carries the queue's name as a hash tag, so on a Cluster they
// share one slot and every script runs on one node:
//
//	{q}:s      stream: the pending items due now (fields m, r, b: the
//	           item's metadata, its request, its body); the consumer
//	           group g hands each entry to one server at a time
//	{q}:due    sorted set: items waiting for a later attempt, by due time
//	{q}:delay  hash: their fields, id:m, id:r, id:b
//	{q}:dead   stream: dead items (same fields)
//	{q}:ret    stream: delivered items kept for replay
//	{q}:bytes  the bodies of pending and dead items, in bytes
//	{q}:paused present while delivery is paused
//
// An entry a server took and did not finish within the visibility
// timeout (the server died, or hung) is taken by another (XAUTOCLAIM).
// A server's outcome for an entry another has taken since is ignored.
// How many entries the whole fleet has in flight (the group's pending
// list) is checked in the same script that hands out new ones, so
// `concurrency` holds for the fleet.
type RedisStore struct {
	rdbMu    sync.RWMutex
	rdb      redis.UniversalClient
	keys     redisKeys
	consumer string
	timeout  time.Duration
	// visibility is how long an entry may stay taken by one server
	// before another may take it.
	visibility time.Duration
	// concurrency is the fleet's limit on entries in flight.
	concurrency int
	// minReplicas, when above 0, makes Add wait (WAIT) until that many
	// replicas have the item before it returns.
	minReplicas int

	// adds feeds the adder; quit stops it; stopped is closed when it has.
	adds          chan *redisAdd
	quit, stopped chan struct{}
	closeOnce     sync.Once

	mu      sync.Mutex
	claimed map[string]*claim // by item id
	recover bool              // take this consumer's own entries first (after a restart)

	statsMu  sync.Mutex
	stats    Stats
	statsAt  time.Time
	statsErr error
}

// claim is an entry this server has taken.
type claim struct {
	sid  string // stream entry id
	item Item
	req  *Request
	body []byte
}

type redisKeys struct{ s, due, delay, dead, ret, bytes, paused string }

const redisGroup = "g"

// NewRedisStore opens the queue name on rdb. consumer names this
// process in the group; it must be stable across restarts (so a
// restarted server takes back what it had in flight at once) and
// distinct between live servers.
func NewRedisStore(ctx context.Context, rdb redis.UniversalClient, prefix, name, consumer string, timeout, visibility time.Duration, concurrency, minReplicas int) (*RedisStore, error) {
	base := prefix + "{" + name + "}:"
	s := &RedisStore{rdb: rdb, consumer: consumer, timeout: timeout, visibility: visibility, concurrency: concurrency,
		minReplicas: minReplicas, claimed: map[string]*claim{}, recover: true,
		adds: make(chan *redisAdd, maxAddGroup), quit: make(chan struct{}), stopped: make(chan struct{}),
		keys: redisKeys{s: base + "s", due: base + "due", delay: base + "delay", dead: base + "dead", ret: base + "ret", bytes: base + "bytes", paused: base + "paused"}}
	// The group is made when the queue is first used; a Redis that is
	// down now makes it later (ensureGroup on NOGROUP).
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s.ensureGroup(cctx)
	go s.adder()
	return s, nil
}

func (s *RedisStore) ensureGroup(ctx context.Context) error {
	err := s.client().XGroupCreateMkStream(ctx, s.keys.s, redisGroup, "0").Err()
	if err != nil && strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return nil
	}
	return err
}

func (s *RedisStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.tmo())
}

// Reconfigure takes what a reload may change: the webhook app's client
// (a changed redis block makes a new one, and closes the old), and the
// limits.
func (s *RedisStore) Reconfigure(rdb redis.UniversalClient, timeout time.Duration, concurrency int, visibility time.Duration, minReplicas int) {
	s.rdbMu.Lock()
	s.rdb, s.timeout = rdb, timeout
	s.rdbMu.Unlock()
	s.mu.Lock()
	s.concurrency, s.visibility, s.minReplicas = concurrency, visibility, minReplicas
	s.mu.Unlock()
}

func (s *RedisStore) tmo() time.Duration {
	s.rdbMu.RLock()
	defer s.rdbMu.RUnlock()
	return s.timeout
}

func (s *RedisStore) client() redis.UniversalClient {
	s.rdbMu.RLock()
	defer s.rdbMu.RUnlock()
	return s.rdb
}

// redisProvider is the webhook app, which owns the Redis client.
type redisProvider interface {
	QueueRedis() (redis.UniversalClient, string, time.Duration, error)
}

// storeWhere says where a store keeps a queue: its file, or "redis".
func storeWhere(st Store) string {
	switch st := st.(type) {
	case *LocalStore:
		return st.db.Path()
	case *RedisStore:
		return redisWhere(1)
	case *ShardedStore:
		return redisWhere(len(st.shards))
	}
	return ""
}

func redisWhere(shards int) string {
	if shards <= 1 {
		return "redis"
	}
	return fmt.Sprintf("redis (%d shards)", shards)
}

// consumerName names this process in a queue's consumer group: the
// host and Caddy's data directory, so that it is the same after a
// restart (the restarted server takes back at once what it had in
// flight) and differs between servers on one host.
func consumerName() string {
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(caddy.AppDataDir()))
	return host + "-" + hex.EncodeToString(sum[:4])
}

// checkEviction refuses a Redis whose maxmemory-policy could evict a
// queued item (allkeys-*: the queue's keys have no expiry, so the
// volatile-* policies and noeviction never evict them). Where CONFIG is
// not allowed or Redis does not answer, it returns a warning instead.
func checkEviction(ctx context.Context, rdb redis.UniversalClient) (string, error) {
	var mu sync.Mutex
	unlimited := false
	check := func(ctx context.Context, c *redis.Client) error {
		kv, err := c.ConfigGet(ctx, "maxmemory*").Result()
		if err != nil {
			return err
		}
		at := c.Options().Addr
		if _, _, err := net.SplitHostPort(at); err != nil {
			at = "the Sentinels' master" // a failover client's Addr is a name
		}
		if p := kv["maxmemory-policy"]; strings.HasPrefix(p, "allkeys-") {
			return fmt.Errorf("%w: Redis at %s has maxmemory-policy %s, which may evict queued deliveries; set maxmemory-policy noeviction (a full Redis then refuses new deliveries with 503 queue_unavailable instead of dropping stored ones)", errEviction, at, p)
		}
		if kv["maxmemory"] == "0" {
			mu.Lock()
			unlimited = true
			mu.Unlock()
		}
		return nil
	}
	var err error
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, check)
	case *redis.Client:
		err = check(ctx, c)
	default:
		return "webhook_queue: the Redis eviction policy could not be checked; it must be noeviction (or volatile-*), never allkeys-*", nil
	}
	if errors.Is(err, errEviction) {
		return "", err
	}
	if err != nil {
		return "webhook_queue: the Redis eviction policy could not be checked (" + err.Error() + "); it must be noeviction (or volatile-*), never allkeys-*", nil
	}
	if unlimited {
		// Not refused: maxmemory 0 is Redis' default, and a queue that
		// ran without it keeps running; but a Redis that grows until the
		// system kills it loses every queued item it held.
		return "webhook_queue: Redis has no maxmemory: set maxmemory (with maxmemory-policy noeviction), or Redis may grow until the system kills it and the queue with it", nil
	}
	return "", nil
}

var errEviction = errors.New("an eviction policy that drops queued items")

// fleetRate spaces attempts out for the whole fleet: the webhook app's
// GCRA in Redis, shared with webhook_rate_limit's store.
type fleetRate struct {
	store ratelimit.Store
	key   string
	limit ratelimit.Limit
}

func (f *fleetRate) Wait(ctx context.Context) error {
	for {
		d, err := f.store.Take(ctx, f.key, f.limit)
		wait := d.RetryAfter
		switch {
		case err != nil:
			wait = 100 * time.Millisecond // Redis away: no attempt without the fleet's say
		case d.Allowed:
			return nil
		}
		t := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Add implements Store. The item is in Redis (and, with min_replicas,
// on that many replicas) when it returns nil. Concurrent accepts share
// one pipeline and one round trip (see adder).
func (s *RedisStore) Add(it *Item, req *Request, body []byte) error {
	it.State = StatePending
	it.Size = len(body)
	m, err := encodeMeta(it)
	if err != nil {
		return err
	}
	r, err := encodeRequest(req)
	if err != nil {
		return err
	}
	a := &redisAdd{m: m, r: r, body: body, done: make(chan error, 1)}
	select {
	case s.adds <- a:
	case <-s.quit:
		return errStoreClosed
	}
	select {
	case err := <-a.done:
		return err
	case <-s.stopped:
		select {
		case err := <-a.done:
			return err
		default:
			return errStoreClosed
		}
	}
}

var errStoreClosed = errors.New("the queue's store is closed")

// redisAdd is one accept waiting for the adder.
type redisAdd struct {
	m, r, body []byte
	done       chan error
}

// maxAddGroup bounds one pipeline of accepts.
const maxAddGroup = 256

// adder sends the accepts that arrived while the previous pipeline was
// in flight as one pipeline: an XADD and an INCRBY each, then, with
// min_replicas, one WAIT for all of them (WAIT counts the replicas that
// have every write made on the connection so far). Like the local
// store's group commit: no timer, a lone accept goes at once.
func (s *RedisStore) adder() {
	defer close(s.stopped)
	group := make([]*redisAdd, 0, maxAddGroup)
	for {
		select {
		case a := <-s.adds:
			group = append(group[:0], a)
		case <-s.quit:
			return
		}
	more:
		for len(group) < maxAddGroup {
			select {
			case a := <-s.adds:
				group = append(group, a)
			default:
				break more
			}
		}
		errs := s.addGroup(group)
		for i, a := range group {
			a.done <- errs[i]
		}
	}
}

func (s *RedisStore) addGroup(group []*redisAdd) []error {
	errs := make([]error, len(group))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	s.mu.Lock()
	replicas := s.minReplicas
	s.mu.Unlock()
	timeout := s.tmo()
	if replicas > 0 {
		timeout *= 2 // the call, then WAIT's own timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// One connection, in order. On a Cluster, WAIT must go to the
	// master of the queue's slot, with the writes.
	var pipe redis.Pipeliner
	if cc, ok := s.client().(*redis.ClusterClient); ok && replicas > 0 {
		node, err := cc.MasterForKey(ctx, s.keys.s)
		if err != nil {
			return fail(err)
		}
		pipe = node.Pipeline()
	} else {
		pipe = s.client().Pipeline()
	}
	adds := make([]*redis.StringCmd, len(group))
	for i, a := range group {
		adds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.s, Values: []any{"m", a.m, "r", a.r, "b", a.body}})
		pipe.IncrBy(ctx, s.keys.bytes, int64(len(a.body)))
	}
	var wait *redis.Cmd
	if replicas > 0 {
		wait = pipe.Do(ctx, "wait", replicas, s.tmo().Milliseconds())
	}
	pipe.Exec(ctx)
	if wait != nil {
		if err := wait.Err(); err != nil {
			return fail(err)
		}
		if got, _ := wait.Int64(); got < int64(replicas) {
			return fail(fmt.Errorf("the item reached %d of the %d replicas min_replicas asks for", got, replicas))
		}
	}
	for i, c := range adds {
		errs[i] = c.Err()
	}
	return errs
}

// takeScript hands this consumer up to ARGV[3] entries: first, after a
// restart, its own unfinished entries; then entries another consumer
// took and left idle past ARGV[5] ms; then new ones, within the fleet's
// concurrency (ARGV[4] less the group's pending count). Before
// that, items whose retry is due (score ≤ ARGV[6]) move from the delay
// set to the stream.
var takeScript = redis.NewScript(`
local s, due, delay = KEYS[1], KEYS[2], KEYS[3]
local g, me = ARGV[1], ARGV[2]
local want, conc, idle, now, own = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local ready = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, 256)
for _, id in ipairs(ready) do
  local v = redis.call('HMGET', delay, id .. ':m', id .. ':r', id .. ':b')
  if v[1] then
    redis.call('XADD', s, '*', 'm', v[1], 'r', v[2], 'b', v[3])
  end
  redis.call('HDEL', delay, id .. ':m', id .. ':r', id .. ':b')
  redis.call('ZREM', due, id)
end
local out = {}
if own == '1' then
  local r = redis.call('XREADGROUP', 'GROUP', g, me, 'COUNT', 1000, 'STREAMS', s, '0')
  if r and r[1] then
    for _, e in ipairs(r[1][2]) do
      if e[2] then table.insert(out, e) end
    end
  end
end
-- Entries left idle by another server are in flight for the fleet
-- already: taking them over does not count against the concurrency.
local left = want - #out
if left > 0 then
  local c = redis.call('XAUTOCLAIM', s, g, me, idle, '0-0', 'COUNT', left)
  for _, e in ipairs(c[2]) do
    if e[2] then table.insert(out, e) end
  end
end
local inflight = redis.call('XPENDING', s, g)[1]
local room = math.min(want - #out, conc - inflight)
if room > 0 then
  local r = redis.call('XREADGROUP', 'GROUP', g, me, 'COUNT', room, 'STREAMS', s, '>')
  if r and r[1] then
    for _, e in ipairs(r[1][2]) do table.insert(out, e) end
  end
end
return out
`)

// Due implements Store: it takes entries for this server (they are
// in flight for the fleet until finished or reclaimed).
func (s *RedisStore) Due(now time.Time, n int, skip func(string) bool) ([]Item, error) {
	if n <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	own, conc, vis := s.recover, s.concurrency, s.visibility
	s.mu.Unlock()
	ownArg := "0"
	if own {
		ownArg = "1"
	}
	ctx, cancel := s.ctx()
	defer cancel()
	keys := []string{s.keys.s, s.keys.due, s.keys.delay}
	args := []any{redisGroup, s.consumer, n, conc, vis.Milliseconds(), now.UnixMilli(), ownArg}
	res, err := takeScript.Run(ctx, s.client(), keys, args...).Slice()
	if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
		// The stream (and its group) is gone: a Redis restarted without
		// persistence, or a flush. Made again; taken next time.
		return nil, s.ensureGroup(ctx)
	}
	if err != nil {
		return nil, err
	}
	if own {
		s.mu.Lock()
		s.recover = false
		s.mu.Unlock()
	}
	var out []Item
	for _, raw := range res {
		c, err := parseEntry(raw)
		if err != nil {
			return out, err
		}
		s.mu.Lock()
		prev := s.claimed[c.item.ID]
		s.claimed[c.item.ID] = c
		s.mu.Unlock()
		if prev != nil || (skip != nil && skip(c.item.ID)) {
			continue // in flight here already (taken again: its idle time reset)
		}
		out = append(out, c.item)
	}
	return out, nil
}

// parseEntry reads one stream entry as XRANGE and XREADGROUP return it.
func parseEntry(raw any) (*claim, error) {
	e, ok := raw.([]any)
	if !ok || len(e) != 2 {
		return nil, errors.New("a queue entry of an unexpected shape")
	}
	sid, _ := e[0].(string)
	fields, _ := e[1].([]any)
	c := &claim{sid: sid}
	for i := 0; i+1 < len(fields); i += 2 {
		k, _ := fields[i].(string)
		v, _ := fields[i+1].(string)
		switch k {
		case "m":
			if err := decodeMeta([]byte(v), &c.item); err != nil {
				return nil, fmt.Errorf("entry %s: %w", sid, err)
			}
		case "r":
			var err error
			if c.req, err = decodeRequest([]byte(v)); err != nil {
				return nil, fmt.Errorf("entry %s: %w", sid, err)
			}
		case "b":
			c.body = []byte(v)
		}
	}
	c.item.State, c.item.Size = StatePending, len(c.body)
	if c.item.ID == "" || c.req == nil {
		return nil, fmt.Errorf("entry %s lacks its item or request", sid)
	}
	return c, nil
}

// NextDue implements Store: the first delayed retry, or soon: other
// servers add items this one is not told about.
func (s *RedisStore) NextDue() (time.Time, bool, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	next := time.Now().Add(redisPoll)
	z, err := s.client().ZRangeWithScores(ctx, s.keys.due, 0, 0).Result()
	if err != nil {
		return next, true, err
	}
	if len(z) == 1 {
		if t := time.UnixMilli(int64(z[0].Score)); t.Before(next) {
			next = t
		}
	}
	return next, true, nil
}

// redisPoll is how often an idle server looks for items added by others.
const redisPoll = 200 * time.Millisecond

// Load implements Store, from what Due took.
func (s *RedisStore) Load(id string) (*Item, *Request, []byte, error) {
	s.mu.Lock()
	c := s.claimed[id]
	s.mu.Unlock()
	if c == nil {
		return nil, nil, nil, ErrNotFound
	}
	it := c.item
	return &it, c.req, c.body, nil
}

// finishScript records one outcome of an entry this consumer holds:
// ARGV[2] is delivered, retained, retry or dead; ARGV[3] the item's new
// metadata; ARGV[4] the due time (ms) of a retry. An entry another
// consumer holds now (it was reclaimed) is left to that one.
var finishScript = redis.NewScript(`
local s, due, delay, dead, ret, bytes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local sid, kind, meta, at, id, size, g, me = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8]
local p = redis.call('XPENDING', s, g, sid, sid, 1)
if #p == 0 or p[1][2] ~= me then return 0 end
local e = redis.call('XRANGE', s, sid, sid)
redis.call('XACK', s, g, sid)
if #e == 0 then return 0 end
local f = e[1][2]
local r, b
for i = 1, #f, 2 do
  if f[i] == 'r' then r = f[i+1] elseif f[i] == 'b' then b = f[i+1] end
end
redis.call('XDEL', s, sid)
if kind == 'delivered' then
  redis.call('DECRBY', bytes, size)
elseif kind == 'retained' then
  redis.call('DECRBY', bytes, size)
  redis.call('XADD', ret, '*', 'm', meta, 'r', r, 'b', b)
elseif kind == 'dead' then
  redis.call('XADD', dead, '*', 'm', meta, 'r', r, 'b', b)
else
  redis.call('HSET', delay, id .. ':m', meta, id .. ':r', r, id .. ':b', b)
  redis.call('ZADD', due, at, id)
end
return 1
`)

// Finish implements Store: the outcomes, pipelined, one script each.
func (s *RedisStore) Finish(done []Finished) error {
	ctx, cancel := s.ctx()
	defer cancel()
	pipe := s.client().Pipeline()
	keys := []string{s.keys.s, s.keys.due, s.keys.delay, s.keys.dead, s.keys.ret, s.keys.bytes}
	n := 0
	for _, f := range done {
		s.mu.Lock()
		c := s.claimed[f.ID]
		delete(s.claimed, f.ID)
		s.mu.Unlock()
		if c == nil {
			continue
		}
		it, o := c.item, f.Outcome
		it.Attempts++
		it.LastStatus, it.LastError = o.Status, o.Error
		kind := "retry"
		switch {
		case o.Delivered && o.RetainUntil.IsZero():
			kind = "delivered"
		case o.Delivered:
			kind, it.State, it.Due = "retained", StateRetained, o.RetainUntil
		case o.Dead:
			kind, it.State = "dead", StateDead
		default:
			it.Due = o.Next
		}
		m, err := encodeMeta(&it)
		if err != nil {
			return err
		}
		// EVAL, not EVALSHA: a pipeline cannot fall back on NOSCRIPT,
		// and Redis caches the script by its hash either way.
		finishScript.Eval(ctx, pipe, keys, c.sid, kind, m, it.Due.UnixMilli(), it.ID, it.Size, redisGroup, s.consumer)
		n++
	}
	if n == 0 {
		return nil
	}
	// An outcome that did not land leaves its entry taken: another
	// server (or this one) takes it again after the visibility timeout,
	// and it is attempted again (at least once).
	_, err := pipe.Exec(ctx)
	return err
}

// scan calls fn for each entry of a stream, oldest first, until fn
// returns false.
func (s *RedisStore) scan(ctx context.Context, stream string, fn func(*claim) bool) error {
	start := "-"
	for {
		msgs, err := s.client().XRangeN(ctx, stream, start, "+", 256).Result()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			c, err := claimOf(m)
			if err != nil {
				return err
			}
			if !fn(c) {
				return nil
			}
		}
		if len(msgs) < 256 {
			return nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

func claimOf(m redis.XMessage) (*claim, error) {
	c := &claim{sid: m.ID}
	raw, _ := m.Values["m"].(string)
	if err := decodeMeta([]byte(raw), &c.item); err != nil {
		return nil, fmt.Errorf("entry %s: %w", m.ID, err)
	}
	if b, ok := m.Values["b"].(string); ok {
		c.item.Size = len(b)
	}
	return c, nil
}

// List implements Store: metadata only, oldest received first.
func (s *RedisStore) List(state State, after string, limit int) ([]Item, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*s.tmo())
	defer cancel()
	var out []Item
	collect := func(stream string) error {
		return s.scan(ctx, stream, func(c *claim) bool {
			if c.item.ID > after {
				c.item.State = state
				out = append(out, c.item)
			}
			return len(out) < 10*limit+1000
		})
	}
	switch state {
	case StatePending:
		if err := collect(s.keys.s); err != nil {
			return nil, err
		}
		ids, err := s.client().ZRange(ctx, s.keys.due, 0, int64(10*limit+1000)).Result()
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			raw, err := s.client().HGet(ctx, s.keys.delay, id+":m").Result()
			if err != nil {
				continue
			}
			var it Item
			if decodeMeta([]byte(raw), &it) == nil && it.ID > after {
				it.State = StatePending
				out = append(out, it)
			}
		}
	case StateDead:
		if err := collect(s.keys.dead); err != nil {
			return nil, err
		}
	case StateRetained:
		if err := collect(s.keys.ret); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown state %q", state)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// moveScript moves one entry (ARGV[1]) of a dead or retained stream
// (KEYS[1]) back to the pending stream with new metadata (ARGV[2]);
// ARGV[3] is 1 when its body counts again (retained items' do not).
var moveScript = redis.NewScript(`
local from, s, bytes = KEYS[1], KEYS[2], KEYS[3]
local e = redis.call('XRANGE', from, ARGV[1], ARGV[1])
if #e == 0 then return 0 end
local f = e[1][2]
local r, b
for i = 1, #f, 2 do
  if f[i] == 'r' then r = f[i+1] elseif f[i] == 'b' then b = f[i+1] end
end
redis.call('XDEL', from, ARGV[1])
redis.call('XADD', s, '*', 'm', ARGV[2], 'r', r, 'b', b)
if ARGV[3] == '1' then redis.call('INCRBY', bytes, string.len(b)) end
return 1
`)

func (s *RedisStore) find(ctx context.Context, stream, id string) (*claim, error) {
	var found *claim
	err := s.scan(ctx, stream, func(c *claim) bool {
		if c.item.ID == id {
			found = c
			return false
		}
		return true
	})
	return found, err
}

func (s *RedisStore) requeue(ctx context.Context, from string, c *claim, now time.Time) error {
	it := c.item
	it.State, it.Due, it.Attempts = StatePending, now, 0
	m, err := encodeMeta(&it)
	if err != nil {
		return err
	}
	counts := "0"
	if from == s.keys.ret {
		counts = "1"
	}
	return moveScript.Run(ctx, s.client(), []string{from, s.keys.s, s.keys.bytes}, c.sid, m, counts).Err()
}

// Retry implements Store.
func (s *RedisStore) Retry(id string, now time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*s.tmo())
	defer cancel()
	for _, from := range []string{s.keys.dead, s.keys.ret} {
		c, err := s.find(ctx, from, id)
		if err != nil {
			return err
		}
		if c != nil {
			return s.requeue(ctx, from, c, now)
		}
	}
	if found, err := s.pendingHas(ctx, id); err != nil {
		return err
	} else if found {
		return ErrWrongState
	}
	return ErrNotFound
}

func (s *RedisStore) pendingHas(ctx context.Context, id string) (bool, error) {
	if n, err := s.client().HExists(ctx, s.keys.delay, id+":m").Result(); err != nil || n {
		return n, err
	}
	c, err := s.find(ctx, s.keys.s, id)
	return c != nil, err
}

// Redrive implements Store.
func (s *RedisStore) Redrive(now time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*s.tmo())
	defer cancel()
	var all []*claim
	if err := s.scan(ctx, s.keys.dead, func(c *claim) bool { all = append(all, c); return true }); err != nil {
		return 0, err
	}
	n := 0
	for _, c := range all {
		if err := s.requeue(ctx, s.keys.dead, c, now); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// dropScript removes one entry from a stream (and the group's pending
// list), counting its body off when ARGV[2] is 1.
var dropScript = redis.NewScript(`
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return 0 end
if ARGV[3] ~= '' then redis.call('XACK', KEYS[1], ARGV[3], ARGV[1]) end
redis.call('XDEL', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  local f = e[1][2]
  for i = 1, #f, 2 do
    if f[i] == 'b' then redis.call('DECRBY', KEYS[2], string.len(f[i+1])) end
  end
end
return 1
`)

// dropDelayedScript removes one delayed item.
var dropDelayedScript = redis.NewScript(`
local b = redis.call('HGET', KEYS[1], ARGV[1] .. ':b')
if not b then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1] .. ':m', ARGV[1] .. ':r', ARGV[1] .. ':b')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DECRBY', KEYS[3], string.len(b))
return 1
`)

// Drop implements Store.
func (s *RedisStore) Drop(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*s.tmo())
	defer cancel()
	n, err := dropDelayedScript.Run(ctx, s.client(), []string{s.keys.delay, s.keys.due, s.keys.bytes}, id).Int()
	if err != nil || n == 1 {
		return err
	}
	for _, src := range []struct {
		stream, counts, group string
	}{{s.keys.s, "1", redisGroup}, {s.keys.dead, "1", ""}, {s.keys.ret, "0", ""}} {
		c, err := s.find(ctx, src.stream, id)
		if err != nil {
			return err
		}
		if c != nil {
			return dropScript.Run(ctx, s.client(), []string{src.stream, s.keys.bytes}, c.sid, src.counts, src.group).Err()
		}
	}
	return ErrNotFound
}

// Expire implements Store.
func (s *RedisStore) Expire(now time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*s.tmo())
	defer cancel()
	var old []string
	err := s.scan(ctx, s.keys.ret, func(c *claim) bool {
		if c.item.Due.Before(now) {
			old = append(old, c.sid)
		}
		return true
	})
	if err != nil || len(old) == 0 {
		return 0, err
	}
	return len(old), s.client().XDel(ctx, s.keys.ret, old...).Err()
}

// SetPaused implements Store: for the whole fleet.
func (s *RedisStore) SetPaused(p bool) error {
	ctx, cancel := s.ctx()
	defer cancel()
	var err error
	if p {
		err = s.client().Set(ctx, s.keys.paused, "1", 0).Err()
	} else {
		err = s.client().Del(ctx, s.keys.paused).Err()
	}
	if err == nil {
		s.statsMu.Lock()
		s.statsAt = time.Time{}
		s.statsMu.Unlock()
	}
	return err
}

// statsFresh is how long the counts read from Redis are used: they are
// asked for on every accept (max_pending) and by every dispatch.
const statsFresh = 250 * time.Millisecond

// Stats implements Store: the fleet's counts. The oldest pending item
// is the older of the first in the stream and the first due retry.
func (s *RedisStore) Stats() (Stats, error) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	if time.Since(s.statsAt) < statsFresh {
		return s.stats, s.statsErr
	}
	ctx, cancel := s.ctx()
	defer cancel()
	pipe := s.client().Pipeline()
	xlen := pipe.XLen(ctx, s.keys.s)
	zcard := pipe.ZCard(ctx, s.keys.due)
	dead := pipe.XLen(ctx, s.keys.dead)
	ret := pipe.XLen(ctx, s.keys.ret)
	bytes := pipe.Get(ctx, s.keys.bytes)
	paused := pipe.Exists(ctx, s.keys.paused)
	first := pipe.XRangeN(ctx, s.keys.s, "-", "+", 1)
	firstDue := pipe.ZRange(ctx, s.keys.due, 0, 0)
	inflight := pipe.XPending(ctx, s.keys.s, redisGroup)
	pipe.Exec(ctx)
	// Every count but the group's (which is missing until the first
	// take after a Redis that lost its data) must have been read.
	for _, c := range []redis.Cmder{xlen, zcard, dead, ret, bytes, paused, first, firstDue} {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			s.statsErr, s.statsAt = err, time.Now()
			return Stats{}, err
		}
	}
	st := Stats{Pending: xlen.Val() + zcard.Val(), Dead: dead.Val(), Retained: ret.Val(), Paused: paused.Val() == 1}
	if p := inflight.Val(); p != nil {
		st.InFlight = p.Count
	}
	st.Bytes, _ = strconv.ParseInt(bytes.Val(), 10, 64)
	if msgs := first.Val(); len(msgs) == 1 {
		if c, err := claimOf(msgs[0]); err == nil {
			st.Oldest = c.item.Received
		}
	}
	if ids := firstDue.Val(); len(ids) == 1 {
		if raw, err := s.client().HGet(ctx, s.keys.delay, ids[0]+":m").Result(); err == nil {
			var it Item
			if decodeMeta([]byte(raw), &it) == nil && (st.Oldest.IsZero() || it.Received.Before(st.Oldest)) {
				st.Oldest = it.Received
			}
		}
	}
	s.stats, s.statsErr, s.statsAt = st, nil, time.Now()
	return st, nil
}

// Close implements Store: it stops the adder once it has answered the
// accepts it took. The client is the webhook app's.
func (s *RedisStore) Close() error {
	s.closeOnce.Do(func() { close(s.quit) })
	<-s.stopped
	return nil
}
