package webhookauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// The asymmetric algorithms: the sender signs with a private key and the
// gate verifies with the public key configured by `public_key`.
const (
	// AlgorithmEd25519 signs the whole payload (Standard Webhooks v1a,
	// Discord); the signature is 64 bytes.
	AlgorithmEd25519 Algorithm = "ed25519"
	// AlgorithmECDSAP256 signs the SHA-256 of the payload with a P-256
	// key; the signature is ASN.1 DER or raw r||s (SendGrid uses DER).
	AlgorithmECDSAP256 Algorithm = "ecdsa-p256-sha256"
	// AlgorithmRSAPKCS1 and AlgorithmRSAPSS sign the SHA-256 of the
	// payload with an RSA key of at least 2048 bits.
	AlgorithmRSAPKCS1 Algorithm = "rsa-pkcs1v15-sha256"
	AlgorithmRSAPSS   Algorithm = "rsa-pss-sha256"
)

// asymmetric reports whether a verifies with public keys.
func (a Algorithm) asymmetric() bool {
	switch a {
	case AlgorithmEd25519, AlgorithmECDSAP256, AlgorithmRSAPKCS1, AlgorithmRSAPSS:
		return true
	}
	return false
}

// sigLenOK reports whether n bytes can be a signature of algorithm a.
func (a Algorithm) sigLenOK(n int) bool {
	switch a {
	case AlgorithmEd25519:
		return n == ed25519.SignatureSize
	case AlgorithmECDSAP256:
		return n >= 8 && n <= 72 // DER (at most 72) or raw r||s (64)
	case AlgorithmRSAPKCS1, AlgorithmRSAPSS:
		return n >= 256 && n <= maxSigSize // 2048 to 4096 bits
	}
	return false
}

// ParsePublicKey reads a public key for algorithm alg, written as PEM
// (SubjectPublicKeyInfo, or PKCS#1 for RSA), as `whpk_` + base64 (Standard
// Webhooks), or as hex or base64 of either the raw ed25519 key (32 bytes)
// or a DER SubjectPublicKeyInfo. A key of the wrong type or too weak (RSA
// under 2048 bits, an ECDSA key not on P-256) is an error.
func ParsePublicKey(alg Algorithm, text string) (crypto.PublicKey, error) {
	text = strings.TrimSpace(text)
	var der []byte
	switch {
	case strings.HasPrefix(text, "whpk_"):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(text, "whpk_"))
		if err != nil {
			return nil, errors.New("a whpk_ key must be base64 after the prefix")
		}
		der = raw
	case strings.HasPrefix(text, "-----BEGIN"):
		block, _ := pem.Decode([]byte(text))
		if block == nil {
			return nil, errors.New("the PEM key does not decode")
		}
		if block.Type == "RSA PUBLIC KEY" {
			k, err := x509.ParsePKCS1PublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("the PKCS#1 key does not parse: %v", err)
			}
			return checkKey(alg, k)
		}
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("a PEM %q block is not a public key (want PUBLIC KEY)", block.Type)
		}
		der = block.Bytes
	default:
		if raw, err := hex.DecodeString(text); err == nil {
			der = raw
		} else if raw, err := base64.StdEncoding.DecodeString(text); err == nil {
			der = raw
		} else if raw, err := base64.RawStdEncoding.DecodeString(text); err == nil {
			der = raw
		} else {
			return nil, errors.New("the key is neither PEM, whpk_, hex nor base64")
		}
	}
	if alg == AlgorithmEd25519 && len(der) == ed25519.PublicKeySize {
		return ed25519.PublicKey(der), nil
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		if alg == AlgorithmRSAPKCS1 || alg == AlgorithmRSAPSS {
			if rk, rerr := x509.ParsePKCS1PublicKey(der); rerr == nil {
				return checkKey(alg, rk)
			}
		}
		return nil, fmt.Errorf("the key is not a DER SubjectPublicKeyInfo: %v", err)
	}
	return checkKey(alg, k)
}

// checkKey refuses a key that does not belong to alg.
func checkKey(alg Algorithm, k any) (crypto.PublicKey, error) {
	switch alg {
	case AlgorithmEd25519:
		if ek, ok := k.(ed25519.PublicKey); ok {
			return ek, nil
		}
	case AlgorithmECDSAP256:
		if ek, ok := k.(*ecdsa.PublicKey); ok {
			if ek.Curve != elliptic.P256() {
				return nil, errors.New("the ECDSA key is not on P-256")
			}
			return ek, nil
		}
	case AlgorithmRSAPKCS1, AlgorithmRSAPSS:
		if rk, ok := k.(*rsa.PublicKey); ok {
			if rk.N.BitLen() < 2048 {
				return nil, fmt.Errorf("the RSA key has %d bits; at least 2048 are required", rk.N.BitLen())
			}
			if rk.N.BitLen() > 8*maxSigSize {
				return nil, fmt.Errorf("the RSA key has %d bits; at most %d are supported", rk.N.BitLen(), 8*maxSigSize)
			}
			return rk, nil
		}
	default:
		return nil, fmt.Errorf("algorithm %s takes a secret, not a public key", alg)
	}
	return nil, fmt.Errorf("the key is a %T, not a key for %s", k, alg)
}

// verifyAsym checks one signature of payload (for ed25519) or of its
// SHA-256 digest (the others) under key.
func verifyAsym(alg Algorithm, key crypto.PublicKey, payload, digest, sig []byte) bool {
	switch alg {
	case AlgorithmEd25519:
		return ed25519.Verify(key.(ed25519.PublicKey), payload, sig)
	case AlgorithmECDSAP256:
		k := key.(*ecdsa.PublicKey)
		if len(sig) == 64 {
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			if ecdsa.Verify(k, digest, r, s) {
				return true
			}
		}
		return ecdsa.VerifyASN1(k, digest, sig)
	case AlgorithmRSAPKCS1:
		return rsa.VerifyPKCS1v15(key.(*rsa.PublicKey), crypto.SHA256, digest, sig) == nil
	case AlgorithmRSAPSS:
		return rsa.VerifyPSS(key.(*rsa.PublicKey), crypto.SHA256, digest, sig, nil) == nil
	}
	return false
}

// ParsePrivateKey reads a sender's private key for algorithm alg, for
// signing test deliveries (`caddy webhook sign`): PEM (PKCS#8, or SEC 1
// and PKCS#1), `whsk_` + base64 of an ed25519 seed (Standard Webhooks),
// or hex of an ed25519 seed.
func ParsePrivateKey(alg Algorithm, text string) (crypto.Signer, error) {
	text = strings.TrimSpace(text)
	var k any
	switch {
	case strings.HasPrefix(text, "whsk_") || (alg == AlgorithmEd25519 && !strings.HasPrefix(text, "-----BEGIN")):
		var seed []byte
		var err error
		if rest, ok := strings.CutPrefix(text, "whsk_"); ok {
			seed, err = base64.StdEncoding.DecodeString(rest)
		} else {
			seed, err = hex.DecodeString(text)
		}
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, errors.New("an ed25519 private key is a 32-byte seed: whsk_ + base64, or hex")
		}
		k = ed25519.NewKeyFromSeed(seed)
	default:
		block, _ := pem.Decode([]byte(text))
		if block == nil {
			return nil, errors.New("the private key is not PEM")
		}
		var err error
		switch block.Type {
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		}
		if err != nil {
			return nil, errors.New("the private key does not parse")
		}
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("the private key cannot sign")
	}
	if _, err := checkKey(alg, signer.Public()); err != nil {
		return nil, err
	}
	return signer, nil
}

// signAsym signs payload with key as alg does.
func signAsym(alg Algorithm, key crypto.Signer, payload []byte) ([]byte, error) {
	if alg == AlgorithmEd25519 {
		return key.Sign(nil, payload, crypto.Hash(0))
	}
	digest := sha256.Sum256(payload)
	switch alg {
	case AlgorithmECDSAP256:
		return ecdsa.SignASN1(rand.Reader, key.(*ecdsa.PrivateKey), digest[:])
	case AlgorithmRSAPKCS1:
		return rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, digest[:])
	case AlgorithmRSAPSS:
		return rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, digest[:], nil)
	}
	return nil, fmt.Errorf("algorithm %s is not asymmetric", alg)
}
