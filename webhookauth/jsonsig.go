package webhookauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
)

// Some senders put the signature in the JSON body and sign fields of it
// rather than the bytes (Mailgun's signature object, Adyen's notification
// items), or put a shared secret in each item (Microsoft Graph's
// clientState). For those schemes the body must be one valid JSON
// document; the signature is taken from signature_field, and {json:PATH}
// tokens of the signed payload write fields. A PATH is member names
// joined by dots; in signature_items, a "[]" segment stands for each
// element of an array. Fields are read from the bytes (see jsonscan.go),
// so checking them allocates nothing.

// finishJSON checks a signature carried in the JSON body: every item (or
// the whole document) must carry a signature that matches its fields.
func (st *Verification) finishJSON(body []byte) (int, *Rejection) {
	s := st.v.scheme
	if !json.Valid(body) {
		return -1, reject(ReasonSignatureMalformed, "the body is not the JSON document that carries the signature")
	}
	first, items := -1, 0
	var rej *Rejection
	// Dedup keys on the MAC (MAC()): with several items, on a digest of
	// every item's MAC in order, so that a batch that shares one item
	// with an earlier batch is not taken for it.
	all := false
	res := jsonEach(body, s.SignatureItems, func(item []byte) bool {
		items++
		var i int
		if i, rej = st.checkItem(item); rej != nil {
			return false
		}
		if first < 0 {
			first = i
		}
		if items == 2 {
			all = true
			if st.items == nil {
				st.items = sha256.New()
			}
			st.items.Reset()
			st.items.Write(st.first[:s.macSize])
		}
		if items >= 2 {
			st.items.Write(st.sum[:s.macSize])
		} else {
			st.first = st.sum
		}
		return true
	})
	if all && rej == nil {
		st.items.Sum(st.sum[:0])
	}
	switch {
	case rej != nil:
		return -1, rej
	case res == jsonAmbiguous:
		return -1, reject(ReasonSignatureMalformed, "the body has more than one "+s.SignatureItems)
	case res != jsonFound || items == 0:
		return -1, reject(ReasonSignatureMissing, "the body has nothing at "+s.signaturePath())
	}
	st.matched = first
	if rej := st.checkBodyTimestamp(body); rej != nil {
		st.matched = -1
		return -1, rej
	}
	return first, nil
}

// checkItem checks the signature one object of the body carries.
func (st *Verification) checkItem(item []byte) (int, *Rejection) {
	s := st.v.scheme
	val, res := jsonLookup(item, s.SignatureField)
	if res == jsonAmbiguous {
		return -1, reject(ReasonSignatureMalformed, "the body has more than one "+s.signaturePath())
	}
	if res != jsonFound || len(val) < 3 || val[0] != '"' {
		return -1, reject(ReasonSignatureMissing, "the body has no "+s.signaturePath())
	}
	var ok bool
	if st.field, ok = appendUnquote(st.field[:0], val); !ok {
		return -1, reject(ReasonSignatureMalformed, "the body's "+s.signaturePath()+" is not a JSON string")
	}
	if s.Algorithm == AlgorithmToken {
		// As for a token header: compare digests, so the comparison takes
		// the same time whatever the token's length.
		sum := sha256.Sum256(st.field)
		for i := range st.v.digests {
			if hmac.Equal(sum[:], st.v.digests[i][:]) {
				return i, nil
			}
		}
		return -1, tokenMismatch
	}
	st.cands.reset()
	if !s.addCandidate(&st.cands, unsafeString(st.field)) {
		return -1, reject(ReasonSignatureMalformed, "the body's "+s.signaturePath()+" is not a "+string(s.Encoding)+"-encoded "+string(s.Algorithm)+" signature")
	}
	st.values.json, st.values.jsonBad = item, false
	st.matched = -1
	st.macAll()
	st.values.json = nil
	if st.values.jsonBad {
		return -1, reject(ReasonSignatureMalformed, "a signed field of the body appears more than once, or is an object or array")
	}
	if st.matched < 0 {
		return -1, signatureMismatch
	}
	return st.matched, nil
}

// signaturePath names where the signature is, for rejections.
func (s *Scheme) signaturePath() string {
	if s.SignatureItems != "" {
		return s.SignatureItems + "." + s.SignatureField
	}
	return s.SignatureField
}
