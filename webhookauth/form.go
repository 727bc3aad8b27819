package webhookauth

import (
	"bytes"
	"slices"
)

// maxFormParams bounds the parameters of a form body, as net/url bounds
// a query: a body with more is refused, not canonicalised.
const maxFormParams = 10000

// formCanon writes what {form} stands for: the decoded parameters of a
// form-encoded body sorted by name (values of one name sorted too), each
// written as name then value (Twilio's scheme). It decodes into buffers it
// keeps, so once warm it canonicalises without allocating.
type formCanon struct {
	buf   []byte     // decoded names and values, each name followed by its value
	pairs []formPair // where each parameter is in buf
}

// formPair is one parameter: its name is buf[name:value], its value
// buf[value:end].
type formPair struct{ name, value, end int }

// appendSorted appends the canonical form of body to dst. It decodes as
// net/url.ParseQuery does and fails where that fails: a ';' in a
// parameter, a malformed %-escape, more than maxFormParams parameters.
func (f *formCanon) appendSorted(dst, body []byte) ([]byte, bool) {
	f.buf, f.pairs = f.buf[:0], f.pairs[:0]
	for rest := body; len(rest) > 0; {
		var param []byte
		param, rest, _ = bytes.Cut(rest, []byte{'&'})
		if bytes.IndexByte(param, ';') >= 0 {
			return dst, false
		}
		if len(param) == 0 {
			continue
		}
		if len(f.pairs) == maxFormParams {
			return dst, false
		}
		name, value, _ := bytes.Cut(param, []byte{'='})
		p := formPair{name: len(f.buf)}
		var ok bool
		if f.buf, ok = appendQueryUnescape(f.buf, name); !ok {
			return dst, false
		}
		p.value = len(f.buf)
		if f.buf, ok = appendQueryUnescape(f.buf, value); !ok {
			return dst, false
		}
		p.end = len(f.buf)
		f.pairs = append(f.pairs, p)
	}
	buf := f.buf
	slices.SortFunc(f.pairs, func(a, b formPair) int {
		if c := bytes.Compare(buf[a.name:a.value], buf[b.name:b.value]); c != 0 {
			return c
		}
		return bytes.Compare(buf[a.value:a.end], buf[b.value:b.end])
	})
	for _, p := range f.pairs {
		dst = append(dst, buf[p.name:p.end]...)
	}
	return dst, true
}

// release drops buffers grown by an unusually large body, so the pool
// does not keep them.
func (f *formCanon) release() {
	if cap(f.buf) > maxPooledMsg {
		f.buf = nil
	}
	if cap(f.pairs) > 4096 {
		f.pairs = nil
	}
}

// appendSortedForm is formCanon.appendSorted with fresh buffers.
func appendSortedForm(dst, body []byte) ([]byte, bool) {
	var f formCanon
	return f.appendSorted(dst, body)
}

// appendQueryUnescape appends s decoded as a query component: "+" is a
// space and "%XX" the byte XX; any other '%' is an error.
func appendQueryUnescape(dst, s []byte) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			dst = append(dst, ' ')
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return dst, false
			}
			dst = append(dst, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
