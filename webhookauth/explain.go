package webhookauth

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// Step is one check of an explained verification, in the order the gate
// runs them. Text never holds a secret, an expected signature or any part
// of the body: lengths, names and the request's own metadata only.
type Step struct {
	Name string
	Text string
	// Failed marks the step the verdict's rejection belongs to.
	Failed bool
}

// Explanation is the gate's verdict on one request, step by step: what
// `caddy webhook verify` prints.
type Explanation struct {
	Steps []Step
	// Result is "verified", "handshake" or the rejection reason; Status
	// the HTTP status the gate answers with (0 when it passes the
	// request on) and Detail the rejection's detail.
	Result string
	Status int
	Detail string
	// SecretIndex is the index of the configured secret or public key
	// that matched, -1 for none.
	SecretIndex int
	// Causes are the usual causes of this rejection, most likely first.
	Causes []string
}

// Verified reports whether the gate would pass the request on as a
// verified delivery (or answer it as the provider's handshake).
func (e *Explanation) Verified() bool {
	return e.Result == resultVerified || e.Result == resultHandshake
}

// Explain runs the handler's checks on r at time now, exactly as
// ServeHTTP does but without its store (no dedup claim, no rate limit),
// and explains each step. The handler must be provisioned. r's body is
// read.
func (h *Handler) Explain(r *http.Request, now time.Time) (*Explanation, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, h.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	e := &Explanation{SecretIndex: -1}
	var s *Scheme
	if h.custom != nil {
		p, _ := LookupPreset(h.label)
		e.add("scheme", "%s: %s", h.label, strings.ReplaceAll(p.Summary, "`", ""))
	} else {
		s = h.verifier.scheme
		e.add("scheme", "%s: %s, signature %s; %s", h.label, s.Algorithm, describeSignatureSource(s), describeKeys(h))
	}
	e.add("method", "%s (allowed: %s)", r.Method, h.allow)
	e.add("body", "%d bytes, Content-Type %q (limit %d bytes)", len(body), r.Header.Get("Content-Type"), h.maxBody)
	if s == nil {
		// The checks are the sender's own code (SNS's canonical
		// string, PayPal's CRC, Pub/Sub's token): the verdict's detail
		// says which failed.
		if p, _ := LookupPreset(h.label); p.Key == KeyFetched {
			e.add("keys", "fetched over HTTPS from the sender's allowlisted hosts only, then cached; the signature is checked with them")
		} else {
			e.add("keys", "%d secret(s) configured; the token's HS256 signature is checked with each", len(h.Secrets))
		}
	} else {
		describeRequest(e, s, r, body, h, now)
	}

	// The verdict: the gate's own check, on a copy of the request.
	v := r.Clone(r.Context())
	v.Body = io.NopCloser(bytes.NewReader(body))
	v.ContentLength = int64(len(body))
	repl := caddy.NewReplacer()
	v = v.WithContext(context.WithValue(v.Context(), caddy.ReplacerCtxKey, repl))
	saved := h.now
	h.now = func() time.Time { return now }
	defer func() { h.now = saved }()
	var d delivery
	h.check(httptest.NewRecorder(), v, repl, &d)
	if d.body != nil {
		d.body.release()
	}
	switch {
	case d.err != nil:
		return nil, fmt.Errorf("reading the body: %w", d.err)
	case d.rej != nil:
		e.Result, e.Status, e.Detail = string(d.rej.Reason), d.rej.Reason.Status(), d.rej.Detail
		e.Causes = usualCauses(d.rej.Reason, s)
		step := stepOf(d.rej.Reason)
		if s == nil && step != "method" && step != "body" {
			step = "keys"
		}
		e.markFailed(step)
	case d.handshake:
		e.Result = resultHandshake
	default:
		e.Result = resultVerified
		if i, ok := repl.Get("http.webhook.secret_index"); ok {
			e.SecretIndex, _ = i.(int)
		}
	}
	return e, nil
}

// UseKeySource makes Provision take the keys of the senders whose keys
// are fetched (sns, paypal, pubsub) from src instead of the webhook app:
// the verify command, which runs outside a Caddy config, has its own.
func (h *Handler) UseKeySource(src KeySource) { h.keySource = src }

// UseLogger makes Provision log to l instead of the context's logger:
// the verify command shows provisioning warnings (a short secret, say)
// as plain lines.
func (h *Handler) UseLogger(l *zap.Logger) { h.logger = l }

func (e *Explanation) add(name, format string, args ...any) {
	e.Steps = append(e.Steps, Step{Name: name, Text: fmt.Sprintf(format, args...)})
}

// markFailed marks the last step named name, or the last step.
func (e *Explanation) markFailed(name string) {
	for i := len(e.Steps) - 1; i >= 0; i-- {
		if e.Steps[i].Name == name {
			e.Steps[i].Failed = true
			return
		}
	}
	e.Steps[len(e.Steps)-1].Failed = true
}

func describeSignatureSource(s *Scheme) string {
	switch {
	case s.SignatureField != "" && s.SignatureItems != "":
		return "in each of the body's " + s.SignatureItems + " items, member " + s.SignatureField
	case s.SignatureField != "":
		return "in the body's " + s.SignatureField + " member"
	}
	where := "in the " + s.SignatureHeader + " header"
	if s.Format != FormatPlain && s.Format != "" {
		where += " (" + string(s.Format) + " format)"
	}
	return where + ", " + string(s.Encoding)
}

func describeKeys(h *Handler) string {
	switch {
	case len(h.verifier.pubs) > 0:
		return strconv.Itoa(len(h.verifier.pubs)) + " public key(s) configured"
	case len(h.verifier.keys) == 1:
		return "1 secret configured"
	}
	return strconv.Itoa(len(h.verifier.keys)) + " secrets configured (a rotation)"
}

// describeRequest adds the steps that read the request with a scheme of
// configured keys: signature, timestamp, delivery id and the signed
// payload's shape.
func describeRequest(e *Explanation, s *Scheme, r *http.Request, body []byte, h *Handler, now time.Time) {
	st, rej := h.verifier.begin(r, now)
	defer st.Release()
	if s.SignatureField == "" {
		vals := r.Header.Values(s.SignatureHeader)
		if len(vals) == 0 {
			e.add("signature", "no %s header", s.SignatureHeader)
		} else {
			lens := make([]string, 0, st.cands.n)
			for j := 0; j < st.cands.n; j++ {
				lens = append(lens, strconv.Itoa(st.cands.len[j]))
			}
			e.add("signature", "%s: %d value(s), %d byte(s); %d signature(s) parsed, decoded to %s byte(s)", s.SignatureHeader, len(vals), len(strings.Join(vals, ",")), st.cands.n, strings.Join(lens, ", "))
		}
	} else {
		e.add("signature", "read from the body when its signature is checked")
	}
	if s.hasTimestamp() || s.TimestampField != "" {
		describeTimestamp(e, s, r, body, h.verifier.tolerance, now)
	}
	if s.IDHeader != "" {
		if id := r.Header.Get(s.IDHeader); id != "" {
			e.add("id", "%s: %q", s.IDHeader, id)
		} else {
			e.add("id", "no %s header", s.IDHeader)
		}
	}
	if s.Payload.Segments != nil {
		e.add("payload", "%s", payloadShape(s, st, rej, body))
	}
	e.add("compare", "the signature is computed with each configured key and compared in constant time")
}

func describeTimestamp(e *Explanation, s *Scheme, r *http.Request, body []byte, tol time.Duration, now time.Time) {
	var ts, where string
	switch {
	case s.timestampInSignature():
		where = s.SignatureHeader + " " + s.TimestampKey + "="
		if vals := r.Header.Values(s.SignatureHeader); len(vals) == 1 {
			for rest := vals[0]; rest != ""; {
				var entry string
				entry, rest = nextEntry(rest, s.Separator)
				if v, ok := cutKey(strings.TrimSpace(entry), s.TimestampKey); ok {
					ts = v
					break
				}
			}
		}
	case s.TimestampHeader != "":
		where = s.TimestampHeader
		ts = r.Header.Get(s.TimestampHeader)
	default:
		where = "the body's " + s.TimestampField
		ts, _ = bodyTime(body, s.TimestampField)
	}
	step := Step{Name: "timestamp"}
	switch t, ok := s.parseTimestamp(ts); {
	case ts == "":
		step.Text = "no timestamp in " + where
	case s.TimestampIsNonce:
		step.Text = fmt.Sprintf("%s: %q, a nonce (signed, no window)", where, ts)
	case !ok:
		step.Text = fmt.Sprintf("%s: %q is not a %s time", where, ts, s.TimestampFormat)
	default:
		d := now.Sub(t).Round(time.Second)
		rel := d.String() + " ago"
		if d < 0 {
			rel = (-d).String() + " ahead"
		}
		window := "no window (tolerance 0)"
		if tol > 0 {
			window = "window ±" + tol.String()
			if d > tol || d < -tol {
				window += ": OUTSIDE"
			} else {
				window += ": inside"
			}
		}
		step.Text = fmt.Sprintf("%s: %q = %s, %s (%s)", where, ts, t.UTC().Format(time.RFC3339), rel, window)
	}
	e.Steps = append(e.Steps, step)
}

// payloadShape describes the bytes the scheme signs for this request:
// the template, then each piece's length, literals shown as written. The
// body's content is never shown; the URL is, since a rewritten URL is a
// usual cause of a mismatch.
func payloadShape(s *Scheme, st *Verification, rej *Rejection, body []byte) string {
	if rej != nil {
		return "template " + strconv.Quote(s.Payload.String()) + " (not built: " + rej.Detail + ")"
	}
	if st.prepare(body) != nil {
		return "template " + strconv.Quote(s.Payload.String()) + " (not built: the body does not pass its checks)"
	}
	st.values.body = body
	st.values.json = body
	defer func() { st.values.body, st.values.json = nil, nil }()
	var parts []string
	total := 0
	for _, seg := range s.Payload.Segments {
		var n counter
		var scratch []byte
		Template{Segments: []Segment{seg}}.writeTo(&n, &st.values, &scratch)
		total += int(n)
		switch seg.Kind {
		case TokenLiteral:
			parts = append(parts, strconv.Quote(seg.Text))
		case TokenURL:
			parts = append(parts, fmt.Sprintf("url %q (%d bytes)", st.values.url, n))
		case TokenBaseURL:
			parts = append(parts, fmt.Sprintf("base url %q (%d bytes)", baseURL(st.values.url), n))
		case TokenMethod:
			parts = append(parts, fmt.Sprintf("method %q", st.values.method))
		case TokenPath:
			parts = append(parts, fmt.Sprintf("path %q (%d bytes)", st.values.path, n))
		default:
			parts = append(parts, fmt.Sprintf("%s (%d bytes)", tokenName(seg), n))
		}
	}
	shape := "template " + strconv.Quote(s.Payload.String()) + " = " + strings.Join(parts, " + ") + " = " + strconv.Itoa(total) + " bytes"
	if s.SignatureItems != "" {
		shape += " (built for each item; lengths here are of the whole body)"
	}
	return shape
}

type counter int

func (c *counter) Write(p []byte) (int, error) { *c += counter(len(p)); return len(p), nil }

func tokenName(seg Segment) string {
	switch seg.Kind {
	case TokenBody:
		return "body"
	case TokenID:
		return "id"
	case TokenTimestamp:
		return "timestamp"
	case TokenForm:
		return "form parameters, sorted"
	case TokenJSON:
		return "json " + seg.Text
	case TokenHeader:
		return "header " + seg.Text
	case TokenSignedHeaders:
		return "signed headers"
	case TokenBodyJSON:
		return "body as a JSON string"
	case TokenEntryJSON:
		return "entry " + seg.Text + " as a JSON string"
	}
	return "?"
}

// stepOf is the step a rejection reason belongs to.
func stepOf(r Reason) string {
	switch r {
	case ReasonMethodNotAllowed:
		return "method"
	case ReasonBodyTooLarge, ReasonBodyTimeout:
		return "body"
	case ReasonSignatureMissing, ReasonSignatureMalformed:
		return "signature"
	case ReasonTimestampInvalid, ReasonTimestampOutOfWindow:
		return "timestamp"
	case ReasonDeliveryIDInvalid:
		return "id"
	}
	return "compare"
}

// usualCauses lists what usually makes a real provider's delivery fail
// with this reason.
func usualCauses(r Reason, s *Scheme) []string {
	switch r {
	case ReasonSignatureInvalid:
		c := []string{
			"the wrong secret: another endpoint's, the test-mode one, or one rotated at the provider and not here",
			"the secret's encoding: a whsec_ or base64 secret configured raw, or the other way round (secret_encoding)",
			"the body changed on the way: a proxy or framework re-serialised the JSON, re-encoded the form, changed the charset or added a newline",
		}
		if s != nil && s.signsURL {
			c = append(c, "the URL differs from the one the provider signed: http against https, another host or port, a rewritten path or query (see public_url)")
		}
		if s != nil && s.hasTimestamp() {
			c = append(c, "the timestamp header was rewritten after signing")
		}
		if s == nil {
			c = []string{"the message was changed on the way (a proxy re-serialised the JSON, changed the charset or added a newline)",
				"the message was not signed by the provider (a forgery, or signed with a key the provider does not publish)"}
		}
		return c
	case ReasonSignatureMissing:
		return []string{
			"a proxy or load balancer in front stripped the header",
			"the wrong provider preset: this sender signs in another header",
			"the provider has no signing secret configured for this endpoint",
		}
	case ReasonSignatureMalformed:
		if s == nil {
			return []string{
				"the key URL is not one of the provider's hosts: a forgery, or (testing) a key server of your own that the keys block does not allow",
				"the message is not in the provider's shape (a proxy rewrote it, or it comes from another sender)",
			}
		}
		return []string{
			"the wrong provider preset or signature_format for this sender",
			"the header was folded, duplicated or truncated on the way",
		}
	case ReasonTimestampOutOfWindow:
		return []string{
			"clock skew: check NTP on this server",
			"a replay of an old capture: verify it with --at set to when it was sent",
			"a delivery retried long after it was signed (raise tolerance only if the provider re-signs retries late)",
		}
	case ReasonTimestampInvalid:
		return []string{"the timestamp header is missing or in another format (timestamp_format)"}
	case ReasonMethodNotAllowed:
		return []string{"the provider sends another method: set methods"}
	case ReasonKeyUnavailable:
		return []string{
			"this machine cannot reach the provider's key host over HTTPS (an egress firewall, DNS, a proxy)",
			"the key URL redirects off the allowlist, or serves a certificate for another name or from another root",
		}
	case ReasonBodyTooLarge:
		return []string{"the delivery is larger than max_body"}
	}
	return nil
}
