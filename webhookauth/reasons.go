package webhookauth

import "github.com/webhookauth/caddy-webhookauth/internal/gate"

// The rejection vocabulary lives in the shared core (internal/gate), so
// that webhook_rate_limit refuses requests the same way without importing
// this package; these names keep webhook_auth's code and its users' code
// reading as before.
type (
	// Reason is the stable, machine-readable cause of a rejection.
	Reason = gate.Reason
	// Rejection is a refused request: a reason and a safe detail.
	Rejection = gate.Rejection
)

// The reasons webhook_auth answers with.
const (
	ReasonSignatureMissing     = gate.ReasonSignatureMissing
	ReasonSignatureMalformed   = gate.ReasonSignatureMalformed
	ReasonSignatureInvalid     = gate.ReasonSignatureInvalid
	ReasonTimestampInvalid     = gate.ReasonTimestampInvalid
	ReasonTimestampOutOfWindow = gate.ReasonTimestampOutOfWindow
	ReasonMethodNotAllowed     = gate.ReasonMethodNotAllowed
	ReasonBodyTooLarge         = gate.ReasonBodyTooLarge
	ReasonBodyTimeout          = gate.ReasonBodyTimeout
	ReasonDeliveryIDInvalid    = gate.ReasonDeliveryIDInvalid
	ReasonDeliveryInProgress   = gate.ReasonDeliveryInProgress
	ReasonStoreUnavailable     = gate.ReasonStoreUnavailable
	ReasonKeyUnavailable       = gate.ReasonKeyUnavailable
	ReasonSourceIPRefused      = gate.ReasonSourceIPRefused
	ReasonIPRangesUnavailable  = gate.ReasonIPRangesUnavailable
)

// The results other than rejections, in {http.webhook.result} and the
// requests metric.
const (
	resultVerified  = "verified"
	resultDuplicate = "duplicate"
	resultHandshake = "handshake"
)

// reject is gate.Reject, short for the many rejections made here.
func reject(reason Reason, detail string) *Rejection { return gate.Reject(reason, detail) }
