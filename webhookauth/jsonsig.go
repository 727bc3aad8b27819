package webhookauth

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Some senders put the signature in the JSON body and sign fields of it
// rather than the bytes (Mailgun's signature object, Adyen's notification
// items). For those schemes the body is decoded once, after it has been
// read; the signature is taken from signature_field, and {json:PATH}
// tokens of the signed payload write fields. A PATH is member names
// joined by dots; in signature_items, a "[]" segment stands for each
// element of an array.

// decodeJSON decodes a body with numbers kept as written.
func decodeJSON(body []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err == nil {
		return nil, false // more than one value
	}
	return doc, true
}

// jsonLookup returns the value at a dotted path of member names.
func jsonLookup(doc any, path string) (any, bool) {
	for _, name := range strings.Split(path, ".") {
		obj, ok := doc.(map[string]any)
		if !ok {
			return nil, false
		}
		if doc, ok = obj[name]; !ok {
			return nil, false
		}
	}
	return doc, true
}

// jsonText is a field as its sender signs it: a string as it is, a
// number as written, a boolean as true or false, and nothing for a
// missing field or null. Objects and arrays have no text.
func jsonText(v any, found bool) (string, bool) {
	if !found || v == nil {
		return "", true
	}
	switch t := v.(type) {
	case string:
		return t, true
	case json.Number:
		return t.String(), true
	case bool:
		if t {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

// jsonItems returns the objects a signature_items path names: "[]"
// segments fan out over array elements.
func jsonItems(doc any, path string) []map[string]any {
	level := []any{doc}
	for _, seg := range strings.Split(path, ".") {
		var next []any
		for _, v := range level {
			if seg == "[]" {
				arr, ok := v.([]any)
				if !ok {
					return nil
				}
				next = append(next, arr...)
				continue
			}
			obj, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			child, ok := obj[seg]
			if !ok {
				return nil
			}
			next = append(next, child)
		}
		level = next
	}
	items := make([]map[string]any, 0, len(level))
	for _, v := range level {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		items = append(items, obj)
	}
	return items
}

// finishJSON checks a signature carried in the JSON body: every item (or
// the whole document) must carry a signature that matches its fields.
func (st *Verification) finishJSON(body []byte) (int, *Rejection) {
	s := st.v.scheme
	doc, ok := decodeJSON(body)
	if !ok {
		return -1, reject(ReasonSignatureMalformed, "the body is not the JSON document that carries the signature")
	}
	items := []map[string]any{}
	if s.SignatureItems != "" {
		items = jsonItems(doc, s.SignatureItems)
	} else if obj, ok := doc.(map[string]any); ok {
		items = append(items, obj)
	}
	if len(items) == 0 {
		return -1, reject(ReasonSignatureMissing, "the body has nothing at "+s.signaturePath())
	}
	first := -1
	for _, item := range items {
		v, found := jsonLookup(item, s.SignatureField)
		text, _ := v.(string)
		if !found || text == "" {
			return -1, reject(ReasonSignatureMissing, "the body has no "+s.signaturePath())
		}
		st.cands.reset()
		if !s.addCandidate(&st.cands, text) {
			return -1, reject(ReasonSignatureMalformed, "the body's "+s.signaturePath()+" is not a "+string(s.Encoding)+"-encoded "+string(s.Algorithm)+" signature")
		}
		st.values.json = item
		st.matched = -1
		st.macAll()
		st.values.json = nil
		if st.matched < 0 {
			return -1, signatureMismatch
		}
		if first < 0 {
			first = st.matched
		}
	}
	st.doc = doc
	if rej := st.checkBodyTimestamp(body); rej != nil {
		st.matched = -1
		return -1, rej
	}
	st.matched = first
	return first, nil
}

// signaturePath names where the signature is, for rejections.
func (s *Scheme) signaturePath() string {
	if s.SignatureItems != "" {
		return s.SignatureItems + "." + s.SignatureField
	}
	return s.SignatureField
}
