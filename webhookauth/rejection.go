package webhookauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Reason is the stable, machine-readable cause of a rejection. It appears as
// the "reason" member of problem responses, in the {http.webhook.result}
// placeholder and in logs and metrics. Reasons never change once released.
type Reason string

// The rejection reasons, grouped by the HTTP status they are answered with.
const (
	ReasonSignatureMissing      Reason = "signature_missing"
	ReasonSignatureMalformed    Reason = "signature_malformed"
	ReasonSignatureInvalid      Reason = "signature_invalid"
	ReasonTimestampInvalid      Reason = "timestamp_invalid"
	ReasonTimestampOutOfWindow  Reason = "timestamp_out_of_window"
	ReasonMethodNotAllowed      Reason = "method_not_allowed"
	ReasonBodyTooLarge          Reason = "body_too_large"
	ReasonDeliveryInProgress    Reason = "delivery_in_progress"
	ReasonRateLimited           Reason = "rate_limited"
	ReasonStoreUnavailable      Reason = "store_unavailable"
	resultVerified                     = "verified"
	resultDuplicate                    = "duplicate"
	resultUnverifiedPassThrough        = "report_only"
)

// Status is the HTTP status code a rejection with this reason is answered
// with.
func (r Reason) Status() int {
	switch r {
	case ReasonSignatureMissing, ReasonSignatureMalformed, ReasonSignatureInvalid,
		ReasonTimestampInvalid, ReasonTimestampOutOfWindow:
		return http.StatusUnauthorized
	case ReasonMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case ReasonBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case ReasonDeliveryInProgress:
		return http.StatusConflict
	case ReasonRateLimited:
		return http.StatusTooManyRequests
	case ReasonStoreUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusForbidden
}

// Rejection is a refused request: a stable reason and a human detail that is
// safe to show to the sender. A detail never contains a secret, an expected
// signature or any part of the body.
type Rejection struct {
	Reason Reason
	Detail string
	// Header holds response header fields that belong to the rejection,
	// such as Allow for 405 or Retry-After for 409, 429 and 503.
	Header http.Header
}

// Error makes a Rejection usable as an error; the text is the reason and
// the detail.
func (r *Rejection) Error() string { return string(r.Reason) + ": " + r.Detail }

// reject is a short constructor used throughout the package.
func reject(reason Reason, detail string) *Rejection {
	return &Rejection{Reason: reason, Detail: detail}
}

// WithRetryAfter sets Retry-After to seconds (at least 1) and returns r.
func (r *Rejection) WithRetryAfter(seconds int64) *Rejection {
	if seconds < 1 {
		seconds = 1
	}
	r.setHeader("Retry-After", strconv.FormatInt(seconds, 10))
	return r
}

func (r *Rejection) setHeader(name, value string) {
	if r.Header == nil {
		r.Header = make(http.Header, 1)
	}
	r.Header.Set(name, value)
}

// problem is the RFC 9457 problem details document written for rejections.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Reason Reason `json:"reason"`
}

// OnStoreError values, shared by every handler that uses a store: whether
// a request is refused (503, store_unavailable) or let through when the
// store cannot be reached.
const (
	OnStoreErrorReject = "reject"
	OnStoreErrorAllow  = "allow"
)

// StoreUnavailable is the rejection for a store that cannot be reached;
// the sender is asked to retry after a second.
func StoreUnavailable(detail string) *Rejection {
	return reject(ReasonStoreUnavailable, detail).WithRetryAfter(1)
}

// OnReject values: how a handler answers a rejected request.
const (
	OnRejectRespond = "respond"
	OnRejectError   = "error"
)

// Respond answers a rejected request. With onReject "error" it returns a
// caddyhttp.Error carrying the status so that handle_errors routes take
// over; otherwise it writes an application/problem+json body and returns
// nil. The rejection's own header fields are set in both cases.
func Respond(w http.ResponseWriter, rej *Rejection, onReject string) error {
	for name, values := range rej.Header {
		w.Header()[name] = values
	}
	status := rej.Reason.Status()
	if onReject == OnRejectError {
		return caddyhttp.Error(status, rej)
	}
	body, err := json.Marshal(problem{
		Type:   "about:blank",
		Title:  http.StatusText(status),
		Status: status,
		Detail: rej.Detail,
		Reason: rej.Reason,
	})
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, err = w.Write(append(body, '\n'))
	return err
}

// AsRejection reports whether err carries a Rejection and returns it.
func AsRejection(err error) (*Rejection, bool) {
	var rej *Rejection
	ok := errors.As(err, &rej)
	return rej, ok
}
