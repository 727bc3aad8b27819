package webhookauth

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
)

// handlerMetrics are one webhook_auth handler's counters, resolved once
// at provision so the request path only adds.
type handlerMetrics struct {
	results  map[string]prometheus.Counter
	verify   prometheus.Observer
	secrets  []prometheus.Counter
	claimErr prometheus.Counter
	finErr   prometheus.Counter
}

// resultReadError counts requests whose body could not be read (the
// client went away); they are answered 400 without a reason.
const resultReadError = "read_error"

func newHandlerMetrics(provider string, secrets int, store string) handlerMetrics {
	hm := handlerMetrics{
		results: make(map[string]prometheus.Counter),
		verify:  gate.VerifyDuration(provider),
	}
	for _, r := range []string{
		resultVerified, resultDuplicate, resultHandshake, resultReadError,
		string(ReasonSignatureMissing), string(ReasonSignatureMalformed), string(ReasonSignatureInvalid),
		string(ReasonTimestampInvalid), string(ReasonTimestampOutOfWindow), string(ReasonMethodNotAllowed),
		string(ReasonBodyTooLarge), string(ReasonBodyTimeout), string(ReasonDeliveryIDInvalid),
		string(ReasonDeliveryInProgress), string(ReasonStoreUnavailable), string(ReasonKeyUnavailable),
		string(ReasonSourceIPRefused), string(ReasonIPRangesUnavailable),
	} {
		hm.results[r] = gate.Requests(provider, r)
	}
	for i := range secrets {
		hm.secrets = append(hm.secrets, gate.SecretMatches(provider, i))
	}
	if store != "" {
		hm.claimErr = gate.StoreErrorCounter(store, "claim")
		hm.finErr = gate.StoreErrorCounter(store, "finish")
	}
	return hm
}

// count adds one request with this result.
func (hm *handlerMetrics) count(result string) {
	if c, ok := hm.results[result]; ok {
		c.Inc()
	}
}
