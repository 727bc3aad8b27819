package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// DefaultKey is the key when none is set: the client's IP as Caddy sees
// it, which honours the server's trusted_proxies.
const DefaultKey = "{http.vars.client_ip}"

// validName is what a limiter name may contain; it appears quoted in the
// RateLimit header fields.
var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Handler limits the rate of requests per key with GCRA before anything
// expensive happens. Requests over the limit get 429 with Retry-After and
// the IETF RateLimit-Policy and RateLimit header fields, in the same
// problem+json form as webhook_auth.
//
// Several handlers in one route stack: for example one per client and one
// global. Each keeps its own state, which survives config reloads.
//
// It sets the placeholders {http.webhook.rate_limit.name},
// {http.webhook.rate_limit.remaining} and
// {http.webhook.rate_limit.retry_after} (whole seconds; 0 when admitted),
// and {http.webhook.result} to rate_limited when it refuses.
type Handler struct {
	// Name identifies the limiter in headers, logs and metrics. Handlers
	// with the same name and store share state on purpose; unnamed ones
	// never share.
	Name string `json:"name,omitempty"`

	// Key is a placeholder template that selects whose budget a request
	// spends. By default, {http.vars.client_ip}.
	Key string `json:"key,omitempty"`

	// Rate is how many events each key may have per Window.
	Rate int64 `json:"rate,omitempty"`

	// Window is the period of Rate.
	Window caddy.Duration `json:"window,omitempty"`

	// Burst is how many events may come at once from idle. By default,
	// Rate.
	Burst int64 `json:"burst,omitempty"`

	// MaxKeys bounds the memory store: by default 1,000,000 keys, after
	// which a new key evicts the entry closest to draining.
	MaxKeys int `json:"max_keys,omitempty"`

	// Store is where state lives: memory (default, this process only) or
	// the name of a shared store of the webhook app.
	Store string `json:"store,omitempty"`

	// OnStoreError is reject (default: 503 with Retry-After, reason
	// store_unavailable) or allow (let the request through and log it)
	// when the store cannot decide.
	OnStoreError string `json:"on_store_error,omitempty"`

	// Headers adds RateLimit-Policy and RateLimit to admitted responses
	// too. Refused responses always carry them.
	Headers bool `json:"headers,omitempty"`

	// OnReject is respond (default, problem+json) or error (a handler
	// error for handle_errors).
	OnReject string `json:"on_reject,omitempty"`

	// Count is all (default: every request spends an event) or rejected:
	// only requests that webhook_auth later in the route refuses (in
	// enforce mode; report mode refuses nothing, so charges nothing) for
	// something the sender did (a missing, malformed or wrong signature,
	// a stale timestamp, a wrong method, an oversized body) spend one,
	// and a key whose budget is spent is refused before its body is read
	// or hashed. Put such a limiter first to shut out a sender that
	// forges deliveries without limiting the real ones. Concurrent
	// rejected requests from one key may overshoot the budget by the
	// number in flight.
	Count string `json:"count,omitempty"`

	limit      Limit
	store      Store
	poolKey    string
	keyPrefix  string
	policy     string
	label      string
	labelValue any // label boxed once
	logger     *zap.Logger

	allowed, denied, storeError prometheus.Counter
	storeErrors                 prometheus.Counter
	rejLogs, storeLogs          *gate.LogSampler
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webhook_rate_limit",
		New: func() caddy.Module { return new(Handler) },
	}
}

// memoryStores keeps memory stores alive across config reloads.
var memoryStores = caddy.NewUsagePool()

// Provision sets up the limit and finds the store.
func (h *Handler) Provision(ctx caddy.Context) error {
	// Caddy validates after provisioning; checking first means a bad
	// limit never gets as far as opening a store.
	if err := h.Validate(); err != nil {
		return err
	}
	h.logger = ctx.Logger()
	if h.Key == "" {
		h.Key = DefaultKey
	}
	h.limit = Limit{Rate: h.Rate, Window: time.Duration(h.Window), Burst: h.Burst}
	h.label = h.Name
	if h.label == "" {
		h.label = "webhook"
	}
	identity := "name:" + h.Name
	if h.Name == "" {
		appIface, err := ctx.App("webhook")
		if err != nil {
			return fmt.Errorf("webhook_rate_limit: loading the webhook app: %w", err)
		}
		seq, ok := appIface.(interface{ Sequence(string) int })
		if !ok {
			return fmt.Errorf("webhook_rate_limit: the webhook app does not number handlers")
		}
		identity = fmt.Sprintf("unnamed:%d:%s:%d/%s:%d", seq.Sequence("webhook_rate_limit"), h.Key, h.Rate, time.Duration(h.Window), h.Burst)
	}
	// In a shared store, keys are namespaced by a short digest of the
	// limiter's identity, so Redis memory per key stays small.
	sum := sha256.Sum256([]byte(identity))
	h.keyPrefix = hex.EncodeToString(sum[:6]) + ":"
	switch h.Store {
	case "", "memory":
		h.poolKey = identity
		val, _, _ := memoryStores.LoadOrNew(h.poolKey, func() (caddy.Destructor, error) {
			return NewMemoryStore(h.MaxKeys, nil), nil
		})
		mem := val.(*MemoryStore)
		mem.SetMaxKeys(h.MaxKeys)
		h.store = mem
		h.keyPrefix = "" // the store is this limiter's alone
	default:
		appIface, err := ctx.App("webhook")
		if err != nil {
			return fmt.Errorf("webhook_rate_limit: loading the webhook app: %w", err)
		}
		provider, ok := appIface.(StoreProvider)
		if !ok {
			return fmt.Errorf("webhook_rate_limit: store %q: the webhook app provides no shared stores", h.Store)
		}
		if h.store, err = provider.RateLimitStore(h.Store); err != nil {
			return fmt.Errorf("webhook_rate_limit: %w", err)
		}
	}
	h.policy = fmt.Sprintf("%q;q=%d;w=%d", h.label, h.Rate, ceilSeconds(time.Duration(h.Window)))
	if err := gate.RegisterMetrics(ctx); err != nil {
		return fmt.Errorf("webhook_rate_limit: registering metrics: %w", err)
	}
	h.allowed, h.denied, h.storeError = gate.RateLimitCounters(h.label)
	storeLabel := h.Store
	if storeLabel == "" {
		storeLabel = "memory"
	}
	h.storeErrors = gate.StoreErrorCounter(storeLabel, "rate_limit")
	h.rejLogs, h.storeLogs = new(gate.LogSampler), new(gate.LogSampler)
	h.labelValue = h.label
	return nil
}

// Validate checks the fields; it needs no provisioning, so the Caddyfile
// parser runs it too.
func (h *Handler) Validate() error {
	if h.Rate == 0 {
		return fmt.Errorf("webhook_rate_limit: 'rate' is required (e.g. rate 60/1m)")
	}
	l := Limit{Rate: h.Rate, Window: time.Duration(h.Window), Burst: h.Burst}
	if err := l.Validate(); err != nil {
		return fmt.Errorf("webhook_rate_limit: %w", err)
	}
	if h.Name != "" && !validName.MatchString(h.Name) {
		return fmt.Errorf("webhook_rate_limit: name %q may only contain letters, digits, '_', '.' and '-'", h.Name)
	}
	switch h.OnStoreError {
	case "", gate.OnStoreErrorReject, gate.OnStoreErrorAllow:
	default:
		return fmt.Errorf("webhook_rate_limit: unknown on_store_error %q (want reject or allow)", h.OnStoreError)
	}
	switch h.OnReject {
	case "", gate.OnRejectRespond, gate.OnRejectError:
	default:
		return fmt.Errorf("webhook_rate_limit: unknown on_reject %q (want respond or error)", h.OnReject)
	}
	if h.MaxKeys < 0 {
		return fmt.Errorf("webhook_rate_limit: max_keys must not be negative")
	}
	switch h.Count {
	case "", CountAll, CountRejected:
	default:
		return fmt.Errorf("webhook_rate_limit: unknown count %q (want all or rejected)", h.Count)
	}
	return nil
}

// Cleanup releases the memory store; it lives on while a newer config
// uses it.
func (h *Handler) Cleanup() error {
	if h.poolKey != "" {
		_, err := memoryStores.Delete(h.poolKey)
		return err
	}
	return nil
}

// Count values.
const (
	CountAll      = "all"
	CountRejected = "rejected"
)

// ServeHTTP spends one event of the request's key (with count rejected:
// checks that one is left, and spends it if the request is rejected).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	key := repl.ReplaceAll(h.Key, "")
	if h.keyPrefix != "" {
		key = h.keyPrefix + key
	}
	var d Decision
	var err error
	if h.Count == CountRejected {
		d, err = h.store.Peek(r.Context(), key, h.limit)
	} else {
		d, err = h.store.Take(r.Context(), key, h.limit)
	}
	if err != nil {
		return h.storeFailed(w, r, next, repl, err)
	}
	retryAfter := int64(0)
	if !d.Allowed {
		retryAfter = ceilSeconds(d.RetryAfter)
	}
	repl.Set("http.webhook.rate_limit.name", h.labelValue)
	repl.Set("http.webhook.rate_limit.remaining", d.Remaining)
	repl.Set("http.webhook.rate_limit.retry_after", retryAfter)
	if d.Allowed {
		h.allowed.Inc()
		if h.Headers {
			h.setHeaders(w.Header(), d)
		}
		if h.Count == CountRejected {
			return h.serveCharged(w, r, next, key)
		}
		return next.ServeHTTP(w, r)
	}
	h.denied.Inc()
	hdr := w.Header()
	h.setHeaders(hdr, d)
	hdr["Retry-After"] = []string{strconv.FormatInt(max(retryAfter, 1), 10)}
	repl.Set("http.webhook.result", string(gate.ReasonRateLimited))
	if ce, suppressed := h.rejLogs.Check(h.logger, zapcore.InfoLevel, "webhook rate limited", time.Now()); ce != nil {
		clientIP, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
		ce.Write(zap.String("limiter", h.label), zap.String("client_ip", clientIP), zap.Int64("retry_after", retryAfter), suppressed)
	}
	gate.CloseUnread(w, r)
	return gate.Respond(w, rateLimited, h.OnReject)
}

// rateLimited is the rejection of every refused request; Retry-After
// and the RateLimit fields carry the numbers. Made once, never modified.
var rateLimited = &gate.Rejection{
	Reason: gate.ReasonRateLimited,
	Detail: "too many requests for this key; retry after the seconds in Retry-After",
}

// serveCharged passes the request on and spends an event of key if it
// was rejected for something the sender did.
func (h *Handler) serveCharged(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, key string) error {
	err := next.ServeHTTP(w, r)
	reason, refused := gate.Refused(r.Context())
	if !refused || !reason.SenderFault() {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), chargeTimeout)
	defer cancel()
	if _, terr := h.store.Take(ctx, key, h.limit); terr != nil {
		// The request has been answered; only count and log.
		h.storeUnavailable("charge rejected", false, terr)
	}
	return err
}

// chargeTimeout bounds the call that charges a rejected request; it runs
// after the response, on its own deadline.
const chargeTimeout = 2 * time.Second

// setHeaders adds the IETF RateLimit header fields
// (draft-ietf-httpapi-ratelimit-headers): the policy (quota q per window w
// seconds) and the current state (r remaining, t seconds until the key's
// budget is full again). Stacked limiters each add their own item.
func (h *Handler) setHeaders(hdr http.Header, d Decision) {
	hdr.Add("RateLimit-Policy", h.policy)
	b := make([]byte, 0, len(h.label)+32)
	b = strconv.AppendQuote(b, h.label)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, d.Remaining, 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, ceilSeconds(d.ResetAfter), 10)
	hdr.Add("RateLimit", string(b))
}

// storeFailed applies on_store_error.
func (h *Handler) storeFailed(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, err error) error {
	allow := h.OnStoreError == gate.OnStoreErrorAllow
	h.storeUnavailable("decide", allow, err)
	if allow {
		return next.ServeHTTP(w, r)
	}
	repl.Set("http.webhook.result", string(gate.ReasonStoreUnavailable))
	gate.CloseUnread(w, r)
	return gate.Respond(w, gate.StoreUnavailable("the rate limit store is unavailable; retry shortly"), h.OnReject)
}

// storeUnavailable counts a failed store call and logs it, sampled.
func (h *Handler) storeUnavailable(op string, allowed bool, err error) {
	h.storeError.Inc()
	h.storeErrors.Inc()
	if ce, suppressed := h.storeLogs.Check(h.logger, zapcore.WarnLevel, "webhook rate limit store unavailable", time.Now()); ce != nil {
		ce.Write(zap.String("limiter", h.label), zap.String("store", h.Store), zap.String("op", op), zap.Bool("allowed", allowed), zap.Error(err), suppressed)
	}
}

// ceilSeconds rounds d up to whole seconds.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
