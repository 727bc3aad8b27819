package webhookauth

import (
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// A small scanner over raw JSON bytes, for the schemes that read fields of
// the body (Stripe's id and type, Linear's timestamp, Mailgun's and
// Adyen's signed fields, Microsoft Graph's clientState). It finds a value
// by walking the bytes, without building the document, so reading fields
// costs no allocation however large the body.
//
// Every function is safe on any input: on bytes that are not JSON it
// returns "not found" or "ambiguous", never panics and never loops. Where
// a result must be exact (a signature read from the body before it is
// verified), the caller checks the body with json.Valid first.
//
// A member is found only when its name appears once in its object, spelled
// exactly. A second copy, or a copy that differs only in letter case, makes
// the lookup ambiguous: parsers disagree on which copy wins (Go's
// encoding/json matches names case-insensitively and keeps the last), so a
// value the gate verified could differ from the one the backend reads.

// lookupResult says what a lookup found.
type lookupResult uint8

const (
	jsonFound     lookupResult = iota
	jsonMissing                // no such member, or a step is not an object
	jsonAmbiguous              // a member on the path appears twice, or in another letter case
)

// jsonMember finds the member name in the object that obj starts with
// (after white space) and returns its raw value, white space trimmed.
func jsonMember(obj []byte, name string) ([]byte, lookupResult) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, jsonMissing
	}
	var val []byte
	res := jsonMissing
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil, jsonMissing
	}
	for i < len(obj) {
		if obj[i] != '"' {
			return nil, jsonMissing
		}
		keyEnd := stringEnd(obj, i)
		key := obj[i:keyEnd]
		i = skipSpace(obj, keyEnd)
		if i >= len(obj) || obj[i] != ':' {
			return nil, jsonMissing
		}
		i = skipSpace(obj, i+1)
		if i >= len(obj) {
			return nil, jsonMissing
		}
		end := valueEnd(obj, i)
		if exact, folded := compareKey(key, name); folded {
			if res != jsonMissing || !exact {
				return nil, jsonAmbiguous
			}
			val, res = obj[i:end], jsonFound
		}
		i = skipSpace(obj, end)
		if i >= len(obj) {
			return nil, jsonMissing
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return val, res
		default:
			return nil, jsonMissing
		}
	}
	return nil, jsonMissing
}

// jsonMembers finds several members of the object obj in one walk: for
// each name, its raw value in vals[i] and its result in res[i], by the
// rules of jsonMember (a second copy or a case variant is ambiguous).
// It reports false when obj is not a well-formed object.
func jsonMembers(obj []byte, names []string, vals [][]byte, res []lookupResult) bool {
	for i := range names {
		vals[i], res[i] = nil, jsonMissing
	}
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return true
	}
	for i < len(obj) {
		if obj[i] != '"' {
			return false
		}
		keyEnd := stringEnd(obj, i)
		key := obj[i:keyEnd]
		i = skipSpace(obj, keyEnd)
		if i >= len(obj) || obj[i] != ':' {
			return false
		}
		i = skipSpace(obj, i+1)
		if i >= len(obj) {
			return false
		}
		end := valueEnd(obj, i)
		for n, name := range names {
			if exact, folded := compareKey(key, name); folded {
				if res[n] != jsonMissing || !exact {
					vals[n], res[n] = nil, jsonAmbiguous
				} else {
					vals[n], res[n] = obj[i:end], jsonFound
				}
			}
		}
		i = skipSpace(obj, end)
		if i >= len(obj) {
			return false
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return true
		default:
			return false
		}
	}
	return false
}

// jsonLookup follows a dotted path of member names from the object v.
func jsonLookup(v []byte, path string) ([]byte, lookupResult) {
	for {
		name, rest, more := cutDot(path)
		var res lookupResult
		if v, res = jsonMember(v, name); res != jsonFound || !more {
			return v, res
		}
		path = rest
	}
}

func cutDot(path string) (string, string, bool) {
	for i := 0; i < len(path); i++ {
		if path[i] == '.' {
			return path[:i], path[i+1:], true
		}
	}
	return path, "", false
}

// jsonEach calls fn with each value that path names from v: member names
// step into objects and a "[]" segment fans out over an array's elements.
// An empty path names v itself. It stops early when fn returns false,
// and reports jsonMissing when a step does not fit the document (not an
// object, not an array, no such member).
func jsonEach(v []byte, path string, fn func(item []byte) bool) lookupResult {
	res, _ := each(v, path, fn)
	return res
}

// each is jsonEach, also reporting whether to go on.
func each(v []byte, path string, fn func(item []byte) bool) (lookupResult, bool) {
	if path == "" {
		return jsonFound, fn(v)
	}
	seg, rest, _ := cutDot(path)
	if seg != "[]" {
		child, res := jsonMember(v, seg)
		if res != jsonFound {
			return res, false
		}
		return each(child, rest, fn)
	}
	i := skipSpace(v, 0)
	if i >= len(v) || v[i] != '[' {
		return jsonMissing, false
	}
	i = skipSpace(v, i+1)
	if i < len(v) && v[i] == ']' {
		return jsonFound, true
	}
	for i < len(v) {
		end := valueEnd(v, i)
		if res, goOn := each(v[i:end], rest, fn); res != jsonFound || !goOn {
			return res, false
		}
		i = skipSpace(v, end)
		if i >= len(v) {
			return jsonMissing, false
		}
		switch v[i] {
		case ',':
			i = skipSpace(v, i+1)
		case ']':
			return jsonFound, true
		default:
			return jsonMissing, false
		}
	}
	return jsonMissing, false
}

// appendScalar appends the text a sender signs for the raw JSON value val:
// a string unescaped, a number as written, true or false, and nothing for
// null. Objects, arrays and anything else have no text: it reports false.
func appendScalar(dst, val []byte) ([]byte, bool) {
	if len(val) == 0 {
		return dst, false
	}
	switch c := val[0]; {
	case c == '"':
		return appendUnquote(dst, val)
	case c == '-' || (c >= '0' && c <= '9'):
		return append(dst, val...), true
	case string(val) == "true" || string(val) == "false":
		return append(dst, val...), true
	case string(val) == "null":
		return dst, true
	}
	return dst, false
}

// appendUnquote appends the text of the JSON string quoted (with its
// quotes), escapes resolved. It refuses (false) a string with bytes that
// are not UTF-8 or a lone surrogate escape: readers disagree on those
// (encoding/json writes U+FFFD, JavaScript keeps the lone surrogate,
// Python refuses the document), so a value the gate verified or keys on
// must not contain them.
func appendUnquote(dst, quoted []byte) ([]byte, bool) {
	if len(quoted) < 2 || quoted[0] != '"' || quoted[len(quoted)-1] != '"' {
		return dst, false
	}
	s := quoted[1 : len(quoted)-1]
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return dst, false
			}
			if s[i+1] == 'u' {
				r, n := unquoteRune(s[i:])
				if n == 0 {
					return dst, false
				}
				dst = utf8.AppendRune(dst, r)
				i += n
				continue
			}
			b, ok := simpleEscape(s[i+1])
			if !ok {
				return dst, false
			}
			dst = append(dst, b)
			i += 2
		case c == '"' || c < ' ':
			return dst, false
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n == 1 {
				return dst, false
			}
			dst = append(dst, s[i:i+n]...)
			i += n
		}
	}
	return dst, true
}

// simpleEscape returns the byte a one-letter escape (\n, \", …) stands for.
func simpleEscape(e byte) (byte, bool) {
	switch e {
	case '"', '\\', '/':
		return e, true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	}
	return 0, false
}

// unquoteRune decodes the \uXXXX escape (or surrogate pair) at the start
// of s and returns the rune and the bytes it took; 0 bytes if malformed
// or a lone surrogate.
func unquoteRune(s []byte) (rune, int) {
	r := hex4(s)
	if r < 0 {
		return 0, 0
	}
	if !utf16.IsSurrogate(r) {
		return r, 6
	}
	if r2 := hex4(s[6:]); r2 >= 0 {
		if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
			return dec, 12
		}
	}
	return 0, 0
}

// hex4 reads "\uXXXX" at the start of s; -1 if it is not there.
func hex4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// compareKey compares the quoted JSON key with name, decoding escapes as
// it goes: exact when they are equal, folded when they are equal ignoring
// letter case (as Go's encoding/json matches struct fields).
func compareKey(quoted []byte, name string) (exact, folded bool) {
	if len(quoted) < 2 {
		return false, false
	}
	s := quoted[1 : len(quoted)-1]
	exact, folded = true, true
	for len(s) > 0 {
		var r rune
		if s[0] == '\\' {
			if len(s) > 1 && s[1] == 'u' {
				var n int
				if r, n = unquoteRune(s); n == 0 {
					return false, false
				}
				s = s[n:]
			} else {
				b, ok := simpleEscape(safeAt(s, 1))
				if !ok {
					return false, false
				}
				r, s = rune(b), s[2:]
			}
		} else {
			var n int
			r, n = utf8.DecodeRune(s)
			s = s[n:]
		}
		if name == "" {
			return false, false
		}
		want, n := utf8.DecodeRuneInString(name)
		name = name[n:]
		if r != want {
			exact = false
			if !equalFoldRune(r, want) {
				return false, false
			}
		}
	}
	if name != "" {
		return false, false
	}
	return exact, folded
}

func safeAt(s []byte, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

// equalFoldRune reports whether r and s are equal under simple Unicode
// case folding, as bytes.EqualFold compares them.
func equalFoldRune(r, s rune) bool {
	if r == s {
		return true
	}
	if s < r {
		r, s = s, r
	}
	if s < utf8.RuneSelf {
		return 'A' <= r && r <= 'Z' && s == r+'a'-'A'
	}
	f := unicode.SimpleFold(r)
	for f != r && f < s {
		f = unicode.SimpleFold(f)
	}
	return f == s
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at b[i]
// (len(b) if it is not closed).
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the value that starts at b[i]:
// a string, an object or array with everything nested in it, or a
// literal up to the next delimiter.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = stringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// bodyString returns the string at path in a JSON body (Stripe's "id" and
// "type"); false when it is missing, ambiguous or not a string.
func bodyString(body []byte, path string) (string, bool) {
	val, res := jsonLookup(body, path)
	if res != jsonFound || len(val) == 0 || val[0] != '"' {
		return "", false
	}
	return stringValue(val)
}

func stringValue(quoted []byte) (string, bool) {
	var buf [128]byte
	text, ok := appendUnquote(buf[:0], quoted)
	return string(text), ok
}

// bodyTime returns the timestamp at path in a JSON body as sent: a
// string, or a whole number written in digits only (Linear's
// webhookTimestamp in milliseconds).
func bodyTime(body []byte, path string) (string, bool) {
	val, res := jsonLookup(body, path)
	if res != jsonFound || len(val) == 0 {
		return "", false
	}
	if val[0] == '"' {
		return stringValue(val)
	}
	for _, c := range val {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return string(val), true
}
