package gate

import (
	"net/url"
	"strings"
)

// Redacted stands for a value left out of a log line or CLI output.
const Redacted = "REDACTED"

// RedactQuery returns uri (a request target or a whole URL) with the
// value of each query parameter named in names replaced by REDACTED: the
// parameters that carry a secret (Meta's hub.verify_token). A parameter
// whose name does not decode is redacted too, since it could be one of
// them spelled in escapes. Anything else is left as it was.
func RedactQuery(uri string, names []string) string {
	if len(names) == 0 {
		return uri
	}
	path, query, ok := strings.Cut(uri, "?")
	if !ok {
		return uri
	}
	frag := ""
	if i := strings.IndexByte(query, '#'); i >= 0 {
		query, frag = query[:i], query[i:]
	}
	var b strings.Builder
	b.WriteString(path)
	b.WriteByte('?')
	for i, param := range strings.FieldsFunc(query, func(r rune) bool { return r == '&' }) {
		if i > 0 {
			b.WriteByte('&')
		}
		k, _, hasValue := strings.Cut(param, "=")
		name, err := url.QueryUnescape(k)
		secret := err != nil || strings.ContainsRune(k, ';')
		for _, n := range names {
			if name == n {
				secret = true
			}
		}
		if secret && hasValue {
			b.WriteString(k + "=" + Redacted)
			continue
		}
		b.WriteString(param)
	}
	b.WriteString(frag)
	return b.String()
}
