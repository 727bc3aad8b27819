package webhookauth

import (
	"encoding/json"
)

// topLevelString returns the value of a top-level string member of the JSON
// object in body, such as Stripe's "id" and "type". It scans the top level
// once without building the document, so it costs little next to the MAC
// over the same bytes. It reports false for anything that is not a JSON
// object with that member, once, as a string: a member that appears twice
// is ambiguous (parsers disagree on which one wins), so it is not used.
// Called only on verified bodies.
func topLevelString(body []byte, field string) (string, bool) {
	return topLevel(body, field, false)
}

// topLevelTime is like topLevelString, but also takes a member written
// as a whole JSON number (Linear's webhookTimestamp in ms), returning its
// digits.
func topLevelTime(body []byte, field string) (string, bool) {
	return topLevel(body, field, true)
}

func topLevel(body []byte, field string, wantNumber bool) (string, bool) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return "", false
	}
	i++
	var value string
	seen, isString := false, false
	for {
		i = skipSpace(body, i)
		if i >= len(body) || body[i] != '"' {
			return "", false
		}
		keyEnd, ok := scanString(body, i)
		if !ok {
			return "", false
		}
		key := body[i:keyEnd]
		i = skipSpace(body, keyEnd)
		if i >= len(body) || body[i] != ':' {
			return "", false
		}
		i = skipSpace(body, i+1)
		if i >= len(body) {
			return "", false
		}
		if matchesKey(key, field) {
			if seen {
				return "", false
			}
			seen = true
			if body[i] == '"' {
				end, ok := scanString(body, i)
				if !ok || json.Unmarshal(body[i:end], &value) != nil {
					return "", false
				}
				isString = true
			} else if wantNumber {
				end := i
				for end < len(body) && body[end] >= '0' && body[end] <= '9' {
					end++
				}
				// A whole number only: no fraction or exponent.
				if end > i && end < len(body) && body[end] != '.' && body[end] != 'e' && body[end] != 'E' {
					value, isString = string(body[i:end]), true
				}
			}
		}
		i, ok = skipValue(body, i)
		if !ok {
			return "", false
		}
		i = skipSpace(body, i)
		if i >= len(body) {
			return "", false
		}
		switch body[i] {
		case ',':
			i++
		case '}':
			return value, seen && isString
		default: // junk
			return "", false
		}
	}
}

// matchesKey compares a quoted JSON key without escapes to name. Keys with
// escapes never match: the providers' field names have none.
func matchesKey(quoted []byte, name string) bool {
	return len(quoted) == len(name)+2 && string(quoted[1:len(quoted)-1]) == name
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index just past the string that starts at b[i].
func scanString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index just past the value that starts at b[i]. It
// checks nesting and strings, not the full grammar: the body has already
// been verified, and a malformed one only means no field is found.
func skipValue(b []byte, i int) (int, bool) {
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			end, ok := scanString(b, i)
			if !ok {
				return 0, false
			}
			i = end
		case '{', '[':
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				return i, true
			}
			depth--
			i++
		case ',':
			if depth == 0 {
				return i, true
			}
			i++
		default:
			i++
		}
		if depth == 0 && i < len(b) && (b[i] == ',' || b[i] == '}') {
			return i, true
		}
	}
	return i, depth == 0
}
