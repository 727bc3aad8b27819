package webhookauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/webhookauth/caddy-webhookauth/internal/gate"
)

// Asana sets a webhook's secret in its handshake: when a webhook is
// created, Asana POSTs to the target with X-Hook-Secret and wants it
// echoed; every later delivery is signed with it (X-Hook-Signature). A
// gate that learned whatever secret a handshake offered would let anyone
// who can reach the endpoint set the key it verifies with. So the gate
// learns a secret only from a handshake the operator armed:
//
//  1. `caddy webhook asana arm` (the admin API) makes a one-time
//     enrollment token, 128 random bits, good for a few minutes; only
//     its SHA-256 is stored.
//  2. The operator creates the webhook in Asana with the target URL
//     carrying it: …/hooks/asana?asana_enroll=<token>. The token travels
//     to Asana and back over TLS only.
//  3. The handshake that carries an armed token is answered, once: its
//     secret is stored under the token's hash with the path it came to,
//     and the token is spent. Any other handshake is refused (401), so a
//     race can at worst make the operator's webhook creation fail, never
//     install a secret of the attacker's.
//  4. Deliveries come to the same URL: the token names the secret to
//     verify with, at that path only.
//
// Enrollments live in Caddy's storage (shared by a fleet that shares its
// certificates), so a restart or another server knows them.

// asanaKeyPrefix is where enrollments live in Caddy's storage.
const asanaKeyPrefix = "webhook/asana"

// DefaultArmTTL is how long an armed enrollment token stays good.
const DefaultArmTTL = 10 * time.Minute

// MaxArmTTL bounds an armed token's life.
const MaxArmTTL = time.Hour

func armedKey(hash string) string    { return asanaKeyPrefix + "/armed/" + hash }
func enrolledKey(hash string) string { return asanaKeyPrefix + "/enrolled/" + hash }

// tokenHash is the stored name of an enrollment token.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

type armRecord struct {
	Expires time.Time `json:"expires"`
}

// Enrollment is a webhook's learned secret, as stored.
type Enrollment struct {
	Secret   string    `json:"secret"`
	Path     string    `json:"path"`
	Enrolled time.Time `json:"enrolled"`
}

// EnrollmentInfo is what the admin API shows of an enrollment: never
// the secret.
type EnrollmentInfo struct {
	ID       string    `json:"id"`
	Path     string    `json:"path"`
	Enrolled time.Time `json:"enrolled"`
}

// ArmedToken is a fresh enrollment token.
type ArmedToken struct {
	Param   string    `json:"param"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// errNotArmed: the handshake's token is unknown, expired or spent.
var errNotArmed = errors.New("not armed")

// asanaStorage is the storage of the configured asana handlers, for the
// admin API (nil when none is configured).
var asanaStorage struct {
	sync.Mutex
	s     certmagic.Storage
	users int
}

func useAsanaStorage(s certmagic.Storage) {
	asanaStorage.Lock()
	defer asanaStorage.Unlock()
	asanaStorage.s = s
	asanaStorage.users++
}

func releaseAsanaStorage() {
	asanaStorage.Lock()
	defer asanaStorage.Unlock()
	if asanaStorage.users--; asanaStorage.users <= 0 {
		asanaStorage.s, asanaStorage.users = nil, 0
	}
}

// contextStorage is ctx's storage, or nil for a context that belongs to
// no config (caddy.Context.Storage panics on one).
func contextStorage(ctx caddy.Context) (s certmagic.Storage) {
	defer func() {
		if recover() != nil {
			s = nil
		}
	}()
	return ctx.Storage()
}

func currentAsanaStorage() certmagic.Storage {
	asanaStorage.Lock()
	defer asanaStorage.Unlock()
	return asanaStorage.s
}

// Arm makes a one-time enrollment token good for ttl.
func Arm(ctx context.Context, s certmagic.Storage, ttl time.Duration, now time.Time) (ArmedToken, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return ArmedToken{}, err
	}
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	rec := armRecord{Expires: now.Add(ttl)}
	raw, _ := json.Marshal(rec)
	if err := s.Store(ctx, armedKey(tokenHash(tok)), raw); err != nil {
		return ArmedToken{}, err
	}
	return ArmedToken{Param: asanaEnrollParam, Token: tok, Expires: rec.Expires}, nil
}

// enroll spends the armed token hash and stores secret for path under
// it. errNotArmed when the token is unknown, expired or spent.
func enroll(ctx context.Context, s certmagic.Storage, hash, secret, path string, now time.Time) error {
	key := armedKey(hash)
	if err := s.Lock(ctx, key); err != nil {
		return err
	}
	defer s.Unlock(context.WithoutCancel(ctx), key)
	raw, err := s.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return errNotArmed
	}
	if err != nil {
		return err
	}
	var rec armRecord
	if json.Unmarshal(raw, &rec) != nil || !now.Before(rec.Expires) {
		s.Delete(ctx, key)
		return errNotArmed
	}
	out, _ := json.Marshal(Enrollment{Secret: secret, Path: path, Enrolled: now})
	if err := s.Store(ctx, enrolledKey(hash), out); err != nil {
		return err
	}
	// Spent: a second handshake with the same token finds nothing.
	if err := s.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.Delete(ctx, enrolledKey(hash))
		return err
	}
	return nil
}

// ListEnrollments lists the stored enrollments, without their secrets.
func ListEnrollments(ctx context.Context, s certmagic.Storage) ([]EnrollmentInfo, error) {
	keys, err := s.List(ctx, asanaKeyPrefix+"/enrolled", false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	out := []EnrollmentInfo{}
	for _, k := range keys {
		raw, err := s.Load(ctx, k)
		if err != nil {
			continue
		}
		var e Enrollment
		if json.Unmarshal(raw, &e) != nil {
			continue
		}
		hash := k[strings.LastIndexByte(k, '/')+1:]
		out = append(out, EnrollmentInfo{ID: enrollmentID(hash), Path: e.Path, Enrolled: e.Enrolled})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Enrolled.Before(out[j].Enrolled) })
	return out, nil
}

// enrollmentID is how operators name an enrollment: the first 16 hex
// digits of its token's hash (not the token, which names it in URLs).
func enrollmentID(hash string) string { return hash[:16] }

// ForgetEnrollment removes the enrollment whose id is id; false when
// there is none.
func ForgetEnrollment(ctx context.Context, s certmagic.Storage, id string) (bool, error) {
	keys, err := s.List(ctx, asanaKeyPrefix+"/enrolled", false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	for _, k := range keys {
		hash := k[strings.LastIndexByte(k, '/')+1:]
		if len(hash) == 64 && enrollmentID(hash) == id {
			if err := s.Delete(ctx, k); err != nil {
				return false, err
			}
			enrolledCache.forget(hash)
			return true, nil
		}
	}
	return false, nil
}

// enrolledCache keeps the enrollments read from storage for a minute,
// and remembers unknown tokens for as long, so a flood of made-up tokens
// costs at most a few storage reads a second.
var enrolledCache = &enrollmentCache{entries: map[string]cachedEnrollment{}}

type enrollmentCache struct {
	mu      sync.Mutex
	entries map[string]cachedEnrollment
	// reads counts storage reads in the current second.
	second time.Time
	reads  int
}

type cachedEnrollment struct {
	e      *Enrollment // nil: not enrolled
	loaded time.Time
}

const (
	enrollmentCacheTTL  = time.Minute
	maxEnrollmentReads  = 20 // per second, for tokens not in the cache
	maxEnrollmentsCache = 4096
)

func (c *enrollmentCache) forget(hash string) {
	c.mu.Lock()
	delete(c.entries, hash)
	c.mu.Unlock()
}

// lookup returns the enrollment under hash: nil when there is none;
// an error when storage cannot say (or is asked too often).
func (c *enrollmentCache) lookup(ctx context.Context, s certmagic.Storage, hash string, now time.Time) (*Enrollment, error) {
	c.mu.Lock()
	ce, cached := c.entries[hash]
	if cached && now.Sub(ce.loaded) < enrollmentCacheTTL {
		c.mu.Unlock()
		return ce.e, nil
	}
	if sec := now.Truncate(time.Second); !sec.Equal(c.second) {
		c.second, c.reads = sec, 0
	}
	if c.reads >= maxEnrollmentReads {
		c.mu.Unlock()
		// Over budget (a flood of made-up tokens): what was known stays
		// known; a token never seen is unknown for now, and its sender
		// retries (Asana does, for a day).
		return ce.e, nil
	}
	c.reads++
	c.mu.Unlock()

	raw, err := s.Load(ctx, enrolledKey(hash))
	var e *Enrollment
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		e = new(Enrollment)
		if json.Unmarshal(raw, e) != nil || e.Secret == "" {
			e = nil
		}
	}
	c.mu.Lock()
	if len(c.entries) >= maxEnrollmentsCache {
		clear(c.entries)
	}
	c.entries[hash] = cachedEnrollment{e: e, loaded: now}
	c.mu.Unlock()
	return e, nil
}

// asanaEnrollParam is the query parameter that carries the token.
const asanaEnrollParam = "asana_enroll"

// enrollToken returns the enrollment token of r's URL: the parameter
// exactly once, in the token's alphabet.
func enrollToken(r *http.Request, param string) (string, bool) {
	if r.URL == nil || !strings.Contains(r.URL.RawQuery, param) {
		return "", false
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil || len(q[param]) != 1 {
		return "", false
	}
	tok := q[param][0]
	return tok, tok != "" && len(tok) <= 64 && CharsetToken.allows(tok)
}

// enrollments is a handler's view of the learned secrets: a verifier
// per enrollment, built from its secret.
type enrollments struct {
	storage   certmagic.Storage
	scheme    *Scheme
	tolerance time.Duration
	mu        sync.Mutex
	verifiers map[*Enrollment]*Verifier
}

// verifierFor returns the verifier for the enrollment r's token names,
// or a rejection: an unknown token, or one enrolled at another path, is
// signature_invalid; storage that cannot say is 503.
func (en *enrollments) verifierFor(r *http.Request, token string, now time.Time) (*Verifier, *Rejection) {
	e, err := enrolledCache.lookup(r.Context(), en.storage, tokenHash(token), now)
	if err != nil {
		return nil, gate.StoreUnavailable("the enrollments could not be read from storage")
	}
	if e == nil || e.Path != r.URL.Path {
		return nil, reject(ReasonSignatureInvalid, "the enrollment token names no webhook enrolled at this path")
	}
	en.mu.Lock()
	defer en.mu.Unlock()
	v, ok := en.verifiers[e]
	if !ok {
		if len(en.verifiers) >= maxEnrollmentsCache {
			clear(en.verifiers)
		}
		v = NewVerifier(en.scheme, [][]byte{[]byte(e.Secret)}, en.tolerance)
		en.verifiers[e] = v
	}
	return v, nil
}

// mayBeEnrollment reports whether r may be an enrolling handshake
// (Asana's): the method, its secret header once, and no signature.
func (hs *Handshake) mayBeEnrollment(r *http.Request, sigHeader string) bool {
	return hs.EnrollParam != "" && r.Method == hs.Method && len(r.Header.Values(hs.Header)) == 1 &&
		len(r.Header.Values(sigHeader)) == 0
}

// enrollHandshake decides an enrolling handshake: passed on when the
// handler does not answer handshakes; otherwise answered only when it
// carries an armed token, whose secret it then stores.
func (h *Handler) enrollHandshake(r *http.Request, d *delivery) {
	secret := r.Header.Get(h.hs.Header)
	if !h.hs.challengeOK(secret) {
		d.rej = reject(ReasonSignatureMalformed, "the "+h.hs.Header+" header is not a secret in the documented shape")
		return
	}
	if !h.answerHS {
		d.handshake = true
		return
	}
	tok, ok := enrollToken(r, h.hs.EnrollParam)
	if !ok {
		d.rej = reject(ReasonSignatureInvalid, "a handshake without an enrollment token: arm one with `caddy webhook asana arm` and give Asana the target URL with it")
		return
	}
	err := enroll(r.Context(), h.enroll.storage, tokenHash(tok), secret, r.URL.Path, h.now())
	switch {
	case errors.Is(err, errNotArmed):
		d.rej = reject(ReasonSignatureInvalid, "the enrollment token is not armed, has expired or was spent")
		return
	case err != nil:
		d.rej = gate.StoreUnavailable("the enrollment could not be stored")
		return
	}
	enrolledCache.forget(tokenHash(tok))
	h.logger.Info("webhook enrolled: its secret is stored", zap.String("provider", h.label), zap.String("path", r.URL.Path),
		zap.String("enrollment", enrollmentID(tokenHash(tok))))
	d.handshake, d.challenge = true, secret
}
