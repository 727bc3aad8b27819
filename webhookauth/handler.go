package webhookauth

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Modes of operation.
const (
	ModeEnforce = "enforce"
	ModeReport  = "report"
)

// DefaultMaxBody is the body limit when max_body is not set: 10 MB.
const DefaultMaxBody = 10_000_000

// Handler verifies incoming webhook deliveries before they reach the next
// handler (usually reverse_proxy): the method is allowed, the body is no
// larger than the limit, the signature matches one of the configured
// secrets, and the timestamp is within the replay window. Verified
// requests go on with their body byte for byte as it arrived; others are
// answered with a problem+json rejection (or a handler error, for
// handle_errors).
//
// It sets these placeholders: {http.webhook.provider},
// {http.webhook.id}, {http.webhook.timestamp}, {http.webhook.event},
// {http.webhook.result} ("verified", "handshake", "duplicate" or the
// rejection reason) and
// {http.webhook.secret_index} (which configured secret matched, from 0).
type Handler struct {
	// Provider names a preset: github, gitlab, stripe, slack, shopify,
	// standard or svix. Without one, the generic fields describe the
	// scheme, starting from HMAC-SHA256 over the body, hex-encoded.
	Provider string `json:"provider,omitempty"`

	// Secrets are the shared secrets, tried in order; any one matching is
	// enough, so a rotation lists the new and the old. Placeholders such as
	// {env.NAME} and {file./path} are resolved when the config loads; a
	// secret that resolves empty is a config error.
	Secrets []string `json:"secrets,omitempty"`

	// PublicKeys are the sender's public keys, for asymmetric schemes
	// (Discord, SendGrid, algorithm ed25519, ecdsa-p256-sha256,
	// rsa-pkcs1v15-sha256, rsa-pss-sha256), tried in order: PEM
	// (SubjectPublicKeyInfo or PKCS#1), whpk_ + base64, or hex or base64
	// of a raw ed25519 key or a DER SubjectPublicKeyInfo. Placeholders
	// are resolved at load, and a key that does not parse stops the
	// config. On a Standard Webhooks scheme they verify the v1a (ed25519)
	// entries, beside the secrets' v1 entries.
	PublicKeys []string `json:"public_keys,omitempty"`

	// Tolerance is the replay window: the most a request's timestamp may
	// differ from the server's clock, in either direction. By default,
	// 5 minutes for schemes that carry a timestamp. 0 disables the check.
	Tolerance *caddy.Duration `json:"tolerance,omitempty"`

	// MaxBody is the largest body accepted, in bytes. By default, 10 MB.
	MaxBody int64 `json:"max_body,omitempty"`

	// AllowIPs admits only requests from these ranges (CIDRs or
	// addresses), checked on Caddy's client IP (so trusted_proxies is
	// respected) before the body is read: 403 source_ip_refused.
	// "published" stands for the provider's own list, fetched and kept
	// current by the webhook app (see IPSource); until one has been
	// obtained, 503 ip_ranges_unavailable. Defence in depth beside the
	// signature, never instead of it.
	AllowIPs []string `json:"allow_ips,omitempty"`

	// Methods are the allowed request methods. By default, POST only;
	// others get 405 with an Allow header.
	Methods []string `json:"methods,omitempty"`

	// Mode is enforce (default) or report. In report mode every request
	// is verified, logged and described by the placeholders, but none is
	// refused: use it to roll out safely.
	Mode string `json:"mode,omitempty"`

	// OnReject is respond (default: an RFC 9457 problem+json answer) or
	// error (return a handler error so handle_errors routes answer; the
	// reason is in {http.error.message}).
	OnReject string `json:"on_reject,omitempty"`

	// Dedup, when set, remembers verified delivery ids for this long
	// (72h is long enough for every provider's retry schedule). A copy of
	// a delivered id gets 200 with a small JSON body saying it is a
	// duplicate and never reaches the backend; a copy that arrives while
	// the first is in flight gets 409 with Retry-After; a delivery whose
	// backend does not answer 2xx is forgotten so the sender's retry goes
	// through. Not applied in report mode.
	Dedup caddy.Duration `json:"dedup,omitempty"`

	// DedupClaimTTL is how long an in-flight claim lasts if the server
	// handling it dies. By default, 1 minute.
	DedupClaimTTL caddy.Duration `json:"dedup_claim_ttl,omitempty"`

	// Store is where dedup state lives: memory (default, this process) or
	// redis (shared by a fleet; needs the webhook app's redis block).
	Store string `json:"store,omitempty"`

	// OnStoreError is reject (default: 503 with Retry-After, reason
	// store_unavailable) or allow (forward without dedup, and log it)
	// when the dedup store cannot be reached.
	OnStoreError string `json:"on_store_error,omitempty"`

	// DedupScope names the dedup state this handler uses. Handlers share
	// delivery ids only when they name the same scope (one sender behind
	// two routes); without a name, each handler's ids are its own, kept
	// across reloads as long as the handler keeps its place in the
	// config. Letters, digits, '_', '.' and '-'.
	DedupScope string `json:"dedup_scope,omitempty"`

	// ReadTimeout is how long the body may take to arrive, from the
	// moment the handler starts reading it. A body still incomplete then
	// is answered 408 with reason body_timeout, and the connection is
	// closed. By default, 10s.
	ReadTimeout caddy.Duration `json:"read_timeout,omitempty"`

	// ForwardSignature says whether the signature header goes on to the
	// next handler once the request passes. By default it does, except
	// for token schemes (GitLab), where the header is the secret itself:
	// it is removed, so neither the backend nor reverse_proxy's logs see
	// it. Caddy's access log records headers as they arrived, before any
	// handler runs; filter it as the README shows.
	ForwardSignature *bool `json:"forward_signature,omitempty"`

	// Handshake says whether the provider's endpoint check (Zoom's
	// url_validation, X's CRC, Meta's verification request, …; see the
	// README) is answered here, which is the default, or passed on to the
	// next handler (false): verified first where it is signed, and in
	// its exact documented shape where it is not. In report mode it is
	// always passed on. Only for presets that have one.
	Handshake *bool `json:"handshake,omitempty"`

	// VerifyToken is the token Meta's verification request must carry
	// (hub.verify_token), chosen when the subscription is set up: a secret
	// like any other (placeholders, refused when empty, never logged),
	// compared in constant time.
	VerifyToken string `json:"verify_token,omitempty"`

	// For the senders whose keys are fetched (see KeyFetched):
	// TopicARNs are the only SNS topics accepted (required; "*" accepts
	// any account's topics); WebhookID is PayPal's webhook id, which its
	// signature covers; Audience is the audience Pub/Sub's tokens must be
	// for, and ServiceAccount the service account they must be issued to
	// (required; "*" accepts a token of any Google account).
	TopicARNs []string `json:"topic_arns,omitempty"`
	// ConfirmSubscription: the gate confirms an SNS subscription itself,
	// once the SubscriptionConfirmation verifies, by visiting its
	// SubscribeURL (an SNS host, like the certificates); otherwise the
	// verified confirmation goes to the backend like any delivery.
	ConfirmSubscription bool   `json:"confirm_subscription,omitempty"`
	WebhookID           string `json:"webhook_id,omitempty"`
	Audience            string `json:"audience,omitempty"`
	ServiceAccount      string `json:"service_account,omitempty"`

	// The generic scheme fields; each one set overrides the preset.
	SchemeConfig

	verifier *Verifier
	// alt verifies Standard Webhooks' v1a entries when the handler has
	// both secrets (v1) and public keys (v1a).
	alt      *Verifier
	dedup    DedupStore
	usesPool bool
	// dedupNS starts every id this handler gives its dedup store: a
	// digest of its scope, so handlers never see each other's ids.
	dedupNS string
	// stripSig removes the signature header before the request goes on.
	stripSig bool
	// echo is a request header copied onto the response (EchoHeader);
	// bare: rejections have no body (BareRejections).
	echo string
	bare bool
	// ips is allow_ips (nil: any address).
	ips *ipGate
	// hs is the preset's handshake, answered here when answerHS;
	// verifyToken is the digest of VerifyToken, if set.
	hs       *Handshake
	answerHS bool
	// custom verifies, instead of verifier, a sender whose keys are
	// fetched or whose scheme is code of its own (monday.com's JWT);
	// keySource, when set, replaces the webhook app's (tests).
	custom    customScheme
	keySource KeySource
	// enroll holds the secrets learned from armed handshakes (Asana's),
	// in Caddy's storage or, when set, enrollStorage (tests).
	enroll        *enrollments
	enrollStorage certmagic.Storage
	verifyToken   *[sha256.Size]byte
	readTimeout   time.Duration
	label         string
	// labelValue is label boxed once for the replacer.
	labelValue any
	idField    string
	evField    string
	maxBody    int64
	allow      string
	logger     *zap.Logger
	now        func() time.Time
	metrics    handlerMetrics
	rejLogs    *gate.LogSampler
	storeLog   *gate.LogSampler
	skipLog    *gate.LogSampler
}

// DefaultReadTimeout bounds how long a body may take to arrive.
const DefaultReadTimeout = 10 * time.Second

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webhook_auth",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision compiles the scheme and resolves the secrets.
func (h *Handler) Provision(ctx caddy.Context) error {
	// Caddy validates after provisioning; checking first means a bad
	// config never gets as far as resolving secrets or opening stores.
	if err := h.Validate(); err != nil {
		return err
	}
	if h.logger == nil { // else set by UseLogger (the verify command)
		h.logger = ctx.Logger()
	}
	if h.now == nil {
		h.now = time.Now
	}
	scheme, p, err := h.compileScheme()
	if err != nil {
		return err
	}
	tolerance := p.Tolerance
	h.label = "generic"
	if h.Provider != "" {
		h.label = p.Name
		h.idField, h.evField = p.IDField, p.EventField
	}
	if len(h.AllowIPs) > 0 {
		if h.ips, err = h.newIPGate(ctx, p); err != nil {
			return fmt.Errorf("webhook_auth %s: %w", h.label, err)
		}
	}
	if h.Provider == "" && (scheme.hasTimestamp() || scheme.TimestampField != "") {
		tolerance = 5 * time.Minute
	}
	if h.Tolerance != nil {
		tolerance = time.Duration(*h.Tolerance)
		if tolerance < 0 {
			return fmt.Errorf("webhook_auth %s: tolerance must not be negative", h.label)
		}
	}
	if p.Key == KeyFetched {
		if err := h.provisionFetched(ctx, p, tolerance); err != nil {
			return fmt.Errorf("webhook_auth %s: %w", h.label, err)
		}
	} else if p.JWT != nil {
		if err := h.provisionJWT(p, tolerance); err != nil {
			return fmt.Errorf("webhook_auth %s: %w", h.label, err)
		}
	} else if err := h.provisionSigned(scheme, p, tolerance); err != nil {
		return err
	}
	if p.Handshake != nil && p.Handshake.EnrollParam != "" {
		storage := h.enrollStorage
		if storage == nil {
			storage = contextStorage(ctx)
		}
		switch {
		case storage != nil:
			h.enroll = &enrollments{storage: storage, scheme: scheme, tolerance: tolerance, verifiers: map[*Enrollment]*Verifier{}}
			useAsanaStorage(storage)
		case len(h.Secrets) == 0:
			// Outside a Caddy config (caddy webhook verify): no storage
			// to learn into, so the secret must be given.
			return fmt.Errorf("webhook_auth %s: outside a running Caddy the secret must be given: 'secret'", h.label)
		}
	}
	h.readTimeout = time.Duration(h.ReadTimeout)
	if h.readTimeout == 0 {
		h.readTimeout = DefaultReadTimeout
	}
	if err := gate.RegisterMetrics(ctx); err != nil {
		return fmt.Errorf("webhook_auth %s: registering metrics: %w", h.label, err)
	}

	h.maxBody = h.MaxBody
	if h.maxBody == 0 {
		h.maxBody = DefaultMaxBody
	}
	if len(h.Methods) == 0 {
		h.Methods = []string{http.MethodPost}
	}
	for i, m := range h.Methods {
		h.Methods[i] = strings.ToUpper(m)
	}
	h.allow = strings.Join(h.Methods, ", ")
	if h.Dedup > 0 {
		if h.DedupClaimTTL == 0 {
			h.DedupClaimTTL = caddy.Duration(DefaultDedupClaimTTL)
		}
		if err := h.provisionDedup(ctx); err != nil {
			return fmt.Errorf("webhook_auth %s: %w", h.label, err)
		}
	}
	storeLabel := ""
	if h.dedup != nil {
		storeLabel = h.Store
		if storeLabel == "" {
			storeLabel = "memory"
		}
	}
	h.metrics = newHandlerMetrics(h.label, len(h.Secrets)+len(h.PublicKeys), storeLabel)
	h.rejLogs, h.storeLog, h.skipLog = new(gate.LogSampler), new(gate.LogSampler), new(gate.LogSampler)
	h.labelValue = h.label
	return nil
}

// provisionSigned sets up a scheme verified with configured keys: the
// secrets or public keys, what goes on to the backend, the handshake.
func (h *Handler) provisionSigned(scheme *Scheme, p Preset, tolerance time.Duration) error {
	var keys [][]byte
	if len(h.Secrets) > 0 {
		var err error
		if keys, err = resolveSecrets(h.Secrets, scheme.SecretEncoding); err != nil {
			return fmt.Errorf("webhook_auth %s: %w", h.label, err)
		}
	}
	if err := h.provisionVerifiers(scheme, keys, tolerance); err != nil {
		return fmt.Errorf("webhook_auth %s: %w", h.label, err)
	}
	for i, k := range keys {
		if len(k) < MinSecretLength {
			h.logger.Warn("a secret is shorter than recommended; providers generate at least 16 random bytes",
				zap.String("provider", h.label), zap.Int("secret_index", i), zap.Int("min_length", MinSecretLength))
		}
	}
	h.stripSig = scheme.Algorithm == AlgorithmToken && scheme.SignatureHeader != "" && !p.KeepToken
	h.echo = http.CanonicalHeaderKey(p.EchoHeader)
	h.bare = p.BareRejections
	if h.ForwardSignature != nil {
		if !*h.ForwardSignature && scheme.SignatureHeader == "" {
			return fmt.Errorf("webhook_auth %s: forward_signature off: the signature is in the body, which the gate never alters", h.label)
		}
		h.stripSig = !*h.ForwardSignature
	}
	if err := h.provisionHandshake(p); err != nil {
		return fmt.Errorf("webhook_auth %s: %w", h.label, err)
	}
	return nil
}

// validateFetched checks the settings of the senders whose keys are
// fetched, and that no other handler uses them.
func (h *Handler) validateFetched(p Preset) error {
	if p.JWT != nil {
		if len(h.TopicARNs) > 0 || h.ConfirmSubscription || h.WebhookID != "" || h.ServiceAccount != "" {
			return fmt.Errorf("webhook_auth %s: takes 'audience', not 'topic_arn', 'confirm_subscription', 'webhook_id' or 'service_account'", p.Name)
		}
		// Every endpoint of one app shares its secret: a token minted
		// for another must not pass here, unless '*' says so.
		if h.Audience == "" {
			return fmt.Errorf("webhook_auth %s: 'audience' is required: the endpoint URL the tokens are issued for (their aud claim), or '*' to accept a token for any of the app's endpoints", p.Name)
		}
		if len(h.PublicKeys) > 0 {
			return fmt.Errorf("webhook_auth %s: the tokens are signed with a shared secret: use 'secret', not 'public_key'", p.Name)
		}
		return nil
	}
	if p.Key != KeyFetched {
		if len(h.TopicARNs) > 0 || h.ConfirmSubscription || h.WebhookID != "" || h.Audience != "" || h.ServiceAccount != "" {
			return fmt.Errorf("webhook_auth: 'topic_arn', 'confirm_subscription', 'webhook_id', 'audience' and 'service_account' apply to sns, paypal and pubsub ('audience' to monday too)")
		}
		return nil
	}
	if len(h.Secrets) > 0 || len(h.PublicKeys) > 0 || h.VerifyToken != "" || h.ForwardSignature != nil {
		return fmt.Errorf("webhook_auth %s: the keys are fetched from the sender: it takes no 'secret', 'public_key', 'verify_token' or 'forward_signature'", p.Name)
	}
	switch p.Name {
	case "sns":
		if h.WebhookID != "" || h.Audience != "" || h.ServiceAccount != "" {
			return fmt.Errorf("webhook_auth sns: takes 'topic_arn' and 'confirm_subscription' only")
		}
		// Any AWS account can point a topic at the endpoint, and SNS
		// signs its messages all the same: which topics are accepted
		// must be said, '*' for any.
		if len(h.TopicARNs) == 0 {
			return fmt.Errorf("webhook_auth sns: 'topic_arn' is required: the ARN of each topic this endpoint accepts (arn:aws:sns:<region>:<account>:<topic>), or '*' to accept any AWS account's topics")
		}
		anyTopic := slices.Contains(h.TopicARNs, "*")
		if anyTopic && len(h.TopicARNs) > 1 {
			return fmt.Errorf("webhook_auth sns: topic_arn '*' accepts every topic: list ARNs or '*', not both")
		}
		for _, arn := range h.TopicARNs {
			if arn != "*" && !strings.HasPrefix(arn, "arn:") {
				return fmt.Errorf("webhook_auth sns: topic_arn %q is not an ARN (arn:aws:sns:<region>:<account>:<topic>)", arn)
			}
		}
		if h.ConfirmSubscription && anyTopic {
			return fmt.Errorf("webhook_auth sns: 'confirm_subscription' needs the topics listed in 'topic_arn', not '*': the gate would confirm a subscription to any account's topic")
		}
	case "paypal", "pubsub":
		if h.ConfirmSubscription {
			return fmt.Errorf("webhook_auth %s: 'confirm_subscription' applies to sns", p.Name)
		}
	}
	switch p.Name {
	case "paypal":
		if h.WebhookID == "" {
			return fmt.Errorf("webhook_auth paypal: 'webhook_id' is required: the id PayPal shows for this webhook, which its signature covers")
		}
		if len(h.TopicARNs) > 0 || h.Audience != "" || h.ServiceAccount != "" {
			return fmt.Errorf("webhook_auth paypal: takes 'webhook_id' only")
		}
	case "pubsub":
		if h.Audience == "" {
			return fmt.Errorf("webhook_auth pubsub: 'audience' is required: the audience set on the push subscription (by default its endpoint URL)")
		}
		if len(h.TopicARNs) > 0 || h.WebhookID != "" {
			return fmt.Errorf("webhook_auth pubsub: takes 'audience' and 'service_account' only")
		}
		// Any Google Cloud user can mint a token for any audience:
		// whose tokens are accepted must be said, '*' for anyone's.
		if h.ServiceAccount == "" {
			return fmt.Errorf("webhook_auth pubsub: 'service_account' is required: the email of the service account the push subscription authenticates as, or '*' to accept a token of any Google account for this audience")
		}
	}
	return nil
}

// compileScheme merges the generic fields over the preset, if any, and
// compiles the result.
func (h *Handler) compileScheme() (*Scheme, Preset, error) {
	var p Preset
	if h.Provider != "" {
		var err error
		if p, err = LookupPreset(h.Provider); err != nil {
			return nil, p, fmt.Errorf("webhook_auth: %w", err)
		}
	}
	if !p.Compiled() {
		if !reflect.ValueOf(h.SchemeConfig).IsZero() {
			return nil, p, fmt.Errorf("webhook_auth %s: the scheme is fixed: it takes none of the generic scheme fields", p.Name)
		}
		return nil, p, nil
	}
	scheme, err := p.Scheme.merge(h.SchemeConfig).Compile()
	if err != nil {
		name := p.Name
		if name == "" {
			name = "generic"
		}
		return nil, p, fmt.Errorf("webhook_auth %s: %w", name, err)
	}
	return scheme, p, nil
}

// Validate checks the fields on their own and against each other,
// compiling the scheme; it needs no provisioning, so the Caddyfile parser
// runs it too.
func (h *Handler) Validate() error {
	// p is the preset, or the zero Preset for a generic scheme.
	_, p, err := h.compileScheme()
	if err != nil {
		return err
	}
	if err := h.validateFetched(p); err != nil {
		return err
	}
	if p.Key == KeyFetched {
		// No secret: the keys are fetched.
	} else if p.Handshake != nil && p.Handshake.EnrollParam != "" {
		// The secrets are learned from armed handshakes; configured
		// ones verify deliveries that carry no enrollment token.
	} else if len(h.Secrets) == 0 && len(h.PublicKeys) == 0 {
		if p.Key == KeyPublic {
			return fmt.Errorf("webhook_auth: %s signs with a private key: at least one 'public_key' is required", p.Name)
		}
		return fmt.Errorf("webhook_auth: at least one 'secret' is required")
	}
	if (h.Store != "" || h.OnStoreError != "" || h.DedupClaimTTL != 0 || h.DedupScope != "") && h.Dedup == 0 {
		return fmt.Errorf("webhook_auth: 'store', 'on_store_error', 'dedup_claim_ttl' and 'dedup_scope' apply to dedup: add 'dedup'")
	}
	switch h.Mode {
	case "", ModeEnforce, ModeReport:
	default:
		return fmt.Errorf("webhook_auth: unknown mode %q (want enforce or report)", h.Mode)
	}
	switch h.OnReject {
	case "", gate.OnRejectRespond, gate.OnRejectError:
	default:
		return fmt.Errorf("webhook_auth: unknown on_reject %q (want respond or error)", h.OnReject)
	}
	switch h.OnStoreError {
	case "", gate.OnStoreErrorReject, gate.OnStoreErrorAllow:
	default:
		return fmt.Errorf("webhook_auth: unknown on_store_error %q (want reject or allow)", h.OnStoreError)
	}
	if h.Dedup < 0 || h.DedupClaimTTL < 0 {
		return fmt.Errorf("webhook_auth: dedup durations must not be negative")
	}
	if h.MaxBody < 0 {
		return fmt.Errorf("webhook_auth: max_body must not be negative")
	}
	if h.ReadTimeout < 0 {
		return fmt.Errorf("webhook_auth: read_timeout must not be negative")
	}
	if h.Handshake != nil && p.Handshake == nil {
		return fmt.Errorf("webhook_auth: 'handshake' applies to providers that have one: %s", strings.Join(handshakeNames(), ", "))
	}
	if h.VerifyToken != "" && (p.Handshake == nil || p.Handshake.TokenParam == "") {
		return fmt.Errorf("webhook_auth: 'verify_token' applies to meta's verification request")
	}
	if h.DedupScope != "" && !validScope(h.DedupScope) {
		return fmt.Errorf("webhook_auth: dedup_scope %q may only contain letters, digits, '_', '.' and '-'", h.DedupScope)
	}
	return nil
}

func validScope(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return s != ""
}

// MinSecretLength is the shortest secret loaded without a warning, in
// bytes after decoding.
const MinSecretLength = 16

// resolveSecrets replaces the global placeholders in each secret and
// decodes it. A secret that resolves empty or blank, or has a placeholder
// that resolves empty anywhere in it, is an error. An error names the
// secret by position and by the placeholder the user wrote, never by its
// value.
func resolveSecrets(secrets []string, enc SecretEncoding) ([][]byte, error) {
	repl := caddy.NewReplacer()
	keys := make([][]byte, 0, len(secrets))
	for i, s := range secrets {
		val, err := resolveKeyText(repl, "secret", i, s)
		if err != nil {
			return nil, err
		}
		key, err := enc.Key(val)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i, err)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// resolveKeyText resolves the placeholders of the i-th secret or public
// key (kind) as written. One that resolves empty anywhere, or to white
// space only, is an error that names the placeholder, never a value.
func resolveKeyText(repl *caddy.Replacer, kind string, i int, text string) (string, error) {
	if ph := emptyPlaceholder(repl, text); ph != "" {
		return "", fmt.Errorf("%s %d (%s) resolved to an empty value: is the environment variable set or the file present?", kind, i, ph)
	}
	val := repl.ReplaceKnown(text, "")
	if strings.TrimSpace(val) == "" {
		return "", fmt.Errorf("%s %d (%s) is empty or only white space", kind, i, placeholderOnly(text))
	}
	return val, nil
}

// provisionVerifiers sets up the verifier for the scheme and, where a
// Standard Webhooks handler has both secrets and public keys, a second
// one for the v1a (ed25519) entries.
func (h *Handler) provisionVerifiers(scheme *Scheme, keys [][]byte, tolerance time.Duration) error {
	alg := scheme.Algorithm
	if alg.asymmetric() {
		if len(keys) > 0 {
			return fmt.Errorf("algorithm %s verifies with 'public_key', not 'secret'", alg)
		}
		pubs, err := resolvePublicKeys(h.PublicKeys, alg)
		if err != nil {
			return err
		}
		h.verifier = NewPublicKeyVerifier(scheme, pubs, tolerance)
		return nil
	}
	if len(h.PublicKeys) == 0 {
		h.verifier = NewVerifier(scheme, keys, tolerance)
		return nil
	}
	if scheme.Format != FormatStandard || alg == AlgorithmToken {
		return fmt.Errorf("'public_key' needs an asymmetric algorithm (ed25519, ecdsa-p256-sha256, rsa-pkcs1v15-sha256, rsa-pss-sha256) or a Standard Webhooks scheme (v1a)")
	}
	pubs, err := resolvePublicKeys(h.PublicKeys, AlgorithmEd25519)
	if err != nil {
		return err
	}
	v1a := *scheme
	v1a.Algorithm, v1a.Prefix = AlgorithmEd25519, "v1a,"
	alt := NewPublicKeyVerifier(&v1a, pubs, tolerance)
	if len(keys) == 0 {
		h.verifier = alt
		return nil
	}
	h.verifier, h.alt = NewVerifier(scheme, keys, tolerance), alt
	return nil
}

// resolvePublicKeys resolves the placeholders in each key and parses it
// for alg. Errors name the key by position.
func resolvePublicKeys(keys []string, alg Algorithm) ([]crypto.PublicKey, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("algorithm %s needs at least one 'public_key'", alg)
	}
	repl := caddy.NewReplacer()
	out := make([]crypto.PublicKey, 0, len(keys))
	for i, k := range keys {
		val, err := resolveKeyText(repl, "public_key", i, k)
		if err != nil {
			return nil, err
		}
		pub, err := ParsePublicKey(alg, val)
		if err != nil {
			return nil, fmt.Errorf("public_key %d: %w", i, err)
		}
		out = append(out, pub)
	}
	return out, nil
}

// emptyPlaceholder returns the first known placeholder in s that
// resolves to nothing, such as {env.UNSET} in "prefix-{env.UNSET}", or "".
func emptyPlaceholder(repl *caddy.Replacer, s string) string {
	for rest := s; ; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			return ""
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return ""
		}
		key := rest[open+1 : open+end]
		if v, ok := repl.Get(key); ok && caddy.ToString(v) == "" {
			return "{" + key + "}"
		}
		rest = rest[open+end+1:]
	}
}

// placeholderOnly returns s when it is made only of placeholders and a
// neutral word otherwise, so an error never shows a secret's value.
func placeholderOnly(s string) string {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") && strings.Count(t, "{") == 1 {
		return t
	}
	return "as written"
}

// ServeHTTP verifies the request and passes it on, or refuses it. Every
// request ends in one outcome (verified, duplicate or a rejection
// reason), which sets {http.webhook.result}, counts in the requests
// metric and, for a rejection, writes the log line, each once, here.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.webhook.provider", h.labelValue)

	var d delivery
	h.check(w, r, repl, &d)
	if d.body != nil {
		defer d.body.release()
		if d.rej == nil || h.Mode == ModeReport {
			d.body.attach(r)
		}
	}
	if d.err != nil {
		h.metrics.count(resultReadError)
		return caddyhttp.Error(http.StatusBadRequest, d.err)
	}
	if d.rej == nil && !d.handshake && h.dedup != nil && h.Mode != ModeReport {
		h.claim(r, repl, &d)
	}
	if d.verified && h.echo != "" {
		// The sender wants its header back on every answer to a
		// delivery it signed (Adobe Sign's client id): passed on,
		// duplicate, in flight, stored. Set before the backend writes,
		// which may override it.
		if v := r.Header.Get(h.echo); v != "" {
			w.Header().Set(h.echo, v)
		}
	}

	switch {
	case d.rej != nil:
		repl.Set("http.webhook.result", d.rej.Reason.Value())
		h.metrics.count(string(d.rej.Reason))
		h.logRejection(r, repl, d.rej)
	case d.handshake:
		repl.Set("http.webhook.result", resultHandshake)
		h.metrics.count(resultHandshake)
	case d.duplicate:
		repl.Set("http.webhook.result", resultDuplicate)
		h.metrics.count(resultDuplicate)
	default:
		repl.Set("http.webhook.result", resultVerified)
		h.metrics.count(resultVerified)
	}

	switch {
	case d.rej != nil && h.Mode != ModeReport:
		gate.SetRefused(r.Context(), d.rej.Reason)
		if d.body == nil || d.body.rest != nil {
			// Refused before the whole body was read.
			gate.CloseUnread(w, r)
		}
		if h.bare && h.OnReject != gate.OnRejectError {
			for name, values := range d.rej.Header {
				w.Header()[name] = values
			}
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(d.rej.Reason.Status())
			return nil
		}
		return gate.Respond(w, d.rej, h.OnReject)
	case d.handshake && h.answerHS:
		return h.hs.answer(w, d.challenge, d.key)
	case d.confirmed:
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		_, err := io.WriteString(w, "subscription confirmed\n")
		return err
	case d.duplicate:
		return writeDuplicate(w, d.id)
	}
	h.passOn(w, r)
	if d.claimed {
		return h.serveClaimed(w, r, next, &d)
	}
	return next.ServeHTTP(w, r)
}

// passOn readies a request that goes on to the next handler.
func (h *Handler) passOn(w http.ResponseWriter, r *http.Request) {
	if h.stripSig {
		r.Header.Del(h.verifier.scheme.SignatureHeader)
	}
}

// delivery is what check finds out about one request.
type delivery struct {
	// rej is the first rejection, nil for a verified request.
	rej *Rejection
	// body is the buffered body, once read.
	body *body
	// id is the delivery id the sender gave (header or body), if any.
	id string
	// dedupKey identifies the delivery for dedup: the sender's id or,
	// without one, the MAC that matched. Empty when neither exists (a
	// token scheme signs nothing), so the delivery cannot be deduplicated.
	dedupKey string
	// err is set when the body could not be read at all.
	err error
	// handshake: the request is the provider's handshake, answered with
	// challenge (and key, for answers computed with one) when the
	// handler answers handshakes, passed on otherwise; never deduplicated.
	handshake bool
	challenge string
	key       []byte
	// confirmed: the gate confirmed an SNS subscription itself.
	confirmed bool
	// verified: the signature checked out (whatever came after it).
	verified bool
	// With dedup: claimed is true when this request holds the claim
	// (under token), duplicate when the delivery was already delivered.
	claimed, duplicate bool
	token              uint64
}

// check runs every verification step in order of cost and fills in d.
func (h *Handler) check(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, d *delivery) {
	// Before anything is read: a request from outside the sender's
	// addresses is refused with its body unread (handshakes included:
	// they come from the same senders).
	if h.ips != nil {
		if d.rej = h.ips.check(r); d.rej != nil {
			return
		}
	}
	if h.enroll != nil && h.hs.mayBeEnrollment(r, h.verifier.scheme.SignatureHeader) {
		h.enrollHandshake(r, d)
		return
	}
	if h.hs != nil && !h.hs.Signed {
		if m, ok := h.hs.matchUnsigned(r); ok {
			h.unsignedHandshake(m, d)
			return
		}
	}
	if !h.methodAllowed(r.Method) && !(h.hs != nil && h.hs.mayBeSigned(r)) {
		d.rej = h.methodRejection(r.Method)
		return
	}
	if r.ContentLength > h.maxBody {
		d.rej = tooLarge(h.maxBody)
		return
	}
	if h.custom != nil {
		h.checkCustom(w, r, repl, d)
		return
	}
	scheme := h.verifier.scheme
	if scheme.EventHeader != "" {
		if ev := r.Header.Get(scheme.EventHeader); ev != "" {
			repl.Set("http.webhook.event", ev)
		}
	}
	now := h.now()
	v := h.verifier
	if h.enroll != nil {
		// A delivery to an enrolled webhook's URL is verified with its
		// learned secret alone.
		if tok, ok := enrollToken(r, h.hs.EnrollParam); ok {
			if v, d.rej = h.enroll.verifierFor(r, tok, now); d.rej != nil {
				return
			}
		}
	}
	ver, rej := v.begin(r, now)
	defer ver.Release()
	// With v1 secrets and v1a keys, each entry kind has its verifier;
	// either one matching is enough.
	var alt *Verification
	if h.alt != nil {
		a, arej := h.alt.begin(r, now)
		defer a.Release()
		switch {
		case arej != nil:
		case rej != nil:
			ver, rej = a, nil
		default:
			alt = a
		}
	}
	if ver.ID != "" {
		repl.Set("http.webhook.id", ver.ID)
	}
	if ver.Timestamp != "" {
		repl.Set("http.webhook.timestamp", ver.Timestamp)
	}
	if rej != nil {
		d.rej = rej
		return
	}
	d.body, d.rej, d.err = h.readBody(w, r)
	if d.rej != nil || d.err != nil {
		return
	}
	start := time.Now()
	idx, rej := ver.finish(d.body.buf)
	if rej != nil && alt != nil {
		if aidx, arej := alt.finish(d.body.buf); arej == nil {
			ver, idx, rej = alt, aidx, nil
		}
	}
	h.metrics.verify.Observe(time.Since(start).Seconds())
	if rej != nil {
		d.rej = rej
		return
	}
	if ver.v.scheme.TimestampField != "" {
		repl.Set("http.webhook.timestamp", ver.Timestamp)
	}
	if ver.v == h.alt {
		idx += len(h.Secrets) // secret_index counts the secrets, then the public keys
	}
	if idx < len(h.metrics.secrets) {
		h.metrics.secrets[idx].Inc()
	}
	repl.Set("http.webhook.secret_index", idx)
	d.verified = true
	if h.hs != nil && h.hs.Signed {
		if c, ok := h.hs.matchVerified(r, d.body.buf); ok {
			d.handshake, d.challenge = true, c
			if idx < len(ver.v.keys) {
				d.key = ver.v.keys[idx]
			}
			return
		}
	}
	if !h.methodAllowed(r.Method) {
		// Let in only as a possible signed handshake (Okta's GET), it
		// turned out not to be one in its documented shape: the
		// methods setting applies, as to any delivery.
		d.rej = h.methodRejection(r.Method)
		return
	}
	d.id = ver.ID
	idSigned := ver.v.scheme.idHeaderSigned()
	if h.idField != "" && d.id == "" {
		if bodyID, ok := bodyString(d.body.buf, h.idField); ok {
			if len(bodyID) > MaxDeliveryIDLength {
				d.rej = deliveryIDTooLong
				return
			}
			d.id = bodyID
			idSigned = ver.v.scheme.coversBody()
			repl.Set("http.webhook.id", d.id)
		}
	}
	if h.evField != "" {
		if ev, ok := bodyString(d.body.buf, h.evField); ok {
			repl.Set("http.webhook.event", ev)
		}
	}
	if h.dedup != nil {
		// See dedupkey.go: only what the signature covers decides that
		// two requests are one delivery.
		switch mac := ver.MAC(); {
		case d.id != "" && idSigned:
			d.dedupKey = signedIDKey(d.id)
		case d.id != "":
			d.dedupKey = unsignedIDKey(d.id, d.body.buf)
		case mac != nil:
			// No delivery id: the MAC that matched identifies the
			// signed payload, whatever the header's spelling.
			d.dedupKey = keyMAC + string(mac)
		}
	}
}

// readBody reads the body under the handler's read deadline.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) (*body, *Rejection, error) {
	deadline := setReadDeadline(w, time.Now().Add(h.readTimeout))
	b, rej, err := readBody(r, h.maxBody)
	if deadline {
		// Whatever reads next (report mode's remainder, the server's
		// next request) runs on its own deadlines.
		setReadDeadline(w, time.Time{})
	}
	return b, rej, err
}

// setReadDeadline sets the connection's read deadline through w and the
// writers it wraps, as http.ResponseController does but without
// allocating an error where none supports it (a test recorder). HTTP/1
// and HTTP/2 support it; elsewhere the body has no deadline of its own.
func setReadDeadline(w http.ResponseWriter, t time.Time) bool {
	for {
		switch u := w.(type) {
		case interface{ SetReadDeadline(time.Time) error }:
			return u.SetReadDeadline(t) == nil
		case interface{ Unwrap() http.ResponseWriter }:
			w = u.Unwrap()
		default:
			return false
		}
	}
}

// methodRejection is the 405 for a method outside Methods, with Allow.
func (h *Handler) methodRejection(method string) *Rejection {
	rej := reject(ReasonMethodNotAllowed, "the method "+strconv.Quote(method)+" is not allowed here")
	rej.SetHeader("Allow", h.allow)
	return rej
}

func (h *Handler) methodAllowed(m string) bool {
	for _, allowed := range h.Methods {
		if m == allowed {
			return true
		}
	}
	return false
}

// logRejection writes one line per rejection, sampled: past
// gate.DefaultLogsPerSecond lines a second they are counted instead, and the
// next line written says how many were suppressed. A line names the
// delivery but never includes a secret, a signature or the body.
func (h *Handler) logRejection(r *http.Request, repl *caddy.Replacer, rej *Rejection) {
	ce, suppressed := h.rejLogs.Check(h.logger, zapcore.InfoLevel, "webhook rejected", h.now())
	if ce == nil {
		return
	}
	id, _ := repl.GetString("http.webhook.id")
	secretIndex, _ := repl.GetString("http.webhook.secret_index")
	clientIP, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	ce.Write(
		zap.String("provider", h.label),
		zap.String("reason", string(rej.Reason)),
		zap.String("detail", rej.Detail),
		zap.String("id", id),
		zap.String("client_ip", clientIP),
		zap.String("method", r.Method),
		zap.String("uri", gate.RedactQuery(r.RequestURI, h.secretParams())),
		zap.String("secret_index", secretIndex),
		zap.Bool("report_only", h.Mode == ModeReport),
		suppressed,
	)
}

// secretParams are the query parameters that carry a secret for this
// handler (Meta's hub.verify_token): never logged.
func (h *Handler) secretParams() []string {
	if h.hs == nil || h.hs.TokenParam == "" {
		return nil
	}
	return []string{h.hs.TokenParam}
}

// RedactURL returns a URL or request target with the values of the query
// parameters that carry a secret for this handler replaced (the verify
// command prints URLs).
func (h *Handler) RedactURL(u string) string { return gate.RedactQuery(u, h.secretParams()) }

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

// checkCustom verifies a delivery of a sender whose keys are fetched.
func (h *Handler) checkCustom(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, d *delivery) {
	// A handshake in the body that comes without the sender's
	// credential (monday.com's challenge): a small body, read, and
	// answered only in its exact shape; anything else is refused as
	// unsigned.
	if h.hs != nil && h.hs.mayBeBodyChallenge(r) {
		if d.body, d.rej, d.err = h.readBody(w, r); d.rej != nil || d.err != nil {
			return
		}
		if c, ok := h.hs.matchBody(d.body.buf); ok {
			d.handshake, d.challenge = true, c
			return
		}
	}
	if d.rej = h.custom.begin(r); d.rej != nil {
		return
	}
	if d.body == nil {
		if d.body, d.rej, d.err = h.readBody(w, r); d.rej != nil || d.err != nil {
			return
		}
	}
	start := time.Now()
	id, ev, rej := h.custom.verify(r.Context(), r, d.body.buf, h.now())
	h.metrics.verify.Observe(time.Since(start).Seconds())
	if rej == errConfirmed {
		d.handshake, d.confirmed = true, true
		return
	}
	if rej != nil {
		d.rej = rej
		return
	}
	if len(id) > MaxDeliveryIDLength {
		d.rej = deliveryIDTooLong
		return
	}
	d.verified = true
	if h.hs != nil {
		// The same handshake with the credential, verified.
		if c, ok := h.hs.matchBody(d.body.buf); ok {
			d.handshake, d.challenge = true, c
			return
		}
	}
	if id != "" {
		d.id = id
		repl.Set("http.webhook.id", id)
		if h.dedup != nil {
			if h.custom.idSigned() {
				d.dedupKey = signedIDKey(id)
			} else {
				d.dedupKey = unsignedIDKey(id, d.body.buf)
			}
		}
	}
	if ev != "" {
		repl.Set("http.webhook.event", ev)
	}
}

// provisionHandshake sets up the preset's handshake: answered here
// unless handshake is off or the handler only reports, with Meta's
// verify_token resolved like a secret.
func (h *Handler) provisionHandshake(p Preset) error {
	h.hs = p.Handshake
	if h.hs == nil {
		return nil
	}
	h.answerHS = (h.Handshake == nil || *h.Handshake) && h.Mode != ModeReport
	if h.VerifyToken != "" {
		val, err := resolveKeyText(caddy.NewReplacer(), "verify_token", 0, h.VerifyToken)
		if err != nil {
			return err
		}
		sum := sha256.Sum256([]byte(val))
		h.verifyToken = &sum
	} else if h.hs.TokenParam != "" && h.answerHS {
		h.logger.Warn("no verify_token: the provider's verification request will be refused; set verify_token, or handshake off to pass it to the backend",
			zap.String("provider", h.label))
	}
	return nil
}

// unsignedHandshake decides an unsigned handshake recognised by its
// shape: passed on as it came when the handler does not answer
// handshakes; otherwise answered, after its verify token is checked where
// it carries one. X's CRC answer is computed with the first secret.
func (h *Handler) unsignedHandshake(m unsignedMatch, d *delivery) {
	d.handshake = true
	if !h.answerHS {
		return
	}
	if h.hs.TokenParam != "" {
		if h.verifyToken == nil {
			d.rej = noVerifyToken
			return
		}
		sum := sha256.Sum256([]byte(m.token))
		if !hmac.Equal(sum[:], h.verifyToken[:]) {
			d.rej = verifyTokenMismatch
			return
		}
	}
	d.challenge = m.challenge
	if h.hs.Answer == AnswerCRC {
		d.key = h.verifier.keys[0]
	}
}

var (
	noVerifyToken       = reject(ReasonSignatureMissing, "no verify_token is configured, so the verification request cannot be checked")
	verifyTokenMismatch = reject(ReasonSignatureInvalid, "the verify token does not match")
)

// handshakeNames lists the presets that have a handshake.
func handshakeNames() []string {
	var names []string
	for _, p := range Catalogue() {
		if p.Handshake != nil {
			names = append(names, p.Name)
		}
	}
	return names
}
