package webhookauth

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
	"github.com/webhookauth/caddy-webhookauth/internal/keyfetch"
)

// KeyFetched: the sender signs with a key the gate fetches (Amazon SNS,
// PayPal, Google Pub/Sub): from a URL the delivery names, checked against
// an allowlist, or from a fixed address.
const KeyFetched KeyKind = "fetched"

// KeySource is implemented by the webhook app: the key cache every handler
// of the process shares, and the allowlists in force.
type KeySource interface {
	// FetchedKeys returns the shared cache, and the policy for sender:
	// the preset's own (def) with the app's overrides applied (hosts and
	// JWKS URL, for tests and private deployments).
	FetchedKeys(sender string, def KeyPolicy) (*keyfetch.Source, KeyPolicy, error)
}

// KeyPolicy is where one sender's keys may come from.
type KeyPolicy struct {
	// Hosts are the hosts its key URLs may name.
	Hosts keyfetch.Allowlist
	// CertNames are the names its signing certificates may carry.
	CertNames keyfetch.Allowlist
	// JWKSURL is where its JSON Web Keys are published (pubsub).
	JWKSURL string
}

// customScheme verifies a sender by code of its own rather than by a
// compiled Scheme: those whose keys are fetched, and monday.com's JWT.
// begin checks the headers alone; verify checks the whole delivery and
// returns its id and event type.
type customScheme interface {
	begin(r *http.Request) *Rejection
	verify(ctx context.Context, r *http.Request, body []byte, now time.Time) (id, event string, rej *Rejection)
	// idSigned: the id verify returns is covered by the signature.
	idSigned() bool
}

// fetchedSettings are the handler's settings for these senders.
type fetchedSettings struct {
	keys      *keyfetch.Source
	policy    KeyPolicy
	tolerance time.Duration
}

// keyRejection turns a key source's error into a rejection: a URL off the
// allowlist is the sender's fault (signature_malformed, and no request
// was made); no key to be had is 503 key_unavailable.
func keyRejection(err error, what string) *Rejection {
	if errors.Is(err, keyfetch.ErrNotAllowed) {
		return reject(ReasonSignatureMalformed, "the "+what+" is not an HTTPS URL on the sender's allowlist")
	}
	var un *keyfetch.Unavailable
	if errors.As(err, &un) {
		return gate.KeyUnavailable(un.Why)
	}
	return gate.KeyUnavailable("the key could not be had")
}

// provisionFetched sets up a sender whose keys are fetched.
func (h *Handler) provisionFetched(ctx interface {
	App(string) (any, error)
}, p Preset, tolerance time.Duration) error {
	src := h.keySource
	if src == nil {
		app, err := ctx.App("webhook")
		if err != nil {
			return err
		}
		var ok bool
		if src, ok = app.(KeySource); !ok {
			return errors.New("the webhook app does not fetch keys")
		}
	}
	keys, policy, err := src.FetchedKeys(p.Name, *p.KeyPolicy)
	if err != nil {
		return err
	}
	set := fetchedSettings{keys: keys, policy: policy, tolerance: tolerance}
	switch p.Name {
	case "sns":
		// Report mode changes nothing a sender sees: the confirmation
		// goes to the backend like any delivery.
		h.custom = &snsScheme{fetchedSettings: set, topics: h.TopicARNs, confirm: h.ConfirmSubscription && h.Mode != ModeReport}
	case "paypal":
		h.custom = &paypalScheme{fetchedSettings: set, webhookID: h.WebhookID}
	case "pubsub":
		h.custom = &pubsubScheme{fetchedSettings: set, audience: h.Audience, account: h.ServiceAccount}
	default:
		return errors.New("no fetched-key scheme for " + p.Name)
	}
	return nil
}
