package webhookauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
)

// Dedup defaults.
const (
	DefaultDedupTTL      = 72 * time.Hour
	DefaultDedupClaimTTL = time.Minute
	// finishTimeout bounds the call that marks a delivery done or
	// releases it; it runs after the response, on its own deadline.
	finishTimeout = 2 * time.Second
)

// dedupPool holds the process-wide memory dedup store; handlers namespace
// ids by their scope. It lives in a UsagePool so it survives reloads.
var dedupPool = caddy.NewUsagePool()

const memoryDedupKey = "memory"

func (h *Handler) provisionDedup(ctx caddy.Context) error {
	identity := "scope:" + h.DedupScope
	if h.DedupScope == "" {
		app, err := ctx.App("webhook")
		if err != nil {
			return fmt.Errorf("loading the webhook app: %w", err)
		}
		seq, ok := app.(interface{ Sequence(string) int })
		if !ok {
			return fmt.Errorf("the webhook app does not number handlers")
		}
		identity = fmt.Sprintf("unnamed:%d:%s", seq.Sequence("webhook_auth.dedup"), h.label)
	}
	sum := sha256.Sum256([]byte(identity))
	h.dedupNS = string(sum[:8])
	switch h.Store {
	case "", "memory":
		val, _, _ := dedupPool.LoadOrNew(memoryDedupKey, func() (caddy.Destructor, error) {
			return NewMemoryDedup(nil), nil
		})
		h.dedup = val.(*MemoryDedup)
		h.usesPool = true
		return nil
	}
	app, err := ctx.App("webhook")
	if err != nil {
		return fmt.Errorf("loading the webhook app: %w", err)
	}
	provider, ok := app.(DedupProvider)
	if !ok {
		return fmt.Errorf("store %q: the webhook app provides no shared stores", h.Store)
	}
	h.dedup, err = provider.DedupStore(h.Store)
	return err
}

// Cleanup releases the memory dedup store; it lives on while a newer
// config uses it.
func (h *Handler) Cleanup() error {
	if h.enroll != nil {
		releaseAsanaStorage()
	}
	if h.usesPool {
		_, err := dedupPool.Delete(memoryDedupKey)
		return err
	}
	return nil
}

// claim decides what dedup makes of a verified delivery: a first
// delivery is claimed (d.claimed), a delivered one is a duplicate, one in
// flight elsewhere a delivery_in_progress rejection, and a store that
// cannot answer a store_unavailable rejection unless on_store_error
// allows it through. A delivery with nothing to identify it by goes on
// unchecked.
func (h *Handler) claim(r *http.Request, repl *caddy.Replacer, d *delivery) {
	if d.dedupKey == "" {
		repl.Set("http.webhook.duplicate", dedupUnchecked)
		if ce, suppressed := h.skipLog.Check(h.logger, zapcore.InfoLevel, "webhook dedup skipped: the delivery has no id and its scheme signs nothing", h.now()); ce != nil {
			ce.Write(zap.String("provider", h.label), suppressed)
		}
		return
	}
	d.token = rand.Uint64()
	d.dedupKey = h.dedupNS + d.dedupKey // the handler's scope, once
	res, err := h.dedup.Claim(r.Context(), d.dedupKey, d.token, time.Duration(h.DedupClaimTTL))
	if err != nil {
		h.metrics.claimErr.Inc()
		allow := h.OnStoreError == gate.OnStoreErrorAllow
		if ce, suppressed := h.storeLog.Check(h.logger, zapcore.WarnLevel, "webhook dedup store unavailable", h.now()); ce != nil {
			ce.Write(zap.String("provider", h.label), zap.String("store", h.Store), zap.Bool("allowed", allow), zap.Error(err), suppressed)
		}
		if !allow {
			d.rej = dedupStoreUnavailable
		}
		return
	}
	switch res {
	case Done:
		repl.Set("http.webhook.duplicate", true)
		d.duplicate = true
	case InFlight:
		retry := min(int64(time.Duration(h.DedupClaimTTL)/time.Second), 5)
		d.rej = reject(ReasonDeliveryInProgress, "a copy of this delivery is being processed; retry shortly").WithRetryAfter(retry)
	default:
		repl.Set("http.webhook.duplicate", false)
		d.claimed = true
	}
}

var dedupStoreUnavailable = gate.StoreUnavailable("the delivery store is unavailable; retry shortly")

// serveClaimed passes a claimed delivery to next, then marks it done (a
// 2xx answer) or releases it so the sender's retry goes through.
func (h *Handler) serveClaimed(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, d *delivery) error {
	rec := caddyhttp.NewResponseRecorder(w, nil, nil)
	err := next.ServeHTTP(rec, r)
	status := rec.Status()
	if status == 0 && err == nil {
		status = http.StatusOK
	}
	done := err == nil && status >= 200 && status < 300
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), finishTimeout)
	defer cancel()
	if ferr := h.dedup.Finish(ctx, d.dedupKey, d.token, done, time.Duration(h.Dedup)); ferr != nil {
		// The claim expires on its own; a retry then goes through.
		h.metrics.finErr.Inc()
		if ce, suppressed := h.storeLog.Check(h.logger, zapcore.WarnLevel, "webhook dedup finish failed", h.now()); ce != nil {
			ce.Write(zap.String("provider", h.label), zap.String("id", d.id), zap.Bool("delivered", done), zap.Error(ferr), suppressed)
		}
	}
	return err
}

// dedupUnchecked is {http.webhook.duplicate} for a delivery that dedup
// could not check: it has no id, and its scheme signs nothing that could
// stand in for one.
const dedupUnchecked = "unchecked"

// writeDuplicate answers a copy of a delivered id. The id is shown only
// when the sender gave one; a delivery identified by its MAC gets none.
func writeDuplicate(w http.ResponseWriter, id string) error {
	body := `{"status":"duplicate"}` + "\n"
	if id != "" {
		quoted, err := json.Marshal(id)
		if err != nil {
			return err
		}
		body = `{"status":"duplicate","id":` + string(quoted) + "}\n"
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write([]byte(body))
	return err
}

var _ caddy.CleanerUpper = (*Handler)(nil)
