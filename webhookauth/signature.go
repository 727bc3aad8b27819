package webhookauth

import (
	"crypto/sha256"
	"strings"
)

// maxCandidates bounds how many signatures one header may carry, so a
// hostile header cannot make verification do unbounded work.
const maxCandidates = 8

// maxSigSize is the longest signature decoded: an RSA-4096 signature.
const maxSigSize = 512

// candidates holds the decoded signatures found in a signature header.
type candidates struct {
	sig [maxCandidates][maxSigSize]byte
	len [maxCandidates]int
	n   int
	// macSize, when not 0, is the MAC length this request's signatures
	// must have (a request that names another algorithm: Twilio's
	// SharedKey); otherwise the scheme's.
	macSize int
	// timestamp is the t= value of a stripe-format header.
	timestamp string
}

func (c *candidates) reset() {
	c.n = 0
	c.timestamp = ""
}

// size is the MAC length candidates must have under scheme s.
func (c *candidates) size(s *Scheme) int {
	if c.macSize != 0 {
		return c.macSize
	}
	return s.macSize
}

// parseSignature finds and decodes the signatures in the values of the
// signature header. It allocates nothing. A header that is absent or blank
// is signature_missing; one that is sent twice, lacks the prefix, is badly
// encoded or has the wrong length is signature_malformed.
func (s *Scheme) parseSignature(values []string, c *candidates) *Rejection {
	c.reset()
	if len(values) == 0 {
		return reject(ReasonSignatureMissing, "the request has no "+s.SignatureHeader+" header")
	}
	if len(values) > 1 {
		return reject(ReasonSignatureMalformed, "the "+s.SignatureHeader+" header is sent more than once")
	}
	v := strings.TrimSpace(values[0])
	if v == "" {
		return reject(ReasonSignatureMissing, "the "+s.SignatureHeader+" header is empty")
	}
	if s.Algorithm == AlgorithmToken {
		// Compare digests, not the token itself, so that the comparison
		// takes the same time whatever the token's length.
		sum := sha256.Sum256(unsafeBytes(v))
		copy(c.sig[0][:], sum[:])
		c.len[0], c.n = len(sum), 1
		return nil
	}
	switch s.Format {
	case FormatPlain:
		text, ok := strings.CutPrefix(v, s.Prefix)
		if !ok {
			return reject(ReasonSignatureMalformed, "the "+s.SignatureHeader+" header does not start with \""+s.Prefix+"\"")
		}
		if !s.addCandidate(c, text) {
			return reject(ReasonSignatureMalformed, "the "+s.SignatureHeader+" header is not a "+string(s.Encoding)+"-encoded "+string(s.Algorithm)+" signature")
		}
		return nil
	case FormatStripe:
		return s.parseList(v, s.Separator, c)
	case FormatStandard:
		return s.parseList(v, ' ', c)
	}
	return reject(ReasonSignatureMalformed, "unsupported signature format")
}

// parseList reads a list of entries separated by sep. Entries that start
// with the prefix are signatures; in the stripe format "t=" carries the
// timestamp; all other entries are ignored, as the providers specify.
func (s *Scheme) parseList(v string, sep byte, c *candidates) *Rejection {
	seen := 0
	for rest := v; rest != ""; {
		var entry string
		entry, rest = nextEntry(rest, sep)
		if s.timestampInSignature() {
			if ts, ok := cutKey(entry, s.TimestampKey); ok {
				if c.timestamp != "" {
					return reject(ReasonSignatureMalformed, "the "+s.SignatureHeader+" header has more than one timestamp")
				}
				c.timestamp = ts
				continue
			}
		}
		text, ok := strings.CutPrefix(entry, s.Prefix)
		if !ok {
			continue
		}
		seen++
		if seen > maxCandidates {
			return reject(ReasonSignatureMalformed, "the "+s.SignatureHeader+" header has too many signatures")
		}
		s.addCandidate(c, text)
	}
	if c.n == 0 {
		if seen == 0 {
			return reject(ReasonSignatureMalformed, "the "+s.SignatureHeader+" header has no \""+s.Prefix+"\" signature")
		}
		return reject(ReasonSignatureMalformed, "no signature in the "+s.SignatureHeader+" header is a "+string(s.Encoding)+"-encoded "+string(s.Algorithm)+" signature")
	}
	return nil
}

// cutKey returns the value of a "key=value" entry for key.
func cutKey(entry, key string) (string, bool) {
	if len(entry) > len(key) && entry[len(key)] == '=' && entry[:len(key)] == key {
		return entry[len(key)+1:], true
	}
	return "", false
}

// addCandidate decodes text and keeps it if it has a signature's length
// for the algorithm.
func (s *Scheme) addCandidate(c *candidates, text string) bool {
	if c.n == maxCandidates {
		return false
	}
	n, ok := s.Encoding.decode(c.sig[c.n][:], text)
	if !ok {
		return false
	}
	if s.Algorithm.asymmetric() {
		ok = s.Algorithm.sigLenOK(n)
	} else {
		ok = n == c.size(s)
	}
	if !ok {
		return false
	}
	c.len[c.n] = n
	c.n++
	return true
}

// get returns candidate j.
func (c *candidates) get(j int) []byte { return c.sig[j][:c.len[j]] }

// addHeaderSignatures adds the signatures of one more signature header
// (see MoreSignatureHeaders) to c. An absent header adds nothing; one
// sent twice, or holding no valid signature, is signature_malformed.
func (s *Scheme) addHeaderSignatures(values []string, name string, c *candidates) *Rejection {
	switch {
	case len(values) == 0:
		return nil
	case len(values) > 1:
		return reject(ReasonSignatureMalformed, "the "+name+" header is sent more than once")
	}
	var more candidates
	more.macSize = c.macSize
	if rej := s.parseSignature(values, &more); rej != nil {
		return reject(ReasonSignatureMalformed, "the "+name+" header does not hold a valid signature")
	}
	for j := 0; j < more.n; j++ {
		if c.n == maxCandidates {
			return reject(ReasonSignatureMalformed, "the signature headers carry too many signatures")
		}
		c.sig[c.n], c.len[c.n] = more.sig[j], more.len[j]
		c.n++
	}
	return nil
}

// nextEntry splits the first entry off a list-format header value,
// trimmed of white space.
func nextEntry(v string, sep byte) (entry, rest string) {
	if i := strings.IndexByte(v, sep); i >= 0 {
		return strings.TrimSpace(v[:i]), v[i+1:]
	}
	return strings.TrimSpace(v), ""
}
