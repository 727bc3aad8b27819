// Package keyserver is a local HTTPS server that stands in for the key
// servers of Amazon SNS, PayPal and Google in tests: it serves the test
// certificates and the JSON Web Key Set of webhookauth/testdata/fetched
// under a test CA, counts requests per path, and can be made to fail. It
// is used by tests only; no test reaches the internet.
package keyserver

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// KID is the key id of the test Google key in the key set.
const KID = "test-kid-1"

// Server is the running key server.
type Server struct {
	*httptest.Server
	// Host is its host:port (127.0.0.1:…), the allowlist entry to use.
	Host string
	// Roots holds the test CA; RootFile is its PEM file.
	Roots    *x509.CertPool
	RootFile string

	mu     sync.Mutex
	counts map[string]int
	down   atomic.Bool
	// Gate, when set, is waited on before each answer (concurrency tests).
	gate chan struct{}
	// bodies are answers set by SetBody, by path.
	bodies map[string][]byte
}

// SetBody makes the server answer path with body (application/json);
// nil removes it (404).
func (s *Server) SetBody(path string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bodies == nil {
		s.bodies = map[string][]byte{}
	}
	if body == nil {
		delete(s.bodies, path)
		return
	}
	s.bodies[path] = body
}

// Start serves dir's fixtures (webhookauth/testdata/fetched):
//
//	/sns.pem, /paypal.pem, /other.pem, /selfsigned.pem  the certificates
//	/sns-cold.pem the SNS certificate again, under another URL
//	/big.pem      10 MB of PEM-looking bytes
//	/redirect.pem 302 to the same server under the name "localhost"
//	/confirm      200, as SNS's SubscribeURL answers
//	/certs        the JWKS holding google.key's public key as KID, max-age 3600
func Start(t testing.TB, dir string) *Server {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(abs, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pair, err := tls.X509KeyPair(read("server.pem"), read("server.key"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(read("ca.pem")) {
		t.Fatal("ca.pem has no certificate")
	}
	jwks := jwksOf(t, read("google.key"), read("google-2019.jwks.json"))
	s := &Server{Roots: roots, RootFile: filepath.Join(abs, "ca.pem"), counts: map[string]int{}}
	files := map[string][]byte{}
	for _, f := range []string{"sns.pem", "paypal.pem", "other.pem", "selfsigned.pem"} {
		files["/"+f] = read(f)
	}
	files["/sns-cold.pem"] = files["/sns.pem"] // the same certificate under a URL no test has fetched
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counts[r.URL.Path]++
		gate := s.gate
		set := s.bodies[r.URL.Path]
		s.mu.Unlock()
		if gate != nil {
			<-gate
		}
		if s.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		switch p := r.URL.Path; {
		case set != nil:
			w.Header().Set("Content-Type", "application/json")
			w.Write(set)
		case files[p] != nil:
			w.Header().Set("Content-Type", "application/x-pem-file")
			w.Write(files[p])
		case p == "/big.pem":
			w.Write([]byte("-----BEGIN CERTIFICATE-----\n"))
			w.Write([]byte(strings.Repeat("A", 10<<20)))
		case p == "/redirect.pem":
			http.Redirect(w, r, "https://localhost:"+strings.Split(s.Host, ":")[1]+"/sns.pem", http.StatusFound)
		case p == "/confirm":
			w.Header().Set("Content-Type", "text/xml")
			w.Write([]byte("<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>arn:aws:sns:us-east-1:123456789012:t:1</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>"))
		case p == "/certs":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "public, max-age=3600")
			w.Write(jwks)
		default:
			http.NotFound(w, r)
		}
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	s.StartTLS()
	s.Host = strings.TrimPrefix(s.URL, "https://")
	t.Cleanup(s.Close)
	return s
}

// URL returns the server's URL for path.
func (s *Server) PathURL(path string) string { return s.URL + path }

// Count returns how many requests path has had.
func (s *Server) Count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[path]
}

// Total returns how many requests the server has had.
func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.counts {
		n += c
	}
	return n
}

// SetDown makes every answer 503 (true) or normal again (false).
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// Hold makes answers wait until the returned function is called.
func (s *Server) Hold() (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.gate = ch
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.gate = nil
			s.mu.Unlock()
			close(ch)
		})
	}
}

// jwksOf builds a key set with the public key of the PEM private key,
// and the keys of another key set (Google's 2019 key, which signed the
// example token of its docs).
func jwksOf(t testing.TB, keyPEM, more []byte) []byte {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		t.Fatal("google.key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		if k, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
			t.Fatal(err)
		}
	}
	pub := k.(*rsa.PrivateKey).PublicKey
	b64 := base64.RawURLEncoding.EncodeToString
	var extra struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(more, &extra); err != nil {
		t.Fatal(err)
	}
	set := map[string]any{"keys": append([]map[string]string{{
		"kty": "RSA", "alg": "RS256", "use": "sig", "kid": KID,
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}}, extra.Keys...)}
	out, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// PrivateKey reads one of dir's RSA private keys (for signing in tests).
func PrivateKey(t testing.TB, dir, name string) *rsa.PrivateKey {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatal(fmt.Sprintf("%s is not PEM", name))
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
	}
	return k.(*rsa.PrivateKey)
}
