package webhookauth

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"unsafe"
)

// Encoding says how a MAC is written as text in a header.
type Encoding string

const (
	EncodingHex       Encoding = "hex"
	EncodingBase64    Encoding = "base64"
	EncodingBase64URL Encoding = "base64url"
)

func (e Encoding) validate() error {
	switch e {
	case EncodingHex, EncodingBase64, EncodingBase64URL:
		return nil
	}
	return fmt.Errorf("unknown encoding %q (want hex, base64 or base64url)", string(e))
}

// decode writes the bytes that text encodes into dst and returns how many.
// It fails if text is not valid in the encoding or would not fit dst. It
// does not allocate. Base64 padding is optional.
func (e Encoding) decode(dst []byte, text string) (int, bool) {
	switch e {
	case EncodingHex:
		if len(text)%2 != 0 || len(text)/2 > len(dst) {
			return 0, false
		}
		// hex.Decode takes a []byte; decode two characters at a time to
		// avoid converting (and copying) the string.
		for i := 0; i < len(text); i += 2 {
			hi, ok1 := fromHexChar(text[i])
			lo, ok2 := fromHexChar(text[i+1])
			if !ok1 || !ok2 {
				return 0, false
			}
			dst[i/2] = hi<<4 | lo
		}
		return len(text) / 2, true
	case EncodingBase64, EncodingBase64URL:
		enc := base64.RawStdEncoding
		if e == EncodingBase64URL {
			enc = base64.RawURLEncoding
		}
		text = strings.TrimRight(text, "=")
		if enc.DecodedLen(len(text)) > len(dst) {
			return 0, false
		}
		n, err := enc.Decode(dst, unsafeBytes(text))
		return n, err == nil
	}
	return 0, false
}

// encode appends the text form of src to dst.
func (e Encoding) encode(dst, src []byte) []byte {
	switch e {
	case EncodingBase64:
		return base64.StdEncoding.AppendEncode(dst, src)
	case EncodingBase64URL:
		return base64.URLEncoding.AppendEncode(dst, src)
	}
	return hex.AppendEncode(dst, src)
}

func fromHexChar(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// SecretEncoding says how a configured secret becomes key bytes.
type SecretEncoding string

const (
	// SecretRaw uses the secret's bytes as they are (GitHub, Stripe, Slack,
	// Shopify, GitLab).
	SecretRaw SecretEncoding = "raw"
	// SecretBase64 decodes standard base64.
	SecretBase64 SecretEncoding = "base64"
	// SecretHex decodes hex.
	SecretHex SecretEncoding = "hex"
	// SecretWhsec strips an optional "whsec_" prefix and decodes the rest
	// as base64 (Standard Webhooks, Svix).
	SecretWhsec SecretEncoding = "whsec"
)

func (e SecretEncoding) validate() error {
	switch e {
	case SecretRaw, SecretBase64, SecretHex, SecretWhsec:
		return nil
	}
	return fmt.Errorf("unknown secret_encoding %q (want raw, base64, hex or whsec)", string(e))
}

// Key turns a secret into key bytes. Errors never include the secret.
func (e SecretEncoding) Key(secret string) ([]byte, error) {
	var (
		key []byte
		err error
	)
	switch e {
	case SecretRaw, "":
		key = []byte(secret)
	case SecretBase64:
		key, err = base64.StdEncoding.DecodeString(secret)
	case SecretHex:
		key, err = hex.DecodeString(secret)
	case SecretWhsec:
		key, err = base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	default:
		return nil, e.validate()
	}
	if err != nil {
		// The decoder's error can quote a byte of the secret; keep only
		// the kind of failure.
		return nil, fmt.Errorf("secret is not valid %s", string(e))
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("secret is empty")
	}
	return key, nil
}

// unsafeBytes views a string's bytes without copying. The result must only
// be read.
func unsafeBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// unsafeString views b as a string without copying. The caller must not
// change b while the string is in use, nor keep the string.
func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
