package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Script calls that arrive together (rate-limit decisions, dedup claims
// and finishes) share a pipeline: each is still one script call and one
// round trip, but Redis reads and writes a whole batch per system call,
// and the client needs one connection per batch instead of one per
// request. Under a flood this is what lets one Redis serve several Caddy
// servers.
//
// There are no worker goroutines: a caller that finds fewer than
// pipelineFlushers batches in flight sends the queue itself, its own call
// included, so a lone request costs what a direct call costs. Callers
// that find all flushers busy queue and wait; the next batch takes them.
const (
	pipelineFlushers = 1
	pipelineMaxBatch = 128
)

// script is a Lua script with its hash boxed once.
type script struct {
	src string
	sha any
}

func newScript(src string) *script {
	return &script{src: src, sha: redis.NewScript(src).Hash()}
}

// scriptCall is one command waiting for its batch: a script call on one
// key, or (script nil) a plain command. Calls are pooled with their
// argument array and timer, so a call allocates little more than
// go-redis' command.
type scriptCall struct {
	script   *script
	args     [7]any // evalsha, sha, 1, key, up to 3 arguments; or a command
	nargs    int
	deadline time.Time
	timer    *time.Timer

	res  any
	err  error
	done chan struct{}
	// ctx carries the deadline of a lone call sent straight to the
	// client.
	ctx *deadlineCtx
}

// recycle returns an answered call to the pool, holding nothing of it.
func (c *scriptCall) recycle() {
	clear(c.args[:])
	c.res = nil
	scriptCalls.Put(c)
}

// deadlineCtx is a context that ends at a deadline, like the one
// context.WithDeadline makes, but reusable: it lives in the pooled call
// with its timer, so a call that ends in time costs no allocation. go-redis
// sets its connection deadlines from Deadline and stops waiting (dial
// retries, pool waits, backoff) when Done closes, so a call to a dead or
// black-holed node ends on time.
type deadlineCtx struct {
	deadline time.Time
	done     chan struct{}
	fired    atomic.Bool
	timer    *time.Timer
}

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *deadlineCtx) Done() <-chan struct{}       { return c.done }
func (c *deadlineCtx) Value(any) any               { return nil }
func (c *deadlineCtx) Err() error {
	if c.fired.Load() {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *deadlineCtx) fire() {
	c.fired.Store(true)
	close(c.done)
}

// armed returns a context ending at d: c itself when it can be used
// again, or a fresh one when c has fired (or may be firing).
func (c *deadlineCtx) armed(d time.Time) *deadlineCtx {
	if c == nil || c.fired.Load() {
		c = &deadlineCtx{done: make(chan struct{})}
		c.timer = time.AfterFunc(time.Until(d), c.fire)
	} else {
		c.timer.Reset(time.Until(d))
	}
	c.deadline = d
	return c
}

// disarm stops c's timer. It reports whether c can be armed again: not
// when the timer has fired or is firing, since its channel is (or is
// about to be) closed.
func (c *deadlineCtx) disarm() bool { return c.timer.Stop() }

var scriptCalls = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &scriptCall{timer: t, done: make(chan struct{}, 1)}
}}

// pipeliner runs script calls for concurrent callers in shared
// pipelines.
type pipeliner struct {
	client redis.UniversalClient

	mu       sync.Mutex
	queue    []*scriptCall
	flushers int
	// direct: a lone call is running straight on the client (see wait).
	direct bool
	// reload asks a Cluster client to reload its slot map (nil for the
	// others).
	reload func()

	batches sync.Pool // *batch
}

// batch is a flusher's reusable state.
type batch struct {
	pipe  redis.Pipeliner
	calls []*scriptCall
	cmds  []*redis.Cmd
}

func newPipeliner(client redis.UniversalClient) *pipeliner {
	p := &pipeliner{client: client}
	if cc, ok := client.(*redis.ClusterClient); ok {
		p.reload = func() { cc.ReloadState(context.Background()) }
	}
	p.batches.New = func() any {
		return &batch{pipe: client.Pipeline(), calls: make([]*scriptCall, 0, pipelineMaxBatch), cmds: make([]*redis.Cmd, 0, pipelineMaxBatch)}
	}
	return p
}

// call runs sc with one key and its arguments (at most 3; the caller
// boxes them, once per limit where it can) and returns its integer reply.
func (p *pipeliner) call(ctx context.Context, timeout time.Duration, sc *script, key string, argv ...any) (int64, error) {
	c := scriptCalls.Get().(*scriptCall)
	c.script = sc
	c.args[0], c.args[1], c.args[2], c.args[3] = "evalsha", sc.sha, 1, key
	c.nargs = 4 + copy(c.args[4:], argv)
	res, err := p.wait(ctx, timeout, c)
	if err != nil {
		return 0, err
	}
	n, ok := res.(int64)
	if !ok {
		return 0, errUnexpectedReply
	}
	return n, nil
}

// command runs a plain command (at most 7 words) and returns its reply;
// a nil reply is redis.Nil.
func (p *pipeliner) command(ctx context.Context, timeout time.Duration, args ...any) (any, error) {
	c := scriptCalls.Get().(*scriptCall)
	c.script = nil
	c.nargs = copy(c.args[:], args)
	return p.wait(ctx, timeout, c)
}

// wait queues c, flushes the queue if fewer than pipelineFlushers are
// at it, and returns c's reply when it is in, or an error when ctx is
// done or timeout has passed, whichever comes first.
func (p *pipeliner) wait(ctx context.Context, timeout time.Duration, c *scriptCall) (any, error) {
	c.err = nil
	c.deadline = time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(c.deadline) {
		c.deadline = d
	}
	p.mu.Lock()
	if len(p.queue) == 0 && p.flushers == 0 && !p.direct {
		// A lone call (nothing queued, nothing being sent: the usual case
		// below saturation) goes straight to the client, without a
		// pipeline's bookkeeping. It does not hold the flusher's place:
		// calls arriving meanwhile go on in batches, so one call to a
		// node that is down cannot hold up the others.
		p.direct = true
		p.mu.Unlock()
		c.ctx = c.ctx.armed(c.deadline)
		res, err := p.do(c.ctx, c)
		if !c.ctx.disarm() {
			c.ctx = nil // fired: the next call gets a fresh one
		}
		p.mu.Lock()
		p.direct = false
		p.mu.Unlock()
		c.recycle()
		return res, err
	}
	p.queue = append(p.queue, c)
	flush := p.flushers < pipelineFlushers
	if flush {
		p.flushers++
	}
	p.mu.Unlock()
	if flush {
		p.flush(c)
	}
	c.timer.Reset(time.Until(c.deadline))
	defer c.timer.Stop()
	select {
	case <-c.done:
		res, err := c.res, c.err
		c.recycle()
		return res, err
	case <-ctx.Done():
		// A flusher may still hold c and will signal into its buffered
		// channel; c is left to the garbage collector.
		return nil, ctx.Err()
	case <-c.timer.C:
		return nil, context.DeadlineExceeded
	}
}

// flush sends batches until the queue is empty. A caller flushes until
// its own call (own) is answered; if more calls are queued by then, a new
// goroutine takes over its place so the caller can return.
func (p *pipeliner) flush(own *scriptCall) {
	b := p.batches.Get().(*batch)
	defer p.batches.Put(b)
	answered := own == nil
	for {
		p.mu.Lock()
		n := min(len(p.queue), pipelineMaxBatch)
		if n == 0 {
			p.flushers--
			p.mu.Unlock()
			return
		}
		if answered && own != nil {
			p.mu.Unlock()
			go p.flush(nil)
			return
		}
		b.calls = append(b.calls[:0], p.queue[:n]...)
		rest := copy(p.queue, p.queue[n:])
		clear(p.queue[rest:])
		p.queue = p.queue[:rest]
		p.mu.Unlock()
		for _, c := range b.calls {
			if c == own {
				answered = true
			}
		}
		p.run(b)
	}
}

// run sends one batch and hands each caller its reply. Calls whose caller
// has already given up are not sent, so a Redis outage cannot build a
// backlog that Redis would have to work through when it comes back.
func (p *pipeliner) run(b *batch) {
	now := time.Now()
	live := b.calls[:0]
	var deadline time.Time
	for _, c := range b.calls {
		if now.After(c.deadline) {
			c.err = context.DeadlineExceeded
			c.done <- struct{}{}
			continue
		}
		if deadline.IsZero() || c.deadline.Before(deadline) {
			deadline = c.deadline
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	b.cmds = p.exec(ctx, b.pipe, live, b.cmds[:0])
	for i, c := range live {
		c.res, c.err = b.cmds[i].Result()
		p.failed(c.err)
		c.err = scriptError(c.err)
		c.done <- struct{}{}
	}
	clear(b.cmds)
	clear(b.calls)
}

// do runs one call on the client, sending the script's text when Redis
// does not have it (NOSCRIPT).
func (p *pipeliner) do(ctx context.Context, c *scriptCall) (any, error) {
	res, err := p.client.Do(ctx, c.args[:c.nargs]...).Result()
	if c.script != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		c.args[0], c.args[1] = "eval", c.script.src
		res, err = p.client.Do(ctx, c.args[:c.nargs]...).Result()
	}
	p.failed(err)
	return res, scriptError(err)
}

// failed asks a Cluster client to reload its slot map after a call that
// failed without a Redis reply (a node down, a timeout): go-redis reloads
// it by itself only on MOVED and ASK, which a dead master never sends.
// Reloads are lazy and spaced out by go-redis.
func (p *pipeliner) failed(err error) {
	if p.reload == nil || err == nil || err == redis.Nil {
		return
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		return
	}
	p.reload()
}

// exec pipelines the calls by their scripts' hashes and sends again,
// with the scripts' text, the calls Redis answered NOSCRIPT (first use, a
// restart, SCRIPT FLUSH). Only those: the others have already run.
func (p *pipeliner) exec(ctx context.Context, pipe redis.Pipeliner, live []*scriptCall, cmds []*redis.Cmd) []*redis.Cmd {
	for _, c := range live {
		cmds = append(cmds, pipe.Do(ctx, c.args[:c.nargs]...))
	}
	_, _ = pipe.Exec(ctx)
	retried := false
	for i, cmd := range cmds {
		if live[i].script != nil && redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			c := live[i]
			c.args[0], c.args[1] = "eval", c.script.src
			cmds[i] = pipe.Do(ctx, c.args[:c.nargs]...)
			retried = true
		}
	}
	if retried {
		_, _ = pipe.Exec(ctx)
	}
	return cmds
}

// scriptError makes the one likely misconfiguration readable: the script
// needs PEXPIRETIME, which Redis added in 7.0.
func scriptError(err error) error {
	if err != nil && strings.Contains(strings.ToLower(err.Error()), "unknown redis command") {
		return errRedisTooOld
	}
	return err
}
