// Package queue is http.handlers.webhook_queue: a durable store-and-forward
// in front of the backend. A delivery is stored (fsynced) before the
// sender gets its 2xx, then delivered by workers through the `deliver`
// route (Caddy's own reverse_proxy), retried on a schedule, and kept as
// dead when it cannot be delivered; operators pause, resume, list, retry,
// redrive and drop through Caddy's admin API.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
	"github.com/webhookauth/caddy-webhookauth/ratelimit"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// The queue's rejection reasons (503, with Retry-After).
const (
	ReasonQueueFull        = gate.ReasonQueueFull
	ReasonQueueUnavailable = gate.ReasonQueueUnavailable
)

// Handler accepts a delivery, stores it durably and answers the sender;
// its workers deliver it later through Deliver. The sender's 2xx is sent
// only once the delivery is on disk (fsynced): anything short of that is
// 503 with Retry-After, so the sender keeps it.
//
// It sets {http.webhook.queue_id}, the stored item's id, which the
// respond body may use.
type Handler struct {
	// Name is how operators address the queue (admin API, CLI,
	// metrics); unique per config. Letters, digits, '_', '.' and '-'.
	Name string `json:"name"`

	// Store is local (default): an embedded, crash-safe store on local
	// disk; or redis: the queue on Redis Streams, shared by every Caddy
	// server on the webhook app's Redis (single node, Sentinel, Cluster).
	Store string `json:"store,omitempty"`

	// VisibilityTimeout (store redis): an item a server took and did not
	// finish within it (the server died or hung) is taken by another. By
	// default, the attempt timeout plus 30s; it must exceed the timeout.
	VisibilityTimeout caddy.Duration `json:"visibility_timeout,omitempty"`

	// MinReplicas (store redis): the sender's 2xx waits until Redis'
	// WAIT confirms the item reached that many replicas. By default, 0.
	MinReplicas int `json:"min_replicas,omitempty"`

	// Shards (store redis) spreads the queue over that many hash slots,
	// for a Cluster where one master is not enough for one queue. By
	// default, 1. It may grow between restarts, never shrink.
	Shards int `json:"shards,omitempty"`

	// Path is the directory of the store's file, <name>.db, made 0700
	// (the file 0600: the bodies rest there as they arrived). By default,
	// webhook-queues under Caddy's data directory.
	Path string `json:"path,omitempty"`

	// DeliverRaw is the route each attempt runs (a subroute: usually
	// one reverse_proxy); its answer decides delivered, retry or dead.
	DeliverRaw json.RawMessage `json:"deliver,omitempty" caddy:"namespace=http.handlers inline_key=handler"`

	// RespondStatus and RespondBody answer the sender once the delivery
	// is stored. By default, 200 with {"status":"queued","id":"<id>"}.
	RespondStatus int    `json:"respond_status,omitempty"`
	RespondBody   string `json:"respond_body,omitempty"`

	// Retry are the delays between attempts, with ±10% jitter. By
	// default, 10s 1m 5m 30m 2h 6h 12h 24h; the last one repeats. A
	// backend's Retry-After is honoured within the first and last.
	Retry []caddy.Duration `json:"retry,omitempty"`

	// MaxAttempts ends an item as dead after that many attempts. By
	// default, one more than the retry delays.
	MaxAttempts int `json:"max_attempts,omitempty"`

	// MaxAge ends an item as dead when its next attempt would start
	// later than this after it was received. By default, 72h.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// RetryOn lists the statuses retried: codes (503), classes (5xx)
	// and transport (no answer). By default, transport 408 425 429 5xx;
	// any other non-2xx ends the item as dead at once.
	RetryOn []string `json:"retry_on,omitempty"`

	// Concurrency is how many attempts run at once. By default, 4. A
	// backend that keeps failing makes the queue back off as a whole:
	// one probe at a time until one succeeds.
	Concurrency int `json:"concurrency,omitempty"`

	// Rate bounds attempts to RateCount per RateWindow (rate 10/1s),
	// evenly spaced. By default, none.
	RateCount  int            `json:"rate_count,omitempty"`
	RateWindow caddy.Duration `json:"rate_window,omitempty"`

	// MaxPending and MaxBytes bound the pending and dead items (count,
	// bodies' bytes); past them the sender gets 503 queue_full. By
	// default, 1,000,000 items and 10 GB.
	MaxPending int64 `json:"max_pending,omitempty"`
	MaxBytes   int64 `json:"max_bytes,omitempty"`

	// Retain keeps delivered items (metadata and body) this long, for
	// replay. By default, 0: dropped once delivered.
	Retain caddy.Duration `json:"retain,omitempty"`

	// Timeout bounds one attempt. By default, 60s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	rt          *runtime
	reconfigure func(Store)
	deliver     caddyhttp.MiddlewareHandler
	poolKey     string
	logger      *zap.Logger
	maxBody     int64
}

// maxShards bounds shards: every dispatch looks at each shard.
const maxShards = 64

// Defaults.
const (
	DefaultConcurrency = 4
	DefaultMaxPending  = 1_000_000
	DefaultMaxBytes    = 10_000_000_000
	DefaultTimeout     = 60 * time.Second
	// bodyTimeout bounds the arrival of a body the queue reads itself.
	bodyTimeout = 10 * time.Second
	// maxItemBody bounds one stored body (webhook_auth's max_body
	// default; put webhook_auth first for a tighter one).
	maxItemBody = 10_000_000
)

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webhook_queue",
		New: func() caddy.Module { return new(Handler) },
	}
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Validate checks the fields on their own.
func (h *Handler) Validate() error {
	if !validName.MatchString(h.Name) {
		return fmt.Errorf("webhook_queue: the name %q may only contain letters, digits, '_', '.' and '-' (at most 64)", h.Name)
	}
	switch h.Store {
	case "", "local":
		if h.VisibilityTimeout != 0 || h.MinReplicas != 0 || h.Shards != 0 {
			return fmt.Errorf("webhook_queue %s: visibility_timeout, min_replicas and shards apply to store redis", h.Name)
		}
	case "redis":
		if h.Path != "" {
			return fmt.Errorf("webhook_queue %s: path applies to store local; store redis keeps the queue in Redis", h.Name)
		}
		timeout := time.Duration(h.Timeout)
		if timeout == 0 {
			timeout = DefaultTimeout
		}
		if h.VisibilityTimeout != 0 && time.Duration(h.VisibilityTimeout) <= timeout {
			return fmt.Errorf("webhook_queue %s: visibility_timeout (%s) must be longer than the attempt timeout (%s), or a slow attempt is taken over by another server while it runs", h.Name, time.Duration(h.VisibilityTimeout), timeout)
		}
		if h.MinReplicas < 0 {
			return fmt.Errorf("webhook_queue %s: min_replicas must not be negative", h.Name)
		}
		if h.Shards < 0 || h.Shards > maxShards {
			return fmt.Errorf("webhook_queue %s: shards must be between 1 and %d", h.Name, maxShards)
		}
	default:
		return fmt.Errorf("webhook_queue %s: unknown store %q (want local or redis)", h.Name, h.Store)
	}
	if len(h.DeliverRaw) == 0 && h.deliver == nil { // LoadModule empties DeliverRaw
		return fmt.Errorf("webhook_queue %s: a 'deliver' block is required: the route each attempt runs, such as deliver { reverse_proxy app:8080 }", h.Name)
	}
	if h.RespondStatus != 0 && (h.RespondStatus < 200 || h.RespondStatus > 299) {
		return fmt.Errorf("webhook_queue %s: respond %d: the answer to a stored delivery must be a 2xx", h.Name, h.RespondStatus)
	}
	for _, d := range h.Retry {
		if d <= 0 {
			return fmt.Errorf("webhook_queue %s: retry delays must be positive", h.Name)
		}
	}
	if h.MaxAttempts < 0 || h.MaxAge < 0 || h.Concurrency < 0 || h.MaxPending < 0 || h.MaxBytes < 0 || h.Retain < 0 || h.Timeout < 0 {
		return fmt.Errorf("webhook_queue %s: max_attempts, max_age, concurrency, max_pending, max_bytes, retain and timeout must not be negative", h.Name)
	}
	if (h.RateCount > 0) != (h.RateWindow > 0) || h.RateCount < 0 {
		return fmt.Errorf("webhook_queue %s: rate takes a count and a window, such as 10/1s", h.Name)
	}
	if _, err := ParseRetryOn(h.retryOn()); err != nil {
		return fmt.Errorf("webhook_queue %s: %w", h.Name, err)
	}
	return nil
}

func (h *Handler) retryOn() []string {
	if len(h.RetryOn) == 0 {
		return []string{"transport", "408", "425", "429", "5xx"}
	}
	return h.RetryOn
}

// runtimes holds each queue's runtime for the whole process, by name and
// store path, so that it survives reloads.
var pool = caddy.NewUsagePool()

// Provision opens the store (or finds it open), provisions the deliver
// route and hands the workers the new config.
func (h *Handler) Provision(ctx caddy.Context) error {
	if err := h.Validate(); err != nil {
		return err
	}
	h.logger = ctx.Logger()
	if err := registerMetrics(ctx); err != nil {
		return fmt.Errorf("webhook_queue %s: registering metrics: %w", h.Name, err)
	}
	mod, err := ctx.LoadModule(h, "DeliverRaw")
	if err != nil {
		return fmt.Errorf("webhook_queue %s: loading the deliver route: %w", h.Name, err)
	}
	deliver, ok := mod.(caddyhttp.MiddlewareHandler)
	if !ok {
		return fmt.Errorf("webhook_queue %s: the deliver route is not a handler", h.Name)
	}
	h.deliver = deliver
	server, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if server == nil {
		return fmt.Errorf("webhook_queue %s: not inside an HTTP server", h.Name)
	}
	timeout := time.Duration(h.Timeout)
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	concurrency := h.Concurrency
	if concurrency == 0 {
		concurrency = DefaultConcurrency
	}
	visibility := time.Duration(h.VisibilityTimeout)
	if visibility == 0 {
		visibility = timeout + 30*time.Second
	}
	var open func() (Store, error)
	var where string
	var limiter waiter
	if h.Store == "redis" {
		app, err := ctx.App("webhook")
		if err != nil {
			return fmt.Errorf("webhook_queue %s: %w", h.Name, err)
		}
		prov, ok := app.(redisProvider)
		if !ok {
			return fmt.Errorf("webhook_queue %s: store redis needs the webhook app", h.Name)
		}
		rdb, prefix, rtimeout, err := prov.QueueRedis()
		if err != nil {
			return fmt.Errorf("webhook_queue %s: %w", h.Name, err)
		}
		checkCtx, cancel := context.WithTimeout(context.Background(), 2*rtimeout)
		warning, err := checkEviction(checkCtx, rdb)
		cancel()
		if err != nil {
			return fmt.Errorf("webhook_queue %s: %w", h.Name, err)
		}
		if warning != "" {
			h.logger.Warn(warning, zap.String("queue", h.Name))
		}
		consumer := consumerName()
		where = redisWhere(h.Shards)
		open = func() (Store, error) {
			if h.Shards > 1 {
				return NewShardedStore(context.Background(), rdb, prefix, h.Name, consumer, rtimeout, visibility, concurrency, h.MinReplicas, h.Shards)
			}
			return NewRedisStore(context.Background(), rdb, prefix, h.Name, consumer, rtimeout, visibility, concurrency, h.MinReplicas)
		}
		if h.RateCount > 0 {
			rl, err := app.(ratelimit.StoreProvider).RateLimitStore("redis")
			if err != nil {
				return fmt.Errorf("webhook_queue %s: %w", h.Name, err)
			}
			limiter = &fleetRate{store: rl, key: "queue:" + h.Name, limit: ratelimit.Limit{Rate: int64(h.RateCount), Window: time.Duration(h.RateWindow), Burst: 1}}
		}
		h.reconfigure = func(st Store) {
			switch rs := st.(type) {
			case *RedisStore:
				rs.Reconfigure(rdb, rtimeout, concurrency, visibility, h.MinReplicas)
			case *ShardedStore:
				rs.Reconfigure(rdb, rtimeout, concurrency, visibility, h.MinReplicas)
			}
		}
	} else {
		dir := h.Path
		if dir == "" {
			dir = filepath.Join(caddy.AppDataDir(), "webhook-queues")
		}
		path, err := filepath.Abs(filepath.Join(dir, h.Name+".db"))
		if err != nil {
			return err
		}
		where = path
		open = func() (Store, error) { return OpenLocal(path) }
		if h.RateCount > 0 {
			limiter = rate.NewLimiter(rate.Every(time.Duration(h.RateWindow)/time.Duration(h.RateCount)), 1)
		}
	}
	h.poolKey = "queue:" + h.Name
	val, _, err := pool.LoadOrNew(h.poolKey, func() (caddy.Destructor, error) {
		store, err := open()
		if err != nil {
			return nil, err
		}
		rt := newRuntime(h.Name, store)
		register(rt)
		rt.start()
		return rt, nil
	})
	if err != nil {
		return fmt.Errorf("webhook_queue %s: %w", h.Name, err)
	}
	h.rt = val.(*runtime)
	if at := storeWhere(h.rt.store); at != where {
		pool.Delete(h.poolKey)
		h.poolKey, h.rt = "", nil // Cleanup must not let go of it twice
		return fmt.Errorf("webhook_queue %s: the queue is open at %s already; a queue's store or path changes with a restart", h.Name, at)
	}
	if h.reconfigure != nil {
		h.reconfigure(h.rt.store)
	}

	retryOn, _ := ParseRetryOn(h.retryOn())
	delays := make([]time.Duration, 0, len(h.Retry))
	for _, d := range h.Retry {
		delays = append(delays, time.Duration(d))
	}
	if len(delays) == 0 {
		delays = DefaultRetry
	}
	maxAttempts := h.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = len(delays) + 1
	}
	maxAge := time.Duration(h.MaxAge)
	if maxAge == 0 {
		maxAge = DefaultMaxAge
	}
	cfg := &config{
		deliver: caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			return deliver.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
		}),
		server: server,
		policy: Policy{Delays: delays, MaxAttempts: maxAttempts, MaxAge: maxAge, RetryOn: retryOn,
			Retain: time.Duration(h.Retain)},
		concurrency: concurrency,
		timeout:     timeout,
		logger:      h.logger,
		limiter:     limiter,
	}
	if h.MaxPending == 0 {
		h.MaxPending = DefaultMaxPending
	}
	if h.MaxBytes == 0 {
		h.MaxBytes = DefaultMaxBytes
	}
	h.maxBody = min(int64(maxItemBody), h.MaxBytes)
	h.rt.cfg.Store(cfg)
	h.rt.notify()
	return nil
}

// Cleanup lets go of the queue's runtime; the last handler to do so
// (not a reload, which provisions the next first) stops its workers.
func (h *Handler) Cleanup() error {
	if h.poolKey != "" {
		_, err := pool.Delete(h.poolKey)
		return err
	}
	return nil
}

// hopByHop are the headers that belong to one connection, never stored.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length"}

// ServeHTTP stores the delivery and answers the sender.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	refuse := func(reason gate.Reason, detail string, counter interface{ Inc() }) error {
		counter.Inc()
		repl.Set("http.webhook.result", string(reason))
		gate.CloseUnread(w, r)
		return gate.Respond(w, gate.Reject(reason, detail).WithRetryAfter(5), gate.OnRejectRespond)
	}
	st, err := h.rt.store.Stats()
	if err != nil {
		h.logger.Error("reading the queue's counts", zap.String("queue", h.Name), zap.Error(err))
		return refuse(ReasonQueueUnavailable, "the queue cannot store deliveries right now; retry later", h.rt.metrics.unavailable)
	}
	if st.Pending+st.Dead >= h.MaxPending || st.Bytes+max(r.ContentLength, 0) > h.MaxBytes {
		return refuse(ReasonQueueFull, "the queue is full; retry later", h.rt.metrics.full)
	}
	// Sized from Content-Length when it is within the limit (it is
	// exact once webhook_auth has read the body), so a large body is
	// read into one buffer, not grown through several.
	// Behind webhook_auth the body is already in memory; without it, a
	// body gets bodyTimeout to arrive, as webhook_auth gives it.
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(bodyTimeout)) == nil
	body, err := readAll(io.LimitReader(r.Body, h.maxBody+1), min(max(r.ContentLength, 0), h.maxBody)+1)
	if deadline {
		rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		gate.CloseUnread(w, r)
		return caddyhttp.Error(http.StatusBadRequest, errors.New("reading the body failed"))
	}
	if int64(len(body)) > h.maxBody {
		gate.CloseUnread(w, r)
		return gate.Respond(w, gate.Reject(gate.ReasonBodyTooLarge, "the body is larger than the limit of "+strconv.FormatInt(h.maxBody, 10)+" bytes"), gate.OnRejectRespond)
	}
	now := h.rt.now()
	id := NewID(now)
	header := r.Header.Clone()
	for _, name := range strings.Split(header.Get("Connection"), ",") {
		if name = strings.TrimSpace(name); name != "" {
			header.Del(name)
		}
	}
	for _, name := range hopByHop {
		header.Del(name)
	}
	// The URI as the route sees it (after any rewrite), as reverse_proxy
	// would send it.
	req := &Request{Method: r.Method, URI: r.URL.RequestURI(), Host: r.Host, Proto: r.Proto, RemoteAddr: r.RemoteAddr, TLS: r.TLS != nil, Header: header}
	it := &Item{ID: id, Received: now, Due: now}
	it.Provider, _ = repl.GetString("http.webhook.provider")
	it.DeliveryID, _ = repl.GetString("http.webhook.id")
	it.Event, _ = repl.GetString("http.webhook.event")
	if err := h.rt.store.Add(it, req, body); err != nil {
		h.logger.Error("storing a delivery", zap.String("queue", h.Name), zap.Error(err))
		return refuse(ReasonQueueUnavailable, "the queue cannot store deliveries right now; retry later", h.rt.metrics.unavailable)
	}
	h.rt.metrics.accepted.Inc()
	h.rt.notify()
	repl.Set("http.webhook.queue_id", id)
	status := h.RespondStatus
	if status == 0 {
		status = http.StatusOK
	}
	var out string
	if h.RespondBody != "" {
		out = repl.ReplaceAll(h.RespondBody, "")
	} else {
		out = `{"status":"queued","id":"` + id + `"}` + "\n"
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(status)
	_, err = io.WriteString(w, out)
	return err
}

// readAll reads r to its end into a buffer of size hint first.
func readAll(r io.Reader, hint int64) ([]byte, error) {
	b := make([]byte, 0, hint)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
