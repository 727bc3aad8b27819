package store

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Rate-limit decisions that arrive together share a pipeline: each is
// still one script call and one round trip, but Redis reads and writes a
// whole batch per system call, and the client needs one connection per
// batch instead of one per request. Under a flood this is what lets one
// Redis serve several Caddy servers.
//
// There are no worker goroutines: a caller that finds fewer than
// pipelineFlushers batches in flight sends the queue itself, its own call
// included, so a lone request costs what a direct call costs. Callers
// that find all flushers busy queue and wait; the next batch takes them.
const (
	pipelineFlushers = 4
	pipelineMaxBatch = 128
)

// gcraCall is one decision waiting for its batch. Calls are pooled with
// their argument array and timer, so a decision allocates little more
// than go-redis' command and the key.
type gcraCall struct {
	args     [6]any // evalsha, sha, 1, key, interval µs, burst
	deadline time.Time
	timer    *time.Timer

	res  int64
	err  error
	done chan struct{}
}

// shaArg is the script's hash, boxed once.
var shaArg any = gcraScript.Hash()

var gcraCalls = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &gcraCall{args: [6]any{"evalsha", shaArg, 1}, timer: t, done: make(chan struct{}, 1)}
}}

// pipeliner runs the GCRA script for concurrent callers in shared
// pipelines.
type pipeliner struct {
	client redis.UniversalClient

	mu       sync.Mutex
	queue    []*gcraCall
	flushers int

	batches sync.Pool // *batch
}

// batch is a flusher's reusable state.
type batch struct {
	pipe  redis.Pipeliner
	calls []*gcraCall
	cmds  []*redis.Cmd
}

func newPipeliner(client redis.UniversalClient) *pipeliner {
	p := &pipeliner{client: client}
	p.batches.New = func() any {
		return &batch{pipe: client.Pipeline(), calls: make([]*gcraCall, 0, pipelineMaxBatch), cmds: make([]*redis.Cmd, 0, pipelineMaxBatch)}
	}
	return p
}

// gcra runs one decision with the script's arguments (interval and burst
// boxed by the caller, once per limit). It returns the script's reply
// when it is in, or an error when ctx is done or timeout has passed,
// whichever comes first.
func (p *pipeliner) gcra(ctx context.Context, timeout time.Duration, key string, limitArgs *[2]any) (int64, error) {
	c := gcraCalls.Get().(*gcraCall)
	c.args[3], c.args[4], c.args[5] = key, limitArgs[0], limitArgs[1]
	c.err = nil
	c.deadline = time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(c.deadline) {
		c.deadline = d
	}
	p.mu.Lock()
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
		c.args[3] = nil
		gcraCalls.Put(c)
		return res, err
	case <-ctx.Done():
		// A flusher may still hold c and will signal into its buffered
		// channel; c is left to the garbage collector.
		return 0, ctx.Err()
	case <-c.timer.C:
		return 0, context.DeadlineExceeded
	}
}

// flush sends batches until the queue is empty. A caller flushes until
// its own call (own) is answered; if more calls are queued by then, a new
// goroutine takes over its place so the caller can return.
func (p *pipeliner) flush(own *gcraCall) {
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
		c.res, c.err = b.cmds[i].Int64()
		c.err = scriptError(c.err)
		c.done <- struct{}{}
	}
	clear(b.cmds)
	clear(b.calls)
}

// exec pipelines the script by its hash and sends again, with the
// script's text, the calls Redis answered NOSCRIPT (first use, a restart,
// SCRIPT FLUSH). Only those: the others have already been decided.
func (p *pipeliner) exec(ctx context.Context, pipe redis.Pipeliner, live []*gcraCall, cmds []*redis.Cmd) []*redis.Cmd {
	for _, c := range live {
		cmds = append(cmds, pipe.Do(ctx, c.args[:]...))
	}
	_, _ = pipe.Exec(ctx)
	retried := false
	for i, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			c := live[i]
			cmds[i] = pipe.Eval(ctx, gcraSource, []string{c.args[3].(string)}, c.args[4], c.args[5])
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
