package webhookauth

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Verifier checks requests against one scheme and an ordered list of keys
// (several during a secret rotation; any one matching is enough). It is
// safe for concurrent use and, once warm, verifies without allocating: MAC
// states and scratch space are pooled and reset between requests.
type Verifier struct {
	scheme    *Scheme
	keys      [][]byte
	pubs      []crypto.PublicKey  // asymmetric algorithms
	digests   [][sha256.Size]byte // token algorithm: sha256 of each secret
	tolerance time.Duration
	pool      sync.Pool
}

// NewVerifier returns a Verifier for scheme with the given keys, which must
// already be decoded (see SecretEncoding.Key). tolerance is the replay
// window in both directions; 0 disables the check.
func NewVerifier(scheme *Scheme, keys [][]byte, tolerance time.Duration) *Verifier {
	v := &Verifier{scheme: scheme, keys: keys, tolerance: tolerance}
	if scheme.Algorithm == AlgorithmToken {
		for _, k := range keys {
			v.digests = append(v.digests, sha256.Sum256(k))
		}
	}
	v.pool.New = func() any {
		st := &Verification{v: v, scratch: make([]byte, 0, 256)}
		if scheme.newHash != nil {
			st.macs = make([]hash.Hash, len(keys))
			for i, k := range keys {
				if scheme.Algorithm == AlgorithmSHA256 {
					st.macs[i] = scheme.newHash() // the key goes in first, per request
				} else {
					st.macs[i] = hmac.New(scheme.newHash, k)
				}
				if scheme.SettingsHeader != "" {
					st.macs256 = append(st.macs256, hmac.New(sha256.New, k))
				}
			}
		}
		return st
	}
	return v
}

// NewPublicKeyVerifier returns a Verifier for an asymmetric scheme with
// the given public keys (see ParsePublicKey), tried in order.
func NewPublicKeyVerifier(scheme *Scheme, pubs []crypto.PublicKey, tolerance time.Duration) *Verifier {
	v := &Verifier{scheme: scheme, pubs: pubs, tolerance: tolerance}
	v.pool.New = func() any {
		return &Verification{v: v, scratch: make([]byte, 0, 256), digest: sha256.New()}
	}
	return v
}

// Scheme returns the verifier's scheme.
func (v *Verifier) Scheme() *Scheme { return v.scheme }

// Verification is one request going through a Verifier: Begin checks what
// can be checked from the headers alone, Finish checks the MAC over the
// body. Release returns it to the pool; it must not be used after that.
type Verification struct {
	v       *Verifier
	macs    []hash.Hash
	cur     [64]byte // the MAC being computed
	scratch []byte
	cands   candidates
	values  payloadValues
	// matched is the index of the key whose MAC matched (-1: none), and
	// sum holds that MAC.
	matched int
	sum     [64]byte
	// first holds the first item's MAC of a multi-item body, and items
	// digests every item's MAC in order (finishJSON).
	first [64]byte
	items hash.Hash
	now   time.Time
	// isForm: the body is form-encoded; bodyHash: the hex SHA-256 the
	// signed URL says the body has (Twilio's bodySHA256), if any.
	isForm   bool
	bodyHash string
	// form canonicalises a form body into formOut (see {form}); field
	// holds a signature or token read from a JSON body, unescaped.
	form    formCanon
	formOut []byte
	field   []byte
	// sha256: the request's settings header says HMAC-SHA256, so macs256
	// (one per key) verify it.
	sha256  bool
	macs256 []hash.Hash
	// For asymmetric algorithms: the SHA-256 state, and the whole signed
	// payload (ed25519 signs the message itself, not a digest).
	digest hash.Hash
	msg    appender

	// Timestamp is the request's timestamp as sent, and ID its delivery
	// id, when the scheme has them.
	Timestamp string
	ID        string
}

// Verify checks a whole request in one call, as Standard Webhooks'
// libraries do: r's headers, its body (already read), at time now. It
// returns the index of the key that matched, or an error that is a
// *Rejection carrying the stable reason (see AsRejection).
func (v *Verifier) Verify(r *http.Request, body []byte, now time.Time) (int, error) {
	st, err := v.Begin(r, now)
	defer st.Release()
	if err != nil {
		return -1, err
	}
	return st.Finish(body)
}

// Begin starts verifying r at time now: see begin. The error, if any, is
// a *Rejection. The Verification must be released either way.
func (v *Verifier) Begin(r *http.Request, now time.Time) (*Verification, error) {
	st, rej := v.begin(r, now)
	return st, errOf(rej)
}

// Finish checks the signature over body: see finish. The error, if any,
// is a *Rejection.
func (st *Verification) Finish(body []byte) (int, error) {
	i, rej := st.finish(body)
	return i, errOf(rej)
}

// errOf turns a rejection into an error without making a nil rejection a
// non-nil error.
func errOf(rej *Rejection) error {
	if rej == nil {
		return nil
	}
	return rej
}

// begin starts verifying r at time now. It parses the signature header and
// checks the timestamp against the replay window, so that requests that
// cannot be valid are refused before their body is read.
func (v *Verifier) begin(r *http.Request, now time.Time) (*Verification, *Rejection) {
	st := v.pool.Get().(*Verification)
	// Nothing of the previous request may survive an early return.
	st.Timestamp, st.ID, st.matched, st.now = "", "", -1, now
	st.values = payloadValues{}
	st.sha256, st.isForm, st.bodyHash = false, false, ""
	st.cands.reset()
	s := v.scheme
	if s.SignatureField == "" { // else the signature is in the body: see finishJSON
		if s.SettingsHeader != "" {
			if rej := st.readSettings(r.Header[s.SettingsHeader]); rej != nil {
				return st, rej
			}
		}
		st.cands.macSize = 0
		if st.sha256 {
			st.cands.macSize = sha256.Size
		}
		if rej := s.parseSignature(r.Header[s.SignatureHeader], &st.cands); rej != nil {
			return st, rej
		}
		for _, rh := range s.requiredHeaders {
			if vals := r.Header.Values(rh.Name); len(vals) != 1 || vals[0] != rh.Value {
				return st, reject(ReasonSignatureMalformed, "the "+rh.Name+" header is not "+rh.Value)
			}
		}
		for _, name := range s.moreSigHeaders {
			if rej := s.addHeaderSignatures(r.Header[name], name, &st.cands); rej != nil {
				return st, rej
			}
		}
	}
	for _, name := range s.signedHeaders {
		if len(r.Header[name]) > 1 {
			// The MAC covers one value; a second one would reach the
			// backend unverified.
			return st, reject(ReasonSignatureMalformed, "the "+name+" header, which the signature covers, is sent more than once")
		}
	}
	st.values = payloadValues{method: r.Method, header: r.Header}
	if s.hasTimestamp() {
		if rej := st.checkTimestamp(r); rej != nil {
			return st, rej
		}
	}
	if s.IDHeader != "" {
		ids := r.Header[s.IDHeader]
		if len(ids) > 1 {
			return st, reject(ReasonSignatureMalformed, "the "+s.IDHeader+" header is sent more than once")
		}
		if len(ids) == 1 {
			if len(ids[0]) > MaxDeliveryIDLength {
				return st, deliveryIDTooLong
			}
			st.ID = ids[0]
		} else if s.signsID {
			return st, reject(ReasonSignatureMalformed, "the request has no "+s.IDHeader+" header, which the signature covers")
		}
	}
	st.values.id = st.ID
	st.values.timestamp = st.Timestamp
	if s.signsURL {
		st.values.url = s.requestURL(r)
	}
	if s.signsPath && r.URL != nil {
		st.values.path = requestPath(r)
	}
	if s.signedHeaderList != "" {
		if rej := s.checkSignedHeaderList(r.Header); rej != nil {
			return st, rej
		}
	}
	if s.signsForm {
		st.isForm = isFormContentType(r.Header.Get("Content-Type"))
	}
	if s.BodyHashQuery != "" && r.URL != nil {
		hash, n := queryParam(r.URL.RawQuery, s.BodyHashQuery)
		switch {
		case n > 1:
			return st, reject(ReasonSignatureMalformed, "the URL carries "+s.BodyHashQuery+" more than once")
		case n == 1 && hash == "":
			return st, reject(ReasonSignatureMalformed, "the URL's "+s.BodyHashQuery+" is empty or not decodable")
		}
		st.bodyHash = hash
	}
	return st, nil
}

// isFormContentType reports whether a Content-Type names a form-encoded
// body: its media type, before any parameters, in any letter case.
func isFormContentType(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded")
}

// queryParam returns the value of the query parameter name in a raw query
// and how many times it appears, decoding as net/url's Query does. A
// value that does not decode is "".
func queryParam(raw, name string) (string, int) {
	var val string
	n := 0
	for raw != "" {
		var param string
		param, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(param, "=")
		if strings.ContainsAny(k, "%+") {
			k, _ = url.QueryUnescape(k)
		}
		if k != name {
			continue
		}
		n++
		if strings.ContainsAny(v, "%+") {
			var err error
			if v, err = url.QueryUnescape(v); err != nil {
				v = ""
			}
		}
		val = v
	}
	return val, n
}

// checkSignedHeaderList checks the list of signed headers a request
// carries (Contentful's x-contentful-signed-headers): present once, no
// name repeated, each named header sent at most once, and the timestamp
// header among them, so that the time the window checks is signed.
func (s *Scheme) checkSignedHeaderList(h http.Header) *Rejection {
	names, ok := signedHeaderNames(h, s.signedHeaderList)
	if !ok {
		return reject(ReasonSignatureMalformed, "the "+s.signedHeaderList+" header is missing, repeated, or lists a header twice")
	}
	for _, n := range names {
		if len(h.Values(n)) > 1 {
			return reject(ReasonSignatureMalformed, "a header the signature covers is sent more than once")
		}
	}
	if s.TimestampHeader != "" && !slices.Contains(names, strings.ToLower(s.TimestampHeader)) {
		return reject(ReasonSignatureMalformed, "the "+s.signedHeaderList+" header does not list the timestamp header")
	}
	return nil
}

// maxPooledMsg is the largest ed25519 message buffer kept for reuse.
const maxPooledMsg = 1 << 20

// MaxDeliveryIDLength is the longest delivery id accepted, in bytes.
// Providers' ids are UUIDs or similar (under 64 bytes); a longer one is
// refused with delivery_id_invalid rather than logged and remembered.
const MaxDeliveryIDLength = 256

var deliveryIDTooLong = reject(ReasonDeliveryIDInvalid, "the delivery id is longer than "+strconv.Itoa(MaxDeliveryIDLength)+" bytes")

func (st *Verification) checkTimestamp(r *http.Request) *Rejection {
	s := st.v.scheme
	var ts string
	if s.timestampInSignature() {
		ts = st.cands.timestamp
		if ts == "" {
			return reject(ReasonTimestampInvalid, "the "+s.SignatureHeader+" header has no "+s.TimestampKey+"= timestamp")
		}
	} else {
		vals := r.Header[s.TimestampHeader]
		switch {
		case len(vals) == 0 || vals[0] == "":
			return reject(ReasonTimestampInvalid, "the request has no "+s.TimestampHeader+" header")
		case len(vals) > 1:
			return reject(ReasonTimestampInvalid, "the "+s.TimestampHeader+" header is sent more than once")
		}
		ts = vals[0]
	}
	return st.checkTime(ts)
}

// checkTime parses the timestamp as sent and checks it against the
// replay window.
func (st *Verification) checkTime(ts string) *Rejection {
	s := st.v.scheme
	if s.TimestampIsNonce {
		if len(ts) > 64 {
			return reject(ReasonTimestampInvalid, "the nonce is longer than 64 bytes")
		}
		st.Timestamp = ts // signed, not a time: no window
		return nil
	}
	t, ok := s.parseTimestamp(ts)
	if !ok {
		return reject(ReasonTimestampInvalid, "the timestamp is not a valid "+string(s.TimestampFormat)+" time")
	}
	st.Timestamp = ts
	if tol := st.v.tolerance; tol > 0 {
		if d := st.now.Sub(t); d > tol || d < -tol {
			return reject(ReasonTimestampOutOfWindow, "the timestamp is more than "+tol.String()+" away from the server's clock")
		}
	}
	return nil
}

// finish checks the signature over body and returns the index of the
// secret that matched.
func (st *Verification) finish(body []byte) (int, *Rejection) {
	v := st.v
	if v.scheme.Algorithm.asymmetric() {
		return st.finishAsym(body)
	}
	if v.scheme.SignatureField != "" {
		return st.finishJSON(body)
	}
	if v.scheme.Algorithm == AlgorithmToken {
		for i := range v.digests {
			if hmac.Equal(st.cands.sig[0][:sha256.Size], v.digests[i][:]) {
				return i, nil
			}
		}
		return -1, tokenMismatch
	}
	if v.scheme.ObjectBody {
		if i := skipSpace(body, 0); i >= len(body) || body[i] != '{' {
			return -1, notAnObject
		}
	}
	if rej := st.prepare(body); rej != nil {
		return -1, rej
	}
	st.values.body = body
	st.macAll()
	if st.matched < 0 && v.scheme.URLPortVariants {
		// The sender may have signed the URL with or without its
		// default port (Twilio's libraries accept both).
		if alt, ok := toggleDefaultPort(st.values.url); ok {
			st.values.url = alt
			st.macAll()
		}
	}
	st.values.body = nil
	if st.matched < 0 {
		return -1, signatureMismatch
	}
	if rej := st.checkBodyTimestamp(body); rej != nil {
		st.matched = -1
		return -1, rej
	}
	return st.matched, nil
}

// checkBodyTimestamp checks a timestamp carried in the signed body, once
// the signature has shown the body to be the sender's.
func (st *Verification) checkBodyTimestamp(body []byte) *Rejection {
	s := st.v.scheme
	if s.TimestampField == "" {
		return nil
	}
	ts, ok := bodyTime(body, s.TimestampField)
	if !ok || ts == "" {
		return reject(ReasonTimestampInvalid, "the body has no single "+s.TimestampField+" member")
	}
	return st.checkTime(ts)
}

// readSettings reads a settings header such as
// "key=…,algorithm=HMAC_SHA256" (Twilio's SharedKey).
func (st *Verification) readSettings(vals []string) *Rejection {
	s := st.v.scheme
	if len(vals) == 0 {
		return nil
	}
	if len(vals) > 1 {
		return reject(ReasonSignatureMalformed, "the "+s.SettingsHeader+" header is sent more than once")
	}
	for _, entry := range strings.Split(vals[0], ",") {
		if alg, ok := cutKey(strings.TrimSpace(entry), "algorithm"); ok {
			switch alg {
			case "HMAC_SHA256":
				st.sha256 = true
				return nil
			case "HMAC_SHA1":
				return nil
			}
			return reject(ReasonSignatureMalformed, "the "+s.SettingsHeader+" header names an unknown algorithm")
		}
	}
	return nil
}

// macAll computes the MAC under each key and records the first key whose
// MAC equals a candidate.
func (st *Verification) macAll() {
	v := st.v
	size, macs := v.scheme.macSize, st.macs
	if st.sha256 {
		size, macs = sha256.Size, st.macs256
	}
	for i, mac := range macs {
		mac.Reset()
		if v.scheme.Algorithm == AlgorithmSHA256 {
			mac.Write(v.keys[i])
		}
		v.scheme.Payload.writeTo(mac, &st.values, &st.scratch)
		mac.Sum(st.cur[:0])
		for j := 0; j < st.cands.n; j++ {
			if hmac.Equal(st.cur[:size], st.cands.sig[j][:size]) && st.matched < 0 {
				st.matched = i
				st.sum = st.cur
			}
		}
	}
}

// prepare does what the body must pass before its signature is checked:
// the hash a signed URL carries for it (Twilio's bodySHA256), and the
// form parameters {form} writes.
func (st *Verification) prepare(body []byte) *Rejection {
	s := st.v.scheme
	if st.bodyHash != "" {
		sum := sha256.Sum256(body)
		var want [sha256.Size]byte
		if n, ok := EncodingHex.decode(want[:], st.bodyHash); !ok || n != sha256.Size || !hmac.Equal(sum[:], want[:]) {
			return bodyHashMismatch
		}
	}
	if s.signsForm && st.bodyHash == "" && !st.isForm && len(body) > 0 {
		// The signature covers the body only through its form
		// parameters ({form}), and this body is not form-encoded (or
		// says it is not): nothing signed it, so it must not pass as
		// verified (Twilio, Mandrill, and any generic {form} scheme).
		if s.BodyHashQuery != "" {
			return reject(ReasonSignatureMalformed, "the body is neither form-encoded nor covered by the URL's "+s.BodyHashQuery)
		}
		return reject(ReasonSignatureMalformed, "the body is not form-encoded (application/x-www-form-urlencoded), and this sender signs only form parameters")
	}
	if st.isForm {
		var ok bool
		if st.formOut, ok = st.form.appendSorted(st.formOut[:0], body); !ok {
			return reject(ReasonSignatureMalformed, "the form-encoded body does not decode")
		}
		st.values.form = st.formOut
	}
	return nil
}

var notAnObject = reject(ReasonSignatureMalformed, "the body is not a JSON object, and this sender signs only JSON objects")

var bodyHashMismatch = reject(ReasonSignatureInvalid, "the body does not match the hash the signed URL carries")

// toggleDefaultPort adds the scheme's default port to an https or http
// URL without one, or removes it from one that has it.
func toggleDefaultPort(u string) (string, bool) {
	for _, d := range []struct{ scheme, port string }{{"https://", ":443"}, {"http://", ":80"}} {
		rest, ok := strings.CutPrefix(u, d.scheme)
		if !ok {
			continue
		}
		host, path := rest, ""
		if i := strings.IndexAny(rest, "/?"); i >= 0 {
			host, path = rest[:i], rest[i:]
		}
		if h, ok := strings.CutSuffix(host, d.port); ok {
			return d.scheme + h + path, true
		}
		if strings.Contains(host, ":") && !strings.HasSuffix(host, "]") {
			return "", false // another port: nothing to toggle
		}
		return d.scheme + host + d.port + path, true
	}
	return "", false
}

// finishAsym checks the signature with the public keys.
func (st *Verification) finishAsym(body []byte) (int, *Rejection) {
	v := st.v
	alg := v.scheme.Algorithm
	if rej := st.prepare(body); rej != nil {
		return -1, rej
	}
	st.values.body = body
	var payload, digest []byte
	if alg == AlgorithmEd25519 {
		st.msg = st.msg[:0]
		v.scheme.Payload.writeTo(&st.msg, &st.values, &st.scratch)
		payload = st.msg
	} else {
		st.digest.Reset()
		v.scheme.Payload.writeTo(st.digest, &st.values, &st.scratch)
		digest = st.digest.Sum(st.cur[:0])
	}
	st.values.body = nil
	for i, pub := range v.pubs {
		for j := 0; j < st.cands.n && st.matched < 0; j++ {
			if verifyAsym(alg, pub, payload, digest, st.cands.get(j)) {
				st.matched = i
			}
		}
	}
	if st.matched < 0 {
		return -1, signatureMismatch
	}
	if rej := st.checkBodyTimestamp(body); rej != nil {
		st.matched = -1
		return -1, rej
	}
	// What identifies the delivery for dedup: the signed payload's
	// digest (an ECDSA signature is randomized, so it cannot serve).
	if alg == AlgorithmEd25519 {
		sum := sha256.Sum256(payload)
		copy(st.sum[:], sum[:])
	} else {
		copy(st.sum[:], digest)
	}
	return st.matched, nil
}

// appender is a Write target that appends to itself.
type appender []byte

func (a *appender) Write(p []byte) (int, error) {
	*a = append(*a, p...)
	return len(p), nil
}

// MAC returns what identifies the verified payload for dedup: the MAC
// that matched in Finish (the same bytes for the same signed payload and
// key, however the sender wrote the signature header: letter case, entry
// order, padding), or for a public-key scheme the SHA-256 of the signed
// payload (an ECDSA signature is randomized). Nil for token schemes,
// which sign nothing, and before a match. The caller must not keep it
// past Release.
func (st *Verification) MAC() []byte {
	if st.matched < 0 || st.v.scheme.Algorithm == AlgorithmToken {
		return nil
	}
	if st.v.scheme.Algorithm.asymmetric() {
		return st.sum[:sha256.Size] // the signed payload's digest
	}
	return st.sum[:st.v.scheme.macSize]
}

// Release returns the verification's state to its verifier's pool.
func (st *Verification) Release() {
	st.values = payloadValues{}
	if cap(st.msg) > maxPooledMsg {
		st.msg = nil // a large body's copy is not kept for reuse
	}
	if cap(st.formOut) > maxPooledMsg {
		st.formOut = nil
	}
	st.form.release()
	st.v.pool.Put(st)
}

// requestURL is the full URL the sender addressed, as signed by schemes
// that cover it: the original request, before any rewrite.
func (s *Scheme) requestURL(r *http.Request) string {
	if s.PublicURL != "" {
		// Behind a proxy that terminates TLS or changes the port: the
		// configured origin, then the path and query as they came.
		return s.PublicURL + r.URL.RequestURI()
	}
	return requestURL(r)
}

func requestURL(r *http.Request) string {
	if r.URL != nil && r.URL.IsAbs() && !strings.HasPrefix(r.RequestURI, "/") {
		// Absolute form (GET http://host/path HTTP/1.1): the request
		// target is already the whole URL the sender addressed.
		return r.RequestURI
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.RequestURI
}

// The rejections of a well-formed signature that matches no secret: what
// a flood of forged requests gets, so they are made once. Never modify
// them (no header is ever set on a signature_invalid rejection).
var (
	signatureMismatch = reject(ReasonSignatureInvalid, "the signature does not match the body with any configured secret")
	tokenMismatch     = reject(ReasonSignatureInvalid, "the token does not match any configured secret")
)
