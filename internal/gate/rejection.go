// Package gate is the core the webhook handlers share: how a request is
// refused (stable reasons, RFC 9457 problem+json, on_reject and
// on_store_error), how floods of refusals are logged (the sampler), the
// metrics every handler reports, and the verdict webhook_auth hands a
// `count rejected` limiter. It imports no module of this repository.
package gate

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Reason is the stable, machine-readable cause of a rejection. It appears as
// the "reason" member of problem responses, in the {http.webhook.result}
// placeholder and in logs and metrics. Reasons never change once released.
type Reason string

// The rejection reasons, grouped by the HTTP status they are answered with.
const (
	ReasonSignatureMissing     Reason = "signature_missing"
	ReasonSignatureMalformed   Reason = "signature_malformed"
	ReasonSignatureInvalid     Reason = "signature_invalid"
	ReasonTimestampInvalid     Reason = "timestamp_invalid"
	ReasonTimestampOutOfWindow Reason = "timestamp_out_of_window"
	ReasonMethodNotAllowed     Reason = "method_not_allowed"
	ReasonBodyTooLarge         Reason = "body_too_large"
	ReasonBodyTimeout          Reason = "body_timeout"
	ReasonDeliveryIDInvalid    Reason = "delivery_id_invalid"
	ReasonDeliveryInProgress   Reason = "delivery_in_progress"
	ReasonRateLimited          Reason = "rate_limited"
	ReasonStoreUnavailable     Reason = "store_unavailable"
	ReasonKeyUnavailable       Reason = "key_unavailable"
	// The queue's: full (max_pending, max_bytes) or its store failed;
	// the sender keeps the delivery and retries.
	ReasonQueueFull        Reason = "queue_full"
	ReasonQueueUnavailable Reason = "queue_unavailable"

	// allow_ips: the client's address is outside the sender's ranges
	// (403, before the body is read), or the sender's published list has
	// never been obtained (503, fail closed).
	ReasonSourceIPRefused     Reason = "source_ip_refused"
	ReasonIPRangesUnavailable Reason = "ip_ranges_unavailable"
)

// reasonValues are the reasons boxed once, for the replacer.
var reasonValues = func() map[Reason]any {
	m := make(map[Reason]any)
	for _, r := range []Reason{ReasonSignatureMissing, ReasonSignatureMalformed, ReasonSignatureInvalid,
		ReasonTimestampInvalid, ReasonTimestampOutOfWindow, ReasonMethodNotAllowed, ReasonBodyTooLarge,
		ReasonBodyTimeout, ReasonDeliveryIDInvalid, ReasonDeliveryInProgress, ReasonRateLimited, ReasonStoreUnavailable, ReasonKeyUnavailable,
		ReasonQueueFull, ReasonQueueUnavailable, ReasonSourceIPRefused, ReasonIPRangesUnavailable} {
		m[r] = string(r)
	}
	return m
}()

// Reasons lists every reason.
func Reasons() []Reason {
	out := make([]Reason, 0, len(reasonValues))
	for r := range reasonValues {
		out = append(out, r)
	}
	return out
}

// Value is r as a placeholder value, without an allocation for the known
// reasons.
func (r Reason) Value() any {
	if v, ok := reasonValues[r]; ok {
		return v
	}
	return string(r)
}

// SenderFault reports whether a rejection with this reason is charged to
// the sender: a missing, malformed or wrong signature, a stale
// timestamp, a wrong method, an oversized or too slow body, an unusable
// delivery id, or a key that could not be had (the request named a key
// URL that answers nothing usable, or the provider's keys are out of
// reach: either way the delivery failed, and a forger naming missing
// keys must not get free fetches). Not the gate's own state (a delivery
// in flight, a rate limit, a store outage). A limiter in `count
// rejected` mode charges only these.
func (r Reason) SenderFault() bool {
	switch r {
	case ReasonSignatureMissing, ReasonSignatureMalformed, ReasonSignatureInvalid,
		ReasonTimestampInvalid, ReasonTimestampOutOfWindow, ReasonMethodNotAllowed, ReasonBodyTooLarge,
		ReasonBodyTimeout, ReasonDeliveryIDInvalid, ReasonKeyUnavailable, ReasonSourceIPRefused:
		return true
	}
	return false
}

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
	case ReasonBodyTimeout:
		return http.StatusRequestTimeout
	case ReasonDeliveryIDInvalid:
		return http.StatusBadRequest
	case ReasonDeliveryInProgress:
		return http.StatusConflict
	case ReasonRateLimited:
		return http.StatusTooManyRequests
	case ReasonStoreUnavailable, ReasonKeyUnavailable, ReasonQueueFull, ReasonQueueUnavailable, ReasonIPRangesUnavailable:
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

// Reject returns a rejection with the reason and detail.
func Reject(reason Reason, detail string) *Rejection {
	return &Rejection{Reason: reason, Detail: detail}
}

// WithRetryAfter sets Retry-After to seconds (at least 1) and returns r.
func (r *Rejection) WithRetryAfter(seconds int64) *Rejection {
	if seconds < 1 {
		seconds = 1
	}
	r.SetHeader("Retry-After", strconv.FormatInt(seconds, 10))
	return r
}

// SetHeader sets a response header field of the rejection.
func (r *Rejection) SetHeader(name, value string) {
	if r.Header == nil {
		r.Header = make(http.Header, 1)
	}
	r.Header.Set(name, value)
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
	return Reject(ReasonStoreUnavailable, detail).WithRetryAfter(1)
}

// KeyUnavailable is the rejection for a delivery whose sender's key could
// not be fetched and is not cached; the sender is asked to retry later.
// detail says why, never with the key server's answer.
func KeyUnavailable(detail string) *Rejection {
	return Reject(ReasonKeyUnavailable, detail).WithRetryAfter(5)
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
//
// A flood of bad requests is answered here, so the problem document is
// written into a pooled buffer by hand (byte for byte what encoding/json
// would produce; a test holds it to that) and the header values share one
// allocation.
func Respond(w http.ResponseWriter, rej *Rejection, onReject string) error {
	for name, values := range rej.Header {
		w.Header()[name] = values
	}
	status := rej.Reason.Status()
	if onReject == OnRejectError {
		return caddyhttp.Error(status, rej)
	}
	bp := problemBuffers.Get().(*[]byte)
	body := appendProblem((*bp)[:0], status, rej)
	body = append(body, '\n')
	vals := make([]string, 4)
	vals[0], vals[1], vals[2], vals[3] = "application/problem+json", strconv.Itoa(len(body)), "no-store", "nosniff"
	h := w.Header()
	h["Content-Type"] = vals[0:1:1]
	h["Content-Length"] = vals[1:2:2]
	h["Cache-Control"] = vals[2:3:3]
	h["X-Content-Type-Options"] = vals[3:4:4]
	w.WriteHeader(status)
	_, err := w.Write(body)
	*bp = body
	problemBuffers.Put(bp)
	return err
}

var problemBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// appendProblem appends the JSON of problem{about:blank, status text,
// status, rej.Detail, rej.Reason} to dst.
func appendProblem(dst []byte, status int, rej *Rejection) []byte {
	dst = append(dst, `{"type":"about:blank","title":`...)
	dst = AppendJSONString(dst, http.StatusText(status))
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, `,"detail":`...)
	dst = AppendJSONString(dst, rej.Detail)
	dst = append(dst, `,"reason":`...)
	dst = AppendJSONString(dst, string(rej.Reason))
	return append(dst, '}')
}

// AppendJSONString appends s as a JSON string exactly as encoding/json
// writes it: HTML-sensitive characters, U+2028 and U+2029 escaped, and
// invalid UTF-8 replaced by U+FFFD.
func AppendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// CloseUnread makes an HTTP/1 answer close the connection when the
// request has a body (declared or chunked) that the handler has not read
// to its end. Otherwise net/http, once the handler returns, reads up to
// 256 KiB of what is left to keep the connection, under no deadline: a
// sender trickling a byte a second would hold the goroutine and the
// connection for days. Call it before the answer is written, on every
// refusal made before (or instead of) reading the whole body. HTTP/2
// resets the stream instead, so it is left alone there (a Connection
// header would shut down every stream of the connection).
func CloseUnread(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && (r.ContentLength != 0 || len(r.TransferEncoding) > 0) {
		w.Header().Set("Connection", "close")
	}
}

// AsRejection reports whether err carries a Rejection and returns it.
func AsRejection(err error) (*Rejection, bool) {
	var rej *Rejection
	ok := errors.As(err, &rej)
	return rej, ok
}
