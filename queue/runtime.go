package queue

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// config is what a runtime delivers with; a reload swaps it whole.
type config struct {
	deliver     caddyhttp.Handler
	server      *caddyhttp.Server
	policy      Policy
	concurrency int
	limiter     waiter
	timeout     time.Duration
	logger      *zap.Logger
}

// waiter spaces attempts out (rate): a token bucket in this process
// for a local queue, the fleet's GCRA in Redis for a shared one.
type waiter interface {
	Wait(ctx context.Context) error
}

// runtime is one queue in this process: its store and its workers. It
// outlives the handler that made it: a reload provisions a new handler,
// which finds the runtime by name (UsagePool) and swaps in its config,
// so items in flight finish and nothing is delivered twice by two
// generations of workers.
type runtime struct {
	name  string
	store Store
	cfg   atomic.Pointer[config]
	now   func() time.Time

	paused atomic.Bool
	// shared: other servers deliver from the same queue (store redis).
	shared bool
	// leased are the items an attempt is running for: skipped by the
	// dispatcher. Only in memory: after a crash every pending item is
	// due again, so an attempt cut short is made again (at least once).
	mu     sync.Mutex
	leased map[string]struct{}

	inflight   atomic.Int64
	failStreak atomic.Int64
	wake       chan struct{}
	ctx        context.Context
	cancel     context.CancelFunc
	done       sync.WaitGroup
	metrics    *runtimeMetrics
	// finished carries attempts' outcomes to the finisher, which writes
	// them to the store many at a time; an item stays leased until its
	// outcome is written.
	finished chan Finished
	fin      sync.WaitGroup
}

// probeAfter consecutive failed attempts make the queue back off as a
// whole: one attempt at a time, spaced out, until one succeeds.
const probeAfter = 3

func newRuntime(name string, store Store) *runtime {
	ctx, cancel := context.WithCancel(context.Background())
	rt := &runtime{name: name, store: store, now: time.Now, leased: map[string]struct{}{},
		wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, metrics: newRuntimeMetrics(name),
		finished: make(chan Finished, 1024)}
	if st, err := store.Stats(); err == nil {
		rt.paused.Store(st.Paused)
	}
	switch store.(type) {
	case *RedisStore, *ShardedStore:
		rt.shared = true
	}
	return rt
}

// start runs the dispatcher and the expiry of retained items.
func (rt *runtime) start() {
	rt.done.Add(2)
	go rt.dispatch()
	go rt.expire()
	rt.fin.Add(1)
	go rt.finisher()
}

// Destruct stops the workers, waits for the attempts in flight (each
// cut short: made again after a restart), writes their outcomes and
// closes the store. Called by the UsagePool when the last handler using
// the queue is cleaned up (never on a reload, which provisions the next
// handler first).
func (rt *runtime) Destruct() error {
	rt.cancel()
	rt.done.Wait()
	close(rt.finished)
	rt.fin.Wait()
	unregister(rt)
	return rt.store.Close()
}

// finishBatch bounds one write of outcomes; finishWait is how long the
// first outcome of a write waits for others.
const (
	finishBatch = 512
	finishWait  = 5 * time.Millisecond
)

// finisher writes attempts' outcomes to the store, many per transaction
// (one fsync for all), then lets their items go. An outcome lost to a
// crash before it is written leaves its item pending as it was: it is
// attempted again (at least once), never lost.
func (rt *runtime) finisher() {
	defer rt.fin.Done()
	var batch []Finished
	for f := range rt.finished {
		batch = append(batch[:0], f)
		if rt.shared {
			// On Redis an outcome costs a round trip, not an fsync, and
			// the item counts against the fleet's concurrency until it
			// is written: no waiting for others, just whatever is there.
		drain:
			for len(batch) < finishBatch {
				select {
				case f, ok := <-rt.finished:
					if !ok {
						break drain
					}
					batch = append(batch, f)
				default:
					break drain
				}
			}
		} else {
			timer := time.NewTimer(finishWait)
		gather:
			for len(batch) < finishBatch {
				select {
				case f, ok := <-rt.finished:
					if !ok {
						break gather
					}
					batch = append(batch, f)
				case <-timer.C:
					break gather
				}
			}
			timer.Stop()
		}
		if err := rt.store.Finish(batch); err != nil {
			if cfg := rt.cfg.Load(); cfg != nil {
				cfg.logger.Error("recording attempts; their items will be attempted again", zap.String("queue", rt.name), zap.Int("items", len(batch)), zap.Error(err))
			}
		}
		rt.mu.Lock()
		for _, f := range batch {
			delete(rt.leased, f.ID)
		}
		rt.mu.Unlock()
		rt.notify()
	}
}

func (rt *runtime) notify() {
	select {
	case rt.wake <- struct{}{}:
	default:
	}
}

// inFlight is how many items are leased: being attempted, or their
// outcome not yet written.
func (rt *runtime) inFlight() int64 {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return int64(len(rt.leased))
}

func (rt *runtime) isLeased(id string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	_, ok := rt.leased[id]
	return ok
}

// sleep waits d, or until woken or stopped; false when stopped.
func (rt *runtime) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-rt.ctx.Done():
		return false
	case <-rt.wake:
	case <-t.C:
	}
	return true
}

// dispatch starts an attempt for each due item, within the concurrency,
// the rate and the back-off.
func (rt *runtime) dispatch() {
	defer rt.done.Done()
	for rt.ctx.Err() == nil {
		cfg := rt.cfg.Load()
		if rt.shared {
			// Another server may have paused or resumed the queue.
			if st, err := rt.store.Stats(); err == nil {
				rt.paused.Store(st.Paused)
			}
		}
		if cfg == nil || rt.paused.Load() {
			rt.sleep(time.Second)
			continue
		}
		limit := int64(cfg.concurrency)
		streak := rt.failStreak.Load()
		if streak >= probeAfter {
			limit = 1
		}
		if rt.inflight.Load() >= limit {
			rt.sleep(time.Second)
			continue
		}
		now := rt.now()
		n := int(limit - rt.inflight.Load())
		if cfg.limiter != nil {
			// One at a time behind a rate: an item taken is in flight
			// for the fleet, and one taken early would wait for its
			// turn while its visibility timeout runs.
			n = 1
		}
		items, err := rt.store.Due(now, n, rt.isLeased)
		if err != nil {
			cfg.logger.Error("reading the queue", zap.String("queue", rt.name), zap.Error(err))
			rt.sleep(time.Second)
			continue
		}
		if len(items) == 0 {
			wait := time.Second
			if next, ok, _ := rt.store.NextDue(); ok && next.Sub(now) < wait {
				wait = max(next.Sub(now), time.Millisecond)
			}
			rt.sleep(wait)
			continue
		}
		for _, it := range items {
			if cfg.limiter != nil {
				if cfg.limiter.Wait(rt.ctx) != nil {
					return
				}
			}
			rt.mu.Lock()
			rt.leased[it.ID] = struct{}{}
			rt.mu.Unlock()
			rt.inflight.Add(1)
			rt.done.Add(1)
			go rt.attempt(cfg, it)
		}
	}
}

// backoff is how long the queue waits after a failed probe: doubling
// from 100ms with the failures, at most the schedule's first delay.
func backoff(streak int64, first time.Duration) time.Duration {
	d := 100 * time.Millisecond << min(streak-probeAfter, 10)
	return min(d, max(first, 100*time.Millisecond))
}

// attempt delivers one item and records the outcome.
func (rt *runtime) attempt(cfg *config, it Item) {
	defer rt.done.Done()
	defer func() {
		rt.inflight.Add(-1)
		rt.notify()
	}()
	_, req, body, err := rt.store.Load(it.ID)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			cfg.logger.Error("loading a queued item", zap.String("queue", rt.name), zap.String("id", it.ID), zap.Error(err))
		}
		rt.mu.Lock()
		delete(rt.leased, it.ID)
		rt.mu.Unlock()
		return
	}
	start := time.Now()
	a := rt.deliver(cfg, &it, req, body)
	rt.metrics.latency.Observe(time.Since(start).Seconds())
	o := cfg.policy.Decide(&it, a, rt.now(), rand.Float64())
	// The finisher writes it with others and then lets the item go.
	rt.finished <- Finished{ID: it.ID, Outcome: o}
	switch {
	case o.Delivered:
		rt.metrics.delivered.Inc()
		rt.failStreak.Store(0)
	case o.Dead:
		rt.metrics.dead.Inc()
		rt.failStreak.Store(0)
		cfg.logger.Warn("a queued delivery is dead", zap.String("queue", rt.name), zap.String("id", it.ID),
			zap.Int("attempts", it.Attempts+1), zap.Int("status", a.Status), zap.String("error", o.Error))
	default:
		rt.metrics.retried.Inc()
		if n := rt.failStreak.Add(1); n >= probeAfter {
			delays := cfg.policy.Delays
			if len(delays) == 0 {
				delays = DefaultRetry
			}
			t := time.NewTimer(backoff(n, delays[0]))
			select {
			case <-t.C:
			case <-rt.ctx.Done():
				t.Stop()
			}
		}
	}
}

// deliver runs the deliver route for one attempt on a request rebuilt
// from the stored one, and returns what the backend answered.
func (rt *runtime) deliver(cfg *config, it *Item, stored *Request, body []byte) Attempt {
	ctx, cancel := context.WithTimeout(rt.ctx, cfg.timeout)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, stored.Method, stored.URI, bytes.NewReader(body))
	if err != nil {
		return Attempt{Error: "the stored request does not rebuild"}
	}
	r.RequestURI = stored.URI
	r.Host = stored.Host
	r.RemoteAddr = stored.RemoteAddr
	r.Header = stored.Header.Clone()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	if stored.TLS {
		r.TLS = &tls.ConnectionState{}
	}
	if p, maj, min, ok := parseProto(stored.Proto); ok {
		r.Proto, r.ProtoMajor, r.ProtoMinor = p, maj, min
	}
	r.Header.Set("X-Webhook-Queue-Id", it.ID)
	r.Header.Set("X-Webhook-Attempt", strconv.Itoa(it.Attempts+1))
	rec := &recorder{header: http.Header{}}
	repl := caddy.NewReplacer()
	r = caddyhttp.PrepareRequest(r, repl, rec, cfg.server)
	repl.Set("http.webhook.provider", it.Provider)
	repl.Set("http.webhook.id", it.DeliveryID)
	repl.Set("http.webhook.event", it.Event)
	repl.Set("http.webhook.queue_id", it.ID)
	repl.Set("http.webhook.attempt", it.Attempts+1)
	err = cfg.deliver.ServeHTTP(rec, r)
	a := Attempt{Status: rec.status}
	if err != nil {
		var he caddyhttp.HandlerError
		switch {
		case errors.As(err, &he) && he.StatusCode != 0:
			a.Status = he.StatusCode
			a.Error = "the deliver route failed with " + strconv.Itoa(he.StatusCode)
		case ctx.Err() != nil:
			a.Status, a.Error = 0, "no answer within "+cfg.timeout.String()
		default:
			a.Status, a.Error = 0, "the deliver route failed"
		}
		return a
	}
	if a.Status == 0 {
		a.Status = http.StatusOK // nothing written: Caddy's empty 200
	}
	if a.Status >= 300 {
		a.Error = "the backend answered " + strconv.Itoa(a.Status)
	}
	a.RetryAfter = ParseRetryAfter(rec.header.Get("Retry-After"), rt.now())
	return a
}

func parseProto(p string) (string, int, int, bool) {
	switch p {
	case "HTTP/1.0":
		return p, 1, 0, true
	case "HTTP/1.1":
		return p, 1, 1, true
	case "HTTP/2.0":
		return p, 2, 0, true
	case "HTTP/3.0":
		return p, 3, 0, true
	}
	return "", 0, 0, false
}

// recorder is the response writer of an attempt: it keeps the status
// and the header and discards the body.
type recorder struct {
	header http.Header
	status int
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(status int) {
	if w.status == 0 && status >= 200 {
		w.status = status
	}
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

// expire drops retained items past their time, once a minute.
func (rt *runtime) expire() {
	defer rt.done.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-rt.ctx.Done():
			return
		case <-t.C:
			rt.store.Expire(rt.now())
		}
	}
}

// pause stops or resumes delivery (accepting goes on), durably.
func (rt *runtime) pause(p bool) error {
	if err := rt.store.SetPaused(p); err != nil {
		return err
	}
	rt.paused.Store(p)
	rt.notify()
	return nil
}
