package webhookauth

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// TokenKind is one kind of value a signed-payload template can insert.
type TokenKind uint8

const (
	TokenLiteral TokenKind = iota
	TokenBody
	TokenID
	TokenTimestamp
	TokenMethod
	TokenURL
	TokenForm
	TokenJSON
	TokenHeader
	// TokenPath is the request's path, and its query as Contentful's
	// toolkit writes it.
	TokenPath
	// TokenSignedHeaders writes the headers that the header named in
	// Text lists (Contentful's x-contentful-signed-headers): names
	// lower-cased and sorted, "name:value" joined by ';'.
	TokenSignedHeaders
	// TokenBodyJSON writes the body as a JSON string, escaped as
	// JavaScript's JSON.stringify escapes it (Hygraph).
	TokenBodyJSON
	// TokenEntryJSON writes the value of the entry Text of a list-format
	// signature header (Hygraph's env=), as a JSON string.
	TokenEntryJSON
	// TokenBaseURL is the URL without its query (Plivo's "base URL"):
	// scheme, host and path.
	TokenBaseURL
)

// Segment is one piece of a template: literal text, or a token to fill in
// from the request. For TokenHeader, Text is the canonical header name.
type Segment struct {
	Kind TokenKind
	Text string
	// For TokenEntryJSON: the signature header and its separator, set
	// when the scheme compiles.
	header string
	sep    byte
}

// Template describes exactly which bytes a sender signs, such as
// "{timestamp}.{body}" for Stripe or "v0:{timestamp}:{body}" for Slack. It
// is written segment by segment into the MAC, so the body is never copied
// to build the payload.
type Template struct {
	Segments []Segment
	source   string
}

// String returns the template as it was written.
func (t Template) String() string { return t.source }

// Uses reports whether the template contains a token of kind k.
func (t Template) Uses(k TokenKind) bool {
	for _, s := range t.Segments {
		if s.Kind == k {
			return true
		}
	}
	return false
}

// usesJSON reports whether the template writes the JSON field at path.
func (t Template) usesJSON(path string) bool {
	for _, s := range t.Segments {
		if s.Kind == TokenJSON && s.Text == path {
			return true
		}
	}
	return false
}

// ParseTemplate parses a signed-payload template. Tokens are {body}, {id},
// {timestamp}, {method}, {url} and {header.NAME}; everything else is
// literal text, taken as written (no escapes). The long forms
// {http.request.method} and {http.request.header.NAME} are accepted too. A
// '{' that does not open a known token is an error, so a
// typo cannot silently change what is verified.
func ParseTemplate(src string) (Template, error) {
	t := Template{source: src}
	lit := func(s string) {
		if s == "" {
			return
		}
		if n := len(t.Segments); n > 0 && t.Segments[n-1].Kind == TokenLiteral {
			t.Segments[n-1].Text += s
			return
		}
		t.Segments = append(t.Segments, Segment{Kind: TokenLiteral, Text: s})
	}
	rest := src
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			lit(rest)
			break
		}
		lit(rest[:open])
		if strings.HasPrefix(rest[open:], "{{") {
			// "{{" is a literal '{' (Hygraph signs a JSON object).
			lit("{")
			rest = rest[open+2:]
			continue
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return Template{}, fmt.Errorf("signed_payload %q: unclosed '{'", src)
		}
		name := rest[open+1 : open+end]
		rest = rest[open+end+1:]
		// The Caddyfile expands the shorthands {method} and {header.*}
		// to their full names before we see them; accept both.
		if full, ok := strings.CutPrefix(name, "http.request."); ok && (full == "method" || strings.HasPrefix(full, "header.")) {
			name = full
		}
		var seg Segment
		switch name {
		case "body":
			seg.Kind = TokenBody
		case "id":
			seg.Kind = TokenID
		case "timestamp":
			seg.Kind = TokenTimestamp
		case "method":
			seg.Kind = TokenMethod
		case "url":
			seg.Kind = TokenURL
		case "base_url":
			seg.Kind = TokenBaseURL
		case "form":
			seg.Kind = TokenForm
		case "path":
			seg.Kind = TokenPath
		case "body_json":
			seg.Kind = TokenBodyJSON
		case "json:":
			return Template{}, fmt.Errorf("signed_payload %q: {json:} needs a path, such as {json:signature.token}", src)
		default:
			if e, ok := strings.CutPrefix(name, "entry_json:"); ok && e != "" && !strings.ContainsAny(e, "{ \t=") {
				seg = Segment{Kind: TokenEntryJSON, Text: e}
				break
			}
			if h, ok := strings.CutPrefix(name, "signed_headers:"); ok && h != "" && !strings.ContainsAny(h, "{ \t") {
				seg = Segment{Kind: TokenSignedHeaders, Text: http.CanonicalHeaderKey(h)}
				break
			}
			if path, ok := strings.CutPrefix(name, "json:"); ok {
				if strings.Contains(path, "..") || strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") || strings.ContainsAny(path, "{ \t") {
					return Template{}, fmt.Errorf("signed_payload %q: {json:%s} is not a dotted path of member names", src, path)
				}
				seg = Segment{Kind: TokenJSON, Text: path}
				break
			}
			h, ok := strings.CutPrefix(name, "header.")
			if !ok || h == "" || strings.ContainsAny(h, "{ \t") {
				return Template{}, fmt.Errorf("signed_payload %q: unknown token {%s} (want {body}, {id}, {timestamp}, {method}, {url}, {base_url}, {path}, {form}, {json:PATH}, {header.NAME}, {signed_headers:NAME}, {body_json} or {entry_json:KEY}; {{ is a literal '{')", src, name)
			}
			seg = Segment{Kind: TokenHeader, Text: http.CanonicalHeaderKey(h)}
		}
		t.Segments = append(t.Segments, seg)
	}
	if len(t.Segments) == 0 {
		return Template{}, fmt.Errorf("signed_payload is empty")
	}
	return t, nil
}

// payloadValues are the request values a template may insert.
type payloadValues struct {
	body      []byte
	id        string
	timestamp string
	method    string
	url       string
	path      string
	header    http.Header
	// form is what {form} writes: the decoded parameters of a
	// form-encoded body, sorted by name, each as name then value.
	form []byte
	// json is the object {json:PATH} reads fields of (raw bytes of the
	// body); jsonBad records a field that could not be written: ambiguous
	// (see jsonMember), or an object or array where a value is signed.
	json    []byte
	jsonBad bool
}

// writeTo writes the payload the template describes to w: a MAC, or a buffer in
// tests. scratch is reused for string values so that writing them does not
// allocate.
func (t Template) writeTo(w interface{ Write([]byte) (int, error) }, v *payloadValues, scratch *[]byte) {
	str := func(s string) {
		*scratch = append((*scratch)[:0], s...)
		w.Write(*scratch)
	}
	for _, s := range t.Segments {
		switch s.Kind {
		case TokenLiteral:
			str(s.Text)
		case TokenBody:
			w.Write(v.body)
		case TokenID:
			str(v.id)
		case TokenTimestamp:
			str(v.timestamp)
		case TokenMethod:
			str(v.method)
		case TokenURL:
			str(v.url)
		case TokenBaseURL:
			str(baseURL(v.url))
		case TokenForm:
			w.Write(v.form)
		case TokenJSON:
			// A missing field or null writes nothing, as the
			// providers' libraries do.
			val, res := jsonLookup(v.json, s.Text)
			if res == jsonAmbiguous {
				v.jsonBad = true
			}
			if res == jsonFound {
				var ok bool
				if *scratch, ok = appendScalar((*scratch)[:0], val); !ok {
					v.jsonBad = true
				}
				w.Write(*scratch)
			}
		case TokenHeader:
			if vals := v.header[s.Text]; len(vals) > 0 {
				str(vals[0])
			}
		case TokenPath:
			str(v.path)
		case TokenBodyJSON:
			*scratch = appendJSStringify((*scratch)[:0], v.body)
			w.Write(*scratch)
		case TokenEntryJSON:
			entry := ""
			if vals := v.header[s.header]; len(vals) == 1 {
				entry = listEntry(vals[0], s.sep, s.Text)
			}
			*scratch = appendJSStringify((*scratch)[:0], unsafeBytes(entry))
			w.Write(*scratch)
		case TokenSignedHeaders:
			*scratch = appendSignedHeaders((*scratch)[:0], v.header, s.Text)
			w.Write(*scratch)
		}
	}
}

// signedHeaderNames returns the header names the header list names:
// comma-separated, trimmed, lower-cased, sorted. False when a name is
// empty or repeated.
func signedHeaderNames(h http.Header, list string) ([]string, bool) {
	vals := h[list]
	if len(vals) != 1 {
		return nil, false
	}
	var names []string
	for _, n := range strings.Split(vals[0], ",") {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" || slices.Contains(names, n) {
			return nil, false
		}
		names = append(names, n)
	}
	slices.Sort(names)
	return names, true
}

// appendSignedHeaders writes "name:value" for each header the list names,
// joined by ';' (values trimmed).
func appendSignedHeaders(dst []byte, h http.Header, list string) []byte {
	names, _ := signedHeaderNames(h, list)
	for i, n := range names {
		if i > 0 {
			dst = append(dst, ';')
		}
		dst = append(dst, n...)
		dst = append(dst, ':')
		dst = append(dst, strings.TrimSpace(h.Get(n))...)
	}
	return dst
}

// requestPath is the request's path as sent and, when there is a query,
// "?" and the query escaped twice, as Contentful's toolkit signs it
// (encodeURI of the path and querystring.escape of the query).
// baseURL is u without its query and fragment (and without a '?' that
// starts an empty query), as Plivo signs it.
func baseURL(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i]
	}
	return u
}

func requestPath(r *http.Request) string {
	p := r.URL.EscapedPath()
	if r.URL.RawQuery == "" {
		return p
	}
	q := url.QueryEscape(r.URL.RawQuery)
	q = strings.ReplaceAll(q, "+", "%20")
	return p + "?" + strings.ReplaceAll(q, "%", "%25")
}

// listEntry returns the value of key's entry in a list-format header
// ("sign=…, env=master, t=…"), or "".
func listEntry(v string, sep byte, key string) string {
	for rest := v; rest != ""; {
		var entry string
		entry, rest = nextEntry(rest, sep)
		if val, ok := cutKey(entry, key); ok {
			return val
		}
	}
	return ""
}

// appendJSStringify appends b, read as UTF-8, as JavaScript's
// JSON.stringify writes a string: quoted; '"' and '\\' escaped; \b \f \n
// \r \t short; other control characters as \u00xx; everything else as
// it is, bytes that are not UTF-8 as U+FFFD (as a JavaScript runtime
// decodes them).
func appendJSStringify(dst, b []byte) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(b); {
		c := b[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRune(b[i:])
			dst = utf8.AppendRune(dst, r) // RuneError for invalid bytes
			i += n
			continue
		}
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
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
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				dst = append(dst, c)
			}
		}
		i++
	}
	return append(dst, '"')
}
