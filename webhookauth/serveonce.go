package webhookauth

import (
	"github.com/webhookauth/caddy-webhookauth/internal/gate"

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
	if h.usesPool {
		_, err := dedupPool.Delete(memoryDedupKey)
		return err
	}
	return nil
}

// serveOnce passes a verified delivery to next at most once: it claims
// the delivery, and after next has answered marks it done (2xx) or
// releases it. A delivery with nothing to identify it by goes on without
// dedup.
func (h *Handler) serveOnce(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, d *delivery) error {
	if d.dedupKey == "" {
		repl.Set("http.webhook.duplicate", dedupUnchecked)
		h.metrics.count(resultVerified)
		if ce, suppressed := h.skipLog.Check(h.logger, zapcore.InfoLevel, "webhook dedup skipped: the delivery has no id and its scheme signs nothing", h.now()); ce != nil {
			ce.Write(zap.String("provider", h.label), suppressed)
		}
		return next.ServeHTTP(w, r)
	}
	key := h.dedupNS + d.dedupKey
	token := rand.Uint64()
	claim, err := h.dedup.Claim(r.Context(), key, token, time.Duration(h.DedupClaimTTL))
	if err != nil {
		h.metrics.claimErr.Inc()
		return h.dedupUnavailable(w, r, next, repl, err)
	}
	switch claim {
	case Done:
		repl.Set("http.webhook.duplicate", true)
		repl.Set("http.webhook.result", resultDuplicate)
		h.metrics.count(resultDuplicate)
		return writeDuplicate(w, d.id)
	case InFlight:
		repl.Set("http.webhook.result", string(ReasonDeliveryInProgress))
		h.metrics.count(string(ReasonDeliveryInProgress))
		rej := reject(ReasonDeliveryInProgress, "a copy of this delivery is being processed; retry shortly")
		retry := min(int64(time.Duration(h.DedupClaimTTL)/time.Second), 5)
		h.logRejection(r, repl, rej)
		return gate.Respond(w, rej.WithRetryAfter(retry), h.OnReject)
	}
	repl.Set("http.webhook.duplicate", false)
	h.metrics.count(resultVerified)
	rec := caddyhttp.NewResponseRecorder(w, nil, nil)
	err = next.ServeHTTP(rec, r)
	status := rec.Status()
	if status == 0 && err == nil {
		status = http.StatusOK
	}
	done := err == nil && status >= 200 && status < 300
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), finishTimeout)
	defer cancel()
	if ferr := h.dedup.Finish(ctx, key, token, done, time.Duration(h.Dedup)); ferr != nil {
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

// dedupUnavailable applies on_store_error when the dedup store fails.
func (h *Handler) dedupUnavailable(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, err error) error {
	allow := h.OnStoreError == gate.OnStoreErrorAllow
	if ce, suppressed := h.storeLog.Check(h.logger, zapcore.WarnLevel, "webhook dedup store unavailable", h.now()); ce != nil {
		ce.Write(zap.String("provider", h.label), zap.String("store", h.Store), zap.Bool("allowed", allow), zap.Error(err), suppressed)
	}
	if allow {
		h.metrics.count(resultVerified)
		return next.ServeHTTP(w, r)
	}
	repl.Set("http.webhook.result", string(ReasonStoreUnavailable))
	h.metrics.count(string(ReasonStoreUnavailable))
	return gate.Respond(w, gate.StoreUnavailable("the delivery store is unavailable; retry shortly"), h.OnReject)
}

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
