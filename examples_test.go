package caddywebhookauth_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/webhookauth/caddy-webhookauth/webhookauth"
)

// shellCommands returns the commands in the ```sh blocks of a README.
func shellCommands(t *testing.T, readme string) []string {
	t.Helper()
	raw, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	in := false
	for _, line := range strings.Split(string(raw), "\n") {
		switch {
		case line == "```sh":
			in = true
		case line == "```":
			in = false
		case in && strings.TrimSpace(line) != "":
			cmds = append(cmds, line)
		}
	}
	return cmds
}

// examplePorts maps every port an example's Caddyfile names (localhost:N,
// http_port N, https_port N) to a free one, the same port to the same
// free one; it returns the replacer, and the free admin and HTTPS ports.
func examplePorts(t *testing.T, caddyfile string) (*strings.Replacer, int, int) {
	t.Helper()
	re := regexp.MustCompile(`(localhost:|http_port |https_port |admin localhost:)(\d{4,5})\b`)
	free := map[string]int{}
	var pairs []string
	admin, tlsPort := 0, 0
	for _, m := range re.FindAllStringSubmatch(caddyfile, -1) {
		if _, ok := free[m[2]]; !ok {
			free[m[2]] = freePort(t)
		}
		switch m[1] {
		case "admin localhost:":
			admin = free[m[2]]
		case "https_port ":
			tlsPort = free[m[2]]
		}
	}
	for fixed, port := range free {
		for _, prefix := range []string{"localhost:", "http_port ", "https_port "} {
			pairs = append(pairs, prefix+fixed, fmt.Sprintf("%s%d", prefix, port))
		}
	}
	if admin == 0 {
		t.Fatal("the example names no admin address")
	}
	return strings.NewReplacer(pairs...), admin, tlsPort
}

// okAnswer is `caddy webhook send`'s first line for a 200: HTTP/1.1 for
// the plain examples, HTTP/2.0 over TLS.
var okAnswer = regexp.MustCompile(`^HTTP/(1\.1|2\.0) 200 OK\n`)

// TestProviderExamples runs the quickstart and each provider example exactly as its README
// says, with `go run ./cmd/caddy` standing for the binary built from this
// repository: the run command, then each `caddy webhook handshake`
// command, which must find the endpoint's answer right, and each
// `caddy webhook send` command, which must get a 2xx answer from the
// stand-in backend through the gate.
func TestProviderExamples(t *testing.T) {
	bin, err := buildCaddy()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"quickstart", "github", "gitlab", "shopify", "slack", "standard", "stripe", "zoom", "https", "routing"} {
		t.Run(name, func(t *testing.T) {
			cmds := shellCommands(t, "examples/"+name+"/README.md")
			if len(cmds) < 2 || !strings.Contains(cmds[0], " run --config examples/"+name+"/Caddyfile") || !strings.Contains(cmds[len(cmds)-1], " webhook send ") {
				t.Fatalf("README commands %q: want the run command, then handshake or send commands, the last a send", cmds)
			}
			// Each example has ports of its own (so that two can run at
			// once); the test runs a copy on free ones, so that another
			// Caddy on this machine cannot take part of the traffic.
			src, err := os.ReadFile("examples/" + name + "/Caddyfile")
			if err != nil {
				t.Fatal(err)
			}
			ports, admin, tlsPort := examplePorts(t, string(src))
			caddyfile := filepath.Join(t.TempDir(), "Caddyfile")
			if err := os.WriteFile(caddyfile, []byte(ports.Replace(string(src))), 0o600); err != nil {
				t.Fatal(err)
			}
			local := func(c string) string {
				c = strings.ReplaceAll(c, "go run ./cmd/caddy", bin)
				c = strings.ReplaceAll(c, "examples/"+name+"/Caddyfile", caddyfile)
				return ports.Replace(c)
			}

			// The server and the commands share a home: Caddy keeps its
			// local CA's root there, which the HTTPS example's commands
			// trust through $HOME.
			env := append(os.Environ(), "HOME="+t.TempDir())
			server := exec.Command("bash", "-c", strings.Replace(local(cmds[0]), " "+bin, " exec "+bin, 1))
			server.Env = env
			var logs bytes.Buffer
			server.Stdout, server.Stderr = &logs, &logs
			if err := server.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				server.Process.Signal(syscall.SIGTERM)
				server.Wait()
				if t.Failed() {
					t.Logf("caddy logged:\n%s", logs.String())
				}
			}()
			deadline := time.Now().Add(20 * time.Second)
			for {
				resp, err := http.Get(fmt.Sprintf("http://localhost:%d/config/", admin))
				if err == nil {
					resp.Body.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the example's Caddy did not start")
				}
				time.Sleep(50 * time.Millisecond)
			}

			if strings.Contains(string(src), "tls internal") {
				// Only that a certificate is served: the commands
				// themselves verify it against Caddy's root.
				waitCertificate(t, tlsPort, &tls.Config{InsecureSkipVerify: true})
			}

			for _, c := range cmds[1:] {
				cmd := exec.Command("bash", "-c", local(c))
				cmd.Env = env
				out, err := cmd.Output()
				switch {
				case strings.Contains(c, " webhook handshake "):
					if err != nil || !strings.Contains(string(out), "ok: "+name+" would accept this endpoint") {
						t.Fatalf("handshake: %v\n%s", err, out)
					}
				case strings.Contains(c, " webhook send "):
					if err != nil || !okAnswer.MatchString(string(out)) || !strings.Contains(string(out), "backend received") {
						t.Fatalf("send: %v\n%s", err, out)
					}
					if name == "routing" {
						// Each event at its own backend.
						want := map[string]string{"push": "deploy backend received push", "issues": "tracker backend received issues"}
						for ev, backend := range want {
							if strings.Contains(c, "X-GitHub-Event: "+ev+"'") && !strings.Contains(string(out), backend) {
								t.Fatalf("%s went elsewhere: %s", ev, out)
							}
						}
					}
				default:
					t.Fatalf("README command %q is neither a handshake nor a send", c)
				}
				t.Logf("%s", out)
			}
			if name == "routing" {
				// An event no matcher takes: 422 from the last handler,
				// never a 200 that would lose it.
				c := strings.ReplaceAll(cmds[len(cmds)-1], "X-GitHub-Event: issues", "X-GitHub-Event: star")
				cmd := exec.Command("bash", "-c", local(c))
				cmd.Env = env
				out, err := cmd.Output()
				if err == nil || !strings.Contains(string(out), "422") || !strings.Contains(string(out), "no route for event star") {
					t.Fatalf("an unrouted event: %v\n%s", err, out)
				}
			}
		})
	}
}

// TestQuickstartJSON: examples/quickstart/caddy.json, the JSON form the
// README shows for users who configure Caddy through its API, is exactly
// what `caddy adapt` makes of the quickstart's Caddyfile.
func TestQuickstartJSON(t *testing.T) {
	src, err := os.ReadFile("examples/quickstart/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	adapted, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile"})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("adapt: %v %v", err, warnings)
	}
	want, err := os.ReadFile("examples/quickstart/caddy.json")
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(adapted, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &b); err != nil {
		t.Fatalf("caddy.json: %v", err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("examples/quickstart/caddy.json is not the adapted Caddyfile; regenerate it with\n  go run ./cmd/caddy adapt --config examples/quickstart/Caddyfile --pretty > examples/quickstart/caddy.json\nadapt gives:\n%s", adapted)
	}
}

// The first hour, kept fixed: no two examples share a port (two Caddy
// processes on one port split its requests silently: SO_REUSEPORT), and
// no secret in the README's or an example's commands is short enough to
// make the gate warn on the user's first step.
func TestExamplesPortsAndSecrets(t *testing.T) {
	files, _ := filepath.Glob("examples/*/*")
	owner := map[string]string{}
	portRe := regexp.MustCompile(`(?:localhost:|http_port |https_port )(\d{4,5})\b`)
	secretRe := regexp.MustCompile(`\b[A-Z][A-Z_]*_(?:SECRET|TOKEN|KEY)=(\S+)`)
	docs := append([]string{"README.md"}, files...)
	for _, f := range docs {
		raw, err := os.ReadFile(f)
		if err != nil || strings.HasSuffix(f, ".json") {
			continue
		}
		dir := filepath.Dir(f)
		if filepath.Base(f) == "Caddyfile" || strings.HasSuffix(f, ".Caddyfile") {
			for _, m := range portRe.FindAllStringSubmatch(string(raw), -1) {
				if o, ok := owner[m[1]]; ok && o != dir {
					t.Errorf("port %s is used by %s and %s", m[1], o, dir)
				}
				owner[m[1]] = dir
			}
		}
		for _, m := range secretRe.FindAllStringSubmatch(string(raw), -1) {
			if v := strings.Trim(m[1], `'"`); !strings.HasPrefix(v, "{") && !strings.HasPrefix(v, "$") && len(v) < webhookauth.MinSecretLength {
				t.Errorf("%s: the secret %q is shorter than %d bytes: the gate warns about it", f, v, webhookauth.MinSecretLength)
			}
		}
	}
	if len(owner) < 20 {
		t.Fatalf("only %d ports found in the examples", len(owner))
	}
}
